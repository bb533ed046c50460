// A tcplabd in the test process, on 127.0.0.1 with a port of its own (and a unix socket),
// reached over real gRPC channels; matchers for grpc::Status; small helpers.
#pragma once

#include <unistd.h>

#include <memory>
#include <thread>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/duration.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tcplab/v1/connection.grpc.pb.h"
#include "tcplab/v1/sandbox.grpc.pb.h"

namespace tcplab::server::testing {

namespace v1 = ::tcplab::v1;

inline bool IsRoot() { return geteuid() == 0; }

inline google::protobuf::Duration Millis(int64_t ms) {
  google::protobuf::Duration d;
  d.set_seconds(ms / 1000);
  d.set_nanos(static_cast<int32_t>((ms % 1000) * 1'000'000));
  return d;
}

MATCHER_P2(HasStatus, code, substr,
           absl::StrCat("has code ", code, " and a message containing \"", substr, "\"")) {
  *result_listener << "code " << arg.error_code() << ", message \"" << arg.error_message() << "\"";
  return arg.error_code() == code && arg.error_message().find(substr) != std::string::npos;
}

MATCHER(IsOk, "is OK") {
  *result_listener << "code " << arg.error_code() << ", message \"" << arg.error_message() << "\"";
  return arg.ok();
}

class ServerTest : public ::testing::Test {
 protected:
  // Override to change the defaults before the server starts.
  virtual SandboxDefaults Defaults() {
    SandboxDefaults d;
    d.backend = sandbox::Backend::kVirtual;
    return d;
  }

  // Override to change the rest of the configuration (authentication, ...).
  virtual void Configure(ServerConfig&) {}

  void SetUp() override {
    unix_path_ = absl::StrCat("/tmp/tcplab-test-", getpid(), "-", counter_++, ".sock");
    ServerConfig cfg;
    cfg.listen = {"127.0.0.1:0", "unix:" + unix_path_};
    cfg.defaults = Defaults();
    Configure(cfg);
    absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(cfg);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    channel_ = NewChannel(server_->addresses()[0]);
    sandboxes_ = v1::SandboxService::NewStub(channel_);
    conns_ = v1::ConnectionService::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  static std::shared_ptr<grpc::Channel> NewChannel(const std::string& addr) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    // Separate channels get separate TCP connections (one per subscriber, as separate clients).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
  }

  grpc::Status Create(const std::string& name, v1::Sandbox* out = nullptr, v1::SandboxOptions opts = {}) {
    grpc::ClientContext ctx;
    v1::CreateSandboxRequest req;
    req.set_name(name);
    *req.mutable_options() = opts;
    v1::Sandbox resp;
    grpc::Status s = sandboxes_->CreateSandbox(&ctx, req, &resp);
    if (out) *out = resp;
    return s;
  }

  grpc::Status Listen(const std::string& sb, v1::Stack stack, uint32_t port, v1::Connection* out) {
    grpc::ClientContext ctx;
    v1::ListenRequest req;
    req.set_sandbox(sb);
    req.set_stack(stack);
    req.mutable_local()->set_port(port);
    return conns_->Listen(&ctx, req, out);
  }

  grpc::Status Connect(const std::string& sb, v1::Stack stack, const std::string& ip, uint32_t port,
                       v1::Connection* out) {
    grpc::ClientContext ctx;
    v1::ConnectRequest req;
    req.set_sandbox(sb);
    req.set_stack(stack);
    req.mutable_remote()->set_ip(ip);
    req.mutable_remote()->set_port(port);
    return conns_->Connect(&ctx, req, out);
  }

  grpc::Status Get(const std::string& sb, uint64_t id, v1::Connection* out) {
    grpc::ClientContext ctx;
    v1::ConnectionRequest req;
    req.set_sandbox(sb);
    req.set_connection_id(id);
    return conns_->GetConnection(&ctx, req, out);
  }

  grpc::Status ConnCall(grpc::Status (v1::ConnectionService::Stub::*call)(grpc::ClientContext*,
                                                                          const v1::ConnectionRequest&,
                                                                          v1::Connection*),
                        const std::string& sb, uint64_t id, v1::Connection* out = nullptr) {
    grpc::ClientContext ctx;
    v1::ConnectionRequest req;
    req.set_sandbox(sb);
    req.set_connection_id(id);
    v1::Connection c;
    grpc::Status s = (conns_.get()->*call)(&ctx, req, &c);
    if (out) *out = c;
    return s;
  }

  grpc::Status Send(const std::string& sb, uint64_t id, const std::string& data, uint64_t* accepted = nullptr) {
    grpc::ClientContext ctx;
    v1::SendRequest req;
    req.set_sandbox(sb);
    req.set_connection_id(id);
    req.set_data(data);
    v1::SendResponse resp;
    grpc::Status s = conns_->Send(&ctx, req, &resp);
    if (accepted) *accepted = resp.accepted();
    return s;
  }

