// Loss recovery on an ESTABLISHED connection, one rule per test: the retransmission timer of
// RFC 6298 (estimation, backoff, Karn's rule), the give-up threshold of RFC 9293 §3.8.3,
// congestion control (RFC 5681 slow start, congestion avoidance, fast retransmit) with NewReno
// fast recovery (RFC 6582), SACK (RFC 2018) on both sides, and timestamps with PAWS (RFC 7323).
//
// Sequence numbers in Peer() and the matchers are relative: ours to our ISS (kOurIss), the
// peer's to its ISS (kPeerIss). Unless a test says otherwise the peer announces MSS 1000, so
// SMSS is 1000 and segment k (from 0) covers [1 + 1000k, 1001 + 1000k).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "engine/tcp/tcb.h"
#include "tests/unit/harness/tcb_harness.h"

namespace tcplab::testing {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::HasSubstr;
using tcp::Verdict;
using wire::kAck;
using wire::kRst;
using wire::kSyn;

PeerOptions Mss(uint16_t mss, PeerOptions o = {}) {
  o.mss = mss;
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

std::string Pattern(size_t n, size_t first = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (first + i) % 26);
  return s;
}

// TestConfig() with an initial window of `segments` SMSS (RFC 6928 style), so that the flight
// is large enough for the halving rules to show.
tcp::TcpConfig WithInitialWindow(int segments, tcp::TcpConfig c = TestConfig()) {
  c.initial_cwnd_segments = segments;
  return c;
}

// The SYN+ACK of the fixtures, with options.
SegmentRepr SynAck(TcbHarness& h, const PeerOptions& o) {
  SegmentRepr s = h.Peer(kSyn | kAck, 0, 1);
  s.options.mss = o.mss;
  s.options.window_scale = o.wscale;
  s.options.sack_permitted = o.sack_permitted;
  s.options.timestamps = o.ts;
  return s;
}

// ESTABLISHED, with the SYN+ACK arriving `rtt` after our SYN: the handshake gives the first RTT
// sample (RFC 6298 (2.2)).
void EstablishAfter(TcbHarness& h, Duration rtt, const PeerOptions& o = {}) {
  h.OpenActive();
  h.Advance(rtt);
  h.Deliver(SynAck(h, o));
  h.DiscardSent();
}

// ESTABLISHED after our SYN was retransmitted once: no RTT sample yet (Karn).
void EstablishAfterSynTimeout(TcbHarness& h, const PeerOptions& o = {}) {
  h.OpenActive();
  h.Advance(h.config().initial_rto);
  h.Deliver(SynAck(h, o));
  h.DiscardSent();
}

SegmentRepr WithSack(SegmentRepr s, std::initializer_list<std::pair<uint32_t, uint32_t>> blocks) {
  for (const auto& [left, right] : blocks) {
    s.options.sack[s.options.sack_count++] = wire::SackBlock{SeqNum(kOurIss + left), SeqNum(kOurIss + right)};
  }
  return s;
}

SegmentRepr WithTs(SegmentRepr s, uint32_t val, uint32_t ecr) {
  s.options.timestamps = wire::Timestamps{val, ecr};
  return s;
}

// A SACK block relative to the peer's ISS, as our ACKs carry them.
wire::SackBlock PeerBlock(uint32_t left, uint32_t right) {
  return wire::SackBlock{SeqNum(kPeerIss + left), SeqNum(kPeerIss + right)};
}

Verdict LastOutVerdict(const TcbHarness& h) {
  for (auto it = h.segments().rbegin(); it != h.segments().rend(); ++it) {
    if (it->dir == tcp::Direction::kOut) return it->verdict;
  }
  return Verdict::kIgnored;
}

bool RetransmissionTimerArmed(TcbHarness& h) {
  for (const auto& t : h.tcb().Snapshot().timers) {
    if (t.kind == tcp::TimerKind::kRetransmission) return true;
  }
  return false;
}

// Sends `n` octets and pops the segments they went out in.
void SendAndDiscard(TcbHarness& h, size_t n) {
  ASSERT_EQ(*h.Send(Pattern(n)), n);
  h.DiscardSent();
}

// ---------------------------------------------------------------------------------------------
// The retransmission timer (RFC 6298).

// RFC 6298 (2.1): "Until a round-trip time (RTT) measurement has been made ... the sender SHOULD
// set RTO <- 1 second".
TEST(SynSent, InitialRtoIsOneSecond) {
  TcbHarness h;
  h.OpenActive();
  h.Advance(milliseconds(999));
  h.ExpectNothingSent();
  h.Advance(milliseconds(1));
  h.ExpectSent(HasFlags(kSyn));
  EXPECT_EQ(LastOutVerdict(h), Verdict::kRetransmitted);
}

// RFC 6298 (5.7): after the SYN was retransmitted and no RTT is measured, data starts with an
// RTO of 3 seconds (config.syn_timeout_rto_floor).
TEST(Established, RtoIsThreeSecondsAfterASynTimeout) {
  TcbHarness h;
  EstablishAfterSynTimeout(h);
  EXPECT_EQ(h.tcb().Snapshot().rto, seconds(3));
  ASSERT_TRUE(h.Send("x").ok());
  h.ExpectSent(HasLen(1));
  h.Advance(seconds(3) - milliseconds(1));
  h.ExpectNothingSent();
  h.Advance(milliseconds(1));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1)));
}

