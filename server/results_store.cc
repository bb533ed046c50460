#include "server/results_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/status.h"

namespace tcplab::server {

namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS runs (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  student      TEXT NOT NULL,
  target       INTEGER NOT NULL,
  requested_by TEXT NOT NULL,
  started_us   INTEGER NOT NULL,
  finished_us  INTEGER,
  state        INTEGER NOT NULL,
  total        INTEGER NOT NULL,
  tenant       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_by_student ON runs (student, id);
CREATE TABLE IF NOT EXISTS results (
  run_id  INTEGER NOT NULL REFERENCES runs (id),
  idx     INTEGER NOT NULL,
  name    TEXT NOT NULL,
  passed  INTEGER NOT NULL,
  detail  BLOB NOT NULL,  -- the whole v1.ScriptResult, serialized
  PRIMARY KEY (run_id, idx)
);
)sql";

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return s_; }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void Bind(int i, const std::string& v) { sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void BindBlob(int i, const std::string& v) { sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  int Step() { return sqlite3_step(s_); }
  int64_t Int(int col) { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string Text(int col) {
    const unsigned char* t = sqlite3_column_text(s_, col);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_, col)) : std::string();
  }
  std::string Blob(int col) {
    const void* b = sqlite3_column_blob(s_, col);
    return b ? std::string(static_cast<const char*>(b), sqlite3_column_bytes(s_, col)) : std::string();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

void SetTime(google::protobuf::Timestamp* ts, int64_t us) {
  ts->set_seconds(us / 1000000);
  ts->set_nanos(static_cast<int32_t>(us % 1000000) * 1000);
}

int64_t FromProto(const google::protobuf::Timestamp& ts) { return ts.seconds() * 1000000 + ts.nanos() / 1000; }

}  // namespace

absl::StatusOr<std::unique_ptr<ResultsStore>> ResultsStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("results database ", path, ": ", msg));
  }
  std::unique_ptr<ResultsStore> s(new ResultsStore(db));
  absl::MutexLock l(&s->mu_);
  sqlite3_busy_timeout(db, 5000);
  // WAL with synchronous=FULL: each commit is on disk when it returns.
  for (const char* sql : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", "PRAGMA foreign_keys=ON;", kSchema}) {
    if (absl::Status st = s->Exec(sql); !st.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("results database ", path, ": ", st.message()));
    }
  }
  if (absl::Status st = s->Migrate(); !st.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("results database ", path, ": ", st.message()));
  }
  Stmt mark(db, "UPDATE runs SET state = ?, finished_us = ? WHERE state = ?");
  if (!mark.ok()) return s->Error("marking interrupted runs");
  mark.Bind(1, v1::RUN_STATE_INTERRUPTED);
  mark.Bind(2, Micros(absl::Now()));
  mark.Bind(3, v1::RUN_STATE_RUNNING);
  if (mark.Step() != SQLITE_DONE) return s->Error("marking interrupted runs");
  s->interrupted_at_open_ = sqlite3_changes(db);
  return s;
}

ResultsStore::~ResultsStore() {
  absl::MutexLock l(&mu_);
  sqlite3_close(db_);
}

absl::Status ResultsStore::Migrate() {
  // A database of a tcplabd without tenants: add the column; its runs are the anonymous
  // tenant's (the DEFAULT). The index is made here, once the column surely exists.
  int rc;
  {
    Stmt cols(db_, "SELECT 1 FROM pragma_table_info('runs') WHERE name = 'tenant'");
    if (!cols.ok()) return Error("reading the schema");
    rc = cols.Step();
  }  // finalized before the ALTER
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("reading the schema");
  if (rc == SQLITE_DONE) {
    TCPLAB_RETURN_IF_ERROR(Exec("ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';"));
  }
  return Exec("CREATE INDEX IF NOT EXISTS runs_by_tenant ON runs (tenant, id);");
}

absl::Status ResultsStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(err ? err : "sqlite3_exec failed");
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::Status ResultsStore::Error(const char* what) {
  return absl::InternalError(absl::StrCat("results database: ", what, ": ", sqlite3_errmsg(db_)));
}

