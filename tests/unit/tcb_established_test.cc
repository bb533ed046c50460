// The data path of an ESTABLISHED connection, one rule per test: sending and segmentation,
// receiving, reassembly and the acceptability test (RFC 9293 §3.10.7.4), the RFC 5961
// hardening against blind RSTs, SYNs and ACKs, the send and receive windows (SND.WL1/WL2,
// window scaling of RFC 7323, SWS avoidance of RFC 9293 §3.8.6.2), the persist timer, Nagle,
// delayed ACKs (RFC 5681 §4.2) and keepalives (RFC 9293 §3.8.4).
//
// Sequence numbers in Peer() and the matchers are relative: ours to our ISS (kOurIss), the
// peer's to its ISS (kPeerIss). After MakeEstablished() both sides' next octet is 1.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/tcp/tcb.h"
#include "tests/unit/harness/tcb_harness.h"

namespace tcplab::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::AllOf;
using ::testing::HasSubstr;
using tcp::Verdict;
using wire::kAck;
using wire::kFin;
using wire::kPsh;
using wire::kRst;
using wire::kSyn;

PeerOptions Mss(uint16_t mss, PeerOptions o = {}) {
  o.mss = mss;
  return o;
}
PeerOptions Wscale(uint8_t shift, PeerOptions o = {}) {
  o.wscale = shift;
  return o;
}

// `n` octets of a recognisable pattern: 'a'..'z' repeating, starting at `first`.
std::string Pattern(size_t n, size_t first = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (first + i) % 26);
  return s;
}

std::string PayloadOf(const SegmentRepr& s) { return std::string(s.payload.begin(), s.payload.end()); }

// The verdict of the last segment we sent (kSent or kRetransmitted).
Verdict LastOutVerdict(const TcbHarness& h) {
  for (auto it = h.segments().rbegin(); it != h.segments().rend(); ++it) {
    if (it->dir == tcp::Direction::kOut) return it->verdict;
  }
  return Verdict::kIgnored;
}

// The right edge of the window a segment advertises, relative to the peer's ISS.
uint32_t RightEdge(const SegmentRepr& s, int wscale) {
  return static_cast<uint32_t>(s.ack - SeqNum(kPeerIss)) + (uint32_t{s.window} << wscale);
}

// ---------------------------------------------------------------------------------------------
// Sending.

// RFC 9293 §3.7.1: a segment carries at most SMSS octets of data, here min(peer's MSS, ours).
TEST(Established, SendIsSegmentedAtSmss) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000));
  ASSERT_EQ(*h.Send(Pattern(2500)), 2500u);
  h.ExpectSent(AllOf(HasSeq(1), HasAck(1), HasLen(1000), HasPayload(Pattern(1000))));
  h.ExpectSent(AllOf(HasSeq(1001), HasLen(1000), HasPayload(Pattern(1000, 1000))));
  h.ExpectSent(AllOf(HasSeq(2001), HasLen(500), HasPayload(Pattern(500, 2000))));
  h.ExpectNothingSent();
}

// RFC 9293 §3.9.1.2 (SEND, PUSH): the segment that empties the send queue carries PSH; the ones
// before it do not.
TEST(Established, PshIsSetOnlyOnTheSegmentThatEmptiesTheQueue) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000));
  ASSERT_TRUE(h.Send(Pattern(2500)).ok());
  h.ExpectSent(HasFlags(kAck));
  h.ExpectSent(HasFlags(kAck));
  h.ExpectSent(HasFlags(kAck | kPsh));
}

// RFC 9293 §3.3.1: SND.NXT advances by the octets sent; SND.UNA stays until they are ACKed.
TEST(Established, SendAdvancesSndNxtButNotSndUna) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000));
  ASSERT_TRUE(h.Send(Pattern(2500)).ok());
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.snd_nxt, kOurIss + 1 + 2500);
  EXPECT_EQ(s.snd_una, kOurIss + 1);
  EXPECT_EQ(s.bytes_in_flight, 2500u);
}

// RFC 9293 §3.10.7.4 fifth: "SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK. Any
// segments on the retransmission queue that are thereby entirely acknowledged are removed."
TEST(Established, CumulativeAckFreesAcknowledgedOctetsOfTheSendBuffer) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000));
  const size_t capacity = h.tcb().send_space();
  ASSERT_TRUE(h.Send(Pattern(2500)).ok());
  EXPECT_EQ(h.tcb().send_space(), capacity - 2500);
  h.Deliver(h.Peer(kAck, 1, 1001));
  EXPECT_EQ(h.tcb().send_space(), capacity - 1500);
  EXPECT_EQ(h.tcb().Snapshot().snd_una, kOurIss + 1001);
  h.Deliver(h.Peer(kAck, 1, 2501));
  EXPECT_EQ(h.tcb().send_space(), capacity);
  EXPECT_EQ(h.tcb().Snapshot().bytes_in_flight, 0u);
}

// A zero-length SEND queues nothing and sends nothing; it returns 0 like send(2).
TEST(Established, EmptySendReturnsZeroAndSendsNothing) {
  TcbHarness h;
  h.MakeEstablished();
  auto n = h.Send("");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
  h.ExpectNothingSent();
}

