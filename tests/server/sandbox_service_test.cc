// SandboxService over a real channel: create/get/list/delete, options and their validation,
// impairments, pcap export, health, the unix socket, and shutdown.
#include <fstream>

#include "grpcpp/generic/generic_stub.h"
#include "tests/server/server_testing.h"

namespace tcplab::server::testing {
namespace {

using ::testing::HasSubstr;

class SandboxServiceTest : public ServerTest {};

TEST_F(SandboxServiceTest, CreateWithNameThenGetListDelete) {
  v1::Sandbox sb;
  v1::SandboxOptions opts;
  *opts.mutable_msl() = Millis(250);
  opts.set_mtu(9000);
  ASSERT_THAT(Create("lab-a", &sb, opts), IsOk());
  EXPECT_EQ(sb.name(), "lab-a");
  EXPECT_EQ(sb.options().backend(), v1::BACKEND_VIRTUAL);  // the server's default here
  EXPECT_EQ(sb.options().msl().nanos(), 250'000'000);
  EXPECT_EQ(sb.options().mtu(), 9000u);
  EXPECT_EQ(sb.options().min_rto().seconds(), 1);  // defaults are filled in
  EXPECT_EQ(sb.kernel_address().ip(), "198.18.0.1");
  EXPECT_EQ(sb.engine_address().ip(), "198.18.0.2");
  EXPECT_GT(sb.create_time().seconds(), 0);

  grpc::ClientContext c1;
  v1::GetSandboxRequest get;
  get.set_name("lab-a");
  v1::Sandbox got;
  ASSERT_THAT(sandboxes_->GetSandbox(&c1, get, &got), IsOk());
  EXPECT_EQ(got.name(), "lab-a");

  ASSERT_THAT(Create("lab-b"), IsOk());
  grpc::ClientContext c2;
  v1::ListSandboxesResponse list;
  ASSERT_THAT(sandboxes_->ListSandboxes(&c2, {}, &list), IsOk());
  ASSERT_EQ(list.sandboxes_size(), 2);
  EXPECT_EQ(list.sandboxes(0).name(), "lab-a");
  EXPECT_EQ(list.sandboxes(1).name(), "lab-b");

  grpc::ClientContext c3;
  v1::DeleteSandboxRequest del;
  del.set_name("lab-a");
  v1::DeleteSandboxResponse dr;
  ASSERT_THAT(sandboxes_->DeleteSandbox(&c3, del, &dr), IsOk());
  grpc::ClientContext c4;
  EXPECT_THAT(sandboxes_->GetSandbox(&c4, get, &got), HasStatus(grpc::NOT_FOUND, "sandbox lab-a not found"));
  grpc::ClientContext c5;
  EXPECT_THAT(sandboxes_->DeleteSandbox(&c5, del, &dr), HasStatus(grpc::NOT_FOUND, "sandbox lab-a not found"));
}

TEST_F(SandboxServiceTest, CreateWithoutNamePicksOne) {
  v1::Sandbox a, b;
  ASSERT_THAT(Create("", &a), IsOk());
  ASSERT_THAT(Create("", &b), IsOk());
  EXPECT_EQ(a.name(), "lab1");
  EXPECT_EQ(b.name(), "lab2");
}

TEST_F(SandboxServiceTest, DuplicateNameIsAlreadyExists) {
  ASSERT_THAT(Create("dup"), IsOk());
  EXPECT_THAT(Create("dup"), HasStatus(grpc::ALREADY_EXISTS, "sandbox dup already exists"));
}

TEST_F(SandboxServiceTest, BadNamesAreRefusedNamingTheField) {
  EXPECT_THAT(Create("Lab"), HasStatus(grpc::INVALID_ARGUMENT, "name must match [a-z][a-z0-9-]{0,31}"));
  EXPECT_THAT(Create("1lab"), HasStatus(grpc::INVALID_ARGUMENT, "got \"1lab\""));
  EXPECT_THAT(Create("lab/1"), HasStatus(grpc::INVALID_ARGUMENT, "name must match"));
  EXPECT_THAT(Create(std::string(33, 'a')), HasStatus(grpc::INVALID_ARGUMENT, "name must match"));
  EXPECT_THAT(Create(std::string(1000, 'a')), HasStatus(grpc::INVALID_ARGUMENT, "..."));  // truncated in the message
  grpc::ClientContext ctx;
  v1::GetSandboxRequest get;
  v1::Sandbox got;
  EXPECT_THAT(sandboxes_->GetSandbox(&ctx, get, &got), HasStatus(grpc::INVALID_ARGUMENT, "name is required"));
}

TEST_F(SandboxServiceTest, BadOptionsAreRefusedNamingTheField) {
  v1::SandboxOptions o;
  o.set_mtu(100);
  EXPECT_THAT(Create("x", nullptr, o), HasStatus(grpc::INVALID_ARGUMENT, "options.mtu must be 576..65535, got 100"));
  o = {};
  o.mutable_msl()->set_seconds(-1);
  EXPECT_THAT(Create("x", nullptr, o), HasStatus(grpc::INVALID_ARGUMENT, "options.msl must be a non-negative"));
  o = {};
  *o.mutable_msl() = Millis(0);
  o.mutable_msl()->set_nanos(0);
  EXPECT_THAT(Create("x", nullptr, o), HasStatus(grpc::INVALID_ARGUMENT, "options.msl must be positive"));
  o = {};
  *o.mutable_min_rto() = Millis(0);
  o.mutable_min_rto()->set_nanos(1000);
  EXPECT_THAT(Create("x", nullptr, o), HasStatus(grpc::INVALID_ARGUMENT, "options.min_rto must be 1ms"));
  o = {};
  o.set_event_capacity(2);
  EXPECT_THAT(Create("x", nullptr, o), HasStatus(grpc::INVALID_ARGUMENT, "options.event_capacity"));
  o = {};
  o.set_pcap_max_bytes(uint64_t{1} << 40);
  EXPECT_THAT(Create("x", nullptr, o), HasStatus(grpc::INVALID_ARGUMENT, "options.pcap_max_bytes"));
  o = {};
  o.set_send_buffer(10);
  EXPECT_THAT(Create("x", nullptr, o), HasStatus(grpc::INVALID_ARGUMENT, "options.send_buffer"));
  o = {};
  o.set_backend(static_cast<v1::Backend>(42));
  EXPECT_THAT(Create("x", nullptr, o), HasStatus(grpc::INVALID_ARGUMENT, "options.backend: unknown value 42"));
  // None of them left a sandbox behind, and the name is still free.
  EXPECT_THAT(Create("x"), IsOk());
}

TEST_F(SandboxServiceTest, KernelCallsInAVirtualSandboxSayWhy) {
  ASSERT_THAT(Create("v"), IsOk());
  v1::Connection c;
  EXPECT_THAT(Listen("v", v1::STACK_KERNEL, 80, &c),
              HasStatus(grpc::FAILED_PRECONDITION, "sandbox v uses the virtual backend"));
}

TEST_F(SandboxServiceTest, SetImpairmentValidatesAndApplies) {
  ASSERT_THAT(Create("imp"), IsOk());
  auto set = [&](v1::SetImpairmentRequest::Direction dir, double loss, const std::string& sb = "imp") {
    grpc::ClientContext ctx;
    v1::SetImpairmentRequest req;
    req.set_sandbox(sb);
    req.set_direction(dir);
    req.mutable_impairment()->set_loss(loss);
    v1::SetImpairmentResponse resp;
    return sandboxes_->SetImpairment(&ctx, req, &resp);
  };
  EXPECT_THAT(set(v1::SetImpairmentRequest::DIRECTION_BOTH, 1.5),
              HasStatus(grpc::INVALID_ARGUMENT, "impairment.loss must be in [0, 1], got 1.5"));
  EXPECT_THAT(set(v1::SetImpairmentRequest::DIRECTION_BOTH, 0.1, "nope"),
              HasStatus(grpc::NOT_FOUND, "sandbox nope not found"));
  EXPECT_THAT(set(static_cast<v1::SetImpairmentRequest::Direction>(9), 0.1),
              HasStatus(grpc::INVALID_ARGUMENT, "direction: unknown value 9"));

  // With every datagram lost toward the engine, a handshake cannot complete; cleared, it does.
  ASSERT_THAT(set(v1::SetImpairmentRequest::DIRECTION_TO_KERNEL, 1.0), IsOk());
  v1::Connection l, c;
  ASSERT_THAT(Listen("imp", v1::STACK_ENGINE, 7, &l), IsOk());
  ASSERT_THAT(Connect("imp", v1::STACK_ENGINE, "198.18.0.2", 7, &c), IsOk());
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(StateOf("imp", c.id()), v1::TCP_STATE_SYN_SENT);
  ASSERT_THAT(set(v1::SetImpairmentRequest::DIRECTION_BOTH, 0.0), IsOk());
  // The SYN is retransmitted after the initial RTO (1 s).
  EXPECT_TRUE(WaitUntil([&] { return StateOf("imp", c.id()) == v1::TCP_STATE_ESTABLISHED; }));
}

TEST_F(SandboxServiceTest, ExportPcapStreamsTheCapture) {
  ASSERT_THAT(Create("cap"), IsOk());
  auto [client, server] = EnginePair("cap", 9);
  ASSERT_NE(server, 0u);
  // More than one 256 KiB chunk of pcap.
  EXPECT_EQ(Transfer("cap", client, server, std::string(600'000, 'x')).size(), 600'000u);

  grpc::ClientContext ctx;
  v1::ExportPcapRequest req;
  req.set_sandbox("cap");
  auto reader = sandboxes_->ExportPcap(&ctx, req);
  std::string pcap;
  v1::PcapChunk chunk;
  int chunks = 0;
  while (reader->Read(&chunk)) {
    pcap += chunk.data();
    ++chunks;
  }
  ASSERT_THAT(reader->Finish(), IsOk());
  EXPECT_GT(chunks, 1);
  ASSERT_GT(pcap.size(), 600'000u);
  // Nanosecond pcap magic (libpcap writes it in host order), link type DLT_RAW (101 on Linux).
  uint32_t magic, linktype;
  memcpy(&magic, pcap.data(), 4);
  memcpy(&linktype, pcap.data() + 20, 4);
  EXPECT_EQ(magic, 0xa1b23c4du);
  EXPECT_EQ(linktype, 101u);

  // Without a capture, a clear error.
  v1::SandboxOptions off;
  off.set_pcap_off(true);
  ASSERT_THAT(Create("nocap", nullptr, off), IsOk());
  grpc::ClientContext ctx2;
  req.set_sandbox("nocap");
  auto r2 = sandboxes_->ExportPcap(&ctx2, req);
  while (r2->Read(&chunk)) {
  }
  EXPECT_THAT(r2->Finish(), HasStatus(grpc::FAILED_PRECONDITION, "capture"));
}

class PcapExportLimitTest : public ServerTest {
 protected:
  void Configure(ServerConfig& cfg) override { cfg.max_pcap_exports = 2; }
};

// ExportPcap streams in flight are bounded server-wide: with two held open by a client that
// does not read (the server cannot finish writing a capture of several MiB through HTTP/2's
// flow control), a third is refused; once one is cancelled, a new export goes through.
TEST_F(PcapExportLimitTest, ExportsInFlightAreBoundedAndCancellingFreesASlot) {
  ASSERT_THAT(Create("cap"), IsOk());
  auto [client, server] = EnginePair("cap", 9);
  ASSERT_NE(server, 0u);
  constexpr size_t kBytes = 4 << 20;
  ASSERT_EQ(Transfer("cap", client, server, std::string(kBytes, 'x')).size(), kBytes);

  // A client that reads little: small flow-control windows that do not grow.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 10);
  args.SetMaxReceiveMessageSize(64 << 20);
  auto slow = v1::SandboxService::NewStub(
      grpc::CreateCustomChannel(server_->addresses()[0], grpc::InsecureChannelCredentials(), args));
  v1::ExportPcapRequest req;
  req.set_sandbox("cap");
  v1::PcapChunk chunk;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::PcapChunk>>> held;
  for (int i = 0; i < 2; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    held.push_back(slow->ExportPcap(ctxs.back().get(), req));
    ASSERT_TRUE(held.back()->Read(&chunk));  // the export has started: it holds a slot
  }

  grpc::ClientContext ctx3;
  ctx3.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));  // fail, not hang, if it streams
  auto third = sandboxes_->ExportPcap(&ctx3, req);
  EXPECT_FALSE(third->Read(&chunk));
  grpc::Status refused = third->Finish();
  EXPECT_THAT(refused, HasStatus(grpc::RESOURCE_EXHAUSTED, "2 pcap exports are in flight"));
  EXPECT_THAT(refused, HasStatus(grpc::RESOURCE_EXHAUSTED, "retry"));

  // Cancelled: its slot is free once gRPC is done with the call (OnDone), a moment later.
  ctxs[0]->TryCancel();
  EXPECT_EQ(held[0]->Finish().error_code(), grpc::CANCELLED);
  std::string pcap;
  ASSERT_TRUE(WaitUntil([&] {
    grpc::ClientContext ctx;
    auto r = sandboxes_->ExportPcap(&ctx, req);
    pcap.clear();
    while (r->Read(&chunk)) pcap += chunk.data();
    grpc::Status s = r->Finish();
    EXPECT_TRUE(s.ok() || s.error_code() == grpc::RESOURCE_EXHAUSTED) << s.error_message();
    return s.ok();
  }));
  EXPECT_GT(pcap.size(), kBytes);
  uint32_t magic;
  memcpy(&magic, pcap.data(), 4);
  EXPECT_EQ(magic, 0xa1b23c4du);

  ctxs[1]->TryCancel();
  EXPECT_EQ(held[1]->Finish().error_code(), grpc::CANCELLED);
}

TEST_F(SandboxServiceTest, ServesOverTheUnixSocketToo) {
  auto ch = NewChannel("unix:" + unix_path_);
  auto stub = v1::SandboxService::NewStub(ch);
  grpc::ClientContext ctx;
  v1::CreateSandboxRequest req;
  req.set_name("viaunix");
  v1::Sandbox sb;
  ASSERT_THAT(stub->CreateSandbox(&ctx, req, &sb), IsOk());
  EXPECT_EQ(sb.name(), "viaunix");
}

TEST_F(SandboxServiceTest, HealthIsServing) {
  std::string resp;
  ASSERT_THAT(HealthCheck(channel_, &resp), IsOk());
  EXPECT_EQ(resp, std::string("\x08\x01", 2));
}

// grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo (a bidi stream) with the
// hand-encoded request ServerReflectionRequest{list_services: ""} (field 7, empty string:
// 3a 00). The response lists the services by name.
std::string ReflectionListServices(const std::shared_ptr<grpc::Channel>& ch) {
  grpc::GenericStub stub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  auto step = [&](intptr_t want) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!step(1)) return "";
  grpc::Slice req("\x3a\x00", 2);
  grpc::ByteBuffer req_buf(&req, 1);
  call->Write(req_buf, reinterpret_cast<void*>(2));
  if (!step(2)) return "";
  grpc::ByteBuffer resp;
  call->Read(&resp, reinterpret_cast<void*>(3));
  std::string out;
  if (step(3)) {
    std::vector<grpc::Slice> slices;
    (void)resp.Dump(&slices);
    for (const auto& sl : slices) out.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  }
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status st;
  call->Finish(&st, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return out;
}

TEST_F(SandboxServiceTest, ReflectionListsTheServices) {
  std::string resp = ReflectionListServices(channel_);
  EXPECT_THAT(resp, HasSubstr("tcplab.v1.SandboxService"));
  EXPECT_THAT(resp, HasSubstr("tcplab.v1.ConnectionService"));
  EXPECT_THAT(resp, HasSubstr("grpc.health.v1.Health"));
}

TEST_F(SandboxServiceTest, ShutdownEndsStreamsWithUnavailableAndRemovesSandboxes) {
  ASSERT_THAT(Create("sd"), IsOk());
  grpc::ClientContext ctx;
  v1::WatchEventsRequest req;
  req.set_sandbox("sd");
  auto reader = sandboxes_->WatchEvents(&ctx, req);
  v1::Connection l;
  ASSERT_THAT(Listen("sd", v1::STACK_ENGINE, 5, &l), IsOk());
  v1::WatchEventsResponse resp;
  ASSERT_TRUE(reader->Read(&resp));  // the stream is live
  std::thread stopper([&] { server_->Shutdown(absl::Seconds(5)); });
  while (reader->Read(&resp)) {
  }
  EXPECT_THAT(reader->Finish(), HasStatus(grpc::UNAVAILABLE, "server shutting down"));
  stopper.join();
  // New calls fail: the server is gone.
  grpc::ClientContext c2;
  c2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::ListSandboxesResponse list;
  EXPECT_FALSE(sandboxes_->ListSandboxes(&c2, {}, &list).ok());
}

class MaxSandboxesTest : public ServerTest {
  SandboxDefaults Defaults() override {
    SandboxDefaults d = ServerTest::Defaults();
    d.max_sandboxes = 2;
    return d;
  }
};

TEST_F(MaxSandboxesTest, TheThirdIsResourceExhausted) {
  ASSERT_THAT(Create("a"), IsOk());
  ASSERT_THAT(Create("b"), IsOk());
  EXPECT_THAT(Create("c"), HasStatus(grpc::RESOURCE_EXHAUSTED, "maximum of 2 sandboxes"));
}

}  // namespace
}  // namespace tcplab::server::testing
