// The runner against the engine in virtual time: scripts that pass, and deliberately wrong
// scripts, each of which must fail at the right line with the right mismatch.
#include "engine/grading/runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "engine/grading/engine_target.h"
#include "engine/grading/parser.h"

namespace tcplab::grading {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A listener on fd 3 and an accepted connection on fd 4, ESTABLISHED at 0.1 s.
constexpr char kEstablished[] = R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.1 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
)";

ScriptResult RunText(const std::string& text, const RunOptions& options = {}) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", text);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return {};
  EngineTarget engine;
  return RunScript(*s, engine, options);
}

ScriptResult RunAfterHandshake(const std::string& rest) { return RunText(absl::StrCat(kEstablished, rest)); }

TEST(Runner, PassiveHandshakeAndCloseFromThePeerPass) {
  ScriptResult r = RunAfterHandshake(R"(+.1 < F. 1:1(0) ack 1 win 65535
+0 > . 1:1(0) ack 2
+0 read(4, ..., 100) = 0
+.1 close(4) = 0
+0 > F. 1:1(0) ack 2
+.1 < . 2:2(0) ack 2 win 65535
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
  EXPECT_EQ(r.target, "engine");
  EXPECT_EQ(r.elapsed, std::chrono::milliseconds(400));  // virtual time: exact
}

TEST(Runner, WrongAckIsReportedFieldByField) {
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 2 win 100 <mss 1460>
)");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.line, 5);
  EXPECT_EQ(r.error,
            "t.pkt:5: segment mismatch (ack, win): expected > S. 0:0(0) ack 2 win 100 <mss 1460>, got > S. 0:0(0) "
            "ack 1 win 65535 <mss 1460>");
  EXPECT_THAT(r.diffs, ElementsAre(FieldDiff{"ack", "2", "1"}, FieldDiff{"win", "100", "65535"}));
  EXPECT_EQ(r.expected, "> S. 0:0(0) ack 2 win 100 <mss 1460>");
  EXPECT_EQ(r.actual, "> S. 0:0(0) ack 1 win 65535 <mss 1460>");
  // The timeline shows what led there, the engine's own state changes included.
  EXPECT_THAT(r.timeline, Contains(HasSubstr("inject < S 0:0(0) win 65535 <mss 1460>")));
  EXPECT_THAT(r.timeline, Contains(HasSubstr("LISTEN -> SYN-RECEIVED (SYN received)")));
  const std::string report = FormatFailure(r);
  EXPECT_THAT(report, HasSubstr("  ack  "));
  EXPECT_THAT(report, HasSubstr("expected: > S. 0:0(0) ack 2 win 100 <mss 1460>"));
}

TEST(Runner, WrongFlagsAndSequence) {
  ScriptResult r = RunAfterHandshake("+.1 close(4) = 0\n+0 > R. 5:5(0) ack 1\n");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.line, 9);
  EXPECT_THAT(r.diffs, ElementsAre(FieldDiff{"flags", "R.", "F."}, FieldDiff{"seq", "5", "1"}));
}

TEST(Runner, OptionsAreComparedByMeaningNotLayout) {
  // The engine offers mss, SACK, timestamps and window scaling on its SYN; written in
  // another order with other padding, they still match. The TS val is the engine's clock.
  ScriptResult ok = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS
+0 > S 0:0(0) <nop,wscale 7,mss 1460,nop,nop,TS val 1 ecr 0,sackOK,nop,nop>
)");
  ASSERT_FALSE(ok.passed);  // wscale differs: the engine's comes from its buffer size
  ASSERT_EQ(ok.diffs.size(), 1u);
  EXPECT_EQ(ok.diffs[0].field, "options");
  EXPECT_EQ(ok.diffs[0].expected, "<mss 1460,wscale 7,sackOK,TS ecr 0>");
  EXPECT_THAT(ok.diffs[0].actual, AllOf(HasSubstr("mss 1460"), HasSubstr("sackOK"), HasSubstr("TS ecr 0")));
}

TEST(Runner, SegmentTooEarlyIsATimingError) {
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+.2 > S. 0:0(0) ack 1 <mss 1460>
)");
  ASSERT_FALSE(r.passed);
  EXPECT_THAT(r.diffs, ElementsAre(FieldDiff{"time", "at 0.200000 s (tolerance 0.025000 s)", "at 0.000000 s"}));
}

TEST(Runner, MissingSegmentSaysNothingWasSent) {
  ScriptResult r = RunAfterHandshake("+.1 > F. 1:1(0) ack 1\n");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.error, "t.pkt:8: expected > F. 1:1(0) ack 1 at 0.200000 s but nothing was sent by 0.212500 s");
  EXPECT_EQ(r.actual, "(nothing)");
}

TEST(Runner, UnexpectedSegmentFailsTheNextLine) {
  // The SYN+ACK is sent but no line expects it: the next line fails, naming it.
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+.2 < . 1:1(0) ack 1 win 65535
)");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.line, 5);
  EXPECT_EQ(r.error,
            "t.pkt:5: unexpected segment sent at 0.000000 s: > S. 0:0(0) ack 1 win 65535 <mss 1460> (no line of "
            "the script expects it here)");
}

