// The three-way handshake, one rule per test: CLOSED, active OPEN and SYN-SENT (RFC 9293
// §3.10.1, §3.10.7.3), option negotiation on the SYNs (RFC 9293 §3.7.1, RFC 7323, RFC 2018),
// SYN retransmission (RFC 6298, RFC 9293 §3.8.3), simultaneous open (RFC 9293 §3.5), and
// SYN-RECEIVED reached from LISTEN (RFC 9293 §3.10.7.2, §3.10.7.4).
//
// Sequence numbers in Peer() and the matchers are relative: ours to our ISS (kOurIss), the
// peer's to its ISS (kPeerIss). So the lesson's handshake reads
//   SYN seq=0;  SYN+ACK seq=0 ack=1;  ACK seq=1 ack=1.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "engine/tcp/tcb.h"
#include "tests/unit/harness/tcb_harness.h"

namespace tcplab::testing {
namespace {

using std::chrono::milliseconds;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using tcp::Verdict;
using wire::kAck;
using wire::kFin;
using wire::kPsh;
using wire::kRst;
using wire::kSyn;

// TestConfig() with window scaling, timestamps and SACK switched on.
tcp::TcpConfig WithAllOptions() {
  tcp::TcpConfig c = TestConfig();
  c.window_scaling = true;
  c.timestamps = true;
  c.sack = true;
  return c;
}

// Peer options, one field at a time on top of `o`.
PeerOptions Mss(uint16_t mss, PeerOptions o = {}) {
  o.mss = mss;
  return o;
}
PeerOptions Wscale(uint8_t shift, PeerOptions o = {}) {
  o.wscale = shift;
  return o;
}
PeerOptions SackOk(PeerOptions o = {}) {
  o.sack_permitted = true;
  return o;
}
PeerOptions Ts(uint32_t val, uint32_t ecr, PeerOptions o = {}) {
  o.ts = wire::Timestamps{val, ecr};
  return o;
}

// The errno a socket user would see, from the status payload the engine attaches.
std::string Errno(const absl::Status& s) {
  auto p = s.GetPayload("tcplab.errno");
  return p ? std::string(*p) : std::string();
}

// The SYN+ACK the peer answers our SYN with (seq=0 ack=1), carrying `o`.
SegmentRepr SynAck(TcbHarness& h, const PeerOptions& o = {}, uint16_t window = 65535) {
  SegmentRepr s = h.Peer(kSyn | kAck, 0, 1, {}, window);
  s.options.mss = o.mss;
  s.options.window_scale = o.wscale;
  s.options.sack_permitted = o.sack_permitted;
  s.options.timestamps = o.ts;
  return s;
}

// A SYN from the peer (seq=0) carrying `o`.
SegmentRepr Syn(TcbHarness& h, const PeerOptions& o = {}) {
  SegmentRepr s = h.Peer(kSyn, 0);
  s.options.mss = o.mss;
  s.options.window_scale = o.wscale;
  s.options.sack_permitted = o.sack_permitted;
  s.options.timestamps = o.ts;
  return s;
}

// =============================================================================================
// CLOSED

// RFC 9293 §3.10.7.1: a TCB that was never opened takes nothing; replies for closed ports are
// the stack's business, so the TCB itself sends nothing.
TEST(Closed, SegmentToUnopenedTcbIsIgnoredAndUnanswered) {
  TcbHarness h;
  h.Deliver(h.Peer(kSyn, 0));
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kIgnored);
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.2: SEND in CLOSED is "error: connection does not exist".
TEST(Closed, SendOnUnopenedTcbIsEnotconn) {
  TcbHarness h;
  absl::StatusOr<size_t> n = h.Send("data");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(Errno(n.status()), "ENOTCONN");
  h.ExpectNothingSent();
}

// =============================================================================================
// Active OPEN (CLOSED -> SYN-SENT)

// RFC 9293 §3.10.1: "A SYN segment of the form <SEQ=ISS><CTL=SYN> is sent ... enter SYN-SENT".
TEST(ActiveOpen, SendsSynWithIssAndEntersSynSent) {
  TcbHarness h;
  h.tcb().OpenActive(SeqNum(kOurIss), 0, h.now());
  SegmentRepr syn = h.ExpectSent(AllOf(HasFlags(kSyn), HasSeq(0), HasLen(0)));
  EXPECT_EQ(syn.seq, SeqNum(kOurIss));
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  EXPECT_THAT(h.StatePath(), ElementsAre(TcpState::kSynSent));
  h.ExpectNothingSent();
}

// RFC 9293 §3.7.1: the MSS option goes on every SYN; with the other options switched off
// (TestConfig) nothing else is offered.
TEST(ActiveOpen, SynOffersMssAndNoDisabledOptions) {
  TcbHarness h;
  h.tcb().OpenActive(SeqNum(kOurIss), 0, h.now());
  SegmentRepr syn = h.ExpectSent(HasFlags(kSyn));
  EXPECT_EQ(syn.options.mss, std::optional<uint16_t>(1460));
  EXPECT_FALSE(syn.options.window_scale.has_value());
  EXPECT_FALSE(syn.options.sack_permitted);
  EXPECT_FALSE(syn.options.timestamps.has_value());
}

// RFC 7323 §2.2, §3.2 and RFC 2018 §2: when enabled, the SYN offers window scale (the shift
// our receive buffer needs), timestamps (TSval = our clock, TSecr = 0) and SACK-permitted.
TEST(ActiveOpen, SynOffersConfiguredOptions) {
  TcbHarness h(WithAllOptions());
  h.tcb().OpenActive(SeqNum(kOurIss), /*ts_offset=*/7, h.now());
  SegmentRepr syn = h.ExpectSent(HasFlags(kSyn));
  EXPECT_EQ(syn.options.mss, std::optional<uint16_t>(1460));
  // A 64 KiB buffer needs a shift of 1 to be advertised in 16 bits.
  EXPECT_EQ(syn.options.window_scale, std::optional<uint8_t>(1));
  EXPECT_TRUE(syn.options.sack_permitted);
  ASSERT_TRUE(syn.options.timestamps.has_value());
  EXPECT_EQ(syn.options.timestamps->val, 1000u + 7u);  // 1 s on the clock, in ms, plus offset
  EXPECT_EQ(syn.options.timestamps->ecr, 0u);
}

// RFC 7323 §2.2: "The window field in a segment where the SYN bit is set MUST NOT be scaled."
TEST(ActiveOpen, SynWindowIsNotScaled) {
  TcbHarness h(WithAllOptions());
  h.tcb().OpenActive(SeqNum(kOurIss), 0, h.now());
  h.ExpectSent(AllOf(HasFlags(kSyn), HasWindow(65535)));
}

// =============================================================================================
// SYN-SENT (RFC 9293 §3.10.7.3)

// The lesson's handshake in absolute numbers: SYN seq=x; SYN+ACK seq=y ack=x+1;
// ACK seq=x+1 ack=y+1.
TEST(SynSent, HandshakeIsSynThenSynAckThenAck) {
  TcbHarness h;
  const uint32_t x = kOurIss, y = kPeerIss;
  h.tcb().OpenActive(SeqNum(x), 0, h.now());
  SegmentRepr syn = h.ExpectSent(HasFlags(kSyn));
  EXPECT_EQ(syn.seq, SeqNum(x));
  h.Deliver(h.PeerAbs(kSyn | kAck, SeqNum(y), SeqNum(x + 1)));
  SegmentRepr ack = h.ExpectSent(HasFlags(kAck));
  EXPECT_EQ(ack.seq, SeqNum(x + 1));
  EXPECT_EQ(ack.ack, SeqNum(y + 1));
  h.ExpectNothingSent();
}

// §3.10.7.3 fourth: SYN+ACK with an acceptable ACK: SND.UNA advances, RCV.NXT = SEG.SEQ+1,
// "enter ESTABLISHED state and ... send <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>".
TEST(SynSent, SynAckWithAcceptableAckEntersEstablished) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  EXPECT_THAT(h.StatePath(), ElementsAre(TcpState::kSynSent, TcpState::kEstablished));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.snd_una, kOurIss + 1);
  EXPECT_EQ(s.irs, kPeerIss);
  EXPECT_EQ(s.rcv_nxt, kPeerIss + 1);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1), HasLen(0)));
}

