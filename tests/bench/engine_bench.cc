// Engine benchmark (issue: the engine). One core, no network:
//   1. baseline: the virtual link alone forwarding 1500-octet datagrams (the floor any stack
//      on this link pays: one copy per datagram);
//   2. bulk transfer between two engine stacks over that link: segments/s (data + ACKs, each
//      serialized, checksummed, parsed and processed) and MB/s of payload;
//   3. memory per idle established connection, beside its (lazily allocated) buffers.
// Prints one table with ratios against the baseline measured in the same run.
//   engine_bench [--mib=N]   (default 256 MiB of payload)
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/link/stack_pair.h"

namespace {

using namespace tcplab;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Baseline: datagrams through the link with nothing on either end but a counter.
double LinkDatagramsPerSecond(size_t count) {
  link::VirtualLink link;
  std::vector<uint8_t> datagram(1500, 0xab);
  size_t delivered = 0;
  Instant now{};
  auto start = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    link.Send(link::Side::kA, datagram, now);
    link.Poll(now, [&](link::Side, std::span<const uint8_t> d, Instant) { delivered += d.size() > 0; });
  }
  double s = Seconds(Clock::now() - start);
  if (delivered != count) std::fprintf(stderr, "baseline lost datagrams\n");
  return count / s;
}

struct BulkResult {
  double seconds;
  uint64_t segments;  // every segment both stacks sent
  uint64_t payload;
};

BulkResult Bulk(size_t bytes, bool libtins) {
  stack::StackConfig cfg;
  cfg.libtins_codec = libtins;
  cfg.tcp.send_buffer = cfg.tcp.recv_buffer = 1 << 20;
  cfg.tcp.min_rto = std::chrono::milliseconds(200);
  link::StackPair pair(cfg, cfg);
  auto& a = pair.a();
  auto& b = pair.b();
  auto l = b.Listen({link::StackPair::kAddrB, 5001}, pair.now());
  auto c = a.Connect({link::StackPair::kAddrA, 0}, {link::StackPair::kAddrB, 5001}, pair.now());
  absl::StatusOr<tcp::ConnId> s = absl::UnavailableError("");
  pair.RunUntil([&] { return (s = b.Accept(*l)).ok(); }, std::chrono::seconds(5));
  std::vector<uint8_t> chunk(64 * 1024, 'x'), sink(256 * 1024);
  size_t sent = 0, received = 0;
  uint64_t segs_before = a.counters().datagrams_out + b.counters().datagrams_out;
  auto start = Clock::now();
  while (received < bytes) {
    if (sent < bytes) {
      auto n = a.Send(*c, std::span(chunk).first(std::min(chunk.size(), bytes - sent)), pair.now());
      if (n.ok()) sent += *n;
    }
    pair.Settle();
    for (;;) {
      auto n = b.Recv(*s, sink, pair.now());
      if (!n.ok() || *n == 0) break;
      received += *n;
    }
    pair.Settle();
    if (pair.link().queued(link::Side::kA) == 0 && a.Find(*c)->send_space() == 0) {
      pair.Advance(std::chrono::milliseconds(1));  // let delayed ACKs and timers run
    }
  }
  double secs = Seconds(Clock::now() - start);
  uint64_t segs = a.counters().datagrams_out + b.counters().datagrams_out - segs_before;
  return {secs, segs, received};
}

// Bytes of heap per idle established connection (one TCB), measured with mallinfo2 across
// `n` connections (2n TCBs: both ends are engine stacks).
double BytesPerIdleConnection(int n, size_t* buffers_each) {
  stack::StackConfig cfg;
  cfg.ephemeral_first = 1024;
  cfg.ephemeral_last = 65535;
  link::StackPair pair(cfg, cfg);
  auto l = pair.b().Listen({link::StackPair::kAddrB, 80}, pair.now(), n + 1);
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < n; ++i) {
    (void)pair.a().Connect({link::StackPair::kAddrA, 0}, {link::StackPair::kAddrB, 80}, pair.now());
  }
  pair.Settle();
  int accepted = 0;
  while (pair.b().Accept(*l).ok()) ++accepted;
  struct mallinfo2 after = mallinfo2();
  if (accepted != n) std::fprintf(stderr, "only %d of %d connections established\n", accepted, n);
  *buffers_each = cfg.tcp.send_buffer + cfg.tcp.recv_buffer;
  return static_cast<double>(after.uordblks - before.uordblks) / (2.0 * n);
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 256;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--mib=", 6) == 0) mib = std::stoul(argv[i] + 6);
  }
  double link_rate = LinkDatagramsPerSecond(2'000'000);
  BulkResult bulk = Bulk(mib << 20, /*libtins=*/false);
  BulkResult tins = Bulk((mib / 4) << 20, /*libtins=*/true);
  double tins_rate = tins.segments / tins.seconds;
  double seg_rate = bulk.segments / bulk.seconds;
  double mbps = bulk.payload / bulk.seconds / 1e6;
  size_t buffers = 0;
  double per_conn = BytesPerIdleConnection(10000, &buffers);

  std::printf("engine benchmark (one core, virtual link, virtual time)\n");
  std::printf("%-52s %14s %10s\n", "measure", "value", "ratio");
  std::printf("%-52s %12.0f/s %10s\n", "baseline: link forwarding, 1500-octet datagrams", link_rate, "1.00");
  std::printf("%-52s %12.0f/s %10.2f\n", "engine<->engine bulk: segments (data+ACK)", seg_rate, seg_rate / link_rate);
  std::printf("%-52s %10.0f MB/s %10s\n", "engine<->engine bulk: payload", mbps, "");
  std::printf("%-52s %12.0f/s %10.2f\n", "same with the libtins reference codec: segments", tins_rate, tins_rate / link_rate);
  std::printf("%-52s %12.0f ns %10s\n", "engine cost per segment (both ends)", 1e9 / seg_rate, "");
  std::printf("%-52s %12.0f B  %10s\n", "heap per idle established connection", per_conn, "");
  std::printf("%-52s %12zu B  %10s\n", "  (buffers, allocated on first use, not included)", buffers, "");
  return 0;
}
