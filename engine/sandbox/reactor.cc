#include "engine/sandbox/reactor.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tcplab::sandbox {
namespace {

// epoll_event.data.u64 holds (registration id << 32) | fd. Ids 0 and 1 are the reactor's
// own descriptors; watches count up from 2.
constexpr uint32_t kEventFdId = 0;
constexpr uint32_t kTimerFdId = 1;
constexpr uint32_t kFirstWatchId = 2;
constexpr int kMaxEventsPerWait = 64;

uint64_t Tag(uint32_t id, int fd) { return (uint64_t{id} << 32) | static_cast<uint32_t>(fd); }
uint32_t TagId(uint64_t tag) { return static_cast<uint32_t>(tag >> 32); }
int TagFd(uint64_t tag) { return static_cast<int>(static_cast<uint32_t>(tag)); }

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "tcplab Reactor: %s\n", message.c_str());
  std::abort();
}

std::string ErrnoText(int err) { return absl::StrCat(std::strerror(err), " (errno ", err, ")"); }

}  // namespace

Reactor::Reactor(std::string name)
    : name_(std::move(name)),
      epoch_(std::chrono::steady_clock::now()),
      wall_epoch_(absl::Now()),
      next_watch_id_(kFirstWatchId) {}

absl::StatusOr<std::unique_ptr<Reactor>> Reactor::Start(const Netns* netns, std::string name) {
  std::unique_ptr<Reactor> reactor(new Reactor(std::move(name)));
  if (absl::Status s = reactor->CreateDescriptors(); !s.ok()) return s;

  absl::Status start_status;
  absl::Notification started;
  Reactor* r = reactor.get();
  reactor->thread_ = std::thread([r, netns, &start_status, &started] {
    r->Run(netns, &start_status, &started);
  });
  started.WaitForNotification();
  if (!start_status.ok()) {
    reactor->thread_.join();  // Run returned right after reporting
    return start_status;
  }
  return reactor;
}

absl::Status Reactor::CreateDescriptors() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return absl::ErrnoToStatus(errno, "epoll_create1");
  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) return absl::ErrnoToStatus(errno, "eventfd");
  // CLOCK_MONOTONIC is the clock behind std::chrono::steady_clock in libstdc++, so Now()
  // and the timer agree on what time it is.
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (timer_fd_ < 0) return absl::ErrnoToStatus(errno, "timerfd_create(CLOCK_MONOTONIC)");

  for (auto [fd, id] : {std::pair{event_fd_, kEventFdId}, std::pair{timer_fd_, kTimerFdId}}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = Tag(id, fd);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return absl::ErrnoToStatus(errno, "epoll_ctl(EPOLL_CTL_ADD)");
    }
  }
  return absl::OkStatus();
}

