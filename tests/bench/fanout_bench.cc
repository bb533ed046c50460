// Event fan-out under load (issue 4's benchmark): a bulk transfer inside a sandbox while 1,
// 10 and 100 subscribers watch its events over gRPC, each on its own channel, reading every
// response. Per row: the transfer's throughput and its ratio to a row with no subscriber run
// just before it, events produced and delivered per second, events subscribers missed (Gap
// events), the latency of GetConnection calls made meanwhile (p50/p99), responses written
// and bytes per event, and where the CPU went: tcplabd's threads other than the transfer's
// ("fan-out CPU", also per delivered event), the subscribers' process ("client CPU"), and
// the transfer's own threads. The summary line is the median ratio over --rounds rounds.
//
// The transfer is the lab's datapath: the engine sending to the Linux kernel through the
// sandbox's TUN (--backend=tun, the default as root), driven by a local application on the
// sandbox's reactor (Sandbox::SetLocalApp) and read by a kernel socket in the namespace. With
// --backend=virtual it is engine to engine inside one reactor, an extreme: ~3M events/s,
// more than any subscriber reads on this machine.
//
// The subscribers stand in for clients on other machines. They run in a child process at
// SCHED_IDLE, in a CPU cgroup marked idle, and count events in the raw bytes rather than
// building messages (--parse builds them; --in_process runs them in this process at the
// server's priority, the harshest setting). On a two-CPU box whatever they spend still
// comes out of the transfer: the "spin" row is the control, a process at the same priority
// that only spins, one thread per CPU, with no gRPC and no event.
//
// Pinned like tun_bench (--no_pin to leave placement to the scheduler): the sandbox's reactor
// on CPU 0, the kernel-side reader on CPU 1; tcplabd's gRPC threads and the subscribers go
// where the scheduler puts them. Unpinned, this VM's throughput swings by 2-4x with where
// the reactor and the reader happen to run (a 100-subscriber row once ran at 3.8x its
// baseline), which drowns what the row is meant to measure.
//
//   fanout_bench [--seconds=2] [--subscribers=spin,1,10,100] [--backend=tun|virtual] [--rounds=5]
//                [--parse] [--in_process] [--no_pin]
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "engine/sandbox/netns.h"
#include "engine/sandbox/reactor.h"
#include "server/event_stream.h"
#include "server/server.h"
#include "tests/bench/tun/kernel_load.h"
#include "tests/bench/tun/source_app.h"
#include "tcplab/v1/connection.grpc.pb.h"
#include "tcplab/v1/sandbox.grpc.pb.h"

