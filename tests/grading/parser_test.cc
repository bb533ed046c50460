// Rules of the grading-script parser (engine/grading/parser.h), the language of
// engine/grading/SCRIPTS.md. One test per construct and one per error; error tests compare the
// whole message, line and column included, because that message is all a student sees.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <ostream>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/grading/parser.h"
#include "engine/grading/script.h"
#include "engine/wire/segment.h"

namespace tcplab::grading {

// gtest prints AST values in script syntax rather than as bytes.
void PrintTo(const Expr& e, std::ostream* os) { *os << ToString(e); }
void PrintTo(const SyscallEvent& c, std::ostream* os) { *os << ToString(c); }
void PrintTo(const PacketEvent& p, std::ostream* os) { *os << ToString(p); }
void PrintTo(const PacketOption& o, std::ostream* os) { *os << ToString(o); }
void PrintTo(const Event& e, std::ostream* os) { *os << ToString(e); }

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = TimeSpec::Kind;
using Mode = OptionsSpec::Mode;
using OptKind = PacketOption::Kind;
using ExprKind = Expr::Kind;

// ---------------------------------------------------------------------------------------------
// Helpers.

// The first error's full message, or "OK".
std::string ErrorOf(absl::string_view text) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", text);
  if (s.ok()) return "OK";
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
  return std::string(s.status().message());
}

// Parses `text`, which must hold exactly one event, and returns it. The event goes second, after
// one at time 0, so that it may have any time (a script's first event must be at 0).
Event One(absl::string_view text) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", absl::StrCat("0 close(99) = 0\n", text));
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok() || s->events.size() != 2) {
    ADD_FAILURE() << "expected one event in: " << text;
    return Event{};
  }
  return s->events[1];
}

SyscallEvent Call(absl::string_view line) {
  Event e = One(line);
  if (!std::holds_alternative<SyscallEvent>(e.body)) {
    ADD_FAILURE() << "not a system call: " << line;
    return SyscallEvent{};
  }
  return std::get<SyscallEvent>(e.body);
}

PacketEvent Packet(absl::string_view line) {
  Event e = One(line);
  if (!std::holds_alternative<PacketEvent>(e.body)) {
    ADD_FAILURE() << "not a packet: " << line;
    return PacketEvent{};
  }
  return std::get<PacketEvent>(e.body);
}

TimeSpec Time(absl::string_view line) { return One(line).time; }

// Argument locations differ between a line and its reprint; everything else must not.
void ClearLocations(std::vector<Expr>& exprs) {
  for (Expr& e : exprs) {
    e.loc = SourceLoc{};
    ClearLocations(e.items);
  }
}
void ClearLocations(Event& e) {
  if (auto* call = std::get_if<SyscallEvent>(&e.body)) ClearLocations(call->args);
}

// A realistic passive open, data, half-close and close, in the style of packetdrill's
// gtests/net/tcp scripts (written for these tests).
constexpr absl::string_view kServerScript = R"(--tolerance_usecs=10000
// Passive open: the stack under test listens, the script plays the client.

0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0

+.1 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0  > S. 0:0(0) ack 1 <...>
+.1 < . 1:1(0) ack 1 win 257
+0  accept(3, ..., ...) = 4

+0  < P. 1:1001(1000) ack 1 win 257
+0  > . 1:1(0) ack 1001
+0  read(4, ..., 1000) = 1000

/* The client closes first: CLOSE-WAIT, then our FIN (LAST-ACK). */
+0  < F. 1001:1001(0) ack 1 win 257
+0  > . 1:1(0) ack 1002
+0  close(4) = 0
+0  > F. 1:1(0) ack 1002
+.1 < . 1002:1002(0) ack 2 win 257
)";

// A realistic non-blocking active open that is refused.
constexpr absl::string_view kClientScript = R"(// Active open against a closed port.
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)
+0   fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0   setsockopt(3, IPPROTO_TCP, TCP_NODELAY, [1], 4) = 0
+0   connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0   > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>
+.05 < R. 0:0(0) ack 1 win 0
+0   getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0
+0   close(3) = 0
)";

// An established connection closed by the stack under test, with the blocking call and timing
// forms of packetdrill's blocking/ tests.
constexpr absl::string_view kActiveCloseScript = R"(--tolerance_usecs=5000 --tolerance_percent=25
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+.01...0.011 connect(3, ..., ...) = 0
+0    > S 0:0(0) <...>
+0    < S. 0:0(0) ack 1 win 32768 <mss 1000,nop,wscale 6,nop,nop,sackOK>
+0    > . 1:1(0) ack 1
+0    write(3, ..., 1000) = 1000
+0    > P. 1:1001(1000) ack 1
+0    < . 1:1(0) ack 1001 win 257
+0    setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=5}, 8) = 0
+0    shutdown(3, SHUT_WR) = 0
+0~+0.2 > F. 1001:1001(0) ack 1
+0    < . 1:1(0) ack 1002 win 257
+0    < F. 1:1(0) ack 1002 win 257
*     > . 1002:1002(0) ack 2
+0    send(3, ..., 10, 0) = -1 EPIPE (Broken pipe)
+0    recv(3, ..., 10, 0) = 0
+0    close(3) = 0
)";

// ---------------------------------------------------------------------------------------------
// Whole scripts.

TEST(Scripts, PassiveOpenHandshakeDataAndClose) {
  absl::StatusOr<Script> s = ParseScript("server.pkt", kServerScript);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->file, "server.pkt");
  ASSERT_EQ(s->options.size(), 1u);
  EXPECT_EQ(s->options[0].name, "tolerance_usecs");
  ASSERT_EQ(s->events.size(), 16u);
  // Event lines and times as the runner will see them.
  EXPECT_EQ(s->events[0].loc, (SourceLoc{4, 1}));
  EXPECT_EQ(s->events[4].text, "+.1 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>");
  EXPECT_EQ(s->events[4].time.kind, Kind::kRelative);
  EXPECT_EQ(s->events[4].time.start_us, 100000);
  const auto& syn_ack = std::get<PacketEvent>(s->events[5].body);
  EXPECT_EQ(syn_ack.dir, PacketEvent::Direction::kOutbound);
  EXPECT_EQ(syn_ack.flags, wire::kSyn | wire::kAck);
  EXPECT_EQ(syn_ack.options.mode, Mode::kAny);
  const auto& fin = std::get<PacketEvent>(s->events[11].body);
  EXPECT_EQ(fin.flags, wire::kFin | wire::kAck);
  EXPECT_EQ(fin.start, 1001u);
  EXPECT_EQ(fin.len, 0u);
  EXPECT_EQ(std::get<SyscallEvent>(s->events[13].body).call, Syscall::kClose);
  EXPECT_EQ(s->events[15].loc, (SourceLoc{23, 1}));
}

TEST(Scripts, NonBlockingActiveOpenRefused) {
  absl::StatusOr<Script> s = ParseScript("client.pkt", kClientScript);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->events.size(), 9u);
  const auto& connect = std::get<SyscallEvent>(s->events[4].body);
  EXPECT_EQ(connect.call, Syscall::kConnect);
  EXPECT_EQ(connect.ret.value, -1);
  EXPECT_EQ(connect.ret.errno_name, "EINPROGRESS");
  const auto& syn = std::get<PacketEvent>(s->events[5].body);
  EXPECT_EQ(syn.options.list.size(), 5u);
  const auto& rst = std::get<PacketEvent>(s->events[6].body);
  EXPECT_EQ(rst.flags, wire::kRst | wire::kAck);
  EXPECT_EQ(rst.win, 0);
}

TEST(Scripts, ActiveCloseWithBlockingConnectRangesAndAnyTime) {
  absl::StatusOr<Script> s = ParseScript("close.pkt", kActiveCloseScript);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->options.size(), 2u);
  EXPECT_EQ(s->options[1].name, "tolerance_percent");
  EXPECT_EQ(s->options[1].value, "25");
  ASSERT_EQ(s->events.size(), 17u);
  EXPECT_EQ(s->events[1].time.kind, Kind::kRelativeRange);
  EXPECT_EQ(s->events[1].time.start_us, 10000);
  EXPECT_EQ(s->events[1].time.end_us, 11000);
  EXPECT_EQ(s->events[10].time.kind, Kind::kRelativeRange);
  EXPECT_EQ(s->events[13].time.kind, Kind::kAny);
}

