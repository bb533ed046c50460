#include "tests/bench/tun/kernel_load.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <set>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace tcplab::bench {
namespace {

using Clock = std::chrono::steady_clock;

// How often a blocked call gives the loop a chance to see the stop flag.
constexpr int kTickMs = 100;
constexpr size_t kChunk = 256 * 1024;

sockaddr_in Sockaddr(wire::Endpoint ep) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(ep.ip.v);
  a.sin_port = htons(ep.port);
  return a;
}

void SetTimeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

absl::StatusOr<int> ListenOn(wire::Endpoint local, bool nonblocking) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = Sockaddr(local);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4096) != 0) {
    absl::Status s = absl::ErrnoToStatus(errno, absl::StrCat("bind/listen ", local.ToString()));
    close(fd);
    return s;
  }
  return fd;
}

}  // namespace

absl::Status EnterNetns(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open(", path, ")"));
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (rc != 0) return absl::ErrnoToStatus(err, absl::StrCat("setns(", path, ")"));
  return absl::OkStatus();
}

namespace {
std::atomic<bool> g_pinning{false};

void PinTo(int cpu) {
  if (!g_pinning || std::thread::hardware_concurrency() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
}  // namespace

void SetPinning(bool on) { g_pinning = on; }
void PinToDatapathCpu() { PinTo(0); }
void PinToAppCpu() { PinTo(1); }

KernelLoad::KernelLoad(std::string netns_path) : netns_path_(std::move(netns_path)) {}

KernelLoad::~KernelLoad() { Stop(); }

void KernelLoad::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

absl::Status KernelLoad::Spawn(const char* name, std::function<absl::Status()> setup,
                              std::function<void()> run) {
  auto status = std::make_shared<absl::Status>();
  auto ready = std::make_shared<absl::Notification>();
  threads_.emplace_back([this, name, status, ready, setup = std::move(setup), run = std::move(run)] {
    pthread_setname_np(pthread_self(), name);  // for top -H and perf
    PinToAppCpu();
    *status = EnterNetns(netns_path_);
    if (status->ok()) *status = setup();
    const bool ok = status->ok();
    ready->Notify();
    if (ok) run();
  });
  ready->WaitForNotification();
  return *status;
}

absl::Status KernelLoad::BulkReceive(wire::Endpoint local, std::atomic<uint64_t>* meter) {
  auto listener = std::make_shared<int>(-1);
  return Spawn("k-bulk-recv",
      [listener, local]() -> absl::Status {
        absl::StatusOr<int> fd = ListenOn(local, /*nonblocking=*/false);
        if (!fd.ok()) return fd.status();
        *listener = *fd;
        SetTimeouts(*listener, kTickMs);  // accept() gives up after a tick
        return absl::OkStatus();
      },
      [this, listener, meter] {
        std::vector<char> buf(kChunk);
        while (!stop_) {
          int fd = accept4(*listener, nullptr, nullptr, SOCK_CLOEXEC);
          if (fd < 0) continue;
          SetTimeouts(fd, kTickMs);
          while (!stop_) {
            ssize_t n = read(fd, buf.data(), buf.size());
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
            if (n > 0) *meter += static_cast<uint64_t>(n);
          }
          close(fd);
        }
        close(*listener);
      });
}

void KernelLoad::BulkSend(wire::Endpoint remote) {
  (void)Spawn("k-bulk-send", [] { return absl::OkStatus(); },
              [this, remote] {
                std::vector<char> buf(kChunk, 'k');
                int fd = -1;
                for (auto give_up = Clock::now() + std::chrono::seconds(2); !stop_ && Clock::now() < give_up;) {
                  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                  SetTimeouts(fd, kTickMs);
                  sockaddr_in a = Sockaddr(remote);
                  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) break;
                  close(fd);
                  fd = -1;
                  std::this_thread::sleep_for(std::chrono::milliseconds(10));
                }
                while (fd >= 0 && !stop_) {
                  ssize_t n = write(fd, buf.data(), buf.size());
                  if (n < 0 && errno != EAGAIN && errno != EINTR) break;
                }
                if (fd >= 0) close(fd);
              });
}

absl::Status KernelLoad::HandshakeServer(wire::Ipv4 ip, uint16_t first_port, int ports) {
  auto ep = std::make_shared<int>(-1);
  auto listeners = std::make_shared<std::vector<int>>();
  return Spawn("k-hs-server",
      [ep, listeners, ip, first_port, ports]() -> absl::Status {
        *ep = epoll_create1(EPOLL_CLOEXEC);
        if (*ep < 0) return absl::ErrnoToStatus(errno, "epoll_create1");
        for (int i = 0; i < ports; ++i) {
          absl::StatusOr<int> fd = ListenOn({ip, static_cast<uint16_t>(first_port + i)}, /*nonblocking=*/true);
          if (!fd.ok()) return fd.status();
          listeners->push_back(*fd);
          epoll_event ev{};
          ev.events = EPOLLIN;
          // Listeners are told apart from connections by a tag bit above the fd.
          ev.data.u64 = (uint64_t{1} << 32) | static_cast<uint32_t>(*fd);
          epoll_ctl(*ep, EPOLL_CTL_ADD, *fd, &ev);
        }
        return absl::OkStatus();
      },
      [this, ep, listeners] {
        epoll_event events[64];
        char buf[4096];
        std::set<int> open;
        while (!stop_) {
          int n = epoll_wait(*ep, events, 64, kTickMs);
          for (int i = 0; i < n; ++i) {
            int fd = static_cast<int>(static_cast<uint32_t>(events[i].data.u64));
            if (events[i].data.u64 >> 32) {
              for (int c; (c = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                epoll_event ev{};
                ev.events = EPOLLIN | EPOLLRDHUP;
                ev.data.u64 = static_cast<uint32_t>(c);
                epoll_ctl(*ep, EPOLL_CTL_ADD, c, &ev);
                open.insert(c);
              }
              continue;
            }
            for (;;) {
              ssize_t r = read(fd, buf, sizeof buf);
              if (r > 0) continue;
              if (r < 0 && errno == EAGAIN) break;
              close(fd);  // EOF (the client closed) or an error: close our half too
              open.erase(fd);
              break;
            }
          }
        }
        for (int fd : open) close(fd);
        for (int fd : *listeners) close(fd);
        close(*ep);
      });
}

void KernelLoad::HandshakeClient(wire::Ipv4 ip, uint16_t first_port, int ports,
                                 std::atomic<uint64_t>* meter, std::atomic<uint64_t>* failures) {
  (void)Spawn("k-hs-client", [] { return absl::OkStatus(); },
              [this, ip, first_port, ports, meter, failures] {
                for (int i = 0; !stop_; i = (i + 1) % ports) {
                  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                  // connect() gives up after this (a lost SYN waits 1 s for its retransmission).
                  SetTimeouts(fd, 1000);
                  sockaddr_in a = Sockaddr({ip, static_cast<uint16_t>(first_port + i)});
                  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
                    *meter += 1;
                  } else {
                    *failures += 1;
                  }
                  close(fd);
                }
              });
}

}  // namespace tcplab::bench
