// tcplabd --auth_tokens with the real binaries: `tcplab --token` (and $TCPLAB_TOKEN) works,
// streams and the DUT stream included; without a token the CLI exits 1 with the server's
// UNAUTHENTICATED message; tenants do not see each other's sandboxes or DUTs.
#include "tcplab/v1/dut.pb.h"
#include "tests/e2e/e2e_testing.h"

namespace tcplab::e2e {
namespace {

constexpr char kAlice[] = "alice-e2e-token-0123456789";
constexpr char kBob[] = "bob-e2e-token-0123456789";

class CliAuthTest : public ScriptsCliTest {
 protected:
  CliAuthTest() : ScriptsCliTest("tcplab-auth") {}

  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    tokens_ = tmp_.path() + "/tokens";
    std::ofstream(tokens_) << "# tenants of this test\n" << kAlice << " alice\n" << kBob << " bob\n";
    // CliTest::SetUp starts a daemon without flags: start ours instead, then do the rest.
    ASSERT_NO_FATAL_FAILURE(daemon_.Start({"--auth_tokens", tokens_}));
    ASSERT_FALSE(tmp_.path().empty());
    old_cwd_ = std::filesystem::current_path();
    std::filesystem::current_path(std::string(TCPLAB_SOURCE_DIR) + "/tests/scripts");
  }

  Result As(const std::string& token, const std::vector<std::string>& args,
            absl::Duration timeout = absl::Seconds(60)) {
    std::vector<std::string> a = {"--token", token};
    a.insert(a.end(), args.begin(), args.end());
    return Cli(a, timeout);
  }

  std::string tokens_;
};

TEST_F(CliAuthTest, TokenFromFlagOrEnvironmentWorksAndNoTokenIsRefused) {
  Result created = As(kAlice, {"sandbox", "create", "--backend", "virtual"});
  ASSERT_EQ(created.exit_code, 0) << created.Describe();
  EXPECT_EQ(Line(created.out), "lab1");
  // $TCPLAB_TOKEN: bob, who gets a lab1 of his own.
  Result bob = RunProcess({TCPLAB_CLI_BIN, "--server", daemon_.address(), "sandbox", "create", "--backend", "virtual"},
                          absl::Seconds(60), {"TCPLAB_TOKEN=" + std::string(kBob)});
  ASSERT_EQ(bob.exit_code, 0) << bob.Describe();
  EXPECT_EQ(Line(bob.out), "lab1");

  Result none = Cli({"sandbox", "ls"});
  EXPECT_EQ(none.exit_code, 1) << none.Describe();
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(Line(none.err),
            "tcplab: UNAUTHENTICATED: missing authorization metadata (Bearer token); pass --token or set "
            "TCPLAB_TOKEN")
      << none.Describe();
  Result wrong = As("not-a-token-0123456789", {"sandbox", "ls"});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.Describe();
  EXPECT_EQ(Line(wrong.err), "tcplab: UNAUTHENTICATED: unknown token") << wrong.Describe();
  // A stream without a token.
  Result watch = Cli({"watch", "lab1", "--no-follow"});
  EXPECT_EQ(watch.exit_code, 1) << watch.Describe();
  EXPECT_TRUE(absl::StrContains(watch.err, "tcplab: UNAUTHENTICATED: missing authorization metadata"))
      << watch.Describe();
}

TEST_F(CliAuthTest, TenantsSeeOnlyTheirOwn) {
  ASSERT_EQ(Line(As(kAlice, {"sandbox", "create", "alicebox", "--backend", "virtual"}).out), "alicebox");
  Result ls = As(kAlice, {"sandbox", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.Describe();
  EXPECT_TRUE(absl::StrContains(ls.out, "alicebox")) << ls.out;
  Result bob_ls = As(kBob, {"sandbox", "ls"});
  ASSERT_EQ(bob_ls.exit_code, 0) << bob_ls.Describe();
  EXPECT_FALSE(absl::StrContains(bob_ls.out, "alicebox")) << bob_ls.out;
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"sandbox", "show", "alicebox"}, {"sandbox", "rm", "alicebox"},
        {"watch", "alicebox", "--no-follow"}, {"conns", "alicebox"}}) {
    Result r = As(kBob, cmd);
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_EQ(Line(r.err), "tcplab: NOT_FOUND: sandbox alicebox not found") << r.Describe();
  }
  // Alice's sandbox is still there, and her stream works.
  Result watch = As(kAlice, {"watch", "alicebox", "--no-follow"});
  EXPECT_EQ(watch.exit_code, 0) << watch.Describe();
  EXPECT_EQ(As(kAlice, {"sandbox", "show", "alicebox"}).exit_code, 0);
}

TEST_F(CliAuthTest, TheDutStreamCarriesTheTokenAndItsDutIsTheTenants) {
  // `tcplab dut` without a token is refused at once.
  Result refused = Cli({"dut", "--stack", "engine", "--name", "e0"}, absl::Seconds(30));
  EXPECT_NE(refused.exit_code, 0) << refused.Describe();
  EXPECT_TRUE(absl::StrContains(refused.err, "UNAUTHENTICATED")) << refused.Describe();

  BackgroundProcess dut;
  ASSERT_NO_FATAL_FAILURE(dut.Start({TCPLAB_CLI_BIN, "--server", daemon_.address(), "--token", kAlice, "dut",
                                     "--stack", "engine", "--name", "e1"},
                                    tmp_.path() + "/dut.err"));
  auto listed = [&](const std::string& token) {
    Result r = As(token, {"--json", "dut", "ls"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    v1::ListDutsResponse resp;
    EXPECT_TRUE(FromJson(r.out, &resp)) << r.out;
    for (const v1::AttachedDut& d : resp.duts()) {
      if (d.name() == "e1") return true;
    }
    return false;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!listed(kAlice) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(listed(kAlice)) << dut.Describe();
  EXPECT_FALSE(listed(kBob));

  Result graded = As(kAlice, {"grade", "lifecycle/handshake_active.pkt", "--target", "dut", "--dut", "e1",
                              "--tolerance-usecs", "20000"},
                     absl::Minutes(3));
  EXPECT_EQ(graded.exit_code, 0) << graded.Describe();
  Result theirs = As(kBob, {"grade", "lifecycle/handshake_active.pkt", "--target", "dut", "--dut", "e1"});
  EXPECT_EQ(theirs.exit_code, 1) << theirs.Describe();
  EXPECT_TRUE(absl::StrContains(theirs.err, "no DUT named \"e1\" is attached")) << theirs.Describe();
  // The stored run is alice's: one JSON line for her, none for bob.
  Result mine = As(kAlice, {"--json", "grade", "results"});
  EXPECT_EQ(mine.exit_code, 0) << mine.Describe();
  EXPECT_EQ(SplitLines(mine.out).size(), 1u) << mine.out;
  Result runs = As(kBob, {"--json", "grade", "results"});
  EXPECT_EQ(runs.exit_code, 0) << runs.Describe();
  EXPECT_EQ(runs.out, "") << runs.out;
}

}  // namespace
}  // namespace tcplab::e2e
