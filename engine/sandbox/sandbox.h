// Sandbox: one lab. A network namespace with a TUN device, the engine's Stack behind the TUN
// and the namespace's Linux kernel as a real peer in front of it; or, with the virtual
// backend, the engine alone (engine-to-engine) with no privileges. Everything runs on the
// sandbox's reactor thread; the public methods are thread-safe and post to it.
//
// Addresses (DESIGN.md): the kernel side of the TUN is 198.18.0.1/24; engine endpoints are
// 198.18.0.2 and up. Datagrams from the engine to an engine address loop back inside the
// sandbox; everything else goes to the kernel through the TUN.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/link/impairment.h"
#include "engine/link/virtual_link.h"
#include "engine/link/tun.h"
#include "engine/sandbox/event_log.h"
#include "engine/sandbox/kernel_peer.h"
#include "engine/sandbox/pcap_tap.h"
#include "engine/stack/stack.h"

namespace tcplab::sandbox {

class Netns;
class Reactor;

enum class Backend : uint8_t { kTun, kVirtual };
const char* ToString(Backend b);

// Which way datagrams travel, for impairments.
enum class Direction : uint8_t {
  kToKernel,  // engine -> TUN (and engine -> engine loopback)
  kToEngine,  // TUN -> engine
};

struct SandboxConfig {
  std::string name = "lab";
  Backend backend = Backend::kTun;
  stack::StackConfig engine;
  link::TunConfig tun;
  size_t event_capacity = 1 << 16;
  // Bound of the packet capture (Sandbox::Pcap), in octets of pcap file; 0 turns capture off.
  // Capture stops when the bound is reached (PcapTap says why not a ring).
  size_t pcap_max_bytes = PcapTap::kDefaultMaxBytes;
  // How many closed connections the sandbox remembers (see Sandbox::Get): the most recently
  // closed ones; older ones are forgotten, so that a long-lived sandbox does not grow.
  static constexpr size_t kDefaultClosedKept = 256;
  size_t closed_kept = kDefaultClosedKept;
};

struct ConnInfo {
  tcp::ConnId id = 0;
  StackKind stack = StackKind::kEngine;
  tcp::TcpState state = tcp::TcpState::kClosed;
  wire::Endpoint local, remote;
  bool listener = false;
  Instant now;  // when the snapshot was taken, on the sandbox's clock (timer deadlines are on it)
  std::optional<tcp::TcbSnapshot> engine;
  std::optional<KernelInfo> kernel;
};

struct SandboxCounters {
  uint64_t tun_datagrams_in = 0, tun_datagrams_out = 0, tun_write_errors = 0;
  uint64_t loopback_datagrams = 0;
  // Datagrams from the TUN larger than its MTU: TCP super-segments the kernel handed over in
  // one piece (TunConfig.vnet_hdr; GSO/TSO). Counted in tun_datagrams_in too.
  uint64_t tun_gso_datagrams_in = 0;
  // Datagrams to the TUN larger than its MTU: engine super-segments (TcpConfig::tso_max_bytes)
  // the kernel takes as GSO. Counted in tun_datagrams_out too.
  uint64_t tun_gso_datagrams_out = 0;
  PcapCounters pcap;  // all zero when capture is off
};

class Sandbox {
 public:
  // Creates the namespace, the TUN and the reactor. Without CAP_SYS_ADMIN/CAP_NET_ADMIN the
  // TUN backend fails with PERMISSION_DENIED naming the capability and --backend=virtual.
  static absl::StatusOr<std::unique_ptr<Sandbox>> Create(SandboxConfig cfg);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  const std::string& name() const { return cfg_.name; }
  Backend backend() const { return cfg_.backend; }
  std::string netns_name() const;  // "" for the virtual backend
  static constexpr wire::Ipv4 kEngineAddr = wire::Ipv4::Of(198, 18, 0, 2);

  absl::StatusOr<tcp::ConnId> Listen(StackKind stack, wire::Endpoint local, int backlog = 0);
  // local.ip 0 means the stack's default address; local.port 0 an ephemeral port.
  absl::StatusOr<tcp::ConnId> Connect(StackKind stack, wire::Endpoint local, wire::Endpoint remote);
  absl::StatusOr<size_t> Send(tcp::ConnId id, std::span<const uint8_t> data);
  struct Received {
    std::string data;
    bool eof = false;
  };
  absl::StatusOr<Received> Recv(tcp::ConnId id, size_t max);
  absl::Status Shutdown(tcp::ConnId id);
  absl::Status Close(tcp::ConnId id);
  absl::Status Abort(tcp::ConnId id);
  // One rule for both stacks: a connection (or listener) that reached CLOSED stays visible
  // with its final info (state CLOSED, its 4-tuple, and the TCB snapshot or TCP_INFO taken at
  // the change to CLOSED), after its stack has let go of it. The sandbox remembers the
  // SandboxConfig::closed_kept most recently closed connections; an older one is NOT_FOUND,
  // "closed and forgotten". On a closed connection its stack no longer holds, Send, Recv and
  // Shutdown fail with FAILED_PRECONDITION (ENOTCONN); Close and Abort do nothing and succeed,
  // as they do on a CLOSED connection the stack still holds.
  absl::StatusOr<ConnInfo> Get(tcp::ConnId id);
  std::vector<ConnInfo> List();
  // Every id Get answers for: of both stacks and the remembered closed ones, in one call to
  // the reactor.
  std::vector<tcp::ConnId> Ids();
  // How many closed connections are remembered now (at most SandboxConfig::closed_kept), and
  // how many connections the kernel peer holds: both stay bounded however many come and go.
  size_t closed_count();
  size_t kernel_peer_size();
  absl::Status SetImpairment(Direction dir, const link::Impairment& imp);
  SandboxCounters counters();
  // The packet capture so far as a pcap file (raw IPv4, nanosecond timestamps in wall time):
  // every datagram through the TUN, both ways, and every engine loopback datagram, as it
  // went on or came off the wire. FAILED_PRECONDITION when pcap_max_bytes is 0.
  absl::StatusOr<std::string> Pcap();

