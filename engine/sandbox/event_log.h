// EventLog: a sandbox's events in order, each with a per-sandbox sequence number, kept in a
// bounded window of the newest `capacity`. The writer (the sandbox's reactor) never waits for
// readers: a reader that falls behind the window learns how many events it missed (a gap)
// and goes on from the oldest retained one. Readers may wait for new events.
//
// The events live in chunks of up to kChunk slots. The writer fills the newest chunk's slots
// in order and publishes each with a release store of the chunk's count; a written slot is
// never changed while the chunk is shared, so readers copy events without any lock, while the
// reactor goes on appending. The log's lock guards only the ring of chunk pointers: a reader
// takes it to pick up a chunk (once per kChunk events), the writer to start a new chunk
// (likewise). A chunk that drops out of the window is reused by the writer if no reader holds
// it, and freed by its last reader otherwise, so memory stays bounded by the window plus one
// chunk per reader in the middle of a copy.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
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
  explicit EventLog(size_t capacity);
  ~EventLog();

  // One writer at a time: the sandbox's reactor thread.
  void Append(Event ev) ABSL_LOCKS_EXCLUDED(mu_);

  // Where a read ended: `missed` events between `from` and the first one seen are gone;
  // read on from `next`.
  struct Position {
    uint64_t missed = 0;
    uint64_t next = 0;
  };
  // Calls `fn` on up to `max` events with seq >= from, in order, without copying them and
  // without holding the log's lock (from 0 means "from the oldest retained", and then nothing
  // counts as missed; from 1 counts every event that is gone as missed). `fn` must not call
  // back into the log's writer.
  Position Visit(uint64_t from, size_t max, const std::function<void(const Event&)>& fn) const
      ABSL_LOCKS_EXCLUDED(mu_);

  struct ReadResult {
    std::vector<Event> events;
    uint64_t missed = 0;
    uint64_t next = 0;
  };
  // Copies of what Visit would show.
  ReadResult Read(uint64_t from, size_t max) const ABSL_LOCKS_EXCLUDED(mu_);
  // Like Read, but waits until there is something at or after `from`, or until `deadline`.
  ReadResult WaitAndRead(uint64_t from, size_t max, absl::Time deadline) const ABSL_LOCKS_EXCLUDED(mu_);

  // Lock-free: every subscriber asks these often.
  uint64_t last_seq() const { return last_seq_.load(std::memory_order_acquire); }
  size_t capacity() const { return capacity_; }
  void Close() ABSL_LOCKS_EXCLUDED(mu_);  // wakes every waiter; nothing more will come
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  static constexpr size_t kChunk = 256;

 private:
  struct Chunk {
    explicit Chunk(size_t slots) : events(slots) {}
    uint64_t first = 0;             // seq of events[0]; set before the chunk is shared
    std::vector<Event> events;      // events[i] is written once, before filled > i
    std::atomic<size_t> filled{0};  // slots published to readers
  };
  // The chunk holding `seq` if it is still in the ring, or null.
  std::shared_ptr<const Chunk> ChunkOf(uint64_t seq) const ABSL_LOCKS_EXCLUDED(mu_);
  void StartChunk(uint64_t first) ABSL_LOCKS_EXCLUDED(mu_);
  void WakeWaiters() ABSL_LOCKS_EXCLUDED(mu_);

  const size_t capacity_;
  const size_t chunk_;  // slots per chunk: kChunk, or the capacity if smaller
  mutable absl::Mutex mu_;
  mutable absl::CondVar cv_;
  // Chunk number c (events c*chunk_+1 ...) sits at ring_[c % ring_.size()]; enough chunks
  // that the newest capacity_ events are always in the ring.
  std::vector<std::shared_ptr<Chunk>> ring_ ABSL_GUARDED_BY(mu_);
  // The writer's own: the chunk it fills (also in ring_), and the next seq to give.
  std::shared_ptr<Chunk> head_;
  uint64_t next_seq_ = 1;
  std::atomic<uint64_t> last_seq_{0};
  // A reader is about to wait (set under mu_ before it checks last_seq_): the writer wakes it.
  mutable std::atomic<bool> waiting_{false};
  std::atomic<bool> closed_{false};
};

}  // namespace tcplab::sandbox
