// TUN benchmark (issue: the engine behind a TUN, against the kernel and against lwIP). Needs
// root: every measurement runs in network namespaces this program creates (198.18.0.0/24,
// DESIGN.md) and removes again. At MTU 1500 and MTU 9000, side by side:
//   1. the forwarder ceiling: kernel->kernel TCP through a minimal user-space forwarder
//      between two TUNs (tun/forwarder.h), one read and one write per datagram: the TUN
//      crossings every stack here pays, with no user-space TCP at all;
//   2. lwIP (Debian's liblwip, tun/lwip_peer.h) behind the same kind of TUN: bulk both ways,
//      and connect+close handshakes from the kernel;
//   3. the engine behind the Sandbox's TUN, its side a local app on the reactor thread
//      (Sandbox::SetLocalApp): bulk both ways, and handshakes engine->kernel; beside them
//      kernel->kernel handshakes through the forwarder (and, for reference, over loopback).
// Throughput is in Gbit/s of TCP payload (what the receiving application reads), as a ratio
// to the forwarder ceiling at the same MTU; handshakes per second as a ratio to
// kernel->kernel through the forwarder. Every figure is measured in this run.
//
// The "ceiling" is not an upper bound on a small machine: the forwarder's write(2) runs the
// receiving kernel's TCP input and its ACK write runs the sending kernel's TCP output, so
// its one thread carries the TCP work of both kernels, where a stack behind a TUN shares it
// with one kernel. Ratios above 1 are therefore possible (and usual on 2 cores).
//
// Handshakes are one client doing connect() then close() in a loop, so the client holds
// every TIME-WAIT. Linux in a new namespace reuses TIME-WAIT ports only towards loopback
// (tcp_tw_reuse=2), the engine not at all, so the clients spread their connections over
// 16 server ports: 16 x 28k 4-tuples outlast any run, and every stack is treated alike.
//
// Threads are pinned (bench::SetPinning): the user-space datapath on CPU 0, the kernel-side
// application threads on CPU 1. Each cell is the median of 0.5 s slices over `--rounds`
// rounds (rows interleaved), each round `--seconds` long after a `--warmup`.
//
//   tun_bench [--seconds=3] [--warmup=0.5] [--rounds=2] [--mtu=1500,9000] [--only=SUBSTRING]
//             [--verbose] [--nopin]
// (--only runs just the rows whose name contains SUBSTRING, e.g. for a profiler; --verbose
// prints every slice to stderr; --nopin leaves thread placement to the scheduler.)
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/sandbox/netns.h"
#include "engine/sandbox/sandbox.h"
#include "tests/bench/tun/forwarder.h"
#include "tests/bench/tun/kernel_load.h"
#include "tests/bench/tun/source_app.h"
#include "tests/bench/tun/lwip_peer.h"