// RFC 6298 (2.2): the first measurement R sets SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G,
// K*RTTVAR).
TEST(Established, FirstRttSampleSetsSrttAndRttvar) {
  TcbHarness h;
  EstablishAfterSynTimeout(h);
  ASSERT_TRUE(h.Send("x").ok());
  h.Advance(milliseconds(100));
  h.Deliver(h.Peer(kAck, 1, 2));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.srtt, milliseconds(100));
  EXPECT_EQ(s.rttvar, milliseconds(50));
  EXPECT_EQ(s.rto, milliseconds(300));
}

// RFC 6298 (2.3): RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'| (with the old SRTT), then
// SRTT <- 7/8 SRTT + 1/8 R'.
TEST(Established, LaterRttSampleIsSmoothedWithAlphaAndBeta) {
  TcbHarness h;
  EstablishAfter(h, milliseconds(100));  // SRTT 100 ms, RTTVAR 50 ms
  ASSERT_TRUE(h.Send("x").ok());
  h.Advance(milliseconds(200));
  h.Deliver(h.Peer(kAck, 1, 2));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.rttvar, microseconds(62'500));   // (3*50 + 100) / 4
  EXPECT_EQ(s.srtt, microseconds(112'500));    // (7*100 + 200) / 8
  EXPECT_EQ(s.rto, microseconds(362'500));     // 112.5 + 4*62.5
}

// RFC 6298 (2.4): "Whenever RTO is computed, if it is less than 1 second, then the RTO SHOULD be
// rounded up to 1 second" — here config.min_rto, 200 ms in the tests.
TEST(Established, RtoIsClampedToMinRto) {
  TcbHarness h;
  EstablishAfter(h, milliseconds(10));  // 10 + 4*5 = 30 ms
  EXPECT_EQ(h.tcb().Snapshot().rto, milliseconds(200));
  ASSERT_TRUE(h.Send("x").ok());
  h.DiscardSent();
  h.Advance(milliseconds(199));
  h.ExpectNothingSent();
  h.Advance(milliseconds(1));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1)));
}

// RFC 6298 (5.5): "The host MUST set RTO <- RTO * 2 ('back off the timer')" on each expiry.
TEST(Established, RtoDoublesOnEachExpiry) {
  TcbHarness h;
  h.MakeEstablished();  // RTO 200 ms
  SendAndDiscard(h, 1);
  for (Duration interval : {milliseconds(200), milliseconds(400), milliseconds(800)}) {
    h.Advance(interval - milliseconds(1));
    h.ExpectNothingSent();
    h.Advance(milliseconds(1));
    h.ExpectSent(AllOf(HasSeq(1), HasLen(1)));
  }
}

// RFC 6298 (2.5): "A maximum value MAY be placed on RTO provided it is at least 60 seconds" —
// config.max_rto caps the backoff.
TEST(Established, RtoBackoffIsCappedAtMaxRto) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.max_rto = seconds(1);
  TcbHarness h(cfg);
  h.MakeEstablished();
  SendAndDiscard(h, 1);
  for (Duration interval : {milliseconds(200), milliseconds(400), milliseconds(800), milliseconds(1000),
                            milliseconds(1000)}) {
    h.Advance(interval - milliseconds(1));
    h.ExpectNothingSent();
    h.Advance(milliseconds(1));
    h.ExpectSent(HasSeq(1));
  }
}

// RFC 6298 (5.3): "When an ACK is received that acknowledges new data, restart the
// retransmission timer so that it will expire after RTO seconds".
TEST(Established, NewAckRestartsTheRetransmissionTimer) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000));  // RTO 200 ms
  SendAndDiscard(h, 2000);
  h.Advance(milliseconds(150));
  h.Deliver(h.Peer(kAck, 1, 1001));
  ASSERT_EQ(h.tcb().Snapshot().rto, milliseconds(200));
  h.Advance(milliseconds(199));  // the old deadline (200 ms after sending) has passed
  h.ExpectNothingSent();
  h.Advance(milliseconds(1));
  h.ExpectSent(AllOf(HasSeq(1001), HasLen(1000)));
}