// §3.10.7.3 first: "If SEG.ACK =< ISS ... send a reset <SEQ=SEG.ACK><CTL=RST>".
TEST(SynSent, AckAtIssIsAnsweredWithRstSeqSegAck) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kSyn | kAck, 0, 0));
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(0)));
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kBadAck);
}

// §3.10.7.3 first: "... or SEG.ACK > SND.NXT, send a reset <SEQ=SEG.ACK><CTL=RST>".
TEST(SynSent, AckBeyondSndNxtIsAnsweredWithRstSeqSegAck) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kAck, 0, 500));
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(500)));
  EXPECT_EQ(h.state(), TcpState::kSynSent);
}

// §3.10.7.3 first: an unacceptable ACK on a RST: "if so drop the segment and return".
TEST(SynSent, RstWithUnacceptableAckIsDroppedSilently) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kRst | kAck, 0, 500));
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kSynSent);
}

// §3.10.7.3 second: RST with an acceptable ACK: "signal to the user 'error: connection
// reset', drop the segment, enter CLOSED state" — a refused connection, as connect(2) says.
TEST(SynSent, RstWithAcceptableAckRefusesTheConnection) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kRst | kAck, 0, 1));
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kResetConnection);
  EXPECT_EQ(Errno(h.tcb().error()), "ECONNREFUSED");
  h.ExpectNothingSent();
  EXPECT_EQ(h.tcb().NextDeadline(), kNever);  // no SYN retransmission after that
}

