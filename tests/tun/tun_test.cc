// TunDevice inside a fresh network namespace, with that namespace's kernel as the peer on
// the other side. Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN for the TUN);
// skips itself otherwise. All traffic stays inside namespaces the tests create, on
// 198.18.0.0/24.
#include "engine/link/tun.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/sandbox/netns.h"
#include "engine/sandbox/reactor.h"
#include "engine/wire/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tcplab::link {
namespace {

using sandbox::HaveCapability;
using sandbox::Netns;
using sandbox::Reactor;
using ::testing::HasSubstr;

constexpr wire::Ipv4 kKernelAddr = wire::Ipv4::Of(198, 18, 0, 1);
constexpr wire::Ipv4 kEngineAddr = wire::Ipv4::Of(198, 18, 0, 2);
// Generous: only a hang or a lost packet makes a test wait this long.
constexpr absl::Duration kHangTimeout = absl::Seconds(10);

bool Privileged() {
  return geteuid() == 0 && HaveCapability(CAP_SYS_ADMIN) && HaveCapability(CAP_NET_ADMIN);
}
constexpr char kSkipMessage[] =
    "needs root with CAP_SYS_ADMIN (network namespaces) and CAP_NET_ADMIN (TUN); run the "
    "`tun` tests as root";

int CountOpenFds() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

int CountRunDirEntries(const std::string& prefix) {
  int n = 0;
  DIR* dir = opendir(sandbox::kNetnsRunDir);
  if (dir == nullptr) return 0;
  while (const dirent* e = readdir(dir)) {
    if (absl::StartsWith(e->d_name, prefix)) ++n;
  }
  closedir(dir);
  return n;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int IpVersion(std::span<const uint8_t> p) { return p.empty() ? 0 : p[0] >> 4; }
uint32_t Ipv4Field(std::span<const uint8_t> p, size_t at) {
  return (uint32_t{p[at]} << 24) | (uint32_t{p[at + 1]} << 16) | (uint32_t{p[at + 2]} << 8) |
         p[at + 3];
}

// One ioctl on an AF_INET socket made on the calling thread (so in its namespace).
std::optional<ifreq> GetIf(const char* dev, unsigned long request) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return std::nullopt;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
  const int rc = ioctl(sock, request, &ifr);
  close(sock);
  if (rc != 0) return std::nullopt;
  return ifr;
}

uint32_t SockaddrIpv4(const sockaddr& sa) {
  sockaddr_in in;
  std::memcpy(&in, &sa, sizeof(in));
  return ntohl(in.sin_addr.s_addr);
}

// A namespace, a reactor inside it, a TUN opened on the reactor, and every datagram the
// kernel sends into the TUN captured in order.
class TunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Privileged()) GTEST_SKIP() << kSkipMessage;
    auto netns = Netns::Create();
    ASSERT_TRUE(netns.ok()) << netns.status();
    netns_ = *std::move(netns);
    auto reactor = Reactor::Start(netns_.get(), "tun-test");
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = *std::move(reactor);
  }

  void TearDown() override {
    if (reactor_ != nullptr) {
      reactor_->Call([this] {
        if (tun_ != nullptr) reactor_->Unwatch(tun_->fd());
        tun_.reset();
      });
    }
    reactor_.reset();
    netns_.reset();
  }

  // Opens the TUN on the reactor thread and starts capturing what the kernel sends.
  void OpenTun(const TunConfig& config = {}) {
    absl::Status status = reactor_->Call([&]() -> absl::Status {
      auto tun = TunDevice::Open(config);
      if (!tun.ok()) return tun.status();
      tun_ = *std::move(tun);
      opened_at_ = reactor_->Now();
      reactor_->Watch(tun_->fd(), EPOLLIN, [this](uint32_t) { Drain(); });
      return absl::OkStatus();
    });
    ASSERT_TRUE(status.ok()) << status;
  }

  void Drain() {
    std::vector<uint8_t> buf(65536);
    while (true) {
      absl::StatusOr<size_t> n = tun_->Read(buf);
      ASSERT_TRUE(n.ok()) << n.status();
      if (*n == 0) return;
      absl::MutexLock lock(&mu_);
      packets_.emplace_back(buf.begin(), buf.begin() + *n);
    }
  }

  // Waits for a captured datagram that satisfies `pred`; nullopt after kHangTimeout.
  std::optional<std::vector<uint8_t>> WaitForPacket(
      const std::function<bool(std::span<const uint8_t>)>& pred) {
    std::optional<std::vector<uint8_t>> found;
    auto match = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& p : packets_) {
        if (pred(p)) {
          found = p;
          return true;
        }
      }
      return false;
    };
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&match), kHangTimeout);
    return found;
  }

  std::optional<wire::SegmentRepr> WaitForTcp(
      const std::function<bool(const wire::SegmentRepr&)>& pred) {
    auto packet = WaitForPacket([&](std::span<const uint8_t> p) {
      auto seg = wire::Parse(p);
      return seg.ok() && pred(*seg);
    });
    if (!packet) return std::nullopt;
    // Parse again into storage that outlives this call (the payload span is dropped).
    last_packet_ = *packet;
    auto seg = wire::Parse(last_packet_);
    return *seg;
  }

  std::vector<std::vector<uint8_t>> Captured() {
    absl::MutexLock lock(&mu_);
    return packets_;
  }

  void WriteSegment(const wire::SegmentRepr& seg) {
    std::vector<uint8_t> bytes;
    wire::Serialize(seg, bytes);
    absl::Status written = tun_->Write(bytes);  // any thread may write
    ASSERT_TRUE(written.ok()) << written;
  }

  std::unique_ptr<Netns> netns_;
  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<TunDevice> tun_;  // reactor thread (and Write from the test)
  Instant opened_at_;
  absl::Mutex mu_;
  std::vector<std::vector<uint8_t>> packets_ ABSL_GUARDED_BY(mu_);
  std::vector<uint8_t> last_packet_;
};

