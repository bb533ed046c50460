// Cleanup of the real binary: SIGTERM removes the sandbox's namespace; after SIGKILL the next
// start removes what the dead process left. Runs tcplab-demo --backend=tun.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace {

struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
};

// Starts tcplab-demo with `args`, stdout on a pipe.
Child Start(const std::string& args) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::string cmd = absl::StrCat("exec ", TCPLAB_DEMO_BIN, " --backend=tun ", args);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  return {pid, fdopen(fds[0], "r")};
}

// Reads lines until one contains `needle`; returns it ("" at EOF).
std::string ReadUntil(FILE* f, const std::string& needle) {
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    if (std::string(line).find(needle) != std::string::npos) return line;
  }
  return "";
}

std::string NetnsFrom(const std::string& banner) {
  const std::string key = "namespace ";
  auto at = banner.find(key + "tcplab-");
  if (at == std::string::npos) return "";
  at += key.size();
  return banner.substr(at, banner.find(';', at) - at);
}

bool Exists(const std::string& netns) {
  struct stat st;
  return stat(("/run/netns/" + netns).c_str(), &st) == 0;
}

int Wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

class CleanupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and TUN (label tun)";
  }
};

// The demo sits in TIME-WAIT for 2 minutes; SIGTERM must remove its namespace and exit 130.
TEST_F(CleanupTest, SigtermRemovesTheNamespace) {
  Child c = Start("--msl=60s");
  ASSERT_GT(c.pid, 0);
  std::string ns = NetnsFrom(ReadUntil(c.out, "network namespace"));
  ASSERT_FALSE(ns.empty());
  ASSERT_FALSE(ReadUntil(c.out, "2MSL started").empty());
  EXPECT_TRUE(Exists(ns));
  kill(c.pid, SIGTERM);
  int status = Wait(c.pid);
  fclose(c.out);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(Exists(ns)) << ns << " is still in /run/netns";
}

// SIGKILL leaves the namespace behind; the next run removes it before it starts.
TEST_F(CleanupTest, NextStartRemovesLeftoversOfAKilledRun) {
  Child c = Start("--msl=60s");
  ASSERT_GT(c.pid, 0);
  std::string ns = NetnsFrom(ReadUntil(c.out, "network namespace"));
  ASSERT_FALSE(ns.empty());
  ASSERT_FALSE(ReadUntil(c.out, "2MSL started").empty());
  kill(c.pid, SIGKILL);
  Wait(c.pid);
  fclose(c.out);
  ASSERT_TRUE(Exists(ns)) << "a SIGKILLed run cannot clean up; expected its namespace to remain";
  Child next = Start("--msl=10ms");
  ASSERT_GT(next.pid, 0);
  std::string removed = ReadUntil(next.out, "removed");
  EXPECT_NE(removed.find("left by a crashed run"), std::string::npos) << removed;
  int status = Wait(next.pid);
  fclose(next.out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_FALSE(Exists(ns)) << ns << " was not removed";
}

}  // namespace
