// The DUT commands: `dut --stack engine` attaches tcplab's own engine to the lab as an external
// device under test (client/dut/engine_dut.h: DutService.AttachDut, exactly as a student's
// stack attaches) and serves until SIGINT/SIGTERM; `dut ls` lists the attached DUTs
// (DutService.ListDuts).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/commands.h"
#include "client/cli/format.h"
#include "client/dut/engine_dut.h"
#include "google/protobuf/struct.pb.h"

namespace tcplab::cli {

namespace {

// Set by SIGINT/SIGTERM; RunEngineDut polls it every millisecond and then detaches.
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

extern "C" void OnStopSignal(int) { stop_requested.store(true); }

// Installs OnStopSignal for SIGINT and SIGTERM for its lifetime. SA_RESETHAND: a second
// signal (a detach that hangs) kills the process as usual.
class StopSignals {
 public:
  StopSignals() {
    struct sigaction sa = {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ = {}, old_term_ = {};
};

void PrintLine(FILE* f, const std::string& s) {
  std::fprintf(f, "%s\n", s.c_str());
  std::fflush(f);  // read as it happens (a test, a terminal, a log file)
}

// `s` as a JSON string, quoted and escaped.
std::string JsonString(const std::string& s) {
  google::protobuf::Value v;
  v.set_string_value(s);
  return ToJson(v);
}

// One --json line: {"event":EVENT,KEY:VALUE...}, in that order.
void PrintEvent(const std::string& event, std::initializer_list<std::pair<const char*, std::string>> fields) {
  std::string line = absl::StrCat("{\"event\":", JsonString(event));
  for (const auto& [k, v] : fields) absl::StrAppend(&line, ",\"", k, "\":", JsonString(v));
  PrintLine(stdout, line + "}");
}

// What RunEngineDut reports, one line per notable thing (engine_dut.cc): `attached as "NAME"
// (IP)`, `reset: SCRIPT`, `detached`. The attachment goes to stdout (what a caller waits
// for), the rest to stderr as a log; with --json, each is an object on stdout.
void Report(bool json, bool& attached, const std::string& line) {
  if (absl::StartsWith(line, "attached as \"")) {
    attached = true;
    if (!json) return PrintLine(stdout, line);
    const size_t q = line.find('"', 13);  // names are [A-Za-z0-9._-]: no quote inside
    const size_t open = line.rfind('('), close = line.rfind(')');
    PrintEvent("attached", {{"name", line.substr(13, q == std::string::npos ? std::string::npos : q - 13)},
                            {"local_ip", open != std::string::npos && close > open
                                             ? line.substr(open + 1, close - open - 1)
                                             : ""}});
  } else if (absl::StartsWith(line, "reset: ")) {
    if (json) return PrintEvent("script", {{"script", line.substr(7)}});
    PrintLine(stderr, absl::StrCat("script: ", line.substr(7)));
  } else if (line == "detached") {
    if (!attached) return;  // refused at the hello: the error says why
    if (json) return PrintEvent("detached", {});
    PrintLine(stderr, line);
  } else {
    PrintLine(stderr, line);
  }
}

std::string DutsTable(const v1::ListDutsResponse& resp) {
  std::string out = absl::StrFormat("%-20s %-5s %-24s %s\n", "NAME", "BUSY", "PEER", "DESCRIPTION");
  for (const v1::AttachedDut& d : resp.duts()) {
    absl::StrAppendFormat(&out, "%-20s %-5s %-24s %s\n", d.name(), d.busy() ? "yes" : "no", d.peer(),
                          d.description());
  }
  return out;
}

}  // namespace

int RunDut(Client& c, const Args& a) {
  constexpr char kOthers[] =
      "the kernel is graded directly (tcplab grade ... --target kernel), and a stack of your own attaches "
      "itself (client/python/examples/student_dut.py)";
  if (!a.Has("--stack")) return UsageError(absl::StrCat("dut: --stack is required: engine; ", kOthers));
  if (a.Get("--stack") != "engine") {
    return UsageError(absl::StrCat("dut: --stack must be engine, got \"", a.Get("--stack"), "\"; ", kOthers));
  }
  dut::EngineDutOptions o;
  if (a.Has("--name")) o.name = a.Get("--name");
  if (a.Has("--description")) o.description = a.Get("--description");
  const bool json = c.json();
  bool attached = false;
  o.log = [json, &attached](const std::string& line) { Report(json, attached, line); };

  stop_requested.store(false);
  absl::Status s;
  {
    StopSignals signals;
    s = dut::RunEngineDut(c.TokenChannel(), o, stop_requested);
  }
  if (!s.ok()) {
    // The lab's reason: ALREADY_EXISTS for a name in use, UNAVAILABLE when unreachable...
    return c.Fail(grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message())));
  }
  if (!stop_requested.load()) {
    std::fprintf(stderr, "tcplab: dut: the server ended the stream without an error [server %s]\n",
                 c.options().server.c_str());
    return kExitServer;
  }
  return kExitOk;
}

int RunDutList(Client& c, const Args&) {
  v1::ListDutsResponse resp;
  auto ctx = c.Context();
  grpc::Status s = c.duts().ListDuts(ctx.get(), v1::ListDutsRequest(), &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintJson(resp);
  } else {
    std::fputs(DutsTable(resp).c_str(), stdout);
  }
  return kExitOk;
}

}  // namespace tcplab::cli
