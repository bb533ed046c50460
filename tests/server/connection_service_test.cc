// ConnectionService over a real channel: every call, every validation error, wrong-state
// calls, data through engine connections, and (as root) the kernel as peer.
#include "tests/server/server_testing.h"

namespace tcplab::server::testing {
namespace {

using ::testing::HasSubstr;

class ConnectionServiceTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    ASSERT_THAT(Create("lab"), IsOk());
  }
};

TEST_F(ConnectionServiceTest, ListenAndConnectValidateEveryField) {
  v1::Connection c;
  EXPECT_THAT(Listen("", v1::STACK_ENGINE, 80, &c), HasStatus(grpc::INVALID_ARGUMENT, "sandbox is required"));
  EXPECT_THAT(Listen("nope", v1::STACK_ENGINE, 80, &c), HasStatus(grpc::NOT_FOUND, "sandbox nope not found"));
  EXPECT_THAT(Listen("lab", v1::STACK_UNSPECIFIED, 80, &c),
              HasStatus(grpc::INVALID_ARGUMENT, "stack must be STACK_ENGINE or STACK_KERNEL, got STACK_UNSPECIFIED"));
  EXPECT_THAT(Listen("lab", static_cast<v1::Stack>(7), 80, &c),
              HasStatus(grpc::INVALID_ARGUMENT, "stack must be STACK_ENGINE or STACK_KERNEL, got 7"));
  EXPECT_THAT(Listen("lab", v1::STACK_ENGINE, 0, &c), HasStatus(grpc::INVALID_ARGUMENT, "local.port must be 1..65535, got 0"));
  EXPECT_THAT(Listen("lab", v1::STACK_ENGINE, 70000, &c), HasStatus(grpc::INVALID_ARGUMENT, "got 70000"));

  EXPECT_THAT(Connect("lab", v1::STACK_ENGINE, "", 80, &c), HasStatus(grpc::INVALID_ARGUMENT, "remote.ip is required"));
  EXPECT_THAT(Connect("lab", v1::STACK_ENGINE, "198.18.0.256", 80, &c),
              HasStatus(grpc::INVALID_ARGUMENT, "remote.ip must be an IPv4 address like 198.18.0.1, got \"198.18.0.256\""));
  EXPECT_THAT(Connect("lab", v1::STACK_ENGINE, "1.2.3", 80, &c), HasStatus(grpc::INVALID_ARGUMENT, "remote.ip"));
  EXPECT_THAT(Connect("lab", v1::STACK_ENGINE, "a.b.c.d", 80, &c), HasStatus(grpc::INVALID_ARGUMENT, "remote.ip"));
  EXPECT_THAT(Connect("lab", v1::STACK_ENGINE, "198.18.0.2", 0, &c),
              HasStatus(grpc::INVALID_ARGUMENT, "remote.port must be 1..65535, got 0"));
  grpc::ClientContext ctx;
  v1::ConnectRequest req;
  req.set_sandbox("lab");
  req.set_stack(v1::STACK_ENGINE);
  EXPECT_THAT(conns_->Connect(&ctx, req, &c), HasStatus(grpc::INVALID_ARGUMENT, "remote is required"));

  grpc::ClientContext ctx2;
  v1::ListenRequest lr;
  lr.set_sandbox("lab");
  lr.set_stack(v1::STACK_ENGINE);
  lr.mutable_local()->set_port(80);
  lr.set_backlog(100000);
  EXPECT_THAT(conns_->Listen(&ctx2, lr, &c), HasStatus(grpc::INVALID_ARGUMENT, "backlog must be 0..4096"));
}

TEST_F(ConnectionServiceTest, ListeningTwiceOnAPortIsAnError) {
  v1::Connection c;
  ASSERT_THAT(Listen("lab", v1::STACK_ENGINE, 80, &c), IsOk());
  EXPECT_EQ(c.state(), v1::TCP_STATE_LISTEN);
  EXPECT_TRUE(c.listener());
  EXPECT_EQ(c.local().ip(), "198.18.0.2");
  grpc::Status s = Listen("lab", v1::STACK_ENGINE, 80, &c);
  EXPECT_EQ(s.error_code(), grpc::ALREADY_EXISTS) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("EADDRINUSE"));
}