namespace tcplab::bench {
namespace {

namespace v1 = ::tcplab::v1;
using server::Server;

constexpr uint16_t kPort = 5001;
constexpr wire::Ipv4 kKernelAddr = wire::Ipv4::Of(198, 18, 0, 1);

// Source and sink in one local application: connect to our own listener, write as fast as
// the window allows, read everything on the accepted side.
sandbox::Sandbox::LocalApp Transfer(std::atomic<uint64_t>* octets, std::atomic<uint64_t>* client_id) {
  struct State {
    tcp::ConnId listener = 0, client = 0, server = 0;
    std::vector<uint8_t> chunk = std::vector<uint8_t>(64 * 1024, 'f');
    std::vector<uint8_t> buf = std::vector<uint8_t>(256 * 1024);
  };
  auto st = std::make_shared<State>();
  return [st, octets, client_id](stack::Stack& e, Instant now) {
    const wire::Endpoint local{sandbox::Sandbox::kEngineAddr, kPort};
    if (st->listener == 0) {
      auto l = e.Listen(local, now);
      if (!l.ok()) return false;
      st->listener = *l;
      auto c = e.Connect({sandbox::Sandbox::kEngineAddr, 0}, local, now);
      if (!c.ok()) return false;
      st->client = *c;
      *client_id = *c;
      return true;
    }
    bool did = false;
    if (st->server == 0) {
      if (auto s = e.Accept(st->listener); s.ok()) st->server = *s;
    }
    if (st->server != 0) {
      absl::StatusOr<size_t> n;
      while ((n = e.Recv(st->server, st->buf, now)).ok() && *n > 0) {
        *octets += *n;
        did = true;
      }
    }
    const tcp::Tcb* tcb = e.Find(st->client);
    if (tcb && tcb->state() == tcp::TcpState::kEstablished) {
      while (tcb->send_space() > 0) {
        auto n = e.Send(st->client, st->chunk, now);
        if (!n.ok() || *n == 0) break;
        did = true;
      }
    }
    return did;
  };
}

// The application runs on the sandbox's reactor: on its first turn it pins that thread to
// the datapath CPU (when pinning is on), as tun_bench does.
sandbox::Sandbox::LocalApp Pinned(sandbox::Sandbox::LocalApp app) {
  return [app = std::move(app), pinned = false](stack::Stack& e, Instant now) mutable {
    if (!pinned) {
      PinToDatapathCpu();
      pinned = true;
    }
    return app(e, now);
  };
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& addr) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per subscriber
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}

bool ReadSmallFile(const std::filesystem::path& p, std::string* out) {
  std::ifstream f(p);
  if (!f) return false;
  std::getline(f, *out);
  return true;
}

// CPU time (ns) the threads of process `pid` have run, from /proc's schedstat: all of them,
// only the transfer's (the sandbox's reactor "tcplab-..." and the kernel-side reader "k-..."),
// or all but the transfer's.
enum class Threads { kAll, kTransfer, kOthers };
uint64_t CpuNs(const std::string& pid, Threads which) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + pid + "/task", ec)) {
    std::string comm, stat;
    if (!ReadSmallFile(t.path() / "comm", &comm) || !ReadSmallFile(t.path() / "schedstat", &stat)) continue;
    const bool transfer = comm.rfind("tcplab-", 0) == 0 || comm.rfind("k-", 0) == 0;
    if ((which == Threads::kTransfer && !transfer) || (which == Threads::kOthers && transfer)) continue;
    uint64_t ns = 0;
    if (absl::SimpleAtoi(stat.substr(0, stat.find(' ')), &ns)) total += ns;
  }
  return total;
}

// Counts the events in a serialized WatchEventsResponse without building it: the entries of
// field 1, and in each Event a GapEvent (field 14) with its `missed` (field 1). Returns
// {events, missed}, or nullopt if the bytes are not what the server sends.
std::optional<std::pair<uint64_t, uint64_t>> CountEvents(std::string_view b) {
  auto varint = [&b](uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && !b.empty(); shift += 7) {
      const uint8_t c = static_cast<uint8_t>(b.front());
      b.remove_prefix(1);
      *v |= uint64_t{c & 0x7fu} << shift;
      if (c < 0x80) return true;
    }
    return false;
  };
  uint64_t events = 0, missed = 0, tag = 0, len = 0;
  while (!b.empty()) {
    if (!varint(&tag) || tag != 0x0a || !varint(&len) || len > b.size()) return std::nullopt;
    std::string_view ev = b.substr(0, len), gap;
    b.remove_prefix(len);
    // The Event's own fields: varints and length-delimited ones only.
    std::swap(b, ev);
    while (!b.empty()) {
      uint64_t t = 0, v = 0;
      if (!varint(&t)) return std::nullopt;
      if ((t & 7) == 0) {
        if (!varint(&v)) return std::nullopt;
      } else if ((t & 7) == 2) {
        if (!varint(&v) || v > b.size()) return std::nullopt;
        if (t >> 3 == 14) gap = b.substr(0, v);
        b.remove_prefix(v);
      } else {
        return std::nullopt;
      }
    }
    std::swap(b, ev);
    if (gap.data() == nullptr) {
      ++events;
      continue;
    }
    std::swap(b, gap);
    uint64_t t = 0, v = 0;
    while (!b.empty() && varint(&t) && varint(&v)) {
      if (t == 0x08) missed += v;  // GapEvent.missed
    }
    std::swap(b, gap);
  }
  return std::make_pair(events, missed);
}

