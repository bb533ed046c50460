#include "server/services.h"

#include <thread>
#include <type_traits>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/convert.h"
#include "server/status.h"

namespace tcplab::server {

namespace {

void FillSandbox(SandboxEntry& e, v1::Sandbox* out) {
  out->set_name(e.name);
  *out->mutable_options() = e.options;
  *out->mutable_create_time() = ToProto(e.created);
  out->set_netns(e.sandbox->netns_name());
  out->mutable_kernel_address()->set_ip(wire::Ipv4::Of(198, 18, 0, 1).ToString());
  out->mutable_engine_address()->set_ip(sandbox::Sandbox::kEngineAddr.ToString());
  out->set_connections(static_cast<uint32_t>(e.sandbox->Ids().size()));  // not List(): a call per connection
  sandbox::SandboxCounters c = e.sandbox->counters();
  v1::SandboxCounters* pc = out->mutable_counters();
  pc->set_tun_datagrams_in(c.tun_datagrams_in);
  pc->set_tun_datagrams_out(c.tun_datagrams_out);
  pc->set_tun_write_errors(c.tun_write_errors);
  pc->set_loopback_datagrams(c.loopback_datagrams);
  pc->set_pcap_packets(c.pcap.datagrams_captured);
  pc->set_pcap_bytes(c.pcap.file_bytes);
  pc->set_pcap_dropped(c.pcap.datagrams_dropped);
  pc->set_events(e.sandbox->events().last_seq());
}

// A connection named by a request, looked up and checked against the request's stack.
struct ConnRef {
  std::shared_ptr<SandboxEntry> entry;
  sandbox::ConnInfo info;
};

absl::StatusOr<ConnRef> Resolve(Registry& registry, const std::string& tenant, const std::string& sb, uint64_t id,
                                v1::Stack stack) {
  ConnRef ref;
  TCPLAB_ASSIGN_OR_RETURN(ref.entry, registry.Get(sb, "sandbox", tenant));
  if (id == 0) return absl::InvalidArgumentError("connection_id is required");
  TCPLAB_ASSIGN_OR_RETURN(ref.info, ref.entry->sandbox->Get(id));
  if (stack != v1::STACK_UNSPECIFIED) {
    TCPLAB_ASSIGN_OR_RETURN(sandbox::StackKind want, FromProto(stack, "stack"));
    if (want != ref.info.stack) {
      return absl::InvalidArgumentError(absl::StrCat("connection ", sb, "/", id, " is on stack ",
                                                     sandbox::ToString(ref.info.stack), ", not ",
                                                     sandbox::ToString(want)));
    }
  }
  return ref;
}

// ExportPcap: the capture as it is when the call starts, in chunks. Holds one of the
// server's export slots until gRPC is done with the call (written, failed or cancelled).
class PcapWriter : public grpc::ServerWriteReactor<v1::PcapChunk> {
 public:
  PcapWriter(std::string pcap, std::shared_ptr<SandboxServiceImpl::PcapExports> slot)
      : pcap_(std::move(pcap)), slot_(std::move(slot)) {
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "pcap export cancelled"));
      return;
    }
    Next();
  }
  void OnDone() override {
    slot_->Release();
    delete this;
  }

 private:
  static constexpr size_t kChunk = 256 << 10;
  void Next() {
    if (offset_ >= pcap_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    size_t n = std::min(kChunk, pcap_.size() - offset_);
    chunk_.set_data(pcap_.data() + offset_, n);
    offset_ += n;
    StartWrite(&chunk_);
  }
  std::string pcap_;
  std::shared_ptr<SandboxServiceImpl::PcapExports> slot_;
  size_t offset_ = 0;
  v1::PcapChunk chunk_;
};

// Whether a Receive waiting on connection `id` (local, remote) should try again for `e`: an
// event about the connection, or a segment of its 4-tuple either way (for a kernel connection,
// the engine's segments to and from it are the only events that say data may have come).
bool Concerns(const sandbox::Event& e, tcp::ConnId id, wire::Endpoint local, wire::Endpoint remote) {
  return std::visit(
      [&](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if (body.conn == id) return true;
        if constexpr (std::is_same_v<T, tcp::SegmentEvent>) {
          return (body.seg.src == local && body.seg.dst == remote) || (body.seg.src == remote && body.seg.dst == local);
        }
        return false;
      },
      e.body);
}