TEST_F(TunTest, DeviceIsConfiguredAsAsked) {
  ASSERT_NO_FATAL_FAILURE(OpenTun());
  EXPECT_EQ(tun_->name(), "tcplab0");
  EXPECT_NE(fcntl(tun_->fd(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(tun_->fd(), F_GETFD) & FD_CLOEXEC, 0);
  reactor_->Call([] {
    auto addr = GetIf("tcplab0", SIOCGIFADDR);
    ASSERT_TRUE(addr.has_value());
    EXPECT_EQ(SockaddrIpv4(addr->ifr_addr), kKernelAddr.v);
    auto mask = GetIf("tcplab0", SIOCGIFNETMASK);
    ASSERT_TRUE(mask.has_value());
    EXPECT_EQ(SockaddrIpv4(mask->ifr_netmask), 0xffffff00u);
    auto mtu = GetIf("tcplab0", SIOCGIFMTU);
    ASSERT_TRUE(mtu.has_value());
    EXPECT_EQ(mtu->ifr_mtu, 1500);
    auto qlen = GetIf("tcplab0", SIOCGIFTXQLEN);
    ASSERT_TRUE(qlen.has_value());
    EXPECT_EQ(qlen->ifr_qlen, 2000);
    auto flags = GetIf("tcplab0", SIOCGIFFLAGS);
    ASSERT_TRUE(flags.has_value());
    EXPECT_NE(flags->ifr_flags & IFF_UP, 0);
    auto lo = GetIf("lo", SIOCGIFFLAGS);
    ASSERT_TRUE(lo.has_value());
    EXPECT_NE(lo->ifr_flags & IFF_UP, 0);
  });
  // The device exists only in the sandbox's namespace, not in the test thread's.
  EXPECT_FALSE(GetIf("tcplab0", SIOCGIFFLAGS).has_value());
}

TEST_F(TunTest, NonDefaultMtuTxqueuelenAndPrefix) {
  TunConfig config;
  config.name = "tcplabx";
  config.mtu = 9000;
  config.txqueuelen = 4321;
  config.prefix_len = 30;
  ASSERT_NO_FATAL_FAILURE(OpenTun(config));
  reactor_->Call([] {
    auto mtu = GetIf("tcplabx", SIOCGIFMTU);
    ASSERT_TRUE(mtu.has_value());
    EXPECT_EQ(mtu->ifr_mtu, 9000);
    auto qlen = GetIf("tcplabx", SIOCGIFTXQLEN);
    ASSERT_TRUE(qlen.has_value());
    EXPECT_EQ(qlen->ifr_qlen, 4321);
    auto mask = GetIf("tcplabx", SIOCGIFNETMASK);
    ASSERT_TRUE(mask.has_value());
    EXPECT_EQ(SockaddrIpv4(mask->ifr_netmask), 0xfffffffcu);
  });
}

TEST_F(TunTest, KernelUdpDatagramComesOutOfTheTun) {
  ASSERT_NO_FATAL_FAILURE(OpenTun());
  const std::string message = "hello from the kernel";
  const int sent_errno = reactor_->Call([&] {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return errno;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9999);
    to.sin_addr.s_addr = htonl(kEngineAddr.v);
    int err = 0;
    if (sendto(sock, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&to),
               sizeof(to)) < 0) {
      err = errno;
    }
    close(sock);
    return err;
  });
  ASSERT_EQ(sent_errno, 0) << strerror(sent_errno);

  auto packet = WaitForPacket([](std::span<const uint8_t> p) {
    return IpVersion(p) == 4 && p.size() >= 28 && p[9] == 17 /* UDP */ &&
           Ipv4Field(p, 16) == kEngineAddr.v;
  });
  ASSERT_TRUE(packet.has_value()) << "no UDP datagram to 198.18.0.2 came out of the TUN";
  const std::vector<uint8_t>& p = *packet;
  EXPECT_EQ(Ipv4Field(p, 12), kKernelAddr.v);
  const size_t ihl = (p[0] & 0x0f) * 4u;
  ASSERT_GE(p.size(), ihl + 8);
  EXPECT_EQ((p[ihl + 2] << 8) | p[ihl + 3], 9999);
  EXPECT_EQ(std::string(p.begin() + ihl + 8, p.end()), message);
}

