// The engine against the real Linux kernel, through a TUN device in a network namespace.
// Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN); skips, saying so, without it.
#include "engine/sandbox/sandbox.h"
#include "tests/tun/tun_testing.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tcplab::sandbox {
namespace {

using ::testing::Contains;
using tcp::TcpState;
using namespace std::chrono_literals;

constexpr wire::Ipv4 kKernel = wire::Ipv4::Of(198, 18, 0, 1);
constexpr wire::Ipv4 kEngine = wire::Ipv4::Of(198, 18, 0, 2);

using tuntest::Bytes;
using tuntest::RandomBytes;
using tuntest::Sha256Hex;
using tuntest::WaitUntil;

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and TUN (label tun)";
    SandboxConfig cfg;
    cfg.name = "t";
    cfg.engine.tcp.msl = 500ms;  // TIME-WAIT of 1 s keeps the tests short
    cfg.engine.tcp.min_rto = 200ms;
    cfg.engine.isn_secret[0] = 7;
    Customize(cfg);
    auto sb = Sandbox::Create(cfg);
    ASSERT_TRUE(sb.ok()) << sb.status();
    sb_ = std::move(*sb);
  }
  virtual void Customize(SandboxConfig&) {}

  TcpState State(tcp::ConnId id) { return tuntest::State(*sb_, id); }
  bool WaitState(tcp::ConnId id, TcpState s, absl::Duration timeout = absl::Seconds(10)) {
    return tuntest::WaitState(*sb_, id, s, timeout);
  }
  std::vector<TcpState> Path(tcp::ConnId id) { return tuntest::Path(*sb_, id); }
  std::optional<tcp::ConnId> Accepted(StackKind stack, uint16_t port) {
    return tuntest::Accepted(*sb_, stack, port);
  }
  std::string ReadAll(tcp::ConnId id, size_t want, absl::Duration timeout = absl::Seconds(60)) {
    std::string got;
    WaitUntil([&] {
      auto r = sb_->Recv(id, 1 << 20);
      if (r.ok()) got += r->data;
      return got.size() >= want || (r.ok() && r->eof) || !r.ok();
    }, timeout);
    return got;
  }

  std::unique_ptr<Sandbox> sb_;
};

// RFC 9293 §3.5: the engine opens actively, the kernel passively.
TEST_F(SandboxTest, EngineConnectsToKernelListener) {
  auto l = sb_->Listen(StackKind::kKernel, {kKernel, 8080});
  ASSERT_TRUE(l.ok()) << l.status();
  auto c = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 8080});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(WaitState(*c, TcpState::kEstablished));
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kKernel, 8080).has_value(); }));
  tcp::ConnId k = *Accepted(StackKind::kKernel, 8080);
  ASSERT_TRUE(WaitState(k, TcpState::kEstablished));
  EXPECT_EQ(Path(*c), (std::vector<TcpState>{TcpState::kSynSent, TcpState::kEstablished}));
  EXPECT_THAT(Path(k), Contains(TcpState::kEstablished));
}

// RFC 9293 §3.5: the kernel opens actively; the engine listens and goes through SYN-RECEIVED.
TEST_F(SandboxTest, KernelConnectsToEngineListener) {
  auto l = sb_->Listen(StackKind::kEngine, {kEngine, 80});
  ASSERT_TRUE(l.ok()) << l.status();
  auto k = sb_->Connect(StackKind::kKernel, {kKernel, 0}, {kEngine, 80});
  ASSERT_TRUE(k.ok()) << k.status();
  ASSERT_TRUE(WaitState(*k, TcpState::kEstablished));
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kEngine, 80).has_value(); }));
  tcp::ConnId e = *Accepted(StackKind::kEngine, 80);
  ASSERT_TRUE(WaitState(e, TcpState::kEstablished));
  EXPECT_EQ(Path(e), (std::vector<TcpState>{TcpState::kSynReceived, TcpState::kEstablished}));
  EXPECT_EQ(Path(*k).front(), TcpState::kSynSent);
}

