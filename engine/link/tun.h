// A Linux TUN device: raw IPv4 datagrams between the engine and the kernel of one network
// namespace. The kernel side gets `kernel_addr/prefix_len`; whatever the kernel routes into
// that subnet (198.18.0.2 and up by default) comes out of Read(), and whatever Write() hands
// in arrives at the kernel as if received on the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/wire/segment.h"

namespace tcplab::link {

struct TunConfig {
  std::string name = "tcplab0";  // at most 15 octets (IFNAMSIZ - 1)
  wire::Ipv4 kernel_addr = wire::Ipv4::Of(198, 18, 0, 1);
  int prefix_len = 24;  // 1..32
  int mtu = 1500;       // 68 (RFC 791 minimum) .. 65535
  // 2000, not Linux's default 500: at 500 the kernel drops packets at full speed.
  int txqueuelen = 2000;
  // Offloads (IFF_VNET_HDR): every datagram through the fd carries a struct virtio_net_hdr,
  // and the kernel is told (TUNSETOFFLOAD TUN_F_CSUM|TUN_F_TSO4) that we take unchecksummed
  // datagrams and TCP/IPv4 super-segments: it may then hand us one datagram of up to 64 KiB
  // where it would have sent many of MTU size, so the read system calls per octet fall.
  // TunDevice hides the header: Read() returns a plain IPv4 datagram (with its TCP checksum
  // completed), possibly larger than `mtu`; Write() sends a datagram that fits the MTU with a
  // header that asks nothing (no GSO, checksum already complete), and a larger TCP/IPv4 one
  // (from TcpConfig::tso_max_bytes) as GSO TCPV4, which the kernel takes as the MTU-sized
  // segments it stands for.
  bool vnet_hdr = false;
};

class TunDevice {
 public:
  // Creates the device and configures it. Call it on a thread that is inside the target
  // namespace (Netns::EnterOnThisThread, or a Reactor started with that Netns): the TUN, the
  // configuration socket and /proc/sys/net all belong to the calling thread's namespace.
  // Afterwards the device works from any thread.
  //
  // In order: /dev/net/tun with IFF_TUN|IFF_NO_PI (O_NONBLOCK|O_CLOEXEC); IPv6 disabled on
  // the device while it is still down (no router solicitations, no MLD reports, no DAD);
  // address and netmask; MTU; txqueuelen; IFF_UP; and `lo` up.
  //
  // Errors:
  //   PERMISSION_DENIED  no CAP_NET_ADMIN; the message names it and --backend=virtual.
  //   INVALID_ARGUMENT   a TunConfig field is out of range; the message names it.
  //   other              the failing call and its errno text ("ioctl(TUNSETIFF, x): ...").
  static absl::StatusOr<std::unique_ptr<TunDevice>> Open(const TunConfig& config);

  // Closes the fd; the (non-persistent) device disappears with it.
  ~TunDevice();

  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;

  // Non-blocking; register it with a reactor for EPOLLIN.
  int fd() const { return fd_; }
  // The name the kernel gave the device (the configured one).
  const std::string& name() const { return name_; }
  const TunConfig& config() const { return config_; }

  // Reads one datagram into `buf` and returns its length, or 0 if none is waiting. `buf`
  // should hold at least `mtu` octets (65535 with vnet_hdr): the kernel truncates a datagram
  // that does not fit.
  absl::StatusOr<size_t> Read(std::span<uint8_t> buf);
  // Hands one complete IP datagram to the kernel. The kernel accepts or drops it silently
  // (bad checksums, no route...); an error here means the write itself failed.
  absl::Status Write(std::span<const uint8_t> datagram);

 private:
  TunDevice(int fd, std::string name, const TunConfig& config)
      : fd_(fd), name_(std::move(name)), config_(config) {}
  absl::StatusOr<size_t> ReadWithVnetHdr(std::span<uint8_t> buf);

  std::vector<uint8_t> gso_buf_;  // Write's copy of a super-segment (its checksum field changes)

  int fd_;
  std::string name_;
  TunConfig config_;
};

}  // namespace tcplab::link
