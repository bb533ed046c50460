// Rules of sequence-number arithmetic (engine/wire/seqnum.h): comparisons modulo 2^32
// (RFC 9293 §3.4, RFC 1982) and the segment acceptability test of RFC 9293 §3.10.7.4.
#include "engine/wire/seqnum.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace tcplab::wire {
namespace {

// ---------------------------------------------------------------------------------------------
// SeqNum.

// RFC 9293 §3.4: "the sequence number space ... ranges from 0 to 2**32 - 1", and arithmetic
// is modulo 2^32, so 2^32 - 1 is followed by 0.
TEST(SeqNum, ArithmeticWrapsModulo2To32) {
  EXPECT_EQ(SeqNum(0xffffffffu) + 1, SeqNum(0));
  EXPECT_EQ(SeqNum(0xfffffff0u) + 0x20, SeqNum(0x10));
  EXPECT_EQ(SeqNum(5) - 10, SeqNum(0xfffffffbu));
  SeqNum s(0xfffffffeu);
  s += 3;
  EXPECT_EQ(s, SeqNum(1));
}

// RFC 1982 §3.2: a is before b when they are less than 2^31 apart and b is ahead, even if
// b's raw value is smaller because it has wrapped.
TEST(SeqNum, ComparisonWrapsAround) {
  const SeqNum before_wrap(0xfffffff0u);
  const SeqNum after_wrap(0x10);
  EXPECT_TRUE(before_wrap < after_wrap);
  EXPECT_TRUE(after_wrap > before_wrap);
  EXPECT_TRUE(before_wrap <= after_wrap);
  EXPECT_TRUE(after_wrap >= before_wrap);
  EXPECT_FALSE(after_wrap < before_wrap);
}

TEST(SeqNum, ComparisonOfEqualNumbers) {
  const SeqNum a(12345);
  EXPECT_TRUE(a == SeqNum(12345));
  EXPECT_FALSE(a < a);
  EXPECT_FALSE(a > a);
  EXPECT_TRUE(a <= a);
  EXPECT_TRUE(a >= a);
}

// Just under half the space apart is still ordered; that is the limit RFC 1982 §3.2 sets.
TEST(SeqNum, ComparisonHoldsUpToHalfTheSpace) {
  const SeqNum a(100);
  EXPECT_TRUE(a < a + 0x7fffffffu);
  EXPECT_TRUE(a + 0x7fffffffu > a);
}

// The difference is signed and counts octets across the wrap.
TEST(SeqNum, DifferenceIsSignedDistance) {
  EXPECT_EQ(SeqNum(0x10) - SeqNum(0xfffffff0u), 0x20);
  EXPECT_EQ(SeqNum(0xfffffff0u) - SeqNum(0x10), -0x20);
  EXPECT_EQ(SeqNum(7) - SeqNum(7), 0);
}

TEST(SeqNum, MaxAndMinAreWrapAware) {
  EXPECT_EQ(Max(SeqNum(0xffffff00u), SeqNum(5)), SeqNum(5));
  EXPECT_EQ(Min(SeqNum(0xffffff00u), SeqNum(5)), SeqNum(0xffffff00u));
}

// InWindow(first, size) is first <= s < first + size.
TEST(SeqNum, InWindowIncludesFirstAndExcludesEnd) {
  const SeqNum first(1000);
  EXPECT_TRUE(first.InWindow(first, 10));
  EXPECT_TRUE(SeqNum(1009).InWindow(first, 10));
  EXPECT_FALSE(SeqNum(1010).InWindow(first, 10));
  EXPECT_FALSE(SeqNum(999).InWindow(first, 10));
}

TEST(SeqNum, InWindowWrapsAround) {
  const SeqNum first(0xfffffffau);
  EXPECT_TRUE(SeqNum(0xffffffffu).InWindow(first, 16));
  EXPECT_TRUE(SeqNum(0).InWindow(first, 16));
  EXPECT_TRUE(SeqNum(9).InWindow(first, 16));
  EXPECT_FALSE(SeqNum(10).InWindow(first, 16));
  EXPECT_FALSE(SeqNum(0xfffffff9u).InWindow(first, 16));
}

TEST(SeqNum, EmptyWindowHoldsNothing) {
  const SeqNum first(42);
  EXPECT_FALSE(first.InWindow(first, 0));
  EXPECT_FALSE(SeqNum(41).InWindow(first, 0));
}

// ---------------------------------------------------------------------------------------------
// Acceptable: the four cases of the table in RFC 9293 §3.10.7.4.

constexpr SeqNum kRcvNxt(5000);

// len = 0, wnd = 0: SEG.SEQ = RCV.NXT, and nothing else.
TEST(Acceptable, ZeroWindowZeroLengthNeedsExactMatch) {
  EXPECT_TRUE(Acceptable(kRcvNxt, 0, kRcvNxt, 0));
  EXPECT_FALSE(Acceptable(kRcvNxt + 1, 0, kRcvNxt, 0));
  EXPECT_FALSE(Acceptable(kRcvNxt - 1, 0, kRcvNxt, 0));
}

// len = 0, wnd > 0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND.
TEST(Acceptable, ZeroLengthNeedsSeqInsideOpenWindow) {
  EXPECT_TRUE(Acceptable(kRcvNxt, 0, kRcvNxt, 100));
  EXPECT_TRUE(Acceptable(kRcvNxt + 99, 0, kRcvNxt, 100));
  EXPECT_FALSE(Acceptable(kRcvNxt + 100, 0, kRcvNxt, 100));
  EXPECT_FALSE(Acceptable(kRcvNxt - 1, 0, kRcvNxt, 100));
}

// len > 0, wnd = 0: not acceptable, even at exactly RCV.NXT.
TEST(Acceptable, DataIntoZeroWindowIsNeverAcceptable) {
  EXPECT_FALSE(Acceptable(kRcvNxt, 1, kRcvNxt, 0));
  EXPECT_FALSE(Acceptable(kRcvNxt, 1000, kRcvNxt, 0));
}

// len > 0, wnd > 0: the first octet in the window is enough...
TEST(Acceptable, DataWithFirstOctetInWindow) {
  EXPECT_TRUE(Acceptable(kRcvNxt, 10, kRcvNxt, 100));
  // ...even if the segment runs past the right edge (the excess is trimmed later).
  EXPECT_TRUE(Acceptable(kRcvNxt + 95, 10, kRcvNxt, 100));
}

// ...and so is the last octet: a segment that overlaps old data but brings new.
TEST(Acceptable, DataWithOnlyLastOctetInWindow) {
  EXPECT_TRUE(Acceptable(kRcvNxt - 9, 10, kRcvNxt, 100));
  EXPECT_FALSE(Acceptable(kRcvNxt - 10, 10, kRcvNxt, 100));  // ends exactly at RCV.NXT
}

// A duplicate entirely below RCV.NXT, or data entirely beyond the window, is not acceptable.
TEST(Acceptable, DataEntirelyOutsideWindowIsRejected) {
  EXPECT_FALSE(Acceptable(kRcvNxt - 500, 100, kRcvNxt, 100));
  EXPECT_FALSE(Acceptable(kRcvNxt + 100, 10, kRcvNxt, 100));
}

// The same test across the 2^32 wrap (RFC 9293 §3.4).
TEST(Acceptable, WorksAcrossTheWrap) {
  const SeqNum rcv_nxt(0xfffffff0u);
  EXPECT_TRUE(Acceptable(SeqNum(0x5), 10, rcv_nxt, 100));
  EXPECT_TRUE(Acceptable(SeqNum(0xffffffe8u), 10, rcv_nxt, 100));  // last octet is 0xfffffff1
  EXPECT_FALSE(Acceptable(SeqNum(0x60), 10, rcv_nxt, 100));
  EXPECT_TRUE(Acceptable(SeqNum(0x0), 0, rcv_nxt, 100));
}

// SYN and FIN occupy one sequence number each, so a bare FIN at RCV.NXT into a zero window
// is a length-1 segment and not acceptable (RFC 9293 §3.3.1, §3.10.7.4).
TEST(Acceptable, BareFinCountsAsOneOctet) {
  EXPECT_FALSE(Acceptable(kRcvNxt, 1, kRcvNxt, 0));
  EXPECT_TRUE(Acceptable(kRcvNxt, 1, kRcvNxt, 1));
}

}  // namespace
}  // namespace tcplab::wire
