#include "engine/link/tun.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tcplab::link {
namespace {

constexpr char kNoNetAdmin[] =
    "opening and configuring a TUN device needs CAP_NET_ADMIN, which this thread does not "
    "have; run as root (or grant CAP_NET_ADMIN and CAP_SYS_ADMIN), or use --backend=virtual "
    "for a sandbox without privileges";

// Same test as sandbox::HaveCapability (kept local: link/ does not depend on sandbox/).
bool HaveNetAdmin() {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return true;  // let the real call decide
  return (data[CAP_NET_ADMIN / 32].effective >> (CAP_NET_ADMIN % 32)) & 1u;
}

absl::Status SyscallError(absl::string_view call, int err) {
  if (err == EPERM) return absl::PermissionDeniedError(absl::StrCat(call, ": ", kNoNetAdmin));
  return absl::ErrnoToStatus(err, call);
}

// Closes a descriptor on every early return.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

absl::Status Validate(const TunConfig& config) {
  if (config.name.empty() || config.name.size() >= IFNAMSIZ ||
      config.name.find_first_of("/ :\t\n") != std::string::npos || config.name == "." ||
      config.name == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "TunConfig.name \"", config.name, "\" is not a valid interface name (1..",
        IFNAMSIZ - 1, " octets, no '/', ':' or blanks)"));
  }
  if (config.prefix_len < 1 || config.prefix_len > 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("TunConfig.prefix_len is ", config.prefix_len, "; want 1..32"));
  }
  if (config.mtu < 68 || config.mtu > 65535) {  // RFC 791: every host must take 68 octets
    return absl::InvalidArgumentError(
        absl::StrCat("TunConfig.mtu is ", config.mtu, "; want 68..65535"));
  }
  if (config.txqueuelen < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("TunConfig.txqueuelen is ", config.txqueuelen, "; want >= 0"));
  }
  return absl::OkStatus();
}

ifreq IfreqFor(const std::string& name) {
  ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  std::memcpy(ifr.ifr_name, name.data(), name.size());  // Validate keeps it < IFNAMSIZ
  return ifr;
}

sockaddr InetSockaddr(uint32_t host_order_addr) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(host_order_addr);
  sockaddr out;
  static_assert(sizeof(in) <= sizeof(out));
  std::memset(&out, 0, sizeof(out));
  std::memcpy(&out, &in, sizeof(in));
  return out;
}

absl::Status Ioctl(int fd, unsigned long request, absl::string_view request_name,
                   const std::string& dev, ifreq& ifr) {
  if (ioctl(fd, request, &ifr) != 0) {
    return SyscallError(absl::StrCat("ioctl(", request_name, ", ", dev, ")"), errno);
  }
  return absl::OkStatus();
}

absl::Status SetUp(int sock, const std::string& dev) {
  ifreq ifr = IfreqFor(dev);
  if (absl::Status s = Ioctl(sock, SIOCGIFFLAGS, "SIOCGIFFLAGS", dev, ifr); !s.ok()) return s;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  return Ioctl(sock, SIOCSIFFLAGS, "SIOCSIFFLAGS", dev, ifr);
}

// Writes 1 to net.ipv6.conf.<dev>.disable_ipv6. /proc/sys/net resolves against the network
// namespace of the *calling thread* (unlike /proc/net, which follows /proc/self, the thread
// group leader), so on the thread that made the device this reaches the device's namespace;
// tests/tun/tun_test.cc checks both the file and the silence on the wire.
absl::Status DisableIpv6(const std::string& dev) {
  const std::string path = absl::StrCat("/proc/sys/net/ipv6/conf/", dev, "/disable_ipv6");
  ScopedFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    // A kernel without IPv6 (ipv6.disable=1) has no /proc/sys/net/ipv6 and sends nothing.
    struct stat st;
    if (err == ENOENT && stat("/proc/sys/net/ipv6", &st) != 0) return absl::OkStatus();
    return SyscallError(absl::StrCat("open(", path, ")"), err);
  }
  if (write(fd.get(), "1\n", 2) != 2) {
    return SyscallError(absl::StrCat("write(", path, ", \"1\")"), errno);
  }
  return absl::OkStatus();
}