// RFC 9293 §3.10.2: SEND queues what fits in the buffer; like a non-blocking send(2) it returns
// how much it took, and 0 once the buffer is full.
TEST(Established, SendIntoAFullBufferReturnsThePartialCount) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.send_buffer = 1000;
  TcbHarness h(cfg);
  h.MakeEstablished({}, /*peer_window=*/0);
  auto n = h.Send(Pattern(1500));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1000u);
  auto again = h.Send("x");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
}

// RFC 9293 §3.10.2: a SEND in FIN-WAIT-1 (after shutdown) gets "error: connection closing";
// the user sees EPIPE.
TEST(Established, SendAfterShutdownFailsWithEpipe) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.tcb().Shutdown(h.now()).ok());
  auto n = h.Send("late");
  ASSERT_FALSE(n.ok());
  EXPECT_THAT(std::string(n.status().message()), HasSubstr("EPIPE"));
}

// RFC 9293 §3.7.1, §3.3.1: a payload larger than the send buffer goes out as it is accepted, in
// SMSS-sized segments with contiguous sequence numbers, and arrives intact even when the send
// ring wraps around.
TEST(Established, HugePayloadIsSplitIntoContiguousSmssSegments) {
  TcbHarness h;
  h.MakeEstablished(Mss(1460));
  const std::string data = Pattern(200'000);
  std::string_view rest(data);
  std::string got;
  uint32_t next = 1;
  for (int round = 0; got.size() < data.size() && round < 1000; ++round) {
    if (!rest.empty()) {
      auto n = h.Send(rest);
      ASSERT_TRUE(n.ok());
      rest.remove_prefix(*n);
    }
    ASSERT_GT(h.SentCount(), 0u) << "stalled with " << got.size() << " octets sent";
    while (h.SentCount() > 0) {
      SegmentRepr s = h.ExpectSent(HasSeq(next));
      ASSERT_LE(s.payload.size(), 1460u);
      ASSERT_GT(s.payload.size(), 0u);
      got += PayloadOf(s);
      next += static_cast<uint32_t>(s.payload.size());
    }
    h.Deliver(h.Peer(kAck, 1, next));
  }
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "the bytes that arrived differ from the bytes sent";
}

// ---------------------------------------------------------------------------------------------
// Receiving.

// RFC 9293 §3.10.7.4 seventh: in-order text goes to the user, RCV.NXT advances over it, and
// an ACK <SEQ=SND.NXT><ACK=RCV.NXT> is sent.
TEST(Established, InOrderDataIsAckedAndReadable) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, "hello"));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kAccepted);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(6), HasLen(0)));
  EXPECT_EQ(h.Recv(), "hello");
}

// RFC 5681 §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an out-of-order
// segment arrives", acknowledging RCV.NXT, the first octet still missing.
TEST(Established, OutOfOrderSegmentIsAckedAtOnceWithRcvNxt) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 11, 1, "world"));
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(1), HasLen(0)));
  EXPECT_EQ(h.tcb().rcv_nxt(), SeqNum(kPeerIss + 1));
}

// RFC 9293 §3.10.7.4 seventh: segments beyond RCV.NXT are held for later processing, not given
// to the user before the gap is filled.
TEST(Established, OutOfOrderDataIsHeldUntilTheGapIsFilled) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 11, 1, "world"));
  EXPECT_EQ(h.tcb().readable(), 0u);
  EXPECT_EQ(h.Recv(), "");
  EXPECT_EQ(h.tcb().Snapshot().out_of_order_bytes, 5u);
}

// RFC 5681 §4.2: a segment that fills a hole is ACKed at once; the ACK covers everything that
// is now contiguous, and the user reads it all in order.
TEST(Established, FillingTheHoleDeliversEverythingAndAcksAtOnce) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 11, 1, "world"));
  h.Deliver(h.Peer(kAck, 16, 1, "!!"));
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 1, "hello, my "));
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(18)));
  EXPECT_EQ(h.Recv(), "hello, my world!!");
  EXPECT_EQ(h.tcb().Snapshot().out_of_order_bytes, 0u);
}

// RFC 9293 §3.10.7.4 first: a segment wholly below RCV.NXT (a duplicate) is not acceptable:
// "send an acknowledgment in reply ... After sending the acknowledgment, drop the unacceptable
// segment".
TEST(Established, DuplicateSegmentIsAckedAndDropped) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, "hello"));
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 1, "hello"));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kOutOfWindow);
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(6)));
  EXPECT_EQ(h.Recv(), "hello");
}

// RFC 9293 §3.10.7.4 first: a segment that starts before RCV.NXT but reaches into the window is
// acceptable; "segments with higher beginning sequence numbers" aside, only its new octets are
// processed: the overlap is trimmed.
TEST(Established, OverlappingSegmentIsTrimmedToItsNewOctets) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, "hello"));
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 1, "helloworld"));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kAccepted);
  h.ExpectSent(HasAck(11));
  EXPECT_EQ(h.Recv(), "helloworld");
  EXPECT_EQ(h.tcb().counters().bytes_in, 10u);
}

