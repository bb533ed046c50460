// 10 MiB each way between the engine and the Linux kernel over an impaired link (5% loss,
// 10% reordering, 2% duplication, 1 ms delay), both directions at once: the bytes still
// arrive SHA-256 identical and the connection still closes cleanly through TIME-WAIT.
//
// netem shapes egress only (DESIGN.md), so on the TUN it impairs kernel->engine; the
// engine's own impairer (Direction::kToKernel) impairs engine->kernel. Where the kernel has
// no sch_netem, the netem test skips, saying so, and the second test, which always runs,
// impairs kernel->engine with the engine's inbound impairer (Direction::kToEngine) instead.
// Needs root (namespaces, TUN, tc); skips without it.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/sandbox/sandbox.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/tun/tun_testing.h"

namespace tcplab::sandbox {
namespace {

using ::testing::HasSubstr;
using tcp::TcpState;
using namespace std::chrono_literals;
using namespace tuntest;

constexpr wire::Ipv4 kKernel = wire::Ipv4::Of(198, 18, 0, 1);
constexpr wire::Ipv4 kEngine = wire::Ipv4::Of(198, 18, 0, 2);
constexpr size_t kTransfer = 10 << 20;

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult Sh(const std::string& cmd) {
  CommandResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The engine's impairer set to what the netem qdisc below does.
link::Impairment LikeNetem(uint64_t seed) {
  link::Impairment imp;
  imp.loss = 0.05;
  imp.reorder = 0.10;
  imp.duplicate = 0.02;
  imp.delay = 1ms;
  imp.reorder_delay = 2ms;
  imp.seed = seed;
  return imp;
}

class NetemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces, TUN and tc (label tun)";
    SandboxConfig cfg;
    cfg.name = "netem";
    cfg.engine.tcp.msl = 500ms;  // TIME-WAIT of 1 s keeps the test short
    cfg.engine.tcp.min_rto = 200ms;
    cfg.engine.isn_secret[0] = 5;
    cfg.pcap_max_bytes = 0;  // 20 MiB of traffic: the capture is not what is tested here
    auto sb = Sandbox::Create(cfg);
    ASSERT_TRUE(sb.ok()) << sb.status();
    sb_ = std::move(*sb);
    dev_ = cfg.tun.name;
  }

  // Connects, moves kTransfer octets each way at once, checks them, closes (engine first)
  // and checks that both ends went through the whole close: the engine FIN-WAIT and
  // TIME-WAIT to CLOSED, the kernel CLOSE-WAIT and LAST-ACK to CLOSED, no RST.
  void TransferAndClose() {
    ASSERT_TRUE(sb_->Listen(StackKind::kKernel, {kKernel, 5001}).ok());
    auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 5001});
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE(WaitUntil([&] { return Accepted(*sb_, StackKind::kKernel, 5001).has_value(); },
                          absl::Seconds(30)));
    tcp::ConnId k = *Accepted(*sb_, StackKind::kKernel, 5001);

    const std::string up = RandomBytes(kTransfer, 1), down = RandomBytes(kTransfer, 2);
    absl::Time t0 = absl::Now();
    auto [at_kernel, at_engine] = Exchange(*sb_, *e, k, up, down, absl::Seconds(300));
    std::fprintf(stderr, "2 x %zu octets in %s\n", kTransfer, absl::FormatDuration(absl::Now() - t0).c_str());
    ASSERT_EQ(at_kernel.size(), up.size());
    ASSERT_EQ(at_engine.size(), down.size());
    EXPECT_EQ(Sha256Hex(at_kernel), Sha256Hex(up));
    EXPECT_EQ(Sha256Hex(at_engine), Sha256Hex(down));

    // Losses really happened both ways: both senders had to retransmit.
    auto ei = sb_->Get(*e);
    auto ki = sb_->Get(k);
    ASSERT_TRUE(ei.ok() && ki.ok());
    EXPECT_GT(ei->engine->counters.retransmissions, 0u) << "engine->kernel was not impaired";
    EXPECT_GT(ki->kernel->total_retrans, 0u) << "kernel->engine was not impaired";

    ASSERT_TRUE(sb_->Close(*e).ok());
    ASSERT_TRUE(WaitState(*sb_, k, TcpState::kCloseWait, absl::Seconds(30)));
    ASSERT_TRUE(sb_->Close(k).ok());
    ASSERT_TRUE(WaitState(*sb_, *e, TcpState::kClosed, absl::Seconds(60)));
    ASSERT_TRUE(WaitState(*sb_, k, TcpState::kClosed, absl::Seconds(60)));
    std::vector<TcpState> ep = Path(*sb_, *e);
    EXPECT_THAT(ep, ::testing::Contains(TcpState::kFinWait1));
    EXPECT_THAT(ep, ::testing::Contains(TcpState::kTimeWait));
    EXPECT_EQ(ep.back(), TcpState::kClosed);
    EXPECT_THAT(Path(*sb_, k), ::testing::Contains(TcpState::kLastAck));
    auto after = sb_->Get(*e);
    if (after.ok() && after->engine) {
      EXPECT_EQ(after->engine->error, "") << "the engine's connection ended abnormally";
    }
  }

  std::unique_ptr<Sandbox> sb_;
  std::string dev_;
};

// kernel->engine: tc netem on the TUN (the kernel's egress); engine->kernel: the engine's
// outbound impairer.
TEST_F(NetemTest, KernelToEngineThroughNetemQdisc) {
  const std::string tc = absl::StrCat("ip netns exec ", sb_->netns_name(), " tc qdisc add dev ", dev_,
                                      " root netem loss 5% reorder 10% 25% delay 1ms duplicate 2%");
  CommandResult r = Sh(tc);
  if (r.exit_code != 0 && r.output.find("Specified qdisc kind is unknown") != std::string::npos) {
    GTEST_SKIP() << "netem is unavailable in this kernel (tc: \""
                 << absl::StripAsciiWhitespace(r.output)
                 << "\": no sch_netem). NetemTest.KernelToEngineThroughEngineImpairer covers the same "
                    "property with the engine's inbound impairer.";
  }
  ASSERT_EQ(r.exit_code, 0) << tc << ": " << r.output;
  CommandResult show = Sh(absl::StrCat("ip netns exec ", sb_->netns_name(), " tc qdisc show dev ", dev_));
  ASSERT_THAT(show.output, HasSubstr("netem")) << show.output;
  ASSERT_TRUE(sb_->SetImpairment(Direction::kToKernel, LikeNetem(21)).ok());
  TransferAndClose();
}

// The same property without netem: kernel->engine through the engine's inbound impairer.
// Runs everywhere (as root), netem or not.
TEST_F(NetemTest, KernelToEngineThroughEngineImpairer) {
  ASSERT_TRUE(sb_->SetImpairment(Direction::kToKernel, LikeNetem(21)).ok());
  ASSERT_TRUE(sb_->SetImpairment(Direction::kToEngine, LikeNetem(22)).ok());
  TransferAndClose();
}

}  // namespace
}  // namespace tcplab::sandbox
