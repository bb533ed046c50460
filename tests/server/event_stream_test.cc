// WatchEvents over real channels: content of the events, filters, resuming without loss or
// duplicates, gaps, the end of a stream, and 100 subscribers of which 10 never read.
#include <fstream>

#include "tests/server/server_testing.h"

namespace tcplab::server::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class EventStreamTest : public ServerTest {
 protected:
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> Watch(grpc::ClientContext* ctx,
                                                                     const v1::WatchEventsRequest& req) {
    return sandboxes_->WatchEvents(ctx, req);
  }
};

std::vector<uint64_t> Sequences(const std::vector<v1::Event>& evs) {
  std::vector<uint64_t> out;
  for (const v1::Event& e : evs) out.push_back(e.sequence());
  return out;
}

TEST_F(EventStreamTest, HandshakeSegmentsCarryEveryFieldAndRelativeNumbers) {
  ASSERT_THAT(Create("lab"), IsOk());
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  std::vector<v1::Event> evs = Events("lab", 0, client);
  // The client's own view: SYN out, SYN-ACK in, ACK out.
  std::vector<const v1::SegmentEvent*> segs;
  for (const v1::Event& e : evs) {
    if (e.has_segment()) segs.push_back(&e.segment());
  }
  ASSERT_GE(segs.size(), 3u);
  const v1::SegmentEvent& syn = *segs[0];
  const v1::SegmentEvent& synack = *segs[1];
  const v1::SegmentEvent& ack = *segs[2];
  EXPECT_EQ(syn.direction(), v1::SegmentEvent::DIRECTION_OUT);
  EXPECT_EQ(syn.flags_text(), "S");
  EXPECT_EQ(syn.flags(), 0x02u);
  EXPECT_EQ(syn.verdict(), v1::VERDICT_SENT);
  EXPECT_EQ(syn.relative_seq(), 0u);
  EXPECT_EQ(syn.src().ip(), "198.18.0.2");
  EXPECT_EQ(syn.dst().port(), 80u);
  EXPECT_EQ(syn.options().mss(), 1460u);
  EXPECT_TRUE(syn.options().sack_permitted());
  EXPECT_TRUE(syn.options().has_window_scale());
  EXPECT_TRUE(syn.options().has_timestamps());
  EXPECT_TRUE(syn.checksum_ok());
  EXPECT_EQ(synack.direction(), v1::SegmentEvent::DIRECTION_IN);
  EXPECT_EQ(synack.flags_text(), "S.");
  EXPECT_EQ(synack.verdict(), v1::VERDICT_ACCEPTED);
  EXPECT_EQ(synack.ack(), syn.seq() + 1);  // ack = x + 1
  EXPECT_EQ(synack.relative_seq(), 0u);
  EXPECT_EQ(synack.relative_ack(), 1u);
  EXPECT_EQ(ack.flags_text(), ".");
  EXPECT_EQ(ack.seq(), syn.seq() + 1);      // seq = x + 1
  EXPECT_EQ(ack.ack(), synack.seq() + 1);   // ack = y + 1
  EXPECT_EQ(ack.relative_seq(), 1u);
  EXPECT_EQ(ack.relative_ack(), 1u);
  EXPECT_THAT(ack.summary(), HasSubstr("[.] seq 1 ack 1"));

  // State changes of the client, in order, with causes.
  std::vector<std::pair<v1::TcpState, v1::TcpState>> states;
  for (const v1::Event& e : evs) {
    if (e.has_state()) {
      states.emplace_back(e.state().from(), e.state().to());
      EXPECT_FALSE(e.state().cause().empty());
      EXPECT_EQ(e.stack(), v1::STACK_ENGINE);
    }
  }
  EXPECT_THAT(states, ElementsAre(std::pair(v1::TCP_STATE_CLOSED, v1::TCP_STATE_SYN_SENT),
                                  std::pair(v1::TCP_STATE_SYN_SENT, v1::TCP_STATE_ESTABLISHED)));
  // Sequence numbers rise; time since start does not go back; wall time is set.
  for (size_t i = 1; i < evs.size(); ++i) {
    EXPECT_LT(evs[i - 1].sequence(), evs[i].sequence());
    const auto& a = evs[i - 1].since_start();
    const auto& b = evs[i].since_start();
    EXPECT_LE(a.seconds() * 1'000'000'000 + a.nanos(), b.seconds() * 1'000'000'000 + b.nanos());
    EXPECT_GT(evs[i].wall_time().seconds(), 1'700'000'000);
  }
}

TEST_F(EventStreamTest, FiltersByConnectionAndKind) {
  ASSERT_THAT(Create("lab"), IsOk());
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  grpc::ClientContext ctx;
  v1::WatchEventsRequest req;
  req.set_sandbox("lab");
  req.set_no_follow(true);
  req.add_kinds(v1::EVENT_KIND_STATE);
  req.add_kinds(v1::EVENT_KIND_APP);
  auto r = Watch(&ctx, req);
  v1::WatchEventsResponse resp;
  int states = 0, apps = 0;
  while (r->Read(&resp)) {
    for (const v1::Event& e : resp.events()) {
      EXPECT_TRUE(e.has_state() || e.has_app()) << e.DebugString();
      states += e.has_state();
      apps += e.has_app();
    }
  }
  ASSERT_THAT(r->Finish(), IsOk());
  EXPECT_GE(states, 5);  // LISTEN, SYN-SENT, ESTABLISHED, SYN-RECEIVED, ESTABLISHED
  EXPECT_GE(apps, 2);    // listen, connect

  for (const v1::Event& e : Events("lab", 0, server)) EXPECT_EQ(e.connection_id(), server);
}

TEST_F(EventStreamTest, BadRequestsEndTheStreamWithAClearError) {
  ASSERT_THAT(Create("lab"), IsOk());
  v1::WatchEventsResponse resp;
  {
    grpc::ClientContext ctx;
    v1::WatchEventsRequest req;
    req.set_sandbox("nope");
    auto r = Watch(&ctx, req);
    EXPECT_FALSE(r->Read(&resp));
    EXPECT_THAT(r->Finish(), HasStatus(grpc::NOT_FOUND, "sandbox nope not found"));
  }
  {
    grpc::ClientContext ctx;
    v1::WatchEventsRequest req;
    req.set_sandbox("lab");
    req.set_from_sequence(1000);
    auto r = Watch(&ctx, req);
    EXPECT_FALSE(r->Read(&resp));
    EXPECT_THAT(r->Finish(), HasStatus(grpc::OUT_OF_RANGE, "from_sequence 1000 is beyond the next event, 1"));
  }
  {
    grpc::ClientContext ctx;
    v1::WatchEventsRequest req;
    req.set_sandbox("lab");
    req.add_kinds(static_cast<v1::EventKind>(17));
    auto r = Watch(&ctx, req);
    EXPECT_FALSE(r->Read(&resp));
    EXPECT_THAT(r->Finish(), HasStatus(grpc::INVALID_ARGUMENT, "kinds: unknown event kind 17"));
  }
}

TEST_F(EventStreamTest, ResumingGivesExactlyWhatWasMissed) {
  ASSERT_THAT(Create("lab"), IsOk());
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  // First subscription: read a few responses, then go away.
  uint64_t last_seen = 0;
  {
    grpc::ClientContext ctx;
    v1::WatchEventsRequest req;
    req.set_sandbox("lab");
    auto r = Watch(&ctx, req);
    v1::WatchEventsResponse resp;
    ASSERT_TRUE(r->Read(&resp));
    last_seen = resp.events(resp.events_size() - 1).sequence();
    ctx.TryCancel();
    while (r->Read(&resp)) {
    }
    r->Finish();
  }
  // Meanwhile more happens.
  EXPECT_EQ(Transfer("lab", client, server, std::string(200'000, 'r')).size(), 200'000u);
  // Resuming from last_seen + 1 gives the rest: together, every event once, in order.
  std::vector<v1::Event> all = Events("lab", 1);
  std::vector<v1::Event> rest = Events("lab", last_seen + 1);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.front().sequence(), last_seen + 1);
  std::vector<uint64_t> want;
  for (uint64_t s = last_seen + 1; s <= all.back().sequence(); ++s) want.push_back(s);
  EXPECT_EQ(Sequences(rest), want);
  for (const v1::Event& e : rest) EXPECT_FALSE(e.has_gap());
}

TEST_F(EventStreamTest, FallingBehindTheRetainedWindowGivesAGap) {
  v1::SandboxOptions o;
  o.set_event_capacity(16);
  ASSERT_THAT(Create("small", nullptr, o), IsOk());
  auto [client, server] = EnginePair("small", 80);
  ASSERT_NE(server, 0u);
  EXPECT_EQ(Transfer("small", client, server, std::string(100'000, 'g')).size(), 100'000u);
  std::vector<v1::Event> evs = Events("small", 1);
  ASSERT_EQ(evs.size(), 17u);  // the gap, then the 16 retained
  ASSERT_TRUE(evs[0].has_gap());
  const uint64_t oldest = evs[1].sequence();
  EXPECT_EQ(evs[0].gap().missed(), oldest - 1);
  EXPECT_EQ(evs[0].gap().next_sequence(), oldest);
  for (size_t i = 2; i < evs.size(); ++i) EXPECT_EQ(evs[i].sequence(), evs[i - 1].sequence() + 1);
}

TEST_F(EventStreamTest, LiveEventsArriveAndDeletionEndsTheStream) {
  ASSERT_THAT(Create("live"), IsOk());
  grpc::ClientContext ctx;
  v1::WatchEventsRequest req;
  req.set_sandbox("live");
  auto r = Watch(&ctx, req);
  v1::Connection l;
  ASSERT_THAT(Listen("live", v1::STACK_ENGINE, 80, &l), IsOk());
  v1::WatchEventsResponse resp;
  std::vector<v1::Event> got;
  while (got.size() < 2 && r->Read(&resp)) got.insert(got.end(), resp.events().begin(), resp.events().end());
  ASSERT_GE(got.size(), 2u);
  EXPECT_TRUE(got[0].has_state());  // CLOSED -> LISTEN
  EXPECT_EQ(got[0].state().to(), v1::TCP_STATE_LISTEN);
  EXPECT_TRUE(got[1].has_app());
  EXPECT_THAT(got[1].app().call(), HasSubstr("listen 198.18.0.2:80"));
  EXPECT_EQ(got[1].app().result(), "OK");

  grpc::ClientContext dctx;
  v1::DeleteSandboxRequest del;
  del.set_name("live");
  v1::DeleteSandboxResponse dr;
  ASSERT_THAT(sandboxes_->DeleteSandbox(&dctx, del, &dr), IsOk());
  while (r->Read(&resp)) {
  }
  EXPECT_THAT(r->Finish(), HasStatus(grpc::NOT_FOUND, "sandbox live was deleted"));
}

// A burst of more than one response's worth of events, then silence: a live watcher that
// starts reading only afterwards (so its writes were outstanding when the burst ended) gets
// all of it, the tail that is less than a full batch too, without waiting for more events.
TEST_F(EventStreamTest, LiveWatcherGetsTheWholeBurst) {
  ASSERT_THAT(Create("burst"), IsOk());
  grpc::ClientContext ctx;
  // Only if the watcher is stuck does the deadline end the stream: the test then fails below.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchEventsRequest req;
  req.set_sandbox("burst");
  auto r = Watch(&ctx, req);
  auto [client, server] = EnginePair("burst", 80);
  ASSERT_NE(server, 0u);
  EXPECT_EQ(Transfer("burst", client, server, std::string(3'000'000, 'b')).size(), 3'000'000u);
  // Let timers settle (delayed ACKs), then note the last event.
  absl::SleepFor(absl::Milliseconds(300));
  const uint64_t last = Events("burst", 0).back().sequence();
  ASSERT_GT(last, 2 * EventHub::kMaxBatch);
  uint64_t seen = 0;
  v1::WatchEventsResponse resp;
  while (seen < last && r->Read(&resp)) {
    for (const v1::Event& e : resp.events()) {
      EXPECT_FALSE(e.has_gap());
      seen = std::max(seen, e.sequence());
    }
  }
  EXPECT_GE(seen, last);
  ctx.TryCancel();
  r->Finish();
}

// Subscribers that watch every event send batches ending at multiples of kMaxBatch, so that
// subscribers at the same stretch of the log send the same (shared) batches; every event still
// comes once, in order, and a filtered subscriber still gets full batches of what it wants.
TEST_F(EventStreamTest, BatchesOfEveryEventEndAtMultiplesOfTheBatchSize) {
  ASSERT_THAT(Create("blocks"), IsOk());
  auto [client, server] = EnginePair("blocks", 80);
  ASSERT_NE(server, 0u);
  EXPECT_EQ(Transfer("blocks", client, server, std::string(2'000'000, 'k')).size(), 2'000'000u);
  const uint64_t last = Events("blocks", 0).back().sequence();
  ASSERT_GT(last, 3 * EventHub::kMaxBatch);
  auto read_all = [&](uint64_t from, int kind) {
    grpc::ClientContext ctx;
    v1::WatchEventsRequest req;
    req.set_sandbox("blocks");
    req.set_from_sequence(from);
    req.set_no_follow(true);
    if (kind) req.add_kinds(static_cast<v1::EventKind>(kind));
    auto r = Watch(&ctx, req);
    std::vector<std::string> responses;
    v1::WatchEventsResponse resp;
    while (r->Read(&resp)) responses.push_back(resp.SerializeAsString());
    EXPECT_TRUE(r->Finish().ok());
    return responses;
  };
  const std::vector<std::string> a = read_all(5, 0), b = read_all(5, 0);
  EXPECT_EQ(a, b);  // the same responses, byte for byte
  uint64_t next = 5;
  for (size_t i = 0; i < a.size(); ++i) {
    v1::WatchEventsResponse resp;
    ASSERT_TRUE(resp.ParseFromString(a[i]));
    ASSERT_GT(resp.events_size(), 0);
    for (const v1::Event& e : resp.events()) ASSERT_EQ(e.sequence(), next++);
    if (next <= last) {
      EXPECT_EQ((next - 1) % EventHub::kMaxBatch, 0u) << "response " << i << " ended unaligned";
    }
  }
  EXPECT_GE(next, last + 1);
  // Segments only: a filter fills its batches with what it wants, wherever they end.
  const std::vector<std::string> segs = read_all(5, v1::EVENT_KIND_SEGMENT);
  ASSERT_GT(segs.size(), 1u);
  v1::WatchEventsResponse first;
  ASSERT_TRUE(first.ParseFromString(segs[0]));
  EXPECT_EQ(first.events_size(), static_cast<int>(EventHub::kMaxBatch));
  for (const v1::Event& e : first.events()) EXPECT_TRUE(e.has_segment());
}

int64_t RssKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// One subscriber on its own channel. Reads (after `start_reading`) until it has seen the
// event with sequence `until`, checking that sequence numbers only rise and counting gaps.
struct Subscriber {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::SandboxService::Stub> stub;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader;
  uint64_t received = 0, missed = 0, gaps = 0, last = 0, out_of_order = 0;

  void ReadUntil(uint64_t until) {
    v1::WatchEventsResponse resp;
    while (last < until && reader->Read(&resp)) {
      for (const v1::Event& e : resp.events()) {
        if (e.has_gap()) {
          ++gaps;
          missed += e.gap().missed();
          if (e.gap().next_sequence() != last + e.gap().missed() + 1) ++out_of_order;
          last = e.gap().next_sequence() - 1;
          continue;
        }
        if (e.sequence() != last + 1) ++out_of_order;
        last = e.sequence();
        ++received;
      }
    }
  }
};

TEST_F(EventStreamTest, HundredSubscribersTenNeverReadTheRestUnaffected) {
  v1::SandboxOptions o;
  o.set_event_capacity(8192);
  ASSERT_THAT(Create("fan", nullptr, o), IsOk());
  constexpr int kSubs = 100, kStalled = 10;
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < kSubs; ++i) {
    auto s = std::make_unique<Subscriber>();
    s->channel = NewChannel(server_->addresses()[0]);
    s->stub = v1::SandboxService::NewStub(s->channel);
    v1::WatchEventsRequest req;
    req.set_sandbox("fan");
    s->reader = s->stub->WatchEvents(&s->ctx, req);
    subs.push_back(std::move(s));
  }
  const int64_t rss_before = RssKiB();

  // The fast ones read on their own threads while the transfer runs.
  std::atomic<uint64_t> until{UINT64_MAX};
  std::vector<std::thread> readers;
  for (int i = kStalled; i < kSubs; ++i) {
    readers.emplace_back([&, s = subs[i].get()] {
      v1::WatchEventsResponse resp;
      while (s->last < until.load() && s->reader->Read(&resp)) {
        for (const v1::Event& e : resp.events()) {
          if (e.has_gap()) {
            ++s->gaps;
            s->missed += e.gap().missed();
            s->last = e.gap().next_sequence() - 1;
            continue;
          }
          if (e.sequence() != s->last + 1) ++s->out_of_order;
          s->last = e.sequence();
          ++s->received;
        }
      }
    });
  }

  // A paced bulk transfer: ~50k events, far more than the 8192 retained, at a rate a reader
  // on this machine keeps up with.
  auto [client, server] = EnginePair("fan", 80);
  ASSERT_NE(server, 0u);
  std::string chunk(64 << 10, 'f');
  std::thread sink([&, server = server] {
    (void)ReceiveAll("fan", server, 200 * chunk.size());
  });
  int64_t rss_mid = 0;
  for (int i = 0; i < 200; ++i) {
    SendAll("fan", client, chunk);
    absl::SleepFor(absl::Milliseconds(5));
    if (i == 99) rss_mid = RssKiB();
  }
  sink.join();
  const uint64_t last = Events("fan", 0).back().sequence();
  ASSERT_GT(last, 3 * 8192u) << "the transfer should make many more events than are retained";
  const int64_t rss_after = RssKiB();

  until = last;
  // Wake readers that wait for one more event.
  v1::Connection extra;
  ASSERT_THAT(Listen("fan", v1::STACK_ENGINE, 81, &extra), IsOk());
  for (auto& t : readers) t.join();
  for (int i = kStalled; i < kSubs; ++i) {
    Subscriber& s = *subs[i];
    EXPECT_EQ(s.out_of_order, 0u) << "subscriber " << i;
    EXPECT_GE(s.last, last) << "subscriber " << i;
    // Every event was either received or reported missed, exactly once.
    EXPECT_EQ(s.received + s.missed, s.last) << "subscriber " << i;
  }

  // The stalled ones now read: they learn of a gap, and nothing is counted twice.
  for (int i = 0; i < kStalled; ++i) {
    Subscriber& s = *subs[i];
    s.ReadUntil(last);
    EXPECT_GE(s.gaps, 1u) << "stalled subscriber " << i;
    EXPECT_EQ(s.out_of_order, 0u) << "stalled subscriber " << i;
    EXPECT_EQ(s.received + s.missed, s.last) << "stalled subscriber " << i;
  }
  // Ten stalled streams hold at most their flow-control windows and one batch each; the
  // events themselves stay in the sandbox's bounded ring. RSS is the whole process's, the
  // 100 client channels included (their HTTP/2 windows grow with BDP probing), so only a
  // coarse bound is checked: a copy of every event per subscriber (100 x ~50k events) would
  // blow it; a queue only for the ten stalled ones might not. How
  // much grew in the second half varied 16-88 MiB between runs: too noisy to assert; a
  // server-only figure needs the subscribers in another process (issue note).
  RecordProperty("rss_growth_kib", static_cast<int>(rss_after - rss_before));
  RecordProperty("rss_growth_second_half_kib", static_cast<int>(rss_after - rss_mid));
#ifndef __SANITIZE_ADDRESS__  // AddressSanitizer's quarantine keeps freed memory resident
  EXPECT_LT(rss_after - rss_before, 320 * 1024) << "KiB grown while 10 subscribers stalled";
#endif
  for (auto& s : subs) s->ctx.TryCancel();
  for (auto& s : subs) s->reader->Finish();
}

}  // namespace
}  // namespace tcplab::server::testing