// Subscribers: each on its own channel, reading every response. By default they count the
// events in the raw bytes (CountEvents), as cheaply as a client can read them: they stand in
// for clients on other machines, and on this two-CPU box whatever they spend is taken from
// the transfer. With --parse they build each WatchEventsResponse, as a real client does.
bool g_parse = false;

class Watchers {
 public:
  // Starts `n` WatchEvents streams on sandbox `name`.
  Watchers(const std::string& addr, const std::string& name, int n) {
    for (int i = 0; i < n; ++i) subs_.push_back(std::make_unique<Sub>(addr, name));
  }
  virtual ~Watchers() {
    for (auto& s : subs_) s->ctx.TryCancel();
    for (auto& s : subs_) s->thread.join();
  }
  // CPU time the subscribers have used, when it is not counted with this process's.
  virtual uint64_t CpuNs() { return 0; }
  // Events received and events reported missed (Gap events) so far, over all subscribers.
  virtual std::pair<uint64_t, uint64_t> Counts() {
    uint64_t e = 0, m = 0;
    for (auto& s : subs_) e += s->events, m += s->missed;
    return {e, m};
  }

 protected:
  Watchers() = default;

 private:
  struct Sub {
    Sub(const std::string& addr, const std::string& name)
        : channel(NewChannel(addr)), stub(v1::SandboxService::NewStub(channel)), thread([this, name] { Run(name); }) {}
    void Run(const std::string& name) {
      v1::WatchEventsRequest req;
      req.set_sandbox(name);
      if (g_parse) {
        auto r = stub->WatchEvents(&ctx, req);
        v1::WatchEventsResponse resp;
        while (r->Read(&resp)) {
          uint64_t n = 0;
          for (const v1::Event& e : resp.events()) {
            if (e.has_gap()) {
              missed += e.gap().missed();
            } else {
              ++n;
            }
          }
          events += n;
        }
        r->Finish();
        return;
      }
      // The generated stub's call, reading raw responses.
      static const grpc::internal::RpcMethod kWatch("/tcplab.v1.SandboxService/WatchEvents",
                                                    grpc::internal::RpcMethod::SERVER_STREAMING);
      std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> r(
          grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel.get(), kWatch, &ctx, req));
      grpc::ByteBuffer bb;
      std::vector<grpc::Slice> slices;
      std::string bytes;
      while (r->Read(&bb)) {
        bytes.clear();
        if (bb.Dump(&slices).ok()) {
          for (const grpc::Slice& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
        }
        auto counted = CountEvents(bytes);
        if (!counted) {
          std::fprintf(stderr, "fanout_bench: a response that is not a WatchEventsResponse\n");
          std::exit(1);
        }
        events += counted->first;
        missed += counted->second;
      }
      r->Finish();
    }
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::SandboxService::Stub> stub;
    grpc::ClientContext ctx;
    std::atomic<uint64_t> events{0}, missed{0};
    std::thread thread;  // last: starts once the members above exist
  };
  std::vector<std::unique_ptr<Sub>> subs_;
};

