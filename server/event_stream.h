// Live event streams (SandboxService.WatchEvents).
//
// Every subscriber reads the sandbox's EventLog at its own cursor: the log is the bounded
// queue, so the engine never waits for a subscriber and memory does not grow with slow ones.
// A subscriber that falls behind the retained window is told how many events it missed (a
// Gap event) and goes on from the oldest retained one. Each subscriber has at most one
// response (up to kMaxBatch events) in flight; it sends the next when gRPC reports the last
// one written, so a stalled client holds one response and its HTTP/2 window, no more.
//
// A subscriber that has caught up goes idle. The hub's thread wakes when the log grows and
// kicks the idle subscribers; it waits a millisecond between kicks so that a busy sandbox's
// events go out in batches rather than one response per event.
//
// Lifetimes: the hub holds the log (shared with the sandbox), subscribers hold the hub, and
// the hub's thread holds the hub until the hub is closed and its last subscriber is gone.
// So deleting a sandbox removes its namespace at once while its streams drain what was
// logged, and whichever thread lets go of the hub last never has to join itself.
//
// Lock order: a subscriber's lock before the log's and the hub's; the hub never takes a
// subscriber's lock while holding its own. No lock is held while calling into gRPC
// (StartWrite, Finish), which may run reactions inline.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "engine/sandbox/event_log.h"
#include "grpcpp/grpcpp.h"
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
  static grpc::ServerWriteReactor<v1::WatchEventsResponse>* Watch(std::shared_ptr<EventHub> hub,
                                                                   const v1::WatchEventsRequest& req);

  // Waits until every hub's thread has ended (at server shutdown, after the last stream).
  static bool WaitForAllThreads(absl::Duration timeout);

  // Ends every stream once it has sent what the log holds, with `why` (NOT_FOUND when the
  // sandbox is deleted, UNAVAILABLE when the server shuts down). Also closes the log.
  void Close(absl::Status why) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status close_status() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t subscribers() const ABSL_LOCKS_EXCLUDED(mu_);

  static constexpr size_t kMaxBatch = 256;

 private:
  friend class EventSubscriber;
  explicit EventHub(std::shared_ptr<sandbox::EventLog> log) : log_(std::move(log)) {}
  void Add(EventSubscriber* s) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(EventSubscriber* s) ABSL_LOCKS_EXCLUDED(mu_);
  void KickAll() ABSL_LOCKS_EXCLUDED(mu_);
  static void Run(std::shared_ptr<EventHub> self);
  bool Finished() const ABSL_LOCKS_EXCLUDED(mu_);  // closed, and no subscriber left

  const std::shared_ptr<sandbox::EventLog> log_;
  mutable absl::Mutex mu_;
  std::vector<EventSubscriber*> subs_ ABSL_GUARDED_BY(mu_);
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tcplab::server