// RFC 6298 (5.2): "When all outstanding data has been acknowledged, turn off the retransmission
// timer."
TEST(Established, RetransmissionTimerStopsWhenAllDataIsAcked) {
  TcbHarness h;
  h.MakeEstablished();
  SendAndDiscard(h, 100);
  ASSERT_TRUE(RetransmissionTimerArmed(h));
  h.Deliver(h.Peer(kAck, 1, 101));
  EXPECT_FALSE(RetransmissionTimerArmed(h));
  h.Advance(seconds(10));
  h.ExpectNothingSent();
}

// RFC 6298 §3 (Karn): "RTT samples MUST NOT be made using segments that were retransmitted";
// the backed-off RTO stays until a valid sample.
TEST(Established, KarnsRuleTakesNoSampleFromARetransmittedSegment) {
  TcbHarness h;
  EstablishAfter(h, milliseconds(100));  // RTO 300 ms
  SendAndDiscard(h, 1);
  h.Advance(milliseconds(300));
  h.ExpectSent(HasSeq(1));
  h.Advance(milliseconds(50));
  h.Deliver(h.Peer(kAck, 1, 2));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.srtt, milliseconds(100));
  EXPECT_EQ(s.rto, milliseconds(600));
}

// RFC 9293 §3.8.3 (R2): after data_retries retransmissions of a segment the connection is given
// up: RST, CLOSED, and ETIMEDOUT for the user.
TEST(Established, DataRetryLimitClosesSilentlyWithEtimedout) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.data_retries = 3;
  TcbHarness h(cfg);
  h.MakeEstablished();
  SendAndDiscard(h, 1);
  h.Advance(milliseconds(200 + 400 + 800));
  for (int i = 0; i < 3; ++i) h.ExpectSent(AllOf(HasSeq(1), HasLen(1)));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  h.Advance(milliseconds(1600));
  // RFC 9293 §3.8.3: at R2 "close the connection". The peer is presumed unreachable, so no
  // RST goes out (as Linux's tcp_write_err).
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_THAT(std::string(h.tcb().error().message()), HasSubstr("ETIMEDOUT"));
  auto n = h.Send("x");
  ASSERT_FALSE(n.ok());
  EXPECT_THAT(std::string(n.status().message()), HasSubstr("ETIMEDOUT"));
}