  EventLog& events() { return *events_; }
  // The log outlives the sandbox for as long as someone holds it (streams still draining it).
  std::shared_ptr<EventLog> shared_events() { return events_; }

  // Runs `pred` on the reactor every millisecond until it is true or `timeout` passes.
  bool WaitFor(const std::function<bool()>& pred, absl::Duration timeout);

  // A local application: code that runs on the reactor thread beside the engine, the way a
  // program sits on top of its kernel's sockets. It calls the engine directly (Listen,
  // Accept, Connect, Send, Recv, Close on `engine`), without the cross-thread Call that
  // Send and Recv above cost per call, so it can source or sink data as fast as the window
  // moves (tests/bench/tun_bench.cc). Its calls are not logged as AppEvents, and connections
  // it accepts itself are its own (engine listeners made through Listen() auto-accept).
  //
  // The sandbox runs it whenever the datapath has settled: after datagrams from the TUN,
  // timers and user calls. It returns true if it did something that may have queued output
  // (data, a window update, a SYN or FIN); the sandbox then sends that and runs it again, so
  // it must return false once it has nothing left to do for now.
  using LocalApp = std::function<bool(stack::Stack& engine, Instant now)>;
  // Installs `app` (null removes it) and runs it once. Thread-safe; returns after that run.
  void SetLocalApp(LocalApp app);

 private:
  class Sink;
  explicit Sandbox(SandboxConfig cfg);
  absl::Status Start();
  // Reactor-thread parts.
  void OnTunReadable();
  void OnEngineOutput(std::span<const uint8_t> datagram);
  void Pump();
  void Rearm();
  bool IsEngineAddress(wire::Ipv4 ip) const;
  // The stack that holds `id`, or NOT_FOUND (NotFound()).
  absl::StatusOr<StackKind> KindOf(tcp::ConnId id) const;
  // NOT_FOUND naming the id; for an id that was handed out, that it closed and was forgotten.
  absl::Status NotFound(tcp::ConnId id) const;
  // A user call on an id no stack holds: on a remembered closed connection, FAILED_PRECONDITION
  // (ENOTCONN), or OK for close and abort (`idempotent`), logged as an AppEvent unless `call`
  // is null; else NotFound.
  absl::Status CallOnGone(tcp::ConnId id, const char* call, bool idempotent);
  // The connection as its stack has it now (`kind` must hold it).
  absl::StatusOr<ConnInfo> LiveInfo(StackKind kind, tcp::ConnId id);
  // Get and Ids on the reactor thread (the public ones make one reactor call around them).
  absl::StatusOr<ConnInfo> InfoOnReactor(tcp::ConnId id);
  std::vector<tcp::ConnId> IdsOnReactor();
  // Remembers `info` (state CLOSED) as the newest closed connection, forgetting the oldest
  // beyond closed_kept. Replaces an earlier record of the same id.
  void RememberClosed(ConnInfo info);
  // From the event sinks, at the change to CLOSED, while the stack still has the connection.
  void OnEngineClosed(Instant now, tcp::ConnId id);
  void OnKernelClosed(tcp::ConnId id);
  // Close and Abort: a connection that was already CLOSED leaves its stack without a state
  // change; remember it as it was (in case its record was forgotten meanwhile).
  std::optional<ConnInfo> InfoIfClosed(StackKind kind, tcp::ConnId id);
  void RememberIfGone(std::optional<ConnInfo> closed_before);
  absl::StatusOr<wire::Endpoint> LocalEndpoint(StackKind stack, wire::Endpoint local) const;
  void AppLog(tcp::ConnId id, std::string call, const absl::Status& result, StackKind kind);
  void Capture(std::span<const uint8_t> datagram, Instant now);

  SandboxConfig cfg_;
  std::unique_ptr<Netns> netns_;
  std::unique_ptr<Reactor> reactor_;  // declared after netns_: stopped before it is removed
  std::unique_ptr<link::TunDevice> tun_;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<stack::Stack> engine_;
  std::unique_ptr<KernelPeer> kernel_;
  link::Impairer to_kernel_, to_engine_;
  std::unique_ptr<PcapTap> pcap_;  // null when capture is off
  std::vector<std::vector<uint8_t>> loopback_;
  std::vector<uint8_t> rx_buf_;  // OnTunReadable's; reactor thread only
  std::vector<tcp::ConnId> engine_listeners_;
  LocalApp local_app_;
  bool pumping_ = false;
  bool pump_posted_ = false;  // a Pump continuation is queued on the reactor
  bool observe_kernel_ = false;
  SandboxCounters counters_;
  std::atomic<tcp::ConnId> next_id_{1};
  // Closed connections (reactor thread only): final info by id, and ids oldest closed first.
  absl::flat_hash_map<tcp::ConnId, ConnInfo> closed_;
  std::deque<tcp::ConnId> closed_order_;
  std::shared_ptr<EventLog> events_;
};

}  // namespace tcplab::sandbox