TEST_F(TunTest, SynToClosedPortGetsRstFromTheKernel) {
  ASSERT_NO_FATAL_FAILURE(OpenTun());
  wire::SegmentRepr syn;
  syn.src = {kEngineAddr, 40000};
  syn.dst = {kKernelAddr, 9};  // nothing listens on it in a fresh namespace
  syn.seq = wire::SeqNum(1000);
  syn.flags = wire::kSyn;
  syn.window = 65535;
  syn.options.mss = 1460;
  ASSERT_NO_FATAL_FAILURE(WriteSegment(syn));

  // RFC 9293 §3.10.7.1: a SYN to a CLOSED port is answered <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
  auto rst = WaitForTcp([](const wire::SegmentRepr& s) {
    return s.src == wire::Endpoint{kKernelAddr, 9} && s.dst == wire::Endpoint{kEngineAddr, 40000};
  });
  ASSERT_TRUE(rst.has_value()) << "the kernel did not answer the SYN";
  EXPECT_TRUE(rst->Has(wire::kRst | wire::kAck)) << rst->ToString();
  EXPECT_EQ(rst->ack, wire::SeqNum(1001)) << rst->ToString();
}

TEST_F(TunTest, SynToListeningKernelSocketGetsSynAck) {
  ASSERT_NO_FATAL_FAILURE(OpenTun());
  // The kernel peer: a listening socket in the sandbox namespace, made on its reactor.
  const int listener = reactor_->Call([] {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(8080);
    addr.sin_addr.s_addr = htonl(kKernelAddr.v);
    if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(s, 8) != 0) {
      return -1;
    }
    return s;
  });
  ASSERT_GE(listener, 0) << strerror(errno);

  wire::SegmentRepr syn;
  syn.src = {kEngineAddr, 40001};
  syn.dst = {kKernelAddr, 8080};
  syn.seq = wire::SeqNum(5000);
  syn.flags = wire::kSyn;
  syn.window = 65535;
  syn.options.mss = 1400;
  ASSERT_NO_FATAL_FAILURE(WriteSegment(syn));

  auto synack = WaitForTcp([](const wire::SegmentRepr& s) {
    return s.src == wire::Endpoint{kKernelAddr, 8080} && s.Has(wire::kSyn);
  });
  ASSERT_TRUE(synack.has_value()) << "no SYN-ACK from the listening kernel socket";
  EXPECT_TRUE(synack->Has(wire::kSyn | wire::kAck)) << synack->ToString();
  EXPECT_EQ(synack->ack, wire::SeqNum(5001));
  EXPECT_TRUE(synack->options.mss.has_value());

  // Abort the half-open connection so the kernel stops retransmitting, then close.
  wire::SegmentRepr rst;
  rst.src = syn.src;
  rst.dst = syn.dst;
  rst.seq = wire::SeqNum(5001);
  rst.flags = wire::kRst;
  ASSERT_NO_FATAL_FAILURE(WriteSegment(rst));
  close(listener);
}