// Every line of the realistic scripts prints back (ToString) to text that parses to the same
// event, so mismatch reports can be pasted back into a script.
TEST(Scripts, EveryEventPrintsBackToItself) {
  for (absl::string_view text : {kServerScript, kClientScript, kActiveCloseScript}) {
    absl::StatusOr<Script> s = ParseScript("t.pkt", text);
    ASSERT_TRUE(s.ok()) << s.status();
    for (const Event& e : s->events) {
      const std::string printed = ToString(e);
      Event again = One(printed + "\n");
      Event original = e;
      ClearLocations(again);
      ClearLocations(original);
      EXPECT_EQ(again.body, original.body) << printed;
      EXPECT_EQ(again.time.kind, e.time.kind) << printed;
      EXPECT_EQ(again.time.start_us, e.time.start_us) << printed;
      EXPECT_EQ(again.time.end_us, e.time.end_us) << printed;
    }
  }
}

// Bad input never crashes or hangs: every prefix of every realistic script, and random
// byte mutations of them, either parse or give an INVALID_ARGUMENT naming what was expected.
TEST(Scripts, PrefixesAndMutationsParseOrFailCleanly) {
  std::mt19937 rng(20240601);
  const std::string alphabet = "0123456789+-*.~<>()[]{}=,:|\"`%/ \n\tSFRPEWUabcxyz_\x01\xff";
  for (absl::string_view text : {kServerScript, kClientScript, kActiveCloseScript}) {
    for (size_t n = 0; n <= text.size(); ++n) {
      absl::StatusOr<Script> s = ParseScript("t.pkt", text.substr(0, n));
      if (!s.ok()) {
        EXPECT_THAT(s.status().message(), HasSubstr("expected")) << n;
      }
    }
    for (int round = 0; round < 2000; ++round) {
      std::string mutated(text);
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < edits; ++i) {
        mutated[rng() % mutated.size()] = alphabet[rng() % alphabet.size()];
      }
      absl::StatusOr<Script> s = ParseScript("t.pkt", mutated);
      if (!s.ok()) {
        EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_THAT(s.status().message(), HasSubstr("expected")) << mutated;
      }
    }
  }
}

TEST(Scripts, EmptyScriptHasNoEvents) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", "// nothing yet\n\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->events.empty());
  EXPECT_TRUE(s->options.empty());
}

TEST(Scripts, LastLineNeedsNoNewline) {
  EXPECT_EQ(Call("0 close(3) = 0").call, Syscall::kClose);
}

TEST(Scripts, CrLfLineEndingsAreAccepted) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", "0 close(3) = 0\r\n+0 close(4) = 0\r\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->events.size(), 2u);
  EXPECT_EQ(s->events[1].text, "+0 close(4) = 0");
}

TEST(Scripts, FileIsReadAndNamedInErrors) {
  const std::string path = ::testing::TempDir() + "/parser_test_file.pkt";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("0 close(3) = 0\n+0 poll(3) = 0\n", f);
  std::fclose(f);
  absl::StatusOr<Script> s = ParseScriptFile(path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(),
            absl::StrCat(path, ":2:4: error: unsupported system call 'poll', expected one of "
                               "socket, bind, listen, accept, connect, read, write, send, recv, "
                               "shutdown, close, setsockopt, getsockopt, fcntl"));
  std::remove(path.c_str());
}

TEST(Scripts, MissingFileIsNotFoundNamingThePath) {
  absl::StatusOr<Script> s = ParseScriptFile("/nonexistent/x.pkt");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.status().message(), HasSubstr("/nonexistent/x.pkt"));
}

TEST(Scripts, EventTextIsTheTrimmedSourceLine) {
  EXPECT_EQ(One("   +0 close(3) = 0   // done\n").text, "+0 close(3) = 0   // done");
}

TEST(Scripts, OneEventPerLine) {
  EXPECT_EQ(ErrorOf("0 close(3) = 0 +0 close(4) = 0\n"),
            "t.pkt:1:16: error: expected '(' or end of line, got '+'");
}

// ---------------------------------------------------------------------------------------------
// Option lines.

TEST(Options, NameValuePairsWithTheirLocations) {
  absl::StatusOr<Script> s =
      ParseScript("t.pkt", "--tolerance_usecs=10000\n// c\n--ip_version=ipv4\n0 close(3) = 0\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->options.size(), 2u);
  EXPECT_EQ(s->options[0], (ScriptOption{"tolerance_usecs", "10000", {1, 1}}));
  EXPECT_EQ(s->options[1], (ScriptOption{"ip_version", "ipv4", {3, 1}}));
}

TEST(Options, BareFlagHasNoValue) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", "--strict_segments\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->options.size(), 1u);
  EXPECT_EQ(s->options[0].name, "strict_segments");
  EXPECT_EQ(s->options[0].value, std::nullopt);
}

TEST(Options, ValueRunsToWhitespaceOrComment) {
  absl::StatusOr<Script> s =
      ParseScript("t.pkt", "--define=PROTO=IPPROTO_TCP --x=\"a b\"//c\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->options.size(), 2u);
  EXPECT_EQ(s->options[0].value, "PROTO=IPPROTO_TCP");
  EXPECT_EQ(s->options[1], (ScriptOption{"x", "a b", {1, 28}}));
}

TEST(Options, EmptyValueIsKept) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", "--x= --y\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->options.size(), 2u);
  EXPECT_EQ(s->options[0].value, "");
  EXPECT_EQ(s->options[1].value, std::nullopt);
}

TEST(Options, TrailingTextIsAnError) {
  EXPECT_EQ(ErrorOf("--x=1 y\n"),
            "t.pkt:1:7: error: expected another option or end of line, got 'y'");
}

TEST(Options, AfterTheFirstEventIsAnError) {
  EXPECT_EQ(ErrorOf("0 close(3) = 0\n--tolerance_usecs=1\n"),
            "t.pkt:2:1: error: options must come before the first event, expected an event "
            "time");
}

TEST(Options, NeedAName) {
  EXPECT_EQ(ErrorOf("--=3\n"), "t.pkt:1:3: error: expected an option name after '--', got '='");
}

// ---------------------------------------------------------------------------------------------
// Comments and blank lines.

