// Live event streams (SandboxService.WatchEvents).
//
// Every subscriber reads the sandbox's events at its own cursor: the sandbox's bounded log is
// the queue, so the engine never waits for a subscriber and memory does not grow with slow
// ones. A subscriber that falls behind the retained window is told how many events it missed
// (a Gap event) and goes on from the oldest retained one. Each subscriber has at most one
// response (up to kMaxBatch events) in flight; it sends the next when gRPC reports the last
// one written, so a stalled client holds one response and its HTTP/2 window, no more.
//
// Each event is serialized once (event_codec.h), into the hub's cache (a ring as long as the
// log, filled by whichever subscriber first needs an event, reading the log without taking
// the reactor's time); a response is the concatenation of cached bytes, written as a raw
// ByteBuffer over one refcounted slice. Subscribers that watch every event send batches
// that end at multiples of kMaxBatch, so those reading the same stretch of the log send the
// very same full batches: the first one builds a batch and the others send its slice. A
// hundred subscribers cost one serialization per event and about one copy, not a hundred.
//
// A subscriber that has caught up goes idle. The hub's thread wakes when the log grows and
// kicks the idle subscribers; it waits 10 ms between kicks so that a busy sandbox's events go
// out in batches rather than one response per event. After a write, a subscriber sends again
// at once only if a full batch is waiting; otherwise it waits for the next kick.
//
// Lifetimes: the hub holds the log (shared with the sandbox), subscribers hold the hub, and
// the hub's thread holds the hub until the hub is closed and its last subscriber is gone.
// So deleting a sandbox removes its namespace at once while its streams drain what was
// logged, and whichever thread lets go of the hub last never has to join itself.
//
// Lock order: a subscriber's lock, then the hub's block lock or its cache lock (never both),
// then the log's; the hub's list lock is never held while taking another. No lock is held while calling into gRPC
// (StartWrite, Finish), which may run reactions inline.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "engine/sandbox/event_log.h"
#include "server/event_codec.h"
#include "grpcpp/grpcpp.h"
#include "tcplab/v1/events.pb.h"
#include "tcplab/v1/sandbox.pb.h"

namespace tcplab::server {

class EventSubscriber;

class EventHub {
 public:
  // Starts the hub's thread.
  static std::shared_ptr<EventHub> Start(std::shared_ptr<sandbox::EventLog> log);
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Starts a stream for `req` on `hub`. Validation of `req` is the caller's.
  static grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(std::shared_ptr<EventHub> hub,
                                                           const v1::WatchEventsRequest& req);

  // Ends every stream once it has sent what the log holds, with `why` (NOT_FOUND when the
  // sandbox is deleted, UNAVAILABLE when the server shuts down). Also closes the log.
  void Close(absl::Status why) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status close_status() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t subscribers() const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until every hub's thread has ended (at server shutdown, after the last stream).
  static bool WaitForAllThreads(absl::Duration timeout);

  static constexpr size_t kMaxBatch = 1024;  // events per response, ~150 KiB

  // Totals over every stream of the process since it started (for benchmarks and metrics).
  struct Totals {
    uint64_t responses = 0;  // WatchEventsResponses written
    uint64_t events = 0;     // events in them, Gap events included
    uint64_t bytes = 0;      // their serialized size
  };
  static Totals totals();

  // What Collect found: `bytes` holds `events` serialized WatchEventsResponse.events entries
  // (a Gap first when `missed` > 0), shared, not copied, by every response that sends it;
  // read on from `next`.
  struct Batch {
    grpc::Slice bytes;
    size_t events = 0;
    uint64_t missed = 0;
    uint64_t next = 0;
  };
  // Events from `from` (0: the oldest retained) up to `last` (0: the newest), at most
  // kMaxBatch of those `wanted` accepts (by connection id and EventKind); null `wanted`:
  // every event, and then batches end at multiples of kMaxBatch and full ones are shared.
  using Filter = std::function<bool(uint64_t conn, int kind)>;
  Batch Collect(uint64_t from, uint64_t last, const Filter* wanted) ABSL_LOCKS_EXCLUDED(cache_mu_, blocks_mu_);

  const sandbox::EventLog& log() const { return *log_; }

 private:
  friend class EventSubscriber;
  explicit EventHub(std::shared_ptr<sandbox::EventLog> log);
  void Add(EventSubscriber* s) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(EventSubscriber* s) ABSL_LOCKS_EXCLUDED(mu_);
  void KickAll() ABSL_LOCKS_EXCLUDED(mu_);
  static void Run(std::shared_ptr<EventHub> self);
  bool Finished() const ABSL_LOCKS_EXCLUDED(mu_);  // closed, and no subscriber left
  void Fill(const sandbox::Event& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(cache_mu_);

  const std::shared_ptr<sandbox::EventLog> log_;
  // A subscriber left events for the next kick (EventSubscriber::Next, not eager).
  std::atomic<bool> deferred_{false};

  mutable absl::Mutex mu_;
  std::vector<EventSubscriber*> subs_ ABSL_GUARDED_BY(mu_);
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;

  // The serialized events: slot seq % capacity holds event `seq` once converted.
  struct Slot {
    uint64_t seq = 0;
    uint64_t conn = 0;
    int kind = 0;
    std::string bytes;  // tag, length and the Event: one WatchEventsResponse.events entry
  };
  Batch Build(uint64_t from, uint64_t last, const Filter* wanted) ABSL_LOCKS_EXCLUDED(cache_mu_);

  // The last few full unfiltered batches (events first .. first + kMaxBatch - 1), built by
  // the first subscriber to need one and sent as they are to the others.
  struct Block {
    uint64_t first = 0;
    grpc::Slice bytes;
  };
  absl::Mutex blocks_mu_;
  std::array<Block, 16> blocks_ ABSL_GUARDED_BY(blocks_mu_);

  absl::Mutex cache_mu_;
  std::vector<Slot> cache_ ABSL_GUARDED_BY(cache_mu_);
  EventEncoder encoder_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace tcplab::server
