#include "server/grading_service.h"

#include <linux/capability.h>
#include <openssl/sha.h>

#include <deque>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/grading/engine_target.h"
#include "engine/grading/kernel_target.h"
#include "engine/grading/parser.h"
#include "engine/grading/runner.h"
#include "engine/sandbox/netns.h"
#include "server/status.h"

namespace tcplab::server {

namespace {

std::string Sha256Hex(const std::string& text) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), sizeof d));
}

absl::Status Validate(const v1::RunSuiteRequest& req) {
  if (req.scripts_size() == 0) return absl::InvalidArgumentError("scripts: at least one script is required");
  if (req.scripts_size() > kMaxScriptsPerRun) {
    return absl::InvalidArgumentError(
        absl::StrCat("scripts: ", req.scripts_size(), " scripts, at most ", kMaxScriptsPerRun, " per run"));
  }
  for (int i = 0; i < req.scripts_size(); ++i) {
    const v1::Script& s = req.scripts(i);
    if (s.name().empty() || s.name().size() > kMaxScriptNameBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("scripts[", i, "].name: must be 1 to ", kMaxScriptNameBytes, " octets, got ", s.name().size()));
    }
    if (s.text().size() > kMaxScriptBytes) {
      return absl::InvalidArgumentError(absl::StrCat("scripts[", i, "].text (", s.name(), "): ", s.text().size(),
                                                     " octets, at most ", kMaxScriptBytes));
    }
  }
  if (req.student().size() > kMaxStudentBytes) {
    return absl::InvalidArgumentError(absl::StrCat("student: at most ", kMaxStudentBytes, " octets"));
  }
  if (req.tolerance_usecs() < 0 || req.tolerance_usecs() > 10'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("tolerance_usecs: must be 0 to 10000000 (10 s), got ", req.tolerance_usecs()));
  }
  switch (req.target()) {
    case v1::GRADING_TARGET_ENGINE:
      return absl::OkStatus();
    case v1::GRADING_TARGET_KERNEL:
      if (!sandbox::HaveCapability(CAP_SYS_ADMIN) || !sandbox::HaveCapability(CAP_NET_ADMIN)) {
        return absl::FailedPreconditionError(
            "target GRADING_TARGET_KERNEL needs CAP_SYS_ADMIN and CAP_NET_ADMIN (a network namespace and a TUN), "
            "which tcplabd does not have; run it as root, or grade GRADING_TARGET_ENGINE");
      }
      return absl::OkStatus();
    case v1::GRADING_TARGET_DUT:
      if (req.dut().empty()) return absl::InvalidArgumentError("dut: required with GRADING_TARGET_DUT");
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("target: must be GRADING_TARGET_ENGINE, GRADING_TARGET_KERNEL or GRADING_TARGET_DUT, got ",
                       v1::GradingTarget_Name(req.target()).empty() ? absl::StrCat(int{req.target()})
                                                                    : v1::GradingTarget_Name(req.target())));
  }
}

v1::ScriptResult ToProto(const grading::ScriptResult& r) {
  v1::ScriptResult p;
  p.set_passed(r.passed);
  p.set_line(r.line);
  p.set_error(r.error);
  p.set_expected(r.expected);
  p.set_actual(r.actual);
  for (const grading::FieldDiff& d : r.diffs) {
    v1::FieldDiff* f = p.add_diffs();
    f->set_field(d.field);
    f->set_expected(d.expected);
    f->set_actual(d.actual);
  }
  for (const std::string& t : r.timeline) p.add_timeline(t);
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(r.elapsed).count();
  p.mutable_elapsed()->set_seconds(ns / 1000000000);
  p.mutable_elapsed()->set_nanos(static_cast<int32_t>(ns % 1000000000));
  return p;
}

}  // namespace