TEST(Comments, LineCommentsAndBlankLinesAreSkipped) {
  absl::StatusOr<Script> s =
      ParseScript("t.pkt", "// a\n\n   \t\n0 close(3) = 0 // trailing\n// b\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->events.size(), 1u);
  EXPECT_EQ(s->events[0].loc, (SourceLoc{4, 1}));
}

TEST(Comments, BlockCommentsMaySpanLines) {
  absl::StatusOr<Script> s =
      ParseScript("t.pkt", "/* one\n two */ 0 close(3) = 0\n+0 /* x */ close(4) = 0\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->events.size(), 2u);
  EXPECT_EQ(s->events[0].loc, (SourceLoc{2, 9}));
  EXPECT_EQ(std::get<SyscallEvent>(s->events[1].body).args[0].value, 4);
}

TEST(Comments, UnterminatedBlockCommentIsAnError) {
  EXPECT_EQ(ErrorOf("0 close(3) = 0\n/* open\n"),
            "t.pkt:2:1: error: unterminated comment, expected '*/' before the end of the file");
}

// ---------------------------------------------------------------------------------------------
// Times.

TEST(Times, AbsoluteInteger) {
  TimeSpec t = Time("2 close(3) = 0\n");
  EXPECT_EQ(t.kind, Kind::kAbsolute);
  EXPECT_EQ(t.start_us, 2000000);
  EXPECT_EQ(t.end_us, 2000000);
  EXPECT_EQ(t.text, "2");
}

TEST(Times, AbsoluteDecimalIsExactToTheMicrosecond) {
  TimeSpec t = Time("0.100001 close(3) = 0\n");
  EXPECT_EQ(t.kind, Kind::kAbsolute);
  EXPECT_EQ(t.start_us, 100001);
}

TEST(Times, RelativeWithLeadingDot) {
  TimeSpec t = Time("+.25 close(3) = 0\n");
  EXPECT_EQ(t.kind, Kind::kRelative);
  EXPECT_EQ(t.start_us, 250000);
  EXPECT_EQ(t.text, "+.25");
}

TEST(Times, AbsoluteRangeForABlockingCall) {
  TimeSpec t = Time("0.100...0.200 read(4, ..., 1000) = 1000\n");
  EXPECT_EQ(t.kind, Kind::kAbsoluteRange);
  EXPECT_EQ(t.start_us, 100000);
  EXPECT_EQ(t.end_us, 200000);
  EXPECT_EQ(t.text, "0.100...0.200");
}

// packetdrill's blocking form: "+.1...0.200" starts 0.1 s and ends 0.2 s after the previous
// event; the end is in the start's frame even without its own '+'.
TEST(Times, RelativeRangeEndWithoutPlusIsRelative) {
  TimeSpec t = Time("+.1...0.200 accept(3, ..., ...) = 4\n");
  EXPECT_EQ(t.kind, Kind::kRelativeRange);
  EXPECT_EQ(t.start_us, 100000);
  EXPECT_EQ(t.end_us, 200000);
}

TEST(Times, RelativeRangeWithPlusOnBothEnds) {
  TimeSpec t = Time("+0...+0.3 > . 1:1(0) ack 1\n");
  EXPECT_EQ(t.kind, Kind::kRelativeRange);
  EXPECT_EQ(t.start_us, 0);
  EXPECT_EQ(t.end_us, 300000);
}

TEST(Times, TildeRangeOnAnOutboundPacket) {
  TimeSpec t = Time("+.3~+.303 > P. 1001:2001(1000) ack 1\n");
  EXPECT_EQ(t.kind, Kind::kRelativeRange);
  EXPECT_EQ(t.start_us, 300000);
  EXPECT_EQ(t.end_us, 303000);
  EXPECT_EQ(Time("1~2 > . 1:1(0)\n").kind, Kind::kAbsoluteRange);
}

TEST(Times, AnyTimeOnAnOutboundPacket) {
  TimeSpec t = Time("* > F. 1:1(0) ack 1\n");
  EXPECT_EQ(t.kind, Kind::kAny);
  EXPECT_EQ(t.text, "*");
}

// packetdrill's run.c: "first event should be at time 0".
TEST(Times, FirstEventMustBeAtTimeZero) {
  EXPECT_EQ(ErrorOf("// start\n0.1 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"),
            "t.pkt:2:1: error: the first event is at '0.1', expected time 0 (script time counts "
            "from the first event)");
  EXPECT_EQ(ErrorOf("+1 close(3) = 0\n"),
            "t.pkt:1:1: error: the first event is at '+1', expected time 0 (script time counts "
            "from the first event)");
  EXPECT_EQ(ErrorOf("+0 close(3) = 0\n"), "OK");
  EXPECT_EQ(ErrorOf("0...0.5 accept(3, ..., ...) = 4\n"), "OK");
  EXPECT_EQ(ErrorOf("* > S 0:0(0)\n"), "OK");
}

TEST(Times, MissingTimeIsAnError) {
  EXPECT_EQ(ErrorOf("socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"),
            "t.pkt:1:1: error: expected an event time (such as 0, 0.100, +0.1, 0.1...0.2 or *), "
            "got 'socket'");
}

TEST(Times, NegativeTimeIsAnError) {
  EXPECT_EQ(ErrorOf("-1 close(3) = 0\n"),
            "t.pkt:1:1: error: expected an event time (such as 0, 0.100, +0.1, 0.1...0.2 or *), "
            "got '-'");
}

TEST(Times, MoreThanMicrosecondPrecisionIsAnError) {
  EXPECT_EQ(ErrorOf("+0.1234567 close(3) = 0\n"),
            "t.pkt:1:2: error: time '0.1234567' has more than 6 decimal places, expected at "
            "most microsecond precision");
}

TEST(Times, HugeTimeIsAnError) {
  EXPECT_EQ(ErrorOf("2000000 close(3) = 0\n"),
            "t.pkt:1:1: error: time '2000000' is too large, expected at most 1000000 seconds");
}

TEST(Times, BackwardsRangeIsAnError) {
  EXPECT_EQ(ErrorOf("0.2...0.1 read(4, ..., 1) = 1\n"),
            "t.pkt:1:1: error: time range '0.2...0.1' ends before it starts, expected an end "
            "at or after the start");
}

TEST(Times, RelativeEndAfterAbsoluteStartIsAnError) {
  EXPECT_EQ(ErrorOf("0.1...+0.2 read(4, ..., 1) = 1\n"),
            "t.pkt:1:7: error: expected an absolute end time after the absolute start '0.1', "
            "got '+'");
}

TEST(Times, RangeWithoutEndIsAnError) {
  EXPECT_EQ(ErrorOf("0.1... read(4, ..., 1) = 1\n"),
            "t.pkt:1:8: error: expected the end time of the range, got 'read'");
}

TEST(Times, AnyTimeOnASystemCallIsAnError) {
  EXPECT_EQ(ErrorOf("* close(3) = 0\n"),
            "t.pkt:1:1: error: '*' (any time) applies only to outbound packets ('>'), expected "
            "a time such as 0.1 or +0");
}

TEST(Times, AnyTimeOnAnInboundPacketIsAnError) {
  EXPECT_EQ(ErrorOf("* < . 1:1(0) ack 1 win 10\n"),
            "t.pkt:1:1: error: '*' (any time) applies only to outbound packets ('>'), expected "
            "a time such as 0.1 or +0");
}

TEST(Times, RangeOnAnInboundPacketIsAnError) {
  EXPECT_EQ(ErrorOf("+0~+0.1 < . 1:1(0) ack 1 win 10\n"),
            "t.pkt:1:1: error: a time range applies only to system calls and outbound packets "
            "('>'), expected a single time for an inbound packet");
}

// ---------------------------------------------------------------------------------------------
// System calls, one per supported call.

TEST(Syscalls, Socket) {
  SyscallEvent c = Call("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
  EXPECT_EQ(c.call, Syscall::kSocket);
  ASSERT_EQ(c.args.size(), 3u);
  EXPECT_EQ(c.args[0].kind, ExprKind::kEllipsis);
  EXPECT_EQ(c.args[1].kind, ExprKind::kSymbol);
  EXPECT_EQ(c.args[1].text, "SOCK_STREAM");
  EXPECT_EQ(c.args[1].loc, (SourceLoc{2, 15}));  // line 2: One() puts an event before it
  EXPECT_EQ(c.args[2].text, "IPPROTO_TCP");
  EXPECT_EQ(c.ret.value, 3);
  EXPECT_EQ(c.ret.errno_name, std::nullopt);
}

TEST(Syscalls, Bind) {
  SyscallEvent c = Call("0 bind(3, ..., ...) = 0\n");
  EXPECT_EQ(c.call, Syscall::kBind);
  ASSERT_EQ(c.args.size(), 3u);
  EXPECT_EQ(c.args[0].kind, ExprKind::kInt);
  EXPECT_EQ(c.args[0].value, 3);
}

TEST(Syscalls, Listen) {
  SyscallEvent c = Call("0 listen(3, 1) = 0\n");
  EXPECT_EQ(c.call, Syscall::kListen);
  EXPECT_EQ(c.args[1].value, 1);
}

TEST(Syscalls, Accept) {
  SyscallEvent c = Call("0 accept(3, ..., ...) = 4\n");
  EXPECT_EQ(c.call, Syscall::kAccept);
  EXPECT_EQ(c.ret.value, 4);
}

TEST(Syscalls, ConnectFailingWithErrnoAndStrerror) {
  SyscallEvent c = Call("0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n");
  EXPECT_EQ(c.call, Syscall::kConnect);
  EXPECT_EQ(c.ret.value, -1);
  EXPECT_EQ(c.ret.errno_name, "EINPROGRESS");
  EXPECT_EQ(c.ret.note, "Operation now in progress");
}

TEST(Syscalls, ErrnoWithoutStrerror) {
  SyscallEvent c = Call("0 read(4, ..., 10) = -1 EAGAIN\n");
  EXPECT_EQ(c.ret.errno_name, "EAGAIN");
  EXPECT_EQ(c.ret.note, "");
}

TEST(Syscalls, MinusOneWithoutErrno) {
  SyscallEvent c = Call("0 read(4, ..., 10) = -1\n");
  EXPECT_EQ(c.ret.value, -1);
  EXPECT_EQ(c.ret.errno_name, std::nullopt);
}

TEST(Syscalls, Read) {
  SyscallEvent c = Call("0 read(4, ..., 1000) = 1000\n");
  EXPECT_EQ(c.call, Syscall::kRead);
  EXPECT_EQ(c.args[2].value, 1000);
  EXPECT_EQ(c.ret.value, 1000);
}

TEST(Syscalls, Write) {
  SyscallEvent c = Call("0 write(4, ..., 1000) = 1000\n");
  EXPECT_EQ(c.call, Syscall::kWrite);
}

TEST(Syscalls, Send) {
  SyscallEvent c = Call("0 send(4, ..., 10, 0) = 10\n");
  EXPECT_EQ(c.call, Syscall::kSend);
  EXPECT_EQ(c.args.size(), 4u);
}

TEST(Syscalls, Recv) {
  SyscallEvent c = Call("0 recv(4, ..., 10, MSG_PEEK) = 10\n");
  EXPECT_EQ(c.call, Syscall::kRecv);
  EXPECT_EQ(c.args[3].text, "MSG_PEEK");
}

TEST(Syscalls, Shutdown) {
  SyscallEvent c = Call("0 shutdown(4, SHUT_WR) = 0\n");
  EXPECT_EQ(c.call, Syscall::kShutdown);
  EXPECT_EQ(c.args[1].text, "SHUT_WR");
}

TEST(Syscalls, Close) {
  SyscallEvent c = Call("0 close(4) = 0\n");
  EXPECT_EQ(c.call, Syscall::kClose);
  EXPECT_EQ(c.args.size(), 1u);
}

TEST(Syscalls, SetsockoptWithPointerToInt) {
  SyscallEvent c = Call("0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n");
  EXPECT_EQ(c.call, Syscall::kSetsockopt);
  ASSERT_EQ(c.args.size(), 5u);
  EXPECT_EQ(c.args[3].kind, ExprKind::kPointer);
  ASSERT_EQ(c.args[3].items.size(), 1u);
  EXPECT_EQ(c.args[3].items[0].value, 1);
}

TEST(Syscalls, SetsockoptWithStruct) {
  SyscallEvent c = Call("0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0\n");
  const Expr& linger = c.args[3];
  EXPECT_EQ(linger.kind, ExprKind::kStruct);
  ASSERT_EQ(linger.items.size(), 2u);
  EXPECT_EQ(linger.items[0].field, "onoff");
  EXPECT_EQ(linger.items[0].value, 1);
  EXPECT_EQ(linger.items[1].field, "linger");
  EXPECT_EQ(linger.items[1].value, 0);
}

TEST(Syscalls, SetsockoptNoDelay) {
  SyscallEvent c = Call("0 setsockopt(3, IPPROTO_TCP, TCP_NODELAY, [1], 4) = 0\n");
  EXPECT_EQ(c.args[1].text, "IPPROTO_TCP");
  EXPECT_EQ(c.args[2].text, "TCP_NODELAY");
}

TEST(Syscalls, GetsockoptWithPointerToErrnoSymbol) {
  SyscallEvent c = Call("0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0\n");
  EXPECT_EQ(c.call, Syscall::kGetsockopt);
  EXPECT_EQ(c.args[3].kind, ExprKind::kPointer);
  EXPECT_EQ(c.args[3].items[0].kind, ExprKind::kSymbol);
  EXPECT_EQ(c.args[3].items[0].text, "ECONNREFUSED");
  EXPECT_EQ(c.args[4].items[0].value, 4);
}

TEST(Syscalls, FcntlSetWithFlagSet) {
  SyscallEvent c = Call("0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n");
  EXPECT_EQ(c.call, Syscall::kFcntl);
  const Expr& flags = c.args[2];
  EXPECT_EQ(flags.kind, ExprKind::kFlags);
  ASSERT_EQ(flags.items.size(), 2u);
  EXPECT_EQ(flags.items[0].text, "O_RDWR");
  EXPECT_EQ(flags.items[1].text, "O_NONBLOCK");
}

TEST(Syscalls, FcntlGetWithHexResultAndComment) {
  SyscallEvent c = Call("0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)\n");
  EXPECT_EQ(c.args.size(), 2u);
  EXPECT_EQ(c.ret.value, 0x802);
  EXPECT_EQ(c.ret.text, "0x802");
  EXPECT_EQ(c.ret.errno_name, std::nullopt);
  EXPECT_EQ(c.ret.note, "flags O_RDWR|O_NONBLOCK");
}

// ---------------------------------------------------------------------------------------------
// Argument expressions.

TEST(Expressions, HexAndNegativeIntegers) {
  SyscallEvent c = Call("0 setsockopt(3, 0x1, -2, [0x10], 4) = 0\n");
  EXPECT_EQ(c.args[1].value, 1);
  EXPECT_EQ(c.args[1].text, "0x1");
  EXPECT_EQ(c.args[2].value, -2);
  EXPECT_EQ(c.args[3].items[0].value, 16);
}

TEST(Expressions, FlagSetMayMixNumbersAndSymbols) {
  SyscallEvent c = Call("0 fcntl(3, F_SETFL, O_RDWR|0x800|O_NONBLOCK) = 0\n");
  ASSERT_EQ(c.args[2].items.size(), 3u);
  EXPECT_EQ(c.args[2].items[1].value, 0x800);
}

TEST(Expressions, QuotedStringsAreUnescaped) {
  SyscallEvent c = Call(R"(0 write(4, "a\"b\\c\n", 6) = 6)");
  EXPECT_EQ(c.args[1].kind, ExprKind::kString);
  EXPECT_EQ(c.args[1].text, "a\"b\\c\n");
}

TEST(Expressions, HexEscapesInStrings) {
  SyscallEvent c = Call(R"(0 setsockopt(3, SOL_TCP, TCP_FASTOPEN_KEY, "\xf7\x63\x00z", 4) = 0)");
  EXPECT_EQ(c.args[3].text, std::string("\xf7\x63\x00z", 4));
  EXPECT_EQ(ToString(c.args[3]), R"("\xf7c\0z")");
}

TEST(Expressions, NestedPointerAndStruct) {
  SyscallEvent c = Call("0 setsockopt(3, 1, 2, {a=[1], b={c=...}}, 4) = 0\n");
  const Expr& s = c.args[3];
  ASSERT_EQ(s.items.size(), 2u);
  EXPECT_EQ(s.items[0].kind, ExprKind::kPointer);
  EXPECT_EQ(s.items[1].kind, ExprKind::kStruct);
  EXPECT_EQ(s.items[1].items[0].kind, ExprKind::kEllipsis);
  EXPECT_EQ(s.items[1].items[0].field, "c");
}

// ---------------------------------------------------------------------------------------------
// System call errors.

TEST(SyscallErrors, UnknownCallNamesItAndListsTheSupportedOnes) {
  EXPECT_EQ(ErrorOf("0 poll(3, 1) = 0\n"),
            "t.pkt:1:3: error: unsupported system call 'poll', expected one of socket, bind, "
            "listen, accept, connect, read, write, send, recv, shutdown, close, setsockopt, "
            "getsockopt, fcntl");
}

TEST(SyscallErrors, EpollSendmsgRecvmsgIoctlGetsocknameAreRefused) {
  for (const char* name : {"epoll_create", "epoll_wait", "sendmsg", "recvmsg", "ioctl",
                           "getsockname", "sendto", "writev"}) {
    EXPECT_EQ(ErrorOf(absl::StrCat("+0 ", name, "(3, ...) = 0\n")),
              absl::StrCat("t.pkt:1:4: error: unsupported system call '", name,
                           "', expected one of socket, bind, listen, accept, connect, read, "
                           "write, send, recv, shutdown, close, setsockopt, getsockopt, fcntl"));
  }
}

TEST(SyscallErrors, TooManyArguments) {
  EXPECT_EQ(ErrorOf("0 close(3, 4) = 0\n"),
            "t.pkt:1:3: error: close takes 1 argument, got 2, expected close(fd)");
}

TEST(SyscallErrors, TooFewArguments) {
  EXPECT_EQ(ErrorOf("0 socket(..., SOCK_STREAM) = 3\n"),
            "t.pkt:1:3: error: socket takes 3 arguments, got 2, expected "
            "socket(domain, type, protocol)");
}

TEST(SyscallErrors, NoArguments) {
  EXPECT_EQ(ErrorOf("0 listen() = 0\n"),
            "t.pkt:1:3: error: listen takes 2 arguments, got 0, expected listen(fd, backlog)");
}

TEST(SyscallErrors, FcntlTakesTwoOrThree) {
  EXPECT_EQ(ErrorOf("0 fcntl(3) = 0\n"),
            "t.pkt:1:3: error: fcntl takes 2 or 3 arguments, got 1, expected fcntl(fd, cmd) or "
            "fcntl(fd, cmd, arg)");
}

TEST(SyscallErrors, MissingOpenParenthesis) {
  EXPECT_EQ(ErrorOf("0 close 3 = 0\n"), "t.pkt:1:9: error: expected '(' after 'close', got '3'");
}

TEST(SyscallErrors, MissingCloseParenthesis) {
  EXPECT_EQ(ErrorOf("0 close(3 = 0\n"), "t.pkt:1:11: error: expected ',' or ')', got '='");
}

TEST(SyscallErrors, MissingArgument) {
  EXPECT_EQ(ErrorOf("0 bind(3, , 4) = 0\n"),
            "t.pkt:1:11: error: expected an argument (a number, a symbol, ..., [value], "
            "{field=value} or a string), got ','");
}

TEST(SyscallErrors, DecimalArgument) {
  EXPECT_EQ(ErrorOf("0 close(3.5) = 0\n"),
            "t.pkt:1:9: error: expected an argument (a number, a symbol, ..., [value], "
            "{field=value} or a string), got '3.5'");
}

TEST(SyscallErrors, FlagOperandMustBeNumberOrSymbol) {
  EXPECT_EQ(ErrorOf("0 fcntl(3, F_SETFL, O_RDWR|...) = 0\n"),
            "t.pkt:1:28: error: expected a number or a symbol after '|', got '...'");
}

TEST(SyscallErrors, UnclosedPointer) {
  EXPECT_EQ(ErrorOf("0 setsockopt(3, 1, 2, [1, 2], 4) = 0\n"),
            "t.pkt:1:25: error: expected ']', got ','");
}

TEST(SyscallErrors, StructFieldNeedsAName) {
  EXPECT_EQ(ErrorOf("0 setsockopt(3, 1, 2, {1}, 4) = 0\n"),
            "t.pkt:1:24: error: expected a field name, got '1'");
}

TEST(SyscallErrors, StructFieldNeedsEquals) {
  EXPECT_EQ(ErrorOf("0 setsockopt(3, 1, 2, {onoff 1}, 4) = 0\n"),
            "t.pkt:1:30: error: expected '=' after 'onoff', got '1'");
}

TEST(SyscallErrors, UnclosedStruct) {
  EXPECT_EQ(ErrorOf("0 setsockopt(3, 1, 2, {onoff=1\n"),
            "t.pkt:1:31: error: expected ',' or '}', got end of line");
}

TEST(SyscallErrors, ArgumentsMustNotSpanLines) {
  EXPECT_EQ(ErrorOf("0 setsockopt(3, SOL_SOCKET,\n  SO_REUSEADDR, [1], 4) = 0\n"),
            "t.pkt:1:28: error: expected an argument (a number, a symbol, ..., [value], "
            "{field=value} or a string), got end of line (packetdrill lets arguments span lines; "
            "tcplab wants one event per line)");
  EXPECT_EQ(ErrorOf("0 setsockopt(3, SOL_SOCKET\n"),
            "t.pkt:1:27: error: expected ',' or ')', got end of line (packetdrill lets arguments "
            "span lines; tcplab wants one event per line)");
}

TEST(SyscallErrors, DeepNestingIsAnError) {
  EXPECT_EQ(ErrorOf("0 setsockopt(3, 1, 2, [[[[[[[[[1]]]]]]]]], 4) = 0\n"),
            "t.pkt:1:31: error: argument nests more than 8 levels deep, expected at most 8");
}

TEST(SyscallErrors, IntegerOutOfRange) {
  EXPECT_EQ(ErrorOf("0 close(99999999999999999999) = 0\n"),
            "t.pkt:1:9: error: integer '99999999999999999999' is out of range, expected at most "
            "9223372036854775807");
  EXPECT_EQ(ErrorOf("0 close(0x10000000000000000) = 0\n"),
            "t.pkt:1:9: error: integer '0x10000000000000000' is out of range, expected at most "
            "9223372036854775807");
}

TEST(SyscallErrors, MissingReturnValue) {
  EXPECT_EQ(ErrorOf("0 close(3)\n"),
            "t.pkt:1:11: error: expected '=' and the return value, got end of line");
}

TEST(SyscallErrors, NonIntegerReturnValue) {
  EXPECT_EQ(ErrorOf("0 close(3) = ok\n"),
            "t.pkt:1:14: error: expected an integer return value, got 'ok'");
}

TEST(SyscallErrors, ErrnoOnlyAfterMinusOne) {
  EXPECT_EQ(ErrorOf("0 close(3) = 0 EAGAIN\n"),
            "t.pkt:1:16: error: an errno name follows only -1, expected '(' or end of line, got "
            "'EAGAIN'");
}

TEST(SyscallErrors, GarbageAfterErrno) {
  EXPECT_EQ(ErrorOf("0 close(3) = -1 EBADF x\n"),
            "t.pkt:1:23: error: expected '(' or end of line, got 'x'");
}

TEST(SyscallErrors, UnterminatedNote) {
  EXPECT_EQ(ErrorOf("0 close(3) = -1 EBADF (Bad file\n"),
            "t.pkt:1:32: error: expected ')' to close the note, got end of line");
}

TEST(SyscallErrors, TrailingTextAfterNote) {
  EXPECT_EQ(ErrorOf("0 close(3) = -1 EBADF (Bad file) x\n"),
            "t.pkt:1:34: error: expected end of line, got 'x'");
}

TEST(SyscallErrors, UnterminatedString) {
  EXPECT_EQ(ErrorOf("0 write(4, \"abc, 3) = 3\n"),
            "t.pkt:1:12: error: unterminated string, expected a closing '\"'");
}

TEST(SyscallErrors, UnknownEscapeInString) {
  EXPECT_EQ(ErrorOf("0 write(4, \"a\\qb\", 3) = 3\n"),
            "t.pkt:1:14: error: unknown escape '\\q', expected one of \\\\ \\\" \\n \\t \\r \\0 "
            "\\xHH");
  EXPECT_EQ(ErrorOf("0 write(4, \"\\x4\", 1) = 1\n"),
            "t.pkt:1:13: error: unknown escape '\\x', expected one of \\\\ \\\" \\n \\t \\r \\0 "
            "\\xHH");
}

TEST(SyscallErrors, SomethingElseAfterTheTime) {
  EXPECT_EQ(ErrorOf("0 5\n"),
            "t.pkt:1:3: error: expected a system call or a packet ('<' or '>'), got '5'");
  EXPECT_EQ(ErrorOf("0\n"),
            "t.pkt:1:2: error: expected a system call or a packet ('<' or '>'), got end of line");
}

TEST(SyscallErrors, PacketWithoutDirection) {
  EXPECT_EQ(ErrorOf("0 S. 0:0(0) ack 1\n"),
            "t.pkt:1:3: error: expected a system call or a packet ('<' or '>'), got 'S'");
}

TEST(SyscallErrors, UnprintableBytesAreShownEscaped) {
  EXPECT_EQ(ErrorOf("0 \x01\n"),
            "t.pkt:1:3: error: expected a system call or a packet ('<' or '>'), got '\\x01'");
}

// ---------------------------------------------------------------------------------------------
// Packets.

TEST(Packets, InboundSyn) {
  PacketEvent p = Packet("0 < S 0:0(0) win 32792\n");
  EXPECT_EQ(p.dir, PacketEvent::Direction::kInbound);
  EXPECT_EQ(p.flags, wire::kSyn);
  EXPECT_EQ(p.start, 0u);
  EXPECT_EQ(p.end, 0u);
  EXPECT_EQ(p.len, 0u);
  EXPECT_EQ(p.ack, std::nullopt);
  EXPECT_EQ(p.win, 32792);
  EXPECT_EQ(p.urg, std::nullopt);
  EXPECT_EQ(p.options.mode, Mode::kNotGiven);
  EXPECT_FALSE(p.bad_checksum);
}

TEST(Packets, OutboundDataWithAck) {
  PacketEvent p = Packet("0 > P. 1:1001(1000) ack 1\n");
  EXPECT_EQ(p.dir, PacketEvent::Direction::kOutbound);
  EXPECT_EQ(p.flags, wire::kPsh | wire::kAck);
  EXPECT_EQ(p.start, 1u);
  EXPECT_EQ(p.end, 1001u);
  EXPECT_EQ(p.len, 1000u);
  EXPECT_EQ(p.ack, 1u);
  EXPECT_EQ(p.win, std::nullopt);
}

TEST(Packets, DotAloneIsAck) {
  EXPECT_EQ(Packet("0 > . 1:1(0) ack 1\n").flags, wire::kAck);
}

TEST(Packets, EveryFlagLetter) {
  EXPECT_EQ(Packet("0 > S 0:0(0)\n").flags, wire::kSyn);
  EXPECT_EQ(Packet("0 > F. 1:1(0)\n").flags, wire::kFin | wire::kAck);
  EXPECT_EQ(Packet("0 > R 1:1(0)\n").flags, wire::kRst);
  EXPECT_EQ(Packet("0 > P. 1:2(1)\n").flags, wire::kPsh | wire::kAck);
  EXPECT_EQ(Packet("0 > SEW 0:0(0)\n").flags, wire::kSyn | wire::kEce | wire::kCwr);
  EXPECT_EQ(Packet("0 > U. 1:2(1) urg 1\n").flags, wire::kUrg | wire::kAck);
  EXPECT_EQ(Packet("0 > FSRP.UEW 0:0(0)\n").flags, 0xff);
}

TEST(Packets, DashIsNoFlags) {
  EXPECT_EQ(Packet("0 < - 1:1(0) win 0\n").flags, 0);
}

TEST(Packets, FlagsMayFollowTheDirectionWithoutASpace) {
  EXPECT_EQ(Packet("0 >S. 0:0(0) ack 1\n").flags, wire::kSyn | wire::kAck);
}

TEST(Packets, WindowAndUrgentPointer) {
  PacketEvent p = Packet("0 < P.U 1:11(10) ack 1 win 65535 urg 5\n");
  EXPECT_EQ(p.win, 65535);
  EXPECT_EQ(p.urg, 5);
}

TEST(Packets, SequenceRangeMayWrap) {
  PacketEvent p = Packet("0 > . 4294967000:704(1000) ack 1\n");
  EXPECT_EQ(p.start, 4294967000u);
  EXPECT_EQ(p.end, 704u);
}

TEST(Packets, AnyOptions) {
  PacketEvent p = Packet("0 > S. 0:0(0) ack 1 <...>\n");
  EXPECT_EQ(p.options.mode, Mode::kAny);
  EXPECT_TRUE(p.options.list.empty());
}

TEST(Packets, OptionListKeepsItsOrder) {
  PacketEvent p = Packet("0 > S 0:0(0) <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 8>\n");
  EXPECT_EQ(p.options.mode, Mode::kList);
  ASSERT_EQ(p.options.list.size(), 5u);
  EXPECT_EQ(p.options.list[0].kind, OptKind::kMss);
  EXPECT_EQ(p.options.list[0].mss, 1460);
  EXPECT_EQ(p.options.list[1].kind, OptKind::kSackPermitted);
  EXPECT_EQ(p.options.list[2].kind, OptKind::kTimestamp);
  EXPECT_EQ(p.options.list[2].ts_val, 100u);
  EXPECT_EQ(p.options.list[2].ts_ecr, 0u);
  EXPECT_EQ(p.options.list[3].kind, OptKind::kNop);
  EXPECT_EQ(p.options.list[4].kind, OptKind::kWscale);
  EXPECT_EQ(p.options.list[4].wscale, 8);
}

TEST(Packets, SackBlocks) {
  PacketEvent p = Packet("0 > . 1:1(0) ack 1 <nop,nop,sack 1001:2001 3001:4001>\n");
  ASSERT_EQ(p.options.list.size(), 3u);
  EXPECT_EQ(p.options.list[2].kind, OptKind::kSack);
  EXPECT_THAT(p.options.list[2].sack,
              ElementsAre(SackBlock{1001, 2001}, SackBlock{3001, 4001}));
}

TEST(Packets, FourSackBlocks) {
  PacketEvent p = Packet("0 > . 1:1(0) ack 1 <nop,nop,sack 1:2 3:4 5:6 7:8>\n");
  EXPECT_EQ(p.options.list[2].sack.size(), 4u);
}

TEST(Packets, EolOption) {
  PacketEvent p = Packet("0 < S 0:0(0) win 10 <mss 1460,eol,nop,nop,nop>\n");
  EXPECT_EQ(p.options.list[1].kind, OptKind::kEol);
}

TEST(Packets, OptionWireLengths) {
  PacketEvent p = Packet(
      "0 > S 0:0(0) <mss 1,wscale 2,sackOK,TS val 1 ecr 2,eol,nop,nop,sack 1:2,nop,nop,nop,nop>\n");
  std::vector<int> lengths;
  for (const PacketOption& o : p.options.list) lengths.push_back(o.WireLength());
  EXPECT_THAT(lengths, ElementsAre(4, 3, 2, 10, 1, 1, 1, 10, 1, 1, 1, 1));
}

// tcplab extension: inject the segment with a corrupt TCP checksum.
TEST(Packets, BadChecksumOnInbound) {
  PacketEvent p = Packet("0 < . 1:1(0) ack 1 win 257 bad_csum\n");
  EXPECT_TRUE(p.bad_checksum);
  EXPECT_TRUE(Packet("0 < S 0:0(0) win 257 <mss 1000> bad_csum\n").bad_checksum);
}

TEST(Packets, ToStringIsCanonicalPacketdrill) {
  EXPECT_EQ(ToString(Packet("0 >S.  0:0(0)  ack 1 <mss 1460,nop,wscale 7>\n")),
            "> S. 0:0(0) ack 1 <mss 1460,nop,wscale 7>");
  EXPECT_EQ(ToString(Packet("0 < .P 1:11(10) ack 1 win 257 urg 3 bad_csum\n")),
            "< P. 1:11(10) ack 1 win 257 urg 3 bad_csum");
  EXPECT_EQ(ToString(Packet("0 > WUE.PRSF 0:0(0) <...>\n")), "> FSRP.UEW 0:0(0) <...>");
  EXPECT_EQ(ToString(Packet("0 < - 1:1(0) win 0\n")), "< - 1:1(0) win 0");
  EXPECT_EQ(ToString(Packet("0 > . 1:1(0) <nop,nop,sack 1:2 3:4,TS val 7 ecr 8,eol,nop>\n")),
            "> . 1:1(0) <nop,nop,sack 1:2 3:4,TS val 7 ecr 8,eol,nop>");
}

TEST(Events, ToStringPrintsTimesAsPacketdrillWritesThem) {
  EXPECT_EQ(ToString(One("+.1...0.200 read(4, ..., 10) = 10\n")),
            "+0.1...0.2 read(4, ..., 10) = 10");
  EXPECT_EQ(ToString(One("+0...+0.0015 > . 1:1(0)\n")), "+0~+0.0015 > . 1:1(0)");
  EXPECT_EQ(ToString(One("1...2.5 > . 1:1(0)\n")), "1~2.5 > . 1:1(0)");
  EXPECT_EQ(ToString(One("* > . 1:1(0)\n")), "* > . 1:1(0)");
  EXPECT_EQ(ToString(One("0.250 close(3) = 0\n")), "0.25 close(3) = 0");
}

TEST(Events, ToStringOfSystemCalls) {
  EXPECT_EQ(ToString(Call("0 setsockopt(4,SOL_SOCKET,SO_LINGER,{onoff=1,linger=0},8)=0\n")),
            "setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0");
  EXPECT_EQ(ToString(Call("0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")),
            "connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)");
  EXPECT_EQ(ToString(Call("0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)")),
            "fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)");
  EXPECT_EQ(ToString(Call(R"(0 write(4, "a\"b\n\0", 4) = 4)")), R"(write(4, "a\"b\n\0", 4) = 4)");
  EXPECT_EQ(ToString(Call("0 getsockopt(3, 1, 4, [ECONNREFUSED], [-4]) = 0")),
            "getsockopt(3, 1, 4, [ECONNREFUSED], [-4]) = 0");
}

// ---------------------------------------------------------------------------------------------
// Packet errors.

TEST(PacketErrors, InvalidFlag) {
  EXPECT_EQ(ErrorOf("0 > SX. 0:0(0)\n"),
            "t.pkt:1:6: error: invalid TCP flag 'X' in 'SX.', expected flags from S . P F R E W "
            "U, or - alone for none");
}

TEST(PacketErrors, DuplicateFlag) {
  EXPECT_EQ(ErrorOf("0 > SS 0:0(0)\n"),
            "t.pkt:1:6: error: TCP flag 'S' appears twice in 'SS', expected each flag at most "
            "once");
}

TEST(PacketErrors, MissingFlags) {
  EXPECT_EQ(ErrorOf("0 >\n"),
            "t.pkt:1:4: error: expected TCP flags such as S or ., got end of line");
}

TEST(PacketErrors, MissingSequenceRange) {
  EXPECT_EQ(ErrorOf("0 > S ack 1\n"),
            "t.pkt:1:7: error: expected a sequence range start:end(length), got 'ack'");
}

TEST(PacketErrors, MissingColonInSequenceRange) {
  EXPECT_EQ(ErrorOf("0 > S 0(0)\n"),
            "t.pkt:1:8: error: expected ':' in start:end(length), got '('");
}

TEST(PacketErrors, MissingLength) {
  EXPECT_EQ(ErrorOf("0 > S 0:0 ack 1\n"),
            "t.pkt:1:11: error: expected '(' in start:end(length), got 'ack'");
}

TEST(PacketErrors, UnclosedLength) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0 ack 1\n"),
            "t.pkt:1:13: error: expected ')' in start:end(length), got 'ack'");
}

TEST(PacketErrors, LengthMustMatchTheRange) {
  EXPECT_EQ(ErrorOf("0 > P. 1:1001(500) ack 1\n"),
            "t.pkt:1:8: error: sequence numbers 1:1001 span 1000 bytes but the length is 500, "
            "expected end - start to equal the length");
}

TEST(PacketErrors, SequenceNumberOutOfRange) {
  EXPECT_EQ(ErrorOf("0 > . 4294967296:4294967296(0)\n"),
            "t.pkt:1:7: error: sequence number '4294967296' is out of range, expected 0 to "
            "4294967295");
}

TEST(PacketErrors, LengthOutOfRange) {
  EXPECT_EQ(ErrorOf("0 > . 0:70000(70000)\n"),
            "t.pkt:1:15: error: payload length '70000' is out of range, expected 0 to 65535");
}

TEST(PacketErrors, AckOutOfRange) {
  EXPECT_EQ(ErrorOf("0 > . 1:1(0) ack 4294967296\n"),
            "t.pkt:1:18: error: ack '4294967296' is out of range, expected 0 to 4294967295");
}

TEST(PacketErrors, AckNeedsANumber) {
  EXPECT_EQ(ErrorOf("0 > . 1:1(0) ack win 4\n"),
            "t.pkt:1:18: error: expected a number after 'ack', got 'win'");
}

TEST(PacketErrors, WindowOutOfRange) {
  EXPECT_EQ(ErrorOf("0 < . 1:1(0) ack 1 win 65536\n"),
            "t.pkt:1:24: error: win '65536' is out of range, expected 0 to 65535");
}

TEST(PacketErrors, UrgentPointerOutOfRange) {
  EXPECT_EQ(ErrorOf("0 > .U 1:1(0) urg 65536\n"),
            "t.pkt:1:19: error: urg '65536' is out of range, expected 0 to 65535");
}

// The example of the design brief: a misspelt field names everything that could follow.
TEST(PacketErrors, MisspeltFieldListsWhatCouldFollow) {
  EXPECT_EQ(ErrorOf("// handshake\n\n\n\n\n\n+0 > S. 0:0(0) acc 1\n"),
            "t.pkt:7:16: error: expected 'ack', 'win', 'urg', '<' or end of line, got 'acc'");
}

TEST(PacketErrors, FieldsOutOfOrder) {
  EXPECT_EQ(ErrorOf("0 > . 1:1(0) win 10 ack 1\n"),
            "t.pkt:1:21: error: expected 'urg', '<' or end of line, got 'ack' (packet fields "
            "go in the order ack, win, urg, <options>)");
}

TEST(PacketErrors, InboundNeedsAWindow) {
  EXPECT_EQ(ErrorOf("0 < S 0:0(0) <mss 1000>\n"),
            "t.pkt:1:14: error: expected 'ack' or 'win', got '<' (an inbound packet must give "
            "its window)");
  EXPECT_EQ(ErrorOf("0 < . 1:1(0) ack 1\n"),
            "t.pkt:1:19: error: expected 'win', got end of line (an inbound packet must give "
            "its window)");
}

TEST(PacketErrors, InboundFieldListIncludesBadChecksum) {
  EXPECT_EQ(ErrorOf("0 < . 1:1(0) ack 1 win 1 bad\n"),
            "t.pkt:1:26: error: expected 'urg', '<', 'bad_csum' or end of line, got 'bad'");
}

TEST(PacketErrors, BadChecksumOnOutboundIsRefused) {
  EXPECT_EQ(ErrorOf("0 > . 1:1(0) ack 1 bad_csum\n"),
            "t.pkt:1:20: error: 'bad_csum' applies only to inbound packets ('<'), expected "
            "'win', 'urg', '<' or end of line");
}

TEST(PacketErrors, NothingAfterBadChecksum) {
  EXPECT_EQ(ErrorOf("0 < . 1:1(0) ack 1 win 1 bad_csum <nop>\n"),
            "t.pkt:1:35: error: expected end of line, got '<'");
}

TEST(PacketErrors, AnyOptionsOnInboundIsRefused) {
  EXPECT_EQ(ErrorOf("0 < S 0:0(0) win 1 <...>\n"),
            "t.pkt:1:20: error: '<...>' (any options) applies only to outbound packets ('>'), "
            "expected the options to inject, such as <mss 1460>");
}

TEST(PacketErrors, UnknownOption) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <md5 abcd>\n"),
            "t.pkt:1:15: error: unknown TCP option 'md5', expected mss, nop, wscale, sackOK, "
            "sack, TS or eol");
}