// The refused connection reports ECONNREFUSED on later SEND and RECEIVE calls.
TEST(SynSent, SendAndRecvAfterRefusalFailWithEconnrefused) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kRst | kAck, 0, 1));
  absl::StatusOr<size_t> sent = h.Send("hello");
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(Errno(sent.status()), "ECONNREFUSED");
  EXPECT_THAT(sent.status().message(), HasSubstr("ECONNREFUSED"));
  uint8_t buf[16];
  absl::StatusOr<size_t> got = h.tcb().Recv(buf, h.now());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(Errno(got.status()), "ECONNREFUSED");
}

// §3.10.7.3 second: "If the RST bit is set ... Otherwise (no ACK), drop the segment and
// return" — a blind RST cannot refuse a connection.
TEST(SynSent, RstWithoutAckIsIgnored) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kRst, 0));
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kIgnored);
  h.ExpectNothingSent();
}

// §3.10.7.3 fifth: "If neither of the SYN or RST bits is set, then drop the segment and
// return" — even with an acceptable ACK.
TEST(SynSent, AcceptableAckWithoutSynIsIgnored) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kAck, 0, 1));
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kIgnored);
  h.ExpectNothingSent();
}

// §3.10.7.3 fifth, for a segment with no control bits at all.
TEST(SynSent, DataWithoutControlBitsIsIgnored) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(0, 1, 0, "data"));
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  h.ExpectNothingSent();
  EXPECT_EQ(h.tcb().readable(), 0u);
}

// §3.10.7.3 fourth, "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
// <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it" (simultaneous open, §3.5 Figure 8).
TEST(SynSent, SynWithoutAckStartsSimultaneousOpen) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kSyn, 0));
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
  h.ExpectSent(AllOf(HasFlags(kSyn | kAck), HasSeq(0), HasAck(1)));
  h.ExpectNothingSent();
  EXPECT_FALSE(h.tcb().passive());
}

// RFC 9293 §3.5 Figure 7 line 6: the peer's SYN+ACK acknowledges our SYN; ESTABLISHED.
TEST(SynSent, SimultaneousOpenCompletesOnPeersSynAck) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kSyn, 0));
  h.DiscardSent();
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  EXPECT_THAT(h.StatePath(), ElementsAre(TcpState::kSynSent, TcpState::kSynReceived,
                                         TcpState::kEstablished));
  EXPECT_EQ(h.tcb().NextDeadline(), kNever);  // our SYN is acknowledged: timer stopped
}

// RFC 9293 §3.10.7.4 first, SYN-RECEIVED: the peer's SYN+ACK in a simultaneous open repeats its
// SYN, which lies below RCV.NXT: "If an incoming segment is not acceptable, an acknowledgment
// should be sent in reply". The state still follows Figure 7 (ESTABLISHED); the ACK lets a peer
// that follows the text, and stays in SYN-RECEIVED, complete too.
TEST(SynReceived, SimultaneousOpenAcksThePeersSynAck) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kSyn, 0));
  h.DiscardSent();
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1), HasLen(0)));
  h.ExpectNothingSent();
}

// §3.10.7.4 fifth, SYN-RECEIVED: "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED" —
// simultaneous open completed by a plain ACK.
TEST(SynSent, SimultaneousOpenCompletesOnPeersAck) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kSyn, 0));
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 1));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  h.ExpectNothingSent();
}

// §3.10.7.3 third/second: a RST acknowledging our SYN in a simultaneous open's SYN-RECEIVED
// (not passive) refuses the connection instead of returning to LISTEN.
TEST(SynSent, RstInSimultaneousOpenRefusesTheConnection) {
  TcbHarness h;
  h.OpenActive();
  h.Deliver(h.Peer(kSyn, 0));
  h.DiscardSent();
  h.Deliver(h.Peer(kRst, 1));
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_EQ(Errno(h.tcb().error()), "ECONNREFUSED");
}

