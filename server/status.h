// The one place where absl::Status becomes grpc::Status (DESIGN.md, Errors). The canonical
// code and the message go through unchanged; the errno a socket user would have seen (the
// engine's `tcplab.errno` payload) travels as the trailing metadata key `tcplab-errno`.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace tcplab::server {

inline constexpr char kErrnoMetadataKey[] = "tcplab-errno";

grpc::Status ToGrpc(const absl::Status& s);
// The errno name in `s`'s payload, or "" (for the trailing metadata).
std::string ErrnoOf(const absl::Status& s);

// Abseil 20220623 has no status macros (DESIGN.md): these two are all the services need.
#define TCPLAB_RETURN_IF_ERROR(expr)            \
  do {                                          \
    if (absl::Status _s = (expr); !_s.ok()) {   \
      return _s;                                \
    }                                           \
  } while (0)

#define TCPLAB_CONCAT_INNER(a, b) a##b
#define TCPLAB_CONCAT(a, b) TCPLAB_CONCAT_INNER(a, b)
#define TCPLAB_ASSIGN_OR_RETURN(lhs, expr) \
  TCPLAB_ASSIGN_OR_RETURN_IMPL(TCPLAB_CONCAT(_statusor_, __LINE__), lhs, expr)
#define TCPLAB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = *std::move(tmp)

}  // namespace tcplab::server

namespace tcplab::server {

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