// ---------------------------------------------------------------------------------------------
// Congestion control after a timeout (RFC 5681 §3.1, RFC 6298 (5.4)).

// RFC 6298 (5.4): retransmit the earliest unacknowledged segment; RFC 5681 §3.1 eq. (4):
// ssthresh = max(FlightSize / 2, 2*SMSS), and cwnd = 1 SMSS (the loss window).
TEST(Established, RtoRetransmitsOneSegmentWithCwndOfOneSmss) {
  TcbHarness h(WithInitialWindow(10));
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 10000);
  h.Advance(milliseconds(200));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1000)));
  h.ExpectNothingSent();
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.cwnd, 1000u);
  EXPECT_EQ(s.ssthresh, 5000u);
}

// RFC 5681 §3.1 eq. (4): ssthresh is never below 2*SMSS.
TEST(Established, RtoSsthreshIsAtLeastTwoSegments) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 1000);
  h.Advance(milliseconds(200));
  EXPECT_EQ(h.tcb().Snapshot().ssthresh, 2000u);
}

// RFC 5681 §3.1 / RFC 6298 (5.4): after the timeout the sender slow-starts from SND.UNA again:
// each ACK lets the next not-yet-acknowledged segments go (go-back-N), as retransmissions.
TEST(Established, AcksAfterRtoDriveGoBackNInSlowStart) {
  TcbHarness h(WithInitialWindow(10));
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 10000);
  h.Advance(milliseconds(200));
  h.ExpectSent(HasSeq(1));
  h.Deliver(h.Peer(kAck, 1, 1001));
  EXPECT_EQ(h.tcb().Snapshot().cwnd, 2000u);
  h.ExpectSent(AllOf(HasSeq(1001), HasLen(1000)));
  EXPECT_EQ(LastOutVerdict(h), Verdict::kRetransmitted);
  h.ExpectSent(AllOf(HasSeq(2001), HasLen(1000)));
  h.ExpectNothingSent();
}

// RFC 5681 §3.1 eq. (2): in slow start cwnd grows by min(N, SMSS) per ACK, N the octets it acks.
TEST(Established, SlowStartGrowsCwndByAtMostSmssPerAck) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000));  // RFC 5681 eq. (1): 4 * 1000
  ASSERT_EQ(h.tcb().Snapshot().cwnd, 4000u);
  SendAndDiscard(h, 4000);
  h.Deliver(h.Peer(kAck, 1, 1001));
  EXPECT_EQ(h.tcb().Snapshot().cwnd, 5000u);
  h.Deliver(h.Peer(kAck, 1, 3001));  // acks 2000, grows by 1000
  EXPECT_EQ(h.tcb().Snapshot().cwnd, 6000u);
}

// RFC 5681 §3.1: in congestion avoidance (cwnd >= ssthresh) cwnd grows by one SMSS once a
// full cwnd of octets has been acknowledged (byte counting), not per ACK.
TEST(Established, CongestionAvoidanceGrowsCwndBySmssPerCwndAcked) {
  TcbHarness h(WithInitialWindow(4));
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 4000);
  h.Advance(milliseconds(200));  // ssthresh 2000, cwnd 1000
  h.Deliver(h.Peer(kAck, 1, 1001));
  ASSERT_EQ(h.tcb().Snapshot().cwnd, 2000u);  // slow start reached ssthresh
  h.Deliver(h.Peer(kAck, 1, 2001));
  EXPECT_EQ(h.tcb().Snapshot().cwnd, 2000u);
  h.Deliver(h.Peer(kAck, 1, 3001));
  EXPECT_EQ(h.tcb().Snapshot().cwnd, 3000u);
}

// ---------------------------------------------------------------------------------------------
// Fast retransmit and NewReno fast recovery (RFC 5681 §3.2, RFC 6582 §3.2).

