// tcplab-demo: the TCP life cycle between two engine stacks over the virtual link, printed as
// a ladder diagram. Three-way handshake, data both ways, the four-way close with half-close,
// TIME-WAIT for 2·MSL. Runs in virtual time, so a 60 s TIME-WAIT takes no time at all.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/demo/kernel_demo.h"
#include "engine/link/stack_pair.h"

ABSL_FLAG(std::string, backend, "virtual",
          "virtual: two engine stacks in virtual time; tun: the engine against the Linux kernel "
          "in a network namespace (needs root)");
ABSL_FLAG(absl::Duration, msl, absl::Seconds(30), "maximum segment lifetime (TIME-WAIT = 2*MSL)");
ABSL_FLAG(std::string, request, "GET / HTTP/1.0\r\n\r\n", "what the client sends");
ABSL_FLAG(std::string, response, "HTTP/1.0 200 OK\r\n\r\nhello", "what the server sends back");
ABSL_FLAG(double, loss, 0.0, "probability that the link drops a datagram, each direction");
ABSL_FLAG(uint64_t, seed, 1, "impairment seed");
ABSL_FLAG(absl::Duration, delay, absl::Milliseconds(10), "one-way delay of the link");

namespace {

using namespace tcplab;

class Ladder : public tcp::EventSink {
 public:
  Ladder(const char* name, int column) : name_(name), column_(column) {}

  void OnSegment(Instant now, const tcp::SegmentEvent& ev) override {
    const auto& s = ev.seg;
    if (ev.dir == tcp::Direction::kIn && ev.verdict == tcp::Verdict::kAccepted) return;
    std::string what = absl::StrCat("[", wire::FlagsToString(s.flags), "] seq=",
                                    static_cast<uint32_t>(s.seq - ev.iss));
    if (s.flags & wire::kAck) absl::StrAppend(&what, " ack=", static_cast<uint32_t>(s.ack - ev.irs));
    absl::StrAppend(&what, " win=", s.window, " len=", ev.payload_len);
    if (ev.dir == tcp::Direction::kOut) {
      std::string arrow = column_ == 0 ? absl::StrCat(" ", what, " ---->")
                                       : absl::StrCat("<---- ", what);
      if (ev.verdict == tcp::Verdict::kRetransmitted) absl::StrAppend(&arrow, " (retransmission)");
      Print(now, absl::StrFormat("%*s%s", column_ == 0 ? 0 : 8, "", arrow));
    } else {
      Print(now, absl::StrCat("   ", name_, " got [", wire::FlagsToString(s.flags), "]: ",
                              tcp::ToString(ev.verdict)));
    }
  }
  void OnState(Instant now, const tcp::StateEvent& ev) override {
    Print(now, absl::StrCat(column_ == 0 ? "" : "                                        ", name_,
                            ": ", tcp::ToString(ev.from), " -> ", tcp::ToString(ev.to), "  (",
                            ev.cause, ")"));
  }
  void OnTimer(Instant now, const tcp::TimerEvent& ev) override {
    if (ev.kind == tcp::TimerKind::kDelayedAck) return;
    Print(now, absl::StrCat("   ", name_, " timer ", tcp::ToString(ev.kind), " ",
                            tcp::ToString(ev.action)));
  }

