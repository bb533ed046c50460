#include "client/cli/grade_format.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace tcplab::cli {

namespace {

// Strips an enum value's prefix: ("RUN_STATE_", "RUN_STATE_DONE") -> "DONE".
std::string Strip(const std::string& prefix, const std::string& name) {
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

// Decodes the UTF-8 sequence at s[i]: its length, with the code point in *cp; 0 if it is not
// a valid sequence (truncated, overlong, a surrogate, beyond U+10FFFF).
size_t DecodeUtf8(absl::string_view s, size_t i, uint32_t* cp) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n = 0;
  uint32_t v = 0, min = 0;
  if ((c & 0xE0) == 0xC0) {
    n = 2, v = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, v = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) return 0;
    v = (v << 6) | (d & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

std::string XmlEscape(absl::string_view s, bool attr) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    switch (cp) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\r': out += "&#13;"; break;  // parsers turn a literal CR into LF
      case '\n': out += attr ? "&#10;" : "\n"; break;
      case '\t': out += attr ? "&#9;" : "\t"; break;
      default:
        // XML 1.0 (§2.2) has no control characters but tab, LF and CR, and no U+FFFE/U+FFFF.
        if (cp < 0x20 || cp == 0xFFFE || cp == 0xFFFF) {
          out += kReplacement;
        } else {
          out.append(s.data() + i, n);
        }
    }
    i += n;
  }
  return out;
}

double Seconds(const google::protobuf::Duration& d) { return static_cast<double>(d.seconds()) + d.nanos() / 1e9; }

// "lifecycle/close_active.pkt" -> ("lifecycle", "close_active.pkt"); no directory: ".".
std::pair<std::string, std::string> SplitPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

std::string GradingTargetName(v1::GradingTarget t) {
  switch (t) {
    case v1::GRADING_TARGET_ENGINE: return "engine";
    case v1::GRADING_TARGET_KERNEL: return "kernel";
    case v1::GRADING_TARGET_DUT: return "dut";
    default: return "-";
  }
}

std::string RunStateName(v1::RunState s) { return Strip("RUN_STATE_", v1::RunState_Name(s)); }

absl::Time TimestampToTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string TimeText(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", TimestampToTime(ts), absl::UTCTimeZone());
}

std::string ProgressLine(int done, int total, const v1::ScriptResult& r) {
  return absl::StrCat("[", done, "/", total, "] ", r.passed() ? "PASS " : "FAIL ", r.name());
}

std::string FailureReport(const v1::ScriptResult& r, const std::string& target) {
  // Keep in step with grading::FormatFailure (engine/grading/runner.cc); cli_grade_test
  // compares the two.
  std::string out = absl::StrCat(r.error(), "\n");
  if (!r.expected().empty() || !r.actual().empty()) {
    absl::StrAppend(&out, "  expected: ", r.expected(), "\n  actual:   ", r.actual(), "\n");
  }
  if (!r.diffs().empty()) {
    size_t w = 5;
    for (const v1::FieldDiff& d : r.diffs()) w = std::max(w, d.field().size());
    absl::StrAppend(&out, absl::StrFormat("  %-*s  %-28s %s\n", static_cast<int>(w), "field", "expected", "actual"));
    for (const v1::FieldDiff& d : r.diffs()) {
      absl::StrAppend(&out,
                      absl::StrFormat("  %-*s  %-28s %s\n", static_cast<int>(w), d.field(), d.expected(), d.actual()));
    }
  }
  absl::StrAppend(&out, "  timeline (", target, "):\n");
  for (const std::string& t : r.timeline()) absl::StrAppend(&out, "    ", t, "\n");
  return out;
}

std::string SummaryLine(const v1::GradingRun& run) {
  std::string how = GradingTargetName(run.target());
  if (!run.student().empty()) absl::StrAppend(&how, ", student ", run.student());
  if (run.state() != v1::RUN_STATE_DONE) absl::StrAppend(&how, ", ", RunStateName(run.state()));
  return absl::StrCat("run ", run.id(), ": ", run.passed(), " passed, ", run.failed(), " failed (", how, ")");
}

std::string RunsTable(const std::vector<v1::GradingRun>& runs) {
  size_t sw = 7;  // "STUDENT"
  for (const v1::GradingRun& r : runs) sw = std::max(sw, r.student().size());
  const int w = static_cast<int>(std::min<size_t>(sw, 40));
  std::string out =
      absl::StrFormat("%-6s %-20s %-*s %-6s %-11s %s\n", "ID", "STARTED", w, "STUDENT", "TARGET", "STATE", "PASSED");
  for (const v1::GradingRun& r : runs) {
    absl::StrAppendFormat(&out, "%-6d %-20s %-*s %-6s %-11s %d/%d\n", r.id(), TimeText(r.started()), w,
                          r.student().empty() ? "-" : r.student(), GradingTargetName(r.target()),
                          RunStateName(r.state()), r.passed(), r.total());
  }
  return out;
}

