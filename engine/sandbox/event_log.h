// EventLog: a sandbox's events in order, each with a per-sandbox sequence number, kept in a
// bounded ring. Writers (the sandbox's reactor) never block on readers: a reader that falls
// behind the retained window learns how many events it missed (a gap) and goes on from the
// oldest retained one. Readers may wait for new events.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/tcp/events.h"

namespace tcplab::sandbox {

enum class StackKind : uint8_t { kEngine, kKernel };
const char* ToString(StackKind k);

// A user call and its result (DESIGN.md's AppEvent).
struct AppEvent {
  tcp::ConnId conn = 0;
  std::string call;    // "connect 198.18.0.1:80", "send 5 octets", ...
  std::string result;  // "OK" or the error
};

struct Event {
  uint64_t seq = 0;       // 1, 2, 3 ... per sandbox
  Duration since_start{};  // monotonic, since the sandbox started
  absl::Time wall;
  StackKind stack = StackKind::kEngine;
  std::variant<tcp::SegmentEvent, tcp::StateEvent, tcp::TimerEvent, AppEvent> body;
};

class EventLog {
 public:
  explicit EventLog(size_t capacity) : capacity_(capacity) {}

  void Append(Event ev) ABSL_LOCKS_EXCLUDED(mu_);

  struct ReadResult {
    std::vector<Event> events;
    uint64_t missed = 0;  // events between `from` and the first one returned that are gone
    uint64_t next = 0;    // the sequence number to read from next time
  };
  // Up to `max` events with seq >= from (from 0 means "from the oldest retained", and then
  // nothing counts as missed; from 1 counts every event that is gone as missed).
  ReadResult Read(uint64_t from, size_t max) const ABSL_LOCKS_EXCLUDED(mu_);
  // Like Read, but waits until there is something at or after `from`, or until `deadline`.
  ReadResult WaitAndRead(uint64_t from, size_t max, absl::Time deadline) const ABSL_LOCKS_EXCLUDED(mu_);

  // Lock-free: every subscriber asks these often, and the reactor appends under mu_.
  uint64_t last_seq() const { return last_seq_.load(std::memory_order_acquire); }
  size_t capacity() const { return capacity_; }
  void Close() ABSL_LOCKS_EXCLUDED(mu_);  // wakes every waiter; nothing more will come
  bool closed() const { return closed_.load(std::memory_order_acquire); }

 private:
  ReadResult ReadLocked(uint64_t from, size_t max) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  mutable absl::CondVar cv_;
  // Grows to capacity_, then turns into a circle: the oldest event is overwritten in place.
  // (A deque allocated and freed a node every few events, on the datapath of every segment.)
  std::vector<Event> ring_ ABSL_GUARDED_BY(mu_);
  size_t oldest_ ABSL_GUARDED_BY(mu_) = 0;  // index of the oldest event in ring_
  const Event& At(size_t i) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {  // i-th oldest
    return ring_[(oldest_ + i) % ring_.size()];
  }
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  // Written under mu_; read without it.
  std::atomic<uint64_t> last_seq_{0};
  std::atomic<bool> closed_{false};
};

}  // namespace tcplab::sandbox
