#include "server/registry.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/convert.h"

namespace tcplab::server {

namespace {

// Bounds on what one sandbox may ask for; they keep a single request from taking the server's
// memory (events ~150 octets each; capture; per-connection buffers).
constexpr uint32_t kMinMtu = 576;  // RFC 791: every host must take 576-octet datagrams
constexpr uint32_t kMaxMtu = 65535;
constexpr uint32_t kMaxEventCapacity = 1 << 20;
constexpr uint64_t kMaxPcapBytes = uint64_t{1} << 30;
constexpr uint32_t kMinBuffer = 1024;
constexpr uint32_t kMaxBuffer = 64u << 20;

absl::Status OutOfRange(absl::string_view field, uint64_t lo, uint64_t hi, uint64_t got) {
  return absl::InvalidArgumentError(
      absl::StrCat("options.", std::string(field), " must be ", lo, "..", hi, ", got ", got));
}

}  // namespace

SandboxEntry::~SandboxEntry() {
  // Streams still open drain what was logged, then end; the hub outlives the sandbox.
  if (hub) hub->Close(absl::NotFoundError(absl::StrCat("sandbox ", name, " was deleted")));
  sandbox.reset();  // stops the reactor, removes the namespace
}

Registry::~Registry() { DeleteAll(absl::UnavailableError("server shutting down")); }

absl::Status Registry::ValidateName(const std::string& name, absl::string_view field) {
  bool ok = !name.empty() && name.size() <= 32 && name[0] >= 'a' && name[0] <= 'z';
  for (char c : name) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(field), " must match [a-z][a-z0-9-]{0,31}, got \"",
                                                   name.substr(0, 64), name.size() > 64 ? "..." : "", "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<sandbox::SandboxConfig> Registry::ConfigFor(const std::string& name, const v1::SandboxOptions& in,
                                                           v1::SandboxOptions* eff) const {
  sandbox::SandboxConfig cfg;
  cfg.name = name;
  *eff = in;
  switch (in.backend()) {
    case v1::BACKEND_UNSPECIFIED:
      cfg.backend = defaults_.backend;
      break;
    case v1::BACKEND_TUN:
      cfg.backend = sandbox::Backend::kTun;
      break;
    case v1::BACKEND_VIRTUAL:
      cfg.backend = sandbox::Backend::kVirtual;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("options.backend: unknown value ", int{in.backend()}));
  }
  eff->set_backend(cfg.backend == sandbox::Backend::kTun ? v1::BACKEND_TUN : v1::BACKEND_VIRTUAL);

  tcp::TcpConfig& tcp = cfg.engine.tcp;
  tcp.msl = defaults_.msl;
  tcp.min_rto = defaults_.min_rto;
  if (in.has_msl()) {
    absl::StatusOr<Duration> d = FromProto(in.msl(), "options.msl");
    if (!d.ok()) return d.status();
    if (*d <= Duration{0}) return absl::InvalidArgumentError("options.msl must be positive, got 0");
    tcp.msl = *d;
  }
  if (in.has_min_rto()) {
    absl::StatusOr<Duration> d = FromProto(in.min_rto(), "options.min_rto");
    if (!d.ok()) return d.status();
    if (*d < std::chrono::milliseconds(1) || *d > tcp.max_rto) {
      return absl::InvalidArgumentError(absl::StrCat("options.min_rto must be 1ms..", ToMillis(tcp.max_rto) / 1000,
                                                     "s, got ", d->count(), "ns"));
    }
    tcp.min_rto = *d;
  }
  // RFC 6298 (2.1): the initial RTO is 1 s; a lab that lowers the floor below it wants fast
  // recovery of a lost SYN too.
  tcp.initial_rto = std::max(tcp.min_rto, std::min(tcp.initial_rto, tcp.min_rto * 4));
  *eff->mutable_msl() = ToProto(tcp.msl);
  *eff->mutable_min_rto() = ToProto(tcp.min_rto);

  uint32_t mtu = in.mtu() ? in.mtu() : defaults_.mtu;
  if (mtu < kMinMtu || mtu > kMaxMtu) return OutOfRange("mtu", kMinMtu, kMaxMtu, mtu);
  cfg.tun.mtu = static_cast<int>(mtu);
  tcp.mss = static_cast<uint16_t>(mtu - 40);  // IPv4 and TCP headers without options
  eff->set_mtu(mtu);

  cfg.tun.vnet_hdr = in.vnet_hdr();
  // With offloads the engine may hand the kernel super-segments of whole MSS pieces.
  if (in.vnet_hdr()) tcp.tso_max_bytes = 65535 - 40 - 40;

  uint32_t events = in.event_capacity() ? in.event_capacity() : defaults_.event_capacity;
  if (events < 16 || events > kMaxEventCapacity) return OutOfRange("event_capacity", 16, kMaxEventCapacity, events);
  cfg.event_capacity = events;
  eff->set_event_capacity(events);

  if (in.pcap_off()) {
    cfg.pcap_max_bytes = 0;
    eff->set_pcap_max_bytes(0);
  } else {
    if (in.pcap_max_bytes() > kMaxPcapBytes) return OutOfRange("pcap_max_bytes", 0, kMaxPcapBytes, in.pcap_max_bytes());
    if (in.pcap_max_bytes()) cfg.pcap_max_bytes = in.pcap_max_bytes();
    eff->set_pcap_max_bytes(cfg.pcap_max_bytes);
  }