// RFC 9293 §3.10.7.4 first: "If a segment's contents straddle the boundary between old and new,
// only the new parts are processed" — the same holds on the right: octets beyond the receive
// window are trimmed and not acknowledged.
TEST(Established, DataBeyondTheReceiveWindowIsTrimmed) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 1000;
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(1500)));
  h.ExpectSent(AllOf(HasAck(1001), HasWindow(0)));
  EXPECT_EQ(h.Recv(), Pattern(1000));
}

// RFC 9293 §3.10.7.4 first: the same trimming applies to out-of-order segments held for later.
TEST(Established, OutOfOrderDataBeyondTheWindowIsNotHeld) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 1000;
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 901, 1, Pattern(300)));  // 100 octets fit in [1, 1001)
  EXPECT_EQ(h.tcb().Snapshot().out_of_order_bytes, 100u);
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(900)));
  h.ExpectSent(HasAck(1001));
  EXPECT_EQ(h.Recv().size(), 1000u);
}

// ---------------------------------------------------------------------------------------------
// The acceptability test, RFC 9293 §3.10.7.4 first, case by case.

// Case len = 0, wnd > 0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND is acceptable.
TEST(Established, EmptySegmentInsideTheWindowIsAcceptable) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 100, 1));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kAccepted);
  h.ExpectNothingSent();
}

// Case len = 0, wnd > 0, SEG.SEQ outside the window: not acceptable, ACK and drop.
TEST(Established, EmptySegmentOutsideTheWindowIsAckedAndDropped) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 70000, 1));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kOutOfWindow);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.tcb().counters().out_of_window_segments, 1u);
}

// Case len = 0, wnd = 0: only SEG.SEQ = RCV.NXT is acceptable.
TEST(Established, ZeroWindowAcceptsAnEmptySegmentOnlyAtRcvNxt) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 1000;
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(1000)));
  h.ExpectSent(HasWindow(0));
  h.Deliver(h.Peer(kAck, 1001, 1));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kAccepted);
  h.ExpectNothingSent();
  h.Deliver(h.Peer(kAck, 1002, 1));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kOutOfWindow);
  h.ExpectSent(AllOf(HasAck(1001), HasWindow(0)));
}

// Case len > 0, wnd = 0: not acceptable, even at RCV.NXT. The text is dropped and an ACK tells
// the peer the window is still zero.
TEST(Established, ZeroWindowStillTakesTheAckOfASegmentAtRcvNxt) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 1000;
  TcbHarness h(cfg);
  h.MakeEstablished();
  ASSERT_TRUE(h.Send("hello").ok());
  h.ExpectSent(HasLen(5));
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(1000)));
  h.DiscardSent();
  // "special allowance should be made to accept valid ACKs": the ACK of our 5 octets counts,
  // the text finds no room and is answered at once with the zero window.
  h.Deliver(h.Peer(kAck, 1001, 6, "x"));
  EXPECT_EQ(h.tcb().Snapshot().snd_una, kOurIss + 6);
  h.ExpectSent(AllOf(HasAck(1001), HasWindow(0)));
  EXPECT_EQ(h.tcb().readable(), 1000u);
}

// Case len > 0, wnd > 0: acceptable if the first or the last octet lies in the window. A
// segment starting before RCV.NXT whose last octet is in the window is acceptable.
TEST(Established, DataSegmentWithOnlyItsLastOctetInTheWindowIsAcceptable) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, "abc"));
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 3, 1, "cd"));  // octet 3 is old, octet 4 new
  EXPECT_EQ(h.LastInVerdict(), Verdict::kAccepted);
  h.ExpectSent(HasAck(5));
  EXPECT_EQ(h.Recv(), "abcd");
}

// Case len > 0, wnd > 0, neither end in the window: "If an incoming segment is not acceptable,
// an acknowledgment should be sent in reply ... After sending the acknowledgment, drop the
// unacceptable segment and return."
TEST(Established, DataSegmentBeyondTheWindowIsAckedAndDropped) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 1000;
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1001, 1, "too far"));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kOutOfWindow);
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(1), HasWindow(1000)));
  EXPECT_EQ(h.tcb().Snapshot().out_of_order_bytes, 0u);
}

// ---------------------------------------------------------------------------------------------
// RST, SYN and ACK checks (RFC 9293 §3.10.7.4 second to fifth, RFC 5961).

// RFC 9293 §3.10.7.4 first: an unacceptable segment with RST is dropped without reply.
TEST(Established, OutOfWindowRstIsIgnored) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kRst, 70000));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kIgnored);
  h.ExpectNothingSent();
  EXPECT_EQ(h.state(), TcpState::kEstablished);
}

// RFC 5961 §3.2: a RST inside the window but not at exactly RCV.NXT is answered with a challenge
// ACK <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>; the connection stays.
TEST(Established, InWindowRstNotAtRcvNxtGetsAChallengeAck) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kRst, 2));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kChallengeAcked);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  EXPECT_EQ(h.tcb().counters().challenge_acks, 1u);
}

