// `tcplab dut` and `tcplab dut ls` against a real tcplabd: the engine attached as an external
// DUT by the CLI (a child process), graded through `tcplab grade --target dut`; a taken name;
// detaching on SIGTERM and SIGINT; --json; the server going away; usage errors.
#include <map>
#include <regex>

#include "absl/strings/match.h"
#include "tcplab/v1/dut.pb.h"
#include "tcplab/v1/grading.pb.h"
#include "tests/e2e/e2e_testing.h"

namespace tcplab::e2e {
namespace {

const std::vector<std::string> kLifecycle = {"lifecycle/handshake_passive.pkt", "lifecycle/handshake_active.pkt",
                                             "lifecycle/close_active.pkt", "lifecycle/close_passive.pkt"};

class CliDutTest : public ScriptsCliTest {
 protected:
  CliDutTest() : ScriptsCliTest("tcplab-dut") {}

  // `tcplab --server ADDR [--json] dut --stack engine ARGS...` in the background.
  void StartDut(BackgroundProcess& b, const std::vector<std::string>& args, bool json = false) {
    std::vector<std::string> argv = {TCPLAB_CLI_BIN, "--server", daemon_.address()};
    if (json) argv.push_back("--json");
    argv.insert(argv.end(), {"dut", "--stack", "engine"});
    argv.insert(argv.end(), args.begin(), args.end());
    ASSERT_NO_FATAL_FAILURE(b.Start(argv, absl::StrCat(tmp_.path(), "/dut-", next_++, ".err")));
  }

