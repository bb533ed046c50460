// Command-line arguments of one subcommand: options (`--name VALUE`, `--name=VALUE`, bare
// switches) and positional arguments, checked against what the subcommand accepts. Typed
// getters return an error that names the option, for a usage error (exit 2).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tcplab::cli {

struct OptionSpec {
  std::string name;  // with its dashes: "--port", "-o"
  bool takes_value = true;
};

class Args {
 public:
  // Splits `argv` by `spec`. A word starting with '-' (other than "-" itself) must be a
  // known option; "--" ends the options. Repeated options: the last one wins.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv, const std::vector<OptionSpec>& spec);

  bool Has(const std::string& name) const { return values_.contains(name); }
  std::string Get(const std::string& name, const std::string& def = "") const;
  const std::vector<std::string>& positional() const { return positional_; }

  // Typed values; absent options give `def`. Errors name the option and the bad value.
  absl::StatusOr<uint64_t> GetUint(const std::string& name, uint64_t def, uint64_t min, uint64_t max) const;
  absl::StatusOr<double> GetProbability(const std::string& name) const;  // 0..1, default 0
  absl::StatusOr<absl::Duration> GetDuration(const std::string& name, absl::Duration def) const;

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// "500ms", "2s", "1m", "1.5s" (absl::ParseDuration); negative durations are refused.
absl::StatusOr<absl::Duration> ParseDurationArg(const std::string& what, const std::string& text);

}  // namespace tcplab::cli
