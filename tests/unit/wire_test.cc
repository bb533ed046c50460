// Rules of the wire codec (engine/wire/codec.h) and the text forms of segment.h.
// One rule per test; the RFC section a rule comes from is cited beside it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "engine/wire/codec.h"
#include "engine/wire/segment.h"

namespace tcplab::wire {
namespace {

using ::testing::HasSubstr;

constexpr Ipv4 kEngineIp = Ipv4::Of(198, 18, 0, 2);
constexpr Ipv4 kKernelIp = Ipv4::Of(198, 18, 0, 1);

// ---------------------------------------------------------------------------------------------
// Helpers.

SegmentRepr BaseSegment() {
  SegmentRepr s;
  s.src = Endpoint{kEngineIp, 40000};
  s.dst = Endpoint{kKernelIp, 80};
  s.seq = SeqNum(1000);
  s.ack = SeqNum(2001);
  s.flags = kAck;
  s.window = 65535;
  return s;
}

std::vector<uint8_t> Bytes(const SegmentRepr& s) {
  std::vector<uint8_t> out;
  Serialize(s, out);
  return out;
}

// Recomputes both checksums after a test has edited the header bytes on purpose.
// Leaves alone a datagram too broken to locate its headers in.
void FixChecksums(std::vector<uint8_t>& d) {
  if (d.size() < 20) return;
  const size_t ihl = static_cast<size_t>(d[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > d.size()) return;
  d[10] = d[11] = 0;
  const uint16_t ip_sum = Ipv4HeaderChecksum({d.data(), ihl});
  d[10] = static_cast<uint8_t>(ip_sum >> 8);
  d[11] = static_cast<uint8_t>(ip_sum);
  const size_t total = (size_t{d[2]} << 8) | d[3];
  if (total < ihl + 18 || total > d.size()) return;
  const std::span<const uint8_t> tcp(d.data() + ihl, total - ihl);
  const uint16_t tcp_sum = TcpChecksum(
      Ipv4{(uint32_t{d[12]} << 24) | (uint32_t{d[13]} << 16) | (uint32_t{d[14]} << 8) | d[15]},
      Ipv4{(uint32_t{d[16]} << 24) | (uint32_t{d[17]} << 16) | (uint32_t{d[18]} << 8) | d[19]},
      tcp);
  d[ihl + 16] = static_cast<uint8_t>(tcp_sum >> 8);
  d[ihl + 17] = static_cast<uint8_t>(tcp_sum);
}

void SetTotalLength(std::vector<uint8_t>& d, size_t len) {
  d[2] = static_cast<uint8_t>(len >> 8);
  d[3] = static_cast<uint8_t>(len);
}

// A pure ACK carrying exactly `options` (a multiple of 4 octets) as its TCP option list.
std::vector<uint8_t> WithRawOptions(const std::vector<uint8_t>& options) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d.insert(d.begin() + 40, options.begin(), options.end());
  d[20 + 12] = static_cast<uint8_t>(((20 + options.size()) / 4) << 4);
  SetTotalLength(d, d.size());
  FixChecksums(d);
  return d;
}

MATCHER_P2(FailsWith, code, substr, "") {
  if (arg.ok()) {
    *result_listener << "parsed fine: " << arg->ToString();
    return false;
  }
  *result_listener << "status is " << arg.status();
  return arg.status().code() == code &&
         std::string(arg.status().message()).find(substr) != std::string::npos;
}

absl::StatusOr<SegmentRepr> ParseBytes(const std::vector<uint8_t>& d, bool verify = true) {
  return Parse(std::span<const uint8_t>(d), verify);
}

void ExpectSameSegment(const SegmentRepr& got, const SegmentRepr& want) {
  EXPECT_EQ(got.src, want.src);
  EXPECT_EQ(got.dst, want.dst);
  EXPECT_EQ(got.seq, want.seq);
  EXPECT_EQ(got.ack, want.ack);
  EXPECT_EQ(got.flags, want.flags);
  EXPECT_EQ(got.window, want.window);
  EXPECT_EQ(got.urgent, want.urgent);
  EXPECT_EQ(got.ttl, want.ttl);
  EXPECT_TRUE(got.options == want.options) << got.ToString() << "\n" << want.ToString();
  EXPECT_TRUE(
      std::equal(got.payload.begin(), got.payload.end(), want.payload.begin(), want.payload.end()));
}

// The options Serialize is expected to deliver: SACK blocks that do not fit are dropped.
TcpOptions AsDelivered(TcpOptions o) {
  o.sack_count = static_cast<uint8_t>(SackBlocksThatFit(o));
  for (int i = o.sack_count; i < kMaxSackBlocks; ++i) o.sack[i] = SackBlock{};
  return o;
}

// A segment with every field and option drawn at random; payload borrowed from `pool`.
SegmentRepr RandomSegment(std::mt19937& rng, const std::vector<uint8_t>& pool) {
  auto u32 = [&rng] { return static_cast<uint32_t>(rng()); };
  auto coin = [&rng] { return (rng() & 1) != 0; };
  SegmentRepr s;
  s.src = Endpoint{Ipv4{u32()}, static_cast<uint16_t>(u32())};
  s.dst = Endpoint{Ipv4{u32()}, static_cast<uint16_t>(u32())};
  s.seq = SeqNum(u32());
  s.ack = SeqNum(u32());
  s.flags = static_cast<uint8_t>(u32());
  s.window = static_cast<uint16_t>(u32());
  s.urgent = static_cast<uint16_t>(u32());
  s.ttl = static_cast<uint8_t>(u32());
  if (coin()) s.options.mss = static_cast<uint16_t>(u32());
  if (coin()) s.options.window_scale = static_cast<uint8_t>(u32());
  s.options.sack_permitted = coin();
  if (coin()) s.options.timestamps = Timestamps{u32(), u32()};
  s.options.sack_count = static_cast<uint8_t>(rng() % (kMaxSackBlocks + 1));
  for (int i = 0; i < s.options.sack_count; ++i) {
    s.options.sack[i] = SackBlock{SeqNum(u32()), SeqNum(u32())};
  }
  const size_t len = coin() ? 0 : rng() % (pool.size() + 1);
  s.payload = std::span<const uint8_t>(pool.data(), len);
  return s;
}

std::vector<uint8_t> RandomPool(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> pool(n);
  for (uint8_t& b : pool) b = static_cast<uint8_t>(rng());
  return pool;
}

// Textbook RFC 1071 checksum over the RFC 9293 §3.1 pseudo-header, one octet pair at a time,
// as an independent reference for TcpChecksum.
uint16_t NaiveTcpChecksum(Ipv4 src, Ipv4 dst, std::vector<uint8_t> seg) {
  seg[16] = seg[17] = 0;
  std::vector<uint8_t> all;
  auto put32 = [&all](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) all.push_back(static_cast<uint8_t>(v >> shift));
  };
  put32(src.v);
  put32(dst.v);
  put32((uint32_t{6} << 16) | static_cast<uint32_t>(seg.size()));  // zero, PTCL, TCP length
  all.insert(all.end(), seg.begin(), seg.end());
  if (all.size() % 2) all.push_back(0);
  uint32_t sum = 0;
  for (size_t i = 0; i < all.size(); i += 2) {
    sum += (uint32_t{all[i]} << 8) | all[i + 1];
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<uint16_t>(~sum);
}

// ---------------------------------------------------------------------------------------------
// Round trips.

TEST(RoundTrip, PureAckWithoutOptions) {
  const SegmentRepr s = BaseSegment();
  const std::vector<uint8_t> d = Bytes(s);
  EXPECT_EQ(d.size(), 40u);
  const auto r = ParseBytes(d);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectSameSegment(*r, s);
}

// Every subset of {MSS, wscale, sackOK, TS} with 0..4 SACK blocks comes back as written,
// minus the SACK blocks that cannot fit (RFC 2018 §3).
TEST(RoundTrip, EveryOptionCombination) {
  for (int mask = 0; mask < 16; ++mask) {
    for (int blocks = 0; blocks <= kMaxSackBlocks; ++blocks) {
      SegmentRepr s = BaseSegment();
      if (mask & 1) s.options.mss = 1460;
      if (mask & 2) s.options.window_scale = 7;
      if (mask & 4) s.options.sack_permitted = true;
      if (mask & 8) s.options.timestamps = Timestamps{0xdeadbeef, 0x01020304};
      for (int i = 0; i < blocks; ++i) {
        s.options.sack[i] = SackBlock{SeqNum(5000u + 100u * i), SeqNum(5050u + 100u * i)};
      }
      s.options.sack_count = static_cast<uint8_t>(blocks);
      SCOPED_TRACE(s.ToString());
      const std::vector<uint8_t> d = Bytes(s);
      EXPECT_LE(d.size(), 20u + 60u);
      EXPECT_EQ((d.size() - 40) % 4, 0u);
      const auto r = ParseBytes(d);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_TRUE(r->options == AsDelivered(s.options));
    }
  }
}

// Sequence space is modulo 2^32 (RFC 9293 §3.4): the extremes survive the trip.
TEST(RoundTrip, SequenceNumbersAtTheWrap) {
  const std::vector<uint8_t> data(100, 0xab);
  for (uint32_t seq : {0u, 1u, 0x7fffffffu, 0x80000000u, 0xffffff9cu, 0xffffffffu}) {
    SegmentRepr s = BaseSegment();
    s.seq = SeqNum(seq);
    s.ack = SeqNum(~seq);
    s.payload = data;
    const auto r = ParseBytes(Bytes(s));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->seq, SeqNum(seq));
    EXPECT_EQ(r->ack, SeqNum(~seq));
    EXPECT_EQ(r->seq + r->SeqLen(), SeqNum(seq + 100));
  }
}

// All eight flag bits, ECE and CWR included (RFC 3168 §6.1), and the urgent pointer.
TEST(RoundTrip, EveryFlagBitAndUrgentPointer) {
  for (int bit = 0; bit < 8; ++bit) {
    SegmentRepr s = BaseSegment();
    s.flags = static_cast<uint8_t>(1 << bit);
    s.urgent = static_cast<uint16_t>(0x1234 + bit);
    const auto r = ParseBytes(Bytes(s));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->flags, s.flags);
    EXPECT_EQ(r->urgent, s.urgent);
  }
}

