// Bearer tokens and tenants over a real channel (server/auth.h): calls without a valid token
// are UNAUTHENTICATED, unary and streaming, health is open; one tenant's sandboxes, runs and
// DUTs are invisible to another (NOT_FOUND exactly as for an unknown name); bad token files
// stop the server from starting; a results database without tenants is migrated.
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "client/dut/engine_dut.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/client_interceptor.h"
#include "server/auth.h"
#include "server/results_store.h"
#include "tcplab/v1/dut.grpc.pb.h"
#include "tcplab/v1/grading.grpc.pb.h"
#include "tests/server/server_testing.h"

namespace tcplab::server::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAlice[] = "alice-token-0123456789abcdef";
constexpr char kBob[] = "bob-token-0123456789abcdef";
constexpr char kWrong[] = "wrong-token-0123456789abcdef";


std::string WriteTemp(const std::string& name, const std::string& text) {
  static std::atomic<int> n{0};
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name, "-", getpid(), "-", n++);
  std::ofstream(path) << text;
  return path;
}

// A context that carries `token` (none when empty), as the CLI and the Python client send it.
std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return ctx;
}

// Adds the token to every call of a channel (for the engine DUT, which makes its own contexts).
class BearerFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerFactory(std::string token) : value_("Bearer " + std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new Bearer(value_);
  }

 private:
  class Bearer : public grpc::experimental::Interceptor {
   public:
    explicit Bearer(std::string v) : v_(std::move(v)) {}
    void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
      if (m->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
        m->GetSendInitialMetadata()->insert({"authorization", v_});
      }
      m->Proceed();
    }

   private:
    std::string v_;
  };
  std::string value_;
};

class AuthTest : public ServerTest {
 protected:
  void Configure(ServerConfig& cfg) override {
    cfg.auth_tokens = WriteTemp("tokens", absl::StrCat("# test tokens\n\n", kAlice, " alice\n", kBob, "\tbob\n"));
  }
  void SetUp() override {
    ServerTest::SetUp();
    grading_ = v1::GradingService::NewStub(channel_);
    duts_ = v1::DutService::NewStub(channel_);
  }
  void TearDown() override {
    for (auto& [stop, t] : dut_threads_) {
      *stop = true;
      t.join();
    }
    ServerTest::TearDown();
  }

