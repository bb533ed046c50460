#include "engine/demo/kernel_demo.h"

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/sandbox/netns.h"
#include "engine/sandbox/sandbox.h"

namespace tcplab::demo {
namespace {

using sandbox::StackKind;
using tcp::TcpState;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

// Prints the sandbox's events as a ladder: the engine on the left, the kernel on the right.
void PrintEvent(const sandbox::Event& ev) {
  double ms = std::chrono::duration<double, std::milli>(ev.since_start).count();
  std::string line;
  if (auto* s = std::get_if<tcp::SegmentEvent>(&ev.body)) {
    const auto& h = s->seg;
    bool out = s->dir == tcp::Direction::kOut;
    // Relative numbers: our seq from our ISS, the kernel's from its ISS (our IRS).
    uint32_t seq = static_cast<uint32_t>(h.seq - (out ? s->iss : s->irs));
    std::string what = absl::StrCat("[", wire::FlagsToString(h.flags), "] seq=", seq);
    if (h.flags & wire::kAck) {
      absl::StrAppend(&what, " ack=", static_cast<uint32_t>(h.ack - (out ? s->irs : s->iss)));
    }
    absl::StrAppend(&what, " len=", s->payload_len);
    if (out) {
      line = absl::StrCat("  ", what, " ---->", s->verdict == tcp::Verdict::kRetransmitted ? " (retransmission)" : "");
    } else {
      line = absl::StrCat("          <---- ", what,
                          s->verdict == tcp::Verdict::kAccepted ? "" : absl::StrCat("  [engine: ", tcp::ToString(s->verdict), "]"));
    }
  } else if (auto* st = std::get_if<tcp::StateEvent>(&ev.body)) {
    std::string text = absl::StrCat(tcp::ToString(st->from), " -> ", tcp::ToString(st->to), "  (", st->cause, ")");
    line = ev.stack == StackKind::kEngine ? absl::StrCat("engine ", text)
                                          : absl::StrCat("                                                kernel ", text);
  } else if (auto* t = std::get_if<tcp::TimerEvent>(&ev.body)) {
    if (t->kind == tcp::TimerKind::kDelayedAck) return;
    line = absl::StrCat("  engine timer ", tcp::ToString(t->kind), " ", tcp::ToString(t->action));
  } else if (auto* a = std::get_if<sandbox::AppEvent>(&ev.body)) {
    line = absl::StrCat(ev.stack == StackKind::kEngine ? "engine" : "kernel", " app: ", a->call,
                        a->result == "OK" ? "" : absl::StrCat(" -> ", a->result));
  }
  std::printf("%10.3f ms  %s\n", ms, line.c_str());
  std::fflush(stdout);
}

}  // namespace

int RunKernelDemo(const KernelDemoOptions& opts) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  // A previous run killed with SIGKILL may have left its namespace behind.
  if (auto removed = sandbox::RemoveLeftovers(); removed.ok() && !removed->empty()) {
    std::printf("removed %zu namespace(s) left by a crashed run\n", removed->size());
  }
  sandbox::SandboxConfig cfg;
  cfg.name = "demo";
  cfg.engine.tcp.msl = absl::ToChronoNanoseconds(opts.msl);
  cfg.engine.tcp.delayed_ack = false;  // one ACK per segment reads better in a ladder
  absl::StatusOr<std::unique_ptr<sandbox::Sandbox>> created = sandbox::Sandbox::Create(cfg);
  if (!created.ok()) {
    std::fprintf(stderr, "tcplab-demo: %s\n", std::string(created.status().message()).c_str());
    return 2;
  }
  sandbox::Sandbox& sb = **created;
  std::printf("tcplab-demo: sandbox in network namespace %s; engine 198.18.0.2, kernel 198.18.0.1:80; MSL %s\n\n",
              sb.netns_name().c_str(), absl::FormatDuration(opts.msl).c_str());

  std::atomic<bool> printing{true};
  std::thread printer([&] {
    uint64_t next = 0;
    while (printing || sb.events().last_seq() >= next) {
      auto r = sb.events().WaitAndRead(next, 256, absl::Now() + absl::Milliseconds(50));
      for (const auto& ev : r.events) PrintEvent(ev);
      next = r.next;
      if (!printing && r.events.empty()) break;
    }
  });
  auto wait = [&](const std::function<bool()>& pred, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (!g_stop && absl::Now() < deadline) {
      if (pred()) return true;
      absl::SleepFor(absl::Milliseconds(2));
    }
    return false;
  };
  auto state = [&](tcp::ConnId id) {
    auto info = sb.Get(id);
    return info.ok() ? info->state : TcpState::kClosed;
  };
  auto bytes = [](const std::string& s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };

  int rc = 1;
  do {
    auto listener = sb.Listen(StackKind::kKernel, {wire::Ipv4::Of(198, 18, 0, 1), 80});
    auto conn = sb.Connect(StackKind::kEngine, {}, {wire::Ipv4::Of(198, 18, 0, 1), 80});
    if (!listener.ok() || !conn.ok()) break;
    std::optional<tcp::ConnId> server;
    if (!wait([&] {
          for (const auto& c : sb.List()) {
            if (c.stack == StackKind::kKernel && !c.listener && c.state == TcpState::kEstablished) server = c.id;
          }
          return server.has_value() && state(*conn) == TcpState::kEstablished;
        }, absl::Seconds(10))) break;
    (void)sb.Send(*conn, bytes(opts.request));
    std::string got;
    wait([&] {
      if (auto r = sb.Recv(*server, 1 << 16); r.ok()) got += r->data;
      return got.size() >= opts.request.size();
    }, absl::Seconds(10));
    (void)sb.Shutdown(*conn);  // half-close: the kernel may still send
    wait([&] { return state(*server) == TcpState::kCloseWait; }, absl::Seconds(10));
    (void)sb.Send(*server, bytes(opts.response));
    (void)sb.Close(*server);
    std::string reply;
    wait([&] {
      if (auto r = sb.Recv(*conn, 1 << 16); r.ok()) reply += r->data;
      return state(*conn) == TcpState::kTimeWait;
    }, absl::Seconds(10));
    wait([&] { return state(*conn) == TcpState::kClosed; }, 2 * opts.msl + absl::Seconds(2));
    absl::SleepFor(absl::Milliseconds(20));
    printing = false;
    printer.join();
    std::printf("\nkernel received %zu bytes, engine received %zu bytes; engine is %s\n", got.size(),
                reply.size(), tcp::ToString(state(*conn)));
    rc = state(*conn) == TcpState::kClosed && reply == opts.response ? 0 : 1;
  } while (false);
  if (printer.joinable()) {
    printing = false;
    printer.join();
  }
  if (g_stop) std::printf("\ninterrupted: removing the sandbox\n");
  created->reset();  // removes the namespace, the TUN and the kernel sockets
  return g_stop ? 130 : rc;
}

}  // namespace tcplab::demo
