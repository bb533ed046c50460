// The closing half of the state machine, one Tcb in virtual time: FIN-WAIT-1, FIN-WAIT-2,
// CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT, the half-close, RST and ABORT in each of them, and
// the errors the user calls return once a connection is going or gone.
//
// Sequence numbers are relative (see tcb_harness.h): after MakeEstablished() our SND.NXT is 1
// and the peer's RCV.NXT is 1; a FIN with no data before it therefore has seq 1.
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/harness/tcb_harness.h"

namespace tcplab::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using tcp::Verdict;
using wire::kAck;
using wire::kFin;
using wire::kPsh;
using wire::kRst;
using wire::kSyn;

constexpr Duration kNs{1};

// The status carries the errno name in its message and in the "tcplab.errno" payload.
void ExpectErrno(const absl::Status& s, absl::StatusCode code, const std::string& errno_name) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(errno_name)) << s;
  auto payload = s.GetPayload("tcplab.errno");
  ASSERT_TRUE(payload.has_value()) << s;
  EXPECT_EQ(std::string(*payload), errno_name);
}

Duration Rto(TcbHarness& h) { return h.tcb().Snapshot().rto; }

bool TimerArmed(TcbHarness& h, tcp::TimerKind kind) {
  for (const auto& t : h.tcb().Snapshot().timers) {
    if (t.kind == kind) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// ESTABLISHED: the user closes.

// RFC 9293 §3.10.4 CLOSE, ESTABLISHED: "form a FIN segment and send it, and set state to
// FIN-WAIT-1".
TEST(Established, ShutdownSendsFinAndEntersFinWait1) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1), HasAck(1), HasLen(0)));
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.4: the FIN comes after every octet already queued; it takes the sequence
// number following the last data octet (§3.3.1).
TEST(Established, FinFollowsSentDataWithNextSequenceNumber) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.Send("hello").ok());
  h.ExpectSent(AllOf(HasFlags(kPsh | kAck), HasSeq(1), HasPayload("hello")));
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(6), HasLen(0)));
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.4: "Queue this until all preceding SENDs have been segmentized, then form a
// FIN segment". With data still waiting for window, the FIN waits too, then rides on the
// segment carrying the last octets.
TEST(Established, FinQueuedBehindPendingDataRidesLastDataSegment) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/3);
  ASSERT_TRUE(h.Send("hello").ok());
  h.ExpectSent(AllOf(HasSeq(1), HasPayload("hel")));
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
  h.ExpectNothingSent();  // no window for "lo", and the FIN may not overtake it
  h.Deliver(h.Peer(kAck, 1, 4, {}, /*window=*/10));
  h.ExpectSent(AllOf(HasFlags(kFin | kPsh | kAck), HasSeq(4), HasPayload("lo")));
  h.ExpectNothingSent();
}

// RFC 9293 §3.3.1: the FIN occupies one sequence number, so its ACK is SEG.SEQ+1 and what we
// send afterwards carries SND.NXT = FIN's seq + 1.
TEST(FinWait2, FinConsumedOneSequenceNumber) {
  TcbHarness h;
  h.MakeFinWait1();
  h.Deliver(h.Peer(kAck, 1, 2));
  ASSERT_EQ(h.state(), TcpState::kFinWait2);
  h.Deliver(h.Peer(kAck, 1, 2, "x"));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(2)));
}

// RFC 9293 §3.3.1: the peer's FIN occupies one sequence number too: we acknowledge it with
// SEG.SEQ+1, at once (§3.10.7.4 eighth: "advance RCV.NXT over the FIN").
TEST(Established, PeerFinIsAcknowledgedWithSeqPlusOne) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kFin | kAck, 1, 1));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(2)));
  EXPECT_EQ(h.state(), TcpState::kCloseWait);
}

// RFC 9293 §3.10.7.4 seventh/eighth: a FIN beyond a hole is held (it is not "in sequence")
// until the missing data arrives; then it takes effect.
TEST(Established, OutOfOrderFinIsHeldUntilTheHoleFills) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kFin | kAck, 4, 1, "def"));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  EXPECT_FALSE(h.tcb().AtEof());
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(1)));  // duplicate ACK for the hole
  h.Deliver(h.Peer(kAck, 1, 1, "abc"));
  EXPECT_EQ(h.state(), TcpState::kCloseWait);
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(8)));  // 6 octets and the FIN
  EXPECT_EQ(h.Recv(), "abcdef");
  EXPECT_TRUE(h.tcb().AtEof());
}