  grpc::Status CreateAs(const std::string& token, const std::string& name, v1::Sandbox* out = nullptr) {
    v1::CreateSandboxRequest req;
    req.set_name(name);
    v1::Sandbox sb;
    grpc::Status s = sandboxes_->CreateSandbox(As(token).get(), req, &sb);
    if (out) *out = sb;
    return s;
  }
  std::vector<std::string> NamesOf(const std::string& token) {
    v1::ListSandboxesResponse resp;
    EXPECT_THAT(sandboxes_->ListSandboxes(As(token).get(), {}, &resp), IsOk());
    std::vector<std::string> names;
    for (const v1::Sandbox& s : resp.sandboxes()) names.push_back(s.name());
    return names;
  }
  grpc::Status WatchAs(const std::string& token, const std::string& sb) {
    auto ctx = As(token);
    v1::WatchEventsRequest req;
    req.set_sandbox(sb);
    req.set_no_follow(true);
    auto r = sandboxes_->WatchEvents(ctx.get(), req);
    v1::WatchEventsResponse resp;
    while (r->Read(&resp)) {
    }
    return r->Finish();
  }
  grpc::Status PcapAs(const std::string& token, const std::string& sb) {
    auto ctx = As(token);
    v1::ExportPcapRequest req;
    req.set_sandbox(sb);
    auto r = sandboxes_->ExportPcap(ctx.get(), req);
    v1::PcapChunk c;
    while (r->Read(&c)) {
    }
    return r->Finish();
  }
  grpc::Status GradeAs(const std::string& token, v1::RunSuiteRequest req, int64_t* run_id = nullptr) {
    auto ctx = As(token);
    auto r = grading_->RunSuite(ctx.get(), req);
    v1::RunSuiteResponse resp;
    while (r->Read(&resp)) {
      if (run_id) *run_id = resp.run_id();
    }
    return r->Finish();
  }
  static v1::RunSuiteRequest Suite(v1::GradingTarget target, const std::string& dut = "") {
    v1::RunSuiteRequest req;
    v1::Script* s = req.add_scripts();
    s->set_name("handshake.pkt");
    s->set_text(kHandshake);
    req.set_target(target);
    req.set_dut(dut);
    // A DUT runs in real time, on a shared machine.
    if (target == v1::GRADING_TARGET_DUT) req.set_tolerance_usecs(20000);
    return req;
  }
  grpc::Status AttachWithoutToken() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = duts_->AttachDut(&ctx);
    v1::DutMessage hello;
    hello.mutable_hello()->set_name("anon");
    stream->Write(hello);
    v1::LabMessage m;
    while (stream->Read(&m)) {
    }
    return stream->Finish();
  }
  std::vector<std::string> DutsOf(const std::string& token) {
    v1::ListDutsResponse resp;
    EXPECT_THAT(duts_->ListDuts(As(token).get(), {}, &resp), IsOk());
    std::vector<std::string> names;
    for (const v1::AttachedDut& d : resp.duts()) names.push_back(d.name());
    return names;
  }
  // The engine attached as DUT `name` with `token`; true once the tenant lists it.
  bool AttachEngineDut(const std::string& token, const std::string& name) {
    auto stop = std::make_unique<std::atomic<bool>>(false);
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> ic;
    ic.push_back(std::make_unique<BearerFactory>(token));
    auto ch = grpc::experimental::CreateCustomChannelWithInterceptors(
        server_->addresses()[0], grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(ic));
    std::atomic<bool>* stop_ptr = stop.get();
    dut_threads_.emplace_back(std::move(stop), std::thread([ch, name, stop_ptr] {
                                dut::EngineDutOptions o;
                                o.name = name;
                                (void)dut::RunEngineDut(ch, o, *stop_ptr);
                              }));
    return WaitUntil([&] {
      std::vector<std::string> d = DutsOf(token);
      return std::find(d.begin(), d.end(), name) != d.end();
    });
  }

  std::unique_ptr<v1::GradingService::Stub> grading_;
  std::unique_ptr<v1::DutService::Stub> duts_;
  std::vector<std::pair<std::unique_ptr<std::atomic<bool>>, std::thread>> dut_threads_;
};

TEST_F(AuthTest, AUnaryCallWithoutTokenIsUnauthenticated) {
  v1::ListSandboxesResponse resp;
  grpc::Status s = sandboxes_->ListSandboxes(As("").get(), {}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), kMissingTokenMessage);
}

TEST_F(AuthTest, AnUnknownTokenIsUnauthenticatedAndNotEchoed) {
  v1::ListSandboxesResponse resp;
  grpc::Status s = sandboxes_->ListSandboxes(As(kWrong).get(), {}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "unknown token");
  // Another scheme than Bearer is no token at all.
  auto ctx = As("");
  ctx->AddMetadata("authorization", std::string("Basic ") + kAlice);
  EXPECT_THAT(sandboxes_->ListSandboxes(ctx.get(), {}, &resp),
              HasStatus(grpc::StatusCode::UNAUTHENTICATED, "missing authorization metadata"));
}

TEST_F(AuthTest, ARefusedCallDoesNothing) {
  EXPECT_THAT(CreateAs("", "sneaky"), HasStatus(grpc::StatusCode::UNAUTHENTICATED, "missing"));
  EXPECT_THAT(CreateAs(kWrong, "sneaky2"), HasStatus(grpc::StatusCode::UNAUTHENTICATED, "unknown token"));
  EXPECT_TRUE(NamesOf(kAlice).empty());
  EXPECT_TRUE(NamesOf(kBob).empty());
  EXPECT_TRUE(server_->registry().List().empty());  // nor in the anonymous tenant
}