// One run: the stream's reactor and the worker that grades. Freed when both are done with it
// (the stream in OnDone, the worker at its end).
class SuiteRun : public grpc::ServerWriteReactor<v1::RunSuiteResponse> {
 public:
  SuiteRun(GradingServiceImpl& svc, v1::RunSuiteRequest req, int64_t id, std::string tenant,
           std::unique_ptr<DutRegistry::Lease> dut)
      : svc_(svc), req_(std::move(req)), id_(id), tenant_(std::move(tenant)), dut_(std::move(dut)) {}

  void StartWorker() {
    std::thread([this] { Work(); }).detach();
  }

  void OnWriteDone(bool ok) override {
    Action a;
    {
      absl::MutexLock l(&mu_);
      writing_ = false;
      if (!ok) Cancel();  // the client is gone
      a = Next();
    }
    Perform(a);
  }
  void OnCancel() override {
    Action a;
    {
      absl::MutexLock l(&mu_);
      Cancel();
      a = Next();
    }
    Perform(a);
  }
  void OnDone() override { Unref(); }

  // The run stops before its next line (server shutdown).
  void Stop() { stop_.store(true); }

 private:
  enum class Action { kNone, kWrite, kFinish };

  void Cancel() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    cancelled_ = true;
    stop_.store(true);
  }

  // Decides the next write or the end under mu_; Perform does it without the lock (gRPC may
  // run OnDone, which can free this run, before Finish returns).
  Action Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finishing_) return Action::kNone;
    if (cancelled_) {
      finishing_ = true;
      final_ = grpc::Status(grpc::StatusCode::CANCELLED, "grading run cancelled");
      return Action::kFinish;
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      return Action::kWrite;
    }
    if (worker_done_) {
      finishing_ = true;
      return Action::kFinish;
    }
    return Action::kNone;
  }
  void Perform(Action a) {
    if (a == Action::kWrite) StartWrite(&current_);
    if (a == Action::kFinish) Finish(final_);
  }

  void Push(v1::RunSuiteResponse r) {
    Action a;
    {
      absl::MutexLock l(&mu_);
      queue_.push_back(std::move(r));
      a = Next();
    }
    Perform(a);
  }
  void End(grpc::Status s) {
    Action a;
    {
      absl::MutexLock l(&mu_);
      worker_done_ = true;
      if (!finishing_) final_ = std::move(s);
      a = Next();
    }
    Perform(a);
  }
  bool cancelled() {
    absl::MutexLock l(&mu_);
    return cancelled_;
  }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  grading::ScriptResult Grade(const v1::Script& script) {
    absl::StatusOr<grading::Script> parsed = grading::ParseScript(script.name(), script.text());
    if (!parsed.ok()) {
      grading::ScriptResult r;
      r.file = script.name();
      r.error = std::string(parsed.status().message());
      return r;
    }
    grading::RunOptions opt;
    if (req_.tolerance_usecs() > 0) {
      opt.tolerance_usecs = req_.tolerance_usecs();
      opt.tolerance_usecs_fixed = true;
    }
    opt.stop = &stop_;
    std::unique_ptr<grading::Target> target;
    if (req_.target() == v1::GRADING_TARGET_KERNEL) {
      absl::StatusOr<std::unique_ptr<grading::KernelTarget>> k = grading::KernelTarget::Create();
      if (!k.ok()) {
        grading::ScriptResult r;
        r.file = script.name();
        r.error = absl::StrCat(script.name(), ": the kernel target could not start: ", k.status().message());
        return r;
      }
      target = std::move(*k);
    } else if (req_.target() == v1::GRADING_TARGET_DUT) {
      auto dut = std::make_unique<DutTarget>(dut_->session(), script.name());
      if (absl::Status s = dut->ready(); !s.ok()) {
        grading::ScriptResult r;
        r.file = script.name();
        r.error = absl::StrCat(script.name(), ": ", s.message());
        return r;
      }
      target = std::move(dut);
    } else {
      target = std::make_unique<grading::EngineTarget>();
    }
    return grading::RunScript(*parsed, *target, opt);
  }

  void Work() {
    v1::RunState state = v1::RUN_STATE_DONE;
    grpc::Status status = grpc::Status::OK;
    const int total = req_.scripts_size();
    for (int i = 0; i < total; ++i) {
      // Shutdown first: its grace period ends by cancelling the streams, which is not the
      // client's doing.
      if (svc_.stopping_.load()) {
        state = v1::RUN_STATE_INTERRUPTED;
        break;
      }
      if (cancelled()) {
        state = v1::RUN_STATE_CANCELLED;
        break;
      }
      grading::ScriptResult r = Grade(req_.scripts(i));
      if (r.stopped) {  // not a verdict: nothing to store for this script
        state = svc_.stopping_.load() ? v1::RUN_STATE_INTERRUPTED : v1::RUN_STATE_CANCELLED;
        break;
      }
      if (dut_ && dut_->session()->detached()) {
        // The DUT went away: what failed is the attachment, not the stack. Not a verdict.
        state = v1::RUN_STATE_INTERRUPTED;
        status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                              absl::StrCat("the DUT \"", req_.dut(), "\" detached during ", req_.scripts(i).name()));
        break;
      }
      v1::ScriptResult p = ToProto(r);
      p.set_name(req_.scripts(i).name());
      p.set_sha256(Sha256Hex(req_.scripts(i).text()));
      if (absl::Status s = svc_.store_.AddResult(id_, i, p); !s.ok()) {
        state = v1::RUN_STATE_INTERRUPTED;
        status = ToGrpc(s);
        break;
      }
      v1::RunSuiteResponse resp;
      resp.set_done(i + 1);
      resp.set_total(total);
      resp.set_run_id(id_);
      *resp.mutable_result() = std::move(p);
      Push(std::move(resp));
    }
    (void)svc_.store_.EndRun(id_, state, absl::Now());
    dut_.reset();  // the DUT is free for the next run
    if (status.ok() && state == v1::RUN_STATE_INTERRUPTED) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down: the grading run was interrupted");
    }
    if (status.ok()) {
      absl::StatusOr<v1::GradingRun> run = svc_.store_.GetRun(id_, /*with_results=*/false, tenant_);
      if (run.ok()) {
        v1::RunSuiteResponse resp;
        resp.set_done(run->passed() + run->failed());
        resp.set_total(total);
        resp.set_run_id(id_);
        *resp.mutable_summary() = std::move(*run);
        Push(std::move(resp));
      } else {
        status = ToGrpc(run.status());
      }
    }
    End(status);
    GradingServiceImpl& svc = svc_;
    {
      absl::MutexLock l(&svc.mu_);
      svc.active_.erase(this);
    }
    Unref();  // may delete this
    absl::MutexLock l(&svc.mu_);
    --svc.running_;
  }

  GradingServiceImpl& svc_;
  const v1::RunSuiteRequest req_;
  const int64_t id_;
  const std::string tenant_;
  std::unique_ptr<DutRegistry::Lease> dut_;  // GRADING_TARGET_DUT: the DUT, lent for the run
  std::atomic<int> refs_{2};  // the stream's and the worker's
  std::atomic<bool> stop_{false};

  absl::Mutex mu_;
  std::deque<v1::RunSuiteResponse> queue_ ABSL_GUARDED_BY(mu_);
  v1::RunSuiteResponse current_;  // the one being written
  grpc::Status final_;  // set under mu_ before finishing_, read after
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool worker_done_ ABSL_GUARDED_BY(mu_) = false;
};