// RFC 5961 §3.2 / RFC 9293 §3.10.7.4 second: a RST at exactly RCV.NXT resets the connection;
// the user's calls fail with "connection reset".
TEST(Established, RstAtRcvNxtClosesWithEconnreset) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kRst, 1));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kResetConnection);
  EXPECT_EQ(h.state(), TcpState::kClosed);
  h.ExpectNothingSent();
  EXPECT_THAT(std::string(h.tcb().error().message()), HasSubstr("ECONNRESET"));
  auto n = h.Send("x");
  ASSERT_FALSE(n.ok());
  EXPECT_THAT(std::string(n.status().message()), HasSubstr("ECONNRESET"));
}

// RFC 5961 §4.2 / RFC 9293 §3.10.7.4 fourth: a SYN in a synchronized state, in the window, is
// answered with a challenge ACK and does not reset the connection.
TEST(Established, InWindowSynGetsAChallengeAck) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kSyn, 100));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kChallengeAcked);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
}

// RFC 5961 §4.2: "irrespective of the sequence number" — an old SYN (a retransmitted SYN of this
// connection) is also answered with an ACK and changes nothing.
TEST(Established, OldSynIsAckedAndChangesNothing) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kSyn, 0));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  EXPECT_EQ(h.tcb().rcv_nxt(), SeqNum(kPeerIss + 1));
}

// RFC 5961 §7: challenge ACKs are limited per time unit (challenge_ack_limit per second); the
// budget renews after a second.
TEST(Established, ChallengeAcksAreRateLimitedPerSecond) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.challenge_ack_limit = 3;
  TcbHarness h(cfg);
  h.MakeEstablished();
  for (uint32_t i = 0; i < 5; ++i) h.Deliver(h.Peer(kRst, 2 + i));
  EXPECT_EQ(h.SentCount(), 3u);
  EXPECT_EQ(h.tcb().counters().challenge_acks, 3u);
  h.DiscardSent();
  h.Advance(seconds(1));
  h.Deliver(h.Peer(kRst, 10));
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(1)));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
}

// RFC 9293 §3.10.7.4 fifth / RFC 5961 §5.2: "If the ACK acks something not yet sent (SEG.ACK >
// SND.NXT), then send an ACK, drop the segment, and return" — its text too.
TEST(Established, AckOfUnsentDataIsAckedAndDropped) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 2, "data"));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kBadAck);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
  EXPECT_EQ(h.tcb().readable(), 0u);
  EXPECT_EQ(h.tcb().Snapshot().snd_una, kOurIss + 1);
}

// RFC 5961 §5.2: an ACK below SND.UNA - MAX.SND.WND is too old to be genuine: ACK and drop.
TEST(Established, AckOlderThanMaxSndWndIsAckedAndDropped) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/1000);
  for (uint32_t acked = 1001; acked <= 2001; acked += 1000) {
    ASSERT_TRUE(h.Send(Pattern(1000)).ok());
    h.Deliver(h.Peer(kAck, 1, acked, {}, 1000));
  }
  ASSERT_EQ(h.tcb().Snapshot().snd_una, kOurIss + 2001);
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 1000, "data", 1000));  // 1000 < 2001 - 1000
  EXPECT_EQ(h.LastInVerdict(), Verdict::kBadAck);
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(2001), HasAck(1)));
  EXPECT_EQ(h.tcb().readable(), 0u);
}

// RFC 9293 §3.10.7.4 fifth: "If the ACK is a duplicate (SEG.ACK < SND.UNA), it can be ignored"
// — but the segment is otherwise processed, as long as the ACK is within MAX.SND.WND (RFC 5961
// §5.2).
TEST(Established, OldAckWithinMaxSndWndIsIgnoredButTheTextIsProcessed) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/1000);
  for (uint32_t acked = 1001; acked <= 2001; acked += 1000) {
    ASSERT_TRUE(h.Send(Pattern(1000)).ok());
    h.Deliver(h.Peer(kAck, 1, acked, {}, 1000));
  }
  h.DiscardSent();
  h.Deliver(h.Peer(kAck, 1, 1001, "data", 1000));  // 1001 = 2001 - 1000
  EXPECT_EQ(h.LastInVerdict(), Verdict::kAccepted);
  h.ExpectSent(HasAck(5));
  EXPECT_EQ(h.Recv(), "data");
  EXPECT_EQ(h.tcb().Snapshot().snd_una, kOurIss + 2001);
}

// RFC 9293 §3.10.7.4 fifth: "if the ACK bit is off, drop the segment and return".
TEST(Established, SegmentWithoutAckBitIsDropped) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kPsh, 1, 0, "data"));
  EXPECT_EQ(h.LastInVerdict(), Verdict::kIgnored);
  h.ExpectNothingSent();
  EXPECT_EQ(h.tcb().readable(), 0u);
  EXPECT_EQ(h.tcb().rcv_nxt(), SeqNum(kPeerIss + 1));
}

// ---------------------------------------------------------------------------------------------
// The send window (RFC 9293 §3.10.7.4 fifth: SND.WL1, SND.WL2).

// A segment newer than the one that last set the window (SND.WL1 < SEG.SEQ) updates SND.WND.
TEST(Established, NewerSegmentUpdatesTheSendWindow) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, {}, 2000));
  tcp::TcbSnapshot s = h.tcb().Snapshot();
  EXPECT_EQ(s.snd_wnd, 2000u);
  EXPECT_EQ(s.snd_wl1, kPeerIss + 1);
  EXPECT_EQ(s.snd_wl2, kOurIss + 1);
}