// 10 MiB each way at once, engine <-> kernel: identical bytes (SHA-256) on both ends.
TEST_F(SandboxTest, TenMebibytesEachWayIntact) {
  const std::string up = RandomBytes(10 << 20, 1), down = RandomBytes(10 << 20, 2);
  ASSERT_TRUE(sb_->Listen(StackKind::kKernel, {kKernel, 5001}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 5001});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kKernel, 5001).has_value(); }));
  tcp::ConnId k = *Accepted(StackKind::kKernel, 5001);
  size_t up_sent = 0, down_sent = 0;
  std::string up_got, down_got;
  ASSERT_TRUE(WaitUntil([&] {
    if (up_sent < up.size()) {
      auto n = sb_->Send(*e, Bytes(up).subspan(up_sent, std::min<size_t>(1 << 20, up.size() - up_sent)));
      if (n.ok()) up_sent += *n;
    }
    if (down_sent < down.size()) {
      auto n = sb_->Send(k, Bytes(down).subspan(down_sent, std::min<size_t>(1 << 20, down.size() - down_sent)));
      if (n.ok()) down_sent += *n;
    }
    if (auto r = sb_->Recv(k, 1 << 20); r.ok()) up_got += r->data;
    if (auto r = sb_->Recv(*e, 1 << 20); r.ok()) down_got += r->data;
    return up_got.size() == up.size() && down_got.size() == down.size();
  }, absl::Seconds(120)));
  EXPECT_EQ(Sha256Hex(up_got), Sha256Hex(up));
  EXPECT_EQ(Sha256Hex(down_got), Sha256Hex(down));
}

// The engine closes first: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT for its 2·MSL, CLOSED; the kernel
// goes CLOSE-WAIT, LAST-ACK, CLOSED.
TEST_F(SandboxTest, EngineClosesFirstAndSitsInTimeWait) {
  ASSERT_TRUE(sb_->Listen(StackKind::kKernel, {kKernel, 7}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 7});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kKernel, 7).has_value(); }));
  tcp::ConnId k = *Accepted(StackKind::kKernel, 7);
  ASSERT_TRUE(WaitState(k, TcpState::kEstablished));
  ASSERT_TRUE(sb_->Shutdown(*e).ok());
  ASSERT_TRUE(WaitState(k, TcpState::kCloseWait));
  ASSERT_TRUE(WaitState(*e, TcpState::kFinWait2));
  ASSERT_TRUE(sb_->Close(k).ok());
  ASSERT_TRUE(WaitUntil([&] { return tuntest::PathContains(*sb_, *e, TcpState::kTimeWait); }));
  ASSERT_TRUE(WaitState(*e, TcpState::kClosed, absl::Seconds(10)));
  EXPECT_EQ(Path(*e), (std::vector<TcpState>{TcpState::kSynSent, TcpState::kEstablished,
                                             TcpState::kFinWait1, TcpState::kFinWait2,
                                             TcpState::kTimeWait, TcpState::kClosed}));
  EXPECT_THAT(Path(k), Contains(TcpState::kLastAck));
  EXPECT_EQ(Path(k).back(), TcpState::kClosed);
  // TIME-WAIT lasted 2·MSL of engine time: from the state events' timestamps.
  auto r = sb_->events().Read(0, 1 << 20);
  Duration entered{}, left{};
  for (const Event& ev : r.events) {
    auto* st = std::get_if<tcp::StateEvent>(&ev.body);
    if (!st || st->conn != *e) continue;
    if (st->to == TcpState::kTimeWait) entered = ev.since_start;
    if (st->from == TcpState::kTimeWait) left = ev.since_start;
  }
  EXPECT_GE(left - entered, 1s);  // 2 * 500 ms; a timer never fires early
}