// RFC 6298 (5.1), (5.5), (5.6): the SYN is retransmitted when the timer expires, with the RTO
// doubled each time: 1 s, 2 s, 4 s.
TEST(SynSent, SynIsRetransmittedWithExponentialBackoff) {
  TcbHarness h;
  h.OpenActive();
  for (Duration rto : {Duration(1s), Duration(2s), Duration(4s)}) {
    h.Advance(rto - 1ms);
    h.ExpectNothingSent();
    h.Advance(1ms);
    h.ExpectSent(AllOf(HasFlags(kSyn), HasSeq(0)));
    h.ExpectNothingSent();
  }
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  EXPECT_EQ(h.tcb().counters().retransmissions, 3u);
  EXPECT_EQ(h.segments().back().verdict, Verdict::kRetransmitted);
}

// RFC 9293 §3.8.3 R2 (with Linux's tcp_syn_retries): after syn_retries retransmissions
// the connection attempt is abandoned with ETIMEDOUT, silently.
TEST(SynSent, GivesUpAfterSynRetriesWithEtimedout) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.syn_retries = 3;
  TcbHarness h(cfg);
  h.OpenActive();
  h.Advance(1s + 2s + 4s + 8s - 1ms);  // retransmissions at 1, 3 and 7 s
  EXPECT_EQ(h.SentCount(), 3u);
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  h.DiscardSent();
  h.Advance(1ms);  // the third retransmission times out at 15 s
  EXPECT_EQ(h.state(), TcpState::kClosed);
  h.ExpectNothingSent();
  EXPECT_EQ(Errno(h.tcb().error()), "ETIMEDOUT");
  absl::StatusOr<size_t> n = h.Send("late");
  ASSERT_FALSE(n.ok());
  EXPECT_THAT(n.status().message(), HasSubstr("ETIMEDOUT"));
}

// RFC 6298 (2.2): the first RTT measurement, here from SYN to SYN+ACK, sets SRTT = R,
// RTTVAR = R/2 and RTO = SRTT + 4·RTTVAR.
TEST(SynSent, SynAckGivesTheFirstRttSample) {
  TcbHarness h;
  h.OpenActive();
  h.Advance(100ms);
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.srtt, Duration(100ms));
  EXPECT_EQ(s.rttvar, Duration(50ms));
  EXPECT_EQ(s.rto, Duration(300ms));
}

// RFC 6298 §3 (Karn): the SYN+ACK after a retransmitted SYN is ambiguous and gives no sample.
TEST(SynSent, RetransmittedSynGivesNoRttSample) {
  TcbHarness h;
  h.OpenActive();
  h.Advance(1s);
  h.Advance(100ms);
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  EXPECT_EQ(h.tcb().Snapshot().srtt, Duration(0));
}

// RFC 6298 (5.7): "If the timer expires awaiting the ACK of a SYN segment and the TCP
// implementation is using an RTO less than 3 seconds, the RTO MUST be re-initialized to 3
// seconds when data transmission begins".
TEST(SynSent, DataRtoIsThreeSecondsAfterASynTimeout) {
  TcbHarness h;
  h.OpenActive();
  h.Advance(1s);  // one SYN timeout: the backed-off RTO is 2 s
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  h.DiscardSent();
  ASSERT_TRUE(h.Send("data").ok());
  h.ExpectSent(AllOf(HasSeq(1), HasPayload("data")));
  h.Advance(3s - 1ms);
  h.ExpectNothingSent();
  h.Advance(1ms);
  h.ExpectSent(AllOf(HasSeq(1), HasPayload("data")));
}

// RFC 6298 (5.7): "re-initialized to 3 seconds" — not left at the backed-off value (4 s after
// two SYN timeouts). Linux does the same (tcp_init_metrics, TCP_TIMEOUT_FALLBACK).
TEST(SynSent, DataRtoIsReinitializedToThreeSecondsAfterSeveralSynTimeouts) {
  TcbHarness h;
  h.OpenActive();
  h.Advance(1s + 2s);  // two SYN timeouts: the backed-off RTO is 4 s
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  EXPECT_EQ(h.tcb().Snapshot().rto, Duration(3s));
}

// RFC 9293 §3.10.2: SEND in SYN-SENT: "queue the data for transmission after entering
// ESTABLISHED state".
TEST(SynSent, DataSentBeforeEstablishedGoesOutAfterTheHandshake) {
  TcbHarness h;
  h.OpenActive();
  absl::StatusOr<size_t> n = h.Send("early");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  h.ExpectNothingSent();
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1), HasLen(0)));
  h.ExpectSent(AllOf(HasSeq(1), HasAck(1), HasPayload("early")));
}

// A half-close before the handshake is queued like data (RFC 9293 §3.10.2, SEND in SYN-SENT:
// "queue ... after entering ESTABLISHED state"): the FIN follows the handshake ACK.
TEST(SynSent, ShutdownIsQueuedUntilEstablished) {
  TcbHarness h;
  h.OpenActive();
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kSynSent);
  h.Deliver(h.Peer(kSyn | kAck, 0, 1));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
}