TEST(PacketErrors, EmptyOptionList) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <>\n"),
            "t.pkt:1:15: error: expected a TCP option (mss, nop, wscale, sackOK, sack, TS or "
            "eol), got '>'");
}

TEST(PacketErrors, OptionsNeedCommas) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <nop nop>\n"),
            "t.pkt:1:19: error: expected ',' or '>', got 'nop'");
}

TEST(PacketErrors, UnclosedOptionList) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <mss 1460\n"),
            "t.pkt:1:23: error: expected ',' or '>', got end of line");
}

TEST(PacketErrors, MssOutOfRange) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <mss 65536>\n"),
            "t.pkt:1:19: error: mss '65536' is out of range, expected 0 to 65535");
}

TEST(PacketErrors, WscaleOutOfRange) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <nop,wscale 256>\n"),
            "t.pkt:1:26: error: wscale '256' is out of range, expected 0 to 255");
}

TEST(PacketErrors, MssNeedsANumber) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <mss>\n"),
            "t.pkt:1:18: error: expected a number after 'mss', got '>'");
}

TEST(PacketErrors, SackNeedsABlock) {
  EXPECT_EQ(ErrorOf("0 > . 1:1(0) <nop,nop,sack>\n"),
            "t.pkt:1:27: error: expected a SACK block left:right, got '>'");
}

