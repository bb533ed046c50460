// GradingService: runs grading scripts (engine/grading) against a target and stores every
// run and result in the ResultsStore.
//
// A run is a worker thread of its own (scripts against the kernel run in real time, and a
// TIME-WAIT script takes a minute) feeding a server stream. Each script's result is stored
// before it is streamed, so a result a client saw is on disk. The worker holds the stream
// alive until it ends; a client that goes away cancels the run after the line in progress.
// At shutdown, runs stop before their next line and are stored INTERRUPTED.
#pragma once

#include <atomic>
#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "server/auth.h"
#include "server/dut_service.h"
#include "server/results_store.h"
#include "tcplab/v1/grading.grpc.pb.h"

namespace tcplab::server {

class SuiteRun;

inline constexpr int kMaxScriptsPerRun = 1000;
inline constexpr size_t kMaxScriptBytes = 1u << 20;
inline constexpr size_t kMaxStudentBytes = 128;
inline constexpr size_t kMaxScriptNameBytes = 256;

class GradingServiceImpl final : public v1::GradingService::CallbackService {
 public:
  // At most `max_runs` runs at a time; more are refused with RESOURCE_EXHAUSTED.
  // Runs are stored with the caller's tenant and shown only to it (server/auth.h).
  GradingServiceImpl(ResultsStore& store, DutRegistry& duts, int max_runs, const Authenticator& auth);
  ~GradingServiceImpl() override;  // Stop(), then waits for the workers

  // Runs in progress stop before their next line; their streams end with UNAVAILABLE.
  void Stop();

  grpc::ServerWriteReactor<v1::RunSuiteResponse>* RunSuite(grpc::CallbackServerContext* ctx,
                                                           const v1::RunSuiteRequest* req) override;
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* ctx, const v1::ListRunsRequest* req,
                                     v1::ListRunsResponse* resp) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* ctx, const v1::GetRunRequest* req,
                                   v1::GradingRun* resp) override;

 private:
  friend class SuiteRun;
  ResultsStore& store_;
  DutRegistry& duts_;
  const int max_runs_;
  const Authenticator& auth_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // workers alive
  absl::flat_hash_set<SuiteRun*> active_ ABSL_GUARDED_BY(mu_);  // to stop at shutdown
};

}  // namespace tcplab::server
