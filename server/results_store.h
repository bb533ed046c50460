// ResultsStore: grading runs and their per-script results, durably, in SQLite (one file in
// the server's data directory).
//
// Durability is per script: every result is its own transaction, committed with
// synchronous=FULL in WAL mode, so once AddResult returns the result survives a kill -9 or a
// power cut. A run is written RUNNING when it starts and gets its final state when it ends;
// Open() marks runs an earlier process left RUNNING as INTERRUPTED (that process died in the
// middle), keeping every result they stored.
//
// Runs belong to a tenant (server/auth.h): the `tenant` column, "" for the anonymous tenant
// (no authentication) and for runs stored before the column existed (Open adds it). Reads
// see only the given tenant's runs; another tenant's run id is NOT_FOUND like an unknown id.
//
// Thread-safe: one connection, calls serialized by a mutex (grading runs write a few rows a
// second; readers are gradebook exports).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tcplab/v1/grading.pb.h"

struct sqlite3;

namespace tcplab::server {

class ResultsStore {
 public:
  // Opens or creates the database at `path`. Errors name the path and SQLite's message.
  static absl::StatusOr<std::unique_ptr<ResultsStore>> Open(const std::string& path);
  ~ResultsStore();
  ResultsStore(const ResultsStore&) = delete;
  ResultsStore& operator=(const ResultsStore&) = delete;

  // Runs an earlier process left RUNNING, marked INTERRUPTED by Open().
  int interrupted_at_open() const { return interrupted_at_open_; }

  // Stores a new RUNNING run (student, target, requested_by, started, total) and returns its id.
  absl::StatusOr<int64_t> BeginRun(const v1::GradingRun& run, const std::string& tenant = "") ABSL_LOCKS_EXCLUDED(mu_);
  // Stores the result of the `index`-th script (0-based) of `run`; durable on return.
  absl::Status AddResult(int64_t run, int index, const v1::ScriptResult& result) ABSL_LOCKS_EXCLUDED(mu_);
  // The run's final state.
  absl::Status EndRun(int64_t run, v1::RunState state, absl::Time finished) ABSL_LOCKS_EXCLUDED(mu_);

  // NOT_FOUND naming the id if the tenant has no such run.
  absl::StatusOr<v1::GradingRun> GetRun(int64_t id, bool with_results, const std::string& tenant = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  // The tenant's runs, newest first; `student` empty for all.
  absl::StatusOr<std::vector<v1::GradingRun>> ListRuns(const std::string& student, bool with_results, int limit,
                                                       const std::string& tenant = "") ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit ResultsStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(const char* what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadResults(v1::GradingRun& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<v1::GradingRun>> Query(const std::string& where, const std::string& tenant, int64_t arg_id,
                                                    const std::string& arg_text, bool with_results, int limit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  int interrupted_at_open_ = 0;
};

}  // namespace tcplab::server
