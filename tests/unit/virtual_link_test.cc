// Impairment validation, the Impairer's fates and ordering, and VirtualLink delivery, all
// in virtual time.
#include "engine/link/virtual_link.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "engine/link/impairment.h"
#include "engine/tcp/clock.h"

namespace tcplab::link {
namespace {

using std::chrono::milliseconds;
using std::chrono::microseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr Instant kT0 = InstantFromNanos(1'000'000'000);

Instant At(Duration since_t0) { return kT0 + since_t0; }

// A datagram whose first four bytes carry `n`, so tests can tell datagrams apart.
std::vector<uint8_t> Numbered(uint32_t n, size_t size = 64) {
  std::vector<uint8_t> d(size, 0xA5);
  for (int i = 0; i < 4; ++i) d[i] = static_cast<uint8_t>(n >> (24 - 8 * i));
  return d;
}

uint32_t NumberOf(std::span<const uint8_t> d) {
  return (uint32_t{d[0]} << 24) | (uint32_t{d[1]} << 16) | (uint32_t{d[2]} << 8) | d[3];
}

struct Delivered {
  std::vector<uint8_t> bytes;
  Instant at;
  friend bool operator==(const Delivered&, const Delivered&) = default;
};

std::vector<Delivered> PollAll(Impairer& impairer, Instant now) {
  std::vector<Delivered> out;
  impairer.Poll(now, [&](std::span<const uint8_t> d, Instant at) {
    out.push_back({{d.begin(), d.end()}, at});
  });
  return out;
}

std::vector<uint32_t> Numbers(const std::vector<Delivered>& delivered) {
  std::vector<uint32_t> out;
  for (const Delivered& d : delivered) out.push_back(NumberOf(d.bytes));
  return out;
}

Impairer MakeImpairer(const Impairment& impairment) {
  Impairer impairer;
  EXPECT_TRUE(impairer.SetImpairment(impairment).ok());
  return impairer;
}

// Sends `count` numbered datagrams one microsecond apart, then drains everything.
std::vector<Delivered> RunStream(const Impairment& impairment, uint32_t count) {
  Impairer impairer = MakeImpairer(impairment);
  for (uint32_t i = 0; i < count; ++i) impairer.Submit(Numbered(i), At(microseconds(i)));
  return PollAll(impairer, kNever);
}

// The invariant every ImpairerCounters must satisfy (see its comment).
void ExpectCountersAddUp(const ImpairerCounters& c, size_t queued) {
  EXPECT_EQ(c.submitted + c.duplicated, c.delivered + c.dropped + queued);
}

// ---------------------------------------------------------------------------------------
// Impairment

TEST(Impairment, DefaultIsValidAndPassThrough) {
  const Impairment impairment;
  EXPECT_TRUE(impairment.Validate().ok());
  EXPECT_TRUE(impairment.IsPassThrough());
}

TEST(Impairment, ValidateNamesBadField) {
  Impairment bad_loss;
  bad_loss.loss = 1.5;
  EXPECT_EQ(bad_loss.Validate(),
            absl::InvalidArgumentError("loss must be in [0, 1], got 1.5"));

  const std::vector<std::pair<std::string, std::function<void(Impairment&)>>> cases = {
      {"duplicate", [](Impairment& i) { i.duplicate = -0.1; }},
      {"reorder", [](Impairment& i) { i.reorder = 2; }},
      {"corrupt", [](Impairment& i) { i.corrupt = 1.0001; }},
      {"delay", [](Impairment& i) { i.delay = milliseconds(-1); }},
      {"jitter", [](Impairment& i) { i.jitter = std::chrono::hours(2); }},
      {"reorder_delay", [](Impairment& i) { i.reorder_delay = Duration(-1); }},
  };
  for (const auto& [field, spoil] : cases) {
    Impairment impairment;
    spoil(impairment);
    const absl::Status status = impairment.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(std::string(status.message()), testing::StartsWith(field + " must be")) << field;
  }
}

TEST(Impairment, ValidateRejectsNaNProbability) {
  Impairment impairment;
  impairment.corrupt = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(std::string(impairment.Validate().message()), HasSubstr("corrupt"));
}

TEST(Impairment, ValidateRejectsReorderWithoutHoldBack) {
  Impairment impairment;
  impairment.reorder = 0.5;
  impairment.reorder_delay = Duration{0};
  EXPECT_THAT(std::string(impairment.Validate().message()), HasSubstr("reorder_delay"));
}

// ---------------------------------------------------------------------------------------
// Impairer

TEST(Impairer, PassThroughDeliversAtOnceInSubmitOrder) {
  Impairer impairer;
  for (uint32_t i = 0; i < 5; ++i) impairer.Submit(Numbered(i), kT0);
  EXPECT_EQ(impairer.NextDeadline(), kT0);
  const std::vector<Delivered> out = PollAll(impairer, kT0);
  EXPECT_THAT(Numbers(out), ElementsAre(0, 1, 2, 3, 4));
  for (const Delivered& d : out) EXPECT_EQ(d.at, kT0);
  EXPECT_EQ(impairer.NextDeadline(), kNever);
}

TEST(Impairer, SubmitCopiesTheDatagram) {
  Impairer impairer;
  std::vector<uint8_t> buffer = Numbered(7);
  impairer.Submit(buffer, kT0);
  std::fill(buffer.begin(), buffer.end(), 0);  // the caller reuses its buffer at once
  const std::vector<Delivered> out = PollAll(impairer, kT0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes, Numbered(7));
}

TEST(Impairer, SetImpairmentRejectsInvalidAndKeepsPrevious) {
  Impairer impairer;
  Impairment good;
  good.delay = milliseconds(3);
  ASSERT_TRUE(impairer.SetImpairment(good).ok());
  Impairment bad = good;
  bad.loss = -1;
  EXPECT_EQ(impairer.SetImpairment(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(impairer.impairment(), good);
}

Impairment Everything(uint64_t seed) {
  Impairment impairment;
  impairment.loss = 0.1;
  impairment.duplicate = 0.1;
  impairment.reorder = 0.1;
  impairment.corrupt = 0.1;
  impairment.delay = milliseconds(2);
  impairment.jitter = milliseconds(1);
  impairment.reorder_delay = milliseconds(5);
  impairment.seed = seed;
  return impairment;
}

TEST(Impairer, SameSeedSameDrops) {
  const std::vector<Delivered> first = RunStream(Everything(42), 2000);
  const std::vector<Delivered> second = RunStream(Everything(42), 2000);
  EXPECT_EQ(first, second);  // same bytes (bit flips included), same order, same instants
}

TEST(Impairer, DifferentSeedsGiveDifferentFates) {
  EXPECT_NE(RunStream(Everything(1), 2000), RunStream(Everything(2), 2000));
}

TEST(Impairer, LossRateMatchesWithinTolerance) {
  constexpr uint32_t kCount = 100'000;
  for (double p : {0.01, 0.1, 0.5}) {
    Impairment impairment;
    impairment.loss = p;
    impairment.seed = 7;
    Impairer impairer = MakeImpairer(impairment);
    for (uint32_t i = 0; i < kCount; ++i) impairer.Submit(Numbered(i, 8), kT0);
    // Drops are Binomial(n, p): allow five standard deviations either side.
    const double mean = kCount * p;
    const double tolerance = 5 * std::sqrt(kCount * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(impairer.counters().dropped), mean, tolerance) << p;
  }
}

TEST(Impairer, DuplicateDeliversTwoIdenticalCopies) {
  Impairment impairment;
  impairment.duplicate = 1;
  const std::vector<Delivered> out = RunStream(impairment, 3);
  EXPECT_THAT(Numbers(out), ElementsAre(0, 0, 1, 1, 2, 2));
  EXPECT_EQ(out[0], out[1]);
}

TEST(Impairer, CorruptFlipsExactlyOneBit) {
  Impairment impairment;
  impairment.corrupt = 1;
  Impairer impairer = MakeImpairer(impairment);
  const std::vector<uint8_t> original = Numbered(1, 40);
  constexpr int kCount = 10'000;
  for (int i = 0; i < kCount; ++i) impairer.Submit(original, kT0);
  const std::vector<Delivered> out = PollAll(impairer, kT0);
  ASSERT_EQ(out.size(), size_t{kCount});
  EXPECT_EQ(impairer.counters().corrupted, uint64_t{kCount});
  std::vector<bool> bit_seen(original.size() * 8);
  for (const Delivered& d : out) {
    int flipped = 0;
    for (size_t b = 0; b < original.size(); ++b) {
      const uint8_t diff = d.bytes[b] ^ original[b];
      flipped += std::popcount(diff);
      if (diff != 0) bit_seen[b * 8 + std::countr_zero(diff)] = true;
    }
    EXPECT_EQ(flipped, 1);
  }
  // "Anywhere in the datagram": 10000 uniform draws over 320 bits miss a given bit with
  // probability (319/320)^10000, about 3e-14, so every bit must have been flipped.
  EXPECT_EQ(std::count(bit_seen.begin(), bit_seen.end(), false), 0);
}

// Ones'-complement sum of 16-bit big-endian words, folded (RFC 1071).
uint16_t OnesSum(std::span<const uint8_t> bytes, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) sum += (uint32_t{bytes[i]} << 8) | bytes[i + 1];
  if (bytes.size() % 2) sum += uint32_t{bytes.back()} << 8;
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

bool IpHeaderChecksumOk(std::span<const uint8_t> d) { return OnesSum(d.first(20)) == 0xFFFF; }

// RFC 9293 §3.1: the TCP checksum also covers a pseudo-header of addresses, protocol, length.
uint16_t TcpPseudoSum(std::span<const uint8_t> d) {
  std::vector<uint8_t> pseudo(d.begin() + 12, d.begin() + 20);  // source and destination
  const size_t tcp_length = d.size() - 20;
  pseudo.insert(pseudo.end(), {0, 6, static_cast<uint8_t>(tcp_length >> 8),
                               static_cast<uint8_t>(tcp_length)});
  return OnesSum(pseudo);
}

bool TcpChecksumOk(std::span<const uint8_t> d) {
  return OnesSum(d.subspan(20), TcpPseudoSum(d)) == 0xFFFF;
}

// An IPv4 + TCP datagram 198.18.0.2:40000 -> 198.18.0.1:80, ACK|PSH, 20 payload bytes, with
// both checksums correct.
std::vector<uint8_t> ValidTcpDatagram() {
  std::vector<uint8_t> d = {
      0x45, 0x00, 0x00, 60, 0x12, 0x34, 0x40, 0x00, 64, 6, 0, 0,  // IPv4, checksum at 10
      198, 18, 0, 2, 198, 18, 0, 1,                                 // source, destination
      0x9c, 0x40, 0x00, 80,                                         // ports
      0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d,               // seq, ack
      0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,                           // offset, flags, window,
  };                                                                // checksum at 36, urgent
  for (uint8_t i = 0; i < 20; ++i) d.push_back(static_cast<uint8_t>('a' + i));
  const uint16_t ip = ~OnesSum(std::span(d).first(20));
  d[10] = ip >> 8;
  d[11] = ip & 0xFF;
  const uint16_t tcp = ~OnesSum(std::span(d).subspan(20), TcpPseudoSum(d));
  d[36] = tcp >> 8;
  d[37] = tcp & 0xFF;
  return d;
}

TEST(Impairer, CorruptionIsCaughtByInternetChecksum) {
  const std::vector<uint8_t> original = ValidTcpDatagram();
  ASSERT_TRUE(IpHeaderChecksumOk(original));
  ASSERT_TRUE(TcpChecksumOk(original));
  Impairment impairment;
  impairment.corrupt = 1;
  Impairer impairer = MakeImpairer(impairment);
  for (int i = 0; i < 2000; ++i) impairer.Submit(original, kT0);
  for (const Delivered& d : PollAll(impairer, kT0)) {
    EXPECT_FALSE(IpHeaderChecksumOk(d.bytes) && TcpChecksumOk(d.bytes));
  }
}

TEST(Impairer, ReorderLetsLaterDatagramsOvertake) {
  Impairment reorder;
  reorder.reorder = 1;
  reorder.reorder_delay = milliseconds(5);
  Impairer impairer = MakeImpairer(reorder);
  impairer.Submit(Numbered(0), kT0);
  ASSERT_TRUE(impairer.SetImpairment(Impairment{}).ok());
  for (uint32_t i = 1; i <= 3; ++i) impairer.Submit(Numbered(i), At(milliseconds(i)));
  const std::vector<Delivered> out = PollAll(impairer, At(milliseconds(10)));
  EXPECT_THAT(Numbers(out), ElementsAre(1, 2, 3, 0));
  EXPECT_EQ(out.back().at, At(milliseconds(5)));
  EXPECT_EQ(impairer.counters().reordered, 1u);
}

TEST(Impairer, DelayHoldsUntilDeadline) {
  Impairment impairment;
  impairment.delay = milliseconds(5);
  Impairer impairer = MakeImpairer(impairment);
  impairer.Submit(Numbered(0), kT0);
  EXPECT_EQ(impairer.NextDeadline(), At(milliseconds(5)));
  EXPECT_TRUE(PollAll(impairer, At(milliseconds(5) - Duration(1))).empty());
  const std::vector<Delivered> out = PollAll(impairer, At(milliseconds(5)));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at, At(milliseconds(5)));
}

TEST(Impairer, JitterKeepsFifoOrder) {
  Impairment impairment;
  impairment.delay = milliseconds(1);
  impairment.jitter = milliseconds(5);  // far more than the 1 us between sends
  Impairer impairer = MakeImpairer(impairment);
  for (uint32_t i = 0; i < 1000; ++i) impairer.Submit(Numbered(i), At(microseconds(i)));
  const std::vector<Delivered> out = PollAll(impairer, kNever);
  ASSERT_EQ(out.size(), 1000u);
  for (uint32_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(NumberOf(out[i].bytes), i);
    EXPECT_GE(out[i].at, At(microseconds(i) + milliseconds(1)));
  }
  // The jitter is really drawn: delivery instants are not just send time plus delay.
  EXPECT_NE(out.front().at, At(milliseconds(1)));
}

TEST(Impairer, EqualDeadlinesLeaveInSubmitOrder) {
  // Datagram 0 is held back to t0+5ms; datagram 1, sent later, is delayed to t0+5ms too.
  Impairment hold;
  hold.reorder = 1;
  hold.reorder_delay = milliseconds(5);
  Impairer impairer = MakeImpairer(hold);
  impairer.Submit(Numbered(0), kT0);
  Impairment delay;
  delay.delay = milliseconds(4);
  ASSERT_TRUE(impairer.SetImpairment(delay).ok());
  impairer.Submit(Numbered(1), At(milliseconds(1)));
  const std::vector<Delivered> out = PollAll(impairer, At(milliseconds(5)));
  EXPECT_THAT(Numbers(out), ElementsAre(0, 1));
  EXPECT_EQ(out[0].at, out[1].at);
}

TEST(Impairer, ChangingImpairmentMidStreamKeepsQueue) {
  Impairment slow;
  slow.delay = milliseconds(10);
  Impairer impairer = MakeImpairer(slow);
  impairer.Submit(Numbered(0), kT0);
  ASSERT_TRUE(impairer.SetImpairment(Impairment{}).ok());
  impairer.Submit(Numbered(1), At(milliseconds(1)));
  // The queued datagram keeps its instant, and the undelayed one may not overtake it.
  EXPECT_TRUE(PollAll(impairer, At(milliseconds(9))).empty());
  const std::vector<Delivered> out = PollAll(impairer, At(milliseconds(10)));
  EXPECT_THAT(Numbers(out), ElementsAre(0, 1));
  // Loss switched on later applies to new datagrams only.
  Impairment lossy;
  lossy.loss = 1;
  ASSERT_TRUE(impairer.SetImpairment(lossy).ok());
  impairer.Submit(Numbered(2), At(milliseconds(11)));
  EXPECT_TRUE(PollAll(impairer, kNever).empty());
  EXPECT_EQ(impairer.counters().dropped, 1u);
}

TEST(Impairer, PassThroughConsumesNoRandomness) {
  Impairment lossy;
  lossy.loss = 0.5;
  lossy.seed = 9;
  Impairment clean;
  clean.seed = 9;

  // Same seed; one impairer first passes 500 datagrams through untouched.
  Impairer warmed = MakeImpairer(clean);
  for (uint32_t i = 0; i < 500; ++i) warmed.Submit(Numbered(i), kT0);
  PollAll(warmed, kT0);
  ASSERT_TRUE(warmed.SetImpairment(lossy).ok());  // same seed: the stream is not reseeded
  Impairer fresh = MakeImpairer(lossy);

  for (uint32_t i = 0; i < 500; ++i) {
    warmed.Submit(Numbered(i), kT0);
    fresh.Submit(Numbered(i), kT0);
  }
  EXPECT_EQ(Numbers(PollAll(warmed, kT0)), Numbers(PollAll(fresh, kT0)));
}

TEST(Impairer, CountersAddUp) {
  Impairer impairer = MakeImpairer(Everything(3));
  for (uint32_t i = 0; i < 10'000; ++i) {
    impairer.Submit(Numbered(i), At(microseconds(10 * i)));
    if (i % 1000 == 0) {
      PollAll(impairer, At(microseconds(10 * i)));
      ExpectCountersAddUp(impairer.counters(), impairer.queued());
    }
  }
  ASSERT_GT(impairer.queued(), 0u);
  ExpectCountersAddUp(impairer.counters(), impairer.queued());
  const size_t drained = PollAll(impairer, kNever).size();
  EXPECT_GT(drained, 0u);
  EXPECT_EQ(impairer.queued(), 0u);
  const ImpairerCounters& c = impairer.counters();
  ExpectCountersAddUp(c, 0);
  for (uint64_t n : {c.dropped, c.duplicated, c.reordered, c.corrupted}) EXPECT_GT(n, 0u);
}

TEST(Impairer, SubmitFromInsidePollIsDeliveredBySamePoll) {
  Impairer impairer;
  impairer.Submit(Numbered(0), kT0);
  std::vector<uint32_t> seen;
  impairer.Poll(kT0, [&](std::span<const uint8_t> d) {
    seen.push_back(NumberOf(d));
    if (seen.size() < 3) impairer.Submit(Numbered(NumberOf(d) + 1), kT0);
  });
  EXPECT_THAT(seen, ElementsAre(0, 1, 2));
}

// ---------------------------------------------------------------------------------------
// VirtualLink

struct Arrival {
  Side to;
  uint32_t number;
  Instant at;
  friend bool operator==(const Arrival&, const Arrival&) = default;
};

std::vector<Arrival> PollLink(VirtualLink& link, Instant now) {
  std::vector<Arrival> out;
  link.Poll(now, [&](Side to, std::span<const uint8_t> d, Instant at) {
    out.push_back({to, NumberOf(d), at});
  });
  return out;
}

TEST(VirtualLink, DeliversToTheOtherSide) {
  VirtualLink link;
  link.Send(Side::kA, Numbered(1), kT0);
  link.Send(Side::kB, Numbered(2), kT0);
  EXPECT_THAT(PollLink(link, kT0),
              ElementsAre(Arrival{Side::kB, 1, kT0}, Arrival{Side::kA, 2, kT0}));
}

TEST(VirtualLink, DeliversBothDirectionsInTimeOrder) {
  VirtualLink link;
  Impairment slow;
  slow.delay = milliseconds(5);
  Impairment fast;
  fast.delay = milliseconds(1);
  ASSERT_TRUE(link.SetImpairment(Side::kA, slow).ok());
  ASSERT_TRUE(link.SetImpairment(Side::kB, fast).ok());
  link.Send(Side::kA, Numbered(1), kT0);
  link.Send(Side::kB, Numbered(2), kT0);
  link.Send(Side::kB, Numbered(3), At(milliseconds(6)));
  EXPECT_THAT(PollLink(link, At(milliseconds(10))),
              ElementsAre(Arrival{Side::kA, 2, At(milliseconds(1))},
                          Arrival{Side::kB, 1, At(milliseconds(5))},
                          Arrival{Side::kA, 3, At(milliseconds(7))}));
}

TEST(VirtualLink, EqualInstantsAcrossDirectionsGoInSendOrder) {
  VirtualLink link;
  link.Send(Side::kB, Numbered(1), kT0);
  link.Send(Side::kA, Numbered(2), kT0);
  link.Send(Side::kB, Numbered(3), kT0);
  const std::vector<Arrival> out = PollLink(link, kT0);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].number, 1u);
  EXPECT_EQ(out[1].number, 2u);
  EXPECT_EQ(out[2].number, 3u);
}

TEST(VirtualLink, ReentrantSendFromDeliveryIsSafe) {
  // A and B bounce a counter back and forth over a zero-delay link, stopping at 100: the
  // whole conversation runs inside one Poll(t0), and each reply goes the right way.
  VirtualLink link;
  link.Send(Side::kA, Numbered(0), kT0);
  std::vector<Arrival> out;
  const size_t delivered = link.Poll(kT0, [&](Side to, std::span<const uint8_t> d, Instant at) {
    out.push_back({to, NumberOf(d), at});
    if (NumberOf(d) < 100) link.Send(to, Numbered(NumberOf(d) + 1), at);
  });
  ASSERT_EQ(delivered, 101u);
  ASSERT_EQ(out.size(), 101u);
  for (uint32_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].number, i);
    EXPECT_EQ(out[i].to, i % 2 == 0 ? Side::kB : Side::kA);
  }
  EXPECT_EQ(link.NextDeadline(), kNever);
}

