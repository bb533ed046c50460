// tcplab: the command-line client of tcplabd. Flags and dispatch live here; the commands in
// commands.cc (unary calls), watch.cc (streams), grade.cc (grading) and dut.cc (DUTs).
//
// argv is parsed by hand rather than with absl flags: the CLI is a tree of subcommands with
// positional arguments, each with its own options. The global options (--server, --token,
// --json) may come before the command or among its arguments.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/args.h"
#include "client/cli/client.h"
#include "client/cli/commands.h"

namespace tcplab::cli {

const char* UsageText() {
  return R"(tcplab: the command-line client of tcplabd, a lab for TCP.

Usage:
  tcplab [--server ADDR] [--token T] [--json] COMMAND [ARGS]

Global options (before the command or among its arguments):
  --server ADDR   tcplabd's address: host:port or unix:/path
                  (default $TCPLAB_SERVER, else 127.0.0.1:50051)
  --token T       sent as "authorization: Bearer T" (default $TCPLAB_TOKEN)
  --json          machine-readable output: one JSON object per line (proto field names,
                  zeros included); errors still go to stderr and stdout stays empty

Sandboxes:
  sandbox create [NAME] [--backend tun|virtual] [--msl DURATION] [--mtu N] [--min-rto DURATION]
                  prints the sandbox's name (the server picks lab1, lab2... without NAME)
  sandbox ls
  sandbox show NAME   options, counters, namespace, addresses
  sandbox rm NAME

Connections (written SANDBOX/ID, e.g. lab1/3):
  listen NAME --stack engine|kernel --port P [--ip IP] [--backlog N]
                  prints the listener's connection; accepted connections appear in `conns`
  connect NAME --stack engine|kernel --to IP:PORT [--from IP:PORT]
                  prints the new connection, e.g. lab1/3
  send CONN (--data TEXT | --file PATH|-)
                  sends all of it (waiting while the send buffer is full); prints the count
  recv CONN [--max N] [--wait DURATION]
                  prints what has arrived (raw; --json: base64 data and eof);
                  --max default 65536, --wait default 0 (do not wait)
  shutdown CONN   half-close: FIN after the queued data
  close CONN      close(2)
  abort CONN      RST now
  show CONN       the TCB (engine) or TCP_INFO (kernel)
  conns NAME      every connection and listener of the sandbox

Events and captures:
  watch NAME [--conn CONN] [--from SEQ] [--no-follow] [--ladder]
                  follows the sandbox's events until Ctrl-C (or the sandbox is deleted);
                  --conn 3 or --conn lab1/3 keeps one connection; --from SEQ resumes at a
                  sequence number; --no-follow prints what is retained and exits;
                  --ladder draws a ladder diagram, one column per endpoint
  impair NAME [--direction in|out|both] [--loss P] [--dup P] [--reorder P] [--corrupt P]
              [--delay D] [--jitter D] [--seed S]
  impair NAME --clear
                  "in" means toward the engine (kernel -> engine), "out" away from it
                  (engine -> kernel, and engine -> engine); P is 0..1 (or 5%)
  pcap NAME -o FILE|-
                  the capture so far as a pcap file; "-" writes it to stdout, e.g.
                  tcplab pcap lab1 -o - | tshark -r -

Grading (scripts: engine/grading/SCRIPTS.md):
  grade SCRIPT... --target engine|kernel|dut [--dut NAME] [--student ID] [--junit FILE]
                  [--tolerance-usecs N]
                  runs the scripts on the server as one stored run; prints "[i/n] PASS|FAIL
                  SCRIPT" as each finishes (a failure with its report: expected and actual,
                  the fields that differ, the timeline), then "run ID: P passed, F failed";
                  --junit writes JUnit XML for CI; --json: one object per result, then the
                  summary. Exit status 1 if a script failed
  grade results [--student ID] [--limit N] [--csv]
  grade results --run ID [--csv]
                  stored runs, newest first (--limit default 100); --run ID: one run with
                  its results; --csv: a gradebook, one row per script result

Devices under test (a stack attached through DutService, graded with --target dut):
  dut --stack engine [--name NAME] [--description TEXT]
                  attaches tcplab's engine as a DUT (the default NAME is "engine") and
                  prints 'attached as "NAME"'; logs each script it serves on stderr; runs
                  until Ctrl-C or SIGTERM (detaches, exit 0) or until the server ends the
                  stream (exit 1 with its reason, e.g. ALREADY_EXISTS for a name in use).
                  --stack takes only engine: the kernel is graded directly with --target
                  kernel, and a stack of your own attaches itself
                  (client/python/examples/student_dut.py)
  dut ls          the attached DUTs: name, busy (a run is using it), peer, description