// The kernel closes first, so the kernel sits in TIME-WAIT: observed through sock_diag.
TEST_F(SandboxTest, KernelClosesFirstAndItsTimeWaitIsObserved) {
  ASSERT_TRUE(sb_->Listen(StackKind::kEngine, {kEngine, 81}).ok());
  auto k = sb_->Connect(StackKind::kKernel, {kKernel, 0}, {kEngine, 81});
  ASSERT_TRUE(k.ok());
  ASSERT_TRUE(WaitState(*k, TcpState::kEstablished));
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kEngine, 81).has_value(); }));
  tcp::ConnId e = *Accepted(StackKind::kEngine, 81);
  ASSERT_TRUE(sb_->Close(*k).ok());
  ASSERT_TRUE(WaitState(e, TcpState::kCloseWait));
  ASSERT_TRUE(sb_->Close(e).ok());
  ASSERT_TRUE(WaitUntil([&] {
    auto p = Path(*k);
    return std::find(p.begin(), p.end(), TcpState::kTimeWait) != p.end();
  }));
  EXPECT_THAT(Path(*k), Contains(TcpState::kFinWait1));
  EXPECT_THAT(Path(*k), Contains(TcpState::kFinWait2));
}

// Half-close: after the engine's FIN the kernel, in CLOSE-WAIT, still sends, and the engine
// in FIN-WAIT-2 still receives.
TEST_F(SandboxTest, HalfCloseKernelKeepsSendingAfterEngineFin) {
  ASSERT_TRUE(sb_->Listen(StackKind::kKernel, {kKernel, 9}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 9});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kKernel, 9).has_value(); }));
  tcp::ConnId k = *Accepted(StackKind::kKernel, 9);
  ASSERT_TRUE(WaitState(k, TcpState::kEstablished));
  ASSERT_TRUE(sb_->Shutdown(*e).ok());
  ASSERT_TRUE(WaitState(k, TcpState::kCloseWait));
  const std::string reply = RandomBytes(100000, 3);
  ASSERT_TRUE(sb_->Send(k, Bytes(reply)).ok());
  ASSERT_TRUE(sb_->Close(k).ok());
  std::string got = ReadAll(*e, reply.size());
  EXPECT_EQ(got.size(), reply.size());
  EXPECT_TRUE(got == reply);
  // TIME-WAIT lasts only 2·MSL = 1 s here, so look for it in the state path, not the state.
  ASSERT_TRUE(WaitUntil([&] { return tuntest::PathContains(*sb_, *e, TcpState::kTimeWait); }));
}

// The kernel aborts (SO_LINGER 0): the engine receives a RST and reports ECONNRESET.
TEST_F(SandboxTest, KernelAbortResetsEngine) {
  ASSERT_TRUE(sb_->Listen(StackKind::kKernel, {kKernel, 10}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 10});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kKernel, 10).has_value(); }));
  tcp::ConnId k = *Accepted(StackKind::kKernel, 10);
  ASSERT_TRUE(WaitState(k, TcpState::kEstablished));
  ASSERT_TRUE(WaitState(*e, TcpState::kEstablished));
  ASSERT_TRUE(sb_->Abort(k).ok());
  ASSERT_TRUE(WaitState(*e, TcpState::kClosed));
  auto info = sb_->Get(*e);
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->engine->error, ::testing::HasSubstr("ECONNRESET"));
}

// A connection to a kernel port nobody listens on: the kernel answers RST, the engine reports
// ECONNREFUSED.
TEST_F(SandboxTest, ConnectToClosedKernelPortIsRefused) {
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 9999});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitState(*e, TcpState::kClosed));
  EXPECT_THAT(sb_->Get(*e)->engine->error, ::testing::HasSubstr("ECONNREFUSED"));
}

