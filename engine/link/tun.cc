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

}  // namespace

absl::StatusOr<std::unique_ptr<TunDevice>> TunDevice::Open(const TunConfig& config) {
  if (absl::Status valid = Validate(config); !valid.ok()) return valid;
  if (!HaveNetAdmin()) return absl::PermissionDeniedError(kNoNetAdmin);

  // The TUN joins the namespace of the thread that opens /dev/net/tun.
  ScopedFd fd(open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return SyscallError("open(/dev/net/tun)", errno);

  ifreq ifr = IfreqFor(config.name);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (absl::Status s = Ioctl(fd.get(), TUNSETIFF, "TUNSETIFF", config.name, ifr); !s.ok()) {
    return s;
  }
  std::string name(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

  // Before IFF_UP: once up with IPv6 on, the kernel starts MLD reports and router
  // solicitations at once.
  if (absl::Status s = DisableIpv6(name); !s.ok()) return s;
  if (absl::Status s = Configure(config, name); !s.ok()) return s;
  return std::unique_ptr<TunDevice>(new TunDevice(fd.release(), std::move(name), config));
}

TunDevice::~TunDevice() { close(fd_); }

absl::StatusOr<size_t> TunDevice::Read(std::span<uint8_t> buf) {
  while (true) {
    const ssize_t n = read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return absl::ErrnoToStatus(errno, absl::StrCat("read(", name_, ")"));
  }
}

absl::Status TunDevice::Write(std::span<const uint8_t> datagram) {
  while (true) {
    const ssize_t n = write(fd_, datagram.data(), datagram.size());
    if (n >= 0) {
      if (static_cast<size_t>(n) == datagram.size()) return absl::OkStatus();
      return absl::InternalError(absl::StrCat("write(", name_, "): wrote ", n, " of ",
                                              datagram.size(), " octets"));
    }
    if (errno == EINTR) continue;
    return absl::ErrnoToStatus(errno, absl::StrCat("write(", name_, ", ", datagram.size(),
                                                   " octets)"));
  }
}

}  // namespace tcplab::link
