// What a link does to datagrams (loss, duplication, reordering, corruption, delay) and the
// small deterministic PRNG that decides it. Header-only: nothing here needs its own .cc.
//
// Determinism is the point (DESIGN.md, "Rules of the engine core"): the seed comes in from
// outside, nothing reads a clock or std::random_device, so the same seed and the same
// sequence of sends always produce the same drops, copies, reorders and bit flips. A grading
// run that failed under 10% loss can then be replayed exactly.
#pragma once

#include <chrono>
#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/tcp/clock.h"

namespace tcplab::link {

// Upper bound for every Duration in an Impairment. An hour is far beyond any useful lab
// delay, and the bound keeps `now + delay + jitter + reorder_delay` far from overflowing
// an int64 count of nanoseconds.
inline constexpr Duration kMaxImpairmentDuration = std::chrono::hours(1);

struct Impairment {
  // Probabilities in [0, 1], decided independently per submitted datagram.
  double loss = 0;       // the datagram is dropped
  double duplicate = 0;  // a second, identical copy is delivered right after it
  double reorder = 0;    // it is held back by reorder_delay so later datagrams overtake it
  double corrupt = 0;    // one random bit anywhere in it is flipped

  // Every datagram waits delay plus a uniform draw from [0, jitter]. Datagrams that are not
  // reordered still leave in the order they came in, as on a real FIFO queue.
  Duration delay{0};
  Duration jitter{0};
  // How long a reordered datagram is held back, on top of its delay. Long enough that a
  // few segments of a lab-speed transfer overtake it and trigger duplicate ACKs.
  Duration reorder_delay = std::chrono::milliseconds(10);

  uint64_t seed = 1;

  // INVALID_ARGUMENT naming the first bad field: "loss must be in [0, 1], got 1.5".
  absl::Status Validate() const;

  // True when the datagram must come out unchanged, at once and in order: then the
  // impairer takes its fast path and draws no random numbers at all.
  bool IsPassThrough() const {
    return loss == 0 && duplicate == 0 && reorder == 0 && corrupt == 0 && delay == Duration{0} &&
           jitter == Duration{0};
  }

  friend bool operator==(const Impairment&, const Impairment&) = default;
};

namespace impairment_internal {

inline absl::Status CheckProbability(absl::string_view field, double p) {
  // Written as !(in range) so that NaN, which fails every comparison, is rejected too.
  if (!(p >= 0.0 && p <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be in [0, 1], got ", p));
  }
  return absl::OkStatus();
}

inline absl::Status CheckDuration(absl::string_view field, Duration d) {
  if (d < Duration{0} || d > kMaxImpairmentDuration) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be in [0, ", kMaxImpairmentDuration.count(), "ns], got ", d.count(), "ns"));
  }
  return absl::OkStatus();
}

}  // namespace impairment_internal

inline absl::Status Impairment::Validate() const {
  using impairment_internal::CheckDuration;
  using impairment_internal::CheckProbability;
  for (absl::Status s : {CheckProbability("loss", loss), CheckProbability("duplicate", duplicate),
                         CheckProbability("reorder", reorder), CheckProbability("corrupt", corrupt),
                         CheckDuration("delay", delay), CheckDuration("jitter", jitter),
                         CheckDuration("reorder_delay", reorder_delay)}) {
    if (!s.ok()) return s;
  }
  // A zero hold-back would count datagrams as reordered without moving any of them.
  if (reorder > 0 && reorder_delay == Duration{0}) {
    return absl::InvalidArgumentError("reorder_delay must be positive when reorder > 0, got 0ns");
  }
  return absl::OkStatus();
}

// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
// OOPSLA 2014): one 64-bit word of state, a Weyl-sequence step and a 64-bit finalizer. Any
// seed, 0 included, is fine, and it is statistically far better than a lab needs.
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(uint64_t seed = 0) : state_(seed) {}

  constexpr uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio, the published increment
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1): the top 53 bits fill a double's mantissa exactly.
  constexpr double NextUnit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Uniform in [0, n) for n > 0, without modulo bias: draws below 2^64 mod n are rejected,
  // which leaves a range whose size is a multiple of n.
  constexpr uint64_t Below(uint64_t n) {
    const uint64_t reject_below = (0 - n) % n;  // == 2^64 mod n
    for (;;) {
      const uint64_t x = Next();
      if (x >= reject_below) return x % n;
    }
  }

  // True with probability p. The ends draw nothing, so a probability of 0 or 1 does not
  // shift the random stream that the other impairments see.
  constexpr bool Chance(double p) {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return NextUnit() < p;
  }

 private:
  uint64_t state_;
};

}  // namespace tcplab::link
