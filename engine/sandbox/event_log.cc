#include "engine/sandbox/event_log.h"

#include <algorithm>

namespace tcplab::sandbox {

const char* ToString(StackKind k) { return k == StackKind::kEngine ? "ENGINE" : "KERNEL"; }

void EventLog::Append(Event ev) {
  absl::MutexLock lock(&mu_);
  ev.seq = next_seq_++;
  if (ring_.size() < capacity_) {
    ring_.push_back(std::move(ev));
    if (ring_.size() == capacity_) ring_.shrink_to_fit();  // growth may have reserved more
  } else if (capacity_ > 0) {
    ring_[oldest_] = std::move(ev);
    oldest_ = (oldest_ + 1) % capacity_;
  }
  last_seq_.store(next_seq_ - 1, std::memory_order_release);
  cv_.SignalAll();
}

EventLog::ReadResult EventLog::ReadLocked(uint64_t from, size_t max) const {
  ReadResult r;
  if (ring_.empty()) {
    r.next = std::max(from, next_seq_);
    if (from != 0 && from < next_seq_) r.missed = next_seq_ - std::max<uint64_t>(from, 1);
    return r;
  }
  uint64_t oldest = At(0).seq;
  if (from == 0) from = oldest;
  if (from < oldest) {
    r.missed = oldest - from;
    from = oldest;
  }
  size_t i = from - oldest;
  for (; i < ring_.size() && r.events.size() < max; ++i) r.events.push_back(At(i));
  r.next = r.events.empty() ? std::max(from, next_seq_) : r.events.back().seq + 1;
  return r;
}

EventLog::ReadResult EventLog::Read(uint64_t from, size_t max) const {
  absl::MutexLock lock(&mu_);
  return ReadLocked(from, max);
}

EventLog::ReadResult EventLog::WaitAndRead(uint64_t from, size_t max, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  while (!closed_.load(std::memory_order_relaxed) && next_seq_ <= std::max<uint64_t>(from, 1)) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) break;  // timed out
  }
  return ReadLocked(from, max);
}

void EventLog::Close() {
  absl::MutexLock lock(&mu_);
  closed_.store(true, std::memory_order_release);
  cv_.SignalAll();
}

}  // namespace tcplab::sandbox