// Impairments both ways (the engine's own, seeded): the transfer is still intact and closes.
TEST_F(SandboxTest, ImpairedTransferStaysIntactAndCloses) {
  link::Impairment imp;
  imp.loss = 0.05;
  imp.duplicate = 0.02;
  imp.reorder = 0.10;
  imp.reorder_delay = std::chrono::milliseconds(2);
  imp.seed = 11;
  ASSERT_TRUE(sb_->SetImpairment(Direction::kToKernel, imp).ok());
  imp.seed = 12;
  ASSERT_TRUE(sb_->SetImpairment(Direction::kToEngine, imp).ok());
  const std::string up = RandomBytes(2 << 20, 4);
  ASSERT_TRUE(sb_->Listen(StackKind::kKernel, {kKernel, 5002}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 5002});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kKernel, 5002).has_value(); }, absl::Seconds(30)));
  tcp::ConnId k = *Accepted(StackKind::kKernel, 5002);
  size_t sent = 0;
  std::string got;
  ASSERT_TRUE(WaitUntil([&] {
    if (sent < up.size()) {
      auto n = sb_->Send(*e, Bytes(up).subspan(sent, std::min<size_t>(1 << 20, up.size() - sent)));
      if (n.ok()) sent += *n;
    }
    if (auto r = sb_->Recv(k, 1 << 20); r.ok()) got += r->data;
    return got.size() == up.size();
  }, absl::Seconds(120)));
  EXPECT_TRUE(got == up);
  ASSERT_TRUE(sb_->Close(*e).ok());
  ASSERT_TRUE(WaitState(k, TcpState::kCloseWait, absl::Seconds(30)));
  ASSERT_TRUE(sb_->Close(k).ok());
  EXPECT_TRUE(WaitState(*e, TcpState::kClosed, absl::Seconds(60)));
}

// Engine-to-engine inside one sandbox loops back without touching the kernel.
TEST_F(SandboxTest, EngineToEngineLoopsBack) {
  ASSERT_TRUE(sb_->Listen(StackKind::kEngine, {wire::Ipv4::Of(198, 18, 0, 3), 80}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {wire::Ipv4::Of(198, 18, 0, 3), 80});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitState(*e, TcpState::kEstablished));
  EXPECT_GT(sb_->counters().loopback_datagrams, 0u);
}

class VirtualSandboxTest : public SandboxTest {
  void Customize(SandboxConfig& cfg) override { cfg.backend = Backend::kVirtual; }
};

// The virtual backend: no namespace, no kernel; engine-to-engine works, KERNEL is refused.
TEST_F(VirtualSandboxTest, EngineToEngineWithoutKernel) {
  EXPECT_EQ(sb_->netns_name(), "");
  auto k = sb_->Listen(StackKind::kKernel, {kKernel, 80});
  EXPECT_EQ(k.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(k.status().message()), ::testing::HasSubstr("virtual backend"));
  ASSERT_TRUE(sb_->Listen(StackKind::kEngine, {kKernel, 80}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 80});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitState(*e, TcpState::kEstablished));
}