  tcp.delayed_ack = !in.no_delayed_ack();
  tcp.nagle = !in.no_nagle();
  if (in.send_buffer()) {
    if (in.send_buffer() < kMinBuffer || in.send_buffer() > kMaxBuffer) {
      return OutOfRange("send_buffer", kMinBuffer, kMaxBuffer, in.send_buffer());
    }
    tcp.send_buffer = in.send_buffer();
  }
  if (in.recv_buffer()) {
    if (in.recv_buffer() < kMinBuffer || in.recv_buffer() > kMaxBuffer) {
      return OutOfRange("recv_buffer", kMinBuffer, kMaxBuffer, in.recv_buffer());
    }
    tcp.recv_buffer = in.recv_buffer();
  }
  eff->set_send_buffer(static_cast<uint32_t>(tcp.send_buffer));
  eff->set_recv_buffer(static_cast<uint32_t>(tcp.recv_buffer));
  return cfg;
}

absl::StatusOr<std::shared_ptr<SandboxEntry>> Registry::Create(const v1::CreateSandboxRequest& req,
                                                               const std::string& tenant) {
  std::string name = req.name();
  if (!name.empty()) {
    if (absl::Status s = ValidateName(name, "name"); !s.ok()) return s;
  }
  auto entry = std::make_shared<SandboxEntry>();
  absl::StatusOr<sandbox::SandboxConfig> cfg;
  {
    absl::MutexLock l(&mu_);
    if (shut_down_) return absl::UnavailableError("server shutting down");
    if (entries_.size() + creating_.size() >= defaults_.max_sandboxes) {
      return absl::ResourceExhaustedError(absl::StrCat("the server has its maximum of ", defaults_.max_sandboxes,
                                                       " sandboxes; delete one first (tcplabd --max_sandboxes)"));
    }
    auto taken = [&](const std::string& n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return entries_.contains({tenant, n}) || creating_.contains({tenant, n});
    };
    if (name.empty()) {
      auto next = next_auto_name_.try_emplace(tenant, 1).first;
      do {
        name = absl::StrCat("lab", next->second++);
      } while (taken(name));
    } else if (taken(name)) {
      return absl::AlreadyExistsError(absl::StrCat("sandbox ", name, " already exists"));
    }
    cfg = ConfigFor(name, req.options(), &entry->options);
    if (!cfg.ok()) return cfg.status();
    creating_.insert({tenant, name});
  }
  // Creating a namespace and a TUN takes milliseconds: not under the lock.
  absl::StatusOr<std::unique_ptr<sandbox::Sandbox>> sb = sandbox::Sandbox::Create(*std::move(cfg));
  absl::MutexLock l(&mu_);
  creating_.erase({tenant, name});
  if (!sb.ok()) return sb.status();
  entry->tenant = tenant;
  entry->name = name;
  entry->created = absl::Now();
  entry->sandbox = std::move(*sb);
  entry->hub = EventHub::Start(entry->sandbox->shared_events());
  if (shut_down_) return absl::UnavailableError("server shutting down");  // entry is destroyed
  entries_[{tenant, name}] = entry;
  return entry;
}

absl::StatusOr<std::shared_ptr<SandboxEntry>> Registry::Get(const std::string& name, absl::string_view field,
                                                            const std::string& tenant) const {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(std::string(field), " is required"));
  absl::MutexLock l(&mu_);
  if (shut_down_) return absl::UnavailableError("server shutting down");
  auto it = entries_.find({tenant, name});
  if (it == entries_.end()) {
    if (absl::Status s = ValidateName(name, field); !s.ok()) return s;
    return absl::NotFoundError(absl::StrCat("sandbox ", name, " not found"));
  }
  return it->second;
}

std::vector<std::shared_ptr<SandboxEntry>> Registry::List(const std::string& tenant) const {
  absl::MutexLock l(&mu_);
  std::vector<std::shared_ptr<SandboxEntry>> out;
  // Keys sort by tenant first: the tenant's entries are one run, in name order.
  for (auto it = entries_.lower_bound({tenant, ""}); it != entries_.end() && it->first.first == tenant; ++it) {
    out.push_back(it->second);
  }
  return out;
}

absl::Status Registry::Delete(const std::string& name, const std::string& tenant) {
  std::shared_ptr<SandboxEntry> e;
  {
    absl::StatusOr<std::shared_ptr<SandboxEntry>> got = Get(name, "name", tenant);
    if (!got.ok()) return got.status();
    absl::MutexLock l(&mu_);
    auto it = entries_.find({tenant, name});
    if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("sandbox ", name, " not found"));
    e = std::move(it->second);
    entries_.erase(it);
  }
  e->hub->Close(absl::NotFoundError(absl::StrCat("sandbox ", name, " was deleted")));
  return absl::OkStatus();  // the sandbox goes when the last call using it lets go
}

void Registry::DeleteAll(const absl::Status& why) {
  std::map<Key, std::shared_ptr<SandboxEntry>> all;
  {
    absl::MutexLock l(&mu_);
    shut_down_ = true;
    all.swap(entries_);
  }
  for (auto& [key, e] : all) e->hub->Close(why);
}

}  // namespace tcplab::server