  // Sends all of `data`, retrying what the send buffer did not take yet.
  void SendAll(const std::string& sb, uint64_t id, const std::string& data) {
    size_t off = 0;
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (off < data.size()) {
      ASSERT_LT(absl::Now(), deadline) << "send stalled at " << off << " of " << data.size();
      uint64_t n = 0;
      ASSERT_THAT(Send(sb, id, data.substr(off, 1 << 20), &n), IsOk());
      off += n;
      if (n == 0) absl::SleepFor(absl::Milliseconds(2));
    }
  }

  grpc::Status Receive(const std::string& sb, uint64_t id, v1::ReceiveResponse* out, uint32_t max = 0,
                       int64_t wait_ms = 0) {
    grpc::ClientContext ctx;
    v1::ReceiveRequest req;
    req.set_sandbox(sb);
    req.set_connection_id(id);
    req.set_max_bytes(max);
    if (wait_ms) *req.mutable_wait() = Millis(wait_ms);
    return conns_->Receive(&ctx, req, out);
  }

  // Reads until `n` octets or end of stream.
  std::string ReceiveAll(const std::string& sb, uint64_t id, size_t n) {
    std::string got;
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (got.size() < n && absl::Now() < deadline) {
      v1::ReceiveResponse r;
      grpc::Status s = Receive(sb, id, &r, 1 << 20, 200);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok()) break;
      got += r.data();
      if (r.eof()) break;
    }
    return got;
  }

  // Sends `data` on `from` while reading it on `to`; returns what arrived.
  std::string Transfer(const std::string& sb, uint64_t from, uint64_t to, const std::string& data) {
    std::thread sender([&] { SendAll(sb, from, data); });
    std::string got = ReceiveAll(sb, to, data.size());
    sender.join();
    return got;
  }

  std::vector<v1::Connection> List(const std::string& sb) {
    grpc::ClientContext ctx;
    v1::ListConnectionsRequest req;
    req.set_sandbox(sb);
    v1::ListConnectionsResponse resp;
    EXPECT_THAT(conns_->ListConnections(&ctx, req, &resp), IsOk());
    return {resp.connections().begin(), resp.connections().end()};
  }

  // Every retained event, without following.
  std::vector<v1::Event> Events(const std::string& sb, uint64_t from = 0, uint64_t conn = 0) {
    grpc::ClientContext ctx;
    v1::WatchEventsRequest req;
    req.set_sandbox(sb);
    req.set_from_sequence(from);
    req.set_connection_id(conn);
    req.set_no_follow(true);
    std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> r = sandboxes_->WatchEvents(&ctx, req);
    std::vector<v1::Event> out;
    v1::WatchEventsResponse resp;
    while (r->Read(&resp)) out.insert(out.end(), resp.events().begin(), resp.events().end());
    grpc::Status s = r->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  static bool WaitUntil(const std::function<bool()>& pred, absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (pred()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return pred();
  }

  v1::TcpState StateOf(const std::string& sb, uint64_t id) {
    v1::Connection c;
    return Get(sb, id, &c).ok() ? c.state() : v1::TCP_STATE_CLOSED;
  }

  // An engine-to-engine connection in a virtual sandbox: {client id, server-side id}.
  std::pair<uint64_t, uint64_t> EnginePair(const std::string& sb, uint32_t port) {
    v1::Connection l, c;
    EXPECT_THAT(Listen(sb, v1::STACK_ENGINE, port, &l), IsOk());
    EXPECT_THAT(Connect(sb, v1::STACK_ENGINE, "198.18.0.2", port, &c), IsOk());
    uint64_t accepted = 0;
    WaitUntil([&] {
      for (const v1::Connection& x : List(sb)) {
        if (x.id() != l.id() && x.id() != c.id() && x.local().port() == port &&
            x.state() == v1::TCP_STATE_ESTABLISHED) {
          accepted = x.id();
        }
      }
      return accepted != 0 && StateOf(sb, c.id()) == v1::TCP_STATE_ESTABLISHED;
    });
    return {c.id(), accepted};
  }

  std::unique_ptr<Server> server_;
  std::string unix_path_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SandboxService::Stub> sandboxes_;
  std::unique_ptr<v1::ConnectionService::Stub> conns_;
  static inline int counter_ = 0;
};

// A passive open on the engine target: listen, the handshake, accept (a script that passes).
inline constexpr char kHandshake[] = R"(0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <mss 1460>
+.1 < . 1:1(0) ack 1 win 65535
+0 accept(3, ..., ...) = 4
)";

// grpc.health.v1.Health/Check with an empty request (service ""), over the generic stub:
// HealthCheckResponse{status: SERVING} is the two octets 08 01.
inline grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& ch, std::string* response) {
  grpc::GenericStub stub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::ByteBuffer req, resp;
  grpc::Slice empty("");
  req = grpc::ByteBuffer(&empty, 1);
  absl::Mutex mu;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
    absl::MutexLock l(&mu);
    status = s;
    done = true;
  });
  absl::MutexLock l(&mu);
  mu.Await(absl::Condition(&done));
  std::vector<grpc::Slice> slices;
  if (status.ok()) {
    (void)resp.Dump(&slices);
    for (const auto& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

}  // namespace tcplab::server::testing