// An older segment (SEG.SEQ < SND.WL1), here one overtaken by a later one, must not set the
// window back to its stale value.
TEST(Established, SegmentWithOlderSeqDoesNotUpdateTheSendWindow) {
  TcbHarness h;
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 11, 1, "x", 3000));
  ASSERT_EQ(h.tcb().Snapshot().snd_wnd, 3000u);
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(10), 100));
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 3000u);
  EXPECT_EQ(h.tcb().readable(), 11u);  // its text is still processed
}

// Same SEG.SEQ, older SEG.ACK (SND.WL2 > SEG.ACK): no window update.
TEST(Established, SegmentWithOlderAckDoesNotUpdateTheSendWindow) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.Send(Pattern(100)).ok());
  h.Deliver(h.Peer(kAck, 1, 101, {}, 2000));
  h.Deliver(h.Peer(kAck, 1, 51, {}, 100));
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 2000u);
}

// "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated": an ACK below SND.UNA
// does not update it, even on a segment with a newer sequence number.
TEST(Established, AckBelowSndUnaDoesNotUpdateTheSendWindow) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.Send(Pattern(100)).ok());
  h.Deliver(h.Peer(kAck, 1, 101, "abc", 2000));
  h.Deliver(h.Peer(kAck, 4, 51, "def", 100));
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 2000u);
  EXPECT_EQ(h.Recv(), "abcdef");
}

// ---------------------------------------------------------------------------------------------
// The receive window.

// RFC 9293 §3.8.6: the window advertised is the free space of the receive buffer.
TEST(Established, AdvertisedWindowIsTheFreeReceiveBuffer) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 4000;
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(1000)));
  h.ExpectSent(AllOf(HasAck(1001), HasWindow(3000)));
  EXPECT_EQ(h.tcb().Snapshot().rcv_wnd, 3000u);
}

// RFC 9293 §3.8.6.2.2: data the user has not read closes the window from the left; the right
// edge (ACK + window) stays where it was.
TEST(Established, UnreadDataShrinksTheWindowButKeepsTheRightEdge) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 4000;
  TcbHarness h(cfg);
  h.MakeEstablished();
  for (uint32_t i = 0; i < 4; ++i) {
    h.Deliver(h.Peer(kAck, 1 + 1000 * i, 1, Pattern(1000)));
    SegmentRepr ack = h.ExpectSent(AllOf(HasAck(1001 + 1000 * i), HasWindow(3000 - 1000 * i)));
    EXPECT_EQ(RightEdge(ack, 0), 4001u);
  }
}

// RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): reading a little from a full buffer does not
// announce a tiny window.
TEST(Established, ReadingLessThanAnMssSendsNoWindowUpdate) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 4000;
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(4000)));
  h.ExpectSent(HasWindow(0));
  EXPECT_EQ(h.Recv(100).size(), 100u);
  h.ExpectNothingSent();
}

// RFC 9293 §3.8.6.2.2: once the user has read enough (here at least an SMSS from a zero window),
// a window update tells the peer the window has reopened.
TEST(Established, ReadingReopensTheWindowWithAWindowUpdate) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 4000;
  TcbHarness h(cfg);
  h.MakeEstablished();  // SMSS 536
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(4000)));
  h.ExpectSent(HasWindow(0));
  h.Recv(100);
  h.Recv(500);
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(4001), HasWindow(600)));
}

// RFC 9293 §3.8.6.2.2: a window update goes out only when the window can grow by a useful
// amount. With a buffer larger than the unscaled window field (65535), the window already offered
// is the largest there is: reading frees buffer space but cannot move the edge, and an ACK saying
// the same thing again would be a duplicate ACK (RFC 5681 §2) to a sender with data in flight.
TEST(Established, ReadingSendsNoWindowUpdateWhenTheWindowIsAlreadyAtItsMaximum) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.recv_buffer = 256 * 1024;  // no window scaling: the field says at most 65535
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(100)));
  h.ExpectSent(AllOf(HasAck(101), HasWindow(65435)));
  EXPECT_EQ(h.Recv(1000).size(), 100u);
  h.ExpectNothingSent();
}

// RFC 9293 §3.8.6.2.2 / RFC 7323 §2.4: the right edge never moves left, even when the window is
// scaled and the free space is not a multiple of 2^shift: the field is rounded up.
TEST(Established, ScaledWindowEdgeRecedesLessThanOneUnitAndStaysWithinTheBuffer) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.window_scaling = true;
  cfg.recv_buffer = 256 * 1024;  // shift 3
  TcbHarness h(cfg);
  h.MakeEstablished(Wscale(0));
  ASSERT_EQ(h.tcb().Snapshot().rcv_wscale, 3);
  h.Deliver(h.Peer(kAck, 1, 1, "a"));
  uint32_t edge = RightEdge(h.ExpectSent(HasAck(2)), 3);
  uint32_t seq = 2;
  uint32_t received = 1;
  for (size_t len : {5, 3, 7, 1, 6, 5, 3, 7, 1, 6}) {
    h.Deliver(h.Peer(kAck, seq, 1, Pattern(len)));
    seq += static_cast<uint32_t>(len);
    received += static_cast<uint32_t>(len);
    uint32_t next_edge = RightEdge(h.ExpectSent(HasAck(seq)), 3);
    // Rounding the scaled field down may pull the edge back by less than 2^3 (RFC 7323 §2.4)...
    EXPECT_GT(next_edge + 8, edge) << "after " << seq - 1 << " octets";
    // ...and so it never promises more than the free buffer.
    EXPECT_LE(next_edge, 1u + 256 * 1024) << "after " << received << " octets";
    edge = std::max(edge, next_edge);
  }
}