TEST(Parse, PayloadPointsIntoTheDatagram) {
  const std::vector<uint8_t> data = {1, 2, 3, 4, 5};
  SegmentRepr s = BaseSegment();
  s.payload = data;
  const std::vector<uint8_t> d = Bytes(s);
  const auto r = ParseBytes(d);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->payload.data(), d.data() + 40);
  EXPECT_EQ(r->payload.size(), 5u);
}

// ---------------------------------------------------------------------------------------------
// Serialize.

// Linux's SYN: "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7" (tcp_options_write).
TEST(Serialize, SynOptionsFollowLinuxLayout) {
  SegmentRepr s = BaseSegment();
  s.flags = kSyn;
  s.options.mss = 1460;
  s.options.sack_permitted = true;
  s.options.timestamps = Timestamps{1, 0};
  s.options.window_scale = 7;
  const std::vector<uint8_t> d = Bytes(s);
  const std::vector<uint8_t> want = {
      2, 4, 0x05, 0xb4,                          // mss 1460
      4, 2, 8,    10,   0, 0, 0, 1, 0, 0, 0, 0,  // sackOK, TS val 1 ecr 0
      1, 3, 3,    7,                             // nop, wscale 7
  };
  ASSERT_EQ(d.size(), 40u + want.size());
  EXPECT_EQ(std::vector<uint8_t>(d.begin() + 40, d.end()), want);
  EXPECT_EQ(d[32] >> 4, 10);  // Data Offset: 40 octets of header
}