// RFC 9293 §3.10.4: CLOSE in SYN-SENT: "Delete the TCB and return 'error: closing'" — the
// SYN is abandoned without a segment.
TEST(SynSent, CloseDeletesTheTcbWithoutSendingAnything) {
  TcbHarness h;
  h.OpenActive();
  ASSERT_TRUE(h.tcb().Close(h.now()).ok());
  EXPECT_EQ(h.state(), TcpState::kClosed);
  h.ExpectNothingSent();
  h.Advance(10s);  // and no SYN retransmission either
  h.ExpectNothingSent();
}

// RFC 7323 §2.2: the window in the peer's SYN+ACK is not scaled, even when both offer scaling.
TEST(SynSent, PeersSynAckWindowIsTakenUnscaled) {
  TcbHarness h(WithAllOptions());
  h.OpenActive();
  h.Deliver(SynAck(h, Wscale(3), /*window=*/1000));
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 1000u);
}

// RFC 9293 §3.8.6.2.2 / RFC 7323 §2.4: the window we advertise never exceeds our receive
// buffer. It counts from RCV.NXT, which the SYN+ACK sets; the IRS here is close to 2^32,
// so a right edge remembered from before the IRS was known would be wildly off.
TEST(SynSent, FirstAckAdvertisesNoMoreThanTheReceiveBuffer) {
  TcbHarness h(WithAllOptions());
  h.OpenActive();
  SegmentRepr synack = h.PeerAbs(kSyn | kAck, SeqNum(0xFFFFFF00u), SeqNum(kOurIss + 1));
  synack.options.window_scale = 0;
  h.Deliver(synack);
  SegmentRepr ack = h.ExpectSent(HasFlags(kAck));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  ASSERT_EQ(s.rcv_wscale, 1);
  EXPECT_LE(uint32_t{ack.window} << s.rcv_wscale, h.config().recv_buffer);
  EXPECT_LE(s.rcv_wnd, h.config().recv_buffer);
}

// =============================================================================================
// Option negotiation on the SYNs

// RFC 7323 §2.2: window scaling is in effect only if both SYNs carry the option; otherwise
// both shifts are 0 and our window field is unscaled.
TEST(Options, WindowScalingNeedsBothSides) {
  TcbHarness h(WithAllOptions());
  h.OpenActive();
  h.Deliver(SynAck(h));  // no window scale option
  SegmentRepr ack = h.ExpectSent(HasFlags(kAck));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.snd_wscale, 0);
  EXPECT_EQ(s.rcv_wscale, 0);
  EXPECT_EQ(ack.window, 65535);  // 64 KiB, capped at 16 bits, not shifted
}

// RFC 7323 §2.3: with both sides scaling, the windows we advertise are shifted by our count,
// and the peer's by theirs.
TEST(Options, WindowScalingAppliesWhenBothOffer) {
  TcbHarness h(WithAllOptions());
  h.OpenActive();
  h.Deliver(SynAck(h, Wscale(7)));
  SegmentRepr ack = h.ExpectSent(HasFlags(kAck));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.snd_wscale, 7);
  EXPECT_EQ(s.rcv_wscale, 1);
  // The SYN offered 65535 (unscaled); one more octet of room is below the receiver-SWS
  // threshold (RFC 9293 §3.8.6.2.2), and 65535 scaled down by 1 rounds to 32767.
  EXPECT_EQ(ack.window, 65535 >> 1);
  h.Deliver(h.Peer(kAck, 1, 1, {}, /*window=*/100));
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 100u << 7);
}

// RFC 7323 §2.3: "If a Window Scale option is received with a shift.cnt value larger than 14,
// the TCP SHOULD log the error but MUST use 14 instead of the specified value."
TEST(Options, WindowScaleAbove14IsClampedTo14) {
  TcbHarness h(WithAllOptions());
  h.OpenActive();
  h.Deliver(SynAck(h, Wscale(15)));
  EXPECT_EQ(h.tcb().Snapshot().snd_wscale, 14);
  h.Deliver(h.Peer(kAck, 1, 1, {}, /*window=*/1));
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 1u << 14);
}

// RFC 7323 §2.2: a peer's window scale is ignored when we did not offer scaling ourselves.
TEST(Options, PeersWindowScaleIsIgnoredWhenWeDidNotOffer) {
  TcbHarness h;  // window scaling off
  h.OpenActive();
  h.Deliver(SynAck(h, Wscale(7)));
  EXPECT_EQ(h.tcb().Snapshot().snd_wscale, 0);
  h.Deliver(h.Peer(kAck, 1, 1, {}, /*window=*/100));
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 100u);
}

