// The global options: --server (host:port or unix:/path) and $TCPLAB_SERVER, --token and
// $TCPLAB_TOKEN, --json before the command or among its arguments.
#include "tests/e2e/e2e_testing.h"

namespace tcplab::e2e {
namespace {

class CliOptionsTest : public CliTest {
 protected:
  // tcplabd on loopback and on a unix socket in its directory.
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(daemon_.Start({}, "127.0.0.1:0,unix:$DIR/tcplabd.sock")); }
};

TEST_F(CliOptionsTest, ServerFromEnvironmentAndUnixSocket) {
  ASSERT_EQ(daemon_.addresses().size(), 2u);
  const std::string unix_addr = daemon_.addresses()[1];
  ASSERT_EQ(unix_addr.rfind("unix:", 0), 0u) << unix_addr;

  Result created = RunProcess({TCPLAB_CLI_BIN, "--server", unix_addr, "sandbox", "create", "u", "--backend", "virtual"});
  ASSERT_EQ(created.exit_code, 0) << created.Describe();
  EXPECT_EQ(Line(created.out), "u");

  // No --server: $TCPLAB_SERVER.
  Result ls = RunProcess({TCPLAB_CLI_BIN, "sandbox", "ls"}, absl::Seconds(60), {"TCPLAB_SERVER=" + daemon_.address()});
  ASSERT_EQ(ls.exit_code, 0) << ls.Describe();
  EXPECT_NE(ls.out.find("u "), std::string::npos) << ls.out;
  // --server wins over the environment.
  Result wins = RunProcess({TCPLAB_CLI_BIN, "--server", unix_addr, "sandbox", "show", "u"}, absl::Seconds(60),
                           {"TCPLAB_SERVER=127.0.0.1:1"});
  EXPECT_EQ(wins.exit_code, 0) << wins.Describe();
  // And a wrong one in the environment is what is used without --server.
  Result wrong = RunProcess({TCPLAB_CLI_BIN, "sandbox", "ls"}, absl::Seconds(60), {"TCPLAB_SERVER=127.0.0.1:1"});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.Describe();
  EXPECT_NE(wrong.err.find("127.0.0.1:1"), std::string::npos) << wrong.Describe();
}

TEST_F(CliOptionsTest, TokenIsAcceptedFromFlagAndEnvironment) {
  // This server runs without --auth_tokens and ignores tokens; the CLI must still send them
  // without failing (cli_auth_test.cc checks them against a server that requires them).
  EXPECT_EQ(Cli({"--token", "s3cret", "sandbox", "ls"}).exit_code, 0);
  Result r = RunProcess({TCPLAB_CLI_BIN, "--server", daemon_.address(), "sandbox", "ls"}, absl::Seconds(60),
                        {"TCPLAB_TOKEN=s3cret"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
}

TEST_F(CliOptionsTest, GlobalOptionsAnywhere) {
  ASSERT_EQ(Line(Ok({"sandbox", "create", "g", "--backend", "virtual"})), "g");
  // --json after the command, --server=ADDR with '='.
  Result r = RunProcess({TCPLAB_CLI_BIN, "sandbox", "show", "g", "--json", "--server=" + daemon_.address()});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  v1::Sandbox sb;
  ASSERT_TRUE(FromJson(r.out, &sb)) << r.out;
  EXPECT_EQ(sb.name(), "g");
  EXPECT_EQ(sb.options().backend(), v1::BACKEND_VIRTUAL);
  EXPECT_EQ(sb.netns(), "");
  EXPECT_EQ(sb.kernel_address().ip(), "198.18.0.1");
  // The server's default name when none is given.
  Result named = Cli({"sandbox", "create", "--backend", "virtual"});
  ASSERT_EQ(named.exit_code, 0) << named.Describe();
  EXPECT_EQ(Line(named.out).rfind("lab", 0), 0u) << named.out;
}

}  // namespace
}  // namespace tcplab::e2e
