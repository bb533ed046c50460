// GradingService over a real channel: runs streamed and stored, validation, the kernel target,
// cancellation and shutdown, and the results database surviving a restart.
#include <filesystem>

#include "server/results_store.h"
#include "tcplab/v1/grading.grpc.pb.h"
#include "tests/server/server_testing.h"

namespace tcplab::server::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Wrong on purpose: the SYN+ACK acknowledges x+1, not x+2.
constexpr char kWrongAck[] = R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 2 <mss 1460>
)";
// Waits three seconds of real time on the kernel before anything happens.
constexpr char kSlow[] = R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+3 bind(3, ..., ...) = 0
)";

v1::Script Script(const std::string& name, const std::string& text) {
  v1::Script s;
  s.set_name(name);
  s.set_text(text);
  return s;
}

// A suite for the kernel target, with the tolerance real time on a shared machine (and under
// sanitizers) needs.
v1::RunSuiteRequest KernelSuite(const std::vector<v1::Script>& scripts) {
  v1::RunSuiteRequest req;
  for (const v1::Script& s : scripts) *req.add_scripts() = s;
  req.set_target(v1::GRADING_TARGET_KERNEL);
  req.set_tolerance_usecs(20000);
  return req;
}

class GradingTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    grading_ = v1::GradingService::NewStub(channel_);
  }

  // Runs a suite to its end; the responses, and the stream's status.
  grpc::Status Run(const v1::RunSuiteRequest& req, std::vector<v1::RunSuiteResponse>* out) {
    grpc::ClientContext ctx;
    auto reader = grading_->RunSuite(&ctx, req);
    v1::RunSuiteResponse r;
    while (reader->Read(&r)) out->push_back(r);
    return reader->Finish();
  }

  std::unique_ptr<v1::GradingService::Stub> grading_;
};

TEST_F(GradingTest, EngineRunStreamsEachResultThenTheStoredSummary) {
  v1::RunSuiteRequest req;
  *req.add_scripts() = Script("handshake.pkt", kHandshake);
  *req.add_scripts() = Script("wrong.pkt", kWrongAck);
  req.set_target(v1::GRADING_TARGET_ENGINE);
  req.set_student("s042");
  std::vector<v1::RunSuiteResponse> out;
  ASSERT_THAT(Run(req, &out), IsOk());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].done(), 1);
  EXPECT_EQ(out[0].total(), 2);
  EXPECT_GT(out[0].run_id(), 0);
  EXPECT_EQ(out[0].run_id(), out[2].summary().id());
  EXPECT_EQ(out[0].result().name(), "handshake.pkt");
  EXPECT_TRUE(out[0].result().passed());
  EXPECT_EQ(out[0].result().sha256().size(), 64u);
  const v1::ScriptResult& bad = out[1].result();
  EXPECT_FALSE(bad.passed());
  EXPECT_EQ(bad.line(), 5);
  EXPECT_THAT(bad.error(), HasSubstr("wrong.pkt:5: segment mismatch (ack)"));
  ASSERT_EQ(bad.diffs_size(), 1);
  EXPECT_EQ(bad.diffs(0).field(), "ack");
  EXPECT_EQ(bad.diffs(0).expected(), "2");
  EXPECT_EQ(bad.diffs(0).actual(), "1");
  EXPECT_GT(bad.timeline_size(), 3);
  ASSERT_TRUE(out[2].has_summary());
  const v1::GradingRun& run = out[2].summary();
  EXPECT_GT(run.id(), 0);
  EXPECT_EQ(run.state(), v1::RUN_STATE_DONE);
  EXPECT_EQ(run.student(), "s042");
  EXPECT_EQ(run.passed(), 1);
  EXPECT_EQ(run.failed(), 1);
  EXPECT_EQ(run.total(), 2);
  EXPECT_THAT(run.requested_by(), HasSubstr("127.0.0.1"));
  EXPECT_TRUE(run.has_finished());

  grpc::ClientContext ctx;
  v1::GetRunRequest get;
  get.set_id(run.id());
  v1::GradingRun stored;
  ASSERT_THAT(grading_->GetRun(&ctx, get, &stored), IsOk());
  ASSERT_EQ(stored.results_size(), 2);
  EXPECT_EQ(stored.results(1).error(), bad.error());
  EXPECT_EQ(stored.results(1).diffs(0).field(), "ack");
}

