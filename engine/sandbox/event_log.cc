#include "engine/sandbox/event_log.h"

#include <algorithm>

namespace tcplab::sandbox {

const char* ToString(StackKind k) { return k == StackKind::kEngine ? "ENGINE" : "KERNEL"; }

EventLog::EventLog(size_t capacity)
    : capacity_(capacity),
      chunk_(std::clamp<size_t>(capacity, 1, kChunk)),
      ring_((capacity + chunk_ - 1) / chunk_ + 1) {}

EventLog::~EventLog() = default;

void EventLog::StartChunk(uint64_t first) {
  std::shared_ptr<Chunk> leaving;
  const size_t slot = ((first - 1) / chunk_) % ring_.size();
  {
    absl::MutexLock lock(&mu_);
    leaving = std::move(ring_[slot]);
  }
  // Out of the ring no reader can pick it up any more; if none holds it either, reuse it
  // (its slots are overwritten in place), else its last reader frees it.
  if (leaving && leaving.use_count() == 1) {
    std::atomic_thread_fence(std::memory_order_acquire);  // after the readers' last reads
  } else {
    leaving = std::make_shared<Chunk>(chunk_);
  }
  leaving->first = first;
  leaving->filled.store(0, std::memory_order_relaxed);
  head_ = leaving;
  absl::MutexLock lock(&mu_);
  ring_[slot] = std::move(leaving);
}

void EventLog::Append(Event ev) {
  const uint64_t seq = next_seq_++;
  if (!head_ || seq >= head_->first + chunk_) StartChunk(seq);
  const size_t i = seq - head_->first;
  ev.seq = seq;
  head_->events[i] = std::move(ev);
  head_->filled.store(i + 1, std::memory_order_release);
  // Paired with WaitAndRead: either the waiter sees this seq, or this sees the waiter.
  last_seq_.store(seq, std::memory_order_seq_cst);
  if (waiting_.load(std::memory_order_seq_cst) && waiting_.exchange(false)) WakeWaiters();
}

void EventLog::WakeWaiters() {
  absl::MutexLock lock(&mu_);
  cv_.SignalAll();
}

std::shared_ptr<const EventLog::Chunk> EventLog::ChunkOf(uint64_t seq) const {
  absl::MutexLock lock(&mu_);
  const std::shared_ptr<Chunk>& c = ring_[((seq - 1) / chunk_) % ring_.size()];
  if (c && c->first <= seq && seq < c->first + chunk_) return c;
  return nullptr;
}

EventLog::Position EventLog::Visit(uint64_t from, size_t max, const std::function<void(const Event&)>& fn) const {
  Position p;
  uint64_t s = from;
  uint64_t last = 0;
  size_t seen = 0;
  while (true) {
    last = last_seq();
    const uint64_t oldest = last >= capacity_ ? last - capacity_ + 1 : 1;
    if (s == 0) s = oldest;  // "from the oldest retained": no gap
    if (s < oldest) {
      if (seen > 0) break;  // the window overtook this read: the next one reports the gap
      p.missed += oldest - s;
      s = oldest;
    }
    if (seen == max || s > last) break;
    std::shared_ptr<const Chunk> c = ChunkOf(s);
    if (!c) continue;  // left the ring since `last` was read: s is now older than the window
    const size_t filled = c->filled.load(std::memory_order_acquire);
    for (size_t i = s - c->first; i < filled && seen < max && s <= last; ++i, ++s, ++seen) fn(c->events[i]);
  }
  p.next = seen > 0 ? s : std::max(s, last + 1);
  return p;
}

EventLog::ReadResult EventLog::Read(uint64_t from, size_t max) const {
  ReadResult r;
  r.events.reserve(std::min<size_t>(max, 4 * chunk_));
  Position p = Visit(from, max, [&r](const Event& e) { r.events.push_back(e); });
  r.missed = p.missed;
  r.next = p.next;
  return r;
}

EventLog::ReadResult EventLog::WaitAndRead(uint64_t from, size_t max, absl::Time deadline) const {
  const uint64_t want = std::max<uint64_t>(from, 1);
  {
    absl::MutexLock lock(&mu_);
    while (!closed_.load(std::memory_order_relaxed)) {
      waiting_.store(true, std::memory_order_seq_cst);
      if (last_seq_.load(std::memory_order_seq_cst) >= want) break;
      if (cv_.WaitWithDeadline(&mu_, deadline)) break;  // timed out
    }
  }
  return Read(from, max);
}

void EventLog::Close() {
  absl::MutexLock lock(&mu_);
  closed_.store(true, std::memory_order_release);
  cv_.SignalAll();
}

}  // namespace tcplab::sandbox