TEST(Runner, SegmentWithBadChecksumIsIgnored) {
  // Data with a bad checksum: no ACK; the same data with a good one is ACKed.
  ScriptResult r = RunAfterHandshake(R"(+.1 < P. 1:11(10) ack 1 win 65535 bad_csum
+.5 < P. 1:11(10) ack 1 win 65535
+0 read(4, ..., 100) = 10
)");
  // The good segment is ACKed (delayed ACK: 40 ms later); nothing answered the bad one.
  EXPECT_TRUE(r.passed) << FormatFailure(r);
  ScriptResult strict = RunAfterHandshake(R"(+.1 < P. 1:11(10) ack 1 win 65535
+.5 < . 11:11(0) ack 1 win 65535
)");
  ASSERT_FALSE(strict.passed);  // without bad_csum the data is ACKed, and no line expects it
  EXPECT_THAT(strict.error, HasSubstr("unexpected segment sent at 0.240000 s: > . 1:1(0) ack 11"));
}

TEST(Runner, WrongReturnValueAndErrno) {
  ScriptResult r = RunText("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 listen(3, 1) = -1 EINVAL\n");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.error, "t.pkt:2: listen returned 0, expected -1 EINVAL");
  EXPECT_THAT(r.diffs, ElementsAre(FieldDiff{"return", "-1 EINVAL", "0"}));
}

TEST(Runner, ReadOnAnUnknownFdIsEbadf) {
  ScriptResult r = RunText("0 read(7, ..., 10) = -1 EBADF\n");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST(Runner, BlockingCallReturnsWhenTheHandshakeCompletes) {
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
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

TEST(Runner, BlockingCallThatNeverReturns) {
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0...0.3 accept(3, ..., ...) = 4
)");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.line, 4);
  EXPECT_EQ(r.error,
            "t.pkt:4: accept(3, ..., ...) = 4 was expected to return at 0.300000 s but was still blocked at "
            "0.337501 s");
}

TEST(Runner, BlockingCallReturningLate) {
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0...0.1 accept(3, ..., ...) = 4
+.1 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.2 < . 1:1(0) ack 1 win 65535
)");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.line, 4);
  EXPECT_EQ(r.error, "t.pkt:4: accept returned at 0.300000 s, expected to return at 0.100000 s (tolerance 0.012500 s)");
}

TEST(Runner, NonBlockingConnectRefused) {
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 > S 0:0(0) <...>
+.1 < R. 0:0(0) ack 1 win 0
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST(Runner, LingerZeroCloseSendsRst) {
  ScriptResult r = RunAfterHandshake(R"(+0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0
+.1 close(4) = 0
+0 > R 1:1(0)
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST(Runner, TimestampEcrIsTranslatedToTheStacksClock) {
  // The script calls the engine's TS val "500"; an inbound ecr of 500 goes out as the real
  // value, so PAWS and RTT measurement see what a real peer would send.
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460,nop,nop,TS val 100 ecr 0>
+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,TS val 500 ecr 100>
+.1 < . 1:1(0) ack 1 win 65535 <nop,nop,TS val 110 ecr 500>
+0 accept(3, ..., ...) = 4
+0 write(4, ..., 10) = 10
+0 > P. 1:11(10) ack 1 <nop,nop,TS val 600 ecr 110>
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST(Runner, TargetSpecificLinesApplyToTheirTargetsOnly) {
  ScriptResult r = RunAfterHandshake(R"(// The kernel would answer differently; the engine follows the RFC.
@kernel +.1 close(4) = -1 EBADF
@engine,dut +.1 close(4) = 0  // RFC 9293 §3.10.4: CLOSE in ESTABLISHED sends FIN
@engine +0 > F. 1:1(0) ack 1  // likewise
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST(Runner, ScriptOptionsSetTheTolerance) {
  ScriptResult r = RunText(R"(--tolerance_usecs=300000
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+.2 > S. 0:0(0) ack 1 <mss 1460>
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
  // The grader's fixed tolerance wins over the script's.
  RunOptions fixed;
  fixed.tolerance_usecs = 1000;
  fixed.tolerance_usecs_fixed = true;
  ScriptResult strict = RunText(R"(--tolerance_usecs=300000
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+.2 > S. 0:0(0) ack 1 <mss 1460>
)", fixed);
  EXPECT_FALSE(strict.passed);
  ScriptResult bad = RunText("--tolerance_seconds=1\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
  ASSERT_FALSE(bad.passed);
  EXPECT_EQ(bad.error,
            "t.pkt:1: unknown option --tolerance_seconds; supported: --tolerance_usecs, --tolerance_percent");
}

TEST(Runner, UnsupportedArgumentsAreNamed) {
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_KEEPALIVE, [1], 4) = 0
)");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.error, "t.pkt:2: setsockopt: option 'SO_KEEPALIVE' is not supported");
  ScriptResult dgram = RunText("0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3\n");
  ASSERT_FALSE(dgram.passed);
  EXPECT_EQ(dgram.error, "t.pkt:1: socket: socket type 'SOCK_DGRAM' is not supported");
}

TEST(Runner, AHugeReadIsRefusedNotAllocated) {
  ScriptResult r = RunText("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 read(3, ..., 999999999999) = -1 ENOTCONN\n");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.error, "t.pkt:2: read: length 999999999999 is more than 16777216, the most a script may move in one call");
}

TEST(Runner, AClosedFdIsForgotten) {
  // After close(3), fd 3 means nothing, even though the target reuses its number.
  ScriptResult r = RunText(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 close(3) = 0
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4
+0 close(3) = -1 EBADF
+0 close(4) = 0
)");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST(Runner, AFailedAcceptWithoutAnErrnoNameIsMinusOne) {
  ScriptResult r = RunText("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 accept(3, ..., ...) = -1\n");
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

TEST(Runner, ToleranceOptionsAreBounded) {
  ScriptResult r = RunText("--tolerance_percent=inf\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.error, "t.pkt:1: --tolerance_percent needs a number from 0 to 100, got 'inf'");
}

}  // namespace
}  // namespace tcplab::grading
