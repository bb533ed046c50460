#include "server/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace tcplab::server {

void LowerServerPriority() { (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kServerNice); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerConfig cfg) {
  std::unique_ptr<Server> s(new Server());
  s->cfg_ = std::move(cfg);
  if (s->cfg_.listen.empty()) return absl::InvalidArgumentError("listen: at least one address is required");
  if (!s->cfg_.data_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(s->cfg_.data_dir, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("data_dir ", s->cfg_.data_dir, ": cannot create: ", ec.message()));
    }
  }
  if (!s->cfg_.data_dir.empty()) {
    if (absl::Status locked = LockDataDir(s->cfg_.data_dir, &s->data_dir_lock_); !locked.ok()) return locked;
  }
  if (s->cfg_.max_grading_runs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_grading_runs: must be at least 1, got ", s->cfg_.max_grading_runs));
  }
  if (s->cfg_.auth_tokens.empty()) {
    s->auth_ = std::make_unique<Authenticator>();
  } else {
    absl::StatusOr<std::unique_ptr<Authenticator>> auth = Authenticator::FromFile(s->cfg_.auth_tokens);
    if (!auth.ok()) return auth.status();
    s->auth_ = std::move(*auth);
  }
  if (s->cfg_.max_pcap_exports < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_pcap_exports: must be at least 1, got ", s->cfg_.max_pcap_exports));
  }
  absl::StatusOr<std::unique_ptr<ResultsStore>> results =
      ResultsStore::Open(s->cfg_.data_dir.empty() ? ":memory:" : s->cfg_.data_dir + "/results.db");
  if (!results.ok()) return results.status();
  s->results_ = std::move(*results);
  s->duts_ = std::make_unique<DutRegistry>();
  s->dut_service_ = std::make_unique<DutServiceImpl>(*s->duts_, *s->auth_);
  s->grading_service_ = std::make_unique<GradingServiceImpl>(*s->results_, *s->duts_, s->cfg_.max_grading_runs,
                                                             *s->auth_);
  s->registry_ = std::make_unique<Registry>(s->cfg_.defaults);
  s->sandbox_service_ = std::make_unique<SandboxServiceImpl>(*s->registry_, *s->auth_, s->cfg_.max_pcap_exports);
  s->connection_service_ = std::make_unique<ConnectionServiceImpl>(*s->registry_, *s->auth_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::vector<int> ports(s->cfg_.listen.size(), 0);
  for (size_t i = 0; i < s->cfg_.listen.size(); ++i) {
    const std::string& addr = s->cfg_.listen[i];
    if (absl::StartsWith(addr, "unix:")) {
      // A socket file left by a server that was killed would make the bind fail.
      std::string path = addr.substr(5);
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
    }
    // Insecure transport: tcplabd listens on loopback or a unix socket by default; bearer
    // tokens (--auth_tokens) are checked per call (server/auth.h). TLS belongs to the deployment.
    builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &ports[i]);
  }
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  if (s->auth_->enabled()) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(std::make_unique<AuthInterceptorFactory>(*s->auth_));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  builder.RegisterService(s->sandbox_service_.get());
  builder.RegisterService(s->connection_service_.get());
  builder.RegisterService(s->grading_service_.get());
  builder.RegisterService(s->dut_service_.get());
  s->grpc_ = builder.BuildAndStart();
  if (!s->grpc_) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", absl::StrJoin(s->cfg_.listen, ", "),
                                               " (address in use, or a bad address?)"));
  }
  for (size_t i = 0; i < s->cfg_.listen.size(); ++i) {
    const std::string& addr = s->cfg_.listen[i];
    if (absl::StartsWith(addr, "unix:")) {
      s->addresses_.push_back(addr);
    } else {
      if (ports[i] == 0) {
        return absl::UnavailableError(absl::StrCat("cannot listen on ", addr));
      }
      s->addresses_.push_back(absl::StrCat(addr.substr(0, addr.rfind(':')), ":", ports[i]));
    }
  }
  s->grpc_->GetHealthCheckService()->SetServingStatus(true);
  return s;
}

Server::~Server() { Shutdown(); }

Server::DataDirLock::~DataDirLock() {
  if (fd >= 0) ::close(fd);
}

absl::Status Server::LockDataDir(const std::string& dir, DataDirLock* lock) {
  const std::string path = dir + "/tcplabd.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat("data_dir ", dir, ": cannot open ", path, ": ", strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat("data_dir ", dir, ": cannot lock ", path, ": ", strerror(err)));
    }
    const std::string holder = n > 0 ? std::string(absl::StripAsciiWhitespace(absl::string_view(buf, n))) : "";
    return absl::FailedPreconditionError(absl::StrCat(
        "data_dir ", dir, " is in use by another tcplabd", holder.empty() ? "" : absl::StrCat(" (pid ", holder, ")"),
        "; give each server its own --data_dir"));
  }
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // The pid is only for the message above; the lock is what counts.
  }
  lock->fd = fd;
  return absl::OkStatus();
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (grpc_) {
    grpc_->GetHealthCheckService()->SetServingStatus(false);
    grading_service_->Stop();  // runs end before their next line, stored INTERRUPTED
    duts_->EndAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    // Streams end once they have sent what their sandbox logged, with UNAVAILABLE.
    registry_->DeleteAll(absl::UnavailableError("server shutting down"));
    grpc_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    grpc_->Wait();
  }
  grpc_.reset();                // before the services it serves
  connection_service_.reset();  // waits for Receives still waiting
  grading_service_.reset();     // waits for grading workers (each stops at its next line)
  dut_service_.reset();
  duts_.reset();
  results_.reset();
  registry_.reset();
  // Every stream is done, so every hub's thread ends within a turn of its loop.
  EventHub::WaitForAllThreads(absl::Seconds(5));
  for (const std::string& addr : cfg_.listen) {
    if (absl::StartsWith(addr, "unix:")) ::unlink(addr.substr(5).c_str());
  }
}

void Server::Wait() {
  if (grpc_) grpc_->Wait();
}

}  // namespace tcplab::server