// RFC 9293 §3.7.1: "If an MSS Option is not received at connection setup, TCP
// implementations MUST assume a default send MSS of 536".
TEST(Options, MissingMssOptionMeans536) {
  TcbHarness h;
  h.MakeEstablished();  // the SYN+ACK has no MSS option
  EXPECT_EQ(h.tcb().Snapshot().peer_mss, 536);
  ASSERT_TRUE(h.Send(std::string(1000, 'a')).ok());
  h.ExpectSent(AllOf(HasSeq(1), HasLen(536)));
  h.ExpectSent(AllOf(HasSeq(537), HasLen(464)));
}

// RFC 9293 §3.7.1: segments are no larger than the MSS the peer announced.
TEST(Options, SegmentsFollowThePeersMss) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000));
  ASSERT_TRUE(h.Send(std::string(1500, 'a')).ok());
  h.ExpectSent(HasLen(1000));
  h.ExpectSent(HasLen(500));
}

// RFC 9293 §3.7.1: nor larger than our own MSS, when that is the smaller one.
TEST(Options, SegmentsFollowOurMssWhenSmaller) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.mss = 700;
  TcbHarness h(cfg);
  h.MakeEstablished(Mss(1460));
  ASSERT_TRUE(h.Send(std::string(1000, 'a')).ok());
  h.ExpectSent(HasLen(700));
  h.ExpectSent(HasLen(300));
}

// RFC 9293 §3.7.1 / RFC 6691: the MSS counts data only; the 12 octets of the timestamps
// option on every segment come out of it (1460 - 12 = 1448).
TEST(Options, TimestampsReduceTheSegmentSizeBy12) {
  TcbHarness h(WithAllOptions());
  h.MakeEstablished(Ts(500, 1000, Mss(1460)));
  EXPECT_EQ(h.tcb().Snapshot().mss, 1448);
  ASSERT_TRUE(h.Send(std::string(2000, 'a')).ok());
  h.ExpectSent(HasLen(1448));
}

// RFC 7323 §3.2: timestamps are used only if both SYNs carry them; the ACK then carries
// TSecr = the peer's TSval.
TEST(Options, TimestampsAreEchoedWhenBothOffer) {
  TcbHarness h(WithAllOptions());
  h.OpenActive();
  h.Deliver(SynAck(h, Ts(777, 1000)));
  SegmentRepr ack = h.ExpectSent(HasFlags(kAck));
  EXPECT_TRUE(h.tcb().Snapshot().timestamps);
  ASSERT_TRUE(ack.options.timestamps.has_value());
  EXPECT_EQ(ack.options.timestamps->ecr, 777u);
}

// RFC 7323 §3.2: "If a TCP ... did not receive a TSopt in the <SYN,ACK> ... it MUST NOT send
// a TSopt".
TEST(Options, NoTimestampsUnlessThePeerOffersThem) {
  TcbHarness h(WithAllOptions());
  h.OpenActive();
  h.Deliver(SynAck(h));
  SegmentRepr ack = h.ExpectSent(HasFlags(kAck));
  EXPECT_FALSE(h.tcb().Snapshot().timestamps);
  EXPECT_FALSE(ack.options.timestamps.has_value());
  EXPECT_EQ(h.tcb().Snapshot().mss, 536);  // and no 12-octet reduction
}

// RFC 2018 §2: SACK is used only if both sides sent SACK-permitted.
TEST(Options, SackNeedsBothSides) {
  TcbHarness with(WithAllOptions());
  with.MakeEstablished(SackOk());
  EXPECT_TRUE(with.tcb().Snapshot().sack);
  TcbHarness without(WithAllOptions());
  without.MakeEstablished({});
  EXPECT_FALSE(without.tcb().Snapshot().sack);
  tcp::TcpConfig off = TestConfig();  // we do not offer it
  TcbHarness ours_off(off);
  ours_off.MakeEstablished(SackOk());
  EXPECT_FALSE(ours_off.tcb().Snapshot().sack);
}

// =============================================================================================
// LISTEN -> SYN-RECEIVED (RFC 9293 §3.10.7.2)

// §3.10.7.2 third: "If the SYN bit is set ... RCV.NXT is set to SEG.SEQ+1, IRS is set to
// SEG.SEQ ... <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> is sent ... state ... SYN-RECEIVED".
TEST(Listen, SynIsAnsweredWithSynAckAndEntersSynReceived) {
  TcbHarness h;
  h.tcb().OpenPassive(h.Peer(kSyn, 0), SeqNum(kOurIss), 0, h.now());
  h.ExpectSent(AllOf(HasFlags(kSyn | kAck), HasSeq(0), HasAck(1)));
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
  EXPECT_TRUE(h.tcb().passive());
}