// Same rule for a bare FIN: the FIN at seq 4 waits for octets 1..3.
TEST(Established, OutOfOrderBareFinIsHeldUntilTheHoleFills) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kFin | kAck, 4, 1));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(1)));
  h.Deliver(h.Peer(kAck, 1, 1, "abc"));
  EXPECT_EQ(h.state(), TcpState::kCloseWait);
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(5)));
  EXPECT_EQ(h.Recv(), "abc");
}

// RFC 2525 §2.17 ("Failure to send a RST after Half Duplex Close"): closing with unread data
// must reset the connection rather than lose the data silently. Linux tcp_close does the same.
TEST(Established, CloseWithUnreadDataSendsRst) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, "unread"));
  h.DiscardSent();
  ASSERT_TRUE(h.tcb().Close(h.now()).ok());
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(1)));
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kClosed);
}

// RFC 9293 §3.10.4 CLOSE with everything read: an orderly FIN, not a RST.
TEST(Established, CloseWithNothingUnreadSendsFin) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.tcb().Close(h.now()).ok());
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1)));
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
}

// ---------------------------------------------------------------------------------------------
// FIN-WAIT-1.

// RFC 9293 §3.10.7.4 fifth, FIN-WAIT-1: "if the FIN segment is now acknowledged, then enter
// FIN-WAIT-2".
TEST(FinWait1, AckOfFinEntersFinWait2) {
  TcbHarness h;
  h.MakeFinWait1();
  h.Deliver(h.Peer(kAck, 1, 2));
  EXPECT_EQ(h.state(), TcpState::kFinWait2);
  h.ExpectNothingSent();
  EXPECT_FALSE(TimerArmed(h, tcp::TimerKind::kRetransmission));
}

// RFC 9293 §3.10.7.4 fifth: an ACK that covers the data but not the FIN leaves us in
// FIN-WAIT-1.
TEST(FinWait1, AckOfDataButNotFinStaysInFinWait1) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.Send("abc").ok());
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 4));
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
  h.Deliver(h.Peer(kAck, 1, 5));
  EXPECT_EQ(h.state(), TcpState::kFinWait2);
}

// RFC 9293 §3.10.7.4 eighth, FIN-WAIT-1: a FIN before the ACK of ours: "enter the CLOSING
// state" (simultaneous close, §3.6 Figure 13).
TEST(FinWait1, FinWithoutAckOfOurFinEntersClosing) {
  TcbHarness h;
  h.MakeFinWait1();
  h.Deliver(h.Peer(kFin | kAck, 1, 1));
  EXPECT_EQ(h.state(), TcpState::kClosing);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(2)));
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.7.4 eighth, FIN-WAIT-1: "If our FIN has been ACKed (perhaps in this segment),
// then enter TIME-WAIT". One FIN+ACK that acknowledges our FIN skips CLOSING.
TEST(FinWait1, FinThatAcksOurFinEntersTimeWaitDirectly) {
  TcbHarness h;
  h.MakeFinWait1();
  h.Deliver(h.Peer(kFin | kAck, 1, 2));
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
  EXPECT_THAT(h.StatePath(), Not(::testing::Contains(TcpState::kClosing)));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(2)));
  EXPECT_TRUE(TimerArmed(h, tcp::TimerKind::kTimeWait));
}

// RFC 9293 §3.10.7.4 seventh, FIN-WAIT-1: "Once in the ESTABLISHED state, it is possible to
// deliver segment data": a half-closed connection still receives.
TEST(FinWait1, PeerDataIsStillReceived) {
  TcbHarness h;
  h.MakeFinWait1();
  h.Deliver(h.Peer(kAck, 1, 1, "more"));
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(5)));
  EXPECT_EQ(h.Recv(), "more");
}

// RFC 6298 (5.4) with RFC 9293 §3.10.4: our FIN is retransmitted like data when the RTO fires.
TEST(FinWait1, FinIsRetransmittedOnRto) {
  TcbHarness h;
  h.MakeFinWait1();
  Duration rto = Rto(h);
  h.Advance(rto - kNs);
  h.ExpectNothingSent();
  h.Advance(kNs);
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1), HasLen(0)));
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
}

// RFC 9293 §3.10.7.4 (acceptability) with RFC 6298 (5.4): after an RTO, retransmission
// restarts at SND.UNA, but the peer may already hold everything up to our FIN. A pure ACK must
// carry the highest sequence number sent (the RFC's SND.NXT, SND.MAX here), or the peer finds
// it below RCV.NXT and drops it unread. (Found by the property test: both sides ended up
// discarding each other's ACKs until the retransmission limit.)
TEST(FinWait1, AckAfterRtoRewindCarriesHighestSequenceNumberSent) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.Send(std::string(2000, 'd')).ok());  // four segments of at most 536
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());         // FIN at 2001
  h.DiscardSent();
  h.Advance(Rto(h));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(536)));  // cwnd is one segment after the RTO
  h.ExpectNothingSent();
  h.Deliver(h.Peer(kAck, 1, 1, "x"));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2002), HasAck(2), HasLen(0)));
}

