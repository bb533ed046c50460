// EventLog: sequence numbers, the bounded ring, gaps for readers that fell behind. Needs no
// privileges (it lives with the sandbox runtime, hence this directory).
#include "engine/sandbox/event_log.h"

#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tcplab::sandbox {
namespace {

Event App(std::string call) {
  Event e;
  e.body = AppEvent{1, std::move(call), "OK"};
  return e;
}

std::vector<uint64_t> Seqs(const EventLog::ReadResult& r) {
  std::vector<uint64_t> out;
  for (const Event& e : r.events) out.push_back(e.seq);
  return out;
}

TEST(EventLog, NumbersEventsFromOneAndReadsThemInOrder) {
  EventLog log(8);
  for (int i = 0; i < 3; ++i) log.Append(App("e"));
  EventLog::ReadResult r = log.Read(0, 10);
  EXPECT_THAT(Seqs(r), ::testing::ElementsAre(1, 2, 3));
  EXPECT_EQ(r.missed, 0u);
  EXPECT_EQ(r.next, 4u);
  EXPECT_EQ(log.last_seq(), 3u);
}

// Past its capacity the ring keeps the newest events, overwriting the oldest in place, across
// several turns of the circle; a reader asking for what is gone learns how much it missed.
TEST(EventLog, FullRingKeepsTheNewestAndReportsTheGap) {
  EventLog log(3);
  for (int i = 1; i <= 11; ++i) log.Append(App(std::to_string(i)));
  EventLog::ReadResult r = log.Read(1, 10);
  EXPECT_THAT(Seqs(r), ::testing::ElementsAre(9, 10, 11));
  EXPECT_EQ(r.missed, 8u);
  EXPECT_EQ(r.next, 12u);
  EXPECT_EQ(std::get<AppEvent>(r.events[0].body).call, "9");  // the body moved with its seq
  EXPECT_THAT(Seqs(log.Read(10, 1)), ::testing::ElementsAre(10));
  EXPECT_THAT(Seqs(log.Read(12, 10)), ::testing::IsEmpty());
}

// The window is exactly `capacity` events, also when the capacity is not a multiple of the
// chunk and the chunks have been reused many times over.
TEST(EventLog, WindowIsTheCapacityAcrossManyChunks) {
  const size_t cap = EventLog::kChunk * 3 + 7;
  EventLog log(cap);
  const int n = static_cast<int>(EventLog::kChunk) * 20 + 3;
  for (int i = 1; i <= n; ++i) log.Append(App(std::to_string(i)));
  EventLog::ReadResult r = log.Read(1, 1 << 20);
  ASSERT_EQ(r.events.size(), cap);
  EXPECT_EQ(r.missed, n - cap);
  for (const Event& e : r.events) EXPECT_EQ(std::get<AppEvent>(e.body).call, std::to_string(e.seq));
  EXPECT_EQ(r.events.front().seq, n - cap + 1);
  EXPECT_EQ(r.next, static_cast<uint64_t>(n) + 1);
  // From 0, "from the oldest retained", nothing counts as missed.
  EXPECT_EQ(log.Read(0, 1).missed, 0u);
  EXPECT_EQ(log.Read(0, 1).events.front().seq, n - cap + 1);
}

// Readers copy while the writer appends, with no lock between them: every reader sees each
// sequence number once, in order, with its own body, and counts what the window overtook as
// missed, so seen + missed covers the whole range.
TEST(EventLog, ReadersRacingTheWriterSeeEveryEventOnceOrCountItMissed) {
  EventLog log(EventLog::kChunk * 2);
  constexpr uint64_t kEvents = 200000;
  std::vector<std::thread> readers;
  std::vector<std::string> errors(3);
  std::vector<uint64_t> seen(3), missed(3);
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      uint64_t next = 1;
      while (next <= kEvents) {
        EventLog::ReadResult r = log.WaitAndRead(next, t == 0 ? 1 : 97, absl::Now() + absl::Seconds(10));
        missed[t] += r.missed;
        uint64_t want = next + r.missed;
        for (const Event& e : r.events) {
          if (e.seq != want || std::get<AppEvent>(e.body).call != std::to_string(e.seq)) {
            errors[t] = "reader " + std::to_string(t) + " wanted " + std::to_string(want) + ", got " +
                        std::to_string(e.seq) + " " + std::get<AppEvent>(e.body).call;
            return;
          }
          ++want;
          ++seen[t];
        }
        if (r.events.empty() && r.missed == 0 && log.last_seq() < next) continue;
        next = r.next;
      }
    });
  }
  for (uint64_t i = 1; i <= kEvents; ++i) log.Append(App(std::to_string(i)));
  for (std::thread& t : readers) t.join();
  for (int t = 0; t < 3; ++t) {
    EXPECT_EQ(errors[t], "");
    EXPECT_EQ(seen[t] + missed[t], kEvents) << "reader " << t;
  }
}

// A reader waiting for the next event is woken by the append, not by its deadline.
TEST(EventLog, AWaitingReaderIsWokenByTheAppend) {
  EventLog log(16);
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    log.Append(App("late"));
  });
  absl::Time t0 = absl::Now();
  EventLog::ReadResult r = log.WaitAndRead(1, 10, absl::Now() + absl::Seconds(30));
  writer.join();
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(std::get<AppEvent>(r.events[0].body).call, "late");
  EXPECT_LT(absl::Now() - t0, absl::Seconds(20));  // far from the deadline: not a timing claim
}

}  // namespace
}  // namespace tcplab::sandbox
