#include "engine/grading/kernel_target.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace tcplab::grading {

namespace {

using Op = SockCall::Op;

// Interrupts a call still blocked when the target goes away: the handler does nothing, and
// without SA_RESTART the system call returns EINTR.
int InterruptSignal() { return SIGRTMIN + 2; }

void InstallInterruptHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(InterruptSignal(), &sa, nullptr);
  });
}

std::string ErrnoText(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : absl::StrCat("errno ", e);
}

SockResult FromSyscall(long rc) {
  if (rc < 0) return SockResult::Error(ErrnoText(errno));
  return SockResult::Ok(rc);
}

sockaddr_in ToSockaddr(wire::Endpoint ep) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(ep.ip.v);
  sa.sin_port = htons(ep.port);
  return sa;
}

// The system calls a call of this kind may sleep in (x86-64 and arm64 numbers via <sys/syscall.h>).
std::vector<long> SleepingSyscalls(Op op) {
  switch (op) {
    case Op::kAccept:
      return {SYS_accept, SYS_accept4};
    case Op::kConnect:
      return {SYS_connect};
    case Op::kRead:
      return {SYS_read};
    case Op::kWrite:
      return {SYS_sendto, SYS_write};  // send(2) is sendto(2)
    case Op::kClose:
      return {SYS_close};  // SO_LINGER with a timeout
    default:
      return {};
  }
}