// RFC 9293 §3.10.4 CLOSE, FIN-WAIT-1/2: "Strictly speaking, this is an error ... an 'ok'
// response would be acceptable": a second shutdown changes nothing and sends nothing.
TEST(FinWait1, ShutdownTwiceIsIdempotent) {
  TcbHarness h;
  h.MakeFinWait1();
  EXPECT_TRUE(h.tcb().Shutdown(h.now()).ok());
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.2 SEND, FIN-WAIT-1: "Return 'error: connection closing'", as EPIPE.
TEST(FinWait1, SendAfterShutdownFailsWithEpipe) {
  TcbHarness h;
  h.MakeFinWait1();
  auto n = h.Send("late");
  ASSERT_FALSE(n.ok());
  ExpectErrno(n.status(), absl::StatusCode::kFailedPrecondition, "EPIPE");
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.7.4 seventh with RFC 2525 §2.17: the user called Close(), nobody will read:
// data arriving now is answered with a RST and the connection goes (Linux does the same).
TEST(FinWait1, DataAfterCloseIsAnsweredWithRst) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.tcb().Close(h.now()).ok());
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 1, "late"));
  // The RST carries SEG.ACK: exactly what the peer expects next, whether or not our FIN
  // reached it (Linux does the same; seq 2, after our FIN, would be challenged if it had not).
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(1)));
  EXPECT_EQ(h.state(), TcpState::kClosed);
}

// ---------------------------------------------------------------------------------------------
// FIN-WAIT-2.

// RFC 9293 §3.10.7.4 seventh, FIN-WAIT-2: the peer may keep sending after our FIN.
TEST(FinWait2, PeerDataIsStillReceived) {
  TcbHarness h;
  h.MakeFinWait2();
  h.Deliver(h.Peer(kAck, 1, 2, "half"));
  h.Deliver(h.Peer(kAck, 5, 2, "-close"));
  EXPECT_EQ(h.state(), TcpState::kFinWait2);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(5)));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(11)));
  EXPECT_EQ(h.Recv(), "half-close");
}

// RFC 9293 §3.10.7.4 eighth, FIN-WAIT-2: "Enter the TIME-WAIT state. Start the time-wait
// timer".
TEST(FinWait2, FinEntersTimeWait) {
  TcbHarness h;
  h.MakeFinWait2();
  h.Deliver(h.Peer(kFin | kAck, 1, 2));
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(2)));
  EXPECT_TRUE(TimerArmed(h, tcp::TimerKind::kTimeWait));
}

// RFC 9293 §3.10.7.4: FIN-WAIT-2 waits for the peer's FIN with no timer of its own (Linux's
// tcp_fin_timeout applies only to orphaned sockets); our FIN is acknowledged, so nothing is
// retransmitted.
TEST(FinWait2, NothingIsRetransmittedWhileWaitingForPeerFin) {
  TcbHarness h;
  h.MakeFinWait2();
  h.Advance(std::chrono::seconds(120));
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kFinWait2);
}

// RFC 9293 §3.10.7.4 seventh with RFC 2525 §2.17: after Close(), data gets a RST, in
// FIN-WAIT-2 as well.
TEST(FinWait2, DataAfterCloseIsAnsweredWithRst) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.tcb().Close(h.now()).ok());
  h.Deliver(h.Peer(kAck, 1, 2));
  ASSERT_EQ(h.state(), TcpState::kFinWait2);
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 2, "late"));
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(2)));
  EXPECT_EQ(h.state(), TcpState::kClosed);
}

// ---------------------------------------------------------------------------------------------
// CLOSE-WAIT and LAST-ACK.

// RFC 9293 §3.10.2 SEND, CLOSE-WAIT: "Queue the buffer ... segmentize": the half-close lets
// us keep sending after the peer's FIN.
TEST(CloseWait, DataCanStillBeSent) {
  TcbHarness h;
  h.MakeCloseWait();
  ASSERT_TRUE(h.Send("reply").ok());
  h.ExpectSent(AllOf(HasFlags(kPsh | kAck), HasSeq(1), HasAck(2), HasPayload("reply")));
  EXPECT_EQ(h.state(), TcpState::kCloseWait);
}