// RFC 5681 §3.2 steps 2-3: on the third duplicate ACK, ssthresh = max(FlightSize/2, 2*SMSS),
// the lost segment is retransmitted, and cwnd = ssthresh + 3*SMSS.
TEST(Established, ThirdDuplicateAckTriggersFastRetransmit) {
  TcbHarness h(WithInitialWindow(10));
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 10000);
  h.Deliver(h.Peer(kAck, 1, 1));
  h.Deliver(h.Peer(kAck, 1, 1));
  h.ExpectNothingSent();
  h.Deliver(h.Peer(kAck, 1, 1));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1000)));
  EXPECT_EQ(LastOutVerdict(h), Verdict::kRetransmitted);
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.ssthresh, 5000u);
  EXPECT_EQ(s.cwnd, 8000u);
  EXPECT_EQ(s.counters.fast_retransmits, 1u);
}

// RFC 5681 §3.2 step 4 / RFC 6582 §3.2 step 4: each further duplicate ACK inflates cwnd by SMSS.
TEST(Established, FurtherDuplicateAcksInflateCwnd) {
  TcbHarness h(WithInitialWindow(10));
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 10000);
  for (int i = 0; i < 3; ++i) h.Deliver(h.Peer(kAck, 1, 1));
  h.Deliver(h.Peer(kAck, 1, 1));
  EXPECT_EQ(h.tcb().Snapshot().cwnd, 9000u);
  h.Deliver(h.Peer(kAck, 1, 1));
  EXPECT_EQ(h.tcb().Snapshot().cwnd, 10000u);
  EXPECT_EQ(h.tcb().counters().fast_retransmits, 1u);
}

// RFC 6582 §3.2 step 4: "Transmit a segment, if allowed by the new value of cwnd": new data goes
// once cwnd exceeds FlightSize (SND.NXT - SND.UNA) by an SMSS; the retransmission does not add
// to FlightSize.
TEST(Established, InflatedCwndSendsNewDataDuringRecovery) {
  TcbHarness h(WithInitialWindow(10));
  h.MakeEstablished(Mss(1000));
  ASSERT_TRUE(h.Send(Pattern(12000)).ok());  // 10000 go out, 2000 wait
  h.DiscardSent();
  for (int i = 0; i < 3; ++i) h.Deliver(h.Peer(kAck, 1, 1));
  h.ExpectSent(HasSeq(1));
  h.Deliver(h.Peer(kAck, 1, 1));  // cwnd 9000
  h.Deliver(h.Peer(kAck, 1, 1));  // cwnd 10000 = FlightSize
  h.ExpectNothingSent();
  h.Deliver(h.Peer(kAck, 1, 1));  // cwnd 11000
  h.ExpectSent(AllOf(HasSeq(10001), HasLen(1000)));
  EXPECT_EQ(LastOutVerdict(h), Verdict::kSent);
  h.ExpectNothingSent();
}

// RFC 6582 §3.2 step 5: a partial ACK (below `recover`) retransmits the first unacknowledged
// segment and deflates cwnd by the octets acked, adding back one SMSS.
TEST(Established, PartialAckRetransmitsTheNextSegment) {
  TcbHarness h(WithInitialWindow(10));
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 10000);
  for (int i = 0; i < 3; ++i) h.Deliver(h.Peer(kAck, 1, 1));
  h.ExpectSent(HasSeq(1));
  h.Deliver(h.Peer(kAck, 1, 3001));
  h.ExpectSent(AllOf(HasSeq(3001), HasLen(1000)));
  EXPECT_EQ(LastOutVerdict(h), Verdict::kRetransmitted);
  h.ExpectNothingSent();
  EXPECT_EQ(h.tcb().Snapshot().cwnd, 8000u - 3000u + 1000u);  // 3000 octets acked
}