TEST_F(ConnectionServiceTest, CallsOnConnectionsValidateIdsAndStacks) {
  v1::Connection c;
  EXPECT_THAT(ConnCall(&v1::ConnectionService::Stub::GetConnection, "lab", 0),
              HasStatus(grpc::INVALID_ARGUMENT, "connection_id is required"));
  EXPECT_THAT(ConnCall(&v1::ConnectionService::Stub::GetConnection, "lab", 99),
              HasStatus(grpc::NOT_FOUND, "connection lab/99 not found"));
  EXPECT_THAT(ConnCall(&v1::ConnectionService::Stub::Close, "lab", 99),
              HasStatus(grpc::NOT_FOUND, "connection lab/99 not found"));
  EXPECT_THAT(ConnCall(&v1::ConnectionService::Stub::Abort, "nope", 1),
              HasStatus(grpc::NOT_FOUND, "sandbox nope not found"));
  EXPECT_THAT(Send("lab", 99, "x"), HasStatus(grpc::NOT_FOUND, "connection lab/99 not found"));
  v1::ReceiveResponse r;
  EXPECT_THAT(Receive("lab", 99, &r), HasStatus(grpc::NOT_FOUND, "connection lab/99 not found"));

  // Another sandbox's connection ids are not this one's.
  ASSERT_THAT(Create("other"), IsOk());
  ASSERT_THAT(Listen("other", v1::STACK_ENGINE, 80, &c), IsOk());
  EXPECT_THAT(ConnCall(&v1::ConnectionService::Stub::GetConnection, "lab", c.id()),
              HasStatus(grpc::NOT_FOUND, absl::StrCat("connection lab/", c.id(), " not found")));

  // A stack, when given, must be the connection's.
  grpc::ClientContext ctx;
  v1::ConnectionRequest req;
  req.set_sandbox("other");
  req.set_connection_id(c.id());
  req.set_stack(v1::STACK_KERNEL);
  EXPECT_THAT(conns_->GetConnection(&ctx, req, &c),
              HasStatus(grpc::INVALID_ARGUMENT, "is on stack ENGINE, not KERNEL"));
}

TEST_F(ConnectionServiceTest, SendValidatesThePayload) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  EXPECT_THAT(Send("lab", client, ""), HasStatus(grpc::INVALID_ARGUMENT, "data is empty"));
  EXPECT_THAT(Send("lab", client, std::string((4 << 20) + 1, 'x')),
              HasStatus(grpc::INVALID_ARGUMENT, "data is 4194305 octets; at most 4194304 per call"));
  // Past gRPC's message limit the call is refused before it reaches the service.
  grpc::Status big = Send("lab", client, std::string(9 << 20, 'x'));
  EXPECT_EQ(big.error_code(), grpc::RESOURCE_EXHAUSTED) << big.error_message();
  // Nothing of the refused calls went anywhere: the stream carries exactly what was accepted.
  uint64_t n = 0;
  ASSERT_THAT(Send("lab", client, "hello", &n), IsOk());
  EXPECT_EQ(n, 5u);
  EXPECT_EQ(ReceiveAll("lab", server, 5), "hello");
}