// Unknown ids are NOT_FOUND and name the sandbox and id.
TEST_F(SandboxTest, UnknownIdIsNotFound) {
  auto r = sb_->Send(424242, Bytes("x"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("t/424242"));
  EXPECT_THAT(std::string(r.status().message()), ::testing::Not(::testing::HasSubstr("forgotten")));
}

// ---------------------------------------------------------------------------------------------
// Closed connections: one rule for both stacks (Sandbox::Get). A connection that reached CLOSED
// stays visible with its final info; the sandbox remembers the most recently closed ones.

// When the state event of `id`'s change to CLOSED was logged, on the sandbox's clock.
std::optional<Duration> ClosedAt(Sandbox& sb, tcp::ConnId id) {
  for (const Event& e : sb.events().Read(0, 1 << 20).events) {
    auto* st = std::get_if<tcp::StateEvent>(&e.body);
    if (st && st->conn == id && st->to == TcpState::kClosed) return e.since_start;
  }
  return std::nullopt;
}

bool Listed(Sandbox& sb, tcp::ConnId id, TcpState state) {
  for (const ConnInfo& c : sb.List()) {
    if (c.id == id) return c.state == state;
  }
  return false;
}

class ClosedVirtualTest : public SandboxTest {
 protected:
  void Customize(SandboxConfig& cfg) override {
    cfg.backend = Backend::kVirtual;
    cfg.engine.tcp.msl = 20ms;  // TIME-WAIT of 40 ms
  }
};

// Both ends of an engine-to-engine connection close (the client first: FIN-WAIT-1, FIN-WAIT-2,
// TIME-WAIT; the server CLOSE-WAIT, LAST-ACK) and the users close them, so the engine lets go of
// both TCBs. Each stays visible as CLOSED with the snapshot taken at its change to CLOSED.
TEST_F(ClosedVirtualTest, ClosedConnectionKeepsItsFinalSnapshot) {
  const wire::Ipv4 server_ip = wire::Ipv4::Of(198, 18, 0, 3);
  ASSERT_TRUE(sb_->Listen(StackKind::kEngine, {server_ip, 80}).ok());
  auto c = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {server_ip, 80});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(WaitState(*c, TcpState::kEstablished));
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kEngine, 80).has_value(); }));
  tcp::ConnId s = *Accepted(StackKind::kEngine, 80);
  const std::string data = RandomBytes(5000, 9);
  ASSERT_TRUE(sb_->Send(*c, Bytes(data)).ok());
  EXPECT_EQ(ReadAll(s, data.size()), data);
  auto live = sb_->Get(*c);
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(sb_->Close(*c).ok());
  ASSERT_TRUE(WaitState(s, TcpState::kCloseWait));
  ASSERT_TRUE(sb_->Close(s).ok());
  ASSERT_TRUE(WaitUntil([&] { return ClosedAt(*sb_, *c) && ClosedAt(*sb_, s); }));

  auto ci = sb_->Get(*c);
  ASSERT_TRUE(ci.ok()) << ci.status();
  EXPECT_EQ(ci->state, TcpState::kClosed);
  EXPECT_EQ(ci->stack, StackKind::kEngine);
  EXPECT_FALSE(ci->listener);
  EXPECT_EQ(ci->local, live->local);
  EXPECT_EQ(ci->remote, (wire::Endpoint{server_ip, 80}));
  ASSERT_TRUE(ci->engine.has_value());
  EXPECT_EQ(ci->engine->state, TcpState::kClosed);
  EXPECT_EQ(ci->engine->iss, live->engine->iss);
  EXPECT_EQ(ci->engine->irs, live->engine->irs);
  EXPECT_EQ(ci->engine->counters.bytes_out, data.size());
  // SYN, the data, FIN: all acknowledged. The FIN's ACK came after the live snapshot.
  EXPECT_EQ(ci->engine->snd_una, ci->engine->snd_nxt);
  EXPECT_GT(ci->engine->counters.segments_in, live->engine->counters.segments_in);
  EXPECT_TRUE(ci->engine->timers.empty());
  // Taken at the change to CLOSED (2·MSL after TIME-WAIT began), not when asked.
  EXPECT_EQ(ci->now.time_since_epoch(), *ClosedAt(*sb_, *c));

  auto si = sb_->Get(s);
  ASSERT_TRUE(si.ok()) << si.status();
  EXPECT_EQ(si->state, TcpState::kClosed);
  ASSERT_TRUE(si->engine.has_value());
  EXPECT_EQ(si->engine->counters.bytes_in, data.size());
  EXPECT_EQ(si->engine->iss, live->engine->irs);
  EXPECT_EQ(si->now.time_since_epoch(), *ClosedAt(*sb_, s));
  EXPECT_TRUE(Listed(*sb_, *c, TcpState::kClosed));
  EXPECT_TRUE(Listed(*sb_, s, TcpState::kClosed));

  // Other calls answer as on a closed socket.
  auto sent = sb_->Send(*c, Bytes("x"));
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kFailedPrecondition) << sent.status();
  EXPECT_THAT(std::string(sent.status().message()), ::testing::HasSubstr("ENOTCONN"));
  EXPECT_EQ(sb_->Recv(*c, 10).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sb_->Shutdown(*c).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sb_->Close(*c).ok());
  EXPECT_TRUE(sb_->Abort(*c).ok());
  EXPECT_EQ(sb_->Get(*c)->state, TcpState::kClosed);
}

