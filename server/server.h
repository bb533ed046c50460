// tcplabd as a library: the gRPC server with its services, health and reflection, started
// on one or more addresses. main.cc and the tests both use it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/auth.h"
#include "server/grading_service.h"
#include "server/registry.h"
#include "server/results_store.h"
#include "server/services.h"

namespace tcplab::server {

// The nice value tcplabd's own threads (gRPC, event hubs) run at, inherited by every thread
// they start: below the sandboxes' reactors (kReactorNice), so that watching traffic never
// takes the CPU the traffic itself needs. Applied by LowerServerPriority() on the calling
// thread before Server::Start.
inline constexpr int kServerNice = 5;
void LowerServerPriority();

struct ServerConfig {
  // "127.0.0.1:50051", "[::1]:0" (port 0 picks one), "unix:/run/tcplab.sock".
  std::vector<std::string> listen = {"127.0.0.1:50051"};
  SandboxDefaults defaults;
  // Where the grading results database (results.db) lives; created if missing. Empty: an
  // in-memory database, gone when the server stops (tests).
  std::string data_dir;
  int max_grading_runs = 2;  // grading runs at a time (each may hold a namespace for a minute)
  // A token file (server/auth.h): every call but health needs "authorization: Bearer TOKEN",
  // and sandboxes, runs and DUTs are per tenant. Empty: no authentication, one anonymous tenant.
  std::string auth_tokens;
  int max_pcap_exports = kDefaultMaxPcapExports;  // ExportPcap streams at a time (each holds a capture copy)
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerConfig cfg);
  ~Server();  // Shutdown() if not done

  // The addresses as bound: a TCP port 0 is replaced by the port picked.
  const std::vector<std::string>& addresses() const { return addresses_; }
  Registry& registry() { return *registry_; }
  ResultsStore& results() { return *results_; }

  // Graceful: health goes NOT_SERVING, new calls are refused, event streams end with
  // UNAVAILABLE, calls in progress get `grace` to finish, then every sandbox is removed.
  void Shutdown(absl::Duration grace = absl::Seconds(2));
  void Wait();

 private:
  Server() = default;
  // flock(2) on <data_dir>/tcplabd.lock, held for the server's life (first member: released
  // last). Two servers on one data directory would each take the other's running grading
  // runs for a dead server's and store them INTERRUPTED. The kernel drops the lock when the
  // process dies, kill -9 included.
  struct DataDirLock {
    int fd = -1;
    DataDirLock() = default;
    DataDirLock(const DataDirLock&) = delete;
    DataDirLock& operator=(const DataDirLock&) = delete;
    ~DataDirLock();
  };
  static absl::Status LockDataDir(const std::string& dir, DataDirLock* lock);
  DataDirLock data_dir_lock_;
  ServerConfig cfg_;
  std::unique_ptr<Authenticator> auth_;  // outlives grpc_ (the interceptor and handlers use it)
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<SandboxServiceImpl> sandbox_service_;
  std::unique_ptr<ConnectionServiceImpl> connection_service_;
  std::unique_ptr<ResultsStore> results_;
  std::unique_ptr<GradingServiceImpl> grading_service_;
  std::unique_ptr<DutRegistry> duts_;
  std::unique_ptr<DutServiceImpl> dut_service_;
  std::unique_ptr<grpc::Server> grpc_;
  std::vector<std::string> addresses_;
  bool shut_down_ = false;
};

}  // namespace tcplab::server
