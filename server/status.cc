#include "server/status.h"

#include "engine/tcp/socket_error.h"

namespace tcplab::server {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share the canonical numbering (0..16).
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

std::string ErrnoOf(const absl::Status& s) {
  auto p = s.GetPayload(tcp::kErrnoPayload);
  return p ? std::string(*p) : std::string();
}

}  // namespace tcplab::server

namespace tcplab::server {

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  if (std::string e = ErrnoOf(s); !e.empty()) ctx->AddTrailingMetadata(kErrnoMetadataKey, e);
  r->Finish(ToGrpc(s));
  return r;
}

}  // namespace tcplab::server