// RFC 6582 §3.2 step 3: a full ACK (covering `recover`) ends fast recovery with cwnd deflated to
// min(ssthresh, max(FlightSize, SMSS) + SMSS).
TEST(Established, FullAckEndsFastRecoveryWithDeflatedCwnd) {
  TcbHarness h(WithInitialWindow(10));
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 10000);
  for (int i = 0; i < 5; ++i) h.Deliver(h.Peer(kAck, 1, 1));
  h.DiscardSent();
  ASSERT_EQ(h.tcb().Snapshot().cwnd, 10000u);
  h.Deliver(h.Peer(kAck, 1, 10001));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.cwnd, 2000u);  // FlightSize 0: min(5000, 1000 + 1000)
  EXPECT_EQ(s.ssthresh, 5000u);
  EXPECT_FALSE(RetransmissionTimerArmed(h));
}

// RFC 6582 §3.2 step 2 and §4: duplicate ACKs that do not cover more than `recover` (set on the
// timeout) are not a new loss: no fast retransmit, no second halving.
TEST(Established, DupAcksNotBeyondRecoverDoNotStartAnotherRecovery) {
  TcbHarness h(WithInitialWindow(10));
  h.MakeEstablished(Mss(1000));
  SendAndDiscard(h, 10000);
  h.Advance(milliseconds(200));  // RTO: recover = 10000, ssthresh 5000
  h.Deliver(h.Peer(kAck, 1, 1001));
  h.DiscardSent();
  for (int i = 0; i < 3; ++i) h.Deliver(h.Peer(kAck, 1, 1001));
  h.ExpectNothingSent();
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.counters.fast_retransmits, 0u);
  EXPECT_EQ(s.ssthresh, 5000u);
  EXPECT_EQ(s.cwnd, 2000u);
}

// ---------------------------------------------------------------------------------------------
// SACK (RFC 2018).

tcp::TcpConfig SackConfig(tcp::TcpConfig c = TestConfig()) {
  c.sack = true;
  return c;
}

// RFC 2018 §4: with SACK permitted, an ACK for out-of-order data carries a SACK block for it.
TEST(Established, OutOfOrderDataIsReportedInASackBlock) {
  TcbHarness h(SackConfig());
  h.MakeEstablished(SackOk());
  h.Deliver(h.Peer(kAck, 11, 1, Pattern(10)));
  SegmentRepr ack = h.ExpectSent(HasAck(1));
  ASSERT_EQ(ack.options.sack_count, 1);
  EXPECT_EQ(ack.options.sack[0], PeerBlock(11, 21));
}

// RFC 2018 §4: "The first SACK block ... MUST specify the contiguous block of data containing the
// segment which triggered this ACK"; the other blocks follow.
TEST(Established, FirstSackBlockHoldsTheMostRecentSegment) {
  TcbHarness h(SackConfig());
  h.MakeEstablished(SackOk());
  h.Deliver(h.Peer(kAck, 31, 1, Pattern(10)));
  h.Deliver(h.Peer(kAck, 11, 1, Pattern(10)));
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 51, 1, Pattern(10)));
  SegmentRepr ack = h.ExpectSent(HasAck(1));
  ASSERT_EQ(ack.options.sack_count, 3);
  EXPECT_EQ(ack.options.sack[0], PeerBlock(51, 61));
  h.Deliver(h.Peer(kAck, 21, 1, Pattern(10)));  // joins [11, 21) and [31, 41)
  ack = h.ExpectSent(HasAck(1));
  ASSERT_EQ(ack.options.sack_count, 2);
  EXPECT_EQ(ack.options.sack[0], PeerBlock(11, 41));
  EXPECT_EQ(ack.options.sack[1], PeerBlock(51, 61));
}

// RFC 2018 §3: at most 4 SACK blocks fit in the option space without timestamps.
TEST(Established, SackCarriesAtMostFourBlocksWithoutTimestamps) {
  TcbHarness h(SackConfig());
  h.MakeEstablished(SackOk());
  for (uint32_t seq : {11, 31, 51, 71, 91}) h.Deliver(h.Peer(kAck, seq, 1, Pattern(5)));
  SegmentRepr last;
  while (h.SentCount() > 0) last = h.ExpectSent(HasAck(1));
  ASSERT_EQ(last.options.sack_count, 4);
  EXPECT_EQ(last.options.sack[0], PeerBlock(91, 96));
}