// The subscribers in a child process (this binary with --watch_child) at SCHED_IDLE: they
// stand in for clients on other machines, so their own parsing runs only on CPU time that
// the server and the transfer leave idle, and what the row measures is the server's cost.
class ChildWatchers : public Watchers {
 public:
  // `arg`: --watch_child=... or --spin_child.
  explicit ChildWatchers(const std::string& arg) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) Die("pipe");
    const std::string group = IdleGroup();
    pid_ = fork();
    if (pid_ < 0) Die("fork");
    if (pid_ == 0) {
      if (!group.empty()) {
        // Before exec, so that every thread of the subscribers is in the group.
        std::ofstream(group + "/cgroup.procs") << getpid() << std::endl;
      }
      dup2(in[0], 0);
      dup2(out[1], 1);
      execl("/proc/self/exe", "fanout_bench", arg.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    group_ = group;
    to_ = fdopen(in[1], "w");
    from_ = fdopen(out[0], "r");
  }
  ~ChildWatchers() override {
    std::fclose(to_);  // EOF: the child cancels its streams and exits
    std::fclose(from_);
    int status = 0;
    waitpid(pid_, &status, 0);
    if (!group_.empty()) rmdir(group_.c_str());
  }
  uint64_t CpuNs() override { return bench::CpuNs(std::to_string(pid_), Threads::kAll); }
  std::pair<uint64_t, uint64_t> Counts() override {
    unsigned long long e = 0, m = 0;
    std::fputc('\n', to_);
    std::fflush(to_);
    if (std::fscanf(from_, "%llu %llu", &e, &m) != 2) Die("reading the subscribers' counts");
    return {e, m};
  }

 private:
  // A CPU cgroup marked idle (cpu.idle = 1): the subscribers' threads together weigh as one
  // SCHED_IDLE task against the transfer's, where a hundred threads at SCHED_IDLE each,
  // every one placed afresh when it wakes, took a third of a CPU from it. Empty if there is
  // no cgroup v1 cpu controller or no permission: then each thread is SCHED_IDLE.
  static std::string IdleGroup() {
    const std::string dir = "/sys/fs/cgroup/cpu/tcplab-fanout-" + std::to_string(getpid());
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return "";
    std::ofstream idle(dir + "/cpu.idle");
    if (!(idle << 1 << std::endl)) {
      rmdir(dir.c_str());
      return "";
    }
    return dir;
  }
  [[noreturn]] static void Die(const char* what) {
    std::perror(what);
    std::exit(1);
  }
  pid_t pid_ = -1;
  std::string group_;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
};

// --watch_child=ADDR,NAME,N,parse|raw: run N subscribers at SCHED_IDLE; answer each line on stdin with
// "events missed"; stop at EOF.
int WatchChild(absl::string_view spec) {
  std::vector<std::string> p = absl::StrSplit(spec, ',');
  int n = 0;
  if (p.size() != 4 || !absl::SimpleAtoi(p[2], &n)) return 2;
  g_parse = p[3] == "parse";
  // gRPC allocates each ~240 KiB response afresh; with glibc's defaults that memory is
  // mapped and returned to the kernel again and again, and the page faults of copying into
  // it cost a client more than reading. A client that reads all day keeps its heap.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  sched_param sp{};
  (void)sched_setscheduler(0, SCHED_IDLE, &sp);  // before any thread: they all inherit it
  Watchers w(p[0], p[1], n);
  for (int c; (c = std::getchar()) != EOF;) {
    if (c != '\n') continue;
    auto [e, m] = w.Counts();
    std::printf("%llu %llu\n", static_cast<unsigned long long>(e), static_cast<unsigned long long>(m));
    std::fflush(stdout);
  }
  return 0;
}