// RFC 9293 §3.10.3 RECEIVE, CLOSE-WAIT: data received before the FIN is still returned; once
// it is read the stream is at its end ("connection closing").
TEST(CloseWait, RecvReturnsTheDataThenEof) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kFin | kPsh | kAck, 1, 1, "last words"));
  ASSERT_EQ(h.state(), TcpState::kCloseWait);
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(12)));
  EXPECT_FALSE(h.tcb().AtEof());
  EXPECT_EQ(h.Recv(4), "last");
  EXPECT_FALSE(h.tcb().AtEof());
  EXPECT_EQ(h.Recv(), " words");
  EXPECT_TRUE(h.tcb().AtEof());
  auto n = h.tcb().Recv({}, h.now());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
}

// RFC 9293 §3.10.4 CLOSE, CLOSE-WAIT: "Queue this request until all preceding SENDs have been
// segmentized; then send a FIN segment, enter LAST-ACK state".
TEST(CloseWait, ShutdownSendsFinAndEntersLastAck) {
  TcbHarness h;
  h.MakeCloseWait();
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  EXPECT_EQ(h.state(), TcpState::kLastAck);
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1), HasAck(2)));
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.7.4 seventh, CLOSE-WAIT: text after the peer's FIN "should not occur"; it is
// not delivered.
TEST(CloseWait, DataBeyondThePeersFinIsNotDelivered) {
  TcbHarness h;
  h.MakeCloseWait();
  h.Deliver(h.Peer(kAck, 2, 1, "bogus"));
  EXPECT_EQ(h.tcb().readable(), 0u);
  EXPECT_EQ(h.tcb().rcv_nxt(), SeqNum(kPeerIss + 2));
  EXPECT_EQ(h.state(), TcpState::kCloseWait);
}

// RFC 9293 §3.10.7.4 fifth, LAST-ACK: "If our FIN is now acknowledged, delete the TCB, enter
// the CLOSED state". An orderly end carries no error.
TEST(LastAck, AckOfFinCloses) {
  TcbHarness h;
  h.MakeLastAck();
  h.Deliver(h.Peer(kAck, 2, 2));
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_TRUE(h.tcb().error().ok()) << h.tcb().error();
  h.ExpectNothingSent();
  EXPECT_EQ(h.tcb().NextDeadline(), kNever);
}

// RFC 9293 §3.10.7.4 fifth, LAST-ACK: an ACK below our FIN leaves us waiting.
TEST(LastAck, AckBelowFinKeepsWaiting) {
  TcbHarness h;
  h.MakeCloseWait();
  ASSERT_TRUE(h.Send("bye").ok());
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 2, 4));
  EXPECT_EQ(h.state(), TcpState::kLastAck);
  h.Deliver(h.Peer(kAck, 2, 5));
  EXPECT_EQ(h.state(), TcpState::kClosed);
}

// RFC 6298 (5.4): in LAST-ACK the unacknowledged FIN is retransmitted when the RTO fires.
TEST(LastAck, FinIsRetransmittedOnRto) {
  TcbHarness h;
  h.MakeLastAck();
  Duration rto = Rto(h);
  h.Advance(rto - kNs);
  h.ExpectNothingSent();
  h.Advance(kNs);
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1), HasAck(2)));
  EXPECT_EQ(h.state(), TcpState::kLastAck);
}

// RFC 9293 §3.10.2 SEND, LAST-ACK: "Return 'error: connection closing'".
TEST(LastAck, SendFailsWithEpipe) {
  TcbHarness h;
  h.MakeLastAck();
  auto n = h.Send("x");
  ASSERT_FALSE(n.ok());
  ExpectErrno(n.status(), absl::StatusCode::kFailedPrecondition, "EPIPE");
}

// RFC 9293 §3.10.4 CLOSE, LAST-ACK: the second close is a no-op.
TEST(LastAck, ShutdownTwiceIsIdempotent) {
  TcbHarness h;
  h.MakeLastAck();
  EXPECT_TRUE(h.tcb().Shutdown(h.now()).ok());
  EXPECT_EQ(h.state(), TcpState::kLastAck);
  h.ExpectNothingSent();
}

// ---------------------------------------------------------------------------------------------
// CLOSING.

// RFC 9293 §3.10.7.4 fifth, CLOSING: "if the ACK acknowledges our FIN, then enter the
// TIME-WAIT state".
TEST(Closing, AckOfFinEntersTimeWait) {
  TcbHarness h;
  h.MakeClosing();
  h.Deliver(h.Peer(kAck, 2, 2));
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
  EXPECT_TRUE(TimerArmed(h, tcp::TimerKind::kTimeWait));
  h.ExpectNothingSent();
}

// RFC 6298 (5.4): in CLOSING our FIN is still unacknowledged and is retransmitted on RTO.
TEST(Closing, FinIsRetransmittedOnRto) {
  TcbHarness h;
  h.MakeClosing();
  // MakeClosing sent our FIN and received the peer's at one instant; the timer runs from then.
  Duration rto = Rto(h);
  h.Advance(rto - kNs);
  h.ExpectNothingSent();
  h.Advance(kNs);
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1), HasAck(2)));
  EXPECT_EQ(h.state(), TcpState::kClosing);
}

