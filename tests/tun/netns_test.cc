// Named network namespaces: create, enter, delete, leftovers, and no leaks over many cycles.
// Needs root (CAP_SYS_ADMIN); skips itself otherwise.
#include "engine/sandbox/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tcplab::sandbox {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

#define SKIP_UNLESS_PRIVILEGED()                                                          \
  do {                                                                                    \
    if (geteuid() != 0 || !HaveCapability(CAP_SYS_ADMIN)) {                               \
      GTEST_SKIP() << "needs root with CAP_SYS_ADMIN to create network namespaces; run " \
                      "the `tun` tests as root (the engine tests need no privileges)";    \
    }                                                                                     \
  } while (0)

std::string OurPrefix() { return absl::StrCat(kNetnsPrefix, getpid(), "-"); }

// Names in /run/netns that start with `prefix`.
std::vector<std::string> RunDirEntries(const std::string& prefix) {
  std::vector<std::string> names;
  DIR* dir = opendir(kNetnsRunDir);
  if (dir == nullptr) return names;
  while (const dirent* e = readdir(dir)) {
    if (absl::StartsWith(e->d_name, prefix)) names.emplace_back(e->d_name);
  }
  closedir(dir);
  return names;
}

int CountOpenFds() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

// Mount points in this mount namespace whose path contains `needle`.
int CountMounts(const std::string& needle) {
  std::ifstream in("/proc/self/mountinfo");
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (absl::StrContains(line, needle)) ++n;
  }
  return n;
}

ino_t InodeOfFd(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// The inode of the network namespace the calling thread is in.
ino_t ThisThreadNetnsInode() {
  struct stat st;
  return stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// What a process that crashed after creating a namespace leaves behind: the file in
// /run/netns with a namespace bind-mounted on it (made here by hand, not by Netns, so that
// no object owns it).
void MakeOrphanNamespace(const std::string& name, bool mounted) {
  const std::string path = absl::StrCat(kNetnsRunDir, "/", name);
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  close(fd);
  if (!mounted) return;
  int err = 0;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0 ||
        mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      err = errno;
    }
  }).join();
  ASSERT_EQ(err, 0) << strerror(err);
}

void RemoveByHand(const std::string& name) {
  const std::string path = absl::StrCat(kNetnsRunDir, "/", name);
  umount2(path.c_str(), MNT_DETACH);
  unlink(path.c_str());
}