// --spin_child: the control row. No subscriber at all, but a busy neighbour like them: one
// thread per CPU spinning at the subscribers' priority (SCHED_IDLE, in the idle group). What
// this row costs the transfer is what any busy low-priority work costs it on this machine,
// with no gRPC and no event in sight.
int SpinChild() {
  sched_param sp{};
  (void)sched_setscheduler(0, SCHED_IDLE, &sp);
  std::atomic<bool> stop{false};
  std::vector<std::thread> spinners;
  for (unsigned i = 0; i < std::thread::hardware_concurrency(); ++i) {
    spinners.emplace_back([&stop] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  }
  for (int c; (c = std::getchar()) != EOF;) {
    if (c != '\n') continue;
    std::printf("0 0\n");
    std::fflush(stdout);
  }
  stop = true;
  for (std::thread& t : spinners) t.join();
  return 0;
}

constexpr int kSpinRow = -1;  // the control row's "subscribers"

std::unique_ptr<Watchers> StartWatchers(const std::string& addr, const std::string& name, int n, bool in_process) {
  if (n == kSpinRow) return std::make_unique<ChildWatchers>("--spin_child");
  if (n == 0 || in_process) return std::make_unique<Watchers>(addr, name, n);
  return std::make_unique<ChildWatchers>(absl::StrCat("--watch_child=", addr, ",", name, ",", n, ",", g_parse ? "parse" : "raw"));
}

struct Row {
  int subscribers = 0;
  double gbps = 0;
  double produced_per_s = 0;
  double delivered_per_s = 0;  // all subscribers together
  double missed_share = 0;     // of what subscribers should have seen
  double p50_us = 0, p99_us = 0;
  double responses_per_s = 0;  // WatchEventsResponses the server wrote, all streams
  double bytes_per_event = 0;  // their average serialized size per event
  double fanout_cpu = 0;       // this process but the transfer (tcplabd's gRPC and hub threads,
                               // the prober; --in_process: the subscribers too), in cores
  double client_cpu = 0;       // the subscribers' child process, in cores
  double transfer_cpu = 0;     // the transfer's own threads, in cores
};

Row RunRow(Server& srv, int subs, double seconds, bool tun, bool in_process) {
  Row row;
  row.subscribers = subs;
  const std::string name = "fan" + std::to_string(subs);
  const std::string addr = srv.addresses()[0];
  auto ch = NewChannel(addr);
  auto sandboxes = v1::SandboxService::NewStub(ch);
  auto conns = v1::ConnectionService::NewStub(ch);
  {
    grpc::ClientContext ctx;
    v1::CreateSandboxRequest req;
    req.set_name(name);
    req.mutable_options()->set_backend(tun ? v1::BACKEND_TUN : v1::BACKEND_VIRTUAL);
    v1::Sandbox sb;
    grpc::Status s = sandboxes->CreateSandbox(&ctx, req, &sb);
    if (!s.ok()) {
      std::fprintf(stderr, "CreateSandbox: %s\n", s.error_message().c_str());
      std::exit(1);
    }
  }
  std::shared_ptr<server::SandboxEntry> entry = *srv.registry().Get(name);
  sandbox::Sandbox& sb = *entry->sandbox;

  std::unique_ptr<Watchers> watchers = StartWatchers(addr, name, subs, in_process);

  std::atomic<uint64_t> octets{0}, client{0};
  std::unique_ptr<KernelLoad> sink;
  if (tun) {
    sink = std::make_unique<KernelLoad>("/run/netns/" + sb.netns_name());
    // The kernel-side reader is part of the transfer, like the reactor: it runs at the
    // reactor's priority (its thread inherits this thread's nice value while it is set).
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), sandbox::kReactorNice);
    absl::Status s = sink->BulkReceive({kKernelAddr, kPort}, &octets);
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), server::kServerNice);
    if (!s.ok()) {
      std::fprintf(stderr, "fanout_bench: kernel sink: %s\n", std::string(s.message()).c_str());
      std::exit(1);
    }
    sb.SetLocalApp(Pinned(SourceApp(kPort, &client)));
  } else {
    sb.SetLocalApp(Pinned(Transfer(&octets, &client)));
  }
  absl::SleepFor(absl::Milliseconds(500));  // warm-up: handshake, slow start, streams caught up

  // GetConnection latency, one call every 2 ms, on the control channel.
  std::atomic<bool> probing{true};
  std::vector<double> lat_us;
  std::thread prober([&] {
    while (probing) {
      grpc::ClientContext ctx;
      v1::ConnectionRequest req;
      req.set_sandbox(name);
      req.set_connection_id(client.load());
      v1::Connection c;
      absl::Time t0 = absl::Now();
      grpc::Status s = conns->GetConnection(&ctx, req, &c);
      if (s.ok()) lat_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
      absl::SleepFor(absl::Milliseconds(2));
    }
  });

  const uint64_t o0 = octets, seq0 = sb.events().last_seq();
  const auto [e0, m0] = watchers->Counts();
  const server::EventHub::Totals w0 = server::EventHub::totals();
  const uint64_t cpu0 = CpuNs("self", Threads::kOthers), client0 = watchers->CpuNs();
  const uint64_t transfer0 = CpuNs("self", Threads::kTransfer);
  absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(seconds));
  const double dt = absl::ToDoubleSeconds(absl::Now() - t0);
  const uint64_t o1 = octets, seq1 = sb.events().last_seq();
  const auto [e1, m1] = watchers->Counts();
  const server::EventHub::Totals w1 = server::EventHub::totals();
  const uint64_t cpu1 = CpuNs("self", Threads::kOthers), client1 = watchers->CpuNs();
  const uint64_t transfer1 = CpuNs("self", Threads::kTransfer);
  probing = false;
  prober.join();

  sb.SetLocalApp(nullptr);
  if (sink) sink->Stop();
  watchers.reset();
  {
    grpc::ClientContext ctx;
    v1::DeleteSandboxRequest req;
    req.set_name(name);
    v1::DeleteSandboxResponse resp;
    sandboxes->DeleteSandbox(&ctx, req, &resp);
  }

  row.gbps = (o1 - o0) * 8 / dt / 1e9;
  row.produced_per_s = (seq1 - seq0) / dt;
  row.delivered_per_s = (e1 - e0) / dt;
  const double due = static_cast<double>(seq1 - seq0) * subs;
  row.missed_share = due > 0 ? (m1 - m0) / due : 0;
  row.responses_per_s = (w1.responses - w0.responses) / dt;
  row.fanout_cpu = double(cpu1 - cpu0) / 1e9 / dt;
  row.client_cpu = double(client1 - client0) / 1e9 / dt;
  row.transfer_cpu = double(transfer1 - transfer0) / 1e9 / dt;
  row.bytes_per_event = w1.events > w0.events ? double(w1.bytes - w0.bytes) / double(w1.events - w0.events) : 0;
  std::sort(lat_us.begin(), lat_us.end());
  if (!lat_us.empty()) {
    row.p50_us = lat_us[lat_us.size() / 2];
    row.p99_us = lat_us[std::min(lat_us.size() - 1, lat_us.size() * 99 / 100)];
  }
  return row;
}

}  // namespace
}  // namespace tcplab::bench