TEST(Serialize, SackPermittedWithoutTimestampsIsNopNopSackOk) {
  SegmentRepr s = BaseSegment();
  s.options.sack_permitted = true;
  const std::vector<uint8_t> d = Bytes(s);
  EXPECT_EQ(std::vector<uint8_t>(d.begin() + 40, d.end()), (std::vector<uint8_t>{1, 1, 4, 2}));
}

TEST(Serialize, TimestampsWithoutSackOkAreNopNopTs) {
  SegmentRepr s = BaseSegment();
  s.options.timestamps = Timestamps{0x01020304, 0x05060708};
  const std::vector<uint8_t> d = Bytes(s);
  EXPECT_EQ(std::vector<uint8_t>(d.begin() + 40, d.end()),
            (std::vector<uint8_t>{1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(Serialize, SackBlocksAreNopNopSack) {
  SegmentRepr s = BaseSegment();
  s.options.sack[0] = SackBlock{SeqNum(0x0a0b0c0d), SeqNum(0x0e0f1011)};
  s.options.sack_count = 1;
  const std::vector<uint8_t> d = Bytes(s);
  EXPECT_EQ(std::vector<uint8_t>(d.begin() + 40, d.end()),
            (std::vector<uint8_t>{1, 1, 5, 10, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11}));
}

// 40 octets of options: with timestamps only three SACK blocks fit (RFC 2018 §3), with
// MSS+TS+wscale only two. The blocks kept are the first ones (the most recent, per §4).
TEST(Serialize, DropsSackBlocksFromTheEndUntilOptionsFit) {
  SegmentRepr s = BaseSegment();
  s.options.timestamps = Timestamps{1, 2};
  for (int i = 0; i < 4; ++i) s.options.sack[i] = SackBlock{SeqNum(10u * i), SeqNum(10u * i + 5)};
  s.options.sack_count = 4;
  auto r = ParseBytes(Bytes(s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->options.sack_count, 3);
  EXPECT_EQ(r->options.sack[2], s.options.sack[2]);

  s.options.mss = 536;
  s.options.window_scale = 2;
  r = ParseBytes(Bytes(s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->options.sack_count, 2);

  s.options = TcpOptions{};
  s.options.sack_count = 4;
  EXPECT_EQ(SackBlocksThatFit(s.options), 4);
}

// RFC 791 §3.1 header: version 4, IHL 5, DF, ID 0, TTL from the segment, protocol 6.
TEST(Serialize, Ipv4HeaderHasDfTtlAndIdZero) {
  SegmentRepr s = BaseSegment();
  s.ttl = 17;
  const std::vector<uint8_t> d = Bytes(s);
  EXPECT_EQ(d[0], 0x45);
  EXPECT_EQ(d[4], 0);
  EXPECT_EQ(d[5], 0);
  EXPECT_EQ(d[6], 0x40);  // DF, no MF, offset 0
  EXPECT_EQ(d[7], 0);
  EXPECT_EQ(d[8], 17);
  EXPECT_EQ(d[9], 6);
  EXPECT_EQ((d[2] << 8) | d[3], 40);
}

TEST(Serialize, OverwritesOutputAndReusesItsCapacity) {
  const std::vector<uint8_t> data(1000, 7);
  SegmentRepr s = BaseSegment();
  s.payload = data;
  std::vector<uint8_t> out(5000, 0xff);
  const uint8_t* before = out.data();
  Serialize(s, out);
  EXPECT_EQ(out.size(), 1040u);
  EXPECT_EQ(out.data(), before);
  s.payload = {};
  Serialize(s, out);
  EXPECT_EQ(out.size(), 40u);
  EXPECT_EQ(out.data(), before);
}

// Both checksums verify the RFC 1071 way: the sum over the covered octets is all ones.
TEST(Serialize, WritesCorrectChecksums) {
  const std::vector<uint8_t> data = {1, 2, 3};  // odd length: padded with a zero octet
  SegmentRepr s = BaseSegment();
  s.payload = data;
  const std::vector<uint8_t> d = Bytes(s);
  EXPECT_EQ((d[10] << 8) | d[11], Ipv4HeaderChecksum({d.data(), 20}));
  EXPECT_EQ((d[36] << 8) | d[37],
            NaiveTcpChecksum(kEngineIp, kKernelIp, std::vector<uint8_t>(d.begin() + 20, d.end())));
}

// ---------------------------------------------------------------------------------------------
// Checksums (RFC 9293 §3.1, RFC 1071).

TEST(TcpChecksum, MatchesTextbookSumOnRandomSegments) {
  std::mt19937 rng(1071);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> seg = RandomPool(rng, 20 + rng() % 200);
    const Ipv4 src{static_cast<uint32_t>(rng())};
    const Ipv4 dst{static_cast<uint32_t>(rng())};
    ASSERT_EQ(TcpChecksum(src, dst, seg), NaiveTcpChecksum(src, dst, seg)) << "size " << seg.size();
  }
}

TEST(TcpChecksum, IgnoresWhatTheChecksumFieldHolds) {
  std::vector<uint8_t> seg(40, 0x5a);
  const uint16_t a = TcpChecksum(kEngineIp, kKernelIp, seg);
  seg[16] = 0x12;
  seg[17] = 0x34;
  EXPECT_EQ(TcpChecksum(kEngineIp, kKernelIp, seg), a);
}

TEST(Parse, RejectsFlippedPayloadBitWithDataLoss) {
  const std::vector<uint8_t> data(64, 0x11);
  SegmentRepr s = BaseSegment();
  s.payload = data;
  std::vector<uint8_t> d = Bytes(s);
  const uint16_t got = static_cast<uint16_t>((d[36] << 8) | d[37]);
  d[70] ^= 0x04;
  const uint16_t want = TcpChecksum(kEngineIp, kKernelIp, {d.data() + 20, d.size() - 20});
  EXPECT_THAT(ParseBytes(d),
              FailsWith(absl::StatusCode::kDataLoss,
                        absl::StrFormat("bad TCP checksum: got 0x%04x, want 0x%04x", got, want)));
}

// A corrupted address breaks the TCP checksum too: the pseudo-header covers it (RFC 9293 §3.1).
TEST(Parse, ChecksumCoversThePseudoHeader) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[15] ^= 0x01;  // source address
  d[10] = d[11] = 0;
  const uint16_t ip_sum = Ipv4HeaderChecksum({d.data(), 20});
  d[10] = static_cast<uint8_t>(ip_sum >> 8);
  d[11] = static_cast<uint8_t>(ip_sum);
  EXPECT_THAT(ParseBytes(d), FailsWith(absl::StatusCode::kDataLoss, "bad TCP checksum"));
}

TEST(Parse, RejectsBadIpv4HeaderChecksumWithDataLoss) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[8] ^= 0x80;  // TTL
  EXPECT_THAT(ParseBytes(d), FailsWith(absl::StatusCode::kDataLoss, "bad IPv4 header checksum"));
}

// verify_checksum=false hands back the headers of a damaged segment so it can be logged.
TEST(Parse, WithoutVerificationReturnsDamagedSegment) {
  const std::vector<uint8_t> data(10, 0x22);
  SegmentRepr s = BaseSegment();
  s.payload = data;
  std::vector<uint8_t> d = Bytes(s);
  d[45] ^= 0xff;
  d[8] ^= 0x01;
  const auto r = ParseBytes(d, /*verify=*/false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->seq, s.seq);
  EXPECT_EQ(r->payload.size(), 10u);
}

// ---------------------------------------------------------------------------------------------
// Malformed IPv4 (RFC 791 §3.1).

TEST(Parse, RejectsTruncatedIpv4Header) {
  const std::vector<uint8_t> d = Bytes(BaseSegment());
  EXPECT_THAT(ParseBytes(std::vector<uint8_t>(d.begin(), d.begin() + 19)),
              FailsWith(absl::StatusCode::kInvalidArgument, "truncated IPv4 header"));
  EXPECT_THAT(ParseBytes({}),
              FailsWith(absl::StatusCode::kInvalidArgument, "truncated IPv4 header"));
}

TEST(Parse, RejectsIhlBeyondTheBuffer) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d.resize(22);
  d[0] = 0x46;  // IHL 6: 24 octets
  EXPECT_THAT(ParseBytes(d),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        "truncated IPv4 header: IHL says 24 octets, datagram has 22"));
}

TEST(Parse, RejectsWrongIpVersionAndNamesIt) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[0] = 0x65;
  EXPECT_THAT(ParseBytes(d), FailsWith(absl::StatusCode::kInvalidArgument, "wrong IP version 6"));
}

