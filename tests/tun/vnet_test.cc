// The TUN backend with TunConfig.vnet_hdr (IFF_VNET_HDR, TUN_F_CSUM|TUN_F_TSO4): the kernel
// hands the engine TCP super-segments larger than the MTU, with partial checksums the TUN
// completes. Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN); skips, saying so, without it.
#include <unistd.h>

#include <cstring>
#include <string>

#include "engine/sandbox/sandbox.h"
#include "gtest/gtest.h"
#include "tests/tun/tun_testing.h"

namespace tcplab::sandbox {
namespace {

using tcp::TcpState;
using namespace std::chrono_literals;

constexpr wire::Ipv4 kKernel = wire::Ipv4::Of(198, 18, 0, 1);
constexpr wire::Ipv4 kEngine = wire::Ipv4::Of(198, 18, 0, 2);

class VnetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and TUN (label tun)";
    SandboxConfig cfg;
    cfg.name = "v";
    cfg.tun.vnet_hdr = true;  // MTU stays 1500: super-segments must exceed it
    cfg.engine.tcp.msl = 500ms;
    cfg.engine.tcp.min_rto = 200ms;
    cfg.engine.isn_secret[0] = 7;
    cfg.engine.tcp.tso_max_bytes = 65536;  // and the engine sends super-segments (GSO) too
    cfg.pcap_max_bytes = 64 << 20;  // the whole exchange fits: the capture stays complete
    auto sb = Sandbox::Create(cfg);
    ASSERT_TRUE(sb.ok()) << sb.status();
    sb_ = std::move(*sb);
  }
  std::unique_ptr<Sandbox> sb_;
};

// Handshake, 10 MiB each way at once (SHA-256 identical on both ends), and a clean close; at
// least one datagram each way was larger than the MTU, so GSO was in effect both ways.
TEST_F(VnetTest, TenMebibytesEachWayWithGso) {
  const std::string up = tuntest::RandomBytes(10 << 20, 11), down = tuntest::RandomBytes(10 << 20, 12);
  ASSERT_TRUE(sb_->Listen(StackKind::kKernel, {kKernel, 5001}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 5001});
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE(tuntest::WaitState(*sb_, *e, TcpState::kEstablished));
  ASSERT_TRUE(tuntest::WaitUntil([&] { return tuntest::Accepted(*sb_, StackKind::kKernel, 5001).has_value(); }));
  tcp::ConnId k = *tuntest::Accepted(*sb_, StackKind::kKernel, 5001);

  auto [at_kernel, at_engine] = tuntest::Exchange(*sb_, *e, k, up, down, absl::Seconds(120));
  ASSERT_EQ(at_kernel.size(), up.size());
  ASSERT_EQ(at_engine.size(), down.size());
  EXPECT_EQ(tuntest::Sha256Hex(at_kernel), tuntest::Sha256Hex(up));
  EXPECT_EQ(tuntest::Sha256Hex(at_engine), tuntest::Sha256Hex(down));

  // The engine closes first; the kernel follows.
  ASSERT_TRUE(sb_->Shutdown(*e).ok());
  ASSERT_TRUE(tuntest::WaitState(*sb_, k, TcpState::kCloseWait));
  ASSERT_TRUE(sb_->Close(k).ok());
  ASSERT_TRUE(tuntest::WaitState(*sb_, *e, TcpState::kTimeWait));
  ASSERT_TRUE(tuntest::WaitState(*sb_, *e, TcpState::kClosed));

  SandboxCounters c = sb_->counters();
  EXPECT_GT(c.tun_gso_datagrams_in, 0u) << "no datagram from the kernel exceeded the MTU";
  EXPECT_GT(c.tun_gso_datagrams_out, 0u) << "the engine sent no super-segment";
  EXPECT_EQ(c.tun_write_errors, 0u);
  EXPECT_EQ(c.tun_datagrams_in, c.pcap.datagrams_captured - c.tun_datagrams_out - c.loopback_datagrams);

  // Every completed partial checksum verified in the engine's parse.
  uint64_t bad_checksums = ~uint64_t{0};
  sb_->SetLocalApp([&](stack::Stack& engine, Instant) {
    bad_checksums = engine.counters().bad_checksums;
    return false;
  });
  sb_->SetLocalApp(nullptr);
  EXPECT_EQ(bad_checksums, 0u);

  // The capture is still a valid pcap: walk its records, super-segments included (snaplen
  // 65535 keeps them whole), and check each holds one whole IPv4 datagram.
  auto p = sb_->Pcap();
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string& f = *p;
  auto u32 = [&](size_t off) {
    uint32_t v;
    std::memcpy(&v, f.data() + off, 4);
    return v;
  };
  ASSERT_GE(f.size(), 24u);
  EXPECT_EQ(u32(0), 0xa1b23c4du);
  size_t off = 24, records = 0, big = 0;
  while (off + 16 <= f.size()) {
    const uint32_t incl = u32(off + 8), orig = u32(off + 12);
    ASSERT_EQ(incl, orig);
    ASSERT_LE(off + 16 + incl, f.size());
    const auto* d = reinterpret_cast<const uint8_t*>(f.data() + off + 16);
    ASSERT_GE(incl, 20u);
    EXPECT_EQ(size_t{d[2]} << 8 | d[3], incl) << "IPv4 total length of record " << records;
    if (incl > 1500) ++big;  // either way
    off += 16 + incl;
    ++records;
  }
  EXPECT_EQ(off, f.size());
  EXPECT_EQ(records, c.pcap.datagrams_captured);
  EXPECT_EQ(big, c.tun_gso_datagrams_in + c.tun_gso_datagrams_out);
}

}  // namespace
}  // namespace tcplab::sandbox