int main(int argc, char** argv) {
  double seconds = 2;
  std::vector<int> rows = {tcplab::bench::kSpinRow, 1, 10, 100};
  bool tun = geteuid() == 0;
  bool in_process = false;
  bool pin = true;
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--watch_child=", 0) == 0) return tcplab::bench::WatchChild(a.substr(14));
    if (a == "--spin_child") return tcplab::bench::SpinChild();
    if (a.rfind("--rounds=", 0) == 0 && absl::SimpleAtoi(a.substr(9), &rounds) && rounds > 0) continue;
    if (a == "--no_pin") {
      pin = false;
      continue;
    }
    if (a == "--parse") {
      tcplab::bench::g_parse = true;
      continue;
    }
    if (a == "--in_process") {
      in_process = true;
      continue;
    }
    if (a.rfind("--seconds=", 0) == 0 && absl::SimpleAtod(a.substr(10), &seconds) && seconds > 0) continue;
    if (a.rfind("--subscribers=", 0) == 0) {
      rows.clear();
      for (absl::string_view p : absl::StrSplit(a.substr(14), ',')) {
        int n = tcplab::bench::kSpinRow;
        if (p != "spin" && (!absl::SimpleAtoi(p, &n) || n < 0)) {
          std::fprintf(stderr, "fanout_bench: bad --subscribers\n");
          return 2;
        }
        rows.push_back(n);
      }
      continue;
    }
    if (a == "--backend=tun" || a == "--backend=virtual") {
      tun = a == "--backend=tun";
      continue;
    }
    std::fprintf(stderr, "usage: fanout_bench [--seconds=2] [--subscribers=spin,1,10,100] [--backend=tun|virtual] [--rounds=5] [--parse] [--in_process] [--no_pin]\n");
    return 2;
  }
  tcplab::bench::SetPinning(pin);
  // As tcplabd does: the server's threads below the sandboxes' reactors.
  tcplab::server::LowerServerPriority();
  tcplab::server::ServerConfig cfg;
  cfg.listen = {"127.0.0.1:0"};
  cfg.defaults.backend = tcplab::sandbox::Backend::kVirtual;
  auto srv = tcplab::server::Server::Start(cfg);
  if (!srv.ok()) {
    std::fprintf(stderr, "fanout_bench: %s\n", std::string(srv.status().message()).c_str());
    return 1;
  }
  if (tun) tcplab::sandbox::RemoveLeftovers().IgnoreError();
  std::printf("backend %s, %g s per row\n", tun ? "tun (engine -> kernel)" : "virtual (engine -> engine)", seconds);
  std::printf("%-11s %10s %8s %14s %16s %14s %8s %12s %12s %12s %8s %11s %10s %10s %12s\n", "subscribers", "Gbit/s", "ratio",
              "events/s made", "events/s deliv.", "per subscriber", "missed", "GetConn p50", "GetConn p99",
              "responses/s", "B/event", "fan-out CPU", "ns/deliv.", "client CPU", "transfer CPU");
  // Each row with subscribers follows a row without, and its ratio is to that one: the
  // machine's speed drifts by more than the effect measured, so a single baseline misleads.
  std::map<int, std::vector<double>> ratios;
  for (int round = 0; round < rounds; ++round) {
    for (int n : rows) {
      if (n == 0) continue;
      tcplab::bench::Row base = tcplab::bench::RunRow(**srv, 0, seconds, tun, in_process);
      tcplab::bench::Row r = tcplab::bench::RunRow(**srv, n, seconds, tun, in_process);
      ratios[n].push_back(base.gbps > 0 ? r.gbps / base.gbps : 0);
      for (const tcplab::bench::Row& x : {base, r}) {
        const std::string label = x.subscribers == tcplab::bench::kSpinRow ? "spin" : std::to_string(x.subscribers);
        std::printf("%-11s %10.2f %8.2f %14.0f %16.0f %14.0f %7.1f%% %10.0fus %10.0fus %12.0f %8.0f %10.0f%% %10.0f %9.0f%% %11.0f%%\n",
                    label.c_str(), x.gbps, base.gbps > 0 ? x.gbps / base.gbps : 0, x.produced_per_s,
                    x.delivered_per_s, x.subscribers > 0 ? x.delivered_per_s / x.subscribers : 0.0,
                    100 * x.missed_share, x.p50_us, x.p99_us, x.responses_per_s, x.bytes_per_event,
                    100 * x.fanout_cpu, x.delivered_per_s > 0 ? x.fanout_cpu * 1e9 / x.delivered_per_s : 0.0,
                    100 * x.client_cpu, 100 * x.transfer_cpu);
      }
      std::fflush(stdout);
    }
  }
  std::printf("transfer ratio, median [min-max] of %d rounds (each against the row before it):", rounds);
  for (auto& [n, v] : ratios) {
    std::sort(v.begin(), v.end());
    std::printf("  %s: %.2f [%.2f-%.2f]", n == tcplab::bench::kSpinRow ? "spin" : std::to_string(n).c_str(),
                v[v.size() / 2], v.front(), v.back());
  }
  std::printf("\n");
  (*srv)->Shutdown();
  return 0;
}