TEST_F(GradingTest, ListRunsByStudentNewestFirst) {
  for (const char* student : {"alice", "bob", "alice"}) {
    v1::RunSuiteRequest req;
    *req.add_scripts() = Script("handshake.pkt", kHandshake);
    req.set_target(v1::GRADING_TARGET_ENGINE);
    req.set_student(student);
    std::vector<v1::RunSuiteResponse> out;
    ASSERT_THAT(Run(req, &out), IsOk());
  }
  grpc::ClientContext ctx;
  v1::ListRunsRequest req;
  req.set_student("alice");
  req.set_with_results(true);
  v1::ListRunsResponse resp;
  ASSERT_THAT(grading_->ListRuns(&ctx, req, &resp), IsOk());
  ASSERT_EQ(resp.runs_size(), 2);
  EXPECT_GT(resp.runs(0).id(), resp.runs(1).id());
  EXPECT_EQ(resp.runs(0).results_size(), 1);
  EXPECT_TRUE(resp.runs(0).results(0).passed());
}

TEST_F(GradingTest, AScriptThatDoesNotParseIsAFailedResultNamingTheLine) {
  v1::RunSuiteRequest req;
  *req.add_scripts() = Script("bad.pkt", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 poll(3) = 0\n");
  req.set_target(v1::GRADING_TARGET_ENGINE);
  std::vector<v1::RunSuiteResponse> out;
  ASSERT_THAT(Run(req, &out), IsOk());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[0].result().passed());
  EXPECT_THAT(out[0].result().error(), HasSubstr("bad.pkt:2:4: error: unsupported system call 'poll'"));
}

TEST_F(GradingTest, InvalidRequestsNameTheField) {
  auto run = [&](v1::RunSuiteRequest req) {
    std::vector<v1::RunSuiteResponse> out;
    return Run(req, &out);
  };
  v1::RunSuiteRequest none;
  none.set_target(v1::GRADING_TARGET_ENGINE);
  EXPECT_THAT(run(none), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "scripts: at least one script is required"));

  v1::RunSuiteRequest no_target;
  *no_target.add_scripts() = Script("a.pkt", kHandshake);
  EXPECT_THAT(run(no_target), HasStatus(grpc::StatusCode::INVALID_ARGUMENT,
                                        "target: must be GRADING_TARGET_ENGINE, GRADING_TARGET_KERNEL or "
                                        "GRADING_TARGET_DUT, got GRADING_TARGET_UNSPECIFIED"));
  v1::RunSuiteRequest unnamed = no_target;
  unnamed.set_target(v1::GRADING_TARGET_ENGINE);
  unnamed.mutable_scripts(0)->clear_name();
  EXPECT_THAT(run(unnamed), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "scripts[0].name: must be 1 to 256 octets"));
  v1::RunSuiteRequest huge = no_target;
  huge.set_target(v1::GRADING_TARGET_ENGINE);
  huge.mutable_scripts(0)->set_text(std::string((1 << 20) + 1, '\n'));
  EXPECT_THAT(run(huge), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "scripts[0].text (a.pkt): 1048577 octets"));
  v1::RunSuiteRequest tol = no_target;
  tol.set_target(v1::GRADING_TARGET_ENGINE);
  tol.set_tolerance_usecs(-1);
  EXPECT_THAT(run(tol), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "tolerance_usecs: must be 0 to 10000000 (10 s), got -1"));
  v1::RunSuiteRequest dut = no_target;
  dut.set_target(v1::GRADING_TARGET_DUT);
  EXPECT_THAT(run(dut), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "dut: required with GRADING_TARGET_DUT"));

  grpc::ClientContext ctx;
  v1::GetRunRequest get;
  get.set_id(999);
  v1::GradingRun r;
  EXPECT_THAT(grading_->GetRun(&ctx, get, &r), HasStatus(grpc::StatusCode::NOT_FOUND, "grading run 999 not found"));
  grpc::ClientContext ctx2;
  get.set_id(0);
  EXPECT_THAT(grading_->GetRun(&ctx2, get, &r), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "id: must be a run id"));
  grpc::ClientContext ctx3;
  v1::ListRunsRequest list;
  list.set_limit(-5);
  v1::ListRunsResponse lr;
  EXPECT_THAT(grading_->ListRuns(&ctx3, list, &lr), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "limit: must be 0 to 10000"));
}