 private:
  void Print(Instant now, const std::string& line) {
    std::printf("%10.3f ms  %s\n", now.time_since_epoch().count() / 1e6, line.c_str());
  }
  const char* name_;
  int column_;
};

std::string Drain(stack::Stack& s, tcp::ConnId id, Instant now) {
  std::string out;
  uint8_t buf[4096];
  for (;;) {
    auto n = s.Recv(id, buf, now);
    if (!n.ok() || *n == 0) break;
    out.append(reinterpret_cast<char*>(buf), *n);
  }
  return out;
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_backend) == "tun") {
    return demo::RunKernelDemo({absl::GetFlag(FLAGS_msl), absl::GetFlag(FLAGS_request),
                                absl::GetFlag(FLAGS_response)});
  }
  if (absl::GetFlag(FLAGS_backend) != "virtual") {
    std::fprintf(stderr, "tcplab-demo: --backend must be virtual or tun, not %s\n",
                 absl::GetFlag(FLAGS_backend).c_str());
    return 2;
  }
  stack::StackConfig cfg;
  cfg.tcp.msl = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_msl));
  cfg.tcp.delayed_ack = false;  // one ACK per segment reads better in a ladder
  stack::StackConfig cfg_b = cfg;
  cfg_b.isn_secret[0] = 1;

  Ladder client("client", 0), server("server", 1);
  link::StackPair pair(cfg, cfg_b, &client, &server);
  link::Impairment imp;
  imp.loss = absl::GetFlag(FLAGS_loss);
  imp.seed = absl::GetFlag(FLAGS_seed);
  imp.delay = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_delay));
  if (auto st = pair.link().SetImpairment(link::Side::kA, imp); !st.ok()) {
    std::fprintf(stderr, "tcplab-demo: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  imp.seed += 1;
  (void)pair.link().SetImpairment(link::Side::kB, imp);

  std::printf("tcplab-demo: client %s, server %s:80, MSL %s\n\n",
              link::StackPair::kAddrA.ToString().c_str(), link::StackPair::kAddrB.ToString().c_str(),
              absl::FormatDuration(absl::GetFlag(FLAGS_msl)).c_str());
  auto& a = pair.a();
  auto& b = pair.b();
  auto listener = b.Listen({link::StackPair::kAddrB, 80}, pair.now());
  auto conn = a.Connect({link::StackPair::kAddrA, 0}, {link::StackPair::kAddrB, 80}, pair.now());
  if (!listener.ok() || !conn.ok()) {
    std::fprintf(stderr, "tcplab-demo: setup failed\n");
    return 1;
  }
  absl::StatusOr<tcp::ConnId> accepted = absl::UnavailableError("not yet");
  pair.RunUntil([&] { return (accepted = b.Accept(*listener)).ok(); }, std::chrono::seconds(120));
  if (!accepted.ok()) {
    std::fprintf(stderr, "tcplab-demo: handshake did not complete\n");
    return 1;
  }
  std::printf("\n-- client sends %zu bytes\n", absl::GetFlag(FLAGS_request).size());
  (void)a.Send(*conn, Bytes(absl::GetFlag(FLAGS_request)), pair.now());
  std::string got;
  pair.RunUntil([&] { got += Drain(b, *accepted, pair.now()); return got.size() >= absl::GetFlag(FLAGS_request).size(); },
                std::chrono::seconds(120));
  std::printf("\n-- client closes its side (half-close): FIN\n");
  (void)a.Shutdown(*conn, pair.now());
  pair.RunUntil([&] { return b.Find(*accepted)->AtEof(); }, std::chrono::seconds(120));
  std::printf("\n-- server, in CLOSE-WAIT, still sends %zu bytes, then closes\n",
              absl::GetFlag(FLAGS_response).size());
  (void)b.Send(*accepted, Bytes(absl::GetFlag(FLAGS_response)), pair.now());
  (void)b.Close(*accepted, pair.now());
  std::string reply;
  pair.RunUntil([&] { reply += Drain(a, *conn, pair.now()); return a.Find(*conn)->state() == tcp::TcpState::kTimeWait; },
                std::chrono::seconds(120));
  std::printf("\n-- client waits 2*MSL in TIME-WAIT\n");
  pair.RunUntil([&] { return a.Find(*conn)->state() == tcp::TcpState::kClosed; },
                2 * cfg.tcp.msl + std::chrono::seconds(1));
  std::printf("\nserver received %zu bytes, client received %zu bytes; client is %s\n", got.size(),
              reply.size(), std::string(tcp::ToString(a.Find(*conn)->state())).c_str());
  return a.Find(*conn)->state() == tcp::TcpState::kClosed ? 0 : 1;
}
