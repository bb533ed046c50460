#include "tests/bench/tun/forwarder.h"

#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <vector>

#include "tests/bench/tun/kernel_load.h"

namespace tcplab::bench {

absl::StatusOr<std::unique_ptr<link::TunDevice>> OpenTunIn(const sandbox::Netns& ns,
                                                             const link::TunConfig& cfg) {
  absl::StatusOr<std::unique_ptr<link::TunDevice>> tun = absl::UnknownError("not run");
  std::thread t([&] {
    if (absl::Status s = ns.EnterOnThisThread(); !s.ok()) {
      tun = s;
      return;
    }
    tun = link::TunDevice::Open(cfg);
  });
  t.join();
  return tun;
}

absl::StatusOr<std::unique_ptr<TunForwarder>> TunForwarder::Create(int mtu) {
  std::unique_ptr<TunForwarder> f(new TunForwarder());
  for (auto* ns : {&f->a_, &f->b_}) {
    absl::StatusOr<std::unique_ptr<sandbox::Netns>> n = sandbox::Netns::Create();
    if (!n.ok()) return n.status();
    *ns = std::move(*n);
  }
  link::TunConfig cfg;
  cfg.mtu = mtu;
  cfg.txqueuelen = 2000;  // DESIGN.md: at 500 the kernel drops at full speed
  cfg.name = "fwd-a";
  cfg.kernel_addr = kAddrA;
  absl::StatusOr<std::unique_ptr<link::TunDevice>> a = OpenTunIn(*f->a_, cfg);
  if (!a.ok()) return a.status();
  cfg.name = "fwd-b";
  cfg.kernel_addr = kAddrB;
  absl::StatusOr<std::unique_ptr<link::TunDevice>> b = OpenTunIn(*f->b_, cfg);
  if (!b.ok()) return b.status();
  f->tun_a_ = std::move(*a);
  f->tun_b_ = std::move(*b);
  f->thread_ = std::thread([p = f.get()] { p->Run(); });
  return f;
}

TunForwarder::~TunForwarder() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  tun_a_.reset();
  tun_b_.reset();
  // a_ and b_ go last (members are destroyed in reverse order): the namespaces are removed.
}

void TunForwarder::Run() {
  pthread_setname_np(pthread_self(), "forwarder");
  PinToDatapathCpu();
  std::vector<uint8_t> buf(65536);
  pollfd fds[2] = {{tun_a_->fd(), POLLIN, 0}, {tun_b_->fd(), POLLIN, 0}};
  const int out[2] = {tun_b_->fd(), tun_a_->fd()};
  while (!stop_) {
    if (poll(fds, 2, 100) <= 0) continue;  // 100 ms: look at stop_ now and then
    for (int side = 0; side < 2; ++side) {
      if (!(fds[side].revents & POLLIN)) continue;
      // Up to 64 datagrams per wakeup, like the sandbox's reactor; each its own read and write.
      for (int i = 0; i < 64; ++i) {
        ssize_t n = read(fds[side].fd, buf.data(), buf.size());
        if (n <= 0) break;
        if (write(out[side], buf.data(), static_cast<size_t>(n)) == n) forwarded_++;
      }
    }
  }
}

}  // namespace tcplab::bench