// RFC 7323 §2.3: with window scaling, the window field of non-SYN segments is the window
// shifted right by our shift count.
TEST(Established, WindowFieldIsScaledInNonSynSegments) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.window_scaling = true;
  cfg.recv_buffer = 256 * 1024;  // shift 3
  TcbHarness h(cfg);
  h.MakeEstablished(Wscale(2));
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(8000)));
  h.ExpectSent(AllOf(HasAck(8001), HasWindow((256 * 1024 - 8000) >> 3)));
}

// RFC 7323 §2.2: "The window field in a segment where the SYN bit is set ... MUST NOT be
// scaled": our SYN offers min(buffer, 65535) unscaled, with our shift count in the option.
TEST(SynSent, SynCarriesAnUnscaledWindowAndTheShiftCount) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.window_scaling = true;
  cfg.recv_buffer = 256 * 1024;
  TcbHarness h(cfg);
  h.tcb().OpenActive(SeqNum(kOurIss), 0, h.now());
  SegmentRepr syn = h.ExpectSent(AllOf(HasFlags(kSyn), HasWindow(65535)));
  ASSERT_TRUE(syn.options.window_scale.has_value());
  EXPECT_EQ(*syn.options.window_scale, 3);
}

// RFC 7323 §2.2/§2.3: the peer's SYN window is taken as is; later windows are shifted left by
// the peer's shift count.
TEST(Established, PeerWindowIsScaledExceptInItsSyn) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.window_scaling = true;
  TcbHarness h(cfg);
  h.MakeEstablished(Wscale(2), /*peer_window=*/1000);
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 1000u);
  h.Deliver(h.Peer(kAck, 1, 1, {}, 1000));
  EXPECT_EQ(h.tcb().Snapshot().snd_wnd, 4000u);
}

// ---------------------------------------------------------------------------------------------
// Zero window and the persist timer (RFC 9293 §3.8.6.1).

// "The sending TCP must regularly retransmit to the receiving TCP even when the window is zero":
// after one RTO a probe carrying one new octet goes out.
TEST(Established, ZeroWindowArmsPersistTimerThatSendsAOneOctetProbe) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/0);
  const Duration rto = h.tcb().Snapshot().rto;
  ASSERT_TRUE(h.Send("hello").ok());
  h.ExpectNothingSent();
  bool persist_armed = false;
  for (const auto& t : h.tcb().Snapshot().timers) persist_armed |= t.kind == tcp::TimerKind::kPersist;
  EXPECT_TRUE(persist_armed);
  h.Advance(rto - milliseconds(1));
  h.ExpectNothingSent();
  h.Advance(milliseconds(1));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1), HasPayload("h")));
}

// RFC 9293 §3.8.6.1: "SHOULD increase exponentially the interval between successive probes".
TEST(Established, PersistProbesBackOffExponentially) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/0);
  const Duration rto = h.tcb().Snapshot().rto;
  ASSERT_TRUE(h.Send("hello").ok());
  h.Advance(rto);
  h.ExpectSent(HasLen(1));
  for (int k = 1; k <= 3; ++k) {
    Duration interval = rto * (1 << k);
    h.Deliver(h.Peer(kAck, 1, 1, {}, 0));  // "still zero"
    h.Advance(interval - milliseconds(1));
    h.ExpectNothingSent();
    h.Advance(milliseconds(1));
    h.ExpectSent(AllOf(HasSeq(1), HasLen(1)));
  }
}

// A repeated probe carries the same octet at SND.UNA again: it is a retransmission, not new data.
TEST(Established, RepeatedPersistProbeIsARetransmission) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/0);
  const Duration rto = h.tcb().Snapshot().rto;
  ASSERT_TRUE(h.Send("hello").ok());
  h.Advance(rto);
  h.ExpectSent(HasLen(1));
  EXPECT_EQ(LastOutVerdict(h), Verdict::kSent);
  h.Advance(2 * rto);
  h.ExpectSent(AllOf(HasSeq(1), HasLen(1)));
  EXPECT_EQ(LastOutVerdict(h), Verdict::kRetransmitted);
  EXPECT_EQ(h.tcb().counters().bytes_out, 1u);
}