// A listener the user closes is remembered like a connection: CLOSED, still a listener.
TEST_F(ClosedVirtualTest, ClosedListenerIsListedAsClosed) {
  auto l = sb_->Listen(StackKind::kEngine, {kEngine, 7});
  ASSERT_TRUE(l.ok());
  ASSERT_TRUE(sb_->Close(*l).ok());
  auto li = sb_->Get(*l);
  ASSERT_TRUE(li.ok()) << li.status();
  EXPECT_EQ(li->state, TcpState::kClosed);
  EXPECT_TRUE(li->listener);
  EXPECT_EQ(li->local, (wire::Endpoint{kEngine, 7}));
  EXPECT_TRUE(Listed(*sb_, *l, TcpState::kClosed));
  // The port is free again.
  EXPECT_TRUE(sb_->Listen(StackKind::kEngine, {kEngine, 7}).ok());
}

class FewClosedVirtualTest : public ClosedVirtualTest {
  void Customize(SandboxConfig& cfg) override {
    ClosedVirtualTest::Customize(cfg);
    cfg.closed_kept = 8;
  }
};

// Refused connections (nobody listens: RST, ECONNREFUSED) the user then closes, ten more than
// the sandbox remembers: the oldest are forgotten, and say so.
TEST_F(FewClosedVirtualTest, OnlyTheMostRecentlyClosedAreRemembered) {
  std::vector<tcp::ConnId> ids;
  for (int i = 0; i < 18; ++i) {
    auto c = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kEngine, 9});
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(WaitUntil([&] { return ClosedAt(*sb_, *c).has_value(); }));
    ASSERT_TRUE(sb_->Close(*c).ok());
    ids.push_back(*c);
    EXPECT_LE(sb_->closed_count(), 8u);
  }
  EXPECT_EQ(sb_->closed_count(), 8u);
  EXPECT_EQ(sb_->List().size(), 8u);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto info = sb_->Get(ids[i]);
    if (i < 10) {
      EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound) << i;
      EXPECT_THAT(std::string(info.status().message()),
                  ::testing::HasSubstr(absl::StrCat("t/", ids[i], " not found: it closed and was forgotten")));
    } else {
      ASSERT_TRUE(info.ok()) << i << ": " << info.status();
      EXPECT_EQ(info->state, TcpState::kClosed);
      EXPECT_THAT(info->engine->error, ::testing::HasSubstr("ECONNREFUSED"));
    }
  }
  // An id never handed out is merely not found.
  auto never = sb_->Get(ids.back() + 1000);
  EXPECT_EQ(never.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(never.status().message()), ::testing::Not(::testing::HasSubstr("forgotten")));
}