TEST(PacketErrors, SackBlockNeedsAColon) {
  EXPECT_EQ(ErrorOf("0 > . 1:1(0) <nop,nop,sack 1 2>\n"),
            "t.pkt:1:30: error: expected ':' in the SACK block left:right, got '2'");
}

TEST(PacketErrors, AtMostFourSackBlocks) {
  EXPECT_EQ(ErrorOf("0 > . 1:1(0) <sack 1:2 3:4 5:6 7:8 9:10>\n"),
            "t.pkt:1:36: error: 5 SACK blocks, expected at most 4 (RFC 2018)");
}

TEST(PacketErrors, TimestampNeedsValAndEcr) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <TS 1 2>\n"),
            "t.pkt:1:18: error: expected 'val' after 'TS', got '1'");
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <TS val 1 2>\n"),
            "t.pkt:1:24: error: expected 'ecr' after the TS val, got '2'");
}

TEST(PacketErrors, OptionsLongerThanFortyBytes) {
  EXPECT_EQ(ErrorOf("0 > . 1:1(0) <nop,nop,TS val 1 ecr 2,nop,nop,sack 1:2 3:4 5:6 7:8>\n"),
            "t.pkt:1:14: error: TCP options take 48 bytes, expected at most 40");
}

TEST(PacketErrors, OptionsMustBePaddedToFourBytes) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <mss 1460,sackOK>\n"),
            "t.pkt:1:14: error: TCP options take 6 bytes, expected a multiple of 4 (pad with "
            "nop)");
}