TEST(Parse, RejectsIhlBelowFive) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[0] = 0x44;
  EXPECT_THAT(ParseBytes(d), FailsWith(absl::StatusCode::kInvalidArgument, "IPv4 IHL 4 < 5"));
}

TEST(Parse, RejectsTotalLengthBeyondTheBuffer) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  SetTotalLength(d, 41);
  FixChecksums(d);
  EXPECT_THAT(ParseBytes(d),
              FailsWith(absl::StatusCode::kInvalidArgument, "IPv4 total length 41 inconsistent"));
}

TEST(Parse, RejectsTotalLengthShorterThanTheHeader) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  SetTotalLength(d, 19);
  FixChecksums(d);
  EXPECT_THAT(ParseBytes(d),
              FailsWith(absl::StatusCode::kInvalidArgument, "IPv4 total length 19 inconsistent"));
}

// Octets past Total Length are link padding, not payload.
TEST(Parse, IgnoresOctetsPastTotalLength) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d.resize(60, 0xee);
  const auto r = ParseBytes(d);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->payload.empty());
}

// No reassembly in the engine (RFC 791 §3.2): a fragment is refused, whichever it is.
TEST(Parse, RejectsFirstFragment) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[6] = 0x20;  // MF
  FixChecksums(d);
  EXPECT_THAT(ParseBytes(d), FailsWith(absl::StatusCode::kInvalidArgument,
                                       "fragmented IPv4 datagram (MF=1, fragment offset=0)"));
}