// ---------------------------------------------------------------------------------------------
// TIME-WAIT.

// RFC 9293 §3.4.2 / §3.10.7.4: TIME-WAIT lasts 2·MSL, then the TCB is deleted. Not a
// nanosecond less.
TEST(TimeWait, LastsExactlyTwoMsl) {
  TcbHarness h;
  h.MakeTimeWait();
  const Duration two_msl = 2 * h.config().msl;
  h.Advance(two_msl - kNs);
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
  h.Advance(kNs);
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_TRUE(h.tcb().error().ok()) << h.tcb().error();
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.7.4 eighth, TIME-WAIT: "Remain in the TIME-WAIT state. Restart the 2 MSL
// time-wait timeout." The retransmitted FIN means our last ACK was lost: ACK it again.
TEST(TimeWait, RetransmittedFinIsReAckedAndTimerRestarts) {
  TcbHarness h;
  h.MakeTimeWait();
  const Duration two_msl = 2 * h.config().msl;
  h.Advance(two_msl / 2);
  h.Deliver(h.Peer(kFin | kAck, 1, 2));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(2)));
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
  h.Advance(two_msl - kNs);  // the original deadline has long passed
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
  h.Advance(kNs);
  EXPECT_EQ(h.state(), TcpState::kClosed);
}

// RFC 9293 §3.10.7.4 first: an old duplicate lies wholly below RCV.NXT, fails the
// acceptability test and is only acknowledged; its data never reaches the user.
TEST(TimeWait, OldDuplicateDataIsAckedAndNotDelivered) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, "abc"));
  EXPECT_EQ(h.Recv(), "abc");
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  h.Deliver(h.Peer(kFin | kAck, 4, 2));
  ASSERT_EQ(h.state(), TcpState::kTimeWait);
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 2, "abc"));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kOutOfWindow);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(5)));
  EXPECT_EQ(h.tcb().readable(), 0u);
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
}

// RFC 9293 §3.10.7.4 second, TIME-WAIT: "If the RST bit is set, then enter the CLOSED state,
// delete the TCB, and return" (for a RST with exactly RCV.NXT, RFC 5961 §3.2).
// RFC 1337 describes how such a RST "assassinates" TIME-WAIT and proposes ignoring RSTs here;
// RFC 9293 did not adopt that, and Linux follows RFC 9293 by default (net.ipv4.tcp_rfc1337=0).
TEST(TimeWait, RstWithExactSeqCloses) {
  TcbHarness h;
  h.MakeTimeWait();
  h.Deliver(h.Peer(kRst, 2));
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kResetConnection);
  h.ExpectNothingSent();
}

// RFC 5961 §3.2: a RST inside the window but not at RCV.NXT gets a challenge ACK.
TEST(TimeWait, InWindowRstWithInexactSeqIsChallenged) {
  TcbHarness h;
  h.MakeTimeWait();
  h.Deliver(h.Peer(kRst, 100));
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(2)));
}

// RFC 9293 §3.10.7.4 fourth with RFC 5961 §4.2: a SYN in a synchronized state, TIME-WAIT
// included, is answered with a challenge ACK whatever its sequence number. (Whether a SYN may
// reopen the 4-tuple, RFC 6191, is the stack's decision, made before the TCB sees it.)
TEST(TimeWait, SynIsAnsweredWithChallengeAck) {
  TcbHarness h;
  h.MakeTimeWait();
  h.Deliver(h.Peer(kSyn, 100));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kChallengeAcked);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2), HasAck(2)));
  EXPECT_EQ(h.state(), TcpState::kTimeWait);
}

// RFC 9293 §3.10.7.4: a pure ACK in TIME-WAIT is acceptable and needs no answer; it neither
// closes nor restarts the timer.
TEST(TimeWait, DuplicateAckIsIgnoredAndTimerKeepsRunning) {
  TcbHarness h;
  h.MakeTimeWait();
  const Duration two_msl = 2 * h.config().msl;
  h.Advance(two_msl / 2);
  h.Deliver(h.Peer(kAck, 2, 2));
  h.ExpectNothingSent();
  h.Advance(two_msl / 2);
  EXPECT_EQ(h.state(), TcpState::kClosed);
}

// RFC 9293 §3.10.2 SEND, TIME-WAIT: "Return 'error: connection closing'".
TEST(TimeWait, SendFailsWithEpipe) {
  TcbHarness h;
  h.MakeTimeWait();
  auto n = h.Send("x");
  ASSERT_FALSE(n.ok());
  ExpectErrno(n.status(), absl::StatusCode::kFailedPrecondition, "EPIPE");
}