// RFC 2018 §3: with the 10-octet timestamps option, only 3 SACK blocks fit.
TEST(Established, SackCarriesAtMostThreeBlocksWithTimestamps) {
  tcp::TcpConfig cfg = SackConfig();
  cfg.timestamps = true;
  TcbHarness h(cfg);
  h.MakeEstablished(SackOk(Ts(100, 0)));
  uint32_t tsval = 101;
  for (uint32_t seq : {11, 31, 51, 71, 91}) {
    h.Deliver(WithTs(h.Peer(kAck, seq, 1, Pattern(5)), tsval++, 0));
  }
  SegmentRepr last;
  while (h.SentCount() > 0) last = h.ExpectSent(HasAck(1));
  ASSERT_EQ(last.options.sack_count, 3);
  EXPECT_EQ(last.options.sack[0], PeerBlock(91, 96));
  EXPECT_TRUE(last.options.timestamps.has_value());
}

// RFC 2018 §5: the sender does not retransmit what the receiver has SACKed; during recovery the
// next retransmission goes to the next hole.
TEST(Established, RetransmissionSkipsSackedRanges) {
  TcbHarness h(WithInitialWindow(10, SackConfig()));
  h.MakeEstablished(SackOk(Mss(1000)));
  SendAndDiscard(h, 6000);  // segments at 1, 1001, ..., 5001; 1 and 2001 are lost
  h.Deliver(WithSack(h.Peer(kAck, 1, 1), {{1001, 2001}}));
  h.Deliver(WithSack(h.Peer(kAck, 1, 1), {{3001, 4001}, {1001, 2001}}));
  h.ExpectNothingSent();
  h.Deliver(WithSack(h.Peer(kAck, 1, 1), {{3001, 5001}, {1001, 2001}}));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1000)));
  h.Deliver(WithSack(h.Peer(kAck, 1, 1), {{3001, 6001}, {1001, 2001}}));
  h.ExpectSent(AllOf(HasSeq(2001), HasLen(1000)));
  EXPECT_EQ(LastOutVerdict(h), Verdict::kRetransmitted);
}

// RFC 2018 §8: after a retransmission timeout the sender forgets SACK information (the receiver
// may have reneged) and retransmits from SND.UNA, SACKed ranges included.
TEST(Established, RtoClearsTheSackScoreboard) {
  TcbHarness h(SackConfig());
  h.MakeEstablished(SackOk(Mss(1000)));
  SendAndDiscard(h, 4000);
  h.Deliver(WithSack(h.Peer(kAck, 1, 1), {{1001, 2001}}));
  h.Advance(milliseconds(200));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1000)));
  h.Deliver(h.Peer(kAck, 1, 1001));  // no SACK block any more: reneged
  h.ExpectSent(AllOf(HasSeq(1001), HasLen(1000)));
  h.ExpectSent(HasSeq(2001));
}

// ---------------------------------------------------------------------------------------------
// Timestamps and PAWS (RFC 7323).

tcp::TcpConfig TsConfig() {
  tcp::TcpConfig c = TestConfig();
  c.timestamps = true;
  return c;
}

// RFC 7323 §3.2/§4.3: every segment carries TSval (our clock, ms) and TSecr = TS.Recent, the
// peer's latest TSval on the left edge.
TEST(Established, AckEchoesTsRecentAndCarriesOurClock) {
  TcbHarness h(TsConfig());
  h.MakeEstablished(Ts(100, 0));
  h.Advance(milliseconds(5));
  h.Deliver(WithTs(h.Peer(kAck, 1, 1, "hi"), 200, 0));
  SegmentRepr ack = h.ExpectSent(HasAck(3));
  ASSERT_TRUE(ack.options.timestamps.has_value());
  EXPECT_EQ(ack.options.timestamps->val, static_cast<uint32_t>(ToMillis(h.now().time_since_epoch())));
  EXPECT_EQ(ack.options.timestamps->ecr, 200u);
}