TEST_F(ConnectionServiceTest, ReceiveValidatesAndWaits) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  v1::ReceiveResponse r;
  EXPECT_THAT(Receive("lab", server, &r, (4 << 20) + 1), HasStatus(grpc::INVALID_ARGUMENT, "max_bytes must be 0..4194304"));
  EXPECT_THAT(Receive("lab", server, &r, 0, 61'000), HasStatus(grpc::INVALID_ARGUMENT, "wait must be at most 60s"));

  // Nothing there and no wait: an empty answer at once.
  ASSERT_THAT(Receive("lab", server, &r), IsOk());
  EXPECT_EQ(r.data(), "");
  EXPECT_FALSE(r.eof());

  // With a wait, the call returns when the data comes.
  std::thread later([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_THAT(Send("lab", client, "late"), IsOk());
  });
  ASSERT_THAT(Receive("lab", server, &r, 0, 10'000), IsOk());
  later.join();
  EXPECT_EQ(r.data(), "late");

  // End of stream: the peer's FIN.
  ASSERT_THAT(ConnCall(&v1::ConnectionService::Stub::Shutdown, "lab", client), IsOk());
  ASSERT_THAT(Receive("lab", server, &r, 0, 10'000), IsOk());
  EXPECT_EQ(r.data(), "");
  EXPECT_TRUE(r.eof());
}

TEST_F(ConnectionServiceTest, OneMebibyteEachWayArrivesIntact) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  std::string a(1 << 20, '\0'), b(1 << 20, '\0');
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<char>(i * 7 + 3);
    b[i] = static_cast<char>(i * 13 + 5);
  }
  EXPECT_TRUE(Transfer("lab", client, server, a) == a);
  EXPECT_TRUE(Transfer("lab", server, client, b) == b);
  v1::Connection c;
  ASSERT_THAT(Get("lab", client, &c), IsOk());
  ASSERT_TRUE(c.has_engine());
  EXPECT_EQ(c.engine().counters().bytes_out(), a.size());
  EXPECT_EQ(c.engine().counters().bytes_in(), b.size());
  EXPECT_EQ(c.engine().snd_una(), c.engine().snd_nxt());
}

TEST_F(ConnectionServiceTest, WrongStateCallsNameTheState) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  v1::Connection c;
  ASSERT_THAT(ConnCall(&v1::ConnectionService::Stub::Shutdown, "lab", client, &c), IsOk());
  EXPECT_THAT(Send("lab", client, "after shutdown"), HasStatus(grpc::FAILED_PRECONDITION, "EPIPE"));
  // The listener cannot carry data.
  uint64_t listener = 0;
  for (const v1::Connection& x : List("lab")) {
    if (x.listener()) listener = x.id();
  }
  ASSERT_NE(listener, 0u);
  grpc::Status s = Send("lab", listener, "x");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.error_message(), HasSubstr("LISTEN"));
}

TEST_F(ConnectionServiceTest, ErrnoTravelsAsTrailingMetadata) {
  // Nobody listens on port 81: the engine answers the SYN with RST, the connect fails.
  v1::Connection c;
  ASSERT_THAT(Connect("lab", v1::STACK_ENGINE, "198.18.0.2", 81, &c), IsOk());
  ASSERT_TRUE(WaitUntil([&] { return StateOf("lab", c.id()) == v1::TCP_STATE_CLOSED; }));
  grpc::ClientContext ctx;
  v1::SendRequest req;
  req.set_sandbox("lab");
  req.set_connection_id(c.id());
  req.set_data("x");
  v1::SendResponse resp;
  grpc::Status s = conns_->Send(&ctx, req, &resp);
  ASSERT_FALSE(s.ok());
  // The refused connection is either already gone or says ECONNREFUSED.
  if (s.error_code() != grpc::NOT_FOUND) {
    EXPECT_THAT(s.error_message(), HasSubstr("ECONNREFUSED"));
    auto md = ctx.GetServerTrailingMetadata();
    auto it = md.find("tcplab-errno");
    ASSERT_NE(it, md.end());
    EXPECT_EQ(std::string(it->second.data(), it->second.size()), "ECONNREFUSED");
  }
}

TEST_F(ConnectionServiceTest, CloseAndAbortReturnTheConnectionAfterTheCall) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  v1::Connection c;
  ASSERT_THAT(ConnCall(&v1::ConnectionService::Stub::Close, "lab", client, &c), IsOk());
  EXPECT_EQ(c.id(), client);
  EXPECT_EQ(c.stack(), v1::STACK_ENGINE);
  EXPECT_THAT(c.state(), ::testing::AnyOf(v1::TCP_STATE_FIN_WAIT_1, v1::TCP_STATE_FIN_WAIT_2));
  ASSERT_THAT(ConnCall(&v1::ConnectionService::Stub::Abort, "lab", server, &c), IsOk());
  EXPECT_EQ(c.state(), v1::TCP_STATE_CLOSED);
}