absl::Status Configure(const TunConfig& config, const std::string& dev) {
  // Any AF_INET socket carries the address ioctls; made here, it lives in this thread's
  // namespace, which is the device's.
  ScopedFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return SyscallError("socket(AF_INET, SOCK_DGRAM)", errno);

  ifreq ifr = IfreqFor(dev);
  ifr.ifr_addr = InetSockaddr(config.kernel_addr.v);
  if (absl::Status s = Ioctl(sock.get(), SIOCSIFADDR, "SIOCSIFADDR", dev, ifr); !s.ok()) return s;

  ifr = IfreqFor(dev);
  const uint32_t mask = config.prefix_len == 32 ? 0xffffffffu : ~(0xffffffffu >> config.prefix_len);
  ifr.ifr_netmask = InetSockaddr(mask);
  if (absl::Status s = Ioctl(sock.get(), SIOCSIFNETMASK, "SIOCSIFNETMASK", dev, ifr); !s.ok()) {
    return s;
  }

  ifr = IfreqFor(dev);
  ifr.ifr_mtu = config.mtu;
  if (absl::Status s = Ioctl(sock.get(), SIOCSIFMTU, "SIOCSIFMTU", dev, ifr); !s.ok()) return s;

  ifr = IfreqFor(dev);
  ifr.ifr_qlen = config.txqueuelen;
  if (absl::Status s = Ioctl(sock.get(), SIOCSIFTXQLEN, "SIOCSIFTXQLEN", dev, ifr); !s.ok()) {
    return s;
  }

  if (absl::Status s = SetUp(sock.get(), dev); !s.ok()) return s;
  // The namespace's loopback starts down; kernel-peer sockets bound to 127.0.0.1 need it.
  return SetUp(sock.get(), "lo");
}

// struct virtio_net_hdr of the virtio specification (§5.1.6), the header IFF_VNET_HDR puts in
// front of each datagram, in the host's byte order (a TUN is little-endian on x86 either way).
// Declared here because <linux/virtio_net.h> does not compile as C++ (a member named `class`).
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VnetHdr) == 10);
constexpr uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
// gso_type: 0 VIRTIO_NET_HDR_GSO_NONE, 1 VIRTIO_NET_HDR_GSO_TCPV4.