// True if thread `tid` of this process sleeps inside one of `syscalls`.
bool SleepsIn(pid_t tid, const std::vector<long>& syscalls) {
  if (syscalls.empty()) return false;
  std::ifstream stat(absl::StrCat("/proc/self/task/", tid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return false;
  char state = line[paren + 2];
  if (state != 'S' && state != 'D') return false;
  std::ifstream sc(absl::StrCat("/proc/self/task/", tid, "/syscall"));
  long nr = -1;
  if (!(sc >> nr)) return false;  // "running"
  for (long s : syscalls) {
    if (s == nr) return true;
  }
  return false;
}

const char* LinuxTcpState(int s) {
  static const char* const kNames[] = {"?",         "ESTABLISHED", "SYN-SENT",   "SYN-RECEIVED",
                                       "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",  "CLOSED",
                                       "CLOSE-WAIT", "LAST-ACK",   "LISTEN",     "CLOSING"};
  return s >= 0 && s < 12 ? kNames[s] : "?";
}

}  // namespace

struct KernelTarget::Call {
  SockCall call;
  std::thread thread;
  std::atomic<pid_t> tid{0};
  absl::Mutex mu;  // to wait for `finished`
  std::atomic<bool> finished{false};
  Done done;  // written before `finished` is set
};

absl::StatusOr<std::unique_ptr<KernelTarget>> KernelTarget::Create() {
  absl::StatusOr<std::unique_ptr<sandbox::Netns>> ns = sandbox::Netns::Create();
  if (!ns.ok()) return ns.status();
  // The TUN belongs to the namespace of the thread that opens it.
  absl::StatusOr<std::unique_ptr<link::TunDevice>> tun = absl::InternalError("not opened");
  std::thread([&] {
    if (absl::Status s = (*ns)->EnterOnThisThread(); !s.ok()) {
      tun = s;
      return;
    }
    link::TunConfig cfg;
    cfg.kernel_addr = kLocalAddr;
    tun = link::TunDevice::Open(cfg);
  }).join();
  if (!tun.ok()) return tun.status();
  InstallInterruptHandler();
  return std::unique_ptr<KernelTarget>(new KernelTarget(std::move(*ns), std::move(*tun)));
}

KernelTarget::KernelTarget(std::unique_ptr<sandbox::Netns> netns, std::unique_ptr<link::TunDevice> tun)
    : netns_(std::move(netns)), tun_(std::move(tun)), start_(std::chrono::steady_clock::now()), buf_(65536) {}

KernelTarget::~KernelTarget() {
  std::vector<std::shared_ptr<Call>> calls;
  {
    absl::MutexLock l(&mu_);
    calls = calls_;
  }
  for (auto& c : calls) {
    if (!c->thread.joinable()) continue;
    for (int i = 0; i < 500 && !c->finished.load(); ++i) {
      pthread_kill(c->thread.native_handle(), InterruptSignal());
      absl::SleepFor(absl::Milliseconds(2));
    }
    c->thread.join();
  }
  // After the joins: an accept that returned meanwhile added its socket.
  absl::MutexLock l(&mu_);
  for (auto& [fd, open] : fds_) {
    if (open) close(fd);
  }
}

Duration KernelTarget::Now() { return std::chrono::steady_clock::now() - start_; }

void KernelTarget::AdvanceTo(Duration t) {
  const Duration d = t - Now();
  if (d > Duration::zero()) std::this_thread::sleep_for(d);
}

absl::Status KernelTarget::Inject(std::span<const uint8_t> datagram) { return tun_->Write(datagram); }

std::optional<Target::Sent> KernelTarget::NextSent(Duration deadline) {
  for (;;) {
    absl::StatusOr<size_t> n = tun_->Read(buf_);
    if (n.ok() && *n > 0) {
      const Duration at = Now();
      // Only TCP to the script's peer; the kernel sends nothing else here, but be sure.
      if (*n >= 20 && (buf_[0] >> 4) == 4 && buf_[9] == IPPROTO_TCP &&
          wire::Ipv4{(uint32_t{buf_[16]} << 24) | (uint32_t{buf_[17]} << 16) | (uint32_t{buf_[18]} << 8) | buf_[19]} ==
              kRemoteAddr) {
        return Sent{at, std::vector<uint8_t>(buf_.begin(), buf_.begin() + static_cast<long>(*n))};
      }
      continue;
    }
    const Duration left = deadline - Now();
    if (left <= Duration::zero()) return std::nullopt;
    pollfd p{tun_->fd(), POLLIN, 0};
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    ppoll(&p, 1, &ts, nullptr);
  }
}

int KernelTarget::StartCall(const SockCall& call) {
  auto c = std::make_shared<Call>();
  c->call = call;
  int id;
  {
    absl::MutexLock l(&mu_);
    calls_.push_back(c);
    id = static_cast<int>(calls_.size()) - 1;
  }
  Reap();
  if (CannotBlock(call)) {
    // On this thread: no thread to start and schedule, so no latency added to the call
    // (a busy machine delayed a thread's start by 50 ms, failing a script's timing).
    SockResult r = Execute(call);
    absl::MutexLock l(&c->mu);
    c->done = Done{Now(), r};
    c->finished.store(true, std::memory_order_release);
    return id;
  }
  try {
    c->thread = std::thread([this, c] { Run(*c); });
  } catch (const std::system_error& e) {  // out of threads: a failed call, not a dead server
    absl::MutexLock l(&c->mu);
    c->done = Done{Now(), SockResult::Error("EAGAIN")};
    c->finished.store(true, std::memory_order_release);
    return id;
  }
  // Wait until the call returns or sleeps in its system call (then it is blocked and the
  // script goes on). A second is far beyond any call that does not block.
  const std::vector<long> sleeping = SleepingSyscalls(call.op);
  const absl::Time give_up = absl::Now() + absl::Seconds(1);
  absl::MutexLock l(&c->mu);
  while (!c->finished.load(std::memory_order_acquire) && absl::Now() < give_up) {
    // Woken at once when the call returns; otherwise look every 200 µs whether it sleeps.
    c->mu.AwaitWithTimeout(absl::Condition(
                               +[](std::atomic<bool>* f) { return f->load(std::memory_order_acquire); },
                               &c->finished),
                           absl::Microseconds(200));
    pid_t tid = c->tid.load(std::memory_order_acquire);
    if (tid != 0 && SleepsIn(tid, sleeping)) break;
  }
  return id;
}

// True if `call` returns at once: it is not one that waits (accept, connect, read, write),
// or its socket is non-blocking, or (accept, read) it has something to take now.
bool KernelTarget::CannotBlock(const SockCall& call) {
  switch (call.op) {
    case Op::kAccept:
    case Op::kConnect:
    case Op::kRead:
    case Op::kWrite:
      break;
    default:
      return true;  // close with a SO_LINGER timeout could wait; scripts use linger 0
  }
  int fd;
  {
    absl::MutexLock l(&mu_);
    if (!fds_.contains(call.handle)) return true;  // EBADF at once
    fd = call.handle;
  }
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK)) return true;
  if (call.op == Op::kAccept || call.op == Op::kRead) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;  // readable: a connection or data (or EOF, an error) waits
  }
  return false;
}

// Joins the threads of calls that have returned (each holds a stack until joined).
void KernelTarget::Reap() {
  std::vector<std::shared_ptr<Call>> calls;
  {
    absl::MutexLock l(&mu_);
    calls = calls_;
  }
  for (auto& c : calls) {
    if (c->finished.load(std::memory_order_acquire) && c->thread.joinable()) c->thread.join();
  }
}

std::optional<Target::Done> KernelTarget::Poll(int call) {
  std::shared_ptr<Call> c;
  {
    absl::MutexLock l(&mu_);
    if (call < 0 || call >= static_cast<int>(calls_.size())) return std::nullopt;
    c = calls_[call];
  }
  if (!c->finished.load(std::memory_order_acquire)) return std::nullopt;
  return c->done;
}