  help            this text

DURATION is like 500ms, 2s, 1m. Exit status: 0 done, 1 the server refused (the message
names the gRPC code, e.g. NOT_FOUND, and the errno when there is one), 2 bad usage.
)";
}

namespace {

const std::vector<OptionSpec> kGlobalOptions = {{"--server"}, {"--token"}, {"--json", false}};

// Takes the global options out of `a` into `g`.
void ApplyGlobals(const Args& a, GlobalOptions& g) {
  if (a.Has("--server")) g.server = a.Get("--server");
  if (a.Has("--token")) g.token = a.Get("--token");
  if (a.Has("--json")) g.json = true;
}

int Main(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  GlobalOptions g;
  if (const char* s = std::getenv("TCPLAB_SERVER"); s && *s) g.server = s;
  if (const char* t = std::getenv("TCPLAB_TOKEN"); t && *t) g.token = t;

  // Global options before the command.
  size_t i = 0;
  while (i < words.size() && words[i].rfind("-", 0) == 0) {
    const std::string& w = words[i];
    if (w == "--help" || w == "-h") {
      std::fputs(UsageText(), stdout);
      return kExitOk;
    }
    std::string name = w.substr(0, w.find('='));
    if (name == "--json") {
      if (name != w) return UsageError("--json takes no value");
      g.json = true;
      ++i;
      continue;
    }
    if (name != "--server" && name != "--token") return UsageError(absl::StrCat("unknown option ", name));
    std::string value;
    if (name != w) {
      value = w.substr(name.size() + 1);
    } else if (i + 1 < words.size()) {
      value = words[++i];
    } else {
      return UsageError(absl::StrCat(name, " needs a value"));
    }
    (name == "--server" ? g.server : g.token) = value;
    ++i;
  }
  if (i == words.size()) {
    std::fputs(UsageText(), stderr);
    return kExitUsage;
  }

  // The longest command whose words start the rest.
  const Command* cmd = nullptr;
  for (const Command& c : Commands()) {
    if (i + c.words.size() > words.size()) continue;
    if (!std::equal(c.words.begin(), c.words.end(), words.begin() + static_cast<ptrdiff_t>(i))) continue;
    if (!cmd || c.words.size() > cmd->words.size()) cmd = &c;
  }
  if (!cmd) {
    if (words[i] == "sandbox") {
      return UsageError(i + 1 < words.size() ? absl::StrCat("unknown sandbox command \"", words[i + 1], "\"")
                                             : "sandbox needs a command: create, ls, show or rm");
    }
    return UsageError(absl::StrCat("unknown command \"", words[i], "\""));
  }
  const std::string cmd_name = absl::StrJoin(cmd->words, " ");
  std::vector<std::string> rest(words.begin() + static_cast<ptrdiff_t>(i + cmd->words.size()), words.end());
  for (const std::string& w : rest) {
    if (w == "--help" || w == "-h") {
      std::fputs(UsageText(), stdout);
      return kExitOk;
    }
  }
  std::vector<OptionSpec> spec = cmd->options;
  spec.insert(spec.end(), kGlobalOptions.begin(), kGlobalOptions.end());
  absl::StatusOr<Args> args = Args::Parse(rest, spec);
  if (!args.ok()) return UsageError(absl::StrCat(cmd_name, ": ", args.status().message()));
  const size_t n = args->positional().size();
  if (n < cmd->min_positional) {
    return UsageError(absl::StrCat(cmd_name, " needs ", cmd->positional_names));
  }
  if (n > cmd->max_positional) {
    return UsageError(absl::StrCat(cmd_name, ": unexpected argument \"", args->positional()[cmd->max_positional], "\""));
  }
  ApplyGlobals(*args, g);
  Client client(g);
  return cmd->run(client, *args);
}

}  // namespace
}  // namespace tcplab::cli

int main(int argc, char** argv) { return tcplab::cli::Main(argc, argv); }