// A pid that certainly belongs to no process: a child that has exited and been reaped.
pid_t DeadPid() {
  pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

// Runs `fn` on a fresh thread whose effective set lacks `capability` (capabilities are per
// thread, so the rest of the process keeps it).
template <typename F>
void WithoutCapability(int capability, F fn) {
  std::thread([&] {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    ASSERT_EQ(syscall(SYS_capget, &header, data), 0);
    data[capability / 32].effective &= ~(1u << (capability % 32));
    ASSERT_EQ(syscall(SYS_capset, &header, data), 0) << strerror(errno);
    fn();
  }).join();
}

TEST(Netns, CreateNamesItAfterThisProcessAndMountsIt) {
  SKIP_UNLESS_PRIVILEGED();
  auto netns = Netns::Create();
  ASSERT_TRUE(netns.ok()) << netns.status();
  EXPECT_THAT((*netns)->name(), StartsWith(OurPrefix()));
  EXPECT_EQ((*netns)->path(), absl::StrCat("/run/netns/", (*netns)->name()));
  EXPECT_TRUE(Exists((*netns)->path()));
  EXPECT_EQ(CountMounts(absl::StrCat(" ", (*netns)->path(), " ")), 1);
  EXPECT_GE((*netns)->fd(), 0);
  EXPECT_NE(fcntl((*netns)->fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(Netns, GeneratedNamesAreDistinct) {
  SKIP_UNLESS_PRIVILEGED();
  auto a = Netns::Create();
  auto b = Netns::Create();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*a)->name(), (*b)->name());
  EXPECT_NE(InodeOfFd((*a)->fd()), InodeOfFd((*b)->fd()));
}

TEST(Netns, EnterOnThisThreadMovesOnlyThatThread) {
  SKIP_UNLESS_PRIVILEGED();
  auto netns = Netns::Create();
  ASSERT_TRUE(netns.ok()) << netns.status();
  const ino_t ns_inode = InodeOfFd((*netns)->fd());
  const ino_t before = ThisThreadNetnsInode();
  ASSERT_NE(ns_inode, before);

  ino_t inside = 0;
  absl::Status entered;
  std::thread([&] {
    entered = (*netns)->EnterOnThisThread();
    inside = ThisThreadNetnsInode();
  }).join();
  ASSERT_TRUE(entered.ok()) << entered;
  EXPECT_EQ(inside, ns_inode);
  EXPECT_EQ(ThisThreadNetnsInode(), before);
}

TEST(Netns, DestructorRemovesFileAndMount) {
  SKIP_UNLESS_PRIVILEGED();
  std::string path;
  {
    auto netns = Netns::Create();
    ASSERT_TRUE(netns.ok()) << netns.status();
    path = (*netns)->path();
  }
  EXPECT_FALSE(Exists(path));
  EXPECT_EQ(CountMounts(absl::StrCat(" ", path, " ")), 0);
}

TEST(Netns, RunDirIsASharedMountPoint) {
  SKIP_UNLESS_PRIVILEGED();
  auto netns = Netns::Create();
  ASSERT_TRUE(netns.ok()) << netns.status();
  std::ifstream in("/proc/self/mountinfo");
  bool shared = false;
  for (std::string line; std::getline(in, line);) {
    // "id parent major:minor root mount-point options optional-fields... - ..."
    if (absl::StrContains(line, " /run/netns ") && absl::StrContains(line, " shared:")) {
      shared = true;
    }
  }
  EXPECT_TRUE(shared);
}

TEST(Netns, CreateWithExplicitNameAndDuplicate) {
  SKIP_UNLESS_PRIVILEGED();
  const std::string name = absl::StrCat(OurPrefix(), "explicit");
  auto first = Netns::Create(name);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->name(), name);
  auto second = Netns::Create(name);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  // The failed attempt must not have removed the first one's mount.
  EXPECT_EQ(CountMounts(absl::StrCat(" ", (*first)->path(), " ")), 1);
}

TEST(Netns, InvalidNamesAreRejected) {
  SKIP_UNLESS_PRIVILEGED();
  for (const char* name : {"", ".", "..", "a/b", "../etc"}) {
    auto netns = Netns::Create(name);
    EXPECT_EQ(netns.status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
}

TEST(Netns, WithoutCapSysAdminSaysWhatIsMissing) {
  SKIP_UNLESS_PRIVILEGED();
  WithoutCapability(CAP_SYS_ADMIN, [] {
    EXPECT_FALSE(HaveCapability(CAP_SYS_ADMIN));
    auto netns = Netns::Create();
    EXPECT_EQ(netns.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(netns.status().message(), HasSubstr("CAP_SYS_ADMIN"));
    EXPECT_THAT(netns.status().message(), HasSubstr("--backend=virtual"));
  });
  EXPECT_TRUE(HaveCapability(CAP_SYS_ADMIN));  // the test thread kept it
  EXPECT_TRUE(RunDirEntries(OurPrefix()).empty());
}

TEST(Netns, RemoveLeftoversRemovesDeadOwnersOnly) {
  SKIP_UNLESS_PRIVILEGED();
  const pid_t dead = DeadPid();
  ASSERT_EQ(kill(dead, 0), -1);
  ASSERT_EQ(errno, ESRCH);
  const std::string dead_mounted = absl::StrCat(kNetnsPrefix, dead, "-0");
  const std::string dead_plain = absl::StrCat(kNetnsPrefix, dead, "-1");  // crashed mid-Create
  // pid 1 is always alive.
  const std::string live = absl::StrCat(kNetnsPrefix, "1-leftover-test-", getpid());
  const std::string not_ours = absl::StrCat(kNetnsPrefix, "x", dead, "-0");

  ASSERT_NO_FATAL_FAILURE(MakeOrphanNamespace(dead_mounted, /*mounted=*/true));
  ASSERT_NO_FATAL_FAILURE(MakeOrphanNamespace(dead_plain, /*mounted=*/false));
  ASSERT_NO_FATAL_FAILURE(MakeOrphanNamespace(live, /*mounted=*/true));
  ASSERT_NO_FATAL_FAILURE(MakeOrphanNamespace(not_ours, /*mounted=*/true));
  auto mine = Netns::Create();  // owned by this live process
  ASSERT_TRUE(mine.ok()) << mine.status();

  auto removed = RemoveLeftovers();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, Contains(dead_mounted));
  EXPECT_THAT(*removed, Contains(dead_plain));
  EXPECT_THAT(*removed, Not(Contains(live)));
  EXPECT_THAT(*removed, Not(Contains(not_ours)));
  EXPECT_THAT(*removed, Not(Contains((*mine)->name())));

  const std::string dir = absl::StrCat(kNetnsRunDir, "/");
  EXPECT_FALSE(Exists(dir + dead_mounted));
  EXPECT_FALSE(Exists(dir + dead_plain));
  EXPECT_EQ(CountMounts(absl::StrCat(" ", dir, dead_mounted, " ")), 0);
  EXPECT_TRUE(Exists(dir + live));
  EXPECT_EQ(CountMounts(absl::StrCat(" ", dir, live, " ")), 1);
  EXPECT_TRUE(Exists(dir + not_ours));
  EXPECT_TRUE(Exists((*mine)->path()));

  RemoveByHand(live);
  RemoveByHand(not_ours);
}

TEST(Netns, ConcurrentCreatesGetDistinctNamespaces) {
  SKIP_UNLESS_PRIVILEGED();
  std::vector<std::unique_ptr<Netns>> made[4];
  std::vector<std::thread> threads;
  for (auto& out : made) {
    threads.emplace_back([&out] {
      for (int i = 0; i < 25; ++i) {
        auto netns = Netns::Create();
        ASSERT_TRUE(netns.ok()) << netns.status();
        out.push_back(*std::move(netns));
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> names;
  std::set<ino_t> inodes;
  for (auto& out : made) {
    for (auto& netns : out) {
      names.insert(netns->name());
      inodes.insert(InodeOfFd(netns->fd()));
    }
  }
  EXPECT_EQ(names.size(), 100u);
  EXPECT_EQ(inodes.size(), 100u);
  EXPECT_EQ(RunDirEntries(OurPrefix()).size(), 100u);
  for (auto& out : made) out.clear();
  EXPECT_TRUE(RunDirEntries(OurPrefix()).empty());
}

TEST(Netns, ThousandCyclesLeakNothing) {
  SKIP_UNLESS_PRIVILEGED();
  const int fds_before = CountOpenFds();
  const std::string prefix = OurPrefix();
  for (int i = 0; i < 1000; ++i) {
    auto netns = Netns::Create();
    ASSERT_TRUE(netns.ok()) << "cycle " << i << ": " << netns.status();
  }
  EXPECT_EQ(CountOpenFds(), fds_before);
  EXPECT_THAT(RunDirEntries(prefix), ::testing::IsEmpty());
  EXPECT_EQ(CountMounts(absl::StrCat(kNetnsRunDir, "/", prefix)), 0);
}

}  // namespace
}  // namespace tcplab::sandbox