  // `tcplab --json dut ls`, parsed.
  std::map<std::string, v1::AttachedDut> Duts() {
    Result r = Cli({"--json", "dut", "ls"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    v1::ListDutsResponse resp;
    EXPECT_TRUE(FromJson(r.out, &resp)) << r.out;
    std::map<std::string, v1::AttachedDut> out;
    for (const v1::AttachedDut& d : resp.duts()) out[d.name()] = d;
    return out;
  }

  // Polls `dut ls` until `name` is listed (or, with listed false, no longer is).
  bool WaitListed(const std::string& name, bool listed, absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (Duts().contains(name) == listed) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // `grade SCRIPTS... --target dut --dut DUT`, with real time's tolerance.
  Result GradeDut(const std::vector<std::string>& scripts, const std::string& dut) {
    return Grade(scripts, "dut", {"--dut", dut, "--tolerance-usecs", "20000"});
  }

  int next_ = 0;
};

TEST_F(CliDutTest, EngineAttachedByTheCliPassesTheLifecycleThenDetachesOnSigterm) {
  BackgroundProcess dut;
  ASSERT_NO_FATAL_FAILURE(StartDut(dut, {"--name", "e1"}));
  ASSERT_TRUE(WaitListed("e1", true)) << dut.Describe();
  ASSERT_TRUE(dut.ReadUntil([](const std::string& out) { return absl::StrContains(out, "\n"); }, absl::Seconds(10)))
      << dut.Describe();
  EXPECT_TRUE(absl::StartsWith(dut.out(), "attached as \"e1\"")) << dut.Describe();
  {
    const std::map<std::string, v1::AttachedDut> duts = Duts();
    ASSERT_TRUE(duts.contains("e1"));
    EXPECT_EQ(duts.at("e1").description(), "tcplab engine (tcplab dut --stack engine)");
    EXPECT_TRUE(absl::StrContains(duts.at("e1").peer(), "127.0.0.1")) << duts.at("e1").peer();
    EXPECT_FALSE(duts.at("e1").busy());
  }
  // The text table: a header, then the DUT.
  Result ls = Cli({"dut", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.Describe();
  std::vector<std::string> rows = SplitLines(ls.out);
  ASSERT_EQ(rows.size(), 2u) << ls.out;
  EXPECT_TRUE(std::regex_match(rows[0], std::regex(R"(^NAME +BUSY +PEER +DESCRIPTION$)"))) << ls.out;
  EXPECT_TRUE(std::regex_match(rows[1], std::regex(R"(^e1 +no +ipv4:127\.0\.0\.1:\d+ +tcplab engine .*$)"))) << ls.out;

  // Graded through the protocol, the engine passes what it passes in process.
  Result g = GradeDut(kLifecycle, "e1");
  ASSERT_EQ(g.exit_code, 0) << g.Describe() << dut.Describe();
  const std::vector<std::string> lines = SplitLines(g.out);
  ASSERT_EQ(lines.size(), kLifecycle.size() + 1) << g.out;
  for (size_t i = 0; i < kLifecycle.size(); ++i) {
    EXPECT_EQ(lines[i], absl::StrCat("[", i + 1, "/4] PASS ", kLifecycle[i])) << g.out;
  }
  EXPECT_TRUE(std::regex_match(lines.back(), std::regex(R"(^run \d+: 4 passed, 0 failed \(dut\)$)"))) << g.out;
  // The DUT logged each script it served, in order.
  {
    std::vector<std::string> served;
    for (const std::string& l : SplitLines(dut.err())) {
      if (absl::StartsWith(l, "script: ")) served.push_back(l.substr(8));
    }
    EXPECT_EQ(served, kLifecycle) << dut.Describe();
  }

  // The name is taken: a second DUT is refused, and the first stays attached.
  BackgroundProcess second;
  ASSERT_NO_FATAL_FAILURE(StartDut(second, {"--name", "e1"}));
  EXPECT_EQ(second.Wait(absl::Seconds(30)), 1) << second.Describe();
  EXPECT_TRUE(absl::StrContains(second.err(), "tcplab: ALREADY_EXISTS: ")) << second.Describe();
  EXPECT_TRUE(absl::StrContains(second.err(), "\"e1\"")) << second.Describe();
  EXPECT_EQ(second.out(), "") << second.Describe();
  EXPECT_TRUE(dut.Running());
  EXPECT_TRUE(Duts().contains("e1"));

  // SIGTERM: it detaches and exits 0; the lab no longer lists it.
  ASSERT_NO_FATAL_FAILURE(dut.Signal(SIGTERM));
  EXPECT_EQ(dut.Wait(absl::Seconds(30)), 0) << dut.Describe();
  EXPECT_TRUE(absl::StrContains(dut.err(), "detached")) << dut.Describe();
  EXPECT_FALSE(absl::StrContains(dut.err(), "tcplab: ")) << dut.Describe();
  EXPECT_TRUE(WaitListed("e1", false, absl::Seconds(5))) << "e1 still listed after its process exited";
  EXPECT_EQ(Cli({"dut", "ls"}).out, "NAME                 BUSY  PEER                     DESCRIPTION\n");

  // Grading it now is refused, naming it.
  Result gone = GradeDut({kLifecycle[0]}, "e1");
  EXPECT_EQ(gone.exit_code, 1) << gone.Describe();
  EXPECT_TRUE(absl::StrContains(gone.err, "tcplab: FAILED_PRECONDITION: ")) << gone.Describe();
  EXPECT_TRUE(absl::StrContains(gone.err, "\"e1\"")) << gone.Describe();
}

TEST_F(CliDutTest, JsonEventsDescriptionAndSigint) {
  BackgroundProcess dut;
  ASSERT_NO_FATAL_FAILURE(StartDut(dut, {"--name", "j.1_x", "--description", "mine, with spaces"}, /*json=*/true));
  ASSERT_TRUE(dut.ReadUntil([](const std::string& out) { return absl::StrContains(out, "\n"); }, absl::Seconds(10)))
      << dut.Describe();
  EXPECT_EQ(SplitLines(dut.out())[0], R"({"event":"attached","name":"j.1_x","local_ip":"198.18.0.1"})")
      << dut.Describe();
  std::map<std::string, v1::AttachedDut> duts = Duts();
  ASSERT_TRUE(duts.contains("j.1_x"));
  EXPECT_EQ(duts.at("j.1_x").description(), "mine, with spaces");

  Result g = GradeDut({kLifecycle[0]}, "j.1_x");
  EXPECT_EQ(g.exit_code, 0) << g.Describe();
  ASSERT_NO_FATAL_FAILURE(dut.Signal(SIGINT));
  EXPECT_EQ(dut.Wait(absl::Seconds(30)), 0) << dut.Describe();
  EXPECT_EQ(SplitLines(dut.out()),
            (std::vector<std::string>{R"({"event":"attached","name":"j.1_x","local_ip":"198.18.0.1"})",
                                      absl::StrCat(R"({"event":"script","script":")", kLifecycle[0], R"("})"),
                                      R"({"event":"detached"})"}))
      << dut.Describe();
  EXPECT_EQ(dut.err(), "");  // --json: nothing but errors on stderr
  EXPECT_TRUE(WaitListed("j.1_x", false, absl::Seconds(5)));
}

TEST_F(CliDutTest, ServerGoingAwayEndsTheDutWithItsReason) {
  BackgroundProcess dut;
  ASSERT_NO_FATAL_FAILURE(StartDut(dut, {"--name", "e2"}));
  ASSERT_TRUE(WaitListed("e2", true)) << dut.Describe();
  daemon_.Stop();
  EXPECT_EQ(dut.Wait(absl::Seconds(60)), 1) << dut.Describe();
  EXPECT_TRUE(absl::StartsWith(dut.err(), "tcplab: ") || absl::StrContains(dut.err(), "\ntcplab: "))
      << dut.Describe();
  EXPECT_TRUE(absl::StrContains(dut.err(), "UNAVAILABLE")) << dut.Describe();
}

TEST_F(CliDutTest, UnreachableServerIsUnavailable) {
  TempDir dir{"tcplab-dut"};
  const std::string sock = dir.path() + "/nobody.sock";  // no server listens there
  Result r = RunProcess({TCPLAB_CLI_BIN, "--server", "unix:" + sock, "dut", "--stack", "engine"}, absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_TRUE(absl::StartsWith(r.err, "tcplab: UNAVAILABLE: ")) << r.Describe();
  EXPECT_TRUE(absl::StrContains(r.err, sock)) << r.Describe();
  EXPECT_EQ(r.out, "");
}

TEST_F(CliDutTest, UsageErrorsExitTwoNamingTheArgument) {
  struct Case {
    std::vector<std::string> args;
    std::string named;
  };
  const std::vector<Case> cases = {
      {{"dut"}, "--stack is required"},
      {{"dut", "--stack", "kernel"}, "--target kernel"},
      {{"dut", "--stack", "lwip"}, "--stack must be engine"},
      {{"dut", "--stack", "engine", "extra"}, "extra"},
      {{"dut", "--stack", "engine", "--bogus"}, "--bogus"},
      {{"dut", "--name"}, "--name"},
      {{"dut", "ls", "extra"}, "extra"},
      {{"dut", "ls", "--stack", "engine"}, "--stack"},
  };
  for (const Case& c : cases) {
    Result r = Cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(c.args, " ") << "\n" << r.Describe();
    EXPECT_TRUE(absl::StrContains(r.err, c.named)) << absl::StrJoin(c.args, " ") << "\n" << r.Describe();
    EXPECT_EQ(r.out, "") << absl::StrJoin(c.args, " ");
  }
  // A name the lab refuses: its INVALID_ARGUMENT, exit 1.
  Result bad = Cli({"dut", "--stack", "engine", "--name", "has space"});
  EXPECT_EQ(bad.exit_code, 1) << bad.Describe();
  EXPECT_TRUE(absl::StrContains(bad.err, "tcplab: INVALID_ARGUMENT: hello.name")) << bad.Describe();
  EXPECT_TRUE(Duts().empty());
}

}  // namespace
}  // namespace tcplab::e2e