TEST(PacketErrors, TrailingTextAfterOptions) {
  EXPECT_EQ(ErrorOf("0 > S 0:0(0) <nop,nop,nop,nop> x\n"),
            "t.pkt:1:32: error: expected end of line, got 'x'");
}

// ---------------------------------------------------------------------------------------------
// Refused packetdrill constructs: an error naming file, line and reason, never a skipped line.

TEST(Refused, ShellCommandLine) {
  EXPECT_EQ(ErrorOf("// setup\n`../common/defaults.sh`\n0 close(3) = 0\n"),
            "t.pkt:2:1: error: shell commands (`...`) are not supported (tcplab runs no commands "
            "on the grading host), expected a system call or a packet");
}

TEST(Refused, TimedShellCommand) {
  EXPECT_EQ(ErrorOf("0 close(3) = 0\n+0 `sysctl -q net.ipv4.tcp_sack=0`\n"),
            "t.pkt:2:4: error: shell commands (`...`) are not supported (tcplab runs no commands "
            "on the grading host), expected a system call or a packet");
}

TEST(Refused, PythonBlockSpanningLinesIsReportedAtItsFirstLine) {
  EXPECT_EQ(ErrorOf("0 close(3) = 0\n+0 %{\nassert tcpi_rto == 1000000\n}%\n"),
            "t.pkt:2:4: error: Python code blocks (%{ ... }%) are not supported (tcplab runs no "
            "Python), expected a system call or a packet");
  EXPECT_EQ(ErrorOf("%{ x = 1 }%\n"),
            "t.pkt:1:1: error: Python code blocks (%{ ... }%) are not supported (tcplab runs no "
            "Python), expected a system call or a packet");
}