Reactor::~Reactor() {
  if (thread_.joinable()) {
    if (InLoopThread()) Die(absl::StrCat("reactor ", name_, " destroyed on its own thread"));
    {
      absl::MutexLock lock(&mu_);
      stop_requested_ = true;
    }
    WakeUp();
    thread_.join();
  }
  // Anything posted after the stop request is destroyed here, unrun.
  for (int fd : {timer_fd_, event_fd_, epoll_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void Reactor::Run(const Netns* netns, absl::Status* start_status, absl::Notification* started) {
  loop_thread_id_ = std::this_thread::get_id();
  // The kernel allows 15 octets and a NUL; the name shows in top -H and gdb.
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  // The datapath before its observers: a reactor runs at a higher priority (lower nice) than
  // the threads that stream its events, so that on a busy machine subscribers fall behind
  // and get Gap events rather than slowing the TCP traffic they watch. Needs CAP_SYS_NICE
  // (root has it); without it the reactor keeps the nice value of the thread that made it.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kReactorNice);
  if (netns != nullptr) *start_status = netns->EnterOnThisThread();
  const bool ok = start_status->ok();
  started->Notify();  // start_status and `started` die with Start's frame after this
  if (ok) Loop();
}

void Reactor::Loop() {
  epoll_event events[kMaxEventsPerWait];
  while (true) {
    const int n = epoll_wait(epoll_fd_, events, kMaxEventsPerWait, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Die(absl::StrCat("epoll_wait: ", ErrnoText(errno)));
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      switch (TagId(tag)) {
        case kEventFdId:
          if (!RunPosted()) return;
          break;
        case kTimerFdId:
          OnTimer();
          break;
        default:
          OnWatched(tag, events[i].events);
      }
    }
  }
}

void Reactor::Post(absl::AnyInvocable<void()> fn) {
  bool was_empty;
  {
    absl::MutexLock lock(&mu_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(fn));
  }
  // Only the first function of a batch needs to wake the loop: RunPosted resets the eventfd
  // before it takes the queue, so a function queued after that finds the queue empty and
  // writes again.
  if (was_empty) WakeUp();
}

void Reactor::WakeUp() {
  const uint64_t one = 1;
  // Fails only with EAGAIN when the counter is near 2^64, and then the loop is awake anyway.
  while (write(event_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

bool Reactor::RunPosted() {
  uint64_t count;
  while (read(event_fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
  std::vector<absl::AnyInvocable<void()>> batch;
  bool stop;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(posted_);
    // Everything posted before the stop request is in this batch (same lock).
    stop = stop_requested_;
  }
  for (auto& fn : batch) fn();
  return !stop;
}

void Reactor::OnTimer() {
  uint64_t expirations;
  // EAGAIN: SetTimer re-armed the timer after it expired but before this event was handled
  // (timerfd_settime clears the expiration count), so this expiry is stale.
  if (read(timer_fd_, &expirations, sizeof(expirations)) < 0) return;
  timerfd_deadline_ = kNever;  // it went off; a one-shot timerfd is disarmed now
  if (!timer_cb_) return;      // disarmed by SetTimer after it was set (see there)
  if (Now() < timer_deadline_) {
    // The timerfd was set for an earlier deadline that was since moved later (SetTimer
    // leaves the timerfd alone then): set it again for the real one.
    ArmTimerFd(timer_deadline_);
    return;
  }
  std::function<void()> cb = std::move(timer_cb_);
  timer_cb_ = nullptr;
  timer_deadline_ = kNever;
  cb();  // may call SetTimer again
}

void Reactor::OnWatched(uint64_t tag, uint32_t events) {
  auto it = watchers_.find(TagFd(tag));
  // Unwatched, or unwatched and watched again, by a callback earlier in this batch.
  if (it == watchers_.end() || it->second.id != TagId(tag)) return;
  // Hold a reference: the callback may Unwatch itself.
  std::shared_ptr<std::function<void(uint32_t)>> cb = it->second.cb;
  (*cb)(events);
}

Instant Reactor::Now() const {
  return Instant(std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - epoch_));
}

absl::Time Reactor::WallTime(Instant t) const {
  return wall_epoch_ + absl::FromChrono(t.time_since_epoch());
}

void Reactor::CheckInLoop(const char* what) const {
  if (!InLoopThread()) {
    Die(absl::StrCat(what, " called off the thread of reactor ", name_,
                     "; use Post or Call to get there"));
  }
}

void Reactor::Watch(int fd, uint32_t epoll_events, std::function<void(uint32_t events)> cb) {
  CheckInLoop("Watch");
  uint32_t id = next_watch_id_++;
  if (next_watch_id_ < kFirstWatchId) next_watch_id_ = kFirstWatchId;  // wrapped around
  epoll_event ev{};
  ev.events = epoll_events;
  ev.data.u64 = Tag(id, fd);
  auto it = watchers_.find(fd);
  const int op = it == watchers_.end() ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(epoll_fd_, op, fd, &ev) != 0) {
    Die(absl::StrCat("Watch(fd ", fd, "): epoll_ctl(", op == EPOLL_CTL_ADD ? "ADD" : "MOD",
                     "): ", ErrnoText(errno)));
  }
  watchers_[fd] = Watcher{id, std::make_shared<std::function<void(uint32_t)>>(std::move(cb))};
}

void Reactor::Unwatch(int fd) {
  CheckInLoop("Unwatch");
  auto it = watchers_.find(fd);
  if (it == watchers_.end()) return;
  watchers_.erase(it);
  // EBADF/ENOENT: the fd was closed already, which removed it from the epoll set.
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

// The timerfd only has to go off at or before the deadline, since OnTimer re-arms it when it
// went off early and ignores it when disarmed. So it is set only when the deadline moves
// earlier than what it holds. A sandbox re-arms after every turn of its datapath, mostly to
// a later deadline (an RTO restarted by each ACK) or to none; that now costs no system call.
void Reactor::SetTimer(Instant deadline, std::function<void()> cb) {
  CheckInLoop("SetTimer");
  if (deadline == kNever || !cb) {
    timer_cb_ = nullptr;
    timer_deadline_ = kNever;
    return;  // a timerfd still set goes off once, finds no callback, and is ignored
  }
  timer_cb_ = std::move(cb);
  timer_deadline_ = deadline;
  if (deadline < timerfd_deadline_) ArmTimerFd(deadline);
}

void Reactor::ArmTimerFd(Instant deadline) {
  // The reactor's epoch on the CLOCK_MONOTONIC scale plus the deadline, saturating; a zero
  // it_value would disarm, so anything at or before the clock's zero becomes 1 ns (long
  // past: fires at once).
  itimerspec spec{};
  const int64_t epoch_ns = std::chrono::duration_cast<Duration>(epoch_.time_since_epoch()).count();
  const int64_t offset_ns = deadline.time_since_epoch().count();
  int64_t abs_ns;
  if (__builtin_add_overflow(epoch_ns, offset_ns, &abs_ns)) {
    abs_ns = offset_ns > 0 ? std::numeric_limits<int64_t>::max() : 1;
  }
  if (abs_ns < 1) abs_ns = 1;
  spec.it_value.tv_sec = static_cast<time_t>(abs_ns / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(abs_ns % 1'000'000'000);
  if (timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    Die(absl::StrCat("timerfd_settime: ", ErrnoText(errno)));
  }
  timerfd_deadline_ = deadline;
}

}  // namespace tcplab::sandbox
