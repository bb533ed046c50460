#include "server/event_stream.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/convert.h"

namespace tcplab::server {

class EventSubscriber : public grpc::ServerWriteReactor<v1::WatchEventsResponse> {
 public:
  EventSubscriber(std::shared_ptr<EventHub> hub, const v1::WatchEventsRequest& req)
      : hub_(std::move(hub)), next_(req.from_sequence()),
        conn_(req.connection_id()), follow_(!req.no_follow()) {
    for (int k : req.kinds()) {
      if (k > 0 && k < static_cast<int>(kinds_.size())) kinds_[k] = true;
    }
    any_kind_ = req.kinds_size() == 0;
    if (!follow_) stop_after_ = hub_->log_->last_seq();
  }

  // Called by the hub's thread (pinned) and by the reactions below.
  void Kick() {
    Action a = Next();
    Perform(a);
  }

  // A reference count: the stream's own (dropped in OnDone) plus one per KickAll in progress.
  // Taken only under the hub's lock while the subscriber is still listed, so it never rises
  // from zero.
  void Pin() { pins_.fetch_add(1, std::memory_order_relaxed); }
  void Unpin() {
    if (pins_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock l(&mu_);
      writing_ = false;
      if (!ok) broken_ = true;  // the client went away or the call was cancelled
    }
    Kick();
  }

  void OnCancel() override {
    {
      absl::MutexLock l(&mu_);
      broken_ = true;
    }
    Kick();
  }

  void OnDone() override {
    hub_->Remove(this);
    Unpin();  // the stream's own
  }

 private:
  enum class Action { kNone, kWrite, kFinish };

  bool Wanted(const sandbox::Event& e) const {
    if (conn_ != 0 && ConnOf(e) != conn_) return false;
    return any_kind_ || kinds_[KindOf(e)];
  }
  static tcp::ConnId ConnOf(const sandbox::Event& e) {
    return std::visit([](const auto& b) { return b.conn; }, e.body);
  }

  // Decides, under mu_, what to do next; fills resp_ for a write.
  Action Next() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    if (writing_ || finishing_) return Action::kNone;
    if (broken_) {
      finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled");
      finishing_ = true;
      return Action::kFinish;
    }
    resp_.Clear();
    sandbox::EventLog& log = *hub_->log_;
    while (resp_.events_size() == 0) {
      size_t room = EventHub::kMaxBatch;
      if (!follow_) {
        if (next_ > stop_after_ || stop_after_ == 0) break;
        room = std::min<uint64_t>(room, stop_after_ - std::max<uint64_t>(next_, 1) + 1);
      }
      sandbox::EventLog::ReadResult r = log.Read(next_, room);
      if (r.missed > 0) {
        v1::Event* gap = resp_.add_events();
        gap->mutable_gap()->set_missed(r.missed);
        gap->mutable_gap()->set_next_sequence(r.events.empty() ? r.next : r.events.front().seq);
      }
      for (const sandbox::Event& e : r.events) {
        if (Wanted(e)) ToProto(e, resp_.add_events());
      }
      next_ = r.next;
      if (r.events.empty()) break;  // caught up
    }
    if (resp_.events_size() > 0) {
      writing_ = true;
      return Action::kWrite;
    }
    // Caught up. Finish if nothing more will come: a no-follow read is complete, or the
    // sandbox is gone (its log is closed and we have read all of it).
    if (!follow_ && (next_ > stop_after_ || stop_after_ == 0)) {
      finish_status_ = grpc::Status::OK;
      finishing_ = true;
      return Action::kFinish;
    }
    if (log.closed()) {
      finish_status_ = ToGrpcStatus(hub_->close_status());
      finishing_ = true;
      return Action::kFinish;
    }
    return Action::kNone;  // idle until the hub kicks
  }

  static grpc::Status ToGrpcStatus(const absl::Status& s) {
    if (s.ok()) return grpc::Status::OK;
    return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
  }

