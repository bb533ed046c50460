// The grading commands: `grade SCRIPT...` (GradingService.RunSuite, progress as results
// arrive, JUnit XML) and `grade results` (ListRuns/GetRun: a table, a CSV gradebook, JSON).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cli/commands.h"
#include "client/cli/format.h"
#include "client/cli/grade_format.h"

namespace tcplab::cli {

namespace {

// What the server takes (GradingService: Script.text at most 1 MiB).
constexpr size_t kMaxScriptBytes = 1u << 20;

absl::StatusOr<v1::GradingTarget> ParseTarget(const Args& a) {
  if (!a.Has("--target")) return absl::InvalidArgumentError("grade: --target is required: engine, kernel or dut");
  const std::string t = a.Get("--target");
  if (t == "engine") return v1::GRADING_TARGET_ENGINE;
  if (t == "kernel") return v1::GRADING_TARGET_KERNEL;
  if (t == "dut") return v1::GRADING_TARGET_DUT;
  return absl::InvalidArgumentError(absl::StrCat("--target must be engine, kernel or dut, got \"", t, "\""));
}

// The whole file, or a message naming the path (and the OS's reason).
absl::StatusOr<std::string> ReadScript(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  std::string text;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() <= kMaxScriptBytes) text.append(buf, n);
  const int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(err)));
  if (text.size() > kMaxScriptBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": larger than ", kMaxScriptBytes, " octets, the most a grading script may be"));
  }
  // Script names and texts are proto3 strings, which must be UTF-8.
  if (size_t at = InvalidUtf8At(text); at != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not UTF-8 text (invalid byte at offset ", at, ")"));
  }
  if (InvalidUtf8At(path) != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("script path \"", path, "\" is not UTF-8; rename the file"));
  }
  return text;
}

// Writes `data` to `path` atomically: a temporary file beside it, flushed to disk, renamed over.
absl::Status WriteAtomically(const std::string& path, const std::string& data) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  size_t off = 0;
  int err = 0;
  while (off < data.size()) {
    const ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      err = errno;
      break;
    }
    off += static_cast<size_t>(w);
  }
  if (!err && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  if (!err && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err) {
    std::remove(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

// Before a run that may take minutes: can the report be written where it is asked for?
absl::Status CheckWritable(const std::string& path) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 && errno != EEXIST) return absl::InvalidArgumentError(absl::StrCat("--junit: cannot write ", tmp, ": ", std::strerror(errno)));
  if (fd >= 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
  }
  return absl::OkStatus();
}

void Flush(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);  // progress is read as it happens
}

}  // namespace

