// EventLog: sequence numbers, the bounded ring, gaps for readers that fell behind. Needs no
// privileges (it lives with the sandbox runtime, hence this directory).
#include "engine/sandbox/event_log.h"

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

}  // namespace
}  // namespace tcplab::sandbox