// ---------------------------------------------------------------------------------------------
// RST in each synchronized state (RFC 9293 §3.10.7.4 second, RFC 5961 §3.2): a RST whose
// sequence number is exactly RCV.NXT closes; one elsewhere in the window is challenged with
// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and changes nothing.

void ExpectExactRstCloses(TcbHarness& h, uint32_t rcv_nxt) {
  const TcpState before = h.state();
  h.Deliver(h.Peer(kRst, rcv_nxt));
  EXPECT_EQ(h.state(), TcpState::kClosed) << "RST in " << before;
  EXPECT_EQ(h.LastInVerdict(), Verdict::kResetConnection);
  h.ExpectNothingSent();
  EXPECT_EQ(h.tcb().NextDeadline(), kNever);
}

// RFC 9293 §3.10.7.4 second (ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT): "any outstanding
// RECEIVEs and SEND should receive 'reset' responses": ECONNRESET.
void ExpectResetError(TcbHarness& h) {
  ExpectErrno(h.tcb().error(), absl::StatusCode::kAborted, "ECONNRESET");
  auto n = h.Send("x");
  ASSERT_FALSE(n.ok());
  ExpectErrno(n.status(), absl::StatusCode::kAborted, "ECONNRESET");
  uint8_t buf[8];
  auto r = h.tcb().Recv(buf, h.now());
  ASSERT_FALSE(r.ok());
  ExpectErrno(r.status(), absl::StatusCode::kAborted, "ECONNRESET");
}

void ExpectInexactRstIsChallenged(TcbHarness& h, uint32_t rcv_nxt, uint32_t snd_nxt) {
  const TcpState before = h.state();
  h.Deliver(h.Peer(kRst, rcv_nxt + 10));
  EXPECT_EQ(h.state(), before);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kChallengeAcked);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(snd_nxt), HasAck(rcv_nxt)));
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.7.4 second, RFC 5961 §3.2.
TEST(Established, RstWithExactSeqClosesWithEconnreset) {
  TcbHarness h;
  h.MakeEstablished();
  ExpectExactRstCloses(h, 1);
  ExpectResetError(h);
}

// RFC 5961 §3.2.
TEST(Established, InWindowRstWithInexactSeqIsChallenged) {
  TcbHarness h;
  h.MakeEstablished();
  ExpectInexactRstIsChallenged(h, 1, 1);
}

// RFC 9293 §3.10.7.4 second, RFC 5961 §3.2.
TEST(FinWait1, RstWithExactSeqClosesWithEconnreset) {
  TcbHarness h;
  h.MakeFinWait1();
  ExpectExactRstCloses(h, 1);
  ExpectResetError(h);
}

// RFC 5961 §3.2.
TEST(FinWait1, InWindowRstWithInexactSeqIsChallenged) {
  TcbHarness h;
  h.MakeFinWait1();
  ExpectInexactRstIsChallenged(h, 1, 2);
}

// RFC 9293 §3.10.7.4 second, RFC 5961 §3.2.
TEST(FinWait2, RstWithExactSeqClosesWithEconnreset) {
  TcbHarness h;
  h.MakeFinWait2();
  ExpectExactRstCloses(h, 1);
  ExpectResetError(h);
}

// RFC 5961 §3.2.
TEST(FinWait2, InWindowRstWithInexactSeqIsChallenged) {
  TcbHarness h;
  h.MakeFinWait2();
  ExpectInexactRstIsChallenged(h, 1, 2);
}

// RFC 9293 §3.10.7.4 second, RFC 5961 §3.2.
TEST(CloseWait, RstWithExactSeqClosesWithEconnreset) {
  TcbHarness h;
  h.MakeCloseWait();
  ExpectExactRstCloses(h, 2);
  ExpectResetError(h);
}

// RFC 5961 §3.2.
TEST(CloseWait, InWindowRstWithInexactSeqIsChallenged) {
  TcbHarness h;
  h.MakeCloseWait();
  ExpectInexactRstIsChallenged(h, 2, 1);
}

// RFC 9293 §3.10.7.4 second, CLOSING: "enter the CLOSED state, delete the TCB, and return".
TEST(Closing, RstWithExactSeqCloses) {
  TcbHarness h;
  h.MakeClosing();
  ExpectExactRstCloses(h, 2);
}

// RFC 5961 §3.2.
TEST(Closing, InWindowRstWithInexactSeqIsChallenged) {
  TcbHarness h;
  h.MakeClosing();
  ExpectInexactRstIsChallenged(h, 2, 2);
}

