// Time as the engine sees it: an Instant handed in by the caller, never read from a clock.
// Tests drive it in virtual time; the reactor (later) feeds the monotonic clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace tcplab {

// A clock type with no now(): the engine can name instants but not read the time.
struct EngineClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<EngineClock, duration>;
  static constexpr bool is_steady = true;
};

using Duration = std::chrono::nanoseconds;
using Instant = EngineClock::time_point;

inline constexpr Instant kNever = Instant::max();

inline constexpr Instant InstantFromNanos(int64_t ns) { return Instant(Duration(ns)); }
inline constexpr int64_t ToMillis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace tcplab
