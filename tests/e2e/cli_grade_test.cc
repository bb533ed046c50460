// `tcplab grade` and `tcplab grade results` against a real tcplabd: progress lines, failure
// reports, the summary, JUnit XML (read back with python3's xml.etree), the CSV gradebook
// (read back with python3's csv), usage and server errors, and a run that survives its
// server being killed with SIGKILL. Tests on the kernel target skip unless run as root.
#include <dirent.h>
#include <sys/stat.h>

#include <map>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "google/protobuf/struct.pb.h"
#include "tcplab/v1/grading.pb.h"
#include "tests/e2e/e2e_testing.h"

namespace tcplab::e2e {
namespace {

constexpr char kPython[] = "/usr/bin/python3";

// The four lifecycle scripts every target passes (the directory may hold more).
const std::vector<std::string> kLifecycle = {"lifecycle/close_active.pkt", "lifecycle/close_passive.pkt",
                                             "lifecycle/handshake_active.pkt", "lifecycle/handshake_passive.pkt"};

// handshake_passive.pkt with the SYN+ACK (line 8) acknowledging 2: the stack acknowledges the
// SYN with relative 1, so the script must fail on the ack field.
constexpr char kWrongScript[] = R"(// Deliberately wrong: a SYN+ACK acknowledges x+1, relative 1, not 2.
--tolerance_usecs=10000
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0   setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   < S 0:0(0) win 65535 <mss 1460>
+0   > S. 0:0(0) ack 2 <mss 1460>
+.1  < . 1:1(0) ack 1 win 65535
+0   accept(3, ..., ...) = 4
)";
constexpr int kWrongLine = 8;

// Holds a kernel run for 3 s: the call waits for its time.
constexpr char kSlowScript[] = R"(// Slow on purpose: bind 3 s after socket.
0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+3   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
)";

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// The lines that are progress lines: "[i/n] PASS|FAIL name".
std::vector<std::string> ProgressLines(const std::string& out) {
  static const std::regex re(R"(^\[\d+/\d+\] (PASS|FAIL) .*$)");
  std::vector<std::string> lines;
  for (const std::string& l : SplitLines(out)) {
    if (std::regex_match(l, re)) lines.push_back(l);
  }
  return lines;
}

// python3 CODE ARGS..., its stdout parsed as one JSON object.
google::protobuf::Struct Python(const std::string& code, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kPython, "-c", code};
  argv.insert(argv.end(), args.begin(), args.end());
  Result r = RunProcess(argv, absl::Seconds(30));
  google::protobuf::Struct out;
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(FromJson(r.out, &out)) << r.Describe();
  return out;
}

const google::protobuf::Value& Field(const google::protobuf::Struct& s, const std::string& key) {
  static const google::protobuf::Value kNull;
  auto it = s.fields().find(key);
  return it == s.fields().end() ? kNull : it->second;
}
std::string Str(const google::protobuf::Struct& s, const std::string& key) { return Field(s, key).string_value(); }
int Int(const google::protobuf::Struct& s, const std::string& key) {
  int n = -1;
  return absl::SimpleAtoi(Str(s, key), &n) ? n : -1;
}

// A JUnit file as python3's xml.etree reads it: one <testsuite> in <testsuites>.
struct JUnitCase {
  std::string classname, name, time;
  bool failed = false, errored = false;
  std::string failure_message, failure_text, error_message;
};
struct JUnit {
  std::string root;
  int root_tests = -1, root_failures = -1, root_errors = -1;
  std::string name;
  int tests = -1, failures = -1, errors = -1;
  std::map<std::string, std::string> props;
  std::vector<JUnitCase> cases;
};

