// The gRPC services: thin translations between proto/tcplab/v1 and the sandboxes. Every
// request is validated here, field by field; the engine's errors pass through unchanged.
// Every handler first asks the Authenticator for the caller's tenant (server/auth.h) and looks
// sandboxes up in that tenant only.
#pragma once

#include <atomic>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "server/auth.h"
#include "server/registry.h"
#include "tcplab/v1/connection.grpc.pb.h"
#include "tcplab/v1/sandbox.grpc.pb.h"

namespace tcplab::server {

// Limits of single calls. gRPC itself refuses messages over kMaxMessageBytes with
// RESOURCE_EXHAUSTED before they reach a handler.
inline constexpr size_t kMaxSendBytes = 4u << 20;
inline constexpr size_t kMaxReceiveBytes = 4u << 20;
inline constexpr size_t kDefaultReceiveBytes = 64u << 10;
inline constexpr int kMaxMessageBytes = 8 << 20;
inline constexpr absl::Duration kMaxReceiveWait = absl::Seconds(60);
inline constexpr int kMaxWaitingReceives = 256;
// A waiting Receive tries again when the sandbox logs an event about its connection, and at
// least this often: a kernel socket may get its data just after the segment's event is logged
// (the event is logged when the engine sends; the kernel queues the data once the TUN write
// reaches it), and then no further event need come.
inline constexpr absl::Duration kReceiveRecheck = absl::Milliseconds(20);
// ExportPcap streams in flight server-wide (ServerConfig::max_pcap_exports): each holds a copy
// of its sandbox's capture, up to the capture bound (64 MiB by default), until it is written.
inline constexpr int kDefaultMaxPcapExports = 4;

// The callback service with WatchEvents raw: its responses are assembled from event bytes
// serialized once per sandbox (event_stream.h), not re-serialized per subscriber.
using SandboxServiceBase = v1::SandboxService::WithCallbackMethod_CreateSandbox<
    v1::SandboxService::WithCallbackMethod_GetSandbox<v1::SandboxService::WithCallbackMethod_ListSandboxes<
        v1::SandboxService::WithCallbackMethod_DeleteSandbox<v1::SandboxService::WithCallbackMethod_SetImpairment<
            v1::SandboxService::WithRawCallbackMethod_WatchEvents<
                v1::SandboxService::WithCallbackMethod_ExportPcap<v1::SandboxService::Service>>>>>>>;

class SandboxServiceImpl final : public SandboxServiceBase {
 public:
  SandboxServiceImpl(Registry& registry, const Authenticator& auth, int max_pcap_exports = kDefaultMaxPcapExports)
      : registry_(registry), auth_(auth), pcap_exports_(std::make_shared<PcapExports>(max_pcap_exports)) {}

  grpc::ServerUnaryReactor* CreateSandbox(grpc::CallbackServerContext* ctx, const v1::CreateSandboxRequest* req,
                                          v1::Sandbox* resp) override;
  grpc::ServerUnaryReactor* GetSandbox(grpc::CallbackServerContext* ctx, const v1::GetSandboxRequest* req,
                                       v1::Sandbox* resp) override;
  grpc::ServerUnaryReactor* ListSandboxes(grpc::CallbackServerContext* ctx, const v1::ListSandboxesRequest* req,
                                          v1::ListSandboxesResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteSandbox(grpc::CallbackServerContext* ctx, const v1::DeleteSandboxRequest* req,
                                          v1::DeleteSandboxResponse* resp) override;
  grpc::ServerUnaryReactor* SetImpairment(grpc::CallbackServerContext* ctx, const v1::SetImpairmentRequest* req,
                                          v1::SetImpairmentResponse* resp) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchEvents(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* req) override;
  grpc::ServerWriteReactor<v1::PcapChunk>* ExportPcap(grpc::CallbackServerContext* ctx,
                                                       const v1::ExportPcapRequest* req) override;

  // Counts the ExportPcap streams in flight. Shared with them: a stream gives its slot back
  // in OnDone, which may come after the service is gone.
  class PcapExports {
   public:
    explicit PcapExports(int max) : max_(max) {}
    bool TryAcquire() {
      int n = in_flight_.load();
      do {
        if (n >= max_) return false;
      } while (!in_flight_.compare_exchange_weak(n, n + 1));
      return true;
    }
    void Release() { in_flight_.fetch_sub(1); }
    int in_flight() const { return in_flight_.load(); }
    int max() const { return max_; }

   private:
    const int max_;
    std::atomic<int> in_flight_{0};
  };

 private:
  Registry& registry_;
  const Authenticator& auth_;
  const std::shared_ptr<PcapExports> pcap_exports_;
};

class ConnectionServiceImpl final : public v1::ConnectionService::CallbackService {
 public:
  ConnectionServiceImpl(Registry& registry, const Authenticator& auth) : registry_(registry), auth_(auth) {}
  ~ConnectionServiceImpl() override;  // waits for Receives still waiting for data

  grpc::ServerUnaryReactor* Listen(grpc::CallbackServerContext* ctx, const v1::ListenRequest* req,
                                   v1::Connection* resp) override;
  grpc::ServerUnaryReactor* Connect(grpc::CallbackServerContext* ctx, const v1::ConnectRequest* req,
                                    v1::Connection* resp) override;
  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* ctx, const v1::SendRequest* req,
                                 v1::SendResponse* resp) override;
  grpc::ServerUnaryReactor* Receive(grpc::CallbackServerContext* ctx, const v1::ReceiveRequest* req,
                                    v1::ReceiveResponse* resp) override;
  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext* ctx, const v1::ConnectionRequest* req,
                                     v1::Connection* resp) override;
  grpc::ServerUnaryReactor* Close(grpc::CallbackServerContext* ctx, const v1::ConnectionRequest* req,
                                  v1::Connection* resp) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* ctx, const v1::ConnectionRequest* req,
                                  v1::Connection* resp) override;
  grpc::ServerUnaryReactor* GetConnection(grpc::CallbackServerContext* ctx, const v1::ConnectionRequest* req,
                                          v1::Connection* resp) override;
  grpc::ServerUnaryReactor* ListConnections(grpc::CallbackServerContext* ctx,
                                            const v1::ListConnectionsRequest* req,
                                            v1::ListConnectionsResponse* resp) override;

 private:
  enum class Call { kShutdown, kClose, kAbort };
  grpc::ServerUnaryReactor* Finalize(grpc::CallbackServerContext* ctx, const v1::ConnectionRequest* req,
                                     v1::Connection* resp, Call call);

  Registry& registry_;
  const Authenticator& auth_;
  absl::Mutex mu_;
  int waiting_receives_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tcplab::server
