// The pieces a Tcb is made of, tested alone: RttEstimator (RFC 6298), NewReno (RFC 5681,
// RFC 6582), Reassembler (RFC 9293 §3.10.7.4 seventh) and ByteRing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tcp/byte_ring.h"
#include "engine/tcp/congestion.h"
#include "engine/tcp/reassembler.h"
#include "engine/tcp/rtt.h"
#include "engine/wire/seqnum.h"

namespace tcplab::tcp {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using wire::SeqNum;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string Str(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

// Everything the reassembler hands over from `next` on, as a string.
std::string DrainFrom(Reassembler& r, uint64_t next) {
  std::string out;
  r.DeliverFrom(next, [&](std::span<const uint8_t> d) { out += Str(d); });
  return out;
}

// ---------------------------------------------------------------------------------------------
// RttEstimator (RFC 6298).

// RFC 6298 (2.1): before any measurement, RTO is the initial value.
TEST(RttEstimator, StartsAtTheInitialRto) {
  RttEstimator r(seconds(1), milliseconds(200), seconds(60));
  EXPECT_EQ(r.rto(), seconds(1));
  EXPECT_FALSE(r.has_sample());
}

// RFC 6298 (2.2): SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G, K*RTTVAR) with K = 4.
TEST(RttEstimator, FirstSampleSetsSrttToRAndRttvarToHalfR) {
  RttEstimator r(seconds(1), milliseconds(200), seconds(60));
  r.Sample(milliseconds(100));
  EXPECT_TRUE(r.has_sample());
  EXPECT_EQ(r.srtt(), milliseconds(100));
  EXPECT_EQ(r.rttvar(), milliseconds(50));
  EXPECT_EQ(r.rto(), milliseconds(300));
}

// RFC 6298 (2.3): RTTVAR <- (1 - 1/4) RTTVAR + 1/4 |SRTT - R'| with the old SRTT, then
// SRTT <- (1 - 1/8) SRTT + 1/8 R'.
TEST(RttEstimator, LaterSamplesUseAlphaOneEighthAndBetaOneQuarter) {
  RttEstimator r(seconds(1), milliseconds(1), seconds(60));
  r.Sample(milliseconds(100));
  r.Sample(milliseconds(200));
  EXPECT_EQ(r.rttvar(), microseconds(62'500));
  EXPECT_EQ(r.srtt(), microseconds(112'500));
  EXPECT_EQ(r.rto(), microseconds(362'500));
  r.Sample(milliseconds(40));  // |112.5 - 40| = 72.5
  EXPECT_EQ(r.rttvar(), nanoseconds((3 * 62'500'000 + 72'500'000) / 4));
  EXPECT_EQ(r.srtt(), nanoseconds((7 * 112'500'000 + 40'000'000) / 8));
}

// RFC 6298 (2.2)/(2.3): the variance term is at least the clock granularity G (1 ms here).
TEST(RttEstimator, RtoHasTheClockGranularityAsFloorOfTheVarianceTerm) {
  RttEstimator r(seconds(1), nanoseconds(0), seconds(60));
  r.Sample(milliseconds(0));
  EXPECT_EQ(r.rto(), milliseconds(1));
  r.Sample(milliseconds(0));
  EXPECT_EQ(r.rto(), milliseconds(1));
}

// RFC 6298 (2.4) and (2.5): RTO is clamped to [min_rto, max_rto].
TEST(RttEstimator, RtoIsClampedBetweenMinAndMax) {
  RttEstimator low(seconds(1), milliseconds(200), seconds(2));
  low.Sample(milliseconds(10));  // 30 ms
  EXPECT_EQ(low.rto(), milliseconds(200));
  RttEstimator high(seconds(1), milliseconds(200), seconds(2));
  high.Sample(seconds(1));  // 3 s
  EXPECT_EQ(high.rto(), seconds(2));
}

// RFC 6298 (5.5): each expiry doubles RTO, up to the maximum of (2.5).
TEST(RttEstimator, BackoffDoublesUpToMaxRto) {
  RttEstimator r(seconds(1), milliseconds(200), seconds(5));
  r.Backoff();
  EXPECT_EQ(r.rto(), seconds(2));
  r.Backoff();
  EXPECT_EQ(r.rto(), seconds(4));
  r.Backoff();
  EXPECT_EQ(r.rto(), seconds(5));
  r.Backoff();
  EXPECT_EQ(r.rto(), seconds(5));
}

// RFC 6298 §5 (Karn): the backed-off RTO holds until a new valid sample, which recomputes it.
TEST(RttEstimator, SampleAfterBackoffRecomputesTheRto) {
  RttEstimator r(seconds(1), milliseconds(200), seconds(60));
  r.Backoff();
  r.Backoff();
  ASSERT_EQ(r.rto(), seconds(4));
  r.Sample(milliseconds(100));
  EXPECT_EQ(r.rto(), milliseconds(300));
}

// RFC 6298 (5.7): after a SYN timeout RTO is raised to 3 s; raising never lowers, and never goes
// beyond max_rto.
TEST(RttEstimator, RaiseToOnlyRaisesAndRespectsMaxRto) {
  RttEstimator r(seconds(1), milliseconds(200), seconds(60));
  r.RaiseTo(seconds(3));
  EXPECT_EQ(r.rto(), seconds(3));
  r.RaiseTo(seconds(2));
  EXPECT_EQ(r.rto(), seconds(3));
  r.RaiseTo(seconds(100));
  EXPECT_EQ(r.rto(), seconds(60));
}

// A negative measurement (a clock going backwards) is no measurement.
TEST(RttEstimator, NegativeSampleIsIgnored) {
  RttEstimator r(seconds(1), milliseconds(200), seconds(60));
  r.Sample(milliseconds(-5));
  EXPECT_FALSE(r.has_sample());
  EXPECT_EQ(r.rto(), seconds(1));
}

// ---------------------------------------------------------------------------------------------
// NewReno (RFC 5681, RFC 6582). SMSS 1000 unless said otherwise.

// RFC 5681 §3.1 eq. (1): IW = 2*SMSS above 2190 octets, 3*SMSS above 1095, else 4*SMSS.
TEST(NewReno, InitialWindowFollowsRfc5681EquationOne) {
  NewReno cc;
  cc.Init(2191, 0);
  EXPECT_EQ(cc.cwnd(), 2u * 2191);
  cc.Init(2190, 0);
  EXPECT_EQ(cc.cwnd(), 3u * 2190);
  cc.Init(1096, 0);
  EXPECT_EQ(cc.cwnd(), 3u * 1096);
  cc.Init(1095, 0);
  EXPECT_EQ(cc.cwnd(), 4u * 1095);
  EXPECT_EQ(cc.ssthresh(), UINT32_MAX);  // "arbitrarily high"
}

// config.initial_cwnd_segments overrides eq. (1) (RFC 6928 allows 10).
TEST(NewReno, InitialSegmentsOverrideTheInitialWindow) {
  NewReno cc;
  cc.Init(1460, 10);
  EXPECT_EQ(cc.cwnd(), 14600u);
}

// RFC 5681 §3.1 eq. (2): cwnd += min(N, SMSS) per ACK in slow start.
TEST(NewReno, SlowStartAddsAtMostOneSmssPerAck) {
  NewReno cc;
  cc.Init(1000, 0);
  cc.OnNewAck(SeqNum(1001), 1000, 3000);
  EXPECT_EQ(cc.cwnd(), 5000u);
  cc.OnNewAck(SeqNum(4001), 3000, 0);
  EXPECT_EQ(cc.cwnd(), 6000u);
  cc.OnNewAck(SeqNum(4501), 500, 0);
  EXPECT_EQ(cc.cwnd(), 6500u);
}

// RFC 5681 §3.1: in congestion avoidance, cwnd grows by SMSS once cwnd octets have been acked.
TEST(NewReno, CongestionAvoidanceAddsOneSmssPerCwndOfAckedOctets) {
  NewReno cc;
  cc.Init(1000, 0);
  cc.OnRto(SeqNum(10001), 10000);  // ssthresh 5000, cwnd 1000
  for (int i = 0; i < 4; ++i) cc.OnNewAck(SeqNum(0), 1000, 0);
  ASSERT_EQ(cc.cwnd(), 5000u);
  for (int i = 0; i < 4; ++i) cc.OnNewAck(SeqNum(0), 1000, 0);
  EXPECT_EQ(cc.cwnd(), 5000u);
  cc.OnNewAck(SeqNum(0), 1000, 0);
  EXPECT_EQ(cc.cwnd(), 6000u);
}

// RFC 5681 §3.2 steps 2-3: the third duplicate ACK sets ssthresh = max(FlightSize/2, 2*SMSS),
// cwnd = ssthresh + 3*SMSS; RFC 6582 §3.2 step 2 sets recover to the highest octet sent.
TEST(NewReno, ThirdDuplicateAckEntersFastRecovery) {
  NewReno cc;
  cc.Init(1000, 0);
  EXPECT_FALSE(cc.OnDupAck(SeqNum(1), SeqNum(10001), 10000));
  EXPECT_FALSE(cc.OnDupAck(SeqNum(1), SeqNum(10001), 10000));
  EXPECT_TRUE(cc.OnDupAck(SeqNum(1), SeqNum(10001), 10000));
  EXPECT_TRUE(cc.in_recovery());
  EXPECT_EQ(cc.ssthresh(), 5000u);
  EXPECT_EQ(cc.cwnd(), 8000u);
  EXPECT_EQ(cc.recover(), SeqNum(10000));
}

// RFC 5681 §3.2 eq. (4): ssthresh is at least 2*SMSS, however small the flight.
TEST(NewReno, FastRecoverySsthreshIsAtLeastTwoSegments) {
  NewReno cc;
  cc.Init(1000, 0);
  for (int i = 0; i < 3; ++i) cc.OnDupAck(SeqNum(1), SeqNum(1501), 1500);
  EXPECT_EQ(cc.ssthresh(), 2000u);
  EXPECT_EQ(cc.cwnd(), 5000u);
}

// RFC 6582 §3.2 step 4: further duplicate ACKs inflate cwnd by SMSS and trigger nothing else.
TEST(NewReno, DuplicateAcksInRecoveryInflateCwnd) {
  NewReno cc;
  cc.Init(1000, 0);
  for (int i = 0; i < 3; ++i) cc.OnDupAck(SeqNum(1), SeqNum(10001), 10000);
  EXPECT_FALSE(cc.OnDupAck(SeqNum(1), SeqNum(10001), 10000));
  EXPECT_EQ(cc.cwnd(), 9000u);
  EXPECT_FALSE(cc.OnDupAck(SeqNum(1), SeqNum(10001), 10000));
  EXPECT_EQ(cc.cwnd(), 10000u);
}

// RFC 6582 §3.2 step 5: a partial ACK deflates cwnd by the octets acked, adds back SMSS if at
// least SMSS was acked, and asks for a retransmission.
TEST(NewReno, PartialAckDeflatesAndAsksForARetransmission) {
  NewReno cc;
  cc.Init(1000, 0);
  for (int i = 0; i < 3; ++i) cc.OnDupAck(SeqNum(1), SeqNum(10001), 10000);
  EXPECT_TRUE(cc.OnNewAck(SeqNum(3001), 3000, 7000));
  EXPECT_EQ(cc.cwnd(), 8000u - 3000 + 1000);
  EXPECT_TRUE(cc.in_recovery());
  EXPECT_TRUE(cc.OnNewAck(SeqNum(3501), 500, 6500));  // less than SMSS: nothing added back
  EXPECT_EQ(cc.cwnd(), 6000u - 500);
}

// RFC 6582 §3.2 step 3: a full ACK (beyond recover) ends recovery with
// cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
TEST(NewReno, FullAckEndsRecoveryWithDeflatedCwnd) {
  NewReno idle;
  idle.Init(1000, 0);
  for (int i = 0; i < 3; ++i) idle.OnDupAck(SeqNum(1), SeqNum(10001), 10000);
  EXPECT_FALSE(idle.OnNewAck(SeqNum(10001), 10000, 0));
  EXPECT_FALSE(idle.in_recovery());
  EXPECT_EQ(idle.cwnd(), 2000u);

  NewReno busy;
  busy.Init(1000, 0);
  for (int i = 0; i < 3; ++i) busy.OnDupAck(SeqNum(1), SeqNum(10001), 10000);
  EXPECT_FALSE(busy.OnNewAck(SeqNum(10001), 10000, 8000));
  EXPECT_EQ(busy.cwnd(), 5000u);  // ssthresh
}

// RFC 5681 §3.1 eq. (4) and the loss window: after an RTO, cwnd = 1 SMSS, ssthresh =
// max(FlightSize/2, 2*SMSS), recovery ends, and recover = SND.MAX - 1 (RFC 6582 §4).
TEST(NewReno, RtoResetsToTheLossWindow) {
  NewReno cc;
  cc.Init(1000, 0);
  for (int i = 0; i < 3; ++i) cc.OnDupAck(SeqNum(1), SeqNum(10001), 10000);
  cc.OnRto(SeqNum(12001), 12000);
  EXPECT_EQ(cc.cwnd(), 1000u);
  EXPECT_EQ(cc.ssthresh(), 6000u);
  EXPECT_FALSE(cc.in_recovery());
  EXPECT_EQ(cc.dupacks(), 0);
  EXPECT_EQ(cc.recover(), SeqNum(12000));
}

// RFC 6582 §3.2 step 2: duplicate ACKs that do not cover more than recover start no new
// recovery; once SND.UNA is beyond it, they do.
TEST(NewReno, DuplicateAcksNotBeyondRecoverStartNoRecovery) {
  NewReno cc;
  cc.Init(1000, 0);
  cc.OnRto(SeqNum(10001), 10000);  // recover = 10000
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(cc.OnDupAck(SeqNum(5001), SeqNum(10001), 5000));
  EXPECT_EQ(cc.cwnd(), 1000u);
  EXPECT_FALSE(cc.in_recovery());
  cc.OnNewAck(SeqNum(10002), 5001, 3000);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(cc.OnDupAck(SeqNum(10002), SeqNum(13002), 3000));
  EXPECT_TRUE(cc.OnDupAck(SeqNum(10002), SeqNum(13002), 3000));
  EXPECT_TRUE(cc.in_recovery());
}

// ---------------------------------------------------------------------------------------------
// Reassembler.

// Out-of-order data is held; nothing is delivered until the octets before it arrive, then
// everything contiguous comes out in order.
TEST(Reassembler, HoldsOutOfOrderDataUntilTheGapIsFilled) {
  Reassembler r;
  r.Insert(10, Bytes("world"), 0, 100);
  EXPECT_EQ(DrainFrom(r, 0), "");
  EXPECT_EQ(r.bytes(), 5u);
  r.Insert(0, Bytes("0123456789"), 0, 100);
  EXPECT_EQ(DrainFrom(r, 0), "0123456789world");
  EXPECT_EQ(r.bytes(), 0u);
  EXPECT_TRUE(r.empty());
}

// Overlapping segments: the octets already held win (Linux keeps the first copy); only the gaps
// are filled from the newer segment.
TEST(Reassembler, OverlapKeepsTheFirstCopyAndFillsOnlyGaps) {
  Reassembler r;
  r.Insert(5, Bytes("AAAAA"), 0, 100);
  r.Insert(12, Bytes("CC"), 0, 100);
  r.Insert(0, Bytes("bbbbbbbbbbbbbbbb"), 0, 100);
  EXPECT_EQ(r.bytes(), 16u);
  EXPECT_EQ(DrainFrom(r, 0), "bbbbbAAAAAbbCCbb");
}

// Only [next, limit) is stored: octets already delivered and octets beyond the receive window
// are trimmed.
TEST(Reassembler, TrimsBelowNextAndBeyondTheLimit) {
  Reassembler r;
  r.Insert(0, Bytes("0123456789"), 3, 8);
  EXPECT_EQ(r.bytes(), 5u);
  EXPECT_EQ(DrainFrom(r, 3), "34567");
  r.Insert(20, Bytes("xyz"), 3, 20);  // entirely beyond the limit
  EXPECT_TRUE(r.empty());
}

// A segment identical to one already held adds nothing.
TEST(Reassembler, DuplicateSegmentAddsNothing) {
  Reassembler r;
  r.Insert(10, Bytes("hello"), 0, 100);
  r.Insert(10, Bytes("HELLO"), 0, 100);
  EXPECT_EQ(r.bytes(), 5u);
  EXPECT_EQ(r.Ranges().size(), 1u);
  EXPECT_EQ(DrainFrom(r, 0), "");
  EXPECT_EQ(DrainFrom(r, 10), "hello");
}

// Ranges() merges adjacent pieces (the source of SACK blocks); RangeContaining finds the block
// holding an offset (the first SACK block, RFC 2018 §4).
TEST(Reassembler, RangesMergeAdjacentPieces) {
  Reassembler r;
  r.Insert(10, Bytes("aaaaa"), 0, 100);
  r.Insert(15, Bytes("bbbbb"), 0, 100);
  r.Insert(30, Bytes("ccccc"), 0, 100);
  auto ranges = r.Ranges();
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].begin, 10u);
  EXPECT_EQ(ranges[0].end, 20u);
  EXPECT_EQ(ranges[1].begin, 30u);
  EXPECT_EQ(ranges[1].end, 35u);
  auto hit = r.RangeContaining(17);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->begin, 10u);
  EXPECT_EQ(hit->end, 20u);
  EXPECT_FALSE(r.RangeContaining(25).has_value());
  EXPECT_FALSE(r.RangeContaining(35).has_value());
}

// When RCV.NXT moves into a held piece (a newer segment delivered part of it), the part before
// it is dropped and the rest kept.
TEST(Reassembler, DropBeforeSplitsAPiece) {
  Reassembler r;
  r.Insert(10, Bytes("abcdefghij"), 0, 100);
  r.DropBefore(13);
  EXPECT_EQ(r.bytes(), 7u);
  EXPECT_EQ(DrainFrom(r, 13), "defghij");
}

// The FIN's stream offset is remembered until the data before it has arrived.
TEST(Reassembler, RemembersTheFinOffset) {
  Reassembler r;
  EXPECT_FALSE(r.fin().has_value());
  r.SetFin(42);
  ASSERT_TRUE(r.fin().has_value());
  EXPECT_EQ(*r.fin(), 42u);
}

// Offsets are 64-bit: pieces beyond 2^32 (where RCV.NXT starts) work like any other.
TEST(Reassembler, WorksAbove4GiBOffsets) {
  Reassembler r;
  const uint64_t base = uint64_t{1} << 32;
  r.Insert(base + 5, Bytes("tail"), base, base + 100);
  r.Insert(base, Bytes("head!"), base, base + 100);
  EXPECT_EQ(DrainFrom(r, base), "head!tail");
}

// ---------------------------------------------------------------------------------------------
// ByteRing.

// Push takes what fits and reports how much.
TEST(ByteRing, PushStopsAtCapacity) {
  ByteRing r(8);
  EXPECT_EQ(r.Push(Bytes("0123456789")), 8u);
  EXPECT_EQ(r.size(), 8u);
  EXPECT_EQ(r.free(), 0u);
  EXPECT_EQ(r.Push(Bytes("x")), 0u);
}

// Storage is allocated on the first write only, so idle connections stay small.
TEST(ByteRing, AllocatesOnTheFirstWrite) {
  ByteRing r(1024);
  EXPECT_EQ(r.allocated(), 0u);
  r.Push(Bytes("a"));
  EXPECT_EQ(r.allocated(), 1024u);
}

// Data that wraps past the end of the storage reads back in order; a wrapping Peek is copied
// into the scratch buffer, a non-wrapping one is a view.
TEST(ByteRing, WrapsAroundTheEndOfItsStorage) {
  ByteRing r(8);
  r.Push(Bytes("abcdef"));
  std::vector<uint8_t> out(4);
  ASSERT_EQ(r.Read(out), 4u);
  EXPECT_EQ(Str(out), "abcd");
  EXPECT_EQ(r.Push(Bytes("ghijk")), 5u);  // occupies [4, 8) and [0, 3)
  std::vector<uint8_t> scratch;
  auto wrapped = r.Peek(0, 7, scratch);
  EXPECT_EQ(Str(wrapped), "efghijk");
  EXPECT_EQ(wrapped.data(), scratch.data());
  auto view = r.Peek(0, 2, scratch);
  EXPECT_EQ(Str(view), "ef");
  EXPECT_NE(view.data(), scratch.data());
  std::vector<uint8_t> all(16);
  ASSERT_EQ(r.Read(all), 7u);
  EXPECT_EQ(Str(std::span<const uint8_t>(all).first(7)), "efghijk");
  EXPECT_TRUE(r.empty());
}

// Peek never reads past the data held.
TEST(ByteRing, PeekIsClampedToTheDataHeld) {
  ByteRing r(16);
  r.Push(Bytes("hello"));
  std::vector<uint8_t> scratch;
  EXPECT_EQ(Str(r.Peek(3, 10, scratch)), "lo");
  EXPECT_TRUE(r.Peek(5, 1, scratch).empty());
  EXPECT_TRUE(r.Peek(9, 1, scratch).empty());
}

// Pop discards from the front (acknowledged send data), never more than is held.
TEST(ByteRing, PopDiscardsFromTheFront) {
  ByteRing r(8);
  r.Push(Bytes("abcdef"));
  r.Pop(2);
  std::vector<uint8_t> scratch;
  EXPECT_EQ(Str(r.Peek(0, 8, scratch)), "cdef");
  r.Pop(100);
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.free(), 8u);
}

}  // namespace
}  // namespace tcplab::tcp
