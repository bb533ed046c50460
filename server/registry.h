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
  std::string tenant;  // who created it ("" without authentication); only it sees the sandbox
  std::string name;    // as the tenant sees it; unique per tenant
  v1::SandboxOptions options;  // as in effect
  absl::Time created;
  std::unique_ptr<sandbox::Sandbox> sandbox;
  std::shared_ptr<EventHub> hub;

  ~SandboxEntry();
};

// Sandboxes are per tenant (server/auth.h): names are unique within a tenant, and another
// tenant's sandbox is reported exactly like one that does not exist. The name is only the
// key: the namespace is named by the process and a counter (engine/sandbox/netns.h), so two
// tenants' "lab1" never collide. --max_sandboxes stays server-wide (it bounds the host).
class Registry {
 public:
  explicit Registry(SandboxDefaults defaults) : defaults_(std::move(defaults)) {}
  ~Registry();

  // An empty name picks the tenant's next free "labN".
  absl::StatusOr<std::shared_ptr<SandboxEntry>> Create(const v1::CreateSandboxRequest& req,
                                                       const std::string& tenant = "") ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND "sandbox lab7 not found" (also for another tenant's lab7); INVALID_ARGUMENT for
  // an empty name (naming `field`).
  absl::StatusOr<std::shared_ptr<SandboxEntry>> Get(const std::string& name, absl::string_view field = "name",
                                                    const std::string& tenant = "") const ABSL_LOCKS_EXCLUDED(mu_);
  // The tenant's sandboxes, by name.
  std::vector<std::shared_ptr<SandboxEntry>> List(const std::string& tenant = "") const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Delete(const std::string& name, const std::string& tenant = "") ABSL_LOCKS_EXCLUDED(mu_);
  // Removes every sandbox; streams end with `why`. New Creates fail with UNAVAILABLE after.
  void DeleteAll(const absl::Status& why) ABSL_LOCKS_EXCLUDED(mu_);

  const SandboxDefaults& defaults() const { return defaults_; }

  // [a-z][a-z0-9-]{0,31}. The reactor thread is named after it (tcplab-NAME, cut to 15 octets,
  // for ps/top only); the namespace is not (tcplab-<pid>-<counter>), so names may repeat
  // across tenants.
  static absl::Status ValidateName(const std::string& name, absl::string_view field);

 private:
  absl::StatusOr<sandbox::SandboxConfig> ConfigFor(const std::string& name, const v1::SandboxOptions& in,
                                                   v1::SandboxOptions* effective) const;

  const SandboxDefaults defaults_;
  using Key = std::pair<std::string, std::string>;  // tenant, name
  mutable absl::Mutex mu_;
  std::map<Key, std::shared_ptr<SandboxEntry>> entries_ ABSL_GUARDED_BY(mu_);
  std::set<Key> creating_ ABSL_GUARDED_BY(mu_);  // names reserved by Creates in progress
  std::map<std::string, uint64_t> next_auto_name_ ABSL_GUARDED_BY(mu_);  // by tenant; absent: 1
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tcplab::server
