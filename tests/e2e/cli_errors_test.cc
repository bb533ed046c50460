// Errors through the CLI: exit 1 with the gRPC code and the server's message for refusals,
// exit 2 naming the bad argument for usage errors, stdout empty with --json. Uses the virtual
// backend, so it needs no privileges.
#include "tests/e2e/e2e_testing.h"

namespace tcplab::e2e {
namespace {

class CliErrorTest : public CliTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(CliTest::SetUp());
    ASSERT_EQ(Line(Ok({"sandbox", "create", "lab", "--backend", "virtual"})), "lab");
  }
};

TEST_F(CliErrorTest, UnknownSandboxIsNotFound) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"conns", "nosuch"},
           {"sandbox", "show", "nosuch"},
           {"sandbox", "rm", "nosuch"},
           {"listen", "nosuch", "--stack", "engine", "--port", "80"},
           {"watch", "nosuch", "--no-follow"},
           {"impair", "nosuch", "--loss", "0.1"}}) {
    Result r = Cli(args);
    EXPECT_EQ(r.exit_code, 1) << absl::StrJoin(args, " ") << "\n" << r.Describe();
    EXPECT_NE(r.err.find("tcplab: NOT_FOUND: sandbox nosuch not found"), std::string::npos)
        << absl::StrJoin(args, " ") << "\n" << r.Describe();
    EXPECT_EQ(r.out, "") << absl::StrJoin(args, " ");
  }
}

TEST_F(CliErrorTest, BadAddressInToIsInvalidArgumentNamingRemoteIp) {
  Result r = Cli({"connect", "lab", "--stack", "engine", "--to", "300.1.2.3:80"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("INVALID_ARGUMENT"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("remote.ip"), std::string::npos) << r.Describe();
  EXPECT_EQ(r.out, "");
}

TEST_F(CliErrorTest, UsageErrorsExitTwoNamingTheArgument) {
  struct Case {
    std::vector<std::string> args;
    std::string named;  // what the message must name
  };
  const std::vector<Case> cases = {
      {{"connect", "lab", "--stack", "engine"}, "--to"},
      {{"connect", "lab", "--stack", "engine", "--to", "198.18.0.1"}, "--to"},
      {{"connect", "lab", "--stack", "satellite", "--to", "198.18.0.1:80"}, "--stack"},
      {{"listen", "lab", "--stack", "engine", "--port", "70000"}, "--port"},
      {{"listen", "lab", "--stack", "engine", "--port"}, "--port"},
      {{"listen", "lab", "--stack", "engine", "--port", "80", "--bogus"}, "--bogus"},
      {{"sandbox", "create", "x", "--msl", "soon"}, "--msl"},
      {{"sandbox", "create", "x", "--backend", "docker"}, "--backend"},
      {{"send", "lab", "--data", "x"}, "CONN"},
      {{"send", "lab/1"}, "--data"},
      {{"recv", "lab/1", "--wait", "forever"}, "--wait"},
      {{"impair", "lab", "--loss", "1.5"}, "--loss"},
      {{"impair", "lab", "--direction", "sideways", "--loss", "0.1"}, "--direction"},
      {{"watch", "lab", "--conn", "other/3"}, "--conn"},
      {{"pcap", "lab"}, "-o"},
      {{"frobnicate"}, "frobnicate"},
      {{"show"}, "CONN"},
      {{"conns", "lab", "extra"}, "extra"},
  };
  for (const Case& c : cases) {
    Result r = Cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(c.args, " ") << "\n" << r.Describe();
    EXPECT_NE(r.err.find(c.named), std::string::npos) << absl::StrJoin(c.args, " ") << "\n" << r.Describe();
    EXPECT_EQ(r.out, "") << absl::StrJoin(c.args, " ");
  }
  // Usage errors are found before any call: the sandbox was not created.
  EXPECT_EQ(Cli({"sandbox", "show", "x"}).exit_code, 1);
}

TEST_F(CliErrorTest, UnknownConnectionIsNotFound) {
  Result r = Cli({"show", "lab/99"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("tcplab: NOT_FOUND: "), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("lab/99"), std::string::npos) << r.Describe();
  for (const char* cmd : {"close", "abort", "shutdown"}) {
    Result c = Cli({cmd, "lab/99"});
    EXPECT_EQ(c.exit_code, 1) << cmd << "\n" << c.Describe();
    EXPECT_NE(c.err.find("NOT_FOUND"), std::string::npos) << cmd << "\n" << c.Describe();
  }
}

TEST_F(CliErrorTest, JsonErrorsGoToStderrOnly) {
  Result r = Cli({"--json", "show", "lab/99"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.Describe();
  Result u = Cli({"--json", "listen", "lab", "--stack", "engine"});
  EXPECT_EQ(u.exit_code, 2) << u.Describe();
  EXPECT_EQ(u.out, "");
  // And a success prints exactly one JSON object.
  Result ok = Cli({"--json", "listen", "lab", "--stack", "engine", "--port", "80"});
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();
  v1::Connection c;
  ASSERT_TRUE(FromJson(ok.out, &c)) << ok.out;
  EXPECT_EQ(c.sandbox(), "lab");
  EXPECT_TRUE(c.listener());
  EXPECT_EQ(c.state(), v1::TCP_STATE_LISTEN);
  EXPECT_EQ(std::count(ok.out.begin(), ok.out.end(), '\n'), 1) << ok.out;
  // Zeros are printed, snake_case names kept.
  EXPECT_NE(ok.out.find("\"out_of_order_bytes\""), std::string::npos) << ok.out;
}

// A refused connection: the engine's RST in SYN-SENT makes later calls fail with the errno,
// which the server sends as the trailing metadata tcplab-errno.
TEST_F(CliErrorTest, ErrnoFromTheServerIsPrinted) {
  const std::string conn = Line(Ok({"connect", "lab", "--stack", "engine", "--to", "198.18.0.2:9"}));
  ASSERT_TRUE(WaitState(conn, v1::TCP_STATE_CLOSED)) << Show(conn).DebugString();
  Result r = Cli({"send", conn, "--data", "x"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("(errno ECONNREFUSED)"), std::string::npos) << r.Describe();
}

TEST_F(CliErrorTest, UnreachableServerIsUnavailable) {
  // A port on loopback nothing listens on: tcplabd's own, after it is stopped.
  const std::string addr = daemon_.address();
  daemon_.Stop();
  Result r = RunProcess({TCPLAB_CLI_BIN, "--server", addr, "sandbox", "ls"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find(addr), std::string::npos) << r.Describe();
}

TEST_F(CliErrorTest, HelpPrintsTheUsage) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"help"}, {"--help"}, {"watch", "--help"}}) {
    Result r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    for (const char* word : {"sandbox create", "listen NAME", "connect NAME", "watch NAME", "--ladder", "impair NAME",
                             "pcap NAME", "toward the engine"}) {
      EXPECT_NE(r.out.find(word), std::string::npos) << word;
    }
  }
  Result none = RunProcess({TCPLAB_CLI_BIN});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("Usage"), std::string::npos);
}

}  // namespace
}  // namespace tcplab::e2e