// The default bound: 300 connections through their whole life (handshake, close, TIME-WAIT),
// of which the sandbox remembers the last 256 to close.
TEST_F(ClosedVirtualTest, ThreeHundredConnectionsLeaveTheLast256) {
  const wire::Ipv4 server_ip = wire::Ipv4::Of(198, 18, 0, 3);
  auto l = sb_->Listen(StackKind::kEngine, {server_ip, 80});
  ASSERT_TRUE(l.ok());
  std::vector<tcp::ConnId> clients;
  for (int i = 0; i < 300; ++i) {
    auto c = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {server_ip, 80});
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(WaitState(*c, TcpState::kEstablished)) << i;
    ASSERT_TRUE(sb_->Close(*c).ok());
    clients.push_back(*c);
  }
  // Close the server ends as they reach CLOSE-WAIT, until every client has been through TIME-WAIT.
  ASSERT_TRUE(WaitUntil([&] {
    for (const ConnInfo& c : sb_->List()) {
      if (c.state == TcpState::kCloseWait) (void)sb_->Close(c.id);
    }
    return ClosedAt(*sb_, clients.back()).has_value() && sb_->List().size() == SandboxConfig::kDefaultClosedKept + 1;
  }, absl::Seconds(60)));
  EXPECT_EQ(sb_->closed_count(), SandboxConfig::kDefaultClosedKept);
  EXPECT_EQ(sb_->Get(clients.front()).status().code(), absl::StatusCode::kNotFound);
  auto last = sb_->Get(clients.back());
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->state, TcpState::kClosed);
  EXPECT_TRUE(Listed(*sb_, *l, TcpState::kListen));
}

// The kernel as peer: its connections, once CLOSED and closed by the user, are remembered by
// the sandbox and dropped by the kernel peer; the final info is the socket's last TCP_INFO.
class ClosedKernelTest : public SandboxTest {
  void Customize(SandboxConfig& cfg) override { cfg.closed_kept = 8; }
};

// The kernel accepts, receives data, then closes second (CLOSE-WAIT, LAST-ACK, CLOSED: no
// TIME-WAIT on its side, which Linux holds for 60 s).
TEST_F(ClosedKernelTest, KernelConnectionKeepsItsLastTcpInfo) {
  auto l = sb_->Listen(StackKind::kKernel, {kKernel, 8000});
  ASSERT_TRUE(l.ok()) << l.status();
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 8000});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitUntil([&] { return Accepted(StackKind::kKernel, 8000).has_value(); }));
  tcp::ConnId k = *Accepted(StackKind::kKernel, 8000);
  const std::string data = RandomBytes(20000, 5);
  ASSERT_TRUE(sb_->Send(*e, Bytes(data)).ok());
  EXPECT_EQ(ReadAll(k, data.size()), data);
  ASSERT_TRUE(sb_->Close(*e).ok());
  ASSERT_TRUE(WaitState(k, TcpState::kCloseWait));
  ASSERT_TRUE(sb_->Close(k).ok());
  ASSERT_TRUE(WaitUntil([&] { return ClosedAt(*sb_, k).has_value(); }));
  auto ki = sb_->Get(k);
  ASSERT_TRUE(ki.ok()) << ki.status();
  EXPECT_EQ(ki->state, TcpState::kClosed);
  EXPECT_EQ(ki->stack, StackKind::kKernel);
  EXPECT_EQ(ki->local, (wire::Endpoint{kKernel, 8000}));
  ASSERT_TRUE(ki->kernel.has_value());
  EXPECT_FALSE(ki->kernel->has_fd);
  // The data and the engine's FIN (Linux counts the FIN's sequence number here), as TCP_INFO
  // had it when the user closed the socket.
  EXPECT_EQ(ki->kernel->bytes_received, data.size() + 1);
  EXPECT_GT(ki->kernel->segs_in, 0u);
  EXPECT_TRUE(Listed(*sb_, k, TcpState::kClosed));
  EXPECT_EQ(sb_->kernel_peer_size(), 1u);  // the listener
  auto sent = sb_->Send(k, Bytes("x"));
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kFailedPrecondition) << sent.status();
  EXPECT_TRUE(sb_->Close(k).ok());

  // The listener, closed, is remembered the same way, and the kernel peer holds nothing.
  ASSERT_TRUE(sb_->Close(*l).ok());
  auto li = sb_->Get(*l);
  ASSERT_TRUE(li.ok()) << li.status();
  EXPECT_EQ(li->state, TcpState::kClosed);
  EXPECT_TRUE(li->listener);
  EXPECT_EQ(li->local, (wire::Endpoint{kKernel, 8000}));
  EXPECT_TRUE(Listed(*sb_, *l, TcpState::kClosed));
  EXPECT_EQ(sb_->kernel_peer_size(), 0u);
}