// RFC 9293 §3.10.7.4 second, LAST-ACK: "enter the CLOSED state, delete the TCB, and return".
TEST(LastAck, RstWithExactSeqCloses) {
  TcbHarness h;
  h.MakeLastAck();
  ExpectExactRstCloses(h, 2);
}

// RFC 5961 §3.2.
TEST(LastAck, InWindowRstWithInexactSeqIsChallenged) {
  TcbHarness h;
  h.MakeLastAck();
  ExpectInexactRstIsChallenged(h, 2, 2);
}

// RFC 9293 §3.10.7.4 first: a RST outside the window is dropped without an answer.
TEST(FinWait2, OutOfWindowRstIsIgnored) {
  TcbHarness h;
  h.MakeFinWait2();
  h.Deliver(h.Peer(kRst, 1 + 200000));
  EXPECT_EQ(h.state(), TcpState::kFinWait2);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kIgnored);
  h.ExpectNothingSent();
}

// ---------------------------------------------------------------------------------------------
// ABORT (RFC 9293 §3.10.5): in SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2 and
// CLOSE-WAIT "send a reset segment: <SEQ=SND.NXT><CTL=RST>"; in SYN-SENT, CLOSING, LAST-ACK
// and TIME-WAIT just delete the TCB.

void ExpectAbortSendsRst(TcbHarness& h, uint32_t snd_nxt) {
  h.tcb().Abort(h.now());
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(snd_nxt)));
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_EQ(h.tcb().NextDeadline(), kNever);
}

void ExpectAbortSendsNothing(TcbHarness& h) {
  h.tcb().Abort(h.now());
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_EQ(h.tcb().NextDeadline(), kNever);
}

// RFC 9293 §3.10.5, SYN-RECEIVED.
TEST(SynReceived, AbortSendsRstWithSndNxt) {
  TcbHarness h;
  h.MakeSynReceived();
  ExpectAbortSendsRst(h, 1);
}

// RFC 9293 §3.10.5, ESTABLISHED. SND.NXT counts the data sent, not the data still queued.
TEST(Established, AbortSendsRstWithSndNxt) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/3);
  ASSERT_TRUE(h.Send("hello").ok());  // "hel" goes, "lo" waits for window
  h.DiscardSent();
  ExpectAbortSendsRst(h, 4);
}

// RFC 9293 §3.10.5, FIN-WAIT-1: SND.NXT is past our FIN.
TEST(FinWait1, AbortSendsRstWithSndNxt) {
  TcbHarness h;
  h.MakeFinWait1();
  ExpectAbortSendsRst(h, 2);
}

// RFC 9293 §3.10.5, FIN-WAIT-2.
TEST(FinWait2, AbortSendsRstWithSndNxt) {
  TcbHarness h;
  h.MakeFinWait2();
  ExpectAbortSendsRst(h, 2);
}

// RFC 9293 §3.10.5, CLOSE-WAIT.
TEST(CloseWait, AbortSendsRstWithSndNxt) {
  TcbHarness h;
  h.MakeCloseWait();
  ExpectAbortSendsRst(h, 1);
}

// RFC 9293 §3.10.5, SYN-SENT: "delete the TCB": the peer knows nothing of us yet.
TEST(SynSent, AbortSendsNothing) {
  TcbHarness h;
  h.OpenActive();
  ExpectAbortSendsNothing(h);
}

// RFC 9293 §3.10.5, CLOSING: "Respond with 'ok' and delete the TCB".
TEST(Closing, AbortSendsNothing) {
  TcbHarness h;
  h.MakeClosing();
  ExpectAbortSendsNothing(h);
}

// RFC 9293 §3.10.5, LAST-ACK.
TEST(LastAck, AbortSendsNothing) {
  TcbHarness h;
  h.MakeLastAck();
  ExpectAbortSendsNothing(h);
}

// RFC 9293 §3.10.5, TIME-WAIT.
TEST(TimeWait, AbortSendsNothing) {
  TcbHarness h;
  h.MakeTimeWait();
  ExpectAbortSendsNothing(h);
}

// ---------------------------------------------------------------------------------------------
// User calls on a connection that is not there (RFC 9293 §3.10: "error: connection does not
// exist" is ENOTCONN; a reset is ECONNRESET; a timeout ETIMEDOUT).