TEST_F(GradingTest, KernelTargetGradesLinux) {
  if (!IsRoot()) GTEST_SKIP() << "the kernel target needs root (a namespace and a TUN)";
  const v1::RunSuiteRequest req = KernelSuite({Script("handshake.pkt", kHandshake), Script("wrong.pkt", kWrongAck)});
  std::vector<v1::RunSuiteResponse> out;
  ASSERT_THAT(Run(req, &out), IsOk());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].result().passed()) << out[0].result().error();
  EXPECT_FALSE(out[1].result().passed());
  EXPECT_EQ(out[2].summary().target(), v1::GRADING_TARGET_KERNEL);
}

TEST_F(GradingTest, CancellingStopsTheRunAndStoresItCancelled) {
  if (!IsRoot()) GTEST_SKIP() << "needs the kernel target (real time) for a run that takes a while";
  const v1::RunSuiteRequest req = KernelSuite({Script("handshake.pkt", kHandshake), Script("slow.pkt", kSlow)});
  grpc::ClientContext ctx;
  auto reader = grading_->RunSuite(&ctx, req);
  v1::RunSuiteResponse first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_TRUE(first.result().passed()) << first.result().error();
  absl::SleepFor(absl::Milliseconds(300));  // into the slow script
  const absl::Time t0 = absl::Now();
  ctx.TryCancel();
  v1::RunSuiteResponse r;
  while (reader->Read(&r)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The worker notices within a slice (0.1 s); the run is stored CANCELLED with the one result.
  v1::GradingRun run;
  do {
    grpc::ClientContext c;
    v1::ListRunsRequest list;
    v1::ListRunsResponse resp;
    ASSERT_THAT(grading_->ListRuns(&c, list, &resp), IsOk());
    ASSERT_EQ(resp.runs_size(), 1);
    run = resp.runs(0);
    if (run.state() != v1::RUN_STATE_RUNNING) break;
    absl::SleepFor(absl::Milliseconds(20));
  } while (absl::Now() - t0 < absl::Seconds(2));
  EXPECT_EQ(run.state(), v1::RUN_STATE_CANCELLED);
  EXPECT_EQ(run.passed(), 1);
  EXPECT_EQ(run.failed(), 0);
}

TEST_F(GradingTest, TooManyRunsAtOnceAreRefused) {
  if (!IsRoot()) GTEST_SKIP() << "needs the kernel target (real time) for runs that take a while";
  const v1::RunSuiteRequest req = KernelSuite({Script("slow.pkt", kSlow)});
  grpc::ClientContext c1, c2, c3;
  auto r1 = grading_->RunSuite(&c1, req);
  auto r2 = grading_->RunSuite(&c2, req);
  absl::SleepFor(absl::Milliseconds(300));
  auto r3 = grading_->RunSuite(&c3, req);
  v1::RunSuiteResponse r;
  EXPECT_FALSE(r3->Read(&r));
  EXPECT_THAT(r3->Finish(), HasStatus(grpc::StatusCode::RESOURCE_EXHAUSTED, "2 grading runs are in progress"));
  c1.TryCancel();
  c2.TryCancel();
  while (r1->Read(&r)) {
  }
  while (r2->Read(&r)) {
  }
  r1->Finish();
  r2->Finish();
}

TEST_F(GradingTest, ShutdownInterruptsARunningSuite) {
  if (!IsRoot()) GTEST_SKIP() << "needs the kernel target (real time) for a run that takes a while";
  const v1::RunSuiteRequest req = KernelSuite({Script("slow.pkt", kSlow)});
  grpc::ClientContext ctx;
  auto reader = grading_->RunSuite(&ctx, req);
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time t0 = absl::Now();
  ResultsStore& store = server_->results();
  std::thread stopper([&] { server_->Shutdown(); });
  v1::RunSuiteResponse r;
  while (reader->Read(&r)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  stopper.join();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));  // did not wait out the 3 s script
  (void)store;
}