absl::StatusOr<int64_t> ResultsStore::BeginRun(const v1::GradingRun& run, const std::string& tenant) {
  absl::MutexLock l(&mu_);
  Stmt s(db_,
         "INSERT INTO runs (student, target, requested_by, started_us, state, total, tenant) "
         "VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!s.ok()) return Error("storing a new run");
  s.Bind(1, run.student());
  s.Bind(2, run.target());
  s.Bind(3, run.requested_by());
  s.Bind(4, FromProto(run.started()));
  s.Bind(5, v1::RUN_STATE_RUNNING);
  s.Bind(6, run.total());
  s.Bind(7, tenant);
  if (s.Step() != SQLITE_DONE) return Error("storing a new run");
  return sqlite3_last_insert_rowid(db_);
}

absl::Status ResultsStore::AddResult(int64_t run, int index, const v1::ScriptResult& result) {
  absl::MutexLock l(&mu_);
  Stmt s(db_, "INSERT INTO results (run_id, idx, name, passed, detail) VALUES (?, ?, ?, ?, ?)");
  if (!s.ok()) return Error("storing a result");
  s.Bind(1, run);
  s.Bind(2, index);
  s.Bind(3, result.name());
  s.Bind(4, result.passed() ? 1 : 0);
  s.BindBlob(5, result.SerializeAsString());
  if (s.Step() != SQLITE_DONE) return Error("storing a result");
  return absl::OkStatus();
}

absl::Status ResultsStore::EndRun(int64_t run, v1::RunState state, absl::Time finished) {
  absl::MutexLock l(&mu_);
  Stmt s(db_, "UPDATE runs SET state = ?, finished_us = ? WHERE id = ?");
  if (!s.ok()) return Error("ending a run");
  s.Bind(1, state);
  s.Bind(2, Micros(finished));
  s.Bind(3, run);
  if (s.Step() != SQLITE_DONE) return Error("ending a run");
  return absl::OkStatus();
}

absl::Status ResultsStore::LoadResults(v1::GradingRun& run) {
  Stmt s(db_, "SELECT detail FROM results WHERE run_id = ? ORDER BY idx");
  if (!s.ok()) return Error("reading results");
  s.Bind(1, run.id());
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    if (!run.add_results()->ParseFromString(s.Blob(0))) {
      return absl::DataLossError(absl::StrCat("results database: a result of run ", run.id(), " does not parse"));
    }
  }
  if (rc != SQLITE_DONE) return Error("reading results");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::GradingRun>> ResultsStore::Query(const std::string& where, const std::string& tenant,
                                                               int64_t arg_id, const std::string& arg_text,
                                                               bool with_results, int limit) {
  const std::string sql = absl::StrCat(
      "SELECT r.id, r.student, r.target, r.requested_by, r.started_us, r.finished_us, r.state, r.total, "
      "(SELECT COUNT(*) FROM results x WHERE x.run_id = r.id AND x.passed = 1), "
      "(SELECT COUNT(*) FROM results x WHERE x.run_id = r.id AND x.passed = 0) "
      "FROM runs r WHERE r.tenant = ? ",
      where, " ORDER BY r.id DESC LIMIT ?");
  Stmt s(db_, sql.c_str());
  if (!s.ok()) return Error("reading runs");
  int i = 1;
  s.Bind(i++, tenant);
  if (where.find("r.id = ?") != std::string::npos) s.Bind(i++, arg_id);
  if (where.find("r.student = ?") != std::string::npos) s.Bind(i++, arg_text);
  s.Bind(i, limit);
  std::vector<v1::GradingRun> runs;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    v1::GradingRun r;
    r.set_id(s.Int(0));
    r.set_student(s.Text(1));
    r.set_target(static_cast<v1::GradingTarget>(s.Int(2)));
    r.set_requested_by(s.Text(3));
    SetTime(r.mutable_started(), s.Int(4));
    if (!s.IsNull(5)) SetTime(r.mutable_finished(), s.Int(5));
    r.set_state(static_cast<v1::RunState>(s.Int(6)));
    r.set_total(static_cast<int32_t>(s.Int(7)));
    r.set_passed(static_cast<int32_t>(s.Int(8)));
    r.set_failed(static_cast<int32_t>(s.Int(9)));
    runs.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error("reading runs");
  if (with_results) {
    for (v1::GradingRun& r : runs) {
      if (absl::Status st = LoadResults(r); !st.ok()) return st;
    }
  }
  return runs;
}

absl::StatusOr<v1::GradingRun> ResultsStore::GetRun(int64_t id, bool with_results, const std::string& tenant) {
  absl::MutexLock l(&mu_);
  absl::StatusOr<std::vector<v1::GradingRun>> runs = Query("AND r.id = ?", tenant, id, "", with_results, 1);
  if (!runs.ok()) return runs.status();
  if (runs->empty()) return absl::NotFoundError(absl::StrCat("grading run ", id, " not found"));
  return std::move(runs->front());
}

absl::StatusOr<std::vector<v1::GradingRun>> ResultsStore::ListRuns(const std::string& student, bool with_results,
                                                                  int limit, const std::string& tenant) {
  absl::MutexLock l(&mu_);
  return Query(student.empty() ? "" : "AND r.student = ?", tenant, 0, student, with_results, limit);
}

}  // namespace tcplab::server