// With IFF_VNET_HDR and TUN_F_CSUM the kernel may leave the transport checksum to us
// (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field at csum_start + csum_offset then holds the sum of
// the pseudo-header only, and the one's complement sum of everything from csum_start to the
// end of the datagram, complemented, belongs there. Returns false if the offsets do not fit.
bool CompleteChecksum(const VnetHdr& h, std::span<uint8_t> d) {
  const size_t start = h.csum_start, field = size_t{h.csum_start} + h.csum_offset;
  if (start >= d.size() || field + 2 > d.size()) return false;
  uint32_t sum = 0;
  size_t i = start;
  for (; i + 1 < d.size(); i += 2) sum += (uint32_t{d[i]} << 8) | d[i + 1];
  if (i < d.size()) sum += uint32_t{d[i]} << 8;  // odd length: pad with a zero octet
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t csum = static_cast<uint16_t>(~sum);
  d[field] = static_cast<uint8_t>(csum >> 8);
  d[field + 1] = static_cast<uint8_t>(csum);
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TunDevice>> TunDevice::Open(const TunConfig& config) {
  if (absl::Status valid = Validate(config); !valid.ok()) return valid;
  if (!HaveNetAdmin()) return absl::PermissionDeniedError(kNoNetAdmin);

  // The TUN joins the namespace of the thread that opens /dev/net/tun.
  ScopedFd fd(open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return SyscallError("open(/dev/net/tun)", errno);

  ifreq ifr = IfreqFor(config.name);
  ifr.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (config.vnet_hdr ? IFF_VNET_HDR : 0));
  if (absl::Status s = Ioctl(fd.get(), TUNSETIFF, "TUNSETIFF", config.name, ifr); !s.ok()) {
    return s;
  }
  std::string name(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

  if (config.vnet_hdr) {
    // The plain virtio_net_hdr (10 octets): no num_buffers, no hash report.
    int hdr_size = sizeof(VnetHdr);
    if (ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr_size) != 0) {
      return SyscallError(absl::StrCat("ioctl(TUNSETVNETHDRSZ, ", name, ")"), errno);
    }
    // We complete partial checksums and take TCP/IPv4 super-segments (Read). Without these
    // the kernel segments and checksums everything itself before the TUN.
    if (ioctl(fd.get(), TUNSETOFFLOAD, static_cast<unsigned long>(TUN_F_CSUM | TUN_F_TSO4)) != 0) {
      return SyscallError(absl::StrCat("ioctl(TUNSETOFFLOAD, ", name, ")"), errno);
    }
  }

  // Before IFF_UP: once up with IPv6 on, the kernel starts MLD reports and router
  // solicitations at once.
  if (absl::Status s = DisableIpv6(name); !s.ok()) return s;
  if (absl::Status s = Configure(config, name); !s.ok()) return s;
  return std::unique_ptr<TunDevice>(new TunDevice(fd.release(), std::move(name), config));
}

TunDevice::~TunDevice() { close(fd_); }

absl::StatusOr<size_t> TunDevice::Read(std::span<uint8_t> buf) {
  if (config_.vnet_hdr) return ReadWithVnetHdr(buf);
  while (true) {
    const ssize_t n = read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return absl::ErrnoToStatus(errno, absl::StrCat("read(", name_, ")"));
  }
}

// The header goes into its own iovec so the datagram is neither copied nor moved.
absl::StatusOr<size_t> TunDevice::ReadWithVnetHdr(std::span<uint8_t> buf) {
  VnetHdr h;
  iovec iov[2] = {{&h, sizeof(h)}, {buf.data(), buf.size()}};
  ssize_t n;
  while (true) {
    n = readv(fd_, iov, 2);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return absl::ErrnoToStatus(errno, absl::StrCat("readv(", name_, ")"));
  }
  if (static_cast<size_t>(n) < sizeof(h)) {
    return absl::InternalError(absl::StrCat("readv(", name_, "): ", n, " octets, shorter than "
                                            "the virtio_net_hdr"));
  }
  std::span<uint8_t> d = buf.first(static_cast<size_t>(n) - sizeof(h));
  // A GSO super-segment (gso_type TCPV4) needs nothing more: its IPv4 header already has the
  // whole length and a valid checksum, and the engine takes it as one large segment.
  if ((h.flags & kVnetNeedsCsum) && !CompleteChecksum(h, d)) {
    return absl::InternalError(absl::StrCat("readv(", name_, "): csum_start ", h.csum_start,
                                            " + csum_offset ", h.csum_offset,
                                            " outside a datagram of ", d.size(), " octets"));
  }
  return d.size();
}

absl::Status TunDevice::Write(std::span<const uint8_t> datagram) {
  // With vnet_hdr, a header first. For a datagram that fits the MTU, zero: gso_type NONE,
  // flags 0 (the checksum is complete).
  VnetHdr h{};
  const uint8_t* d = datagram.data();
  const size_t ihl = datagram.size() >= 20 ? size_t{d[0] & 0x0fu} * 4 : 0;
  if (config_.vnet_hdr && datagram.size() > static_cast<size_t>(config_.mtu) && ihl >= 20 &&
      (d[0] >> 4) == 4 && d[9] == 6 && datagram.size() >= ihl + 20) {
    // A TCP super-segment: GSO TCPV4, cut at MTU - headers, with the checksum left partial
    // (NEEDS_CSUM), the way the kernel's own TSO output looks: the field holds the folded
    // pseudo-header sum over the whole TCP length, and each segment gets its own checksum.
    const size_t hdr_len = ihl + size_t{d[ihl + 12]} / 16 * 4;  // + TCP data offset
    if (hdr_len >= static_cast<size_t>(config_.mtu) || hdr_len >= datagram.size()) {
      return absl::InvalidArgumentError(absl::StrCat("write(", name_, "): headers of ", hdr_len,
                                                     " octets leave no room under the MTU"));
    }
    h.flags = kVnetNeedsCsum;
    h.gso_type = 1;  // VIRTIO_NET_HDR_GSO_TCPV4
    h.hdr_len = static_cast<uint16_t>(hdr_len);
    h.gso_size = static_cast<uint16_t>(config_.mtu - hdr_len);
    h.csum_start = static_cast<uint16_t>(ihl);
    h.csum_offset = 16;  // TCP checksum field
    gso_buf_.assign(datagram.begin(), datagram.end());
    uint32_t sum = 6 + static_cast<uint32_t>(datagram.size() - ihl);  // protocol, TCP length
    for (size_t i = 12; i < 20; i += 2) sum += (uint32_t{d[i]} << 8) | d[i + 1];  // addresses
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    gso_buf_[ihl + 16] = static_cast<uint8_t>(sum >> 8);
    gso_buf_[ihl + 17] = static_cast<uint8_t>(sum);
    datagram = gso_buf_;
  }
  iovec iov[2] = {{&h, sizeof(h)}, {const_cast<uint8_t*>(datagram.data()), datagram.size()}};
  const bool vnet = config_.vnet_hdr;
  const size_t want = datagram.size() + (vnet ? sizeof(h) : 0);
  while (true) {
    const ssize_t n = vnet ? writev(fd_, iov, 2) : write(fd_, datagram.data(), datagram.size());
    if (n >= 0) {
      if (static_cast<size_t>(n) == want) return absl::OkStatus();
      return absl::InternalError(absl::StrCat("write(", name_, "): wrote ", n, " of ",
                                              want, " octets"));
    }
    if (errno == EINTR) continue;
    return absl::ErrnoToStatus(errno, absl::StrCat("write(", name_, ", ", datagram.size(),
                                                   " octets)"));
  }
}

}  // namespace tcplab::link