GradingServiceImpl::GradingServiceImpl(ResultsStore& store, DutRegistry& duts, int max_runs,
                                       const Authenticator& auth)
    : store_(store), duts_(duts), max_runs_(max_runs), auth_(auth) {}

GradingServiceImpl::~GradingServiceImpl() {
  Stop();
  absl::MutexLock l(&mu_);
  mu_.Await(absl::Condition(+[](int* n) { return *n == 0; }, &running_));
}

void GradingServiceImpl::Stop() {
  stopping_.store(true);
  absl::MutexLock l(&mu_);
  for (SuiteRun* r : active_) r->Stop();
}

grpc::ServerWriteReactor<v1::RunSuiteResponse>* GradingServiceImpl::RunSuite(grpc::CallbackServerContext* ctx,
                                                                             const v1::RunSuiteRequest* req) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return new FailedWriter<v1::RunSuiteResponse>(tenant.status());
  if (absl::Status s = Validate(*req); !s.ok()) return new FailedWriter<v1::RunSuiteResponse>(s);
  if (stopping_.load()) return new FailedWriter<v1::RunSuiteResponse>(absl::UnavailableError("server shutting down"));
  std::unique_ptr<DutRegistry::Lease> dut;
  if (req->target() == v1::GRADING_TARGET_DUT) {
    absl::StatusOr<std::unique_ptr<DutRegistry::Lease>> lease = duts_.Acquire(req->dut(), *tenant);
    if (!lease.ok()) return new FailedWriter<v1::RunSuiteResponse>(lease.status());
    dut = std::move(*lease);
  }
  {
    absl::MutexLock l(&mu_);
    if (running_ >= max_runs_) {
      return new FailedWriter<v1::RunSuiteResponse>(absl::ResourceExhaustedError(
          absl::StrCat(running_, " grading runs are in progress, the most this server takes (tcplabd "
                                 "--max_grading_runs); try again when one ends")));
    }
    ++running_;
  }
  v1::GradingRun run;
  run.set_student(req->student());
  run.set_target(req->target());
  run.set_requested_by(ctx->peer());
  const absl::Time now = absl::Now();
  run.mutable_started()->set_seconds(absl::ToUnixSeconds(now));
  run.mutable_started()->set_nanos(static_cast<int32_t>(absl::ToUnixNanos(now) % 1000000000));
  run.set_total(req->scripts_size());
  absl::StatusOr<int64_t> id = store_.BeginRun(run, *tenant);
  if (!id.ok()) {
    absl::MutexLock l(&mu_);
    --running_;
    return new FailedWriter<v1::RunSuiteResponse>(id.status());
  }
  auto* r = new SuiteRun(*this, *req, *id, *tenant, std::move(dut));
  {
    absl::MutexLock l(&mu_);
    active_.insert(r);
    if (stopping_.load()) r->Stop();
  }
  r->StartWorker();
  return r;
}

