// lwIP behind a TUN: the user-space stack tun_bench measures the engine against. Debian's
// liblwip (lwIP 2.1) with the raw API, driven the way small user-space stacks are driven:
// one thread reads the TUN one datagram per read(2) into a pbuf and hands it to ip_input;
// lwIP's netif output writes each datagram to the TUN; the same thread runs lwIP's timers
// (sys_check_timeouts) and the application callbacks. lwIP's tcpip thread is never started,
// so this is lwIP's NO_SYS-style single-threaded use of the library Debian built (with
// NO_SYS 0: its core-lock check passes while no tcpip thread exists).
//
// What Debian's build fixes at compile time (lwipopts.h) and therefore limits every row:
// TCP_MSS 1460 (also at MTU 9000), TCP_WND and TCP_SND_BUF 64 KiB, no TCP timestamps, no
// SACK, software checksums.
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

class LwipPeer {
 public:
  static constexpr wire::Ipv4 kKernelAddr = wire::Ipv4::Of(198, 18, 0, 1);
  static constexpr wire::Ipv4 kLwipAddr = wire::Ipv4::Of(198, 18, 0, 2);

  // What lwIP's side does; set up on the driver thread when it starts.
  struct App {
    enum class Kind { kSink, kSource, kAcceptClose } kind = Kind::kSink;
    // kSink: listen here and read everything (octets into `meter`); kSource: connect to
    // kKernelAddr:port and write as fast as the send buffer allows; kAcceptClose: listen on
    // port .. port+ports-1, close each connection when the client's FIN arrives.
    uint16_t port = 0;
    int ports = 1;
    std::atomic<uint64_t>* meter = nullptr;
  };

  // A namespace with a TUN (kernel 198.18.0.1/24, MTU `mtu`, txqueuelen 2000). lwIP is one
  // global instance: at most one LwipPeer exists at a time (FAILED_PRECONDITION otherwise).
  static absl::StatusOr<std::unique_ptr<LwipPeer>> Create(int mtu);
  // Starts the driver thread: lwIP's netif at 198.18.0.2 on the TUN, running `app`. Once.
  void Start(App app);
  // Aborts lwIP's connections (RST), removes the netif, stops the thread, removes the namespace.
  ~LwipPeer();
  LwipPeer(const LwipPeer&) = delete;
  LwipPeer& operator=(const LwipPeer&) = delete;

  const std::string& netns() const { return ns_->path(); }

  struct State;  // lwIP-side state, driver thread only (lwip_peer.cc)

 private:
  LwipPeer() = default;

  std::unique_ptr<sandbox::Netns> ns_;
  std::unique_ptr<link::TunDevice> tun_;
  std::unique_ptr<State> state_;
  std::thread thread_;
};

}  // namespace tcplab::bench
