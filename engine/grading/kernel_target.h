// KernelTarget: the Linux kernel as a grading target, in a fresh network namespace, in real
// time. The script's peer is the far end of a TUN device: injected datagrams are written
// to it, and what the kernel routes to 198.18.0.2 is read from it. Socket calls are the real
// system calls, each on a thread of its own (sockets are created inside the namespace), so a
// call that blocks (accept, connect, read) waits in the kernel while the script goes on, as
// in packetdrill. A call counts as blocked once its thread sleeps inside that system call.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/grading/target.h"
#include "engine/link/tun.h"
#include "engine/sandbox/netns.h"

namespace tcplab::grading {

class KernelTarget final : public Target {
 public:
  // Needs CAP_SYS_ADMIN and CAP_NET_ADMIN (the sandbox's privileges); the error says so.
  static absl::StatusOr<std::unique_ptr<KernelTarget>> Create();
  ~KernelTarget() override;  // interrupts calls still blocked, closes every socket

  std::string name() const override { return "kernel"; }
  bool virtual_time() const override { return false; }
  Duration Now() override;
  void AdvanceTo(Duration t) override;
  absl::Status Inject(std::span<const uint8_t> datagram) override;
  std::optional<Sent> NextSent(Duration deadline) override;
  int StartCall(const SockCall& call) override;
  std::optional<Done> Poll(int call) override;
  std::vector<std::string> Describe() override;

  const std::string& netns_name() const { return netns_->name(); }

 private:
  struct Call;
  KernelTarget(std::unique_ptr<sandbox::Netns> netns, std::unique_ptr<link::TunDevice> tun);
  void Run(Call& c);  // on the call's thread
  void Reap();
  bool CannotBlock(const SockCall& call);
  SockResult Execute(const SockCall& call);

  std::unique_ptr<sandbox::Netns> netns_;
  std::unique_ptr<link::TunDevice> tun_;
  const std::chrono::steady_clock::time_point start_;
  std::vector<uint8_t> buf_;

  absl::Mutex mu_;
  std::vector<std::shared_ptr<Call>> calls_ ABSL_GUARDED_BY(mu_);
  std::map<int, bool> fds_ ABSL_GUARDED_BY(mu_);  // sockets the script opened and not closed
};

}  // namespace tcplab::grading