TEST(Parse, RejectsLaterFragment) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[6] = 0x40;  // DF
  d[7] = 0x03;  // offset 3 (24 octets)
  FixChecksums(d);
  EXPECT_THAT(ParseBytes(d), FailsWith(absl::StatusCode::kInvalidArgument,
                                       "fragmented IPv4 datagram (MF=0, fragment offset=3)"));
}

TEST(Parse, RejectsNonTcpAndNamesTheProtocol) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[9] = 17;
  FixChecksums(d);
  EXPECT_THAT(ParseBytes(d),
              FailsWith(absl::StatusCode::kInvalidArgument, "not TCP: IPv4 protocol 17"));
}

// IPv4 options are skipped: nothing in the engine acts on them (RFC 1122 §3.2.1.8).
TEST(Parse, SkipsIpv4Options) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  const std::vector<uint8_t> ip_options = {1, 0, 0, 0};  // NOP, END, padding
  d.insert(d.begin() + 20, ip_options.begin(), ip_options.end());
  d[0] = 0x46;
  SetTotalLength(d, d.size());
  FixChecksums(d);
  const auto r = ParseBytes(d);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->src, BaseSegment().src);
  EXPECT_EQ(r->ack, BaseSegment().ack);
}

// ---------------------------------------------------------------------------------------------
// Malformed TCP header (RFC 9293 §3.1).

TEST(Parse, RejectsTruncatedTcpHeader) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d.resize(39);
  SetTotalLength(d, 39);
  FixChecksums(d);
  EXPECT_THAT(ParseBytes(d), FailsWith(absl::StatusCode::kInvalidArgument,
                                       "truncated TCP header: 19 octets, need at least 20"));
}