// Waits until the log holds an event from `from` on that Concerns the connection, or until
// `until`, or until the log closes.
void WaitForActivity(const sandbox::EventLog& log, uint64_t from, absl::Time until, tcp::ConnId id,
                     wire::Endpoint local, wire::Endpoint remote) {
  constexpr size_t kBatch = 64;
  while (true) {
    sandbox::EventLog::ReadResult r = log.WaitAndRead(from, kBatch, until);
    if (r.events.empty() || r.missed > 0) return;  // timed out or closed; or fell behind: look
    for (const sandbox::Event& e : r.events) {
      if (Concerns(e, id, local, remote)) return;
    }
    from = r.next;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SandboxService

grpc::ServerUnaryReactor* SandboxServiceImpl::CreateSandbox(grpc::CallbackServerContext* ctx,
                                                            const v1::CreateSandboxRequest* req, v1::Sandbox* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::StatusOr<std::shared_ptr<SandboxEntry>> e = registry_.Create(*req, *tenant);
  if (e.ok()) FillSandbox(**e, resp);
  return FinishUnary(ctx, e.status());
}

grpc::ServerUnaryReactor* SandboxServiceImpl::GetSandbox(grpc::CallbackServerContext* ctx,
                                                         const v1::GetSandboxRequest* req, v1::Sandbox* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::StatusOr<std::shared_ptr<SandboxEntry>> e = registry_.Get(req->name(), "name", *tenant);
  if (e.ok()) FillSandbox(**e, resp);
  return FinishUnary(ctx, e.status());
}

grpc::ServerUnaryReactor* SandboxServiceImpl::ListSandboxes(grpc::CallbackServerContext* ctx,
                                                            const v1::ListSandboxesRequest*,
                                                            v1::ListSandboxesResponse* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  for (const std::shared_ptr<SandboxEntry>& e : registry_.List(*tenant)) FillSandbox(*e, resp->add_sandboxes());
  return FinishUnary(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* SandboxServiceImpl::DeleteSandbox(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteSandboxRequest* req,
                                                            v1::DeleteSandboxResponse*) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  return FinishUnary(ctx, registry_.Delete(req->name(), *tenant));
}

grpc::ServerUnaryReactor* SandboxServiceImpl::SetImpairment(grpc::CallbackServerContext* ctx,
                                                            const v1::SetImpairmentRequest* req,
                                                            v1::SetImpairmentResponse*) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::Status s = [&]() -> absl::Status {
    TCPLAB_ASSIGN_OR_RETURN(std::shared_ptr<SandboxEntry> e, registry_.Get(req->sandbox(), "sandbox", *tenant));
    TCPLAB_ASSIGN_OR_RETURN(link::Impairment imp, FromProto(req->impairment()));
    using D = v1::SetImpairmentRequest;
    switch (req->direction()) {
      case D::DIRECTION_TO_KERNEL:
        return e->sandbox->SetImpairment(sandbox::Direction::kToKernel, imp);
      case D::DIRECTION_TO_ENGINE:
        return e->sandbox->SetImpairment(sandbox::Direction::kToEngine, imp);
      case D::DIRECTION_BOTH:
      case D::DIRECTION_UNSPECIFIED:
        TCPLAB_RETURN_IF_ERROR(e->sandbox->SetImpairment(sandbox::Direction::kToKernel, imp));
        // The other direction draws from its own generator, so the two are not mirror images.
        imp.seed ^= 0x9e3779b97f4a7c15ull;
        return e->sandbox->SetImpairment(sandbox::Direction::kToEngine, imp);
      default:
        return absl::InvalidArgumentError(absl::StrCat("direction: unknown value ", int{req->direction()}));
    }
  }();
  return FinishUnary(ctx, s);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* SandboxServiceImpl::WatchEvents(grpc::CallbackServerContext* ctx,
                                                                             const grpc::ByteBuffer* raw) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return new FailedWriter<grpc::ByteBuffer>(tenant.status());
  v1::WatchEventsRequest req;
  absl::Status s = [&]() -> absl::Status {
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (raw->Dump(&slices).ok()) {
      for (const grpc::Slice& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
    if (!req.ParseFromString(bytes)) return absl::InvalidArgumentError("WatchEventsRequest: malformed message");
    return absl::OkStatus();
  }();
  absl::StatusOr<std::shared_ptr<SandboxEntry>> e =
      s.ok() ? registry_.Get(req.sandbox(), "sandbox", *tenant) : absl::StatusOr<std::shared_ptr<SandboxEntry>>(s);
  s = e.status();
  for (int k : req.kinds()) {
    if (s.ok() && (k <= v1::EVENT_KIND_UNSPECIFIED || k > v1::EVENT_KIND_APP)) {
      s = absl::InvalidArgumentError(absl::StrCat("kinds: unknown event kind ", k));
    }
  }
  if (s.ok() && req.from_sequence() > (*e)->hub->log().last_seq() + 1) {
    s = absl::OutOfRangeError(absl::StrCat("from_sequence ", req.from_sequence(), " is beyond the next event, ",
                                           (*e)->hub->log().last_seq() + 1));
  }
  if (!s.ok()) return new FailedWriter<grpc::ByteBuffer>(s);
  return EventHub::Watch((*e)->hub, req);
}

grpc::ServerWriteReactor<v1::PcapChunk>* SandboxServiceImpl::ExportPcap(grpc::CallbackServerContext* ctx,
                                                                         const v1::ExportPcapRequest* req) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return new FailedWriter<v1::PcapChunk>(tenant.status());
  absl::StatusOr<std::shared_ptr<SandboxEntry>> e = registry_.Get(req->sandbox(), "sandbox", *tenant);
  if (!e.ok()) return new FailedWriter<v1::PcapChunk>(e.status());
  // A slot before the copy: the copy is what the bound is for.
  if (!pcap_exports_->TryAcquire()) {
    return new FailedWriter<v1::PcapChunk>(absl::ResourceExhaustedError(
        absl::StrCat(pcap_exports_->in_flight(), " pcap exports are in flight, the most this server runs at once (",
                     pcap_exports_->max(), "); retry when one has finished")));
  }
  absl::StatusOr<std::string> pcap = (*e)->sandbox->Pcap();
  if (!pcap.ok()) {
    pcap_exports_->Release();
    return new FailedWriter<v1::PcapChunk>(pcap.status());
  }
  return new PcapWriter(*std::move(pcap), pcap_exports_);
}

// ---------------------------------------------------------------------------------------------
// ConnectionService

ConnectionServiceImpl::~ConnectionServiceImpl() {
  absl::MutexLock l(&mu_);
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &waiting_receives_));
}

grpc::ServerUnaryReactor* ConnectionServiceImpl::Listen(grpc::CallbackServerContext* ctx,
                                                        const v1::ListenRequest* req, v1::Connection* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::Status s = [&]() -> absl::Status {
    TCPLAB_ASSIGN_OR_RETURN(std::shared_ptr<SandboxEntry> e, registry_.Get(req->sandbox(), "sandbox", *tenant));
    TCPLAB_ASSIGN_OR_RETURN(sandbox::StackKind stack, FromProto(req->stack(), "stack"));
    TCPLAB_ASSIGN_OR_RETURN(wire::Endpoint local, FromProto(req->local(), "local", false, PortRule::kRequired));
    if (req->backlog() > 4096) {
      return absl::InvalidArgumentError(absl::StrCat("backlog must be 0..4096, got ", req->backlog()));
    }
    TCPLAB_ASSIGN_OR_RETURN(tcp::ConnId id, e->sandbox->Listen(stack, local, static_cast<int>(req->backlog())));
    TCPLAB_ASSIGN_OR_RETURN(sandbox::ConnInfo info, e->sandbox->Get(id));
    *resp = ToProto(info, e->name);
    return absl::OkStatus();
  }();
  return FinishUnary(ctx, s);
}

grpc::ServerUnaryReactor* ConnectionServiceImpl::Connect(grpc::CallbackServerContext* ctx,
                                                         const v1::ConnectRequest* req, v1::Connection* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::Status s = [&]() -> absl::Status {
    TCPLAB_ASSIGN_OR_RETURN(std::shared_ptr<SandboxEntry> e, registry_.Get(req->sandbox(), "sandbox", *tenant));
    TCPLAB_ASSIGN_OR_RETURN(sandbox::StackKind stack, FromProto(req->stack(), "stack"));
    if (!req->has_remote()) return absl::InvalidArgumentError("remote is required");
    TCPLAB_ASSIGN_OR_RETURN(wire::Endpoint remote, FromProto(req->remote(), "remote", true, PortRule::kRequired));
    TCPLAB_ASSIGN_OR_RETURN(wire::Endpoint local, FromProto(req->local(), "local", false, PortRule::kOptional));
    TCPLAB_ASSIGN_OR_RETURN(tcp::ConnId id, e->sandbox->Connect(stack, local, remote));
    TCPLAB_ASSIGN_OR_RETURN(sandbox::ConnInfo info, e->sandbox->Get(id));
    *resp = ToProto(info, e->name);
    return absl::OkStatus();
  }();
  return FinishUnary(ctx, s);
}

grpc::ServerUnaryReactor* ConnectionServiceImpl::Send(grpc::CallbackServerContext* ctx, const v1::SendRequest* req,
                                                      v1::SendResponse* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::Status s = [&]() -> absl::Status {
    TCPLAB_ASSIGN_OR_RETURN(ConnRef ref,
                            Resolve(registry_, *tenant, req->sandbox(), req->connection_id(), req->stack()));
    if (req->data().empty()) return absl::InvalidArgumentError("data is empty; send at least one octet");
    if (req->data().size() > kMaxSendBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("data is ", req->data().size(), " octets; at most ", kMaxSendBytes, " per call"));
    }
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(req->data().data()), req->data().size());
    TCPLAB_ASSIGN_OR_RETURN(size_t n, ref.entry->sandbox->Send(ref.info.id, bytes));
    resp->set_accepted(n);
    if (auto info = ref.entry->sandbox->Get(ref.info.id); info.ok()) {
      *resp->mutable_connection() = ToProto(*info, ref.entry->name);
    }
    return absl::OkStatus();
  }();
  return FinishUnary(ctx, s);
}

