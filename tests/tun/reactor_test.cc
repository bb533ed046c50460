// Reactor: posted work, Call, the timer, fd watches, shutdown. Only the netns test needs
// root; the rest runs anywhere. Timing is only ever checked from below (at or after a
// deadline), never against an upper bound.
#include "engine/sandbox/reactor.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tcplab::sandbox {
namespace {

using ::testing::ElementsAre;

std::unique_ptr<Reactor> StartOrDie(const Netns* netns = nullptr) {
  auto reactor = Reactor::Start(netns, "test-reactor");
  EXPECT_TRUE(reactor.ok()) << reactor.status();
  return reactor.ok() ? *std::move(reactor) : nullptr;
}

// Generous: only a hang makes a test wait this long.
constexpr absl::Duration kHangTimeout = absl::Seconds(30);

TEST(Reactor, PostedFunctionsRunInOrderOnTheReactorThread) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  std::vector<int> order;  // touched only on the reactor thread
  std::vector<bool> on_loop;
  for (int i = 0; i < 100; ++i) {
    reactor->Post([&, i] {
      order.push_back(i);
      on_loop.push_back(reactor->InLoopThread());
    });
  }
  std::vector<int> seen = reactor->Call([&] { return order; });
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_FALSE(reactor->InLoopThread());
  for (bool b : reactor->Call([&] { return on_loop; })) EXPECT_TRUE(b);
}

TEST(Reactor, CallRunsAfterEarlierPostsAndReturnsTheResult) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  std::vector<std::string> log;
  reactor->Post([&] { log.push_back("post1"); });
  reactor->Post([&] { log.push_back("post2"); });
  int result = reactor->Call([&] {
    log.push_back("call");
    return 42;
  });
  EXPECT_EQ(result, 42);
  reactor->Call([&] { log.push_back("void call"); });
  EXPECT_THAT(log, ElementsAre("post1", "post2", "call", "void call"));
}

TEST(Reactor, CallTakesMoveOnlyFunctionsAndResults) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  auto owned = std::make_unique<int>(7);
  std::unique_ptr<int> back =
      reactor->Call([p = std::move(owned)]() mutable { return std::move(p); });
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(*back, 7);
}

TEST(Reactor, CallFromTheLoopThreadRunsInline) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  std::vector<std::string> log;
  reactor->Call([&] {
    reactor->Post([&] { log.push_back("posted"); });
    // Inline: it runs before the function posted just above, and does not deadlock.
    int inner = reactor->Call([&] {
      log.push_back("inline");
      return 1;
    });
    log.push_back(inner == 1 ? "returned" : "wrong");
  });
  reactor->Call([] {});  // the posted function has run by now
  EXPECT_THAT(log, ElementsAre("inline", "returned", "posted"));
}

TEST(Reactor, PostFromManyThreadsRunsEverything) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  int count = 0;  // reactor thread only
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) reactor->Post([&] { ++count; });
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(reactor->Call([&] { return count; }), 40000);
}

TEST(Reactor, NowIsMonotonicAndStartsNearZero) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  const Instant a = reactor->Now();
  EXPECT_GE(a, Instant{});
  const Instant b = reactor->Call([&] { return reactor->Now(); });
  EXPECT_GE(b, a);
}

TEST(Reactor, WallTimeIsStartPlusTheInstant) {
  const absl::Time before = absl::Now();
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  const absl::Time at_zero = reactor->WallTime(Instant{});
  EXPECT_GE(at_zero, before);
  EXPECT_EQ(reactor->WallTime(Instant{} + std::chrono::seconds(3)) - at_zero, absl::Seconds(3));
}

TEST(Reactor, TimerFiresAtOrAfterItsDeadline) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  absl::Notification fired;
  Instant deadline;
  Instant fired_at;
  reactor->Call([&] {
    deadline = reactor->Now() + std::chrono::milliseconds(20);
    reactor->SetTimer(deadline, [&] {
      fired_at = reactor->Now();
      fired.Notify();
    });
  });
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(kHangTimeout));
  EXPECT_GE(fired_at, deadline);
}