// RFC 9293 §3.8.6.1: when the window opens, the receiver accepts the probe octet and the sender
// goes on with the rest; the persist timer stops.
TEST(Established, OpenedWindowAcceptsTheProbeAndSendingResumes) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/0);
  ASSERT_TRUE(h.Send("hello").ok());
  h.Advance(h.tcb().Snapshot().rto);
  h.ExpectSent(HasPayload("h"));
  h.Deliver(h.Peer(kAck, 1, 2, {}, 1000));
  h.ExpectSent(AllOf(HasSeq(2), HasPayload("ello")));
  for (const auto& t : h.tcb().Snapshot().timers) EXPECT_NE(t.kind, tcp::TimerKind::kPersist);
}

// RFC 9293 §3.8.6.1: "the sending TCP MUST allow the remote receiver to keep its window closed
// indefinitely": answered probes never time the connection out.
TEST(Established, ReceiverMayKeepItsWindowClosedIndefinitely) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.data_retries = 3;
  cfg.max_rto = seconds(2);
  TcbHarness h(cfg);
  h.MakeEstablished({}, /*peer_window=*/0);
  ASSERT_TRUE(h.Send("hello").ok());
  for (int i = 0; i < 30; ++i) {
    h.Advance(seconds(2));
    ASSERT_GE(h.SentCount(), 1u) << "no probe in round " << i;
    while (h.SentCount() > 0) h.ExpectSent(AllOf(HasSeq(1), HasLen(1)));
    h.Deliver(h.Peer(kAck, 1, 1, {}, 0));
    ASSERT_EQ(h.state(), TcpState::kEstablished) << "round " << i;
  }
  EXPECT_EQ(h.tcb().counters().fast_retransmits, 0u);
}

// ---------------------------------------------------------------------------------------------
// Nagle (RFC 9293 §3.7.4) and sender SWS avoidance (RFC 9293 §3.8.6.2.1).

// Nagle: "if there is unacknowledged data ... the sending TCP buffers all user data ... until
// the outstanding data has been acknowledged or until the TCP can send a full-sized segment".
TEST(Established, NagleHoldsASmallSegmentWhileDataIsUnacknowledged) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.nagle = true;
  TcbHarness h(cfg);
  h.MakeEstablished();
  ASSERT_TRUE(h.Send("a").ok());
  h.ExpectSent(HasPayload("a"));  // nothing outstanding: goes at once
  ASSERT_TRUE(h.Send("b").ok());
  h.ExpectNothingSent();
  h.Deliver(h.Peer(kAck, 1, 2));
  h.ExpectSent(AllOf(HasSeq(2), HasPayload("b")));
}

// Nagle holds back only small segments: full-sized ones go even with data outstanding.
TEST(Established, NagleStillSendsFullSizedSegments) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.nagle = true;
  TcbHarness h(cfg);
  h.MakeEstablished();  // SMSS 536
  ASSERT_TRUE(h.Send("a").ok());
  h.ExpectSent(HasLen(1));
  ASSERT_TRUE(h.Send(Pattern(600)).ok());
  h.ExpectSent(AllOf(HasSeq(2), HasLen(536)));
  h.ExpectNothingSent();  // the 64-octet tail waits
}

// With config.nagle off (TCP_NODELAY), small segments go out at once.
TEST(Established, WithoutNagleSmallSegmentsGoAtOnce) {
  TcbHarness h;
  h.MakeEstablished();
  ASSERT_TRUE(h.Send("a").ok());
  ASSERT_TRUE(h.Send("b").ok());
  h.ExpectSent(AllOf(HasSeq(1), HasPayload("a")));
  h.ExpectSent(AllOf(HasSeq(2), HasPayload("b")));
}

// RFC 9293 §3.8.6.2.1: a slice of the window smaller than both SMSS and half the largest window
// offered is not sent while more data waits.
TEST(Established, SenderSwsAvoidanceHoldsASmallSliceOfTheWindow) {
  TcbHarness h;
  h.MakeEstablished({}, /*peer_window=*/1000);  // SMSS 536
  ASSERT_TRUE(h.Send(Pattern(2000)).ok());
  h.ExpectSent(AllOf(HasSeq(1), HasLen(536)));
  h.ExpectNothingSent();  // 464 octets would fit, but 464 < min(536, 1000/2)
}

// RFC 9293 §3.8.6.2.1 (3): a segment of at least half the maximum window the peer has offered
// may be sent even if it is shorter than SMSS.
TEST(Established, SenderSendsASliceOfAtLeastHalfTheMaxWindow) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000), /*peer_window=*/1000);
  h.Deliver(h.Peer(kAck, 1, 1, {}, 600));
  ASSERT_TRUE(h.Send(Pattern(2000)).ok());
  h.ExpectSent(AllOf(HasSeq(1), HasLen(600)));
  h.ExpectNothingSent();
}

// RFC 9293 §3.8.6.2.1 (4): data held back by SWS avoidance with nothing in flight must not wait
// forever: after an override timeout the usable slice is sent.
TEST(Established, SwsOverrideTimeoutSendsAHeldSlice) {
  TcbHarness h;
  h.MakeEstablished(Mss(1000), /*peer_window=*/1000);
  h.Deliver(h.Peer(kAck, 1, 1, {}, 300));
  ASSERT_TRUE(h.Send(Pattern(2000)).ok());
  h.ExpectNothingSent();
  h.Advance(seconds(2));
  h.ExpectSent(AllOf(HasSeq(1), HasLen(300)));
}

