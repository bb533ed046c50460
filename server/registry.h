// The server's sandboxes by name. Each entry owns its Sandbox and the EventHub that streams
// its events; RPCs hold an entry by shared_ptr for as long as they use it, so deleting a
// sandbox never pulls it from under a call in progress.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/sandbox/sandbox.h"
#include "server/event_stream.h"
#include "tcplab/v1/sandbox.pb.h"

namespace tcplab::server {

// Defaults and limits for new sandboxes (tcplabd's flags).
struct SandboxDefaults {
  sandbox::Backend backend = sandbox::Backend::kTun;
  Duration msl = std::chrono::seconds(30);     // RFC 9293 suggests 2 minutes; Linux uses 30 s
  Duration min_rto = std::chrono::seconds(1);  // RFC 6298 (2.4)
  uint32_t mtu = 1500;
  uint32_t event_capacity = 1 << 16;
  size_t max_sandboxes = 64;
};

struct SandboxEntry {
  std::string name;
  v1::SandboxOptions options;  // as in effect
  absl::Time created;
  std::unique_ptr<sandbox::Sandbox> sandbox;
  std::shared_ptr<EventHub> hub;

  ~SandboxEntry();
};

class Registry {
 public:
  explicit Registry(SandboxDefaults defaults) : defaults_(std::move(defaults)) {}
  ~Registry();

  absl::StatusOr<std::shared_ptr<SandboxEntry>> Create(const v1::CreateSandboxRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND "sandbox lab7 not found"; INVALID_ARGUMENT for an empty name (naming `field`).
  absl::StatusOr<std::shared_ptr<SandboxEntry>> Get(const std::string& name, absl::string_view field = "name") const
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::shared_ptr<SandboxEntry>> List() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Delete(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes every sandbox; streams end with `why`. New Creates fail with UNAVAILABLE after.
  void DeleteAll(const absl::Status& why) ABSL_LOCKS_EXCLUDED(mu_);

  const SandboxDefaults& defaults() const { return defaults_; }

  // [a-z][a-z0-9-]{0,31}: also part of the namespace's and the reactor thread's names.
  static absl::Status ValidateName(const std::string& name, absl::string_view field);

 private:
  absl::StatusOr<sandbox::SandboxConfig> ConfigFor(const std::string& name, const v1::SandboxOptions& in,
                                                   v1::SandboxOptions* effective) const;

  const SandboxDefaults defaults_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<SandboxEntry>> entries_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> creating_ ABSL_GUARDED_BY(mu_);  // names reserved by Creates in progress
  uint64_t next_auto_name_ ABSL_GUARDED_BY(mu_) = 1;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tcplab::server