// RFC 7323 §2.2, §3.2, RFC 2018 §2: the SYN+ACK carries window scale, timestamps and
// SACK-permitted only when the SYN offered them.
TEST(Listen, SynAckEchoesOnlyTheOptionsTheSynOffered) {
  TcbHarness bare(WithAllOptions());
  bare.tcb().OpenPassive(Syn(bare), SeqNum(kOurIss), 0, bare.now());
  SegmentRepr a = bare.ExpectSent(HasFlags(kSyn | kAck));
  EXPECT_EQ(a.options.mss, std::optional<uint16_t>(1460));  // MSS always
  EXPECT_FALSE(a.options.window_scale.has_value());
  EXPECT_FALSE(a.options.timestamps.has_value());
  EXPECT_FALSE(a.options.sack_permitted);

  TcbHarness full(WithAllOptions());
  full.tcb().OpenPassive(
      Syn(full, Ts(42, 0, SackOk(Wscale(2, Mss(1460))))),
      SeqNum(kOurIss), 0, full.now());
  SegmentRepr b = full.ExpectSent(HasFlags(kSyn | kAck));
  EXPECT_EQ(b.options.window_scale, std::optional<uint8_t>(1));
  EXPECT_TRUE(b.options.sack_permitted);
  ASSERT_TRUE(b.options.timestamps.has_value());
  EXPECT_EQ(b.options.timestamps->ecr, 42u);
}

// =============================================================================================
// SYN-RECEIVED, passive (RFC 9293 §3.10.7.4)

// §3.10.7.4 fifth, SYN-RECEIVED: "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED".
TEST(SynReceived, AcceptableAckCompletesTheHandshake) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kAck, 1, 1));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  EXPECT_EQ(h.tcb().Snapshot().snd_una, kOurIss + 1);
  EXPECT_EQ(h.tcb().NextDeadline(), kNever);  // SYN+ACK acknowledged: timer stopped
  h.ExpectNothingSent();
}

// §3.10.7.4 fifth, SYN-RECEIVED: an ACK of nothing new (SEG.ACK = SND.UNA = ISS) is not
// acceptable: "form a reset segment <SEQ=SEG.ACK><CTL=RST> and send it".
TEST(SynReceived, AckOfIssIsAnsweredWithRst) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kAck, 1, 0));
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(0)));
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kBadAck);
}

// §3.10.7.4 fifth, SYN-RECEIVED: SEG.ACK > SND.NXT: <SEQ=SEG.ACK><CTL=RST>.
TEST(SynReceived, AckBeyondSndNxtIsAnsweredWithRst) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kAck, 1, 77));
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(77)));
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
}

// §3.10.7.4 second, SYN-RECEIVED: "If this connection was initiated with a passive OPEN
// (i.e., came from the LISTEN state), then return this connection to LISTEN state and
// return. The user need not be informed."
TEST(SynReceived, RstReturnsAPassiveConnectionToListen) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kRst, 1));
  EXPECT_EQ(h.state(), TcpState::kListen);
  EXPECT_TRUE(h.tcb().finished());
  EXPECT_TRUE(h.tcb().error().ok());  // "The user need not be informed"
  EXPECT_EQ(h.tcb().NextDeadline(), kNever);
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.7.4 first/fourth with §3.8.1: the peer retransmitted its SYN (our SYN+ACK
// was lost); it is answered with the SYN+ACK again.
TEST(SynReceived, RetransmittedSynIsAnsweredWithSynAckAgain) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kSyn, 0));
  h.ExpectSent(AllOf(HasFlags(kSyn | kAck), HasSeq(0), HasAck(1)));
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
}

// §3.10.7.4 fourth, SYN-RECEIVED passive: a SYN with another sequence number means the peer
// started over: "return this connection to the LISTEN state and return".
TEST(SynReceived, SynWithNewSequenceNumberReturnsToListen) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kSyn, 100));
  EXPECT_EQ(h.state(), TcpState::kListen);
  h.ExpectNothingSent();
}

// RFC 6298 (5.1)/(5.5) and RFC 9293 §3.8.1: the SYN+ACK is retransmitted on the RTO,
// backing off 1 s, 2 s.
TEST(SynReceived, SynAckIsRetransmittedOnRtoWithBackoff) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Advance(1s - 1ms);
  h.ExpectNothingSent();
  h.Advance(1ms);
  h.ExpectSent(AllOf(HasFlags(kSyn | kAck), HasSeq(0), HasAck(1)));
  h.Advance(2s - 1ms);
  h.ExpectNothingSent();
  h.Advance(1ms);
  h.ExpectSent(AllOf(HasFlags(kSyn | kAck), HasSeq(0), HasAck(1)));
  EXPECT_EQ(h.segments().back().verdict, Verdict::kRetransmitted);
}

