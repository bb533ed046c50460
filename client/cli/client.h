// The connection to tcplabd shared by every command: the stubs, per-call contexts (bearer
// token, deadline) and the way a failed call is reported (stderr, exit code 1).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tcplab/v1/connection.grpc.pb.h"
#include "tcplab/v1/dut.grpc.pb.h"
#include "tcplab/v1/grading.grpc.pb.h"
#include "tcplab/v1/sandbox.grpc.pb.h"

namespace tcplab::cli {

namespace v1 = ::tcplab::v1;

// Exit codes: 0 success, 1 the server (or the transport) said no, 2 bad usage.
inline constexpr int kExitOk = 0;
inline constexpr int kExitServer = 1;
inline constexpr int kExitUsage = 2;

struct GlobalOptions {
  std::string server = "127.0.0.1:50051";
  std::string token;
  bool json = false;
};

class Client {
 public:
  explicit Client(GlobalOptions opts);

  const GlobalOptions& options() const { return opts_; }
  bool json() const { return opts_.json; }
  v1::SandboxService::Stub& sandboxes() { return *sandboxes_; }
  v1::ConnectionService::Stub& connections() { return *connections_; }
  v1::GradingService::Stub& grading() { return *grading_; }
  v1::DutService::Stub& duts() { return *duts_; }

  // A channel for code that makes its own ClientContexts (the engine DUT's AttachDut): it
  // sends the token on every call by itself.
  std::shared_ptr<grpc::Channel> TokenChannel() const;

  // A context for one call: the token as "authorization: Bearer T" and, unless `timeout` is
  // infinite, a deadline.
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = kUnaryTimeout) const;

  // Reports a failed call on stderr, "tcplab: NOT_FOUND: connection lab1/9 not found", with
  // the errno from the trailing metadata `tcplab-errno` when there is one. Returns 1.
  int Fail(const grpc::Status& s, const grpc::ClientContext& ctx) const;
  // The same for a call whose context is not at hand (no errno then).
  int Fail(const grpc::Status& s) const;

  static constexpr absl::Duration kUnaryTimeout = absl::Seconds(30);

 private:
  GlobalOptions opts_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SandboxService::Stub> sandboxes_;
  std::unique_ptr<v1::ConnectionService::Stub> connections_;
  std::unique_ptr<v1::GradingService::Stub> grading_;
  std::unique_ptr<v1::DutService::Stub> duts_;
};

// Prints "tcplab: MSG" and a pointer to the help on stderr; returns 2.
int UsageError(const std::string& msg);
// The same for a failed argument check (its message names the argument).
inline int Usage(const absl::Status& s) { return UsageError(std::string(s.message())); }

// "OK", "NOT_FOUND", ...
const char* CodeName(grpc::StatusCode code);

// A connection as the CLI writes it: "lab1/3".
struct ConnRef {
  std::string sandbox;
  uint64_t id = 0;
  std::string ToString() const;
};
// Parses "SANDBOX/ID"; errors name `what` (the argument) for a usage error.
absl::StatusOr<ConnRef> ParseConnRef(const std::string& what, const std::string& text);

}  // namespace tcplab::cli
