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
  explicit EventHub(sandbox::EventLog& log);
  ~EventHub();  // Close()s, then joins the thread
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Starts a stream for `req` on `hub`. `keepalive` is held until the stream is done (the
  // sandbox the log belongs to). Validation of `req` is the caller's.
  static grpc::ServerWriteReactor<v1::WatchEventsResponse>* Watch(std::shared_ptr<EventHub> hub,
                                                                   std::shared_ptr<void> keepalive,
                                                                   const v1::WatchEventsRequest& req,
                                                                   grpc::CallbackServerContext* ctx);

  // Ends every stream once it has sent what the log holds, with `why` (NOT_FOUND when the
  // sandbox is deleted, UNAVAILABLE when the server shuts down). Also closes the log.
  void Close(absl::Status why) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status close_status() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t subscribers() const ABSL_LOCKS_EXCLUDED(mu_);

  static constexpr size_t kMaxBatch = 256;

 private:
  friend class EventSubscriber;
  void Add(EventSubscriber* s) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(EventSubscriber* s) ABSL_LOCKS_EXCLUDED(mu_);
  void KickAll() ABSL_LOCKS_EXCLUDED(mu_);
  void Run();

  sandbox::EventLog& log_;
  mutable absl::Mutex mu_;
  std::vector<EventSubscriber*> subs_ ABSL_GUARDED_BY(mu_);
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace tcplab::server