TEST(VirtualLink, DelayedReplyWaitsForALaterPoll) {
  VirtualLink link;
  Impairment delay;
  delay.delay = milliseconds(2);
  ASSERT_TRUE(link.SetImpairment(Side::kB, delay).ok());
  link.Send(Side::kA, Numbered(1), kT0);
  std::vector<Arrival> out;
  auto echo = [&](Side to, std::span<const uint8_t> d, Instant at) {
    out.push_back({to, NumberOf(d), at});
    if (to == Side::kB) link.Send(Side::kB, Numbered(NumberOf(d) + 1), at);
  };
  EXPECT_EQ(link.Poll(kT0, echo), 1u);
  EXPECT_EQ(link.NextDeadline(), At(milliseconds(2)));
  EXPECT_EQ(link.Poll(At(milliseconds(2)), echo), 1u);
  EXPECT_THAT(out, ElementsAre(Arrival{Side::kB, 1, kT0},
                               Arrival{Side::kA, 2, At(milliseconds(2))}));
}

TEST(VirtualLink, ImpairmentsAndCountersArePerDirection) {
  VirtualLink link;
  Impairment blackhole;
  blackhole.loss = 1;
  ASSERT_TRUE(link.SetImpairment(Side::kA, blackhole).ok());
  EXPECT_EQ(link.impairment(Side::kB), Impairment{});
  for (uint32_t i = 0; i < 3; ++i) {
    link.Send(Side::kA, Numbered(i), kT0);
    link.Send(Side::kB, Numbered(i), kT0);
  }
  const std::vector<Arrival> out = PollLink(link, kT0);
  ASSERT_EQ(out.size(), 3u);
  for (const Arrival& a : out) EXPECT_EQ(a.to, Side::kA);
  EXPECT_EQ(link.counters(Side::kA).dropped, 3u);
  EXPECT_EQ(link.counters(Side::kA).delivered, 0u);
  EXPECT_EQ(link.counters(Side::kB).dropped, 0u);
  EXPECT_EQ(link.counters(Side::kB).delivered, 3u);
}

TEST(VirtualLink, NextDeadlineIsTheEarlierDirection) {
  VirtualLink link;
  EXPECT_EQ(link.NextDeadline(), kNever);
  Impairment slow;
  slow.delay = milliseconds(8);
  Impairment fast;
  fast.delay = milliseconds(3);
  ASSERT_TRUE(link.SetImpairment(Side::kA, slow).ok());
  ASSERT_TRUE(link.SetImpairment(Side::kB, fast).ok());
  link.Send(Side::kA, Numbered(1), kT0);
  EXPECT_EQ(link.NextDeadline(), At(milliseconds(8)));
  link.Send(Side::kB, Numbered(2), kT0);
  EXPECT_EQ(link.NextDeadline(), At(milliseconds(3)));
  EXPECT_EQ(link.queued(Side::kA), 1u);
  EXPECT_EQ(link.queued(Side::kB), 1u);
}

}  // namespace
}  // namespace tcplab::link