void KernelTarget::Run(Call& c) {
  c.tid.store(static_cast<pid_t>(syscall(SYS_gettid)), std::memory_order_release);
  SockResult r = Execute(c.call);
  absl::MutexLock l(&c.mu);  // StartCall may be waiting on it
  c.done = Done{Now(), r};
  c.finished.store(true, std::memory_order_release);
}

SockResult KernelTarget::Execute(const SockCall& call) {
  const int fd = call.handle;
  if (call.op != Op::kSocket) {
    // Only the script's own sockets: any other number is some other part of this process.
    absl::MutexLock l(&mu_);
    if (!fds_.contains(fd)) return SockResult::Error("EBADF");
  }
  switch (call.op) {
    case Op::kSocket: {
      // A socket belongs to the namespace of the thread that creates it: step into the
      // sandbox's namespace for the call, and back.
      const int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      if (home < 0 || setns(netns_->fd(), CLONE_NEWNET) != 0) {
        if (home >= 0) close(home);
        return SockResult::Error("EPERM");
      }
      SockResult r = FromSyscall(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
      const int saved = errno;
      if (setns(home, CLONE_NEWNET) != 0) std::abort();  // this thread must not stay inside
      close(home);
      errno = saved;
      if (r.value >= 0) {
        absl::MutexLock l(&mu_);
        fds_[static_cast<int>(r.value)] = true;
      }
      return r;
    }
    case Op::kBind: {
      sockaddr_in sa = ToSockaddr(call.addr);
      return FromSyscall(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa));
    }
    case Op::kListen:
      return FromSyscall(listen(fd, static_cast<int>(call.arg)));
    case Op::kAccept: {
      SockResult r = FromSyscall(accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (r.value >= 0) {
        absl::MutexLock l(&mu_);
        fds_[static_cast<int>(r.value)] = true;
      }
      return r;
    }
    case Op::kConnect: {
      sockaddr_in sa = ToSockaddr(call.addr);
      return FromSyscall(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa));
    }
    case Op::kRead: {
      std::vector<char> buf(static_cast<size_t>(std::max<int64_t>(call.arg, 0)));
      return FromSyscall(read(fd, buf.data(), buf.size()));
    }
    case Op::kWrite: {
      std::vector<char> buf(static_cast<size_t>(std::max<int64_t>(call.arg, 0)), 'x');
      // write(2) on a connection that was reset raises SIGPIPE, which would kill the grader
      // (and leave its namespace behind); the script expects the -1 EPIPE write returns.
      return FromSyscall(send(fd, buf.data(), buf.size(), MSG_NOSIGNAL));
    }
    case Op::kShutdown:
      return FromSyscall(shutdown(fd, static_cast<int>(call.arg)));
    case Op::kClose: {
      // Under mu_: once closed, the number may come back from another thread's accept,
      // which records it under mu_ too.
      absl::MutexLock l(&mu_);
      if (!fds_.erase(fd)) return SockResult::Error("EBADF");
      return FromSyscall(close(fd));
    }
    case Op::kSetNonBlocking: {
      int flags = fcntl(fd, F_GETFL);
      if (flags < 0) return FromSyscall(flags);
      return FromSyscall(fcntl(fd, F_SETFL, call.flag ? flags | O_NONBLOCK : flags & ~O_NONBLOCK));
    }
    case Op::kGetFlags:
      return FromSyscall(fcntl(fd, F_GETFL));
    case Op::kSetLinger: {
      linger l{call.flag ? 1 : 0, static_cast<int>(call.arg)};
      return FromSyscall(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l));
    }
    case Op::kSetNoDelay: {
      int on = call.flag ? 1 : 0;
      return FromSyscall(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on));
    }
    case Op::kSetReuseAddr: {
      int on = call.flag ? 1 : 0;
      return FromSyscall(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on));
    }
    case Op::kGetSoError: {
      int err = 0;
      socklen_t len = sizeof err;
      SockResult r = FromSyscall(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
      if (r.value == 0) r.so_error = err == 0 ? "0" : ErrnoText(err);
      return r;
    }
  }
  return SockResult::Error("EINVAL");
}

std::vector<std::string> KernelTarget::Describe() {
  std::vector<std::string> notes;
  absl::MutexLock l(&mu_);
  for (auto& [fd, open] : fds_) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) continue;
    notes.push_back(absl::StrFormat("kernel fd %d: %s", fd, LinuxTcpState(info.tcpi_state)));
  }
  return notes;
}

}  // namespace tcplab::grading