TEST(Reactor, TimerInThePastFiresPromptly) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  absl::Notification fired;
  reactor->Call([&] { reactor->SetTimer(Instant{}, [&] { fired.Notify(); }); });
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(kHangTimeout));
}

TEST(Reactor, TimerReArmReplacesDeadlineAndCallback) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  std::atomic<int> first{0};
  absl::Notification second;
  Instant second_deadline;
  Instant fired_at;
  reactor->Call([&] {
    reactor->SetTimer(reactor->Now() + std::chrono::milliseconds(10), [&] { ++first; });
    second_deadline = reactor->Now() + std::chrono::milliseconds(50);
    reactor->SetTimer(second_deadline, [&] {
      fired_at = reactor->Now();
      second.Notify();
    });
  });
  ASSERT_TRUE(second.WaitForNotificationWithTimeout(kHangTimeout));
  EXPECT_GE(fired_at, second_deadline);
  EXPECT_EQ(first.load(), 0);
}

// The timerfd is only set again when a deadline moves earlier (SetTimer): an hour-away
// timer moved to now must still fire now.
TEST(Reactor, TimerMovedEarlierFiresAtTheEarlierDeadline) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  absl::Notification fired;
  reactor->Call([&] {
    reactor->SetTimer(reactor->Now() + std::chrono::hours(1), [] {});
    reactor->SetTimer(reactor->Now() + std::chrono::milliseconds(5), [&] { fired.Notify(); });
  });
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(kHangTimeout));
}

TEST(Reactor, TimerCallbackCanReArmItself) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  absl::Notification done;
  std::vector<Instant> deadlines;  // reactor thread only
  std::vector<Instant> fired;
  std::function<void()> tick = [&] {
    fired.push_back(reactor->Now());
    if (fired.size() == 5) {
      done.Notify();
      return;
    }
    deadlines.push_back(reactor->Now() + std::chrono::milliseconds(2));
    reactor->SetTimer(deadlines.back(), tick);
  };
  reactor->Call([&] {
    deadlines.push_back(reactor->Now() + std::chrono::milliseconds(2));
    reactor->SetTimer(deadlines.back(), tick);
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kHangTimeout));
  reactor->Call([&] {
    ASSERT_EQ(fired.size(), 5u);
    for (size_t i = 0; i < 5; ++i) EXPECT_GE(fired[i], deadlines[i]) << i;
  });
}

TEST(Reactor, DisarmedTimerDoesNotFire) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  std::atomic<int> fired{0};
  reactor->Call([&] {
    reactor->SetTimer(reactor->Now() + std::chrono::milliseconds(10), [&] { ++fired; });
    reactor->SetTimer(kNever, nullptr);
  });
  // A later timer firing proves the loop went past the disarmed deadline.
  absl::Notification later;
  reactor->Call([&] {
    reactor->SetTimer(reactor->Now() + std::chrono::milliseconds(50), [&] { later.Notify(); });
  });
  ASSERT_TRUE(later.WaitForNotificationWithTimeout(kHangTimeout));
  EXPECT_EQ(fired.load(), 0);
}

TEST(Reactor, DisarmAfterExpiryButBeforeDispatchDoesNotFire) {
  // The timer expires while the loop is busy in a posted function, which then disarms it:
  // the expiry must not run the callback.
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  std::atomic<int> fired{0};
  reactor->Call([&] {
    const Instant deadline = reactor->Now() + std::chrono::milliseconds(1);
    reactor->SetTimer(deadline, [&] { ++fired; });
    while (reactor->Now() < deadline + std::chrono::milliseconds(5)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    reactor->SetTimer(kNever, nullptr);
  });
  reactor->Call([] {});
  reactor->Call([] {});
  EXPECT_EQ(fired.load(), 0);
}

TEST(Reactor, WatchFiresForAPipeAndUnwatchStopsIt) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  absl::Mutex mu;
  std::string received;
  int callbacks = 0;
  reactor->Call([&] {
    reactor->Watch(fds[0], EPOLLIN, [&](uint32_t events) {
      EXPECT_NE(events & EPOLLIN, 0u);
      char buf[64];
      ssize_t n;
      absl::MutexLock lock(&mu);
      ++callbacks;
      while ((n = read(fds[0], buf, sizeof(buf))) > 0) received.append(buf, n);
    });
  });
  ASSERT_EQ(write(fds[1], "hello", 5), 5);
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(
                                        +[](std::string* s) { return s->size() >= 5; }, &received),
                                    kHangTimeout));
    EXPECT_EQ(received, "hello");
  }

  reactor->Call([&] { reactor->Unwatch(fds[0]); });
  int callbacks_after_unwatch;
  {
    absl::MutexLock lock(&mu);
    callbacks_after_unwatch = callbacks;
  }
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  // Two loop turns later nothing may have fired for the unwatched fd.
  reactor->Call([] {});
  reactor->Call([] {});
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(callbacks, callbacks_after_unwatch);
  }
  close(fds[0]);
  close(fds[1]);
}