TEST(Parse, RejectsDataOffsetBelowFive) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[32] = 4 << 4;
  FixChecksums(d);
  EXPECT_THAT(ParseBytes(d),
              FailsWith(absl::StatusCode::kInvalidArgument, "TCP data offset 4 < 5"));
}

TEST(Parse, RejectsDataOffsetBeyondTheSegment) {
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[32] = 6 << 4;
  FixChecksums(d);
  EXPECT_THAT(ParseBytes(d), FailsWith(absl::StatusCode::kInvalidArgument,
                                       "TCP data offset 6 (24 octets) is beyond the segment"));
}

// ---------------------------------------------------------------------------------------------
// TCP options (RFC 9293 §3.2).

TEST(Parse, RejectsOptionOverrunningTheHeaderAndNamesIt) {
  // Timestamps claims 10 octets with 8 left.
  EXPECT_THAT(
      ParseBytes(WithRawOptions({1, 1, 1, 1, 8, 10, 0, 0, 0, 0, 0, 0})),
      FailsWith(absl::StatusCode::kInvalidArgument,
                "TCP option kind 8 (timestamps) at option offset 4 overruns the TCP header"));
}

TEST(Parse, RejectsOptionWhoseLengthOctetIsMissing) {
  EXPECT_THAT(
      ParseBytes(WithRawOptions({1, 1, 1, 2})),
      FailsWith(absl::StatusCode::kInvalidArgument, "TCP option kind 2 (MSS) at option offset 3"));
}

TEST(Parse, RejectsOptionLengthBelowTwo) {
  EXPECT_THAT(
      ParseBytes(WithRawOptions({30, 1, 0, 0})),
      FailsWith(absl::StatusCode::kInvalidArgument, "TCP option kind 30 (unknown) has length 1"));
}

TEST(Parse, RejectsMssWithWrongLength) {
  EXPECT_THAT(ParseBytes(WithRawOptions({2, 3, 5, 0})),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        "TCP option kind 2 (MSS) has length 3, want 4"));
}

TEST(Parse, RejectsWindowScaleWithWrongLength) {
  EXPECT_THAT(ParseBytes(WithRawOptions({3, 4, 7, 0})),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        "TCP option kind 3 (window scale) has length 4, want 3"));
}

TEST(Parse, RejectsSackPermittedWithWrongLength) {
  EXPECT_THAT(ParseBytes(WithRawOptions({4, 3, 0, 0})),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        "TCP option kind 4 (SACK-permitted) has length 3, want 2"));
}

// RFC 2018 §3: length 8n + 2; an empty or ragged SACK option is malformed.
TEST(Parse, RejectsSackWithWrongLength) {
  EXPECT_THAT(
      ParseBytes(WithRawOptions({1, 1, 5, 2})),
      FailsWith(absl::StatusCode::kInvalidArgument, "TCP option kind 5 (SACK) has length 2"));
  EXPECT_THAT(ParseBytes(WithRawOptions({5, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0})),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        "TCP option kind 5 (SACK) has length 12, want 10, 18, 26 or 34"));
}

TEST(Parse, RejectsTimestampsWithWrongLength) {
  EXPECT_THAT(ParseBytes(WithRawOptions({8, 6, 0, 0, 0, 1, 0, 0})),
              FailsWith(absl::StatusCode::kInvalidArgument,
                        "TCP option kind 8 (timestamps) has length 6, want 10"));
}

// Unknown kinds are skipped by their length (RFC 9293 §3.2, MUST-6).
TEST(Parse, SkipsUnknownOptionsByLength) {
  const auto r = ParseBytes(WithRawOptions({254, 8, 0xf9, 0x89, 2, 4, 2, 4, 1, 1, 1, 1}));
  ASSERT_TRUE(r.ok()) << r.status();
  // The bytes "2, 4" inside the unknown option's value are not read as an MSS option.
  EXPECT_FALSE(r->options.mss.has_value());
  const auto r2 = ParseBytes(WithRawOptions({254, 4, 2, 4, 2, 4, 0x02, 0x18}));
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->options.mss, 536);
}

// EOL ends the option list; what follows is padding, even if it looks malformed.
TEST(Parse, EolStopsOptionParsing) {
  const std::vector<uint8_t> options = {2, 4, 0x05, 0xb4, 0, 8, 10, 3, 3, 9, 0, 0};
  const auto r = ParseBytes(WithRawOptions(options));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->options.mss, 1460);
  EXPECT_FALSE(r->options.timestamps.has_value());
  EXPECT_FALSE(r->options.window_scale.has_value());
  const auto lib = ParseWithLibtins(WithRawOptions(options));
  ASSERT_TRUE(lib.ok()) << lib.status();
  EXPECT_TRUE(lib->options == r->options);
}

