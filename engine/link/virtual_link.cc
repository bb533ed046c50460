#include "engine/link/virtual_link.h"

#include <algorithm>

namespace tcplab::link {
namespace {

// After a burst, keep at most this many spare buffers: enough for a full window of
// segments in flight, without holding on to a burst's worth of memory forever.
constexpr size_t kMaxFreeBuffers = 1024;

// `at + d`, but kNever instead of overflowing when a caller hands in a far-future instant.
Instant AddSaturating(Instant at, Duration d) {
  return at > kNever - d ? kNever : at + d;
}

// std::push_heap / pop_heap build a max-heap; ordering by "greater" puts the earliest
// delivery on top.
template <typename Queued>
bool LaterThan(const Queued& a, const Queued& b) {
  return a.key > b.key;
}

}  // namespace

absl::Status Impairer::SetImpairment(const Impairment& impairment) {
  if (absl::Status s = impairment.Validate(); !s.ok()) return s;
  if (impairment.seed != impairment_.seed) rng_ = SplitMix64(impairment.seed);
  impairment_ = impairment;
  pass_through_ = impairment.IsPassThrough();
  return absl::OkStatus();
}

void Impairer::SubmitInOrder(std::span<const uint8_t> datagram, Instant now, uint64_t order) {
  ++counters_.submitted;
  if (pass_through_) {
    // The fast path: one copy into a recycled buffer, no random draws. It still goes
    // through PushInOrder so that datagrams delayed before an impairment change are not
    // overtaken by undelayed ones sent after it.
    PushInOrder(Key{now, order}, TakeBuffer(datagram));
    return;
  }
  SubmitImpaired(datagram, now, order);
}

// The draws happen in a fixed order (loss, corrupt, duplicate, reorder, jitter), each only
// when its setting can change the outcome, so the same seed and the same sends give the
// same fates.
void Impairer::SubmitImpaired(std::span<const uint8_t> datagram, Instant now, uint64_t order) {
  if (rng_.Chance(impairment_.loss)) {
    ++counters_.dropped;
    return;
  }
  std::vector<uint8_t> bytes = TakeBuffer(datagram);
  if (!bytes.empty() && rng_.Chance(impairment_.corrupt)) {
    FlipRandomBit(bytes);
    ++counters_.corrupted;
  }
  const bool duplicate = rng_.Chance(impairment_.duplicate);
  const bool reorder = rng_.Chance(impairment_.reorder);
  Key key{AddSaturating(now, impairment_.delay + DrawJitter()), order};

  // The copy is made after corruption, so both copies carry the same bit flip, and it
  // shares the original's key, so it leaves right behind it.
  std::vector<uint8_t> copy;
  if (duplicate) {
    copy = TakeBuffer(bytes);
    ++counters_.duplicated;
  }
  if (reorder) {
    key.at = AddSaturating(key.at, impairment_.reorder_delay);
    ++counters_.reordered;
    PushHeld(key, std::move(bytes));
    if (duplicate) PushHeld(key, std::move(copy));
  } else {
    PushInOrder(key, std::move(bytes));
    if (duplicate) PushInOrder(key, std::move(copy));
  }
}

Duration Impairer::DrawJitter() {
  if (impairment_.jitter <= Duration{0}) return Duration{0};
  // Inclusive of the bound: uniform over the jitter.count() + 1 whole nanoseconds.
  const auto span = static_cast<uint64_t>(impairment_.jitter.count()) + 1;
  return Duration(static_cast<Duration::rep>(rng_.Below(span)));
}

// A single flipped bit is exactly what the Internet checksum always detects (RFC 1071: a
// one-bit change moves the ones'-complement sum by a nonzero amount), so a corrupted
// datagram must be rejected by the IPv4 header checksum or by the TCP checksum.
void Impairer::FlipRandomBit(std::vector<uint8_t>& bytes) {
  const uint64_t bit = rng_.Below(uint64_t{bytes.size()} * 8);
  bytes[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
}

void Impairer::PushInOrder(Key key, std::vector<uint8_t> bytes) {
  // A FIFO queue: never due before the datagram ahead of it, whatever jitter drew.
  key.at = std::max(key.at, fifo_tail_at_);
  fifo_tail_at_ = key.at;
  fifo_.PushBack(Queued{key, std::move(bytes)});
}

void Impairer::PushHeld(Key key, std::vector<uint8_t> bytes) {
  held_.push_back(Queued{key, std::move(bytes)});
  std::push_heap(held_.begin(), held_.end(), LaterThan<Queued>);
}

Instant Impairer::NextDeadline() const {
  const std::optional<Key> key = PeekKey();
  return key ? key->at : kNever;
}

std::optional<Impairer::Key> Impairer::PeekKey() const {
  if (fifo_.empty() && held_.empty()) return std::nullopt;
  if (held_.empty()) return fifo_.front().key;
  if (fifo_.empty()) return held_.front().key;
  return std::min(fifo_.front().key, held_.front().key);
}

Impairer::Queued Impairer::PopNext() {
  ++counters_.delivered;
  // Each queue yields its smallest key first, so the smaller of the two fronts is next.
  if (held_.empty() || (!fifo_.empty() && fifo_.front().key < held_.front().key)) {
    return fifo_.PopFront();
  }
  std::pop_heap(held_.begin(), held_.end(), LaterThan<Queued>);
  Queued item = std::move(held_.back());
  held_.pop_back();
  return item;
}

std::vector<uint8_t> Impairer::TakeBuffer(std::span<const uint8_t> contents) {
  std::vector<uint8_t> buffer;
  if (!free_buffers_.empty()) {
    buffer = std::move(free_buffers_.back());
    free_buffers_.pop_back();
  }
  // assign() reuses the recycled capacity: no allocation once buffers have grown to size.
  buffer.assign(contents.begin(), contents.end());
  return buffer;
}

void Impairer::Recycle(std::vector<uint8_t> buffer) {
  if (free_buffers_.size() < kMaxFreeBuffers) free_buffers_.push_back(std::move(buffer));
}

Instant VirtualLink::NextDeadline() const {
  return std::min(Direction(Side::kA).NextDeadline(), Direction(Side::kB).NextDeadline());
}

std::optional<Side> VirtualLink::NextDueFrom(Instant now) const {
  const std::optional<Impairer::Key> a = Direction(Side::kA).PeekKey();
  const std::optional<Impairer::Key> b = Direction(Side::kB).PeekKey();
  // The orders come from one counter, so keys never tie across directions.
  std::optional<Side> first;
  if (a && (!b || *a < *b)) {
    if (a->at <= now) first = Side::kA;
  } else if (b && b->at <= now) {
    first = Side::kB;
  }
  return first;
}

}  // namespace tcplab::link