TEST(Reactor, CallbackMayUnwatchItselfAndAnotherFd) {
  auto reactor = StartOrDie();
  ASSERT_NE(reactor, nullptr);
  int a[2], b[2];
  ASSERT_EQ(pipe2(a, O_NONBLOCK | O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(b, O_NONBLOCK | O_CLOEXEC), 0);
  ASSERT_EQ(write(a[1], "a", 1), 1);
  ASSERT_EQ(write(b[1], "b", 1), 1);
  std::atomic<int> calls{0};
  reactor->Call([&] {
    // Whichever fires first unwatches both; the other, ready in the same epoll batch, must
    // not be called.
    auto cb = [&](uint32_t) {
      ++calls;
      reactor->Unwatch(a[0]);
      reactor->Unwatch(b[0]);
    };
    reactor->Watch(a[0], EPOLLIN, cb);
    reactor->Watch(b[0], EPOLLIN, cb);
  });
  reactor->Call([] {});
  reactor->Call([] {});
  EXPECT_EQ(calls.load(), 1);
  for (int fd : {a[0], a[1], b[0], b[1]}) close(fd);
}

TEST(Reactor, DestructorJoinsWithPostedWorkPending) {
  std::atomic<int> ran{0};
  {
    auto reactor = StartOrDie();
    ASSERT_NE(reactor, nullptr);
    // Keep the loop busy so that work piles up behind it.
    reactor->Post([] { std::this_thread::sleep_for(std::chrono::milliseconds(20)); });
    for (int i = 0; i < 1000; ++i) reactor->Post([&] { ++ran; });
    // Work posted by that work may run or be dropped, depending on whether the loop has
    // seen the stop request yet; either way the destructor must return.
    reactor->Post([&, r = reactor.get()] { r->Post([&] { ran += 1000000; }); });
    // A timer still armed at destruction is simply dropped.
    reactor->Post([r = reactor.get()] {
      r->SetTimer(r->Now() + std::chrono::hours(1), [] {});
    });
  }
  // Everything posted before the destructor ran.
  EXPECT_EQ(ran.load() % 1000000, 1000);
}

TEST(Reactor, ManyReactorsStartAndStop) {
  for (int i = 0; i < 200; ++i) {
    auto reactor = StartOrDie();
    ASSERT_NE(reactor, nullptr);
    reactor->Post([] {});
  }
}

TEST(Reactor, StartsInsideANamespace) {
  if (geteuid() != 0 || !HaveCapability(CAP_SYS_ADMIN)) {
    GTEST_SKIP() << "needs root with CAP_SYS_ADMIN to create a network namespace";
  }
  auto netns = Netns::Create();
  ASSERT_TRUE(netns.ok()) << netns.status();
  auto reactor = StartOrDie(netns->get());
  ASSERT_NE(reactor, nullptr);
  struct stat ns_stat;
  ASSERT_EQ(fstat((*netns)->fd(), &ns_stat), 0);
  ino_t inside = reactor->Call([] {
    struct stat st;
    return stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : ino_t{0};
  });
  EXPECT_EQ(inside, ns_stat.st_ino);
}

}  // namespace
}  // namespace tcplab::sandbox