TEST_F(AuthTest, StreamsWithoutAValidTokenAreUnauthenticated) {
  ASSERT_THAT(CreateAs(kAlice, "lab"), IsOk());
  for (const std::string& token : {std::string(), std::string(kWrong)}) {
    SCOPED_TRACE(token.empty() ? "no token" : "wrong token");
    const char* want = token.empty() ? "missing authorization metadata" : "unknown token";
    EXPECT_THAT(WatchAs(token, "lab"), HasStatus(grpc::StatusCode::UNAUTHENTICATED, want));
    EXPECT_THAT(PcapAs(token, "lab"), HasStatus(grpc::StatusCode::UNAUTHENTICATED, want));
    EXPECT_THAT(GradeAs(token, Suite(v1::GRADING_TARGET_ENGINE)), HasStatus(grpc::StatusCode::UNAUTHENTICATED, want));
  }
  EXPECT_THAT(AttachWithoutToken(), HasStatus(grpc::StatusCode::UNAUTHENTICATED, "missing authorization metadata"));
  EXPECT_TRUE(DutsOf(kAlice).empty());
  v1::ListRunsResponse runs;
  ASSERT_THAT(grading_->ListRuns(As(kAlice).get(), {}, &runs), IsOk());
  EXPECT_EQ(runs.runs_size(), 0);  // the refused RunSuite stored nothing
}

TEST_F(AuthTest, HealthNeedsNoToken) {
  std::string got;
  ASSERT_THAT(HealthCheck(channel_, &got), IsOk());
  EXPECT_EQ(got, std::string("\x08\x01", 2));  // SERVING
}