// Kernel connections reset by the engine (abort), then closed by the user, ten more than the
// sandbox remembers: the kernel peer holds none of them, the sandbox the last eight.
TEST_F(ClosedKernelTest, ResetKernelConnectionsAreDroppedAndBounded) {
  ASSERT_TRUE(sb_->Listen(StackKind::kKernel, {kKernel, 8001}).ok());
  std::vector<tcp::ConnId> ks;
  for (int i = 0; i < 18; ++i) {
    auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 8001});
    ASSERT_TRUE(e.ok());
    ASSERT_TRUE(WaitState(*e, TcpState::kEstablished));
    uint16_t eport = sb_->Get(*e)->local.port;
    std::optional<tcp::ConnId> k;
    ASSERT_TRUE(WaitUntil([&] {
      for (const ConnInfo& c : sb_->List()) {
        if (c.stack == StackKind::kKernel && c.remote.port == eport && c.state == TcpState::kEstablished) k = c.id;
      }
      return k.has_value();
    }));
    ASSERT_TRUE(sb_->Abort(*e).ok());
    ASSERT_TRUE(WaitUntil([&] { return ClosedAt(*sb_, *k).has_value(); })) << i;
    ASSERT_TRUE(sb_->Close(*k).ok());
    ks.push_back(*k);
    EXPECT_LE(sb_->closed_count(), 8u);
  }
  EXPECT_EQ(sb_->kernel_peer_size(), 1u);  // the listener
  EXPECT_EQ(sb_->closed_count(), 8u);
  EXPECT_EQ(sb_->Get(ks.front()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(sb_->Get(ks.front()).status().message()), ::testing::HasSubstr("forgotten"));
  auto last = sb_->Get(ks.back());
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->state, TcpState::kClosed);
  EXPECT_EQ(last->stack, StackKind::kKernel);
}

}  // namespace
}  // namespace tcplab::sandbox

namespace tcplab::sandbox {
namespace {

// Entries of `path` whose names start with `prefix`.
size_t CountDir(const char* path, const std::string& prefix = "") {
  size_t n = 0;
  if (DIR* d = opendir(path)) {
    while (dirent* e = readdir(d)) {
      n += e->d_name[0] != '.' && std::string(e->d_name).starts_with(prefix);
    }
    closedir(d);
  }
  return n;
}

// 1,000 sandboxes created, used (a kernel listener and an engine connection to it) and deleted:
// no namespace, fd or thread is left behind.
TEST(SandboxLifetime, ThousandCreateDeleteCyclesLeakNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and TUN (label tun)";
  // Only this process's namespaces: other processes may create and remove theirs meanwhile.
  const std::string ours = absl::StrCat("tcplab-", getpid(), "-");
  size_t fds = CountDir("/proc/self/fd"), netns = CountDir("/run/netns", ours),
         threads = CountDir("/proc/self/task");
  for (int i = 0; i < 1000; ++i) {
    SandboxConfig cfg;
    cfg.name = "cycle";
    auto sb = Sandbox::Create(cfg);
    ASSERT_TRUE(sb.ok()) << "cycle " << i << ": " << sb.status();
    ASSERT_TRUE((*sb)->Listen(StackKind::kKernel, {kKernel, 80}).ok());
    ASSERT_TRUE((*sb)->Connect(StackKind::kEngine, {}, {kKernel, 80}).ok());
  }
  EXPECT_EQ(CountDir("/proc/self/fd"), fds);
  EXPECT_EQ(CountDir("/run/netns", ours), netns);
  EXPECT_EQ(CountDir("/proc/self/task"), threads);
}

}  // namespace
}  // namespace tcplab::sandbox