std::string RunDetails(const v1::GradingRun& run) {
  std::string out;
  auto add = [&out](const std::string& k, const std::string& v) { absl::StrAppendFormat(&out, "%-13s %s\n", k + ":", v); };
  add("run", absl::StrCat(run.id()));
  add("student", run.student().empty() ? "-" : run.student());
  add("target", GradingTargetName(run.target()));
  add("state", RunStateName(run.state()));
  add("started", TimeText(run.started()));
  add("finished", TimeText(run.finished()));
  add("requested by", run.requested_by());
  add("passed", absl::StrCat(run.passed(), " of ", run.total(), " (", run.failed(), " failed, ",
                             run.total() - run.passed() - run.failed(), " not run)"));
  if (!run.results().empty()) out += "\n";
  const std::string target = GradingTargetName(run.target());
  for (int i = 0; i < run.results_size(); ++i) {
    const v1::ScriptResult& r = run.results(i);
    absl::StrAppend(&out, ProgressLine(i + 1, run.total(), r), "\n");
    if (!r.passed()) out += FailureReport(r, target);
  }
  return out;
}

std::string CsvField(absl::string_view s) {
  if (s.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string CsvRows(const v1::GradingRun& run) {
  std::vector<std::string> common = {absl::StrCat(run.id()), TimeText(run.started()), run.student(),
                                     GradingTargetName(run.target()), RunStateName(run.state())};
  auto row = [&common](std::vector<std::string> rest) {
    std::vector<std::string> fields = common;
    fields.insert(fields.end(), rest.begin(), rest.end());
    std::string line;
    for (size_t i = 0; i < fields.size(); ++i) absl::StrAppend(&line, i ? "," : "", CsvField(fields[i]));
    return line + "\r\n";
  };
  if (run.results().empty()) return row({"", "", "", "", ""});
  std::string out;
  for (const v1::ScriptResult& r : run.results()) {
    out += row({r.name(), r.sha256(), r.passed() ? "1" : "0", r.line() ? absl::StrCat(r.line()) : "", r.error()});
  }
  return out;
}

std::string JUnitXml(const JUnitInput& in) {
  const int tests = static_cast<int>(in.scripts.size());
  int failures = 0;
  double elapsed = 0;
  for (const v1::ScriptResult& r : in.results) {
    if (!r.passed()) ++failures;
    elapsed += Seconds(r.elapsed());
  }
  const int errors = tests - static_cast<int>(in.results.size());
  // The run's own duration when the server reported it; else the scripts' (target clock).
  double time = elapsed;
  if (in.run.has_finished() && in.run.has_started()) {
    time = absl::ToDoubleSeconds(TimestampToTime(in.run.finished()) - TimestampToTime(in.run.started()));
  }
  const std::string suite = absl::StrCat("tcplab grade (", in.target, ")");
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  absl::StrAppendFormat(&out, "<testsuites name=\"tcplab grade\" tests=\"%d\" failures=\"%d\" errors=\"%d\" time=\"%.3f\">\n",
                        tests, failures, errors, time);
  absl::StrAppendFormat(&out,
                        "  <testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"0\" "
                        "time=\"%.3f\" timestamp=\"%s\">\n",
                        XmlAttr(suite), tests, failures, errors, time,
                        absl::FormatTime("%Y-%m-%dT%H:%M:%S", in.started, absl::UTCTimeZone()));
  out += "    <properties>\n";
  auto prop = [&out](const std::string& name, const std::string& value) {
    absl::StrAppend(&out, "      <property name=\"", XmlAttr(name), "\" value=\"", XmlAttr(value), "\"/>\n");
  };
  if (in.run.id() > 0) prop("run_id", absl::StrCat(in.run.id()));
  prop("target", in.target);
  prop("student", in.student);
  if (in.run.id() > 0) prop("state", RunStateName(in.run.state()));
  out += "    </properties>\n";
  for (int i = 0; i < tests; ++i) {
    const auto [dir, file] = SplitPath(in.scripts[i]);
    const bool ran = i < static_cast<int>(in.results.size());
    absl::StrAppendFormat(&out, "    <testcase classname=\"%s\" name=\"%s\" time=\"%.3f\"", XmlAttr(dir), XmlAttr(file),
                          ran ? Seconds(in.results[i].elapsed()) : 0.0);
    if (!ran) {
      absl::StrAppend(&out, ">\n      <error message=\"", XmlAttr(absl::StrCat("not run: ", in.not_run)),
                      "\" type=\"not run\"/>\n    </testcase>\n");
    } else if (in.results[i].passed()) {
      out += "/>\n";
    } else {
      const v1::ScriptResult& r = in.results[i];
      absl::StrAppend(&out, ">\n      <failure message=\"", XmlAttr(r.error()), "\" type=\"FAIL\">",
                      XmlText(FailureReport(r, in.target)), "</failure>\n    </testcase>\n");
    }
  }
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

std::string XmlText(absl::string_view s) { return XmlEscape(s, false); }
std::string XmlAttr(absl::string_view s) { return XmlEscape(s, true); }

size_t InvalidUtf8At(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) return i;
    i += n;
  }
  return absl::string_view::npos;
}

}  // namespace tcplab::cli