namespace {

using namespace tcplab;
using bench::KernelLoad;
using bench::SourceApp;
using bench::LwipPeer;
using bench::TunForwarder;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kBulkPort = 5001;
constexpr uint16_t kFirstHandshakePort = 6000;
constexpr int kHandshakePorts = 16;
constexpr wire::Ipv4 kKernelAddr = wire::Ipv4::Of(198, 18, 0, 1);  // the sandbox's kernel side

struct Options {
  double seconds = 3.0;
  double warmup = 0.5;
  int rounds = 2;  // each cell is measured this often (rows interleaved)
  std::vector<int> mtus = {1500, 9000};
  std::string only;  // run only the rows whose name contains this (profiling)
  bool verbose = false;  // print every slice
  bool pin = true;       // see bench::SetPinning
};

struct Measured {
  bool ran = false;
  std::vector<double> slices;  // rates per second (octets, or handshakes), one per slice
  double rate = 0;             // the median slice (see main)
  uint64_t failures = 0;
  std::string error;  // set if the setup failed
};

void Sleep(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

// Lets the load run for the warm-up, then returns what `meter` gained per second in each
// kSlice of the measured interval.
constexpr double kSlice = 0.5;
std::vector<double> RateOf(const std::atomic<uint64_t>& meter, const Options& o) {
  Sleep(o.warmup);
  std::vector<double> rates;
  uint64_t c0 = meter;
  auto t0 = Clock::now();
  for (double done = 0; done < o.seconds - 1e-9; done += kSlice) {
    Sleep(std::min(kSlice, o.seconds - done));
    uint64_t c1 = meter;
    auto t1 = Clock::now();
    rates.push_back(static_cast<double>(c1 - c0) / std::chrono::duration<double>(t1 - t0).count());
    c0 = c1;
    t0 = t1;
  }
  return rates;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

Measured Failed(const absl::Status& s) {
  Measured m;
  m.error = s.ToString();
  return m;
}

// --- 1. the forwarder ceiling, and kernel->kernel handshakes through it ---------------------

Measured ForwarderBulk(int mtu, const Options& o) {
  auto fwd = TunForwarder::Create(mtu);
  if (!fwd.ok()) return Failed(fwd.status());
  std::atomic<uint64_t> octets{0};
  KernelLoad a((*fwd)->netns_a()), b((*fwd)->netns_b());
  if (auto s = b.BulkReceive({TunForwarder::kAddrB, kBulkPort}, &octets); !s.ok()) return Failed(s);
  a.BulkSend({TunForwarder::kAddrB, kBulkPort});
  Measured m;
  m.slices = RateOf(octets, o);
  a.Stop();
  b.Stop();
  return m;
}

Measured ForwarderHandshakes(int mtu, const Options& o) {
  auto fwd = TunForwarder::Create(mtu);
  if (!fwd.ok()) return Failed(fwd.status());
  std::atomic<uint64_t> done{0}, failed{0};
  KernelLoad a((*fwd)->netns_a()), b((*fwd)->netns_b());
  if (auto s = b.HandshakeServer(TunForwarder::kAddrB, kFirstHandshakePort, kHandshakePorts); !s.ok()) {
    return Failed(s);
  }
  a.HandshakeClient(TunForwarder::kAddrB, kFirstHandshakePort, kHandshakePorts, &done, &failed);
  Measured m;
  m.slices = RateOf(done, o);
  a.Stop();
  b.Stop();
  m.failures = failed;
  return m;
}

// For reference: the same client and server in one namespace over its loopback, no TUN.
Measured LoopbackHandshakes(int mtu, const Options& o) {
  auto fwd = TunForwarder::Create(mtu);  // only for namespace B, whose `lo` is up
  if (!fwd.ok()) return Failed(fwd.status());
  std::atomic<uint64_t> done{0}, failed{0};
  KernelLoad b((*fwd)->netns_b());
  const wire::Ipv4 lo = wire::Ipv4::Of(127, 0, 0, 1);
  if (auto s = b.HandshakeServer(lo, kFirstHandshakePort, kHandshakePorts); !s.ok()) return Failed(s);
  b.HandshakeClient(lo, kFirstHandshakePort, kHandshakePorts, &done, &failed);
  Measured m;
  m.slices = RateOf(done, o);
  b.Stop();
  m.failures = failed;
  return m;
}

// --- 2. lwIP ------------------------------------------------------------------------------

Measured LwipFromKernel(int mtu, const Options& o) {
  auto peer = LwipPeer::Create(mtu);
  if (!peer.ok()) return Failed(peer.status());
  std::atomic<uint64_t> octets{0};
  (*peer)->Start({LwipPeer::App::Kind::kSink, kBulkPort, 1, &octets});
  KernelLoad k((*peer)->netns());
  k.BulkSend({LwipPeer::kLwipAddr, kBulkPort});
  Measured m;
  m.slices = RateOf(octets, o);
  k.Stop();
  return m;
}

Measured LwipToKernel(int mtu, const Options& o) {
  auto peer = LwipPeer::Create(mtu);
  if (!peer.ok()) return Failed(peer.status());
  std::atomic<uint64_t> octets{0};
  KernelLoad k((*peer)->netns());
  if (auto s = k.BulkReceive({LwipPeer::kKernelAddr, kBulkPort}, &octets); !s.ok()) return Failed(s);
  (*peer)->Start({LwipPeer::App::Kind::kSource, kBulkPort, 1, nullptr});
  Measured m;
  m.slices = RateOf(octets, o);
  peer->reset();  // RST to the kernel's receiver, which then stops at once
  k.Stop();
  return m;
}

Measured LwipHandshakes(int mtu, const Options& o) {
  auto peer = LwipPeer::Create(mtu);
  if (!peer.ok()) return Failed(peer.status());
  std::atomic<uint64_t> done{0}, failed{0};
  (*peer)->Start({LwipPeer::App::Kind::kAcceptClose, kFirstHandshakePort, kHandshakePorts, nullptr});
  KernelLoad k((*peer)->netns());
  k.HandshakeClient(LwipPeer::kLwipAddr, kFirstHandshakePort, kHandshakePorts, &done, &failed);
  Measured m;
  m.slices = RateOf(done, o);
  k.Stop();
  m.failures = failed;
  return m;
}

// --- 3. the engine --------------------------------------------------------------------------

// `vnet_hdr`: the TUN with IFF_VNET_HDR and TSO4 offload (TunConfig.vnet_hdr), so the kernel
// may hand the engine super-segments of up to 64 KiB, and the engine sends them too
// (TcpConfig::tso_max_bytes), which the TUN writes as GSO.
absl::StatusOr<std::unique_ptr<sandbox::Sandbox>> EngineSandbox(int mtu, bool vnet_hdr = false) {
  sandbox::SandboxConfig cfg;
  cfg.name = "bench";
  cfg.tun.mtu = mtu;
  cfg.tun.vnet_hdr = vnet_hdr;
  if (vnet_hdr) cfg.engine.tcp.tso_max_bytes = 65536;
  cfg.engine.tcp.mss = static_cast<uint16_t>(mtu - 40);  // IPv4 and TCP headers, no options
  // No packet capture: a lab's recording, which lwIP and the forwarder do not pay for either
  // (until its 64 MiB fill, it cost the handshake row about 7% of the reactor thread). The
  // event log, which the sandbox always keeps, stays on.
  cfg.pcap_max_bytes = 0;
  return sandbox::Sandbox::Create(cfg);
}

std::string NetnsPath(const sandbox::Sandbox& sb) {
  return std::string(sandbox::kNetnsRunDir) + "/" + sb.netns_name();
}

// Local apps (Sandbox::SetLocalApp): each runs on the reactor thread and keeps its state in a
// shared_ptr, since the sandbox holds a copyable std::function.

// Listens on `port`, accepts every connection and reads everything, as a server would.
sandbox::Sandbox::LocalApp SinkApp(uint16_t port, std::atomic<uint64_t>* octets) {
  struct State {
    tcp::ConnId listener = 0;
    std::vector<tcp::ConnId> conns;
    std::vector<uint8_t> buf = std::vector<uint8_t>(256 * 1024);
  };
  auto st = std::make_shared<State>();
  return [st, port, octets](stack::Stack& e, Instant now) {
    bool did = false;
    if (st->listener == 0) {
      auto l = e.Listen({sandbox::Sandbox::kEngineAddr, port}, now);
      if (!l.ok()) return false;
      st->listener = *l;
    }
    for (absl::StatusOr<tcp::ConnId> id; (id = e.Accept(st->listener)).ok();) st->conns.push_back(*id);
    for (size_t i = 0; i < st->conns.size();) {
      tcp::ConnId id = st->conns[i];
      absl::StatusOr<size_t> n;
      while ((n = e.Recv(id, st->buf, now)).ok() && *n > 0) {
        *octets += *n;
        did = true;  // reading opens the window: a window update may be due
      }
      const tcp::Tcb* tcb = e.Find(id);
      if (!n.ok() || !tcb || tcb->AtEof()) {
        (void)e.Close(id, now);
        st->conns[i] = st->conns.back();
        st->conns.pop_back();
        did = true;
        continue;
      }
      ++i;
    }
    return did;
  };
}

// connect, then close as soon as ESTABLISHED, then the next connect: the engine's side of a
// kernel client's connect()+close() loop, over the kernel's ports in turn.
sandbox::Sandbox::LocalApp ConnectCloseApp(std::atomic<uint64_t>* done, std::atomic<uint64_t>* failed) {
  struct State {
    tcp::ConnId cur = 0;
    int next_port = 0;
  };
  auto st = std::make_shared<State>();
  return [st, done, failed](stack::Stack& e, Instant now) {
    if (st->cur != 0) {
      const tcp::Tcb* tcb = e.Find(st->cur);
      tcp::TcpState state = tcb ? tcb->state() : tcp::TcpState::kClosed;
      if (state == tcp::TcpState::kSynSent) return false;  // still waiting for the SYN+ACK
      if (state == tcp::TcpState::kEstablished) {
        *done += 1;
      } else {
        *failed += 1;
      }
      (void)e.Close(st->cur, now);
    }
    uint16_t port = static_cast<uint16_t>(kFirstHandshakePort + st->next_port);
    st->next_port = (st->next_port + 1) % kHandshakePorts;
    auto id = e.Connect({sandbox::Sandbox::kEngineAddr, 0}, {kKernelAddr, port}, now);
    if (!id.ok()) {
      *failed += 1;
      st->cur = 0;
      return false;  // out of ports: wait for the next event rather than spin
    }
    st->cur = *id;
    return true;
  };
}

// Installs `app` on the sandbox, with the reactor thread moved to the datapath CPU first.
void RunLocalApp(sandbox::Sandbox& sb, sandbox::Sandbox::LocalApp app) {
  sb.SetLocalApp([](stack::Stack&, Instant) {
    bench::PinToDatapathCpu();
    return false;
  });
  sb.SetLocalApp(std::move(app));
}

Measured EngineFromKernel(int mtu, const Options& o, bool vnet_hdr) {
  auto sb = EngineSandbox(mtu, vnet_hdr);
  if (!sb.ok()) return Failed(sb.status());
  std::atomic<uint64_t> octets{0};
  RunLocalApp(**sb, SinkApp(kBulkPort, &octets));
  KernelLoad k(NetnsPath(**sb));
  k.BulkSend({sandbox::Sandbox::kEngineAddr, kBulkPort});
  Measured m;
  m.slices = RateOf(octets, o);
  k.Stop();
  (*sb)->SetLocalApp(nullptr);
  return m;
}

Measured EngineToKernel(int mtu, const Options& o, bool vnet_hdr) {
  auto sb = EngineSandbox(mtu, vnet_hdr);
  if (!sb.ok()) return Failed(sb.status());
  std::atomic<uint64_t> octets{0};
  KernelLoad k(NetnsPath(**sb));
  if (auto s = k.BulkReceive({kKernelAddr, kBulkPort}, &octets); !s.ok()) return Failed(s);
  RunLocalApp(**sb, SourceApp(kBulkPort));
  Measured m;
  m.slices = RateOf(octets, o);
  (*sb)->SetLocalApp(nullptr);
  sb->reset();  // the namespace goes, and with it the kernel's connection
  k.Stop();
  return m;
}

Measured EngineFromKernel(int mtu, const Options& o) { return EngineFromKernel(mtu, o, false); }
Measured EngineToKernel(int mtu, const Options& o) { return EngineToKernel(mtu, o, false); }
Measured EngineFromKernelVnet(int mtu, const Options& o) { return EngineFromKernel(mtu, o, true); }
Measured EngineToKernelVnet(int mtu, const Options& o) { return EngineToKernel(mtu, o, true); }

Measured EngineHandshakes(int mtu, const Options& o) {
  auto sb = EngineSandbox(mtu);
  if (!sb.ok()) return Failed(sb.status());
  std::atomic<uint64_t> done{0}, failed{0};
  KernelLoad k(NetnsPath(**sb));
  if (auto s = k.HandshakeServer(kKernelAddr, kFirstHandshakePort, kHandshakePorts); !s.ok()) return Failed(s);
  RunLocalApp(**sb, ConnectCloseApp(&done, &failed));
  Measured m;
  m.slices = RateOf(done, o);
  (*sb)->SetLocalApp(nullptr);
  k.Stop();
  m.failures = failed;
  return m;
}

// --- the table --------------------------------------------------------------------------------

struct Row {
  const char* name;
  Measured (*run)(int mtu, const Options&);
  bool handshakes;  // else throughput
  int baseline;     // index of the row this one is a ratio to
};

std::string Cell(const Measured& m, bool handshakes, double base) {
  char buf[64];
  if (!m.ran) return "-";
  if (!m.error.empty()) return "failed";
  if (handshakes) {
    std::snprintf(buf, sizeof buf, "%9.0f/s %6.2f", m.rate, base > 0 ? m.rate / base : 0);
  } else {
    std::snprintf(buf, sizeof buf, "%6.2f Gbit/s %6.2f", m.rate * 8 / 1e9, base > 0 ? m.rate / base : 0);
  }
  return buf;
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--seconds=")) {
      if (!absl::SimpleAtod(a, &o->seconds) || o->seconds <= 0 || o->seconds > 60) return false;
    } else if (absl::ConsumePrefix(&a, "--warmup=")) {
      if (!absl::SimpleAtod(a, &o->warmup) || o->warmup < 0 || o->warmup > 10) return false;
    } else if (absl::ConsumePrefix(&a, "--rounds=")) {
      if (!absl::SimpleAtoi(a, &o->rounds) || o->rounds < 1 || o->rounds > 20) return false;
    } else if (a == "--nopin") {
      o->pin = false;
    } else if (a == "--verbose") {
      o->verbose = true;
    } else if (absl::ConsumePrefix(&a, "--only=")) {
      o->only = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--mtu=")) {
      o->mtus.clear();
      for (absl::string_view m : absl::StrSplit(a, ',')) {
        int v;
        if (!absl::SimpleAtoi(m, &v) || v < 576 || v > 65535) return false;
        o->mtus.push_back(v);
      }
    } else {
      return false;
    }
  }
  return !o->mtus.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: tun_bench [--seconds=3] [--warmup=0.5] [--rounds=2] [--mtu=1500,9000]\n"
                 "                 [--only=SUBSTRING] [--verbose] [--nopin]\n");
    return 2;
  }
  if (geteuid() != 0) {
    std::printf("tun_bench: skipped: needs root (network namespaces and TUN devices)\n");
    return 0;
  }
  (void)sandbox::RemoveLeftovers();  // namespaces a killed earlier run left behind
  bench::SetPinning(o.pin);

  enum { kFwd, kLwipIn, kLwipOut, kEngIn, kEngOut, kEngInVnet, kEngOutVnet, kHsKernel, kHsLwip, kHsEngine, kHsLoopback };
  const Row rows[] = {
      {"forwarder ceiling: kernel->kernel", ForwarderBulk, false, kFwd},
      {"lwIP:   kernel->lwIP", LwipFromKernel, false, kFwd},
      {"lwIP:   lwIP->kernel", LwipToKernel, false, kFwd},
      {"engine: kernel->engine", EngineFromKernel, false, kFwd},
      {"engine: engine->kernel", EngineToKernel, false, kFwd},
      {"engine: kernel->engine (vnet_hdr)", EngineFromKernelVnet, false, kFwd},
      {"engine: engine->kernel (vnet_hdr)", EngineToKernelVnet, false, kFwd},
      {"handshakes kernel->kernel (forwarder)", ForwarderHandshakes, true, kHsKernel},
      {"handshakes kernel->lwIP", LwipHandshakes, true, kHsKernel},
      {"handshakes engine->kernel", EngineHandshakes, true, kHsKernel},
      {"  reference: kernel->kernel over lo", LoopbackHandshakes, true, kHsKernel},
  };
  constexpr int kRows = sizeof(rows) / sizeof(rows[0]);
  std::vector<std::vector<Measured>> results(kRows, std::vector<Measured>(o.mtus.size()));
  auto start = Clock::now();
  // Rounds outermost, so that a burst of load from elsewhere on the machine hits a slice or
  // two of every row rather than a whole row. A cell is the median of its 0.5 s slices over
  // all rounds: robust against such bursts, where a mean is not.
  for (int round = 0; round < o.rounds; ++round) {
    for (size_t c = 0; c < o.mtus.size(); ++c) {
      for (int r = 0; r < kRows; ++r) {
        if (!o.only.empty() && std::string(rows[r].name).find(o.only) == std::string::npos) continue;
        Measured m = rows[r].run(o.mtus[c], o);
        Measured& cell = results[r][c];
        cell.ran = true;
        cell.failures += m.failures;
        cell.slices.insert(cell.slices.end(), m.slices.begin(), m.slices.end());
        if (!m.error.empty()) {
          std::fprintf(stderr, "tun_bench: %s at MTU %d: %s\n", rows[r].name, o.mtus[c], m.error.c_str());
          cell.error = m.error;
        }
        cell.rate = Median(cell.slices);
        if (o.verbose) {
          std::fprintf(stderr, "%s, MTU %d, round %d:", rows[r].name, o.mtus[c], round + 1);
          for (double v : m.slices) std::fprintf(stderr, " %.4g", rows[r].handshakes ? v : v * 8 / 1e9);
          std::fprintf(stderr, "\n");
        }
      }
    }
  }
  double total = std::chrono::duration<double>(Clock::now() - start).count();

  std::printf("TUN benchmark: user-space TCP behind a TUN, the Linux kernel as the peer\n");
  std::printf("(%u cores; each cell: %d rounds of %.1f s after %.1f s warm-up, the median of their"
              " %.1f s slices; %.0f s in all)\n",
              std::thread::hardware_concurrency(), o.rounds, o.seconds, o.warmup, kSlice, total);
  std::printf("%-40s", "measure");
  for (int mtu : o.mtus) std::printf(" | %13s MTU %-5d", "", mtu);
  std::printf("\n%-40s", "");
  for (size_t c = 0; c < o.mtus.size(); ++c) std::printf(" | %16s %6s", "value", "ratio");
  std::printf("\n");
  for (int r = 0; r < kRows; ++r) {
    std::printf("%-40s", rows[r].name);
    for (size_t c = 0; c < o.mtus.size(); ++c) {
      const double base = results[rows[r].baseline][c].rate;
      std::printf(" | %23s", Cell(results[r][c], rows[r].handshakes, base).c_str());
    }
    std::printf("\n");
  }
  std::printf("ratios: throughput to the forwarder ceiling, handshakes to kernel->kernel, same MTU\n");
  std::printf("%-40s", "engine / lwIP");
  for (size_t c = 0; c < o.mtus.size(); ++c) {
    auto ratio = [&](int e, int l) {
      return results[l][c].rate > 0 ? results[e][c].rate / results[l][c].rate : 0.0;
    };
    std::printf(" | from kernel %.2f, to %.2f, hs %.2f", ratio(kEngIn, kLwipIn), ratio(kEngOut, kLwipOut),
                ratio(kHsEngine, kHsLwip));
  }
  std::printf("\n");
  for (int r = 0; r < kRows; ++r) {
    for (size_t c = 0; c < o.mtus.size(); ++c) {
      if (results[r][c].failures > 0) {
        std::printf("note: %s at MTU %d: %llu connects failed\n", rows[r].name, o.mtus[c],
                    static_cast<unsigned long long>(results[r][c].failures));
      }
    }
  }
  return 0;
}
