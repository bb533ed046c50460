// The forwarder ceiling of tun_bench: two network namespaces, each with a TUN device, and one
// user-space thread that moves every datagram from one TUN to the other, one read(2) and one
// write(2) per datagram. Kernel A (198.18.0.1/24, device fwd-a) and kernel B (198.18.0.2/24,
// device fwd-b) see each other on one subnet behind their TUNs, so TCP between them crosses
// user space exactly once each way: the least any user-space stack behind a TUN pays.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "engine/link/tun.h"
#include "engine/sandbox/netns.h"

namespace tcplab::bench {

class TunForwarder {
 public:
  static constexpr wire::Ipv4 kAddrA = wire::Ipv4::Of(198, 18, 0, 1);
  static constexpr wire::Ipv4 kAddrB = wire::Ipv4::Of(198, 18, 0, 2);

  // Creates both namespaces and TUNs (MTU `mtu`, txqueuelen 2000) and starts forwarding.
  static absl::StatusOr<std::unique_ptr<TunForwarder>> Create(int mtu);
  // Stops the thread, closes both TUNs and removes both namespaces.
  ~TunForwarder();
  TunForwarder(const TunForwarder&) = delete;
  TunForwarder& operator=(const TunForwarder&) = delete;

  const std::string& netns_a() const { return a_->path(); }
  const std::string& netns_b() const { return b_->path(); }
  uint64_t forwarded() const { return forwarded_; }

 private:
  TunForwarder() = default;
  void Run();

  std::unique_ptr<sandbox::Netns> a_, b_;
  std::unique_ptr<link::TunDevice> tun_a_, tun_b_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> forwarded_{0};
  std::thread thread_;
};

// Opens a TUN inside `ns` (from a short-lived thread that enters it: TUNSETIFF and the
// device's configuration follow the calling thread's namespace).
absl::StatusOr<std::unique_ptr<link::TunDevice>> OpenTunIn(const sandbox::Netns& ns,
                                                             const link::TunConfig& cfg);

}  // namespace tcplab::bench