// RFC 7323 §4.3 (2): TS.Recent takes SEG.TSval only if SEG.SEQ =< Last.ACK.sent: an out-of-order
// segment does not update it, the one that fills the hole does.
TEST(Established, TsRecentFollowsOnlySegmentsAtTheLeftEdge) {
  TcbHarness h(TsConfig());
  h.MakeEstablished(Ts(100, 0));
  h.Deliver(WithTs(h.Peer(kAck, 11, 1, "later"), 300, 0));
  SegmentRepr ack = h.ExpectSent(HasAck(1));
  EXPECT_EQ(ack.options.timestamps->ecr, 100u);
  h.Deliver(WithTs(h.Peer(kAck, 1, 1, Pattern(10)), 250, 0));
  ack = h.ExpectSent(HasAck(16));
  EXPECT_EQ(ack.options.timestamps->ecr, 250u);
}

// RFC 7323 §5.3 R1: a segment with SEG.TSval < TS.Recent is a duplicate from an old wrap of the
// sequence space: send an ACK and drop it.
TEST(Established, PawsDropsASegmentWithAnOldTsvalAndAcks) {
  TcbHarness h(TsConfig());
  h.MakeEstablished(Ts(100, 0));
  h.Deliver(WithTs(h.Peer(kAck, 1, 1, "stale"), 50, 0));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kPawsRejected);
  SegmentRepr ack = h.ExpectSent(AllOf(HasFlags(kAck), HasAck(1)));
  EXPECT_EQ(ack.options.timestamps->ecr, 100u);
  EXPECT_EQ(h.tcb().readable(), 0u);
  EXPECT_EQ(h.tcb().counters().paws_drops, 1u);
}

// RFC 7323 §5.3 R1: "... and if the RST bit is not set": a RST is not subject to PAWS.
TEST(Established, RstIsExemptFromPaws) {
  TcbHarness h(TsConfig());
  h.MakeEstablished(Ts(100, 0));
  h.Deliver(WithTs(h.Peer(kRst, 1), 50, 0));
  EXPECT_EQ(h.state(), TcpState::kClosed);
  h.ExpectNothingSent();
}

// RFC 7323 §5.5: a TS.Recent idle for more than 24 days is invalid; PAWS does not use it.
TEST(Established, PawsIgnoresATsRecentIdleForMoreThan24Days) {
  TcbHarness h(TsConfig());
  h.MakeEstablished(Ts(100, 0));
  h.Advance(hours(25 * 24));
  h.Deliver(WithTs(h.Peer(kAck, 1, 1, "hello"), 50, 0));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kAccepted);
  EXPECT_EQ(h.Recv(), "hello");
}

// RFC 7323 §4.1: with timestamps the RTT sample is now - TSecr, whatever segment it echoes.
TEST(Established, RttSampleComesFromTsecr) {
  TcbHarness h(TsConfig());
  h.MakeEstablished(Ts(100, 0));  // the handshake's sample was 0: SRTT 0, RTTVAR 0
  const uint32_t sent_at = static_cast<uint32_t>(ToMillis(h.now().time_since_epoch()));
  SendAndDiscard(h, 1);
  h.Advance(milliseconds(150));
  // The peer echoes a TSval 50 ms older than our data segment's, e.g. a delayed ACK's TS.Recent.
  h.Deliver(WithTs(h.Peer(kAck, 1, 2), 101, sent_at - 50));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.rttvar, milliseconds(50));  // (3*0 + 200) / 4: the sample is 200 ms, not 150
  EXPECT_EQ(s.srtt, milliseconds(25));    // (7*0 + 200) / 8
}

}  // namespace
}  // namespace tcplab::testing