JUnit ParseJUnit(const std::string& path) {
  static constexpr char kCode[] = R"(
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = root.findall("testsuite")
if len(suites) != 1:
    sys.exit(f"{len(suites)} testsuite elements, expected 1")
ts = suites[0]
out = {"root": root.tag, "root_tests": root.get("tests"), "root_failures": root.get("failures"),
       "root_errors": root.get("errors"), "name": ts.get("name"), "tests": ts.get("tests"),
       "failures": ts.get("failures"), "errors": ts.get("errors"),
       "props": {p.get("name"): p.get("value") for p in ts.findall("properties/property")}, "cases": []}
for tc in ts.findall("testcase"):
    c = {"classname": tc.get("classname"), "name": tc.get("name"), "time": tc.get("time")}
    f = tc.find("failure")
    if f is not None:
        c["failure_message"] = f.get("message")
        c["failure_text"] = f.text or ""
    e = tc.find("error")
    if e is not None:
        c["error_message"] = e.get("message")
    out["cases"].append(c)
print(json.dumps(out))
)";
  google::protobuf::Struct s = Python(kCode, {path});
  JUnit j;
  j.root = Str(s, "root");
  j.root_tests = Int(s, "root_tests");
  j.root_failures = Int(s, "root_failures");
  j.root_errors = Int(s, "root_errors");
  j.name = Str(s, "name");
  j.tests = Int(s, "tests");
  j.failures = Int(s, "failures");
  j.errors = Int(s, "errors");
  for (const auto& [k, v] : Field(s, "props").struct_value().fields()) j.props[k] = v.string_value();
  for (const google::protobuf::Value& v : Field(s, "cases").list_value().values()) {
    const google::protobuf::Struct& c = v.struct_value();
    JUnitCase jc;
    jc.classname = Str(c, "classname");
    jc.name = Str(c, "name");
    jc.time = Str(c, "time");
    jc.failed = c.fields().contains("failure_message");
    jc.failure_message = Str(c, "failure_message");
    jc.failure_text = Str(c, "failure_text");
    jc.errored = c.fields().contains("error_message");
    jc.error_message = Str(c, "error_message");
    j.cases.push_back(jc);
  }
  return j;
}

// CSV text as python3's csv module reads it (RFC 4180).
std::vector<std::vector<std::string>> ParseCsv(const std::string& dir, const std::string& text) {
  const std::string path = dir + "/gradebook.csv";
  WriteFile(path, text);
  google::protobuf::Struct s = Python(R"(
import csv, json, sys
with open(sys.argv[1], newline="") as f:
    print(json.dumps({"rows": list(csv.reader(f, strict=True))}))
)",
                                      {path});
  std::vector<std::vector<std::string>> rows;
  for (const google::protobuf::Value& r : Field(s, "rows").list_value().values()) {
    std::vector<std::string> row;
    for (const google::protobuf::Value& f : r.list_value().values()) row.push_back(f.string_value());
    rows.push_back(row);
  }
  return rows;
}

std::string Sha256(const std::string& path) {
  Result r = RunProcess({kPython, "-c",
                         "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())",
                         path});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  return Line(r.out);
}

// /run/netns entries of the tcplabd with this PID (tcplab-PID-N).
std::vector<std::string> NamespacesOf(pid_t pid) {
  std::vector<std::string> names;
  DIR* d = opendir("/run/netns");
  if (!d) return names;
  const std::string prefix = absl::StrCat("tcplab-", pid, "-");
  while (const dirent* e = readdir(d)) {
    if (absl::StartsWith(e->d_name, prefix)) names.emplace_back(e->d_name);
  }
  closedir(d);
  return names;
}

class GradeTest : public ScriptsCliTest {
 protected:
  GradeTest() : ScriptsCliTest("tcplab-grade") {}

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ScriptsCliTest::SetUp());
    ASSERT_TRUE(Exists("lifecycle/close_active.pkt"));
  }

  std::string WrongScript() {
    std::filesystem::create_directories(tmp_.path() + "/wrong");
    const std::string path = tmp_.path() + "/wrong/synack_ack2.pkt";
    WriteFile(path, kWrongScript);
    return path;
  }

  // The run id in the summary line, checking the line's form; 0 if there is none.
  int64_t SummaryRun(const std::string& out, int passed, int failed, const std::string& how) {
    const std::vector<std::string> lines = SplitLines(out);
    if (lines.empty()) {
      ADD_FAILURE() << "no output";
      return 0;
    }
    std::smatch m;
    const std::regex re(absl::StrCat(R"(^run (\d+): )", passed, " passed, ", failed, R"( failed \()", how, R"(\)$)"));
    if (!std::regex_match(lines.back(), m, re)) {
      ADD_FAILURE() << "last line is not the summary \"run N: " << passed << " passed, " << failed << " failed (" << how
                    << ")\":\n"
                    << out;
      return 0;
    }
    int64_t id = 0;
    EXPECT_TRUE(absl::SimpleAtoi(m[1].str(), &id));
    return id;
  }

  // Grades the lifecycle scripts on `target`, checks every line and the JUnit file.
  void LifecyclePasses(const std::string& target) {
    const std::string junit = tmp_.path() + "/junit.xml";
    Result r = Grade(kLifecycle, target, {"--junit", junit});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    const std::vector<std::string> lines = SplitLines(r.out);
    ASSERT_EQ(lines.size(), 5u) << r.out;
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(lines[i], absl::StrCat("[", i + 1, "/4] PASS ", kLifecycle[i])) << r.out;
    }
    const int64_t id = SummaryRun(r.out, 4, 0, target);
    EXPECT_GT(id, 0);

    JUnit j = ParseJUnit(junit);
    EXPECT_EQ(j.root, "testsuites");
    EXPECT_EQ(j.name, absl::StrCat("tcplab grade (", target, ")"));
    EXPECT_EQ(j.tests, 4);
    EXPECT_EQ(j.failures, 0);
    EXPECT_EQ(j.errors, 0);
    EXPECT_EQ(j.root_tests, 4);
    EXPECT_EQ(j.root_failures, 0);
    EXPECT_EQ(j.props["run_id"], absl::StrCat(id));
    EXPECT_EQ(j.props["target"], target);
    ASSERT_EQ(j.cases.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(j.cases[i].classname, "lifecycle");
      EXPECT_EQ(absl::StrCat("lifecycle/", j.cases[i].name), kLifecycle[i]);
      EXPECT_FALSE(j.cases[i].failed);
      EXPECT_FALSE(j.cases[i].errored);
    }
    EXPECT_FALSE(Exists(junit + ".tmp")) << "the temporary file was left behind";
  }
};