grpc::ServerUnaryReactor* ConnectionServiceImpl::Receive(grpc::CallbackServerContext* ctx,
                                                         const v1::ReceiveRequest* req, v1::ReceiveResponse* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  size_t max = req->max_bytes() ? req->max_bytes() : kDefaultReceiveBytes;
  absl::Duration wait;
  absl::StatusOr<ConnRef> ref = [&]() -> absl::StatusOr<ConnRef> {
    TCPLAB_ASSIGN_OR_RETURN(ConnRef r, Resolve(registry_, *tenant, req->sandbox(), req->connection_id(), req->stack()));
    if (max > kMaxReceiveBytes) {
      return absl::InvalidArgumentError(absl::StrCat("max_bytes must be 0..", kMaxReceiveBytes, ", got ", max));
    }
    TCPLAB_ASSIGN_OR_RETURN(Duration w, FromProto(req->wait(), "wait"));
    wait = absl::FromChrono(w);
    if (wait > kMaxReceiveWait) {
      return absl::InvalidArgumentError(absl::StrCat("wait must be at most 60s, got ", absl::FormatDuration(wait)));
    }
    return r;
  }();
  if (!ref.ok()) return FinishUnary(ctx, ref.status());

  // One attempt; true when the call is answered (data, end of stream, or an error).
  auto attempt = [resp, max](SandboxEntry& entry, tcp::ConnId id, absl::Status* s) {
    absl::StatusOr<sandbox::Sandbox::Received> got = entry.sandbox->Recv(id, max);
    if (!got.ok()) {
      *s = got.status();
      return true;
    }
    resp->set_data(std::move(got->data));
    resp->set_eof(got->eof);
    *s = absl::OkStatus();
    return !resp->data().empty() || resp->eof();
  };
  absl::Status s;
  if (attempt(*ref->entry, ref->info.id, &s) || wait <= absl::ZeroDuration()) return FinishUnary(ctx, s);

  // Nothing yet: wait off the gRPC threads for the sandbox to log something about the
  // connection (WaitForActivity), then try again.
  {
    absl::MutexLock l(&mu_);
    if (waiting_receives_ >= kMaxWaitingReceives) {
      return FinishUnary(ctx, absl::ResourceExhaustedError(absl::StrCat(
                                  kMaxWaitingReceives, " receives are already waiting; try again or wait less")));
    }
    ++waiting_receives_;
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto wait_for_data = [this, ctx, reactor, attempt, entry = ref->entry, id = ref->info.id,
                        local = ref->info.local, remote = ref->info.remote,
                        deadline = absl::Now() + wait]() mutable {
    absl::Status st;
    const sandbox::EventLog& log = entry->hub->log();
    while (true) {
      // Checked before each attempt: data read for a client that has gone would be lost.
      if (ctx->IsCancelled()) {
        st = absl::CancelledError("receive cancelled");
        break;
      }
      if (log.closed()) {
        st = absl::NotFoundError(absl::StrCat("sandbox ", entry->name, " was deleted"));
        break;
      }
      // Events logged from here on may follow what this attempt sees; earlier ones it sees.
      uint64_t from = log.last_seq() + 1;
      if (attempt(*entry, id, &st)) break;
      absl::Time now = absl::Now();
      if (now >= deadline) break;  // no data within `wait`: an empty answer
      WaitForActivity(log, from, std::min(deadline, now + kReceiveRecheck), id, local, remote);
    }
    entry.reset();  // a deleted sandbox goes now, not when this thread's lambda dies
    if (std::string e = ErrnoOf(st); !e.empty()) ctx->AddTrailingMetadata(kErrnoMetadataKey, e);
    reactor->Finish(ToGrpc(st));
    absl::MutexLock l(&mu_);
    --waiting_receives_;
  };
  try {
    std::thread(std::move(wait_for_data)).detach();
  } catch (const std::system_error& e) {
    {
      absl::MutexLock l(&mu_);
      --waiting_receives_;
    }
    reactor->Finish(ToGrpc(absl::ResourceExhaustedError(absl::StrCat("cannot start a waiting receive: ", e.what()))));
  }
  return reactor;
}

grpc::ServerUnaryReactor* ConnectionServiceImpl::Finalize(grpc::CallbackServerContext* ctx,
                                                          const v1::ConnectionRequest* req, v1::Connection* resp,
                                                          Call call) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::Status s = [&]() -> absl::Status {
    TCPLAB_ASSIGN_OR_RETURN(ConnRef ref,
                            Resolve(registry_, *tenant, req->sandbox(), req->connection_id(), req->stack()));
    sandbox::Sandbox& sb = *ref.entry->sandbox;
    switch (call) {
      case Call::kShutdown:
        TCPLAB_RETURN_IF_ERROR(sb.Shutdown(ref.info.id));
        break;
      case Call::kClose:
        TCPLAB_RETURN_IF_ERROR(sb.Close(ref.info.id));
        break;
      case Call::kAbort:
        TCPLAB_RETURN_IF_ERROR(sb.Abort(ref.info.id));
        break;
    }
    // The connection as it is now; once it is gone (an abort, a close of a listener), CLOSED.
    absl::StatusOr<sandbox::ConnInfo> now = sb.Get(ref.info.id);
    if (now.ok()) {
      *resp = ToProto(*now, ref.entry->name);
    } else {
      ref.info.state = tcp::TcpState::kClosed;
      ref.info.engine.reset();
      ref.info.kernel.reset();
      *resp = ToProto(ref.info, ref.entry->name);
    }
    return absl::OkStatus();
  }();
  return FinishUnary(ctx, s);
}