TEST(ResultsStore, ARunLeftRunningIsInterruptedOnReopenAndKeepsItsResults) {
  const std::string dir = ::testing::TempDir() + "/results-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/results.db";
  std::filesystem::remove(path);
  int64_t id = 0;
  {
    auto store = ResultsStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    v1::GradingRun run;
    run.set_student("carol");
    run.set_target(v1::GRADING_TARGET_ENGINE);
    run.set_total(3);
    absl::StatusOr<int64_t> got = (*store)->BeginRun(run);
    ASSERT_TRUE(got.ok());
    id = *got;
    v1::ScriptResult r;
    r.set_name("a.pkt");
    r.set_passed(true);
    ASSERT_TRUE((*store)->AddResult(id, 0, r).ok());
    // No EndRun: the process "dies" here.
  }
  auto store = ResultsStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->interrupted_at_open(), 1);
  absl::StatusOr<v1::GradingRun> run = (*store)->GetRun(id, true);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state(), v1::RUN_STATE_INTERRUPTED);
  EXPECT_TRUE(run->has_finished());
  EXPECT_EQ(run->passed(), 1);
  ASSERT_EQ(run->results_size(), 1);
  EXPECT_EQ(run->results(0).name(), "a.pkt");
  std::filesystem::remove_all(dir);
}

// A second server on a data directory in use is refused before it touches the database: it
// would otherwise store the first one's running runs as INTERRUPTED.
TEST(DataDir, ASecondServerOnTheSameDataDirIsRefusedAndTheRunningRunStays) {
  const std::string dir = ::testing::TempDir() + "/datadir-lock-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  ServerConfig cfg;
  cfg.listen = {"127.0.0.1:0"};
  cfg.defaults.backend = sandbox::Backend::kVirtual;
  cfg.data_dir = dir;
  absl::StatusOr<std::unique_ptr<Server>> first = Server::Start(cfg);
  ASSERT_TRUE(first.ok()) << first.status();
  v1::GradingRun run;
  run.set_student("dave");
  run.set_target(v1::GRADING_TARGET_ENGINE);
  run.set_total(2);
  absl::StatusOr<int64_t> id = (*first)->results().BeginRun(run);
  ASSERT_TRUE(id.ok()) << id.status();

  absl::StatusOr<std::unique_ptr<Server>> second = Server::Start(cfg);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(), absl::StrCat("data_dir ", dir, " is in use by another tcplabd (pid ", getpid(),
                                                    "); give each server its own --data_dir"));
  absl::StatusOr<v1::GradingRun> still = (*first)->results().GetRun(*id, false);
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(still->state(), v1::RUN_STATE_RUNNING);

  // Once the first is gone the directory is free again, and its unfinished run is found.
  first->reset();
  absl::StatusOr<std::unique_ptr<Server>> third = Server::Start(cfg);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ((*third)->results().interrupted_at_open(), 1);
  third->reset();
  std::filesystem::remove_all(dir);
}

TEST(ResultsStore, UnwritablePathIsAClearError) {
  auto store = ResultsStore::Open("/proc/no/such/dir/results.db");
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("results database /proc/no/such/dir/results.db"));
}

}  // namespace
}  // namespace tcplab::server::testing
