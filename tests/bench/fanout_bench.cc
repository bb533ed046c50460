// Event fan-out under load (issue 4's benchmark): a bulk transfer inside a sandbox while 0, 1,
// 10 and 100 subscribers watch its events over gRPC, each on its own channel, reading and
// parsing every response as a client would. Per row: the transfer's throughput and its ratio
// to the row with no subscriber (measured in the same run), events produced and delivered
// per second, events subscribers missed (Gap events), and the latency of GetConnection
// calls made meanwhile (p50/p99).
//
// The transfer is the lab's datapath: the engine sending to the Linux kernel through the
// sandbox's TUN (--backend=tun, the default as root), driven by a local application on the
// sandbox's reactor (Sandbox::SetLocalApp) and read by a kernel socket in the namespace. With
// --backend=virtual it is engine to engine inside one reactor, an extreme: ~3M events/s,
// more than any subscriber parses on this machine. Either way the two cores are shared by
// everything: the datapath, gRPC, the event hub and the subscribers (in this process).
//
//   fanout_bench [--seconds=3] [--subscribers=0,1,10,100] [--backend=tun|virtual]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "engine/sandbox/netns.h"
#include "engine/sandbox/reactor.h"
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

std::shared_ptr<grpc::Channel> NewChannel(const std::string& addr) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per subscriber
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}

struct Watcher {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::SandboxService::Stub> stub;
  grpc::ClientContext ctx;
  std::atomic<uint64_t> events{0}, missed{0};
  std::thread thread;
};

struct Row {
  int subscribers = 0;
  double gbps = 0;
  double produced_per_s = 0;
  double delivered_per_s = 0;  // all subscribers together
  double missed_share = 0;     // of what subscribers should have seen
  double p50_us = 0, p99_us = 0;
};

Row RunRow(Server& srv, int subs, double seconds, bool tun) {
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

  std::vector<std::unique_ptr<Watcher>> watchers;
  for (int i = 0; i < subs; ++i) {
    auto w = std::make_unique<Watcher>();
    w->channel = NewChannel(addr);
    w->stub = v1::SandboxService::NewStub(w->channel);
    Watcher* wp = w.get();
    w->thread = std::thread([wp, name] {
      // Subscribers stand in for clients on other machines: nice 19 keeps their parsing off
      // the CPU the server needs (the gRPC threads they use are the channel's own).
      (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
      v1::WatchEventsRequest req;
      req.set_sandbox(name);
      auto r = wp->stub->WatchEvents(&wp->ctx, req);
      v1::WatchEventsResponse resp;
      while (r->Read(&resp)) {
        uint64_t n = 0;
        for (const v1::Event& e : resp.events()) {
          if (e.has_gap()) {
            wp->missed += e.gap().missed();
          } else {
            ++n;
          }
        }
        wp->events += n;
      }
      r->Finish();
    });
    watchers.push_back(std::move(w));
  }

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
    sb.SetLocalApp(SourceApp(kPort, &client));
  } else {
    sb.SetLocalApp(Transfer(&octets, &client));
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
  uint64_t e0 = 0, m0 = 0;
  for (auto& w : watchers) e0 += w->events, m0 += w->missed;
  absl::Time t0 = absl::Now();
  absl::SleepFor(absl::Seconds(seconds));
  const double dt = absl::ToDoubleSeconds(absl::Now() - t0);
  const uint64_t o1 = octets, seq1 = sb.events().last_seq();
  uint64_t e1 = 0, m1 = 0;
  for (auto& w : watchers) e1 += w->events, m1 += w->missed;
  probing = false;
  prober.join();

  sb.SetLocalApp(nullptr);
  if (sink) sink->Stop();
  for (auto& w : watchers) w->ctx.TryCancel();
  for (auto& w : watchers) w->thread.join();
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
  double seconds = 3;
  std::vector<int> rows = {0, 1, 10, 100};
  bool tun = geteuid() == 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--seconds=", 0) == 0 && absl::SimpleAtod(a.substr(10), &seconds) && seconds > 0) continue;
    if (a.rfind("--subscribers=", 0) == 0) {
      rows.clear();
      for (absl::string_view p : absl::StrSplit(a.substr(14), ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(p, &n) || n < 0) {
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
    std::fprintf(stderr, "usage: fanout_bench [--seconds=3] [--subscribers=0,1,10,100] [--backend=tun|virtual]\n");
    return 2;
  }
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
  std::printf("%-11s %10s %8s %14s %16s %14s %8s %12s %12s\n", "subscribers", "Gbit/s", "ratio", "events/s made",
              "events/s deliv.", "per subscriber", "missed", "GetConn p50", "GetConn p99");
  double base = 0;
  for (int n : rows) {
    tcplab::bench::Row r = tcplab::bench::RunRow(**srv, n, seconds, tun);
    if (n == 0) base = r.gbps;
    std::printf("%-11d %10.2f %8s %14.0f %16.0f %14.0f %7.1f%% %10.0fus %10.0fus\n", n, r.gbps,
                base > 0 ? absl::StrFormat("%.2f", r.gbps / base).c_str() : "-", r.produced_per_s, r.delivered_per_s,
                n ? r.delivered_per_s / n : 0.0, 100 * r.missed_share, r.p50_us, r.p99_us);
    std::fflush(stdout);
  }
  (*srv)->Shutdown();
  return 0;
}