// The wire keeps what was sent; the TCP layer clamps shifts above 14 (RFC 7323 §2.3).
TEST(Parse, KeepsWindowScaleAboveFourteen) {
  const auto r = ParseBytes(WithRawOptions({1, 3, 3, 15}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->options.window_scale, 15);
}

// ---------------------------------------------------------------------------------------------
// Robustness: no input crashes, hangs or throws (DESIGN.md, "Errors").

TEST(Parse, NeverCrashesOnRandomBytes) {
  std::mt19937 rng(20240601);
  std::vector<uint8_t> d;
  int parsed = 0;
  for (int i = 0; i < 200000; ++i) {
    d = RandomPool(rng, rng() % 120);
    if (d.size() >= 20 && (rng() & 1)) {
      // Often make it look like IPv4/TCP so the TCP and option checks get exercised too.
      d[0] = static_cast<uint8_t>(0x45 + (rng() % 3 == 0 ? rng() % 11 : 0));
      d[6] = d[7] = 0;
      d[9] = 6;
      SetTotalLength(d, d.size());
    }
    const bool verify = (i % 4) != 0;
    const auto r = Parse(d, verify);
    if (r.ok()) {
      ++parsed;
      ASSERT_LE(r->payload.data() + r->payload.size(), d.data() + d.size());
      ASSERT_GE(r->payload.data(), d.data());
    }
  }
  EXPECT_GT(parsed, 0);
}

TEST(Parse, NeverCrashesOnMutatedSegments) {
  std::mt19937 rng(793);
  const std::vector<uint8_t> pool = RandomPool(rng, 300);
  for (int i = 0; i < 200000; ++i) {
    std::vector<uint8_t> d = Bytes(RandomSegment(rng, pool));
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      // Headers are where the parser's decisions are: mutate them most of the time.
      const size_t limit = (rng() % 4 == 0) ? d.size() : std::min<size_t>(d.size(), 60);
      d[rng() % limit] = static_cast<uint8_t>(rng());
    }
    if (rng() % 8 == 0) d.resize(rng() % (d.size() + 1));
    if (rng() & 1) FixChecksums(d);
    (void)Parse(d, (rng() & 1) != 0);
  }
}

// ---------------------------------------------------------------------------------------------
// The libtins reference codec agrees with the hand-written one, byte for byte and error for error.

TEST(LibtinsReference, SerializesIdenticalBytes) {
  std::mt19937 rng(9293);
  const std::vector<uint8_t> pool = RandomPool(rng, 1500);
  std::vector<uint8_t> fast;
  std::vector<uint8_t> reference;
  for (int i = 0; i < 20000; ++i) {
    const SegmentRepr s = RandomSegment(rng, pool);
    Serialize(s, fast);
    SerializeWithLibtins(s, reference);
    ASSERT_EQ(fast, reference) << s.ToString();
  }
}

TEST(LibtinsReference, ParsesRandomSegmentsIdentically) {
  std::mt19937 rng(7323);
  const std::vector<uint8_t> pool = RandomPool(rng, 1500);
  for (int i = 0; i < 20000; ++i) {
    const SegmentRepr s = RandomSegment(rng, pool);
    const std::vector<uint8_t> d = Bytes(s);
    const auto fast = Parse(d);
    const auto reference = ParseWithLibtins(d);
    ASSERT_TRUE(fast.ok()) << fast.status();
    ASSERT_TRUE(reference.ok()) << reference.status();
    SegmentRepr want = s;
    want.options = AsDelivered(s.options);
    ExpectSameSegment(*fast, want);
    ExpectSameSegment(*reference, want);
    ASSERT_EQ(fast->payload.data(), reference->payload.data());
  }
}

TEST(LibtinsReference, ParsesMutatedSegmentsIdentically) {
  std::mt19937 rng(2018);
  const std::vector<uint8_t> pool = RandomPool(rng, 200);
  for (int i = 0; i < 100000; ++i) {
    std::vector<uint8_t> d = Bytes(RandomSegment(rng, pool));
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      d[rng() % std::min<size_t>(d.size(), 60)] = static_cast<uint8_t>(rng());
    }
    if (rng() % 8 == 0) d.resize(rng() % (d.size() + 1));
    if (rng() % 4 != 0) FixChecksums(d);
    const bool verify = (rng() & 1) != 0;
    const auto fast = Parse(d, verify);
    const auto reference = ParseWithLibtins(d, verify);
    ASSERT_EQ(fast.status(), reference.status()) << "iteration " << i;
    if (fast.ok()) {
      ExpectSameSegment(*reference, *fast);
      ASSERT_EQ(fast->payload.data(), reference->payload.data());
    }
  }
}

