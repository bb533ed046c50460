#include "server/event_stream.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/convert.h"
#include "server/event_codec.h"
#include "server/status.h"

namespace tcplab::server {

namespace {

// Events converted per acquisition of the cache's lock.
constexpr size_t kConvertRun = 128;

std::atomic<uint64_t> total_responses{0}, total_events{0}, total_bytes{0};

// Never destroyed: detached hub threads may still unlock it while the process exits.
absl::Mutex& threads_mu = *new absl::Mutex;
int threads_running = 0;  // guarded by threads_mu

}  // namespace

class EventSubscriber : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  EventSubscriber(std::shared_ptr<EventHub> hub, const v1::WatchEventsRequest& req)
      : hub_(std::move(hub)), next_(req.from_sequence()), conn_(req.connection_id()), follow_(!req.no_follow()) {
    for (int k : req.kinds()) {
      if (k > 0 && k < static_cast<int>(kinds_.size())) kinds_[k] = true;
    }
    any_kind_ = req.kinds_size() == 0;
    if (conn_ != 0 || !any_kind_) filter_ = [this](uint64_t c, int k) { return Wanted(c, k); };
    if (!follow_) stop_after_ = hub_->log().last_seq();
  }

  // Called by the hub's thread (pinned) and by the reactions below. `eager`: write whatever
  // there is; otherwise (after a write) only a full batch, and leave smaller ones to the
  // hub's next kick, so a stream that keeps up sends a few large responses rather than
  // many small ones.
  void Kick(bool eager = true) { Perform(Next(eager)); }

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
    Kick(/*eager=*/false);
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

  bool Wanted(uint64_t conn, int kind) const {
    if (conn_ != 0 && conn != conn_) return false;
    return any_kind_ || kinds_[kind];
  }

  // Decides, under mu_, what to do next; fills resp_ for a write.
  Action Next(bool eager) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    if (writing_ || finishing_) return Action::kNone;
    if (broken_) {
      finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled");
      finishing_ = true;
      return Action::kFinish;
    }
    const sandbox::EventLog& log = hub_->log();
    if (!eager && follow_ && !log.closed() && log.last_seq() + 1 < next_ + EventHub::kMaxBatch) {
      // Less than a full batch: the hub's next kick sends it, within 10 ms even if the log
      // does not grow again.
      if (log.last_seq() >= next_) hub_->deferred_.store(true, std::memory_order_release);
      return Action::kNone;
    }
    const bool done_reading = !follow_ && (stop_after_ == 0 || next_ > stop_after_);
    if (!done_reading) {
      EventHub::Batch b = hub_->Collect(next_, follow_ ? 0 : stop_after_, filter_ ? &filter_ : nullptr);
      next_ = b.next;
      if (b.bytes.size() > 0) {
        total_responses.fetch_add(1, std::memory_order_relaxed);
        total_events.fetch_add(b.events, std::memory_order_relaxed);
        total_bytes.fetch_add(b.bytes.size(), std::memory_order_relaxed);
        resp_ = grpc::ByteBuffer(&b.bytes, 1);  // shares the slice: no copy
        writing_ = true;
        return Action::kWrite;
      }
    }
    // Caught up. Finish if nothing more will come: a no-follow read is complete, or the
    // sandbox is gone (its log is closed and we have read all of it).
    if (!follow_ && (stop_after_ == 0 || next_ > stop_after_)) {
      finish_status_ = grpc::Status::OK;
      finishing_ = true;
      return Action::kFinish;
    }
    if (hub_->log().closed() && next_ > hub_->log().last_seq()) {
      finish_status_ = ToGrpc(hub_->close_status());
      finishing_ = true;
      return Action::kFinish;
    }
    return Action::kNone;  // idle until the hub kicks
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
  EventHub::Filter filter_;  // empty: every event
  grpc::ByteBuffer resp_;  // the one response in flight
  grpc::Status finish_status_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> pins_{1};
};

EventHub::EventHub(std::shared_ptr<sandbox::EventLog> log) : log_(std::move(log)) {}

EventHub::~EventHub() = default;

std::shared_ptr<EventHub> EventHub::Start(std::shared_ptr<sandbox::EventLog> log) {
  std::shared_ptr<EventHub> hub(new EventHub(std::move(log)));
  {
    absl::MutexLock l(&threads_mu);
    ++threads_running;
  }
  std::thread([hub]() mutable { Run(std::move(hub)); }).detach();
  return hub;
}

EventHub::Totals EventHub::totals() {
  return {total_responses.load(std::memory_order_relaxed), total_events.load(std::memory_order_relaxed),
          total_bytes.load(std::memory_order_relaxed)};
}