  void Perform(Action a) {
    if (a == Action::kWrite) StartWrite(&resp_);
    if (a == Action::kFinish) Finish(finish_status_);
  }

  std::shared_ptr<EventHub> hub_;
  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_);
  const tcp::ConnId conn_;
  const bool follow_;
  uint64_t stop_after_ = 0;  // no-follow: the last event to send
  std::array<bool, 5> kinds_{};
  bool any_kind_ = true;
  v1::WatchEventsResponse resp_ ABSL_GUARDED_BY(mu_);  // the one response in flight
  grpc::Status finish_status_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> pins_{1};
};

namespace {
absl::Mutex threads_mu;
int threads_running ABSL_GUARDED_BY(threads_mu) = 0;
}  // namespace

std::shared_ptr<EventHub> EventHub::Start(std::shared_ptr<sandbox::EventLog> log) {
  std::shared_ptr<EventHub> hub(new EventHub(std::move(log)));
  {
    absl::MutexLock l(&threads_mu);
    ++threads_running;
  }
  std::thread([hub]() mutable { Run(std::move(hub)); }).detach();
  return hub;
}

EventHub::~EventHub() = default;

bool EventHub::WaitForAllThreads(absl::Duration timeout) {
  absl::MutexLock l(&threads_mu);
  return threads_mu.AwaitWithTimeout(absl::Condition(
                                         +[](int* n) { return *n == 0; }, &threads_running),
                                     timeout);
}

grpc::ServerWriteReactor<v1::WatchEventsResponse>* EventHub::Watch(std::shared_ptr<EventHub> hub,
                                                                   const v1::WatchEventsRequest& req) {
  EventHub* h = hub.get();
  auto* s = new EventSubscriber(std::move(hub), req);
  h->Add(s);
  s->Kick();
  return s;
}

void EventHub::Add(EventSubscriber* s) {
  absl::MutexLock l(&mu_);
  subs_.push_back(s);
}

void EventHub::Remove(EventSubscriber* s) {
  absl::MutexLock l(&mu_);
  std::erase(subs_, s);
}

size_t EventHub::subscribers() const {
  absl::MutexLock l(&mu_);
  return subs_.size();
}

void EventHub::Close(absl::Status why) {
  {
    absl::MutexLock l(&mu_);
    if (closed_) return;
    closed_ = true;
    close_status_ = std::move(why);
  }
  log_->Close();  // wakes the hub's thread
}

bool EventHub::Finished() const {
  absl::MutexLock l(&mu_);
  return closed_ && subs_.empty();
}

absl::Status EventHub::close_status() const {
  absl::MutexLock l(&mu_);
  return close_status_;
}

void EventHub::KickAll() {
  std::vector<EventSubscriber*> subs;
  {
    absl::MutexLock l(&mu_);
    subs = subs_;
    for (EventSubscriber* s : subs) s->Pin();
  }
  for (EventSubscriber* s : subs) {
    s->Kick();
    s->Unpin();
  }
}

void EventHub::Run(std::shared_ptr<EventHub> self) {
  sandbox::EventLog& log = *self->log_;
  uint64_t seen = log.last_seq();
  while (!self->Finished()) {
    // Wakes when the log grows or is closed; the timeout only bounds how long an exit waits.
    sandbox::EventLog::ReadResult r = log.WaitAndRead(seen + 1, 0, absl::Now() + absl::Milliseconds(200));
    bool grew = r.next - 1 > seen;
    seen = r.next - 1;
    const bool closed = log.closed();
    if (grew || closed) self->KickAll();
    if (closed) {
      absl::SleepFor(absl::Milliseconds(20));  // the remaining streams finish on their own
    } else if (grew) {
      // Let a busy sandbox's events accumulate into batches (at most ~1000 kicks a second).
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  self.reset();  // may destroy the hub (and the log), here on this thread: nothing to join
  absl::MutexLock l(&threads_mu);
  --threads_running;
}

}  // namespace tcplab::server