// ---------------------------------------------------------------------------------------------
// Delayed ACKs (RFC 5681 §4.2, RFC 9293 §3.8.6.3).

// "an ACK SHOULD be generated for at least every second full-sized segment".
TEST(Established, DelayedAckAcksEverySecondFullSizedSegmentAtOnce) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.delayed_ack = true;
  TcbHarness h(cfg);
  h.MakeEstablished();  // SMSS 536
  h.Deliver(h.Peer(kAck, 1, 1, Pattern(536)));
  h.ExpectNothingSent();
  h.Deliver(h.Peer(kAck, 537, 1, Pattern(536)));
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(1073)));
  h.ExpectNothingSent();
}

// "... and MUST be generated within 500 ms of the arrival of the first unacknowledged packet":
// a lone segment is ACKed when the delayed-ACK timer (config.delayed_ack_timeout) expires.
TEST(Established, DelayedAckAcksALoneSegmentWhenTheTimerExpires) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.delayed_ack = true;
  cfg.delayed_ack_timeout = milliseconds(40);
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, "hello"));
  h.Advance(milliseconds(39));
  h.ExpectNothingSent();
  h.Advance(milliseconds(1));
  h.ExpectSent(AllOf(HasFlags(kAck), HasAck(6)));
}

// RFC 5681 §4.2: an out-of-order segment is ACKed immediately even with delayed ACKs on.
TEST(Established, DelayedAckStillAcksOutOfOrderDataAtOnce) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.delayed_ack = true;
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 11, 1, "late"));
  h.ExpectSent(HasAck(1));
}

// RFC 9293 §3.8.6.3: an ACK piggybacked on data clears the pending delayed ACK.
TEST(Established, DataSegmentCarriesThePendingDelayedAck) {
  tcp::TcpConfig cfg = TestConfig();
  cfg.delayed_ack = true;
  TcbHarness h(cfg);
  h.MakeEstablished();
  h.Deliver(h.Peer(kAck, 1, 1, "ping"));
  h.ExpectNothingSent();
  ASSERT_TRUE(h.Send("pong").ok());
  h.ExpectSent(AllOf(HasAck(5), HasPayload("pong")));
  h.Advance(milliseconds(100));  // past the 40 ms delayed-ACK time, before the RTO
  h.ExpectNothingSent();
}

// ---------------------------------------------------------------------------------------------
// Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6).

tcp::TcpConfig KeepaliveConfig() {
  tcp::TcpConfig cfg = TestConfig();
  cfg.keepalive = true;
  cfg.keepalive_idle = seconds(10);
  cfg.keepalive_interval = seconds(1);
  cfg.keepalive_probes = 3;
  return cfg;
}

// After keepalive_idle without a segment from the peer, a probe <SEQ=SND.UNA-1> with no data
// elicits an ACK.
TEST(Established, KeepaliveProbeAfterIdleHasSeqSndUnaMinusOne) {
  TcbHarness h(KeepaliveConfig());
  h.MakeEstablished();
  h.Advance(seconds(10) - milliseconds(1));
  h.ExpectNothingSent();
  h.Advance(milliseconds(1));
  h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(0), HasAck(1), HasLen(0)));
}

// An answer shows the peer is alive: the next probe waits a full idle time again.
TEST(Established, AnsweredKeepaliveRestartsTheIdleTime) {
  TcbHarness h(KeepaliveConfig());
  h.MakeEstablished();
  h.Advance(seconds(10));
  h.ExpectSent(HasSeq(0));
  h.Deliver(h.Peer(kAck, 1, 1));
  h.Advance(seconds(10) - milliseconds(1));
  h.ExpectNothingSent();
  h.Advance(milliseconds(1));
  h.ExpectSent(HasSeq(0));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
}

// RFC 1122 §4.2.3.6: a peer that answers none of keepalive_probes probes is declared dead:
// RST, CLOSED, and ETIMEDOUT for the user.
TEST(Established, UnansweredKeepalivesTimeOutWithEtimedout) {
  TcbHarness h(KeepaliveConfig());
  h.MakeEstablished();
  h.Advance(seconds(12));
  for (int i = 0; i < 3; ++i) h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(0)));
  EXPECT_EQ(h.state(), TcpState::kEstablished);
  h.Advance(seconds(1));
  h.ExpectSent(AllOf(HasFlags(kRst), HasSeq(1)));
  EXPECT_EQ(h.state(), TcpState::kClosed);
  EXPECT_THAT(std::string(h.tcb().error().message()), HasSubstr("ETIMEDOUT"));
}

// Any acceptable segment counts as a sign of life, not only an answer to a probe.
TEST(Established, IncomingDataPostponesTheKeepalive) {
  TcbHarness h(KeepaliveConfig());
  h.MakeEstablished();
  h.Advance(seconds(8));
  h.Deliver(h.Peer(kAck, 1, 1, "hi"));
  h.DiscardSent();
  h.Advance(seconds(9));
  h.ExpectNothingSent();
  h.Advance(seconds(1));
  h.ExpectSent(AllOf(HasSeq(0), HasLen(0)));
}

}  // namespace
}  // namespace tcplab::testing
