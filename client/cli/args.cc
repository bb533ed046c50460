#include "client/cli/args.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tcplab::cli {

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv, const std::vector<OptionSpec>& spec) {
  Args a;
  bool options_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& w = argv[i];
    if (options_done || w.size() < 2 || w[0] != '-') {
      a.positional_.push_back(w);
      continue;
    }
    if (w == "--") {
      options_done = true;
      continue;
    }
    // "--name=value" carries its value; "--name value" takes the next word.
    std::string name = w, value;
    bool inline_value = false;
    if (auto eq = w.find('='); eq != std::string::npos && w.rfind("--", 0) == 0) {
      name = w.substr(0, eq);
      value = w.substr(eq + 1);
      inline_value = true;
    }
    const OptionSpec* found = nullptr;
    for (const OptionSpec& s : spec) {
      if (s.name == name) found = &s;
    }
    if (!found) return absl::InvalidArgumentError(absl::StrCat("unknown option ", name));
    if (!found->takes_value) {
      if (inline_value) return absl::InvalidArgumentError(absl::StrCat(name, " takes no value"));
      a.values_[name] = "";
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argv.size()) return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
      value = argv[++i];
    }
    a.values_[name] = value;
  }
  return a;
}

std::string Args::Get(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

absl::StatusOr<uint64_t> Args::GetUint(const std::string& name, uint64_t def, uint64_t min, uint64_t max) const {
  if (!Has(name)) return def;
  const std::string v = Get(name);
  uint64_t n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < min || n > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be an integer ", min, "..", max, ", got \"", v, "\""));
  }
  return n;
}

absl::StatusOr<double> Args::GetProbability(const std::string& name) const {
  if (!Has(name)) return 0.0;
  const std::string v = Get(name);
  double p = 0;
  // "5%" is accepted as 0.05: people write loss rates both ways.
  bool percent = !v.empty() && v.back() == '%';
  if (!absl::SimpleAtod(percent ? v.substr(0, v.size() - 1) : v, &p) || !std::isfinite(p)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be a probability 0..1 (or a percentage), got \"", v, "\""));
  }
  if (percent) p /= 100;
  if (p < 0 || p > 1) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be a probability 0..1, got \"", v, "\""));
  }
  return p;
}

absl::StatusOr<absl::Duration> Args::GetDuration(const std::string& name, absl::Duration def) const {
  if (!Has(name)) return def;
  return ParseDurationArg(name, Get(name));
}

absl::StatusOr<absl::Duration> ParseDurationArg(const std::string& what, const std::string& text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration() || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a duration like 500ms, 2s or 1m, got \"", text, "\""));
  }
  return d;
}

}  // namespace tcplab::cli