TEST_F(GradeTest, EngineLifecycleScriptsPass) { LifecyclePasses("engine"); }

TEST_F(GradeTest, KernelLifecycleScriptsPass) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root: the kernel target grades Linux in a fresh network namespace through a TUN "
                    "(tcplabd needs CAP_SYS_ADMIN and CAP_NET_ADMIN)";
  }
  LifecyclePasses("kernel");
}

TEST_F(GradeTest, JsonIsOneObjectPerResultThenTheSummary) {
  Result r = Cli({"--json", "grade", kLifecycle[0], kLifecycle[3], "--target", "engine", "--student", "s7"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const std::vector<std::string> lines = SplitLines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  for (int i = 0; i < 2; ++i) {
    v1::RunSuiteResponse resp;
    ASSERT_TRUE(FromJson(lines[i], &resp)) << lines[i];
    ASSERT_TRUE(resp.has_result()) << lines[i];
    EXPECT_EQ(resp.done(), i + 1);
    EXPECT_EQ(resp.total(), 2);
    EXPECT_TRUE(resp.result().passed());
    EXPECT_EQ(resp.result().name(), kLifecycle[i == 0 ? 0 : 3]);
    EXPECT_EQ(resp.result().sha256(), Sha256(resp.result().name()));
  }
  v1::RunSuiteResponse last;
  ASSERT_TRUE(FromJson(lines[2], &last)) << lines[2];
  ASSERT_TRUE(last.has_summary()) << lines[2];
  EXPECT_GT(last.summary().id(), 0);
  EXPECT_EQ(last.summary().passed(), 2);
  EXPECT_EQ(last.summary().failed(), 0);
  EXPECT_EQ(last.summary().student(), "s7");
  EXPECT_EQ(last.summary().state(), v1::RUN_STATE_DONE);
}

TEST_F(GradeTest, WrongScriptFailsWithTheFieldTable) {
  const std::string wrong = WrongScript();
  const std::string junit = tmp_.path() + "/junit.xml";
  Result r = Grade({kLifecycle[3], wrong}, "engine", {"--student", "s042", "--junit", junit});
  ASSERT_EQ(r.exit_code, 1) << r.Describe();
  const std::vector<std::string> lines = SplitLines(r.out);
  EXPECT_EQ(ProgressLines(r.out), (std::vector<std::string>{"[1/2] PASS " + kLifecycle[3], "[2/2] FAIL " + wrong}))
      << r.out;
  // The report follows the FAIL line: the error, expected/actual, the table, the timeline.
  auto fail = std::find(lines.begin(), lines.end(), "[2/2] FAIL " + wrong);
  ASSERT_NE(fail, lines.end());
  ASSERT_GT(lines.end() - fail, 6) << r.out;
  const std::string error = *(fail + 1);
  EXPECT_TRUE(absl::StartsWith(error, absl::StrCat(wrong, ":", kWrongLine, ": "))) << r.out;
  EXPECT_NE(error.find("ack"), std::string::npos) << r.out;
  EXPECT_EQ(*(fail + 2), "  expected: > S. 0:0(0) ack 2 <mss 1460>") << r.out;
  EXPECT_TRUE(absl::StartsWith(*(fail + 3), "  actual:   > S. 0:0(0) ack 1 ")) << r.out;
  EXPECT_TRUE(std::regex_match(*(fail + 4), std::regex(R"(^  field +expected +actual$)"))) << r.out;
  EXPECT_TRUE(std::regex_match(*(fail + 5), std::regex(R"(^  ack +2 +1$)"))) << r.out;
  EXPECT_EQ(*(fail + 6), "  timeline (engine):") << r.out;
  EXPECT_TRUE(absl::StartsWith(*(fail + 7), "    0.000000 ")) << r.out;  // the timeline, indented
  EXPECT_EQ(SummaryRun(r.out, 1, 1, "engine, student s042") > 0, true);

  JUnit j = ParseJUnit(junit);
  EXPECT_EQ(j.tests, 2);
  EXPECT_EQ(j.failures, 1);
  EXPECT_EQ(j.errors, 0);
  EXPECT_EQ(j.props["student"], "s042");
  ASSERT_EQ(j.cases.size(), 2u);
  EXPECT_FALSE(j.cases[0].failed);
  EXPECT_TRUE(j.cases[1].failed);
  EXPECT_EQ(j.cases[1].classname, tmp_.path() + "/wrong");
  EXPECT_EQ(j.cases[1].name, "synack_ack2.pkt");
  EXPECT_EQ(j.cases[1].failure_message, error);  // '<', '>' and quotes escaped and read back
  // The body is the whole report, as printed.
  std::string report;
  for (auto it = fail + 1; it != lines.end() - 1; ++it) absl::StrAppend(&report, *it, "\n");
  EXPECT_EQ(j.cases[1].failure_text, report);
}

// The report is the one tcplab-script prints locally for the same script (runner.cc's
// FormatFailure): the engine runs in virtual time, so the two runs are identical.
TEST_F(GradeTest, FailureReportIsTheOneTcplabScriptPrints) {
  const std::string script_bin = std::filesystem::path(TCPLABD_BIN).parent_path() / "tcplab-script";
  if (!Exists(script_bin)) GTEST_SKIP() << script_bin << " is not built (ninja tcplab-script)";
  const std::string wrong = WrongScript();
  Result local = RunProcess({script_bin, "--target=engine", wrong});
  ASSERT_EQ(local.exit_code, 1) << local.Describe();
  Result remote = Grade({wrong}, "engine");
  ASSERT_EQ(remote.exit_code, 1) << remote.Describe();
  // tcplab-script: "FAIL PATH (engine, 0.000 s)" + report; tcplab: "[1/1] FAIL PATH" + report + summary.
  const std::string local_report = local.out.substr(local.out.find('\n') + 1);
  std::string remote_report = remote.out.substr(remote.out.find('\n') + 1);
  remote_report = remote_report.substr(0, remote_report.rfind("run "));
  EXPECT_EQ(remote_report, local_report);
  EXPECT_FALSE(local_report.empty());
}

TEST_F(GradeTest, ResultsGradebookCsvFiltersAndOneRun) {
  const std::string wrong = WrongScript();
  const std::string odd = "o\"brien, pat";  // a comma and a quote: RFC 4180 quoting
  Result a = Grade(kLifecycle, "engine", {"--student", "s1"});
  ASSERT_EQ(a.exit_code, 0) << a.Describe();
  const int64_t run1 = SummaryRun(a.out, 4, 0, "engine, student s1");
  Result b = Grade({kLifecycle[3], wrong}, "engine", {"--student", odd});
  ASSERT_EQ(b.exit_code, 1) << b.Describe();
  const int64_t run2 = SummaryRun(b.out, 1, 1, "engine, student " + odd);
  ASSERT_GT(run1, 0);
  ASSERT_GT(run2, run1);

  Result csv = Cli({"grade", "results", "--csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.Describe();
  EXPECT_TRUE(absl::StartsWith(csv.out, "run_id,started,student,target,state,script,sha256,passed,line,error\r\n"))
      << csv.out;
  std::vector<std::vector<std::string>> rows = ParseCsv(tmp_.path(), csv.out);
  ASSERT_EQ(rows.size(), 7u) << csv.out;  // header + 2 + 4, newest run first
  EXPECT_EQ(rows[0], (std::vector<std::string>{"run_id", "started", "student", "target", "state", "script", "sha256",
                                               "passed", "line", "error"}));
  const std::vector<std::string> scripts = {kLifecycle[3], wrong, kLifecycle[0], kLifecycle[1], kLifecycle[2],
                                            kLifecycle[3]};
  for (size_t i = 1; i < rows.size(); ++i) {
    const std::vector<std::string>& row = rows[i];
    ASSERT_EQ(row.size(), 10u) << csv.out;
    const bool second = i <= 2;
    EXPECT_EQ(row[0], absl::StrCat(second ? run2 : run1));
    EXPECT_TRUE(std::regex_match(row[1], std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$)"))) << row[1];
    EXPECT_EQ(row[2], second ? odd : "s1");
    EXPECT_EQ(row[3], "engine");
    EXPECT_EQ(row[4], "DONE");
    EXPECT_EQ(row[5], scripts[i - 1]);
    EXPECT_EQ(row[6], Sha256(scripts[i - 1]));
    const bool failed = i == 2;
    EXPECT_EQ(row[7], failed ? "0" : "1");
    EXPECT_EQ(row[8], failed ? absl::StrCat(kWrongLine) : "");
    if (failed) {
      EXPECT_TRUE(absl::StartsWith(row[9], absl::StrCat(wrong, ":", kWrongLine, ": "))) << row[9];
    } else {
      EXPECT_EQ(row[9], "");
    }
  }

  // --student keeps that student's rows only.
  Result s1 = Cli({"grade", "results", "--csv", "--student", "s1"});
  ASSERT_EQ(s1.exit_code, 0) << s1.Describe();
  rows = ParseCsv(tmp_.path(), s1.out);
  ASSERT_EQ(rows.size(), 5u) << s1.out;
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_EQ(rows[i][2], "s1");
  Result odd_rows = Cli({"grade", "results", "--csv", "--student", odd});
  rows = ParseCsv(tmp_.path(), odd_rows.out);
  ASSERT_EQ(rows.size(), 3u) << odd_rows.out;
  Result nobody = Cli({"grade", "results", "--csv", "--student", "nobody"});
  ASSERT_EQ(nobody.exit_code, 0) << nobody.Describe();
  EXPECT_EQ(ParseCsv(tmp_.path(), nobody.out).size(), 1u) << nobody.out;

  // --run ID: that run only, in every format.
  Result one_csv = Cli({"grade", "results", "--run", absl::StrCat(run1), "--csv"});
  ASSERT_EQ(one_csv.exit_code, 0) << one_csv.Describe();
  rows = ParseCsv(tmp_.path(), one_csv.out);
  ASSERT_EQ(rows.size(), 5u) << one_csv.out;
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_EQ(rows[i][0], absl::StrCat(run1));

  Result one_json = Cli({"--json", "grade", "results", "--run", absl::StrCat(run2)});
  ASSERT_EQ(one_json.exit_code, 0) << one_json.Describe();
  v1::GradingRun run;
  ASSERT_TRUE(FromJson(one_json.out, &run)) << one_json.out;
  EXPECT_EQ(run.id(), run2);
  EXPECT_EQ(run.student(), odd);
  EXPECT_EQ(run.state(), v1::RUN_STATE_DONE);
  ASSERT_EQ(run.results_size(), 2);
  EXPECT_TRUE(run.results(0).passed());
  EXPECT_FALSE(run.results(1).passed());
  ASSERT_EQ(run.results(1).diffs_size(), 1);
  EXPECT_EQ(run.results(1).diffs(0).field(), "ack");
  EXPECT_EQ(run.results(1).diffs(0).expected(), "2");
  EXPECT_EQ(run.results(1).diffs(0).actual(), "1");

  Result one_text = Cli({"grade", "results", "--run", absl::StrCat(run2)});
  ASSERT_EQ(one_text.exit_code, 0) << one_text.Describe();
  const std::vector<std::string> lines = SplitLines(one_text.out);
  EXPECT_NE(std::find(lines.begin(), lines.end(), absl::StrCat("run:          ", run2)), lines.end()) << one_text.out;
  EXPECT_NE(std::find(lines.begin(), lines.end(), "state:        DONE"), lines.end()) << one_text.out;
  EXPECT_EQ(ProgressLines(one_text.out),
            (std::vector<std::string>{"[1/2] PASS " + kLifecycle[3], "[2/2] FAIL " + wrong}))
      << one_text.out;
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(),
                          [](const std::string& l) { return std::regex_match(l, std::regex(R"(^  ack +2 +1$)")); }))
      << one_text.out;
}

TEST_F(GradeTest, ResultsTableAndJsonListNewestFirst) {
  ASSERT_EQ(Grade({kLifecycle[0]}, "engine", {"--student", "s1"}).exit_code, 0);
  ASSERT_EQ(Grade({kLifecycle[1], kLifecycle[2]}, "engine", {"--student", "s2"}).exit_code, 0);

  Result table = Cli({"grade", "results"});
  ASSERT_EQ(table.exit_code, 0) << table.Describe();
  const std::vector<std::string> lines = SplitLines(table.out);
  ASSERT_EQ(lines.size(), 3u) << table.out;
  EXPECT_TRUE(std::regex_match(lines[0], std::regex(R"(^ID +STARTED +STUDENT +TARGET +STATE +PASSED$)"))) << table.out;
  EXPECT_TRUE(std::regex_match(lines[1], std::regex(R"(^2 +\S+Z +s2 +engine +DONE +2/2$)"))) << table.out;
  EXPECT_TRUE(std::regex_match(lines[2], std::regex(R"(^1 +\S+Z +s1 +engine +DONE +1/1$)"))) << table.out;

  Result json = Cli({"--json", "grade", "results"});
  ASSERT_EQ(json.exit_code, 0) << json.Describe();
  const std::vector<std::string> objs = SplitLines(json.out);
  ASSERT_EQ(objs.size(), 2u) << json.out;
  v1::GradingRun r2, r1;
  ASSERT_TRUE(FromJson(objs[0], &r2)) << objs[0];
  ASSERT_TRUE(FromJson(objs[1], &r1)) << objs[1];
  EXPECT_EQ(r2.id(), 2);
  EXPECT_EQ(r2.total(), 2);
  EXPECT_EQ(r2.passed(), 2);
  EXPECT_EQ(r1.id(), 1);
  EXPECT_EQ(r1.student(), "s1");

  Result limited = Cli({"--json", "grade", "results", "--limit", "1"});
  ASSERT_EQ(limited.exit_code, 0) << limited.Describe();
  EXPECT_EQ(SplitLines(limited.out).size(), 1u) << limited.out;
}

TEST_F(GradeTest, UsageErrorsExitTwoNamingTheArgument) {
  const std::string bad_utf8 = tmp_.path() + "/latin1.pkt";
  WriteFile(bad_utf8, "// caf\xe9\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
  struct Case {
    std::vector<std::string> args;
    std::string named;  // what stderr must name
  };
  const std::vector<Case> cases = {
      {{"grade", "--target", "engine"}, "SCRIPT"},
      {{"grade"}, "SCRIPT"},
      {{"grade", "lifecycle/nosuch.pkt", "--target", "engine"}, "lifecycle/nosuch.pkt: No such file or directory"},
      {{"grade", kLifecycle[0], "lifecycle/nosuch.pkt", "--target", "engine"}, "lifecycle/nosuch.pkt"},
      {{"grade", "lifecycle", "--target", "engine"}, "lifecycle: Is a directory"},
      {{"grade", bad_utf8, "--target", "engine"}, "not UTF-8"},
      {{"grade", kLifecycle[0], "--target", "bogus"}, "--target"},
      {{"grade", kLifecycle[0]}, "--target"},
      {{"grade", kLifecycle[0], "--target", "engine", "--dut", "d1"}, "--dut"},
      {{"grade", kLifecycle[0], "--target", "engine", "--tolerance-usecs", "-5"}, "--tolerance-usecs"},
      {{"grade", kLifecycle[0], "--target", "engine", "--bogus"}, "--bogus"},
      {{"grade", kLifecycle[0], "--target", "engine", "--junit", "/nonexistent-dir/x.xml"}, "/nonexistent-dir/x.xml"},
      {{"grade", "results", "--csv", "--json"}, "--csv"},
      {{"grade", "results", "--run", "0"}, "--run"},
      {{"grade", "results", "--run", "abc"}, "--run"},
      {{"grade", "results", "--run", "1", "--student", "s1"}, "--run"},
      {{"grade", "results", "--limit", "0"}, "--limit"},
      {{"grade", "results", "extra"}, "extra"},
  };
  for (const Case& c : cases) {
    Result r = Cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(c.args, " ") << "\n" << r.Describe();
    EXPECT_NE(r.err.find(c.named), std::string::npos) << absl::StrJoin(c.args, " ") << "\n" << r.Describe();
    EXPECT_EQ(r.out, "") << absl::StrJoin(c.args, " ");
  }
  // Found before any call: no run was stored.
  Result list = Cli({"--json", "grade", "results"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  EXPECT_EQ(list.out, "");
}

TEST_F(GradeTest, ServerRefusalsExitOneWithTheMessage) {
  // --target dut without a DUT name: the server's INVALID_ARGUMENT.
  const std::string junit = tmp_.path() + "/junit.xml";
  Result r = Grade({kLifecycle[0]}, "dut", {"--junit", junit});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("tcplab: INVALID_ARGUMENT: dut"), std::string::npos) << r.Describe();
  EXPECT_EQ(r.out, "");
  // CI still gets a report: the script is an error, not a silent absence.
  JUnit j = ParseJUnit(junit);
  EXPECT_EQ(j.tests, 1);
  EXPECT_EQ(j.failures, 0);
  EXPECT_EQ(j.errors, 1);
  ASSERT_EQ(j.cases.size(), 1u);
  EXPECT_TRUE(j.cases[0].errored);
  EXPECT_NE(j.cases[0].error_message.find("INVALID_ARGUMENT"), std::string::npos) << j.cases[0].error_message;

  // A DUT that is not attached (or DUTs not built yet): refused, naming it.
  Result d = Grade({kLifecycle[0]}, "dut", {"--dut", "no-such-dut"});
  EXPECT_EQ(d.exit_code, 1) << d.Describe();
  EXPECT_TRUE(absl::StrContains(d.err, "tcplab: UNIMPLEMENTED: ") ||
              absl::StrContains(d.err, "tcplab: FAILED_PRECONDITION: ") ||
              absl::StrContains(d.err, "tcplab: NOT_FOUND: "))
      << d.Describe();
  EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(d.err), "dut")) << d.Describe();

  // An unknown run.
  Result g = Cli({"grade", "results", "--run", "999"});
  EXPECT_EQ(g.exit_code, 1) << g.Describe();
  EXPECT_NE(g.err.find("tcplab: NOT_FOUND: "), std::string::npos) << g.Describe();
  EXPECT_NE(g.err.find("999"), std::string::npos) << g.Describe();
}

// ---------------------------------------------------------------------------------------------
// kill -9 in the middle of a run.

// A tcplabd this test starts, kills and restarts itself (e2e_testing.h's Daemon only stops
// politely, and removes its data directory).
class OwnDaemon {
 public:
  ~OwnDaemon() { Stop(); }

  // tcplabd on DIR/data, its ready file and log named by `tag`.
  void Start(const std::string& dir, const std::string& tag) {
    log_ = absl::StrCat(dir, "/tcplabd-", tag, ".log");
    std::vector<std::string> addresses;
    ASSERT_NO_FATAL_FAILURE(StartTcplabd({"--listen", "127.0.0.1:0", "--data_dir", dir + "/data"},
                                         absl::StrCat(dir, "/ready-", tag), log_, &pid_, &addresses));
    address_ = addresses.front();
  }

  void Kill9() {
    ASSERT_GT(pid_, 0);
    ASSERT_EQ(kill(pid_, SIGKILL), 0);
    int status = 0;
    waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    pid_ = -1;
  }

  // SIGTERM, then wait (SIGKILL after 30 s). Returns the exit status (-1 if signalled).
  int Stop() {
    if (pid_ <= 0) return 0;
    const int code = StopTcplabd(pid_);
    pid_ = -1;
    return code;
  }

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }
  std::string Log() const { return ReadFile(log_); }

 private:
  pid_t pid_ = -1;
  std::string address_, log_;
};

// The issue's durability requirement: a run whose server is killed (SIGKILL, no chance to
// clean up) in the middle is found INTERRUPTED by the next server on the same data directory,
// with every result a client was shown, each complete; the killed server's namespace is
// removed by the next one. On the kernel target, whose scripts take real time: the third of
// six scripts waits 3 s, and the kill comes while it runs.
TEST(GradeKillTest, RunSurvivesKill9AsInterruptedWithEveryShownResult) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root: the kernel target (a network namespace and a TUN per script) is the one whose "
                    "runs take long enough to kill in the middle";
  }
  TempDir tmp{"tcplab-grade"};
  ASSERT_FALSE(tmp.path().empty());
  const std::string slow = tmp.path() + "/slow.pkt";
  WriteFile(slow, kSlowScript);
  const std::string lc = std::string(TCPLAB_SOURCE_DIR) + "/tests/scripts/";
  const std::vector<std::string> scripts = {lc + kLifecycle[3], lc + kLifecycle[2], slow,
                                            lc + kLifecycle[0], lc + kLifecycle[1], lc + kLifecycle[3]};

  OwnDaemon first;
  ASSERT_NO_FATAL_FAILURE(first.Start(tmp.path(), "first"));
  const pid_t first_pid = first.pid();
  BackgroundProcess cli;
  std::vector<std::string> argv = {TCPLAB_CLI_BIN, "--server", first.address(), "grade"};
  argv.insert(argv.end(), scripts.begin(), scripts.end());
  argv.insert(argv.end(), {"--target", "kernel", "--student", "s9"});
  ASSERT_NO_FATAL_FAILURE(cli.Start(argv, tmp.path() + "/cli.err"));
  const bool two = cli.ReadUntil(
      [](const std::string& out) {
        const std::vector<std::string> p = ProgressLines(out);
        return std::count_if(p.begin(), p.end(), [](const std::string& l) { return absl::StrContains(l, "] PASS "); }) >= 2;
      },
      absl::Seconds(60));
  ASSERT_TRUE(two) << "two PASS lines did not come within 60 s:\n" << cli.out() << "\n" << cli.err() << "\n" << first.Log();
  // The slow script is running once its namespace exists: kill then, not between scripts.
  const absl::Time ns_deadline = absl::Now() + absl::Seconds(2);
  while (NamespacesOf(first_pid).empty() && absl::Now() < ns_deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_FALSE(NamespacesOf(first_pid).empty()) << "the third script's namespace did not appear";
  ASSERT_NO_FATAL_FAILURE(first.Kill9());

  const int cli_exit = cli.Wait(absl::Seconds(30));
  EXPECT_EQ(cli_exit, 1) << cli.out() << "\n" << cli.err();
  EXPECT_TRUE(absl::StartsWith(cli.err(), "tcplab: ")) << cli.err();
  const std::vector<std::string> shown = ProgressLines(cli.out());
  ASSERT_GE(shown.size(), 2u) << cli.out();
  EXPECT_FALSE(absl::StrContains(cli.out(), "\nrun ")) << "a summary after the kill:\n" << cli.out();
  EXPECT_FALSE(NamespacesOf(first_pid).empty()) << "nothing left behind to clean up: was the kill too late?";

  OwnDaemon second;
  ASSERT_NO_FATAL_FAILURE(second.Start(tmp.path(), "second"));
  const std::string log = second.Log();
  EXPECT_NE(log.find("1 grading run(s) of an earlier tcplabd were cut short; stored as INTERRUPTED"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("leftover namespace"), std::string::npos) << log;
  EXPECT_NE(log.find(absl::StrCat("tcplab-", first_pid, "-")), std::string::npos) << log;
  EXPECT_TRUE(NamespacesOf(first_pid).empty()) << absl::StrJoin(NamespacesOf(first_pid), " ");

  auto cli2 = [&](const std::vector<std::string>& args) {
    std::vector<std::string> a = {TCPLAB_CLI_BIN, "--server", second.address()};
    a.insert(a.end(), args.begin(), args.end());
    return RunProcess(a);
  };
  Result list = cli2({"--json", "grade", "results"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  const std::vector<std::string> runs = SplitLines(list.out);
  ASSERT_EQ(runs.size(), 1u) << list.out;
  v1::GradingRun summary;
  ASSERT_TRUE(FromJson(runs[0], &summary)) << runs[0];
  EXPECT_EQ(summary.state(), v1::RUN_STATE_INTERRUPTED);
  EXPECT_EQ(summary.total(), 6);
  EXPECT_EQ(summary.student(), "s9");
  EXPECT_TRUE(summary.has_finished());

  Result one = cli2({"--json", "grade", "results", "--run", absl::StrCat(summary.id())});
  ASSERT_EQ(one.exit_code, 0) << one.Describe();
  v1::GradingRun run;
  ASSERT_TRUE(FromJson(one.out, &run)) << one.out;
  // Every result shown is stored; none beyond the slow script (which never finished).
  ASSERT_GE(run.results_size(), static_cast<int>(shown.size())) << one.out << "\n" << cli.out();
  EXPECT_LE(run.results_size(), 2) << one.out;
  EXPECT_EQ(run.passed() + run.failed(), run.results_size());
  for (int i = 0; i < run.results_size(); ++i) {
    const v1::ScriptResult& r = run.results(i);
    EXPECT_EQ(r.name(), scripts[i]);
    EXPECT_TRUE(r.passed()) << r.error();
    EXPECT_EQ(r.sha256(), Sha256(scripts[i]));  // whole: the stored result is the full message
    EXPECT_FALSE(r.timeline().empty());
    EXPECT_GT(Seconds(r.elapsed()), 0.05) << r.DebugString();
    if (i < static_cast<int>(shown.size())) {
      EXPECT_EQ(shown[i], absl::StrCat("[", i + 1, "/6] PASS ", scripts[i]));
    }
  }
  Result csv = cli2({"grade", "results", "--csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.Describe();
  std::vector<std::vector<std::string>> rows = ParseCsv(tmp.path(), csv.out);
  ASSERT_EQ(rows.size(), 1u + run.results_size()) << csv.out;
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_EQ(rows[i][4], "INTERRUPTED");

  const pid_t second_pid = second.pid();
  EXPECT_EQ(second.Stop(), 0) << second.Log();
  EXPECT_TRUE(NamespacesOf(second_pid).empty()) << absl::StrJoin(NamespacesOf(second_pid), " ");
  EXPECT_TRUE(NamespacesOf(first_pid).empty()) << absl::StrJoin(NamespacesOf(first_pid), " ");
}

}  // namespace
}  // namespace tcplab::e2e
