// tcplab-script: runs grading scripts locally, without a server (for script authors and the
// test suite). `tcplab grade` does the same through tcplabd and stores the results.
//
//   tcplab-script [--target=engine|kernel] [--verbose] SCRIPT...
//
// Prints one line per script (PASS or FAIL), the failure report for each failure (and the
// timeline of every script with --verbose); exits 1 if a script failed, 2 on bad usage.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/grading/engine_target.h"
#include "engine/grading/kernel_target.h"
#include "engine/grading/parser.h"
#include "engine/grading/runner.h"

int main(int argc, char** argv) {
  using namespace tcplab::grading;
  std::string target = "engine";
  bool verbose = false;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--target=", 0) == 0) {
      target = a.substr(9);
    } else if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "tcplab-script: unknown flag %s\n", a.c_str());
      return 2;
    } else {
      files.push_back(a);
    }
  }
  if ((target != "engine" && target != "kernel") || files.empty()) {
    std::fprintf(stderr, "usage: tcplab-script [--target=engine|kernel] [--verbose] SCRIPT...\n");
    return 2;
  }
  int failed = 0;
  for (const std::string& f : files) {
    absl::StatusOr<Script> script = ParseScriptFile(f);
    if (!script.ok()) {
      std::printf("FAIL %s\n%s\n", f.c_str(), std::string(script.status().message()).c_str());
      ++failed;
      continue;
    }
    std::unique_ptr<Target> t;
    if (target == "engine") {
      t = std::make_unique<EngineTarget>();
    } else {
      absl::StatusOr<std::unique_ptr<KernelTarget>> k = KernelTarget::Create();
      if (!k.ok()) {
        std::fprintf(stderr, "tcplab-script: %s\n", std::string(k.status().message()).c_str());
        return 1;
      }
      t = std::move(*k);
    }
    ScriptResult r = RunScript(*script, *t);
    std::printf("%s %s (%s, %.3f s)\n", r.passed ? "PASS" : "FAIL", f.c_str(), target.c_str(),
                std::chrono::duration<double>(r.elapsed).count());
    if (!r.passed) {
      ++failed;
      std::printf("%s", FormatFailure(r).c_str());
    } else if (verbose) {
      for (const std::string& l : r.timeline) std::printf("    %s\n", l.c_str());
    }
  }
  return failed ? 1 : 0;
}
