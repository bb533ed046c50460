// DutService over a real channel: the engine attached as an external DUT (the same code
// `tcplab dut --stack engine` runs) is graded like the engine in process; attach errors; a
// DUT that goes away in the middle of a run.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_join.h"
#include "client/dut/engine_dut.h"
#include "tcplab/v1/dut.grpc.pb.h"
#include "tcplab/v1/grading.grpc.pb.h"
#include "tests/server/server_testing.h"

namespace tcplab::server::testing {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class DutTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    duts_ = v1::DutService::NewStub(channel_);
    grading_ = v1::GradingService::NewStub(channel_);
  }
  void TearDown() override {
    StopEngineDut();
    ServerTest::TearDown();
  }

  void StartEngineDut(const std::string& name) {
    stop_ = false;
    dut_thread_ = std::thread([this, name] {
      dut::EngineDutOptions o;
      o.name = name;
      dut_status_ = dut::RunEngineDut(NewChannel(server_->addresses()[0]), o, stop_);
      dut_done_ = true;
    });
    // Attached once ListDuts shows it.
    for (int i = 0; i < 200 && !Attached(name); ++i) absl::SleepFor(absl::Milliseconds(10));
    ASSERT_TRUE(Attached(name));
  }
  void StopEngineDut() {
    stop_ = true;
    if (dut_thread_.joinable()) dut_thread_.join();
  }
  bool Attached(const std::string& name) {
    grpc::ClientContext ctx;
    v1::ListDutsResponse resp;
    if (!duts_->ListDuts(&ctx, v1::ListDutsRequest(), &resp).ok()) return false;
    for (const auto& d : resp.duts()) {
      if (d.name() == name) return true;
    }
    return false;
  }

  grpc::Status Grade(const v1::RunSuiteRequest& req, std::vector<v1::ScriptResult>* results) {
    grpc::ClientContext ctx;
    auto reader = grading_->RunSuite(&ctx, req);
    v1::RunSuiteResponse r;
    while (reader->Read(&r)) {
      if (r.has_result()) results->push_back(r.result());
    }
    return reader->Finish();
  }

  std::unique_ptr<v1::DutService::Stub> duts_;
  std::unique_ptr<v1::GradingService::Stub> grading_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> dut_done_{false};
  std::thread dut_thread_;
  absl::Status dut_status_;
};

TEST_F(DutTest, EngineAttachedAsADutPassesTheLifecycleScripts) {
  StartEngineDut("engine-dut");
  v1::RunSuiteRequest req;
  req.set_target(v1::GRADING_TARGET_DUT);
  req.set_dut("engine-dut");
  req.set_tolerance_usecs(20000);  // real time over gRPC on a shared machine (and sanitizers)
  const std::filesystem::path dir = std::filesystem::path(TCPLAB_SOURCE_DIR) / "tests/scripts/lifecycle";
  for (const char* f : {"handshake_passive.pkt", "handshake_active.pkt", "close_active.pkt", "close_passive.pkt"}) {
    v1::Script* s = req.add_scripts();
    s->set_name(f);
    s->set_text(ReadFile((dir / f).string()));
  }
  std::vector<v1::ScriptResult> results;
  ASSERT_THAT(Grade(req, &results), IsOk());
  ASSERT_EQ(results.size(), 4u);
  for (const v1::ScriptResult& r : results) {
    EXPECT_TRUE(r.passed()) << r.name() << ": " << r.error() << "\n" << absl::StrJoin(r.timeline(), "\n");
  }
}

TEST_F(DutTest, AWrongScriptFailsOnTheDutAsOnTheEngine) {
  StartEngineDut("engine-dut");
  v1::RunSuiteRequest req;
  req.set_target(v1::GRADING_TARGET_DUT);
  req.set_dut("engine-dut");
  req.set_tolerance_usecs(20000);  // real time over gRPC on a shared machine (and sanitizers)
  v1::Script* s = req.add_scripts();
  s->set_name("wrong.pkt");
  s->set_text(R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 2 <mss 1460>
)");
  std::vector<v1::ScriptResult> results;
  ASSERT_THAT(Grade(req, &results), IsOk());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].passed());
  ASSERT_GE(results[0].diffs_size(), 1);
  EXPECT_EQ(results[0].diffs(results[0].diffs_size() - 1).field(), "ack");  // after "time", if late
}