grpc::ServerUnaryReactor* GradingServiceImpl::ListRuns(grpc::CallbackServerContext* ctx, const v1::ListRunsRequest* req,
                                                       v1::ListRunsResponse* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  // With results a run can be large (up to 1,000 results with timelines): fewer at once.
  const int max_limit = req->with_results() ? 100 : 10000;
  if (req->limit() < 0 || req->limit() > max_limit) {
    return FinishUnary(ctx, absl::InvalidArgumentError(absl::StrCat("limit: must be 0 to ", max_limit,
                                                                    req->with_results() ? " with results" : "",
                                                                    ", got ", req->limit())));
  }
  if (req->student().size() > kMaxStudentBytes) {
    return FinishUnary(ctx, absl::InvalidArgumentError(absl::StrCat("student: at most ", kMaxStudentBytes, " octets")));
  }
  absl::StatusOr<std::vector<v1::GradingRun>> runs =
      store_.ListRuns(req->student(), req->with_results(),
                      req->limit() == 0 ? (req->with_results() ? 20 : 100) : req->limit(), *tenant);
  if (runs.ok()) {
    for (v1::GradingRun& r : *runs) *resp->add_runs() = std::move(r);
  }
  return FinishUnary(ctx, runs.status());
}

grpc::ServerUnaryReactor* GradingServiceImpl::GetRun(grpc::CallbackServerContext* ctx, const v1::GetRunRequest* req,
                                                     v1::GradingRun* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  if (req->id() <= 0) {
    return FinishUnary(ctx, absl::InvalidArgumentError(absl::StrCat("id: must be a run id (> 0), got ", req->id())));
  }
  absl::StatusOr<v1::GradingRun> run = store_.GetRun(req->id(), /*with_results=*/true, *tenant);
  if (run.ok()) *resp = std::move(*run);
  return FinishUnary(ctx, run.status());
}

}  // namespace tcplab::server
