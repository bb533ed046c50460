// Every script shipped in tests/scripts/ against the engine (virtual time) and the Linux
// kernel (a fresh namespace, real time). The kernel runs skip, saying why, without the
// privileges a sandbox needs.
#include <linux/capability.h>

#include <algorithm>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/grading/engine_target.h"
#include "engine/grading/kernel_target.h"
#include "engine/grading/parser.h"
#include "engine/grading/runner.h"
#include "engine/sandbox/netns.h"

namespace tcplab::grading {
namespace {

struct Case {
  std::string path;  // relative to tests/scripts
  std::string target;
};

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  const std::filesystem::path root = std::filesystem::path(TCPLAB_SOURCE_DIR) / "tests" / "scripts";
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().extension() == ".pkt") {
      files.push_back(std::filesystem::relative(e.path(), root).string());
    }
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    cases.push_back({f, "engine"});
    cases.push_back({f, "kernel"});
  }
  return cases;
}

// ctest shows the parameter: say which script and target, not 64 bytes of struct.
void PrintTo(const Case& c, std::ostream* os) { *os << c.path << " on " << c.target; }

class Suites : public ::testing::TestWithParam<Case> {};

TEST_P(Suites, Passes) {
  const Case& c = GetParam();
  const std::string path = std::string(TCPLAB_SOURCE_DIR) + "/tests/scripts/" + c.path;
  absl::StatusOr<Script> script = ParseScriptFile(path);
  ASSERT_TRUE(script.ok()) << script.status();
  std::unique_ptr<Target> target;
  if (c.target == "engine") {
    target = std::make_unique<EngineTarget>();
  } else {
    if (!sandbox::HaveCapability(CAP_SYS_ADMIN) || !sandbox::HaveCapability(CAP_NET_ADMIN)) {
      GTEST_SKIP() << "the kernel target needs CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root)";
    }
    absl::StatusOr<std::unique_ptr<KernelTarget>> k = KernelTarget::Create();
    ASSERT_TRUE(k.ok()) << k.status();
    target = std::move(*k);
  }
  ScriptResult r = RunScript(*script, *target);
  EXPECT_TRUE(r.passed) << FormatFailure(r);
}

std::string Name(const ::testing::TestParamInfo<Case>& info) {
  std::string n = info.param.path + "_" + info.param.target;
  for (char& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(Scripts, Suites, ::testing::ValuesIn(AllCases()), Name);

}  // namespace
}  // namespace tcplab::grading