bool EventHub::WaitForAllThreads(absl::Duration timeout) {
  absl::MutexLock l(&threads_mu);
  return threads_mu.AwaitWithTimeout(absl::Condition(
                                         +[](int* n) { return *n == 0; }, &threads_running),
                                     timeout);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* EventHub::Watch(std::shared_ptr<EventHub> hub,
                                                            const v1::WatchEventsRequest& req) {
  EventHub* h = hub.get();
  auto* s = new EventSubscriber(std::move(hub), req);
  h->Add(s);
  s->Kick();
  return s;
}

void EventHub::Fill(const sandbox::Event& e) {
  Slot& s = cache_[e.seq % cache_.size()];
  s.seq = e.seq;
  s.conn = std::visit([](const auto& body) { return body.conn; }, e.body);
  s.kind = KindOf(e);
  s.bytes.clear();
  encoder_.AppendEntry(e, &s.bytes);
}

namespace {
// A Slice that owns `bytes` (no copy).
grpc::Slice SliceOf(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  return grpc::Slice(owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
}
}  // namespace

EventHub::Batch EventHub::Collect(uint64_t from, uint64_t last, const Filter* wanted) {
  const uint64_t newest = log_->last_seq();
  if (last == 0 || last > newest) last = newest;
  if (wanted != nullptr || from == 0) return Build(from, last, wanted);
  // Every event, from a known point: the batch ends at a multiple of kMaxBatch, so that
  // subscribers reading the same stretch of the log send the same blocks, each built once.
  const uint64_t block_end = ((from - 1) / kMaxBatch + 1) * kMaxBatch;
  last = std::min(last, block_end);
  if ((from - 1) % kMaxBatch != 0 || last != block_end) return Build(from, last, nullptr);
  Block& slot = blocks_[(from - 1) / kMaxBatch % blocks_.size()];
  {
    absl::MutexLock l(&blocks_mu_);
    if (slot.first == from) return Batch{slot.bytes, kMaxBatch, 0, block_end + 1};
  }
  Batch b = Build(from, last, nullptr);
  if (b.missed == 0 && b.events == kMaxBatch) {
    absl::MutexLock l(&blocks_mu_);
    slot = Block{from, b.bytes};
  }
  return b;
}

EventHub::Batch EventHub::Build(uint64_t from, uint64_t last, const Filter* wanted) {
  size_t cap;
  {
    absl::MutexLock l(&cache_mu_);
    if (cache_.size() != log_->capacity()) cache_.resize(log_->capacity());
    cap = cache_.size();
  }
  Batch b;
  uint64_t s = std::max<uint64_t>(from, 1);
  std::string events;
  events.reserve(std::min<uint64_t>(last >= s ? last - s + 1 : 0, kMaxBatch) * 256);
  size_t taken = 0;
  uint64_t after_gap = 0;
  while (s <= last && taken < kMaxBatch) {
    // Copy what is converted under a reader lock: subscribers copy side by side, and only
    // the one that finds an event not converted yet takes the lock alone to convert it.
    bool miss = false;
    {
      absl::ReaderMutexLock l(&cache_mu_);
      for (; s <= last && taken < kMaxBatch; ++s) {
        const Slot& slot = cache_[s % cap];
        if (slot.seq != s) {
          miss = true;
          break;
        }
        if (wanted == nullptr || (*wanted)(slot.conn, slot.kind)) {
          events += slot.bytes;
          ++taken;
        }
      }
    }
    if (!miss) break;
    absl::MutexLock l(&cache_mu_);
    if (cache_[s % cap].seq == s) continue;  // another subscriber converted it meanwhile
    // Not converted yet (or overwritten in the cache): convert a run from the log. What the
    // log no longer has is a gap, reported once, before the events that follow it; from 0
    // means "from the oldest retained" and is no gap.
    // In runs of kConvertRun, so that other subscribers wait for this lock only briefly.
    // (Converting in place holds no lock of the log: the reactor goes on appending.)
    const sandbox::EventLog::Position r =
        log_->Visit(s, kConvertRun, [this](const sandbox::Event& e) ABSL_NO_THREAD_SAFETY_ANALYSIS { Fill(e); });
    if (r.missed > 0) {
      if (taken > 0) break;  // end this batch; the next one starts with the gap
      if (from != 0) b.missed += r.missed;
      s += r.missed;
      after_gap = s;
    }
    if (r.next <= s) break;  // nothing more in the log
  }
  std::string out;
  if (b.missed > 0) {
    v1::Event gap;
    gap.mutable_gap()->set_missed(b.missed);
    gap.mutable_gap()->set_next_sequence(after_gap);
    EventEncoder::AppendEntry(gap, &out);
    ++b.events;
    out += events;
  } else {
    out = std::move(events);
  }
  b.bytes = SliceOf(std::move(out));
  b.events += taken;
  b.next = s;
  return b;
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

absl::Status EventHub::close_status() const {
  absl::MutexLock l(&mu_);
  return close_status_;
}

bool EventHub::Finished() const {
  absl::MutexLock l(&mu_);
  return closed_ && subs_.empty();
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
    // Wakes when the log grows or is closed, or in 10 ms when a subscriber left a partial
    // batch for the next kick; otherwise the timeout only bounds how long an exit waits.
    const bool deferred = self->deferred_.load(std::memory_order_acquire);
    sandbox::EventLog::ReadResult r =
        log.WaitAndRead(seen + 1, 0, absl::Now() + absl::Milliseconds(deferred ? 10 : 50));
    bool grew = r.next - 1 > seen;
    seen = r.next - 1;
    const bool closed = log.closed();
    if (grew || closed || self->deferred_.exchange(false, std::memory_order_acq_rel)) self->KickAll();
    if (closed) {
      absl::SleepFor(absl::Milliseconds(20));  // the remaining streams finish on their own
    } else if (grew) {
      // Let a busy sandbox's events accumulate into batches: at most 100 kicks a second, so
      // a live event reaches a watcher within about 10 ms.
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  self.reset();  // may destroy the hub (and the log), here on this thread: nothing to join
  absl::MutexLock l(&threads_mu);
  --threads_running;
}

}  // namespace tcplab::server
