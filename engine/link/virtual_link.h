// A point-to-point link in virtual time: two sides, A and B, each direction impaired on its
// own. Tests and benchmarks join two stacks with it instead of a TUN, and the sandbox uses
// an Impairer on the engine's side of the TUN (netem shapes only kernel->engine).
//
// Like the engine core, nothing here reads a clock: every call takes `now`, and the owner
// asks NextDeadline() when to call Poll() again (the smoltcp poll / poll_at pattern).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/link/impairment.h"
#include "engine/tcp/clock.h"

namespace tcplab::link {

// What one direction did. Every submitted datagram ends up dropped, delivered or still
// queued, and a duplicate adds one more, so at any moment:
//   submitted + duplicated == delivered + dropped + queued.
struct ImpairerCounters {
  uint64_t submitted = 0;
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  uint64_t duplicated = 0;
  uint64_t reordered = 0;
  uint64_t corrupted = 0;

  friend bool operator==(const ImpairerCounters&, const ImpairerCounters&) = default;
};

namespace link_internal {

// A FIFO on a power-of-two ring that grows by doubling and never shrinks. std::deque
// frees and allocates a block every few elements as a steady stream passes through it;
// this reuses the same slots forever.
template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  const T& front() const { return slots_[head_]; }

  void PushBack(T value) {
    if (size_ == slots_.size()) Grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(value);
    ++size_;
  }

  T PopFront() {
    T value = std::move(slots_[head_]);
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
    return value;
  }

 private:
  void Grow() {
    std::vector<T> bigger(slots_.empty() ? 16 : 2 * slots_.size());
    for (size_t i = 0; i < size_; ++i) {
      bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
    }
    slots_.swap(bigger);
    head_ = 0;
  }

  std::vector<T> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace link_internal

// One direction of a link: datagrams go in with Submit() and come out of Poll() when due.
//
// Delivery order is by delivery instant; equal instants leave in submission order.
// Datagrams that are not reordered never overtake one another, even under jitter or after
// the delay is lowered: a datagram is never due before the one submitted ahead of it.
class Impairer {
 public:
  Impairer() = default;

  // Takes effect for datagrams submitted from now on; queued ones keep their delivery
  // instants. The PRNG is reseeded only when the seed changes, so changing the loss rate
  // mid-stream continues the random sequence rather than replaying it from the start.
  // An invalid impairment is rejected and the previous one stays.
  absl::Status SetImpairment(const Impairment& impairment);
  const Impairment& impairment() const { return impairment_; }

  // Copies the datagram (the caller's buffer may be reused at once) and decides its fate.
  void Submit(std::span<const uint8_t> datagram, Instant now) {
    SubmitInOrder(datagram, now, next_order_++);
  }

  // The instant the next queued datagram is due, or kNever when nothing is queued.
  Instant NextDeadline() const;

  // Delivers every datagram due at `now` (delivery instant <= now), in delivery order, to
  // `deliver(std::span<const uint8_t>)` or `deliver(std::span<const uint8_t>, Instant at)`.
  // The span is valid only during the call. `deliver` may Submit() to this impairer: a
  // datagram that becomes due at `now` is delivered by this same call. Returns the count.
  template <typename F>
  size_t Poll(Instant now, F&& deliver);

  const ImpairerCounters& counters() const { return counters_; }
  size_t queued() const { return fifo_.size() + held_.size(); }

 private:
  friend class VirtualLink;

  // Where a queued datagram stands in delivery order. `order` breaks ties between equal
  // instants: it grows with every submission (a VirtualLink shares one counter between its
  // two directions so that ties across directions also go by submission order).
  struct Key {
    Instant at;
    uint64_t order = 0;
    friend auto operator<=>(const Key&, const Key&) = default;
  };
  struct Queued {
    Key key;
    std::vector<uint8_t> bytes;
  };

  void SubmitInOrder(std::span<const uint8_t> datagram, Instant now, uint64_t order);
  void SubmitImpaired(std::span<const uint8_t> datagram, Instant now, uint64_t order);
  Duration DrawJitter();
  void FlipRandomBit(std::vector<uint8_t>& bytes);
  void PushInOrder(Key key, std::vector<uint8_t> bytes);
  void PushHeld(Key key, std::vector<uint8_t> bytes);

  // The key of the next datagram to deliver, if any is queued.
  std::optional<Key> PeekKey() const;
  // Removes the next datagram (there must be one) and counts it delivered.
  Queued PopNext();

  // Buffers come from and go back to a free list, so a steady stream does not allocate.
  std::vector<uint8_t> TakeBuffer(std::span<const uint8_t> contents);
  void Recycle(std::vector<uint8_t> buffer);

  Impairment impairment_;
  bool pass_through_ = true;
  SplitMix64 rng_{Impairment{}.seed};
  uint64_t next_order_ = 0;
  ImpairerCounters counters_;

