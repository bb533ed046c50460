// The one place where absl::Status becomes grpc::Status (DESIGN.md, Errors). The canonical
// code and the message go through unchanged; the errno a socket user would have seen (the
// engine's `tcplab.errno` payload) travels as the trailing metadata key `tcplab-errno`.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/util/status_macros.h"
#include "grpcpp/grpcpp.h"

namespace tcplab::server {

inline constexpr char kErrnoMetadataKey[] = "tcplab-errno";

grpc::Status ToGrpc(const absl::Status& s);
// The errno name in `s`'s payload, or "" (for the trailing metadata).
std::string ErrnoOf(const absl::Status& s);

// Finishes a unary callback RPC with `s`, the errno (if any) as trailing metadata.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const absl::Status& s);

// A server stream that ends at once with `s` (a request that failed validation).
template <typename Response>
class FailedWriter : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FailedWriter(const absl::Status& s) { this->Finish(ToGrpc(s)); }
  void OnDone() override { delete this; }
};

}  // namespace tcplab::server
