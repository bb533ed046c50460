#include "engine/sandbox/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"

namespace tcplab::sandbox {
namespace {

constexpr char kNoSysAdmin[] =
    "creating or removing a network namespace needs CAP_SYS_ADMIN, which this process does "
    "not have; run as root (or grant CAP_SYS_ADMIN and CAP_NET_ADMIN), or use "
    "--backend=virtual for a sandbox without privileges";

// "call: strerror" with the code absl derives from errno, except that EPERM becomes the
// PERMISSION_DENIED message above: the missing capability is what users can fix.
absl::Status SyscallError(absl::string_view call, int err) {
  if (err == EPERM) return absl::PermissionDeniedError(absl::StrCat(call, ": ", kNoSysAdmin));
  return absl::ErrnoToStatus(err, call);
}

// Makes /run/netns a shared mount point, as iproute2 does, so that namespaces mounted on it
// later also appear in mount namespaces that were cloned from this one (and vice versa).
// A plain directory cannot be made shared: it is first bind-mounted onto itself.
absl::Status PrepareRunDir() {
  // Two threads that both found /run/netns unshared would each bind-mount it over itself.
  // (Other processes can still race like that, as two `ip netns add` can; it is harmless.)
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  if (mkdir(kNetnsRunDir, 0755) != 0 && errno != EEXIST) {
    return SyscallError(absl::StrCat("mkdir(", kNetnsRunDir, ")"), errno);
  }
  bool bound = false;
  while (mount("", kNetnsRunDir, "none", MS_SHARED | MS_REC, nullptr) != 0) {
    // EINVAL: not a mount point yet.
    if (errno != EINVAL || bound) {
      return SyscallError(absl::StrCat("mount(", kNetnsRunDir, ", MS_SHARED|MS_REC)"), errno);
    }
    if (mount(kNetnsRunDir, kNetnsRunDir, "none", MS_BIND | MS_REC, nullptr) != 0) {
      return SyscallError(absl::StrCat("mount(", kNetnsRunDir, ", MS_BIND|MS_REC)"), errno);
    }
    bound = true;
  }
  return absl::OkStatus();
}

absl::Status ValidateName(absl::string_view name) {
  if (name.empty() || name == "." || name == ".." || absl::StrContains(name, '/') ||
      absl::StrContains(name, '\0')) {
    return absl::InvalidArgumentError(
        absl::StrCat("namespace name \"", absl::CEscape(name),
                     "\" is not a valid file name (empty, \".\", \"..\", or contains '/')"));
  }
  if (name.size() > NAME_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("namespace name is ", name.size(), " octets long; at most ", NAME_MAX));
  }
  return absl::OkStatus();
}

// Detaches whatever is mounted on `path` and removes the file. A file with nothing mounted
// on it (a creator that died between the two steps) is only unlinked.
absl::Status RemoveMountedFile(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return SyscallError(absl::StrCat("umount2(", path, ", MNT_DETACH)"), errno);
  }
  if (unlink(path.c_str()) != 0) return SyscallError(absl::StrCat("unlink(", path, ")"), errno);
  return absl::OkStatus();
}

// For a name of the form "tcplab-<pid>-...", the pid; otherwise 0.
pid_t OwnerPid(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, kNetnsPrefix)) return 0;
  size_t dash = name.find('-');
  if (dash == 0 || dash == absl::string_view::npos) return 0;
  absl::string_view digits = name.substr(0, dash);
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return 0;
  }
  int32_t pid = 0;
  if (!absl::SimpleAtoi(digits, &pid) || pid <= 0) return 0;
  return pid;
}

}  // namespace

bool HaveCapability(int capability) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;  // the calling thread: capabilities are per thread
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return true;
  if (capability < 0 || capability >= 32 * _LINUX_CAPABILITY_U32S_3) return false;
  return (data[capability / 32].effective >> (capability % 32)) & 1u;
}