int RunGrade(Client& c, const Args& a) {
  absl::StatusOr<v1::GradingTarget> target = ParseTarget(a);
  if (!target.ok()) return Usage(target.status());
  if (a.Has("--dut") && *target != v1::GRADING_TARGET_DUT) {
    return UsageError("--dut names the DUT graded with --target dut; it cannot be used with another target");
  }
  absl::StatusOr<uint64_t> tolerance = a.GetUint("--tolerance-usecs", 0, 0, 3600000000ull);
  if (!tolerance.ok()) return Usage(tolerance.status());
  const std::string junit = a.Get("--junit");
  if (a.Has("--junit") && junit.empty()) return UsageError("--junit needs a file name");

  v1::RunSuiteRequest req;
  req.set_target(*target);
  req.set_dut(a.Get("--dut"));
  req.set_student(a.Get("--student"));
  req.set_tolerance_usecs(static_cast<int64_t>(*tolerance));
  JUnitInput report;
  report.target = GradingTargetName(*target);
  report.student = req.student();
  for (const std::string& path : a.positional()) {
    absl::StatusOr<std::string> text = ReadScript(path);
    if (!text.ok()) {
      std::fprintf(stderr, "tcplab: grade: %s\n", std::string(text.status().message()).c_str());
      return kExitUsage;
    }
    v1::Script* s = req.add_scripts();
    s->set_name(path);  // as given: results and gradebooks show what the user typed
    s->set_text(std::move(*text));
    report.scripts.push_back(path);
  }
  if (!junit.empty()) {
    if (absl::Status s = CheckWritable(junit); !s.ok()) return Usage(s);
  }

  // Runs against the kernel take real time (a TIME-WAIT script a minute): no deadline.
  auto ctx = c.Context(absl::InfiniteDuration());
  report.started = absl::Now();
  std::unique_ptr<grpc::ClientReader<v1::RunSuiteResponse>> reader = c.grading().RunSuite(ctx.get(), req);
  v1::RunSuiteResponse resp;
  bool have_summary = false;
  while (reader->Read(&resp)) {
    if (c.json()) Flush(ToJson(resp) + "\n");
    if (resp.has_result()) {
      const v1::ScriptResult& r = resp.result();
      if (!c.json()) {
        std::string out = ProgressLine(resp.done(), resp.total(), r) + "\n";
        if (!r.passed()) out += FailureReport(r, report.target);
        Flush(out);
      }
      report.results.push_back(r);
    } else if (resp.has_summary()) {
      report.run = resp.summary();
      have_summary = true;
    }
  }
  grpc::Status s = reader->Finish();
  int code = kExitOk;
  if (!s.ok()) {
    code = c.Fail(s, *ctx);
    report.not_run = absl::StrCat(CodeName(s.error_code()), ": ", s.error_message());
  } else if (!have_summary) {
    std::fprintf(stderr, "tcplab: grade: the server ended the run without a summary\n");
    report.not_run = "the server ended the run without a summary";
    code = kExitServer;
  } else {
    if (!c.json()) Flush(SummaryLine(report.run) + "\n");
    report.not_run = absl::StrCat("the run ended ", RunStateName(report.run.state()));
    const bool all_passed = report.run.failed() == 0 && static_cast<int>(report.results.size()) == req.scripts_size();
    code = all_passed ? kExitOk : kExitServer;
  }
  for (const v1::ScriptResult& r : report.results) {
    if (!r.passed()) code = kExitServer;
  }
  if (!junit.empty()) {
    if (absl::Status w = WriteAtomically(junit, JUnitXml(report)); !w.ok()) {
      std::fprintf(stderr, "tcplab: --junit: %s\n", std::string(w.message()).c_str());
      code = kExitServer;
    }
  }
  return code;
}

int RunGradeResults(Client& c, const Args& a) {
  const bool csv = a.Has("--csv");
  if (csv && c.json()) return UsageError("grade results: --csv and --json are two formats; pick one");
  absl::StatusOr<uint64_t> run_id = a.GetUint("--run", 0, 1, INT64_MAX);
  if (!run_id.ok()) return Usage(run_id.status());
  absl::StatusOr<uint64_t> limit = a.GetUint("--limit", 0, 1, 10000);
  if (!limit.ok()) return Usage(limit.status());
  if (a.Has("--run") && (a.Has("--student") || a.Has("--limit"))) {
    return UsageError("grade results --run ID shows one run; --student and --limit filter the list of runs");
  }

  std::vector<v1::GradingRun> runs;
  if (a.Has("--run")) {
    v1::GetRunRequest req;
    req.set_id(static_cast<int64_t>(*run_id));
    v1::GradingRun run;
    auto ctx = c.Context();
    grpc::Status s = c.grading().GetRun(ctx.get(), req, &run);
    if (!s.ok()) return c.Fail(s, *ctx);
    runs.push_back(std::move(run));
  } else {
    v1::ListRunsRequest req;
    req.set_student(a.Get("--student"));
    req.set_with_results(csv);
    req.set_limit(static_cast<int32_t>(*limit));
    v1::ListRunsResponse resp;
    auto ctx = c.Context();
    grpc::Status s = c.grading().ListRuns(ctx.get(), req, &resp);
    if (!s.ok()) return c.Fail(s, *ctx);
    for (v1::GradingRun& r : *resp.mutable_runs()) runs.push_back(std::move(r));
  }

  std::string out;
  if (csv) {
    out = absl::StrCat(kCsvHeader, "\r\n");
    for (const v1::GradingRun& r : runs) out += CsvRows(r);
  } else if (c.json()) {
    for (const v1::GradingRun& r : runs) absl::StrAppend(&out, ToJson(r), "\n");
  } else if (a.Has("--run")) {
    out = RunDetails(runs[0]);
  } else {
    out = RunsTable(runs);
  }
  Flush(out);
  return kExitOk;
}

}  // namespace tcplab::cli
