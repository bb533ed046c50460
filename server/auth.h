// Bearer-token authentication and the tenant of a call.
//
// tcplabd --auth_tokens=FILE names the tokens it accepts, each with the tenant it stands for:
//
//   # TOKEN                            TENANT
//   3f9c0d6e2b7a41c8a5d0e9f1b2c3d4e5   alice
//
// A call carries "authorization: Bearer TOKEN"; its tenant is the token's. Sandboxes, grading
// runs and DUTs belong to a tenant, and another tenant's look exactly like unknown ones.
// Without a token file there is no authentication and every call is the anonymous tenant "".
//
// Where the check happens. gRPC 1.51 offers no clean way for a server interceptor to reject
// a call: Hijack() is client-only, and TryCancel() ends the call with CANCELLED, not with a
// status of our choosing. (AuthMetadataProcessor asserts on insecure credentials.) So:
//   - every tcplab handler calls Authenticator::TenantOf(ctx) first and fails the call with
//     its UNAUTHENTICATED status; it needs the tenant anyway, and it runs nothing for a call
//     without a valid token;
//   - AuthInterceptorFactory covers the services tcplab does not write itself (server
//     reflection): at POST_RECV_INITIAL_METADATA it cancels a call without a valid token
//     with grpc_call_cancel_with_status(UNAUTHENTICATED, message), which sends that status
//     to the client. It does so for tcplab's own services too, so a handler that forgot its
//     check would still be refused; the handler's check is what keeps it from acting.
// grpc.health.v1.Health needs no token (load balancers and probes have none).
#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/server_interceptor.h"

namespace tcplab::server {

inline constexpr char kMissingTokenMessage[] =
    "missing authorization metadata (Bearer token); pass --token or set TCPLAB_TOKEN";
inline constexpr char kUnknownTokenMessage[] = "unknown token";
inline constexpr size_t kMinTokenBytes = 16;

class Authenticator {
 public:
  // No authentication: every call is the anonymous tenant "".
  Authenticator() = default;
  // Reads a token file: one "TOKEN TENANT" per line; blank lines and lines starting with '#'
  // are skipped. Errors say "FILE:LINE: why" and never contain a token.
  static absl::StatusOr<std::unique_ptr<Authenticator>> FromFile(const std::string& path);
  // The same from text; `source` names it in errors.
  static absl::StatusOr<std::unique_ptr<Authenticator>> FromText(absl::string_view text, absl::string_view source);

  bool enabled() const { return !tokens_.empty(); }
  // The caller's tenant, "" when authentication is off; UNAUTHENTICATED without a valid token.
  absl::StatusOr<std::string> TenantOf(const grpc::CallbackServerContext& ctx) const;
  absl::StatusOr<std::string> TenantOf(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

  // [a-z0-9][a-z0-9_-]{0,31}
  static bool ValidTenant(absl::string_view t);

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Entry {
    Digest digest;  // SHA-256 of the token: compared in constant time, whatever the lengths
    std::string tenant;
  };
  std::vector<Entry> tokens_;
};

// Refuses calls without a valid token on every method but grpc.health.v1.Health/* (see the
// comment at the top). `auth` must outlive the server.
class AuthInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(const Authenticator& auth) : auth_(auth) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;

 private:
  const Authenticator& auth_;
};

}  // namespace tcplab::server