// ServerReflectionInfo with list_services (hand-encoded: field 7, "" = 3a 00): what it
// answered, and the stream's status.
grpc::Status ReflectionAs(const std::shared_ptr<grpc::Channel>& ch, const std::string& token, std::string* out) {
  grpc::GenericStub stub(ch);
  auto ctx = As(token);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(ctx.get(), "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok = false;
  auto step = [&] { return cq.Next(&tag, &ok) && ok; };
  call->StartCall(reinterpret_cast<void*>(1));
  if (step()) {
    grpc::Slice req("\x3a\x00", 2);
    grpc::ByteBuffer req_buf(&req, 1);
    call->Write(req_buf, reinterpret_cast<void*>(2));
    if (step()) {
      grpc::ByteBuffer resp;
      call->Read(&resp, reinterpret_cast<void*>(3));
      if (step()) {
        std::vector<grpc::Slice> slices;
        (void)resp.Dump(&slices);
        for (const auto& sl : slices) out->append(reinterpret_cast<const char*>(sl.begin()), sl.size());
        call->WritesDone(reinterpret_cast<void*>(4));
        step();
      }
    }
  }
  grpc::Status st;
  call->Finish(&st, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  return st;
}

TEST_F(AuthTest, ReflectionNeedsAToken) {
  std::string out;
  EXPECT_THAT(ReflectionAs(channel_, "", &out),
              HasStatus(grpc::StatusCode::UNAUTHENTICATED, "missing authorization metadata"));
  EXPECT_THAT(out, Not(HasSubstr("tcplab.v1")));
  out.clear();
  EXPECT_THAT(ReflectionAs(channel_, kWrong, &out), HasStatus(grpc::StatusCode::UNAUTHENTICATED, "unknown token"));
  EXPECT_THAT(out, Not(HasSubstr("tcplab.v1")));
  out.clear();
  EXPECT_THAT(ReflectionAs(channel_, kAlice, &out), IsOk());
  EXPECT_THAT(out, HasSubstr("tcplab.v1.SandboxService"));
}

TEST_F(AuthTest, BothTenantsHaveTheirOwnLab1AndAutoNames) {
  v1::Sandbox a, b;
  ASSERT_THAT(CreateAs(kAlice, "", &a), IsOk());
  ASSERT_THAT(CreateAs(kBob, "", &b), IsOk());
  EXPECT_EQ(a.name(), "lab1");
  EXPECT_EQ(b.name(), "lab1");
  ASSERT_THAT(CreateAs(kBob, "", &b), IsOk());
  EXPECT_EQ(b.name(), "lab2");
  ASSERT_THAT(CreateAs(kAlice, "shared"), IsOk());
  ASSERT_THAT(CreateAs(kBob, "shared"), IsOk());
  EXPECT_THAT(CreateAs(kBob, "shared"), HasStatus(grpc::StatusCode::ALREADY_EXISTS, "sandbox shared already exists"));
  EXPECT_THAT(NamesOf(kAlice), ::testing::ElementsAre("lab1", "shared"));
  EXPECT_THAT(NamesOf(kBob), ::testing::ElementsAre("lab1", "lab2", "shared"));
  // Deleting bob's lab1 leaves alice's.
  v1::DeleteSandboxRequest del;
  del.set_name("lab1");
  v1::DeleteSandboxResponse dr;
  ASSERT_THAT(sandboxes_->DeleteSandbox(As(kBob).get(), del, &dr), IsOk());
  EXPECT_THAT(NamesOf(kAlice), ::testing::ElementsAre("lab1", "shared"));
  EXPECT_THAT(NamesOf(kBob), ::testing::ElementsAre("lab2", "shared"));
}

// With the tun backend each lab1 is its own namespace with its own kernel: the name is only
// the registry's key.
TEST_F(AuthTest, TwoTenantsLab1AreTwoNamespaces) {
  if (!IsRoot()) GTEST_SKIP() << "the tun backend needs root (a network namespace and a TUN)";
  v1::CreateSandboxRequest req;
  req.set_name("lab1");
  req.mutable_options()->set_backend(v1::BACKEND_TUN);
  v1::Sandbox a, b;
  ASSERT_THAT(sandboxes_->CreateSandbox(As(kAlice).get(), req, &a), IsOk());
  ASSERT_THAT(sandboxes_->CreateSandbox(As(kBob).get(), req, &b), IsOk());
  EXPECT_FALSE(a.netns().empty());
  EXPECT_FALSE(b.netns().empty());
  EXPECT_NE(a.netns(), b.netns());
  // The same kernel port in both: separate kernels.
  for (const char* token : {kAlice, kBob}) {
    v1::ListenRequest l;
    l.set_sandbox("lab1");
    l.set_stack(v1::STACK_KERNEL);
    l.mutable_local()->set_port(7000);
    v1::Connection c;
    EXPECT_THAT(conns_->Listen(As(token).get(), l, &c), IsOk()) << token;
  }
}

TEST_F(AuthTest, AnotherTenantsSandboxIsNotFoundExactlyLikeAnUnknownOne) {
  ASSERT_THAT(CreateAs(kAlice, "secret"), IsOk());
  // Alice listens and connects, so that there are connections to aim at.
  auto alice_conns = [&] {
    v1::ListConnectionsRequest req;
    req.set_sandbox("secret");
    v1::ListConnectionsResponse resp;
    EXPECT_THAT(conns_->ListConnections(As(kAlice).get(), req, &resp), IsOk());
    return resp.connections_size();
  };
  v1::ListenRequest lreq;
  lreq.set_sandbox("secret");
  lreq.set_stack(v1::STACK_ENGINE);
  lreq.mutable_local()->set_port(80);
  v1::Connection listener;
  ASSERT_THAT(conns_->Listen(As(kAlice).get(), lreq, &listener), IsOk());
  ASSERT_EQ(alice_conns(), 1);

  // What bob gets for alice's sandbox must be what he gets for one that does not exist.
  for (const std::string& name : {std::string("secret"), std::string("nosuch")}) {
    SCOPED_TRACE(name);
    const std::string want = absl::StrCat("sandbox ", name, " not found");
    auto is_not_found = [&](const grpc::Status& s) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
      EXPECT_EQ(s.error_message(), want);
    };
    v1::GetSandboxRequest get;
    get.set_name(name);
    v1::Sandbox sb;
    is_not_found(sandboxes_->GetSandbox(As(kBob).get(), get, &sb));
    v1::DeleteSandboxRequest del;
    del.set_name(name);
    v1::DeleteSandboxResponse dr;
    is_not_found(sandboxes_->DeleteSandbox(As(kBob).get(), del, &dr));
    v1::SetImpairmentRequest imp;
    imp.set_sandbox(name);
    imp.mutable_impairment()->set_loss(0.5);
    v1::SetImpairmentResponse ir;
    is_not_found(sandboxes_->SetImpairment(As(kBob).get(), imp, &ir));
    is_not_found(WatchAs(kBob, name));
    is_not_found(PcapAs(kBob, name));
    v1::ListenRequest l = lreq;
    l.set_sandbox(name);
    l.mutable_local()->set_port(81);
    v1::Connection c;
    is_not_found(conns_->Listen(As(kBob).get(), l, &c));
    v1::ConnectRequest conn;
    conn.set_sandbox(name);
    conn.set_stack(v1::STACK_ENGINE);
    conn.mutable_remote()->set_ip("198.18.0.2");
    conn.mutable_remote()->set_port(80);
    is_not_found(conns_->Connect(As(kBob).get(), conn, &c));
    v1::ConnectionRequest cr;
    cr.set_sandbox(name);
    cr.set_connection_id(listener.id());
    is_not_found(conns_->GetConnection(As(kBob).get(), cr, &c));
    is_not_found(conns_->Close(As(kBob).get(), cr, &c));
    is_not_found(conns_->Abort(As(kBob).get(), cr, &c));
    is_not_found(conns_->Shutdown(As(kBob).get(), cr, &c));
    v1::SendRequest send;
    send.set_sandbox(name);
    send.set_connection_id(listener.id());
    send.set_data("x");
    v1::SendResponse sr;
    is_not_found(conns_->Send(As(kBob).get(), send, &sr));
    v1::ReceiveRequest recv;
    recv.set_sandbox(name);
    recv.set_connection_id(listener.id());
    v1::ReceiveResponse rr;
    is_not_found(conns_->Receive(As(kBob).get(), recv, &rr));
    v1::ListConnectionsRequest lc;
    lc.set_sandbox(name);
    v1::ListConnectionsResponse lcr;
    is_not_found(conns_->ListConnections(As(kBob).get(), lc, &lcr));
  }
  EXPECT_TRUE(NamesOf(kBob).empty());
  // Nothing bob did touched alice's sandbox: still there, one listener, no impairment.
  EXPECT_THAT(NamesOf(kAlice), ::testing::ElementsAre("secret"));
  EXPECT_EQ(alice_conns(), 1);
  v1::ConnectionRequest cr;
  cr.set_sandbox("secret");
  cr.set_connection_id(listener.id());
  v1::Connection c;
  ASSERT_THAT(conns_->GetConnection(As(kAlice).get(), cr, &c), IsOk());
  EXPECT_EQ(c.state(), v1::TCP_STATE_LISTEN);
}

TEST_F(AuthTest, RunsAreVisibleOnlyToTheirTenant) {
  int64_t id = 0;
  ASSERT_THAT(GradeAs(kAlice, Suite(v1::GRADING_TARGET_ENGINE), &id), IsOk());
  ASSERT_GT(id, 0);
  v1::ListRunsResponse runs;
  ASSERT_THAT(grading_->ListRuns(As(kAlice).get(), {}, &runs), IsOk());
  ASSERT_EQ(runs.runs_size(), 1);
  EXPECT_EQ(runs.runs(0).id(), id);
  v1::GetRunRequest get;
  get.set_id(id);
  v1::GradingRun run;
  ASSERT_THAT(grading_->GetRun(As(kAlice).get(), get, &run), IsOk());
  EXPECT_EQ(run.passed(), 1);

  runs.Clear();
  ASSERT_THAT(grading_->ListRuns(As(kBob).get(), {}, &runs), IsOk());
  EXPECT_EQ(runs.runs_size(), 0);
  grpc::Status theirs = grading_->GetRun(As(kBob).get(), get, &run);
  EXPECT_EQ(theirs.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(theirs.error_message(), absl::StrCat("grading run ", id, " not found"));
  get.set_id(id + 1000);
  grpc::Status unknown = grading_->GetRun(As(kBob).get(), get, &run);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(unknown.error_message(), absl::StrCat("grading run ", id + 1000, " not found"));
}

TEST_F(AuthTest, DutsAreVisibleAndUsableOnlyByTheirTenant) {
  ASSERT_TRUE(AttachEngineDut(kAlice, "mine"));
  EXPECT_THAT(DutsOf(kAlice), ::testing::ElementsAre("mine"));
  EXPECT_TRUE(DutsOf(kBob).empty());
  // Bob grading against alice's DUT gets what he gets for a name nobody attached.
  grpc::Status theirs = GradeAs(kBob, Suite(v1::GRADING_TARGET_DUT, "mine"));
  grpc::Status unknown = GradeAs(kBob, Suite(v1::GRADING_TARGET_DUT, "nobody"));
  EXPECT_EQ(theirs.error_code(), unknown.error_code());
  EXPECT_EQ(theirs.error_message(), "no DUT named \"mine\" is attached (attach one with DutService.AttachDut, e.g. "
                                    "`tcplab dut`)");
  EXPECT_THAT(unknown.error_message(), HasSubstr("no DUT named \"nobody\" is attached"));
  // Names are per tenant: bob may attach a "mine" of his own.
  ASSERT_TRUE(AttachEngineDut(kBob, "mine"));
  // Alice's DUT grades for alice.
  int64_t id = 0;
  ASSERT_THAT(GradeAs(kAlice, Suite(v1::GRADING_TARGET_DUT, "mine"), &id), IsOk());
  v1::GetRunRequest get;
  get.set_id(id);
  v1::GradingRun run;
  ASSERT_THAT(grading_->GetRun(As(kAlice).get(), get, &run), IsOk());
  EXPECT_EQ(run.passed(), 1) << run.DebugString();
}

// --- the token file ----------------------------------------------------------------------

absl::Status Load(const std::string& text) { return Authenticator::FromText(text, "tokens.txt").status(); }

TEST(AuthTokensFile, CommentsAndBlankLinesAreSkipped) {
  absl::StatusOr<std::unique_ptr<Authenticator>> a = Authenticator::FromText(
      absl::StrCat("# a comment\n\n   \n  # indented comment\n", kAlice, "   alice\n", kBob, " b_o-b9\n"), "t");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE((*a)->enabled());
  std::multimap<grpc::string_ref, grpc::string_ref> md;
  const std::string bearer = absl::StrCat("Bearer ", kBob);
  md.insert({"authorization", bearer});
  absl::StatusOr<std::string> t = (*a)->TenantOf(md);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, "b_o-b9");
}

TEST(AuthTokensFile, BadLinesAreRejectedWithFileAndLine) {
  const std::string ok = absl::StrCat(kAlice, " alice\n");
  EXPECT_EQ(Load(ok + "shorttoken bob\n").message(), "tokens.txt:2: token too short: 10 characters, at least 16");
  EXPECT_EQ(Load(ok + "# c\n" + kBob + " Bob\n").message(),
            "tokens.txt:3: tenant must match [a-z0-9][a-z0-9_-]{0,31}, got \"Bob\"");
  EXPECT_EQ(Load(ok + kBob + " -bob\n").message(),
            "tokens.txt:2: tenant must match [a-z0-9][a-z0-9_-]{0,31}, got \"-bob\"");
  EXPECT_THAT(std::string(Load(ok + kBob + " " + std::string(33, 'b') + "\n").message()),
              HasSubstr("tokens.txt:2: tenant must match"));
  EXPECT_EQ(Load(ok + kBob + "\n").message(), "tokens.txt:2: expected \"TOKEN TENANT\", got 1 fields");
  EXPECT_EQ(Load(ok + kBob + " bob extra\n").message(), "tokens.txt:2: expected \"TOKEN TENANT\", got 3 fields");
  absl::Status dup = Load(ok + "\n" + kAlice + " mallory\n");
  EXPECT_EQ(dup.message(), "tokens.txt:3: duplicate token (first on line 1)");
  EXPECT_THAT(std::string(dup.message()), Not(HasSubstr(kAlice)));  // never shows a token
  EXPECT_EQ(Load("# only comments\n\n").message(), "tokens.txt: no tokens");
}

TEST(AuthTokensFile, TheServerDoesNotStartWithABadFile) {
  ServerConfig cfg;
  cfg.listen = {"127.0.0.1:0"};
  cfg.defaults.backend = sandbox::Backend::kVirtual;
  cfg.auth_tokens = WriteTemp("badtokens", absl::StrCat(kAlice, " alice\n", "short bob\n"));
  absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), absl::StrCat(cfg.auth_tokens, ":2: token too short: 5 characters, at least 16"));
  cfg.auth_tokens = "/no/such/tokens";
  s = Server::Start(cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "/no/such/tokens: cannot read the token file");
}

