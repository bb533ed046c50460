// The runner against the Linux kernel (real time): blocking calls detected as blocked and
// returning when the peer's segment arrives, mismatches reported as for the engine, and a
// write to a reset connection failing with EPIPE instead of raising SIGPIPE.
// Skips, saying why, without the privileges a namespace and a TUN need.
#include <linux/capability.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/grading/kernel_target.h"
#include "engine/grading/parser.h"
#include "engine/grading/runner.h"
#include "engine/sandbox/netns.h"

namespace tcplab::grading {
namespace {

using ::testing::ElementsAre;

class KernelRunner : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sandbox::HaveCapability(CAP_SYS_ADMIN) || !sandbox::HaveCapability(CAP_NET_ADMIN)) {
      GTEST_SKIP() << "the kernel target needs CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root)";
    }
  }
  ScriptResult Run(const std::string& text) {
    absl::StatusOr<Script> s = ParseScript("k.pkt", text);
    EXPECT_TRUE(s.ok()) << s.status();
    absl::StatusOr<std::unique_ptr<KernelTarget>> k = KernelTarget::Create();
    EXPECT_TRUE(k.ok()) << k.status();
    if (!s.ok() || !k.ok()) return {};
    RunOptions o;
    o.tolerance_usecs = 20000;  // a shared machine's scheduling, not the kernel's behaviour
    return RunScript(*s, **k, o);
  }
};

TEST_F(KernelRunner, BlockingAcceptReturnsWhenTheHandshakeCompletes) {
  ScriptResult r = Run(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0...0.3 accept(3, ..., ...) = 4
+.1 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.2 < . 1:1(0) ack 1 win 65535
+0 close(4) = 0
+0 > F. 1:1(0) ack 1
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST_F(KernelRunner, BlockingConnectAndBlockingRead) {
  ScriptResult r = Run(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0...0.1 connect(3, ..., ...) = 0
+0 > S 0:0(0) <...>
+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0 > . 1:1(0) ack 1
+0...0.2 read(3, ..., 100) = 10
+.2 < P. 1:11(10) ack 1 win 65535
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST_F(KernelRunner, WrongAckIsReportedFieldByField) {
  ScriptResult r = Run(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 2 <mss 1460>
)");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.line, 5);
  EXPECT_THAT(r.diffs, ElementsAre(FieldDiff{"ack", "2", "1"}));
  EXPECT_EQ(r.target, "kernel");
}

TEST_F(KernelRunner, AClosedFdIsForgottenAndNoOtherFdIsTouched) {
  // The kernel gives fd 3's number to the next socket; the script's fd 3 must stay closed.
  ScriptResult r = Run(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 close(3) = 0
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4
+0 close(3) = -1 EBADF
+0 fcntl(4, F_GETFL) = 0x2
+0 close(4) = 0
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST_F(KernelRunner, RefusedConnectGivesEconnrefused) {
  ScriptResult r = Run(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0...0.1 connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)
+0 > S 0:0(0) <...>
+.1 < R. 0:0(0) ack 1 win 0
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

// write(2) to a connection the peer reset (here in CLOSE-WAIT, where Linux reports EPIPE)
// must return -1 EPIPE to the script, not raise SIGPIPE, which would kill the grading process
// (and this test binary).
TEST_F(KernelRunner, WriteToAResetConnectionReturnsEpipeInsteadOfRaisingSigpipe) {
  ScriptResult r = Run(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.1 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
+.1 < F. 1:1(0) ack 1 win 65535
+0 > . 1:1(0) ack 2
+.1 < R 2:2(0) win 0
+.1 write(4, ..., 10) = -1 EPIPE (Broken pipe)
+0 write(4, ..., 10) = -1 EPIPE (Broken pipe)
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

}  // namespace
}  // namespace tcplab::grading