// Each malformed case of the Parse tests above, through both codecs.
TEST(LibtinsReference, ReportsTheSameErrors) {
  std::vector<std::vector<uint8_t>> cases = {
      WithRawOptions({1, 1, 1, 1, 8, 10, 0, 0, 0, 0, 0, 0}),
      WithRawOptions({1, 1, 1, 2}),
      WithRawOptions({30, 1, 0, 0}),
      WithRawOptions({2, 3, 5, 0}),
      WithRawOptions({3, 4, 7, 0}),
      WithRawOptions({4, 3, 0, 0}),
      WithRawOptions({1, 1, 5, 2}),
      WithRawOptions({8, 6, 0, 0, 0, 1, 0, 0}),
  };
  std::vector<uint8_t> d = Bytes(BaseSegment());
  d[32] = 4 << 4;
  FixChecksums(d);
  cases.push_back(d);
  d = Bytes(BaseSegment());
  d[9] = 1;
  FixChecksums(d);
  cases.push_back(d);
  d = Bytes(BaseSegment());
  d[38] ^= 1;  // urgent pointer: a TCP checksum failure
  cases.push_back(d);
  for (const auto& c : cases) {
    const auto fast = Parse(c);
    ASSERT_FALSE(fast.ok());
    EXPECT_EQ(fast.status(), ParseWithLibtins(c).status());
  }
}

// ---------------------------------------------------------------------------------------------
// Text forms (segment.h).

TEST(Ipv4, ToStringIsDottedQuad) {
  EXPECT_EQ(Ipv4::Of(198, 18, 0, 1).ToString(), "198.18.0.1");
  EXPECT_EQ(Ipv4::Of(255, 0, 10, 254).ToString(), "255.0.10.254");
}

TEST(Endpoint, ToStringIsAddressColonPort) {
  EXPECT_EQ((Endpoint{Ipv4::Of(198, 18, 0, 1), 80}).ToString(), "198.18.0.1:80");
}

TEST(FlagsToString, NamesFlagsInHeaderBitOrder) {
  EXPECT_EQ(FlagsToString(kSyn | kAck), "SYN|ACK");
  EXPECT_EQ(FlagsToString(kFin | kAck | kPsh), "FIN|PSH|ACK");
  EXPECT_EQ(FlagsToString(kEce | kCwr), "ECE|CWR");
  EXPECT_EQ(FlagsToString(0), "none");
}

TEST(SegmentReprToString, ReadsLikeTcpdump) {
  SegmentRepr s;
  s.src = Endpoint{Ipv4::Of(198, 18, 0, 2), 40000};
  s.dst = Endpoint{Ipv4::Of(198, 18, 0, 1), 80};
  s.flags = kSyn | kAck;
  s.seq = SeqNum(1000);
  s.ack = SeqNum(2001);
  s.window = 65535;
  s.options.mss = 1460;
  s.options.sack_permitted = true;
  s.options.timestamps = Timestamps{1, 0};
  s.options.window_scale = 7;
  EXPECT_EQ(s.ToString(),
            "198.18.0.2:40000 > 198.18.0.1:80 [S.] seq 1000 ack 2001 win 65535 len 0 "
            "<mss 1460,sackOK,TS val 1 ecr 0,wscale 7>");
}

// As tcpdump: no ack without ACK, "[none]" for no flags, SACK blocks as {left:right}.
TEST(SegmentReprToString, ShowsAckOnlyWithAckAndListsSackBlocks) {
  const std::vector<uint8_t> data(5, 0);
  SegmentRepr s = BaseSegment();
  s.flags = kFin | kPsh | kAck;
  s.payload = data;
  s.options.sack[0] = SackBlock{SeqNum(10), SeqNum(20)};
  s.options.sack[1] = SackBlock{SeqNum(30), SeqNum(40)};
  s.options.sack_count = 2;
  EXPECT_EQ(s.ToString(),
            "198.18.0.2:40000 > 198.18.0.1:80 [FP.] seq 1000 ack 2001 win 65535 len 5 "
            "<sack 2 {10:20}{30:40}>");
  s.flags = 0;
  s.options = TcpOptions{};
  EXPECT_EQ(s.ToString(), "198.18.0.2:40000 > 198.18.0.1:80 [none] seq 1000 win 65535 len 5");
}

// SEG.LEN counts SYN and FIN (RFC 9293 §3.3.1).
TEST(SegmentRepr, SeqLenCountsSynAndFin) {
  const std::vector<uint8_t> data(3, 0);
  SegmentRepr s = BaseSegment();
  s.flags = kSyn | kFin;
  s.payload = data;
  EXPECT_EQ(s.SeqLen(), 5u);
}

}  // namespace
}  // namespace tcplab::wire