// RFC 9293 §3.10.2 SEND, CLOSED: "return 'error: connection does not exist'".
TEST(Closed, SendOnNeverOpenedConnectionFailsWithEnotconn) {
  TcbHarness h;
  auto n = h.Send("x");
  ASSERT_FALSE(n.ok());
  ExpectErrno(n.status(), absl::StatusCode::kFailedPrecondition, "ENOTCONN");
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.4 CLOSE, CLOSED: "return 'error: connection does not exist'".
TEST(Closed, ShutdownOnNeverOpenedConnectionFailsWithEnotconn) {
  TcbHarness h;
  ExpectErrno(h.tcb().Shutdown(h.now()), absl::StatusCode::kFailedPrecondition, "ENOTCONN");
}

// After an orderly close, the connection no longer exists: ENOTCONN, not an old error.
TEST(Closed, SendAfterOrderlyCloseFailsWithEnotconn) {
  TcbHarness h;
  h.MakeLastAck();
  h.Deliver(h.Peer(kAck, 2, 2));
  ASSERT_EQ(h.state(), TcpState::kClosed);
  auto n = h.Send("x");
  ASSERT_FALSE(n.ok());
  ExpectErrno(n.status(), absl::StatusCode::kFailedPrecondition, "ENOTCONN");
}

// RFC 9293 §3.10.7.4 second: after a reset, shutdown reports the reset too.
TEST(Closed, ShutdownAfterResetFailsWithEconnreset) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kRst, 1));
  ASSERT_EQ(h.state(), TcpState::kClosed);
  ExpectErrno(h.tcb().Shutdown(h.now()), absl::StatusCode::kAborted, "ECONNRESET");
}

// RFC 9293 §3.8.3 R2: when our FIN is never acknowledged the connection gives up after
// data_retries retransmissions; the user sees ETIMEDOUT.
TEST(FinWait1, UnacknowledgedFinTimesOutWithEtimedout) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.data_retries = 2;
  TcbHarness h(cfg);
  h.MakeFinWait1();
  h.Advance(std::chrono::seconds(60));
  ASSERT_EQ(h.state(), TcpState::kClosed);
  EXPECT_EQ(h.tcb().Snapshot().counters.rto_expirations, 3u);
  ExpectErrno(h.tcb().error(), absl::StatusCode::kDeadlineExceeded, "ETIMEDOUT");
  auto n = h.Send("x");
  ASSERT_FALSE(n.ok());
  ExpectErrno(n.status(), absl::StatusCode::kDeadlineExceeded, "ETIMEDOUT");
}

// RFC 9293 §3.10.4 CLOSE, SYN-SENT: "Delete the TCB and return 'error: closing' responses to
// any queued SENDs"; nothing goes on the wire.
TEST(SynSent, CloseDeletesTheTcbSilently) {
  TcbHarness h;
  h.OpenActive();
  EXPECT_TRUE(h.tcb().Close(h.now()).ok());
  EXPECT_EQ(h.state(), TcpState::kClosed);
  h.ExpectNothingSent();
  h.Advance(std::chrono::seconds(10));
  h.ExpectNothingSent();  // no SYN retransmission either
}

// RFC 9293 §3.10.4 CLOSE, SYN-SENT/SYN-RECEIVED: a shutdown before the handshake completes is
// queued; the FIN follows the handshake.
TEST(SynSent, ShutdownIsQueuedUntilEstablished) {
  TcbHarness h;
  h.OpenActive();
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  h.ExpectNothingSent();
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
}

}  // namespace
}  // namespace tcplab::testing

namespace tcplab::testing {
namespace {

// Linux's tcp_fin_timeout: a FIN-WAIT-2 the user has closed (an orphan) does not wait forever
// for a FIN that may never come. RFC 9293 itself sets no such limit.
TEST(FinWait2, OrphanedConnectionTimesOut) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.fin_wait2_timeout = 5s;
  TcbHarness h(cfg);
  h.MakeEstablished();
  ASSERT_TRUE(h.tcb().Close(h.now()).ok());
  h.ExpectSent(HasFlags(wire::kFin | wire::kAck));
  h.Deliver(h.Peer(wire::kAck, 1, 2));
  ASSERT_EQ(h.state(), TcpState::kFinWait2);
  h.Advance(5s - 1ns);
  EXPECT_EQ(h.state(), TcpState::kFinWait2);
  h.Advance(1ns);
  EXPECT_EQ(h.state(), TcpState::kClosed);
  h.ExpectNothingSent();
}

// A half-closed connection the user still holds may stay in FIN-WAIT-2 and keep receiving.
TEST(FinWait2, HalfClosedConnectionWaitsForThePeer) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.fin_wait2_timeout = 5s;
  TcbHarness h(cfg);
  h.MakeFinWait2();
  h.Advance(60s);
  EXPECT_EQ(h.state(), TcpState::kFinWait2);
  h.Deliver(h.Peer(wire::kAck, 1, 2, "late"));
  EXPECT_EQ(h.Recv(), "late");
}

}  // namespace
}  // namespace tcplab::testing