TEST_F(DutTest, UnknownOrBusyDutIsRefused) {
  v1::RunSuiteRequest req;
  req.set_target(v1::GRADING_TARGET_DUT);
  req.set_dut("nobody");
  req.add_scripts()->set_name("a.pkt");
  std::vector<v1::ScriptResult> results;
  EXPECT_THAT(Grade(req, &results), HasStatus(grpc::StatusCode::FAILED_PRECONDITION, "no DUT named \"nobody\" is attached"));
}

TEST_F(DutTest, TwoDutsCannotShareAName) {
  StartEngineDut("twin");
  std::atomic<bool> stop{false};
  dut::EngineDutOptions o;
  o.name = "twin";
  absl::Status s = dut::RunEngineDut(NewChannel(server_->addresses()[0]), o, stop);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(s.message()), HasSubstr("a DUT named \"twin\" is already attached"));
}

TEST_F(DutTest, HelloMustComeFirstAndNameMustBeValid) {
  {
    grpc::ClientContext ctx;
    auto stream = duts_->AttachDut(&ctx);
    v1::DutMessage m;
    m.mutable_datagram()->set_data("x");
    stream->Write(m);
    v1::LabMessage in;
    EXPECT_FALSE(stream->Read(&in));
    EXPECT_THAT(stream->Finish(), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be hello"));
  }
  {
    grpc::ClientContext ctx;
    auto stream = duts_->AttachDut(&ctx);
    v1::DutMessage m;
    m.mutable_hello()->set_name("bad name/");
    stream->Write(m);
    v1::LabMessage in;
    EXPECT_FALSE(stream->Read(&in));
    EXPECT_THAT(stream->Finish(), HasStatus(grpc::StatusCode::INVALID_ARGUMENT, "hello.name: must be 1 to 64"));
  }
}

TEST_F(DutTest, ADutThatNeverAnswersFailsTheScriptNotTheServer) {
  // A "DUT" that says hello and then reads without answering.
  grpc::ClientContext ctx;
  auto stream = duts_->AttachDut(&ctx);
  v1::DutMessage hello;
  hello.mutable_hello()->set_name("mute");
  ASSERT_TRUE(stream->Write(hello));
  v1::LabMessage welcome;
  ASSERT_TRUE(stream->Read(&welcome));
  EXPECT_EQ(welcome.welcome().local_ip(), "198.18.0.1");
  std::thread drain([&] {
    v1::LabMessage m;
    while (stream->Read(&m)) {
    }
  });
  v1::RunSuiteRequest req;
  req.set_target(v1::GRADING_TARGET_DUT);
  req.set_dut("mute");
  v1::Script* s = req.add_scripts();
  s->set_name("a.pkt");
  s->set_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
  std::vector<v1::ScriptResult> results;
  ASSERT_THAT(Grade(req, &results), IsOk());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].passed());
  EXPECT_THAT(results[0].error(), HasSubstr("the DUT did not answer reset with reset_done within 2 s"));
  ctx.TryCancel();
  drain.join();
  stream->Finish();
}

TEST_F(DutTest, ShutdownEndsDutStreamsAtOnce) {
  StartEngineDut("leaving");
  const absl::Time t0 = absl::Now();
  std::thread stopper([&] { server_->Shutdown(absl::Seconds(5)); });
  while (!dut_done_ && absl::Now() - t0 < absl::Seconds(10)) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(3));  // ended at once, not after the 5 s grace
  stopper.join();
  StopEngineDut();
  EXPECT_EQ(dut_status_.code(), absl::StatusCode::kUnavailable) << dut_status_;
  EXPECT_THAT(std::string(dut_status_.message()), HasSubstr("server shutting down"));
}

}  // namespace
}  // namespace tcplab::server::testing