// RFC 9293 §3.8.3 R2: the SYN+ACK is given up after syn_retries retransmissions.
TEST(SynReceived, GivesUpAfterSynRetries) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.syn_retries = 2;
  TcbHarness h(cfg);
  h.MakeSynReceived();
  h.Advance(1s + 2s + 4s - 1ms);
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
  h.Advance(1ms);
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_EQ(Errno(h.tcb().error()), "ETIMEDOUT");
}

// RFC 6298 (2.2): the ACK of our SYN+ACK gives the passive side its first RTT sample.
TEST(SynReceived, HandshakeAckGivesTheFirstRttSample) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Advance(40ms);
  h.Deliver(h.Peer(kAck, 1, 1));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.srtt, Duration(40ms));
  EXPECT_EQ(s.rto, Duration(200ms));  // 40 + 4·20 = 120 ms, raised to min_rto
}

// RFC 6298 (5.7) applies to the SYN+ACK too: after it timed out, data starts with RTO = 3 s.
TEST(SynReceived, DataRtoIsThreeSecondsAfterASynAckTimeout) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Advance(1s);  // SYN+ACK retransmitted; RTO backed off to 2 s
  h.Deliver(h.Peer(kAck, 1, 1));
  h.DiscardSent();
  ASSERT_EQ(h.state(), TcpState::kEstablished);
  EXPECT_EQ(h.tcb().Snapshot().rto, Duration(3s));
  ASSERT_TRUE(h.Send("data").ok());
  h.ExpectSent(HasPayload("data"));
  h.Advance(3s - 1ms);
  h.ExpectNothingSent();
  h.Advance(1ms);
  h.ExpectSent(AllOf(HasSeq(1), HasPayload("data")));
}

// §3.10.7.4 fifth then seventh: data on the ACK that completes the handshake is processed
// in ESTABLISHED, delivered to the user and acknowledged.
TEST(SynReceived, DataOnTheHandshakeAckIsDelivered) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kAck, 1, 1, "hello"));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(6)));
  EXPECT_EQ(h.Recv(), "hello");
}

// §3.10.7.4 eighth, SYN-RECEIVED/ESTABLISHED: "Enter the CLOSE-WAIT state" on a FIN, here
// carried by the handshake ACK; the FIN is acknowledged.
TEST(SynReceived, FinOnTheHandshakeAckEntersCloseWait) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kFin | kAck, 1, 1));
  EXPECT_EQ(h.state(), TcpState::kCloseWait);
  EXPECT_THAT(h.StatePath(), ElementsAre(TcpState::kSynReceived, TcpState::kEstablished,
                                         TcpState::kCloseWait));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(2)));
  EXPECT_TRUE(h.tcb().AtEof());
}

// RFC 9293 §3.10.4, CLOSE in SYN-RECEIVED: "... otherwise, queue for processing after
// entering ESTABLISHED state". The engine always takes this branch (the RFC would also allow
// a FIN at once when nothing was sent), so no FIN goes out before our SYN is acknowledged.
TEST(SynReceived, ShutdownIsQueuedUntilEstablished) {
  TcbHarness h;
  h.MakeSynReceived();
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
  h.Deliver(h.Peer(kAck, 1, 1));
  h.ExpectSent(AllOf(HasFlags(kFin | kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kFinWait1);
}

// §3.10.7.4 first: an unacceptable segment in SYN-RECEIVED is answered with
// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and dropped.
TEST(SynReceived, OutOfWindowSegmentIsAnsweredWithAck) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kAck, 100000, 1, "x"));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
  EXPECT_EQ(h.LastInVerdict(), Verdict::kOutOfWindow);
}

// RFC 5961 §3.2: an in-window RST that is not exactly at RCV.NXT draws a challenge ACK and
// leaves the connection alone.
TEST(SynReceived, InWindowRstNotAtRcvNxtGetsChallengeAck) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(kRst, 10));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
}

// §3.10.7.4 fifth: "if the ACK bit is off, drop the segment and return".
TEST(SynReceived, SegmentWithoutAckIsDropped) {
  TcbHarness h;
  h.MakeSynReceived();
  h.Deliver(h.Peer(0, 1, 0, "data"));
  EXPECT_EQ(h.state(), TcpState::kSynReceived);
  h.ExpectNothingSent();
  EXPECT_EQ(h.tcb().readable(), 0u);
}

}  // namespace
}  // namespace tcplab::testing
