// Rules whose violations an RFC review of the TCB found; each test would have failed before
// its fix. Grouped by state like the other TCB tests.
#include "tests/unit/harness/tcb_harness.h"

namespace tcplab::testing {
namespace {

using ::testing::AllOf;
using wire::kAck;
using wire::kFin;
using wire::kSyn;

bool TimerArmed(tcp::Tcb& tcb, tcp::TimerKind kind) {
  for (const auto& t : tcb.Snapshot().timers) {
    if (t.kind == kind) return true;
  }
  return false;
}

// The peer's window is closed; our persist probe (one octet, seq 1) is refused.
void ProbeRefused(TcbHarness& h) {
  h.MakeEstablished({}, /*peer_window=*/0);
  ASSERT_TRUE(h.Send("x").ok());
  h.ExpectNothingSent();
  h.Advance(h.tcb().Snapshot().rto);  // the persist timer: one RTO
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1)));
  h.Deliver(h.Peer(kAck, 1, 1, {}, /*window=*/0));
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.7.4: with RCV.WND = 0 the peer accepts a zero-length segment only if SEG.SEQ =
// RCV.NXT. After a refused probe our ACKs must carry SND.UNA, not the probe's SND.MAX, or two
// stacks with closed windows answer each other's ACKs forever.
TEST(Established, AckAfterRefusedProbeCarriesASequenceNumberInThePeersWindow) {
  TcbHarness h;
  ProbeRefused(h);
  h.Deliver(h.Peer(kAck, 1, 1, "data", /*window=*/0));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(5)));
}

// RFC 6298 (5.1) / RFC 9293 §3.8.6.1: when the window reopens without the probe octet being
// acknowledged, the octet is sent again and a timer covers it; before the fix nothing was
// armed and the connection stalled for good.
TEST(Established, WindowReopeningAfterRefusedProbeResendsTheProbeOctet) {
  TcbHarness h;
  ProbeRefused(h);
  h.Deliver(h.Peer(kAck, 1, 1, {}, /*window=*/65535));
  h.ExpectSent(AllOf(HasSeq(1), HasPayload("x")));
  EXPECT_TRUE(TimerArmed(h.tcb(), tcp::TimerKind::kRetransmission));
}

// RFC 1122 §4.2.2.17 keeps probing while probes are answered; when nobody answers any more the
// connection times out like a retransmission would (Linux: tcp_retries2 probes).
TEST(Established, UnansweredZeroWindowProbesTimeOut) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.data_retries = 3;
  cfg.max_rto = 4s;
  TcbHarness h(cfg);
  ProbeRefused(h);
  h.Advance(60s);
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_THAT(std::string(h.tcb().error().message()), ::testing::HasSubstr("ETIMEDOUT"));
}

// Answered probes keep the connection alive however long the window stays closed.
TEST(Established, AnsweredZeroWindowProbesGoOnForever) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.data_retries = 3;
  cfg.max_rto = 4s;
  TcbHarness h(cfg);
  ProbeRefused(h);
  for (int i = 0; i < 20; ++i) {
    h.Advance(4s);
    h.Deliver(h.Peer(kAck, 1, 1, {}, /*window=*/0));
  }
  EXPECT_EQ(h.state(), TcpState::kEstablished);
}

// RFC 6298 §3 (Karn): a SYN+ACK sent again because the peer repeated its SYN gives no RTT
// sample when the handshake's ACK arrives.
TEST(SynReceived, RetransmittedSynAckGivesNoRttSample) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Advance(500ms);
  h.Deliver(h.Peer(kSyn, 0));
  h.ExpectSent(HasFlags(kSyn | kAck));
  h.Advance(10ms);
  h.Deliver(h.Peer(kAck, 1, 1));
  EXPECT_EQ(h.tcb().Snapshot().srtt, Duration::zero());
}

// RFC 5681 §3.1: "if the SYN or SYN/ACK is lost, the initial window used by a sender after a
// correctly transmitted SYN MUST be one segment".
TEST(SynSent, LostSynLeavesAnInitialWindowOfOneSegment) {
  TcbHarness h;
  h.OpenActive();
  h.Advance(1s);
  h.ExpectSent(HasFlags(kSyn));
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.cwnd, s.mss);
}

// RFC 9293 §3.10.7.3: a SYN+ACK is answered with an ACK at once, even with delayed ACKs on and
// data on the SYN+ACK.
TEST(SynSent, SynAckWithDataIsAckedAtOnce) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.delayed_ack = true;
  TcbHarness h(cfg);
  h.OpenActive();
  h.Deliver(h.Peer(kSyn | kAck, 0, 1, "early"));
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(6)));
  EXPECT_EQ(h.Recv(), "early");
}

// RFC 9293 §3.8.6.2.2: the window our SYN offered stands; an out-of-order segment inside it is
// held, not rejected as out of window.
TEST(SynSent, WindowOfferedInTheSynIsNotShrunkAfterTheHandshake) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.delayed_ack = true;
  TcbHarness h(cfg);
  h.OpenActive();
  h.Deliver(h.Peer(kSyn | kAck, 0, 1, "a"));
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1000, 1, "later"));
  EXPECT_EQ(h.LastInVerdict(), tcp::Verdict::kAccepted);
  EXPECT_EQ(h.tcb().Snapshot().out_of_order_bytes, 5u);
}

// Keepalive probes only an idle connection: with data in flight the retransmission timer is the
// one watching the peer (as Linux), and replies to a probe would look like duplicate ACKs.
TEST(Established, KeepaliveDoesNotProbeWhileDataIsInFlight) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.keepalive = true;
  cfg.keepalive_idle = 10s;
  cfg.min_rto = 20s;
  cfg.initial_rto = 20s;
  TcbHarness h(cfg);
  h.MakeEstablished();
  ASSERT_TRUE(h.Send("in flight").ok());
  h.ExpectSent(HasLen(9));
  h.Advance(11s);
  h.ExpectNothingSent();
}

// RFC 5961 §3 / RFC 9293 §3.10.5: a RST we start carries a sequence number the peer accepts.
// After an RTO rewinds SND.NXT, the peer may already hold octets beyond it.
TEST(Established, AbortAfterRtoRewindSendsAnAcceptableRst) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.Send(std::string(3000, 'z')).ok());
  h.DiscardSent();  // the initial window: 4 segments of 536 (no MSS option), up to seq 2145
  h.Advance(h.tcb().Snapshot().rto);  // RTO: SND.NXT back to 1, the first segment resent
  h.DiscardSent();
  h.tcb().Abort(h.now());
  h.ExpectSent(AllOf(HasFlags(wire::kRst), HasSeq(2145)));
}

}  // namespace
}  // namespace tcplab::testing