absl::StatusOr<std::unique_ptr<Netns>> Netns::Create() {
  static std::atomic<uint64_t> counter{0};
  const pid_t pid = getpid();
  // A leftover of an earlier process that had our pid may hold a name; skip past it.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    absl::StatusOr<std::unique_ptr<Netns>> netns =
        Create(absl::StrCat(kNetnsPrefix, pid, "-", counter.fetch_add(1)));
    if (!absl::IsAlreadyExists(netns.status())) return netns;
  }
  return absl::AlreadyExistsError(
      absl::StrCat("1000 consecutive names ", kNetnsPrefix, pid, "-* exist in ", kNetnsRunDir,
                   "; remove leftovers first"));
}

absl::StatusOr<std::unique_ptr<Netns>> Netns::Create(std::string name) {
  if (absl::Status valid = ValidateName(name); !valid.ok()) return valid;
  if (!HaveCapability(CAP_SYS_ADMIN)) return absl::PermissionDeniedError(kNoSysAdmin);
  if (absl::Status prepared = PrepareRunDir(); !prepared.ok()) return prepared;

  std::string path = absl::StrCat(kNetnsRunDir, "/", name);
  // The mount point: an empty file, mode 0 like iproute2's. O_EXCL makes the name ours.
  int placeholder = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (placeholder < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat("network namespace ", path, " already exists"));
    }
    return SyscallError(absl::StrCat("open(", path, ", O_CREAT|O_EXCL)"), errno);
  }
  close(placeholder);

  // unshare(CLONE_NEWNET) moves only the calling thread, so a short-lived thread makes the
  // namespace and pins it with a bind mount of its own ns file; the caller's thread never
  // changes namespace. The mount is made in the process's (shared) mount namespace.
  absl::Status made;
  std::thread maker([&path, &made] {
    if (unshare(CLONE_NEWNET) != 0) {
      made = SyscallError("unshare(CLONE_NEWNET)", errno);
      return;
    }
    if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      made = SyscallError(absl::StrCat("mount(/proc/thread-self/ns/net, ", path, ", MS_BIND)"),
                          errno);
    }
  });
  maker.join();
  if (!made.ok()) {
    (void)RemoveMountedFile(path);
    return made;
  }

  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    absl::Status opened = SyscallError(absl::StrCat("open(", path, ")"), errno);
    (void)RemoveMountedFile(path);
    return opened;
  }
  return std::unique_ptr<Netns>(new Netns(std::move(name), std::move(path), fd));
}

Netns::~Netns() {
  close(fd_);
  // Nothing useful to do with a failure in a destructor; RemoveLeftovers of a later process
  // picks up whatever stays behind.
  (void)RemoveMountedFile(path_);
}

absl::Status Netns::EnterOnThisThread() const {
  if (setns(fd_, CLONE_NEWNET) != 0) {
    return SyscallError(absl::StrCat("setns(", path_, ", CLONE_NEWNET)"), errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> RemoveLeftovers() {
  std::vector<std::string> removed;
  DIR* dir = opendir(kNetnsRunDir);
  if (dir == nullptr) {
    if (errno == ENOENT) return removed;
    return SyscallError(absl::StrCat("opendir(", kNetnsRunDir, ")"), errno);
  }
  std::vector<std::string> dead;
  while (const dirent* entry = readdir(dir)) {
    const pid_t owner = OwnerPid(entry->d_name);
    if (owner == 0) continue;
    // EPERM means the process exists (owned by someone else); only ESRCH means gone.
    if (kill(owner, 0) != 0 && errno == ESRCH) dead.emplace_back(entry->d_name);
  }
  closedir(dir);

  absl::Status first_error;
  for (std::string& name : dead) {
    absl::Status status = RemoveMountedFile(absl::StrCat(kNetnsRunDir, "/", name));
    if (status.ok()) {
      removed.push_back(std::move(name));
    } else if (!absl::IsNotFound(status)) {  // NOT_FOUND: another process removed it first
      first_error.Update(status);
    }
  }
  if (!first_error.ok()) return first_error;
  return removed;
}

}  // namespace tcplab::sandbox