  // Datagrams that keep their order; their keys never decrease from front to back.
  link_internal::RingQueue<Queued> fifo_;
  // The delivery instant of the last datagram put in fifo_, which later ones may not beat.
  Instant fifo_tail_at_ = Instant::min();
  // Reordered datagrams: a min-heap on Key, since they leave the FIFO discipline.
  std::vector<Queued> held_;
  std::vector<std::vector<uint8_t>> free_buffers_;
};

enum class Side : uint8_t { kA, kB };

constexpr Side Peer(Side side) { return side == Side::kA ? Side::kB : Side::kA; }

// Two sides joined by two Impairers: datagrams sent from A arrive at B and back.
class VirtualLink {
 public:
  VirtualLink() = default;

  // Impairs the direction that starts at `from`. See Impairer::SetImpairment. Use a
  // different seed per direction unless mirrored loss patterns are wanted.
  absl::Status SetImpairment(Side from, const Impairment& impairment) {
    return Direction(from).SetImpairment(impairment);
  }
  const Impairment& impairment(Side from) const { return Direction(from).impairment(); }

  // A test hook that sees every datagram sent from `from` before the impairment does, and
  // drops it by returning false (counted as submitted and dropped). Tests use it to lose one
  // particular segment, e.g. the last ACK of a close, which a random loss rate cannot aim at.
  // An empty function removes the filter.
  using Filter = std::function<bool(std::span<const uint8_t> datagram)>;
  void SetFilter(Side from, Filter filter) {
    filters_[static_cast<size_t>(from)] = std::move(filter);
  }

  // Puts a datagram on the link from `from` towards Peer(from).
  void Send(Side from, std::span<const uint8_t> datagram, Instant now) {
    if (const Filter& filter = filters_[static_cast<size_t>(from)]; filter && !filter(datagram)) {
      ++Direction(from).counters_.submitted;
      ++Direction(from).counters_.dropped;
      return;
    }
    Direction(from).SubmitInOrder(datagram, now, next_order_++);
  }

  // The earlier deadline of the two directions, or kNever.
  Instant NextDeadline() const;

  // Delivers every datagram of both directions due at `now`, in delivery order (equal
  // instants: in the order they were sent), as
  //   deliver(Side to, std::span<const uint8_t> datagram, Instant at).
  // The span is valid only during the call.
  //
  // `deliver` may call Send() (a stack answering a segment with an ACK): the queues are
  // re-examined after every delivery, so a reply that is due at `now` is delivered by this
  // same call. A zero-delay conversation therefore runs to quiescence inside one Poll(now).
  // For exact virtual time, send replies with `at` (the instant the datagram arrived), not
  // `now`. Two endpoints that answer every datagram with another over a zero-delay link
  // never quiesce: stopping such a ping-pong is the caller's responsibility. Returns the
  // number of datagrams delivered.
  template <typename F>
  size_t Poll(Instant now, F&& deliver);

  const ImpairerCounters& counters(Side from) const { return Direction(from).counters(); }
  size_t queued(Side from) const { return Direction(from).queued(); }

 private:
  Impairer& Direction(Side from) { return directions_[static_cast<size_t>(from)]; }
  const Impairer& Direction(Side from) const { return directions_[static_cast<size_t>(from)]; }

  // The side whose next datagram is due first at `now`, if any is due.
  std::optional<Side> NextDueFrom(Instant now) const;

  std::array<Impairer, 2> directions_;  // indexed by the sending side
  std::array<Filter, 2> filters_;       // indexed by the sending side
  uint64_t next_order_ = 0;
};

template <typename F>
size_t Impairer::Poll(Instant now, F&& deliver) {
  size_t delivered = 0;
  for (std::optional<Key> key = PeekKey(); key && key->at <= now; key = PeekKey()) {
    // Take the datagram out before the callback runs, so that a Submit() from inside it
    // sees a consistent queue and cannot reuse the buffer being delivered.
    Queued item = PopNext();
    const std::span<const uint8_t> bytes(item.bytes);
    if constexpr (std::is_invocable_v<F&, std::span<const uint8_t>, Instant>) {
      deliver(bytes, item.key.at);
    } else {
      deliver(bytes);
    }
    Recycle(std::move(item.bytes));
    ++delivered;
  }
  return delivered;
}

template <typename F>
size_t VirtualLink::Poll(Instant now, F&& deliver) {
  size_t delivered = 0;
  // One datagram at a time, choosing afresh each round, because `deliver` may Send().
  while (std::optional<Side> from = NextDueFrom(now)) {
    Impairer& direction = Direction(*from);
    Impairer::Queued item = direction.PopNext();
    deliver(Peer(*from), std::span<const uint8_t>(item.bytes), item.key.at);
    direction.Recycle(std::move(item.bytes));
    ++delivered;
  }
  return delivered;
}

}  // namespace tcplab::link
