#include "client/cli/client.h"

#include <cstdio>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/support/client_interceptor.h"

namespace tcplab::cli {

namespace {

namespace gx = ::grpc::experimental;

// Adds "authorization: Bearer T" to every call of a channel, as Client::Context does per call.
class BearerInterceptor : public gx::Interceptor {
 public:
  explicit BearerInterceptor(const std::string& token) : value_("Bearer " + token) {}
  void Intercept(gx::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      m->GetSendInitialMetadata()->insert({"authorization", value_});
    }
    m->Proceed();
  }

 private:
  std::string value_;
};

class BearerInterceptorFactory : public gx::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(std::string token) : token_(std::move(token)) {}
  gx::Interceptor* CreateClientInterceptor(gx::ClientRpcInfo*) override { return new BearerInterceptor(token_); }

 private:
  std::string token_;
};

}  // namespace

Client::Client(GlobalOptions opts) : opts_(std::move(opts)) {
  // Loopback and unix sockets only in the lab: plain text, as tcplabd serves.
  channel_ = grpc::CreateChannel(opts_.server, grpc::InsecureChannelCredentials());
  sandboxes_ = v1::SandboxService::NewStub(channel_);
  connections_ = v1::ConnectionService::NewStub(channel_);
  grading_ = v1::GradingService::NewStub(channel_);
  duts_ = v1::DutService::NewStub(channel_);
}

std::shared_ptr<grpc::Channel> Client::TokenChannel() const {
  if (opts_.token.empty()) return channel_;
  std::vector<std::unique_ptr<gx::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerInterceptorFactory>(opts_.token));
  return gx::CreateCustomChannelWithInterceptors(opts_.server, grpc::InsecureChannelCredentials(),
                                                 grpc::ChannelArguments(), std::move(interceptors));
}

std::unique_ptr<grpc::ClientContext> Client::Context(absl::Duration timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!opts_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + opts_.token);
  if (timeout != absl::InfiniteDuration()) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  return ctx;
}

int Client::Fail(const grpc::Status& s, const grpc::ClientContext& ctx) const {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto errno_it = trailers.find("tcplab-errno");
  if (errno_it == trailers.end()) return Fail(s);
  std::string line = absl::StrCat("tcplab: ", CodeName(s.error_code()), ": ", s.error_message());
  absl::StrAppend(&line, " (errno ", std::string(errno_it->second.data(), errno_it->second.size()), ")");
  std::fprintf(stderr, "%s\n", line.c_str());
  return kExitServer;
}

int Client::Fail(const grpc::Status& s) const {
  std::string line = absl::StrCat("tcplab: ", CodeName(s.error_code()), ": ", s.error_message());
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // Transport failures say little by themselves; name the address that was tried.
    absl::StrAppend(&line, " [server ", opts_.server, "]");
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  return kExitServer;
}

int UsageError(const std::string& msg) {
  std::fprintf(stderr, "tcplab: %s\nRun 'tcplab help' for usage.\n", msg.c_str());
  return kExitUsage;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

std::string ConnRef::ToString() const { return absl::StrCat(sandbox, "/", id); }

absl::StatusOr<ConnRef> ParseConnRef(const std::string& what, const std::string& text) {
  ConnRef ref;
  auto slash = text.rfind('/');
  if (slash == std::string::npos || slash == 0 || !absl::SimpleAtoi(text.substr(slash + 1), &ref.id) ||
      ref.id == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be SANDBOX/ID, e.g. lab1/3, got \"", text, "\""));
  }
  ref.sandbox = text.substr(0, slash);
  return ref;
}

}  // namespace tcplab::cli