TEST_F(ConnectionServiceTest, GetConnectionReturnsTheTcb) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  v1::Connection c;
  ASSERT_THAT(Get("lab", client, &c), IsOk());
  EXPECT_EQ(c.sandbox(), "lab");
  EXPECT_EQ(c.state(), v1::TCP_STATE_ESTABLISHED);
  EXPECT_EQ(c.remote().ip(), "198.18.0.2");
  EXPECT_EQ(c.remote().port(), 80u);
  ASSERT_TRUE(c.has_engine());
  const v1::EngineTcb& t = c.engine();
  EXPECT_EQ(t.snd_una(), t.iss() + 1);  // the SYN is acknowledged, nothing else sent
  EXPECT_EQ(t.rcv_nxt(), t.irs() + 1);
  EXPECT_EQ(t.peer_mss(), 1460u);  // MTU 1500 - 40
  EXPECT_EQ(t.mss(), 1448u);       // less the 12 octets of timestamps on every segment
  EXPECT_TRUE(t.sack());
  EXPECT_TRUE(t.timestamps());
  EXPECT_GT(t.cwnd(), 0u);
  EXPECT_GT(t.rto().seconds() * 1'000'000'000 + t.rto().nanos(), 0);
  EXPECT_GE(t.counters().segments_in(), 1u);

  // Its peer sees the mirror image.
  v1::Connection s;
  ASSERT_THAT(Get("lab", server, &s), IsOk());
  EXPECT_EQ(s.engine().irs(), t.iss());
  EXPECT_EQ(s.engine().iss(), t.irs());
}

// A waiting Receive answers when something comes while it waits: data, and later the end of
// the stream (the peer's FIN), both ways.
TEST_F(ConnectionServiceTest, WaitingReceiveWakesForDataAndEndOfStream) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  v1::ReceiveResponse r;
  std::thread data([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_THAT(Send("lab", server, "to the client"), IsOk());
  });
  ASSERT_THAT(Receive("lab", client, &r, 0, 10'000), IsOk());
  data.join();
  EXPECT_EQ(r.data(), "to the client");
  EXPECT_FALSE(r.eof());

  std::thread fin([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_THAT(ConnCall(&v1::ConnectionService::Stub::Shutdown, "lab", server), IsOk());
  });
  ASSERT_THAT(Receive("lab", client, &r, 0, 10'000), IsOk());
  fin.join();
  EXPECT_EQ(r.data(), "");
  EXPECT_TRUE(r.eof());
}

// A waiting Receive its client cancels takes nothing: what arrives afterwards is all there for
// the next Receive.
TEST_F(ConnectionServiceTest, CancelledReceiveLosesNoData) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  grpc::ClientContext ctx;
  v1::ReceiveRequest req;
  req.set_sandbox("lab");
  req.set_connection_id(server);
  *req.mutable_wait() = Millis(10'000);
  v1::ReceiveResponse r;
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(100));
    ctx.TryCancel();
  });
  EXPECT_EQ(conns_->Receive(&ctx, req, &r).error_code(), grpc::CANCELLED);
  canceller.join();
  ASSERT_THAT(Send("lab", client, "kept"), IsOk());
  EXPECT_EQ(ReceiveAll("lab", server, 4), "kept");
}

// After 2·MSL the client's TIME-WAIT is over and the engine has let go of the TCB (the user
// closed it): GetConnection still answers, CLOSED, with the TCB as it ended.
TEST_F(ConnectionServiceTest, GetConnectionAfterTimeWaitSaysClosed) {
  v1::SandboxOptions o;
  *o.mutable_msl() = Millis(50);
  ASSERT_THAT(Create("tw", nullptr, o), IsOk());
  auto [client, server] = EnginePair("tw", 80);
  ASSERT_NE(server, 0u);
  ASSERT_THAT(Send("tw", client, "hello"), IsOk());
  EXPECT_EQ(ReceiveAll("tw", server, 5), "hello");
  ASSERT_THAT(ConnCall(&v1::ConnectionService::Stub::Close, "tw", client), IsOk());
  ASSERT_TRUE(WaitUntil([&] { return StateOf("tw", server) == v1::TCP_STATE_CLOSE_WAIT; }));
  ASSERT_THAT(ConnCall(&v1::ConnectionService::Stub::Close, "tw", server), IsOk());
  ASSERT_TRUE(WaitUntil([&] {
    for (const v1::Event& e : Events("tw", 0, client)) {
      if (e.has_state() && e.state().from() == v1::TCP_STATE_TIME_WAIT && e.state().to() == v1::TCP_STATE_CLOSED) {
        return true;
      }
    }
    return false;
  }));

  v1::Connection c;
  ASSERT_THAT(Get("tw", client, &c), IsOk());
  EXPECT_EQ(c.state(), v1::TCP_STATE_CLOSED);
  EXPECT_EQ(c.remote().port(), 80u);
  ASSERT_TRUE(c.has_engine());
  EXPECT_EQ(c.engine().counters().bytes_out(), 5u);
  EXPECT_EQ(c.engine().snd_una(), c.engine().iss() + 7);  // SYN, 5 octets and FIN, all acknowledged
  EXPECT_NE(c.engine().irs(), 0u);
  bool listed = false;
  for (const v1::Connection& x : List("tw")) {
    if (x.id() == client) listed = x.state() == v1::TCP_STATE_CLOSED;
  }
  EXPECT_TRUE(listed);

  // Data calls fail as on a closed socket, with the errno; Close does nothing, again.
  grpc::ClientContext ctx;
  v1::SendRequest req;
  req.set_sandbox("tw");
  req.set_connection_id(client);
  req.set_data("x");
  v1::SendResponse resp;
  EXPECT_THAT(conns_->Send(&ctx, req, &resp), HasStatus(grpc::FAILED_PRECONDITION, "ENOTCONN"));
  auto md = ctx.GetServerTrailingMetadata();
  auto it = md.find("tcplab-errno");
  ASSERT_NE(it, md.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "ENOTCONN");
  v1::Connection after;
  ASSERT_THAT(ConnCall(&v1::ConnectionService::Stub::Close, "tw", client, &after), IsOk());
  EXPECT_EQ(after.state(), v1::TCP_STATE_CLOSED);
  EXPECT_EQ(after.engine().counters().bytes_out(), 5u);
}