TEST_F(TunTest, Ipv6IsDisabledSoTheKernelSendsNoIpv6) {
  ASSERT_NO_FATAL_FAILURE(OpenTun());
  // The setting reached the sandbox namespace: /proc/sys/net resolves per thread, and only
  // the reactor thread is in there.
  auto in_sandbox = reactor_->Call(
      [] { return ReadFile("/proc/sys/net/ipv6/conf/tcplab0/disable_ipv6"); });
  ASSERT_TRUE(in_sandbox.has_value());
  EXPECT_EQ(*in_sandbox, "1\n");
  EXPECT_FALSE(ReadFile("/proc/sys/net/ipv6/conf/tcplab0/disable_ipv6").has_value())
      << "tcplab0 must not exist in the test thread's namespace";

  // 500 ms after bring-up: nothing IPv6 came out (no router solicitation, no MLD report).
  absl::SleepFor(absl::Milliseconds(500));
  reactor_->Call([] {});  // let the loop drain whatever is readable
  int ipv6 = 0;
  for (const auto& p : Captured()) ipv6 += IpVersion(p) == 6;
  EXPECT_EQ(ipv6, 0);
}

// The control for the test above: a TUN brought up in the same way but with IPv6 left on
// does send IPv6 (MLD reports, router solicitations), so silence above means something.
// Also shows what /proc/net (the thread group leader's namespace) and /proc/thread-self/net
// (the calling thread's) see, which is why DisableIpv6 goes through /proc/sys/net.
TEST_F(TunTest, ControlWithIpv6LeftOnTheKernelSendsIpv6) {
  struct Raw {
    int fd = -1;
    std::string error;
    std::string proc_sys;
    bool in_proc_net = false;
    bool in_proc_thread_self_net = false;
  };
  Raw raw = reactor_->Call([] {
    Raw r;
    r.fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "tcplabv6", IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (r.fd < 0 || ioctl(r.fd, TUNSETIFF, &ifr) != 0) {
      r.error = absl::StrCat("TUNSETIFF: ", strerror(errno));
      return r;
    }
    r.proc_sys = ReadFile("/proc/sys/net/ipv6/conf/tcplabv6/disable_ipv6").value_or("missing");
    r.in_proc_net = absl::StrContains(ReadFile("/proc/net/dev").value_or(""), "tcplabv6");
    r.in_proc_thread_self_net =
        absl::StrContains(ReadFile("/proc/thread-self/net/dev").value_or(""), "tcplabv6");
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ioctl(sock, SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) r.error = absl::StrCat("SIOCSIFFLAGS: ", strerror(errno));
    close(sock);
    return r;
  });
  ASSERT_TRUE(raw.error.empty()) << raw.error;
  EXPECT_EQ(raw.proc_sys, "0\n");
  EXPECT_TRUE(raw.in_proc_thread_self_net);
  EXPECT_FALSE(raw.in_proc_net) << "/proc/net follows the process, not the thread";

  const absl::Time deadline = absl::Now() + kHangTimeout;
  bool saw_ipv6 = false;
  std::vector<uint8_t> buf(65536);
  while (!saw_ipv6 && absl::Now() < deadline) {
    const ssize_t n = read(raw.fd, buf.data(), buf.size());
    if (n > 0 && IpVersion(std::span<const uint8_t>(buf.data(), n)) == 6) saw_ipv6 = true;
    if (n <= 0) absl::SleepFor(absl::Milliseconds(10));
  }
  close(raw.fd);
  EXPECT_TRUE(saw_ipv6) << "a TUN with IPv6 on sent nothing IPv6 within " << kHangTimeout;
}

