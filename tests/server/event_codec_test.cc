// The stream's direct encoder writes segment events in protobuf's wire format by hand; the
// generated serializer of ToProto's message is the reference. Every field, at zero and at
// its extremes, and thousands of random events must come out byte for byte the same, and
// parse back to what ToProto builds.
#include "server/event_codec.h"

#include <random>

#include "gtest/gtest.h"
#include "server/convert.h"
#include "tcplab/v1/sandbox.pb.h"

namespace tcplab::server {
namespace {

std::string Reference(const sandbox::Event& ev) {
  v1::Event proto;
  ToProto(ev, &proto);
  std::string out;
  EventEncoder::AppendEntry(proto, &out);
  return out;
}

void ExpectSameBytes(const sandbox::Event& ev) {
  EventEncoder enc;
  std::string got;
  enc.AppendEntry(ev, &got);
  ASSERT_EQ(got, Reference(ev));
  // And a client reads it as the event ToProto builds.
  v1::WatchEventsResponse resp;
  ASSERT_TRUE(resp.ParseFromString(got));
  ASSERT_EQ(resp.events_size(), 1);
  v1::Event want;
  ToProto(ev, &want);
  EXPECT_EQ(resp.events(0).SerializeAsString(), want.SerializeAsString());
}

sandbox::Event Segment(const tcp::SegmentEvent& seg) {
  sandbox::Event ev;
  ev.seq = 7;
  ev.since_start = std::chrono::milliseconds(1500);
  ev.wall = absl::FromUnixNanos(1'795'000'000'123'456'789);
  ev.body = seg;
  return ev;
}

TEST(EventCodec, AllZeroSegmentIsWrittenAsTheGeneratedSerializerWritesIt) {
  sandbox::Event ev;  // seq 0, times 0, engine, every segment field at its default
  ev.body = tcp::SegmentEvent{};
  ExpectSameBytes(ev);
}

TEST(EventCodec, HandshakeSegmentWithEveryOption) {
  tcp::SegmentEvent s;
  s.conn = 3;
  s.dir = tcp::Direction::kOut;
  s.verdict = tcp::Verdict::kSent;
  s.seg.src = {wire::Ipv4::Of(198, 18, 0, 2), 40000};
  s.seg.dst = {wire::Ipv4::Of(198, 18, 0, 1), 80};
  s.seg.seq = wire::SeqNum(0xfffffff0);
  s.seg.ack = wire::SeqNum(12345);
  s.seg.flags = wire::kSyn | wire::kAck;
  s.seg.window = 65535;
  s.seg.options.mss = 1460;
  s.seg.options.window_scale = 7;
  s.seg.options.sack_permitted = true;
  s.seg.options.timestamps = wire::Timestamps{0xffffffff, 1};
  s.iss = wire::SeqNum(0xfffffff0);
  s.irs = wire::SeqNum(12344);
  ExpectSameBytes(Segment(s));
}

TEST(EventCodec, DataSegmentWithSackBlocksPreviewAndBadChecksum) {
  tcp::SegmentEvent s;
  s.conn = (uint64_t{1} << 63) + 5;
  s.dir = tcp::Direction::kIn;
  s.verdict = tcp::Verdict::kBadChecksum;
  s.seg.src = {wire::Ipv4::Of(255, 255, 255, 255), 65535};
  s.seg.dst = {wire::Ipv4::Of(0, 0, 0, 0), 0};
  s.seg.flags = 0xff;
  s.seg.urgent = 1;
  s.seg.ttl = 0;
  s.seg.options.sack_count = 4;
  for (int i = 0; i < 4; ++i) s.seg.options.sack[i] = {wire::SeqNum(i * 1000u), wire::SeqNum(i == 3 ? 0u : i * 1000u + 500)};
  s.payload_len = 1 << 20;
  s.preview_len = 16;
  for (int i = 0; i < 16; ++i) s.preview[i] = static_cast<uint8_t>(0xf0 + i);
  ExpectSameBytes(Segment(s));
}

// Every field at its largest: the entry fits the encoder's worst-case buffer.
TEST(EventCodec, TheLargestSegmentFitsTheWorstCase) {
  tcp::SegmentEvent s;
  s.conn = ~uint64_t{0};
  s.verdict = tcp::Verdict::kMalformed;
  s.seg.src = s.seg.dst = {wire::Ipv4{0xffffffff}, 65535};
  s.seg.seq = s.seg.ack = wire::SeqNum(0xffffffff);
  s.seg.flags = 0xff;
  s.seg.window = s.seg.urgent = 65535;
  s.seg.ttl = 255;
  s.seg.options.mss = 65535;
  s.seg.options.window_scale = 255;
  s.seg.options.sack_permitted = true;
  s.seg.options.timestamps = wire::Timestamps{0xffffffff, 0xffffffff};
  s.seg.options.sack_count = wire::kMaxSackBlocks;
  s.seg.options.sack.fill({wire::SeqNum(0xffffffff), wire::SeqNum(0xfffffffe)});
  s.payload_len = 0xffffffff;
  s.preview_len = 16;
  s.preview.fill(0xff);
  s.iss = wire::SeqNum(1);  // relative numbers of 2^32 - 2
  s.irs = wire::SeqNum(1);
  sandbox::Event ev;
  ev.body = s;
  ev.seq = ~uint64_t{0};
  ev.since_start = Duration(-1);  // negative nanos: ten-octet varints
  ev.wall = absl::FromUnixNanos(-1);
  ev.stack = sandbox::StackKind::kKernel;
  ExpectSameBytes(ev);
  EventEncoder enc;
  std::string got;
  enc.AppendEntry(ev, &got);
  EXPECT_LE(got.size(), EventEncoder::kMaxSegmentEntry);
  EXPECT_GT(got.size(), EventEncoder::kMaxSegmentEntry - 64) << "the bound is far from the real worst case";
}

TEST(EventCodec, TimesBeforeTheEpochAndLongSandboxes) {
  tcp::SegmentEvent s;
  s.seg.flags = wire::kRst;
  sandbox::Event ev = Segment(s);
  ev.wall = absl::FromUnixNanos(-1'500'000'001);
  ev.since_start = std::chrono::hours(24 * 400) + std::chrono::nanoseconds(999'999'999);
  ev.seq = ~uint64_t{0};
  ev.stack = sandbox::StackKind::kKernel;
  ExpectSameBytes(ev);
}

TEST(EventCodec, RandomSegmentsMatchTheReference) {
  std::mt19937_64 rng(20261124);
  auto bits = [&](int n) { return static_cast<uint32_t>(rng() & ((uint64_t{1} << n) - 1)); };
  auto maybe = [&]() { return rng() % 3 == 0; };  // a third of fields at zero
  for (int i = 0; i < 5000; ++i) {
    tcp::SegmentEvent s;
    s.conn = maybe() ? 0 : rng() >> bits(6);
    s.dir = rng() % 2 ? tcp::Direction::kIn : tcp::Direction::kOut;
    s.verdict = static_cast<tcp::Verdict>(rng() % (static_cast<int>(tcp::Verdict::kMalformed) + 1));
    s.seg.src = {wire::Ipv4{bits(32)}, static_cast<uint16_t>(bits(16))};
    s.seg.dst = {wire::Ipv4{maybe() ? 0 : bits(32)}, static_cast<uint16_t>(maybe() ? 0 : bits(16))};
    s.seg.seq = wire::SeqNum(maybe() ? 0 : bits(32));
    s.seg.ack = wire::SeqNum(maybe() ? 0 : bits(32));
    s.seg.flags = static_cast<uint8_t>(bits(8));
    s.seg.window = static_cast<uint16_t>(maybe() ? 0 : bits(16));
    s.seg.urgent = static_cast<uint16_t>(maybe() ? 0 : bits(16));
    s.seg.ttl = static_cast<uint8_t>(bits(8));
    if (maybe()) s.seg.options.mss = static_cast<uint16_t>(bits(16));
    if (maybe()) s.seg.options.window_scale = static_cast<uint8_t>(bits(4));
    s.seg.options.sack_permitted = maybe();
    if (maybe()) s.seg.options.timestamps = wire::Timestamps{bits(32), maybe() ? 0 : bits(32)};
    s.seg.options.sack_count = static_cast<uint8_t>(rng() % (wire::kMaxSackBlocks + 1));
    for (auto& b : s.seg.options.sack) b = {wire::SeqNum(bits(32)), wire::SeqNum(maybe() ? 0 : bits(32))};
    s.payload_len = maybe() ? 0 : bits(17);
    s.preview_len = static_cast<uint8_t>(rng() % 17);
    for (auto& c : s.preview) c = static_cast<uint8_t>(bits(8));
    s.iss = wire::SeqNum(maybe() ? 0 : bits(32));
    s.irs = wire::SeqNum(maybe() ? 0 : bits(32));
    sandbox::Event ev;
    ev.body = s;
    ev.seq = maybe() ? 0 : rng() >> bits(6);
    ev.since_start = std::chrono::nanoseconds(maybe() ? 0 : static_cast<int64_t>(rng() >> 2));
    ev.wall = absl::FromUnixNanos(static_cast<int64_t>(rng()) >> 2);
    ev.stack = rng() % 2 ? sandbox::StackKind::kKernel : sandbox::StackKind::kEngine;
    SCOPED_TRACE(i);
    ExpectSameBytes(ev);
    if (HasFatalFailure()) return;
  }
}

// One encoder reused across events of every kind (its scratch keeps no state between them).
TEST(EventCodec, OneEncoderAcrossKindsAndAnEntryPerEvent) {
  std::vector<sandbox::Event> evs(4);
  tcp::SegmentEvent seg;
  seg.seg.flags = wire::kFin | wire::kAck;
  seg.seg.options.sack_count = 2;
  evs[0].body = seg;
  evs[1].body = tcp::StateEvent{9, tcp::TcpState::kEstablished, tcp::TcpState::kFinWait1, "close() called"};
  evs[2].body = tcp::TimerEvent{9, tcp::TimerKind::kTimeWait, tcp::TimerAction::kStarted, Instant(std::chrono::seconds(2)), 1};
  evs[3].body = sandbox::AppEvent{9, "close", "OK"};
  EventEncoder enc;
  std::string all, want;
  for (int round = 0; round < 2; ++round) {
    for (const sandbox::Event& ev : evs) {
      enc.AppendEntry(ev, &all);
      want += Reference(ev);
    }
  }
  EXPECT_EQ(all, want);
  v1::WatchEventsResponse resp;
  ASSERT_TRUE(resp.ParseFromString(all));
  EXPECT_EQ(resp.events_size(), 8);
}

}  // namespace
}  // namespace tcplab::server
