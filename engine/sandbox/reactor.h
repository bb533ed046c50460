// Reactor: one thread, one epoll loop. A sandbox's TUN fd, its kernel-peer sockets, its one
// timer (the engine's NextDeadline) and commands posted from other threads (gRPC handlers)
// all run here, one at a time, so the engine needs no locks.
//
// This is the only code in the project that reads the real clock (Now()); everything else
// is handed an Instant.
//
// Threading: Post, Call, InLoopThread and Now are thread-safe. Watch, Unwatch and SetTimer
// may only be called on the reactor thread (from a callback or a posted function); they
// abort with a message otherwise. Lock order: mu_ is a leaf lock, never held while user
// code runs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/sandbox/netns.h"
#include "engine/tcp/clock.h"

namespace tcplab::sandbox {

// The nice value of reactor threads when the process may raise priority (reactor.cc).
inline constexpr int kReactorNice = -10;

class Reactor {
 public:
  // Starts the thread, named `name` (cut to 15 octets), which first enters `netns` if it is
  // not null. Returns that thread's setns status if entering failed (the thread is joined
  // by then), or the status of creating the epoll/eventfd/timerfd descriptors. `netns` is
  // only used during Start; the thread stays in the namespace even after it is destroyed.
  static absl::StatusOr<std::unique_ptr<Reactor>> Start(const Netns* netns, std::string name);

  // Stops the loop and joins the thread. Functions posted before the destructor was
  // entered still run (in order); functions posted after that (e.g. by those functions)
  // are destroyed without running, so a concurrent Call() sees std::future_error
  // (broken_promise) instead of hanging. Must not be called on the reactor thread.
  ~Reactor();

  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Runs `fn` on the reactor thread, after everything posted before it. Thread-safe.
  void Post(absl::AnyInvocable<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs `fn` on the reactor thread and returns its result, blocking the caller until
  // then. On the reactor thread itself it runs `fn` inline (posting would deadlock).
  template <typename F>
  auto Call(F&& fn) -> std::invoke_result_t<std::decay_t<F>&>;

  bool InLoopThread() const { return std::this_thread::get_id() == loop_thread_id_; }

  // Monotonic time since Start (steady_clock, i.e. CLOCK_MONOTONIC). Thread-safe.
  Instant Now() const;
  // The wall-clock time of `t` on the Now() scale: the wall time read at Start, plus t.
  // For display only (event timestamps); it does not follow later wall-clock steps.
  absl::Time WallTime(Instant t) const;

  const std::string& name() const { return name_; }

  // --- reactor thread only ---

  // Calls `cb(events)` whenever epoll reports `epoll_events` (EPOLLIN, EPOLLOUT, ...) on
  // `fd`. Watching a watched fd replaces its events and callback. The caller keeps `fd`
  // open and calls Unwatch before closing it. A callback may Watch/Unwatch any fd,
  // including its own, and SetTimer. A failing epoll_ctl (a bad fd: a programming error)
  // aborts with the errno text.
  void Watch(int fd, uint32_t epoll_events, std::function<void(uint32_t events)> cb);
  // Stops watching `fd`; no callback for it runs after this returns. Unknown fds are ignored.
  void Unwatch(int fd);
  // Arms the reactor's one timer: `cb` runs once, on this thread, at or after `deadline`
  // (a time on the Now() scale; deadlines already past fire on the next loop turn).
  // Re-arming replaces deadline and callback; kNever disarms. The callback may re-arm.
  void SetTimer(Instant deadline, std::function<void()> cb);

 private:
  struct Watcher {
    uint32_t id = 0;  // tells a stale epoll event from a re-registration of the same fd
    std::shared_ptr<std::function<void(uint32_t)>> cb;
  };

  explicit Reactor(std::string name);
  absl::Status CreateDescriptors();
  void Run(const Netns* netns, absl::Status* start_status, absl::Notification* started);
  void Loop();
  // Returns false when the loop should exit.
  bool RunPosted() ABSL_LOCKS_EXCLUDED(mu_);
  void OnTimer();
  void ArmTimerFd(Instant deadline);
  void OnWatched(uint64_t tag, uint32_t events);
  void WakeUp();
  void CheckInLoop(const char* what) const;

  const std::string name_;
  const std::chrono::steady_clock::time_point epoch_;
  const absl::Time wall_epoch_;  // the wall clock at epoch_
  int epoll_fd_ = -1;
  int event_fd_ = -1;
  int timer_fd_ = -1;
  std::thread thread_;
  // Written by the reactor thread before Start returns, read-only afterwards.
  std::thread::id loop_thread_id_;

  absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_ ABSL_GUARDED_BY(mu_);
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;

  // Reactor thread only.
  absl::flat_hash_map<int, Watcher> watchers_;
  uint32_t next_watch_id_;
  std::function<void()> timer_cb_;
  Instant timer_deadline_ = kNever;
  // What the timerfd is set to: at or before timer_deadline_, or kNever once it went off.
  Instant timerfd_deadline_ = kNever;
};

template <typename F>
auto Reactor::Call(F&& fn) -> std::invoke_result_t<std::decay_t<F>&> {
  using Result = std::invoke_result_t<std::decay_t<F>&>;
  if (InLoopThread()) return std::invoke(fn);
  std::packaged_task<Result()> task(std::forward<F>(fn));
  std::future<Result> result = task.get_future();
  Post([task = std::move(task)]() mutable { task(); });
  return result.get();
}

}  // namespace tcplab::sandbox