TEST(Refused, UdpPacket) {
  EXPECT_EQ(ErrorOf("0 < udp (1472)\n"),
            "t.pkt:1:5: error: UDP packets are not supported (tcplab grades TCP only), expected "
            "TCP flags such as S or .");
}

TEST(Refused, IcmpPacket) {
  EXPECT_EQ(ErrorOf("0 < icmp unreachable frag_needed mtu 1000 [1:1461(1460)]\n"),
            "t.pkt:1:5: error: ICMP packets are not supported (tcplab grades TCP only), expected "
            "TCP flags such as S or .");
}

TEST(Refused, Ipv6Packet) {
  EXPECT_EQ(ErrorOf("0 > ipv6 fd3d::1 > fd3d::2: S 0:0(0)\n"),
            "t.pkt:1:5: error: IPv6 packets are not supported (tcplab sandboxes are IPv4 only), "
            "expected TCP flags such as S or .");
}

TEST(Refused, EncapsulationHeaders) {
  for (const char* word : {"ipv4", "gre", "GREv0", "mpls", "encap"}) {
    EXPECT_EQ(ErrorOf(absl::StrCat("0 < ", word, " x\n")),
              absl::StrCat("t.pkt:1:5: error: explicit '", word,
                           "' headers are not supported (tcplab writes the IP header itself), "
                           "expected TCP flags such as S or ."));
  }
}

