// Output of `tcplab grade`: progress lines, failure reports, the summary, the runs table,
// the CSV gradebook and JUnit XML. Pure functions of the GradingService messages.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tcplab/v1/grading.pb.h"

namespace tcplab::cli {

namespace v1 = ::tcplab::v1;

std::string GradingTargetName(v1::GradingTarget t);  // "engine", "kernel", "dut"
std::string RunStateName(v1::RunState s);            // "DONE", "INTERRUPTED", ...
absl::Time TimestampToTime(const google::protobuf::Timestamp& ts);
std::string TimeText(const google::protobuf::Timestamp& ts);  // "2024-05-01T12:00:00Z" (UTC), "-" unset

// "[3/12] PASS lifecycle/close_active.pkt"
std::string ProgressLine(int done, int total, const v1::ScriptResult& r);
// A failure as engine/grading/runner.cc's FormatFailure writes it (so tcplab-script and the
// server read the same): the error line; expected and actual; the field table; the timeline.
std::string FailureReport(const v1::ScriptResult& r, const std::string& target);
// "run 17: 11 passed, 1 failed (kernel, student s042)"; the state is added unless DONE.
std::string SummaryLine(const v1::GradingRun& run);

// grade results: one line per run under a header.
std::string RunsTable(const std::vector<v1::GradingRun>& runs);
// grade results --run ID: the run, then each result as its progress line (and report).
std::string RunDetails(const v1::GradingRun& run);

// The gradebook: kCsvHeader, then one row per script result (a run without results gets one
// row with the script columns empty). RFC 4180: CRLF line ends, fields with a comma, quote,
// CR or LF quoted, quotes doubled.
inline constexpr char kCsvHeader[] = "run_id,started,student,target,state,script,sha256,passed,line,error";
std::string CsvRows(const v1::GradingRun& run);
std::string CsvField(absl::string_view s);

// JUnit XML (the Ant/Jenkins schema GitLab reads as well) for one run. `scripts` are the
// names asked for, in order; `results[i]` is the result of scripts[i] (fewer if the run
// ended early). Scripts without a result are errors carrying `not_run` (the reason, e.g.
// "UNAVAILABLE: server shutting down"). `run` is the summary if one arrived (else id 0).
struct JUnitInput {
  std::string target;
  std::string student;
  std::vector<std::string> scripts;
  std::vector<v1::ScriptResult> results;
  v1::GradingRun run;
  std::string not_run;
  absl::Time started;  // when the client asked
};
std::string JUnitXml(const JUnitInput& in);
// XML character data (XmlText) or an attribute value (XmlAttr): & < > " ' escaped, CR (and in
// an attribute also tab and LF, which parsers would turn into blanks) as character references,
// other control characters and invalid UTF-8 replaced by U+FFFD (XML 1.0 cannot carry them).
std::string XmlText(absl::string_view s);
std::string XmlAttr(absl::string_view s);

// The byte offset of the first invalid UTF-8 sequence, or npos.
size_t InvalidUtf8At(absl::string_view s);

}  // namespace tcplab::cli