TEST_F(TunTest, SecondDeviceWithTheSameNameNamesTheFailingCall) {
  ASSERT_NO_FATAL_FAILURE(OpenTun());
  auto second = reactor_->Call([] { return TunDevice::Open(TunConfig{}); });
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("TUNSETIFF"));
  EXPECT_THAT(second.status().message(), HasSubstr("tcplab0"));
}

TEST_F(TunTest, WithoutCapNetAdminSaysWhatIsMissing) {
  absl::Status status;
  std::thread([&] {
    ASSERT_TRUE(netns_->EnterOnThisThread().ok());
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    ASSERT_EQ(syscall(SYS_capget, &header, data), 0);
    data[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
    ASSERT_EQ(syscall(SYS_capset, &header, data), 0);
    status = TunDevice::Open(TunConfig{}).status();
  }).join();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("CAP_NET_ADMIN"));
  EXPECT_THAT(status.message(), HasSubstr("--backend=virtual"));
}

TEST(TunConfigTest, OutOfRangeFieldsAreNamed) {
  // Validation comes before any privileged call, so this runs without root.
  struct Case {
    TunConfig config;
    const char* field;
  };
  std::vector<Case> cases;
  TunConfig c;
  c.name = "this-name-is-far-too-long";
  cases.push_back({c, "TunConfig.name"});
  c = {};
  c.name = "";
  cases.push_back({c, "TunConfig.name"});
  c = {};
  c.prefix_len = 33;
  cases.push_back({c, "TunConfig.prefix_len"});
  c = {};
  c.mtu = 67;
  cases.push_back({c, "TunConfig.mtu"});
  c = {};
  c.txqueuelen = -1;
  cases.push_back({c, "TunConfig.txqueuelen"});
  for (const Case& k : cases) {
    auto tun = TunDevice::Open(k.config);
    EXPECT_EQ(tun.status().code(), absl::StatusCode::kInvalidArgument) << k.field;
    EXPECT_THAT(tun.status().message(), HasSubstr(k.field));
  }
}

TEST(TunCycles, ThousandTunAndNamespaceCyclesLeakNothing) {
  if (!Privileged()) GTEST_SKIP() << kSkipMessage;
  const int fds_before = CountOpenFds();
  const std::string prefix = absl::StrCat(sandbox::kNetnsPrefix, getpid(), "-");
  const int entries_before = CountRunDirEntries(prefix);
  for (int i = 0; i < 1000; ++i) {
    auto netns = Netns::Create();
    ASSERT_TRUE(netns.ok()) << "cycle " << i << ": " << netns.status();
    auto reactor = Reactor::Start(netns->get(), "tun-cycle");
    ASSERT_TRUE(reactor.ok()) << "cycle " << i << ": " << reactor.status();
    auto tun = (*reactor)->Call([] { return TunDevice::Open(TunConfig{}); });
    ASSERT_TRUE(tun.ok()) << "cycle " << i << ": " << tun.status();
  }
  EXPECT_EQ(CountOpenFds(), fds_before);
  EXPECT_EQ(CountRunDirEntries(prefix), entries_before);
  EXPECT_EQ(entries_before, 0);
}

}  // namespace
}  // namespace tcplab::link