// A Receive waiting for data ends with NOT_FOUND when its sandbox is deleted, rather than
// keeping the deleted sandbox alive until its wait runs out.
TEST_F(ConnectionServiceTest, WaitingReceiveEndsWhenTheSandboxIsDeleted) {
  auto [client, server] = EnginePair("lab", 80);
  ASSERT_NE(server, 0u);
  std::thread deleter([&] {
    absl::SleepFor(absl::Milliseconds(200));
    grpc::ClientContext ctx;
    v1::DeleteSandboxRequest del;
    del.set_name("lab");
    v1::DeleteSandboxResponse dr;
    EXPECT_THAT(sandboxes_->DeleteSandbox(&ctx, del, &dr), IsOk());
  });
  v1::ReceiveResponse r;
  EXPECT_THAT(Receive("lab", server, &r, 0, 30'000), HasStatus(grpc::NOT_FOUND, "sandbox lab was deleted"));
  deleter.join();
}

// Deleting a sandbox whose datapath never settles (a local application that always has
// more to do, so every pump yields and posts a continuation) must not run a continuation
// after the engine is gone.
TEST_F(ConnectionServiceTest, DeletingABusySandboxIsSafe) {
  for (int i = 0; i < 20; ++i) {
    const std::string name = absl::StrCat("busy", i);
    ASSERT_THAT(Create(name), IsOk());
    absl::StatusOr<std::shared_ptr<SandboxEntry>> e = server_->registry().Get(name);
    ASSERT_TRUE(e.ok());
    (*e)->sandbox->SetLocalApp([](stack::Stack&, Instant) { return true; });
    e->reset();
    grpc::ClientContext ctx;
    v1::DeleteSandboxRequest del;
    del.set_name(name);
    v1::DeleteSandboxResponse dr;
    ASSERT_THAT(sandboxes_->DeleteSandbox(&ctx, del, &dr), IsOk());
  }
}

class KernelConnectionTest : public ServerTest {
 protected:
  SandboxDefaults Defaults() override {
    SandboxDefaults d;
    d.backend = sandbox::Backend::kTun;
    return d;
  }
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root: network namespaces and a TUN (tun backend)";
    ServerTest::SetUp();
    v1::SandboxOptions o;
    *o.mutable_msl() = Millis(200);
    ASSERT_THAT(Create("k", nullptr, o), IsOk());
  }
};

TEST_F(KernelConnectionTest, EngineToKernelDataAndTcpInfo) {
  v1::Connection l, c;
  ASSERT_THAT(Listen("k", v1::STACK_KERNEL, 80, &l), IsOk());
  EXPECT_EQ(l.stack(), v1::STACK_KERNEL);
  EXPECT_EQ(l.local().ip(), "198.18.0.1");
  ASSERT_THAT(Connect("k", v1::STACK_ENGINE, "198.18.0.1", 80, &c), IsOk());
  uint64_t accepted = 0;
  ASSERT_TRUE(WaitUntil([&] {
    for (const v1::Connection& x : List("k")) {
      if (x.stack() == v1::STACK_KERNEL && !x.listener() && x.state() == v1::TCP_STATE_ESTABLISHED) accepted = x.id();
    }
    return accepted != 0;
  }));
  std::string data(300'000, 'k');
  EXPECT_EQ(Transfer("k", c.id(), accepted, data).size(), data.size());
  EXPECT_EQ(Transfer("k", accepted, c.id(), data).size(), data.size());

  v1::Connection kc;
  ASSERT_THAT(Get("k", accepted, &kc), IsOk());
  ASSERT_TRUE(kc.has_kernel());
  EXPECT_TRUE(kc.kernel().has_fd());
  EXPECT_EQ(kc.kernel().bytes_received(), data.size());
  EXPECT_GE(kc.kernel().bytes_acked(), data.size());
  EXPECT_TRUE(kc.kernel().sack());
  EXPECT_TRUE(kc.kernel().timestamps());
  EXPECT_GT(kc.kernel().snd_mss(), 0u);

  // A KERNEL call on an engine connection is refused, naming both.
  grpc::ClientContext ctx;
  v1::SendRequest req;
  req.set_sandbox("k");
  req.set_connection_id(c.id());
  req.set_stack(v1::STACK_KERNEL);
  req.set_data("x");
  v1::SendResponse resp;
  EXPECT_THAT(conns_->Send(&ctx, req, &resp), HasStatus(grpc::INVALID_ARGUMENT, "is on stack ENGINE, not KERNEL"));
}

// A Receive waiting on a kernel socket gets what the engine sends meanwhile, then the end of
// the stream.
TEST_F(KernelConnectionTest, WaitingReceiveOnAKernelSocket) {
  v1::Connection l, c;
  ASSERT_THAT(Listen("k", v1::STACK_KERNEL, 81, &l), IsOk());
  ASSERT_THAT(Connect("k", v1::STACK_ENGINE, "198.18.0.1", 81, &c), IsOk());
  uint64_t accepted = 0;
  ASSERT_TRUE(WaitUntil([&] {
    for (const v1::Connection& x : List("k")) {
      if (x.stack() == v1::STACK_KERNEL && !x.listener() && x.state() == v1::TCP_STATE_ESTABLISHED) accepted = x.id();
    }
    return accepted != 0;
  }));
  v1::ReceiveResponse r;
  std::thread data([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_THAT(Send("k", c.id(), "to the kernel"), IsOk());
  });
  ASSERT_THAT(Receive("k", accepted, &r, 0, 10'000), IsOk());
  data.join();
  EXPECT_EQ(r.data(), "to the kernel");
  std::thread fin([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_THAT(ConnCall(&v1::ConnectionService::Stub::Shutdown, "k", c.id()), IsOk());
  });
  ASSERT_THAT(Receive("k", accepted, &r, 0, 10'000), IsOk());
  fin.join();
  EXPECT_EQ(r.data(), "");
  EXPECT_TRUE(r.eof());
}

TEST_F(KernelConnectionTest, KernelAbortResetsTheEngine) {
  v1::Connection l, c;
  ASSERT_THAT(Listen("k", v1::STACK_ENGINE, 8080, &l), IsOk());
  ASSERT_THAT(Connect("k", v1::STACK_KERNEL, "198.18.0.2", 8080, &c), IsOk());
  ASSERT_TRUE(WaitUntil([&] { return StateOf("k", c.id()) == v1::TCP_STATE_ESTABLISHED; }));
  uint64_t accepted = 0;
  ASSERT_TRUE(WaitUntil([&] {
    for (const v1::Connection& x : List("k")) {
      if (x.stack() == v1::STACK_ENGINE && !x.listener() && x.state() == v1::TCP_STATE_ESTABLISHED) accepted = x.id();
    }
    return accepted != 0;
  }));
  ASSERT_THAT(ConnCall(&v1::ConnectionService::Stub::Abort, "k", c.id()), IsOk());
  ASSERT_TRUE(WaitUntil([&] { return StateOf("k", accepted) == v1::TCP_STATE_CLOSED; }));
  v1::ReceiveResponse r;
  grpc::Status s = Receive("k", accepted, &r);
  if (s.error_code() != grpc::NOT_FOUND) {
    EXPECT_THAT(s.error_message(), HasSubstr("ECONNRESET"));
  }
}

}  // namespace
}  // namespace tcplab::server::testing