// --- the results database of a tcplabd without tenants -------------------------------------

TEST(ResultsStoreTenants, ADatabaseWithoutTheTenantColumnIsMigrated) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/results-old-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/results.db";
  {
    // The schema as the previous tcplabd wrote it, with one finished run.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* sql = R"sql(
      CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, student TEXT NOT NULL, target INTEGER NOT NULL,
        requested_by TEXT NOT NULL, started_us INTEGER NOT NULL, finished_us INTEGER, state INTEGER NOT NULL,
        total INTEGER NOT NULL);
      CREATE INDEX runs_by_student ON runs (student, id);
      CREATE TABLE results (run_id INTEGER NOT NULL REFERENCES runs (id), idx INTEGER NOT NULL, name TEXT NOT NULL,
        passed INTEGER NOT NULL, detail BLOB NOT NULL, PRIMARY KEY (run_id, idx));
      INSERT INTO runs (student, target, requested_by, started_us, finished_us, state, total)
        VALUES ('olduser', 1, 'ipv4:127.0.0.1:1', 1000000, 2000000, 2, 0);
    )sql";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_close(db);
  }
  for (int open = 0; open < 2; ++open) {  // the second open finds the column already there
    SCOPED_TRACE(open);
    absl::StatusOr<std::unique_ptr<ResultsStore>> store = ResultsStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    // The old run is the anonymous tenant's.
    absl::StatusOr<std::vector<v1::GradingRun>> anon = (*store)->ListRuns("", false, 10);
    ASSERT_TRUE(anon.ok()) << anon.status();
    ASSERT_EQ(anon->size(), 1u);
    EXPECT_EQ((*anon)[0].student(), "olduser");
    EXPECT_TRUE((*store)->GetRun((*anon)[0].id(), false).ok());
    absl::StatusOr<std::vector<v1::GradingRun>> alice = (*store)->ListRuns("", false, 10, "alice");
    ASSERT_TRUE(alice.ok());
    EXPECT_EQ((*store)->GetRun((*anon)[0].id(), false, "alice").status().code(), absl::StatusCode::kNotFound);
    if (open == 0) {
      EXPECT_TRUE(alice->empty());
      v1::GradingRun r;
      r.set_student("newuser");
      r.set_total(0);
      ASSERT_TRUE((*store)->BeginRun(r, "alice").ok());
    }
    alice = (*store)->ListRuns("", false, 10, "alice");
    ASSERT_TRUE(alice.ok());
    ASSERT_EQ(alice->size(), 1u);
    EXPECT_EQ((*alice)[0].student(), "newuser");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tcplab::server::testing