TEST(Refused, IpHeaderFields) {
  EXPECT_EQ(ErrorOf("0 > [ect0] S 0:0(0)\n"),
            "t.pkt:1:5: error: IP header fields such as (ect0) or [tos 0x2] are not supported, "
            "expected TCP flags such as S or .");
}

// Every error message says what was expected (DESIGN.md: errors name what is wrong).
TEST(Refused, EveryMessageNamesWhatWasExpected) {
  for (const char* text :
       {"0 poll(3) = 0", "`x`", "0 < udp (1)", "0 close(3,4) = 0", "0 > . 1:2(5)", "x",
        "0 close(3) = 0 EBADF", "0 > S 0:0(0) <nop>", "0 < S 0:0(0)", "+0~+1 < S 0:0(0) win 1"}) {
    EXPECT_THAT(ErrorOf(text), HasSubstr("expected ")) << text;
  }
}

}  // namespace
}  // namespace tcplab::grading

namespace tcplab::grading {
namespace {

TEST(TargetLines, ListOfTargetsWithAReasonOnTheLine) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                                                  "@kernel,dut +0 close(3) = 0  // why\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->events.size(), 2u);
  EXPECT_TRUE(s->events[0].only.empty());
  EXPECT_EQ(s->events[1].only, (std::vector<std::string>{"kernel", "dut"}));
  EXPECT_EQ(s->events[1].loc.line, 2);
  EXPECT_EQ(s->events[1].loc.column, 13);  // the time, after the prefix
}

TEST(TargetLines, ReasonOnTheLineAbove) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                                                  "  // Linux differs here because ...\n"
                                                  "@engine +0 close(3) = 0\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->events[1].only, (std::vector<std::string>{"engine"}));
}

TEST(TargetLines, WithoutAReasonIsRefused) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                                                  "\n"
                                                  "@engine +0 close(3) = 0\n");
  EXPECT_EQ(s.status().message(),
            "t.pkt:3:1: error: a line for some targets only must give its reason, expected a // comment on the line "
            "or on the line just above");
}

TEST(TargetLines, UnknownTargetIsRefused) {
  absl::StatusOr<Script> s = ParseScript("t.pkt", "@bsd 0 close(3) = 0 // x\n");
  EXPECT_EQ(s.status().message(), "t.pkt:1:2: error: expected a target after '@': 'engine', 'kernel' or 'dut', got 'bsd'");
  s = ParseScript("t.pkt", "@kernel, 0 close(3) = 0 // x\n");
  EXPECT_EQ(s.status().message(), "t.pkt:1:10: error: expected a target after '@': 'engine', 'kernel' or 'dut', got '0'");
}

}  // namespace
}  // namespace tcplab::grading