grpc::ServerUnaryReactor* ConnectionServiceImpl::Shutdown(grpc::CallbackServerContext* ctx,
                                                          const v1::ConnectionRequest* req, v1::Connection* resp) {
  return Finalize(ctx, req, resp, Call::kShutdown);
}
grpc::ServerUnaryReactor* ConnectionServiceImpl::Close(grpc::CallbackServerContext* ctx,
                                                       const v1::ConnectionRequest* req, v1::Connection* resp) {
  return Finalize(ctx, req, resp, Call::kClose);
}
grpc::ServerUnaryReactor* ConnectionServiceImpl::Abort(grpc::CallbackServerContext* ctx,
                                                       const v1::ConnectionRequest* req, v1::Connection* resp) {
  return Finalize(ctx, req, resp, Call::kAbort);
}

grpc::ServerUnaryReactor* ConnectionServiceImpl::GetConnection(grpc::CallbackServerContext* ctx,
                                                               const v1::ConnectionRequest* req,
                                                               v1::Connection* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::StatusOr<ConnRef> ref = Resolve(registry_, *tenant, req->sandbox(), req->connection_id(), req->stack());
  if (ref.ok()) *resp = ToProto(ref->info, ref->entry->name);
  return FinishUnary(ctx, ref.status());
}

grpc::ServerUnaryReactor* ConnectionServiceImpl::ListConnections(grpc::CallbackServerContext* ctx,
                                                                 const v1::ListConnectionsRequest* req,
                                                                 v1::ListConnectionsResponse* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  absl::StatusOr<std::shared_ptr<SandboxEntry>> e = registry_.Get(req->sandbox(), "sandbox", *tenant);
  if (e.ok()) {
    for (const sandbox::ConnInfo& info : (*e)->sandbox->List()) {
      *resp->add_connections() = ToProto(info, (*e)->name);
    }
  }
  return FinishUnary(ctx, e.status());
}

}  // namespace tcplab::server
