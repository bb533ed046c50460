#include "engine/sandbox/sandbox.h"

#include <sys/epoll.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/sandbox/netns.h"
#include "engine/sandbox/reactor.h"
#include "engine/tcp/socket_error.h"

namespace tcplab::sandbox {

namespace {

// The largest IPv4 datagram, rounded up: with TunConfig.vnet_hdr the kernel hands over TCP
// super-segments of up to 64 KiB (TunDevice::Read keeps the virtio_net_hdr out of this buffer).
constexpr size_t kMaxDatagram = 65536;
constexpr int kReadBatch = 64;
// How often kernel states are re-read while one may change by itself (a timer in the kernel).
constexpr Duration kKernelPollInterval = std::chrono::milliseconds(5);

wire::Ipv4 Dst(std::span<const uint8_t> d) {
  if (d.size() < 20) return {};
  return wire::Ipv4{(uint32_t{d[16]} << 24) | (uint32_t{d[17]} << 16) | (uint32_t{d[18]} << 8) | d[19]};
}

// SYN, FIN or RST: a segment that can change a TCP state on the other side.
bool ChangesState(std::span<const uint8_t> d) {
  if (d.size() < 20 || (d[0] >> 4) != 4 || d[9] != 6) return false;
  size_t ihl = size_t{d[0] & 0x0fu} * 4;
  if (d.size() < ihl + 14) return false;
  return (d[ihl + 13] & (wire::kSyn | wire::kFin | wire::kRst)) != 0;
}

}  // namespace

const char* ToString(Backend b) { return b == Backend::kTun ? "tun" : "virtual"; }

// Turns the engine's events into EventLog entries, and takes a connection's final info when
// it changes to CLOSED.
class Sandbox::Sink : public tcp::EventSink {
 public:
  explicit Sink(Sandbox& sb) : sb_(sb) {}
  void OnSegment(Instant now, const tcp::SegmentEvent& ev) override { Add(now, ev); }
  void OnState(Instant now, const tcp::StateEvent& ev) override {
    Add(now, ev);
    if (ev.to == tcp::TcpState::kClosed) sb_.OnEngineClosed(now, ev.conn);
  }
  void OnTimer(Instant now, const tcp::TimerEvent& ev) override { Add(now, ev); }

  template <typename T>
  void Add(Instant now, const T& body, StackKind stack = StackKind::kEngine) {
    Event e;
    e.since_start = now.time_since_epoch();
    e.wall = sb_.reactor_->WallTime(now);
    e.stack = stack;
    e.body = body;
    sb_.events_->Append(std::move(e));
  }

 private:
  Sandbox& sb_;
};

Sandbox::Sandbox(SandboxConfig cfg) : cfg_(std::move(cfg)), events_(std::make_shared<EventLog>(cfg_.event_capacity)) {}

absl::StatusOr<std::unique_ptr<Sandbox>> Sandbox::Create(SandboxConfig cfg) {
  std::unique_ptr<Sandbox> sb(new Sandbox(std::move(cfg)));
  if (absl::Status s = sb->Start(); !s.ok()) return s;
  return sb;
}

absl::Status Sandbox::Start() {
  if (cfg_.pcap_max_bytes > 0) {
    absl::StatusOr<std::unique_ptr<PcapTap>> tap = PcapTap::Create(cfg_.pcap_max_bytes);
    if (!tap.ok()) return tap.status();
    pcap_ = std::move(*tap);
  }
  if (cfg_.backend == Backend::kTun) {
    absl::StatusOr<std::unique_ptr<Netns>> ns = Netns::Create();
    if (!ns.ok()) return ns.status();
    netns_ = std::move(*ns);
  }
  absl::StatusOr<std::unique_ptr<Reactor>> r = Reactor::Start(netns_.get(), "tcplab-" + cfg_.name);
  if (!r.ok()) return r.status();
  reactor_ = std::move(*r);
  sink_ = std::make_unique<Sink>(*this);
  return reactor_->Call([this]() -> absl::Status {
    stack::StackConfig ecfg = cfg_.engine;
    ecfg.id_allocator = [this] { return next_id_++; };
    engine_ = std::make_unique<stack::Stack>(
        std::move(ecfg), [this](std::span<const uint8_t> d) { OnEngineOutput(d); }, sink_.get());
    if (cfg_.backend == Backend::kVirtual) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<link::TunDevice>> tun = link::TunDevice::Open(cfg_.tun);
    if (!tun.ok()) return tun.status();
    tun_ = std::move(*tun);
    reactor_->Watch(tun_->fd(), EPOLLIN, [this](uint32_t) { OnTunReadable(); });
    kernel_ = std::make_unique<KernelPeer>(
        *reactor_, [this] { return next_id_++; },
        [this](const tcp::StateEvent& ev) {
          sink_->Add(reactor_->Now(), ev, StackKind::kKernel);
          if (ev.to == tcp::TcpState::kClosed) OnKernelClosed(ev.conn);
        });
    return absl::OkStatus();
  });
}

Sandbox::~Sandbox() {
  if (reactor_) {
    reactor_->Call([this] {
      local_app_ = nullptr;  // it may hold ids of (or pointers into) the engine
      kernel_.reset();  // closes the kernel sockets
      if (tun_) reactor_->Unwatch(tun_->fd());
      tun_.reset();
      engine_.reset();
      reactor_->SetTimer(kNever, nullptr);
    });
    reactor_.reset();  // joins the thread, which leaves the namespace
  }
  netns_.reset();  // removes the namespace, and with it anything left inside
  events_->Close();
}

std::string Sandbox::netns_name() const { return netns_ ? netns_->name() : ""; }

bool Sandbox::IsEngineAddress(wire::Ipv4 ip) const {
  if (cfg_.backend == Backend::kVirtual) return true;
  uint32_t net = cfg_.tun.kernel_addr.v & ~((1u << (32 - cfg_.tun.prefix_len)) - 1);
  uint32_t mask = ~((1u << (32 - cfg_.tun.prefix_len)) - 1);
  return ip.v != cfg_.tun.kernel_addr.v && (ip.v & mask) == net;
}

// ---------------------------------------------------------------------------------------------
// Datapath (reactor thread).

void Sandbox::OnTunReadable() {
  // One buffer for the sandbox's life: a fresh 64 KiB vector per wakeup cost a zero-fill
  // and, on this thread's malloc arena, growing and trimming the heap (page faults) each time.
  if (rx_buf_.empty()) rx_buf_.resize(kMaxDatagram);
  Instant now = reactor_->Now();
  for (int i = 0; i < kReadBatch; ++i) {
    absl::StatusOr<size_t> n = tun_->Read(rx_buf_);
    if (!n.ok() || *n == 0) break;
    std::span<const uint8_t> d(rx_buf_.data(), *n);
    counters_.tun_datagrams_in++;
    if (*n > static_cast<size_t>(cfg_.tun.mtu)) counters_.tun_gso_datagrams_in++;
    Capture(d, now);  // as it came off the wire, before the inbound impairer
    // The kernel changed state before it sent this; read its state before the engine reacts.
    if (ChangesState(d) && kernel_) kernel_->Observe();
    to_engine_.Submit(d, now);
  }
  Pump();
}

// Stamped with the wall time of the reactor instant the datapath used for the datagram, so
// the capture and the event log agree on when things happened.
void Sandbox::Capture(std::span<const uint8_t> datagram, Instant now) {
  if (pcap_) pcap_->Record(datagram, reactor_->WallTime(now));
}

void Sandbox::OnEngineOutput(std::span<const uint8_t> datagram) {
  to_kernel_.Submit(datagram, reactor_->Now());
}

// Moves datagrams until nothing more is due: impairers to the engine and to the TUN, the
// engine's loopback, the engine's timers. Never re-entered: the engine's output only queues.
void Sandbox::Pump() {
  // A continuation posted before the destructor's clean-up may run after it: nothing to do.
  if (pumping_ || !engine_) return;
  pumping_ = true;
  // Engine-to-engine traffic (loopback) with an application that keeps reading and writing
  // never settles. After this many turns the pump yields and continues as a posted task, so
  // user calls queued on the reactor (GetConnection, Send...) are not starved meanwhile.
  constexpr int kMaxTurns = 8;
  int turns = 0;
  bool yielded = false;
  for (bool progress = true; progress;) {
    if (++turns > kMaxTurns) {
      yielded = true;
      break;
    }
    progress = false;
    Instant now = reactor_->Now();
    to_engine_.Poll(now, [&](std::span<const uint8_t> d) {
      engine_->OnDatagram(d, now);
      progress = true;
    });
    to_kernel_.Poll(now, [&](std::span<const uint8_t> d) {
      progress = true;
      if (IsEngineAddress(Dst(d))) {
        counters_.loopback_datagrams++;
        Capture(d, now);
        loopback_.emplace_back(d.begin(), d.end());
        return;
      }
      if (!tun_) return;
      if (tun_->Write(d).ok()) {
        counters_.tun_datagrams_out++;
        if (d.size() > static_cast<size_t>(cfg_.tun.mtu)) counters_.tun_gso_datagrams_out++;
        Capture(d, now);  // what the kernel got: after the outbound impairer
      } else {
        counters_.tun_write_errors++;
      }
      if (ChangesState(d) || (kernel_ && kernel_->NeedsPolling())) observe_kernel_ = true;
    });
    for (size_t i = 0; i < loopback_.size(); ++i) {
      std::vector<uint8_t> d = std::move(loopback_[i]);
      engine_->OnDatagram(d, now);
    }
    loopback_.clear();
    if (engine_->NextDeadline() <= now) {
      engine_->OnTick(now);
      progress = true;
    }
    // The local application reacts to what just arrived; what it queues goes out next turn.
    if (local_app_ && local_app_(*engine_, now)) progress = true;
  }
  pumping_ = false;
  // Engine listeners accept at once, like a server that calls accept() in a loop: the
  // connections become the user's to inspect, read and close by id.
  for (tcp::ConnId l : engine_listeners_) {
    while (engine_->Accept(l).ok()) {
    }
  }
  if (kernel_ && (observe_kernel_ || kernel_->NeedsPolling())) {
    observe_kernel_ = false;
    kernel_->Observe();
  }
  // One continuation at a time: timers and user calls pump too, and each would otherwise
  // queue another, until user calls waited behind a growing line of pumps.
  if (yielded && !pump_posted_) {
    pump_posted_ = true;
    reactor_->Post([this] {
      pump_posted_ = false;
      Pump();
    });
  }
  Rearm();
}

void Sandbox::Rearm() {
  Instant next = std::min({engine_->NextDeadline(), to_engine_.NextDeadline(), to_kernel_.NextDeadline()});
  if (kernel_ && kernel_->NeedsPolling()) next = std::min(next, reactor_->Now() + kKernelPollInterval);
  reactor_->SetTimer(next, [this] { Pump(); });
}

// ---------------------------------------------------------------------------------------------
// User calls: each runs on the reactor, then lets the datapath run.

absl::StatusOr<StackKind> Sandbox::KindOf(tcp::ConnId id) const {
  if (kernel_ && kernel_->Owns(id)) return StackKind::kKernel;
  if (engine_->Find(id) || engine_->IsListener(id)) return StackKind::kEngine;
  return NotFound(id);
}

absl::Status Sandbox::NotFound(tcp::ConnId id) const {
  // Ids are handed out in increasing order and every one names a connection or listener that
  // existed; one below the next id that nobody holds any more has closed and been forgotten.
  if (id != 0 && id < next_id_.load() && !closed_.contains(id)) {
    return absl::NotFoundError(absl::StrCat("connection ", name(), "/", id,
                                            " not found: it closed and was forgotten (a sandbox remembers its ",
                                            cfg_.closed_kept, " most recently closed connections)"));
  }
  return absl::NotFoundError(absl::StrCat("connection ", name(), "/", id, " not found"));
}

absl::Status Sandbox::CallOnGone(tcp::ConnId id, const char* call, bool idempotent) {
  auto it = closed_.find(id);
  if (it == closed_.end()) return NotFound(id);
  // Like a CLOSED connection its stack still holds: close and abort are no-ops, data calls
  // fail (the engine's Tcb and the kernel peer answer ENOTCONN there too).
  absl::Status s;
  if (!idempotent) {
    s = tcp::SocketError(absl::StatusCode::kFailedPrecondition, "ENOTCONN",
                         absl::StrCat("connection ", name(), "/", id, " is CLOSED"));
  }
  if (call) AppLog(id, call, s, it->second.stack);
  return s;
}

void Sandbox::RememberClosed(ConnInfo info) {
  if (cfg_.closed_kept == 0) return;
  tcp::ConnId id = info.id;
  info.state = tcp::TcpState::kClosed;
  if (info.engine) info.engine->state = tcp::TcpState::kClosed;  // a listener's says LISTEN
  if (info.kernel) info.kernel->state = tcp::TcpState::kClosed;
  if (auto [it, fresh] = closed_.insert_or_assign(id, std::move(info)); !fresh) {
    closed_order_.erase(std::find(closed_order_.begin(), closed_order_.end(), id));
  }
  closed_order_.push_back(id);
  while (closed_order_.size() > cfg_.closed_kept) {
    closed_.erase(closed_order_.front());
    closed_order_.pop_front();
  }
}

// Called from the engine's event sink inside the state change, before the stack reaps the
// TCB (Stack::OnState queues it; Reap runs when the stack call settles): the snapshot is the
// TCB as it ended, counters, ISS and IRS included. Snapshot only reads the engine, which a
// sink may do. A listener closed by the user is remembered the same way (the stack reports
// its LISTEN -> CLOSED while it still has it).
void Sandbox::OnEngineClosed(Instant now, tcp::ConnId id) {
  if (!engine_) return;  // being destroyed
  absl::StatusOr<tcp::TcbSnapshot> snap = engine_->Snapshot(id);
  if (!snap.ok()) return;
  ConnInfo info;
  info.id = id;
  info.stack = StackKind::kEngine;
  info.local = snap->local;
  info.remote = snap->remote;
  info.listener = engine_->IsListener(id);
  info.now = now;
  info.engine = *std::move(snap);
  RememberClosed(std::move(info));
}

// Called from the kernel peer's state callback while it still has the connection (with its
// socket, if the user has not closed it: then TCP_INFO is the kernel's last word on it).
void Sandbox::OnKernelClosed(tcp::ConnId id) {
  if (!kernel_) return;  // being destroyed
  if (absl::StatusOr<ConnInfo> info = LiveInfo(StackKind::kKernel, id); info.ok()) RememberClosed(*std::move(info));
}

std::optional<ConnInfo> Sandbox::InfoIfClosed(StackKind kind, tcp::ConnId id) {
  absl::StatusOr<ConnInfo> info = LiveInfo(kind, id);
  if (!info.ok() || info->state != tcp::TcpState::kClosed) return std::nullopt;
  return *std::move(info);
}

void Sandbox::RememberIfGone(std::optional<ConnInfo> closed_before) {
  if (!closed_before || KindOf(closed_before->id).ok()) return;
  RememberClosed(*std::move(closed_before));
}

size_t Sandbox::closed_count() {
  return reactor_->Call([&] { return closed_.size(); });
}

size_t Sandbox::kernel_peer_size() {
  return reactor_->Call([&] { return kernel_ ? kernel_->Ids().size() : size_t{0}; });
}

void Sandbox::AppLog(tcp::ConnId id, std::string call, const absl::Status& result, StackKind kind) {
  // The code and message, without Status::ToString's payload dump.
  std::string r = result.ok() ? "OK"
                              : absl::StrCat(absl::StatusCodeToString(result.code()), ": ", result.message());
  sink_->Add(reactor_->Now(), AppEvent{id, std::move(call), std::move(r)}, kind);
}

// The address a stack's endpoint gets when the user leaves it 0, or an error for KERNEL in a
// sandbox without a kernel peer.
absl::StatusOr<wire::Endpoint> Sandbox::LocalEndpoint(StackKind stack, wire::Endpoint local) const {
  if (stack == StackKind::kKernel && !kernel_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sandbox ", name(), " uses the virtual backend: it has no kernel peer; use stack ENGINE"));
  }
  if (local.ip.v == 0) local.ip = stack == StackKind::kKernel ? cfg_.tun.kernel_addr : kEngineAddr;
  return local;
}

absl::StatusOr<tcp::ConnId> Sandbox::Listen(StackKind stack, wire::Endpoint local, int backlog) {
  return reactor_->Call([&]() -> absl::StatusOr<tcp::ConnId> {
    absl::StatusOr<wire::Endpoint> ep = LocalEndpoint(stack, local);
    absl::StatusOr<tcp::ConnId> id;
    if (!ep.ok()) {
      id = ep.status();
    } else if (stack == StackKind::kKernel) {
      id = kernel_->Listen(*ep, backlog);
    } else {
      id = engine_->Listen(*ep, reactor_->Now(), backlog);
      if (id.ok()) engine_listeners_.push_back(*id);
    }
    AppLog(id.ok() ? *id : 0, absl::StrCat("listen ", (ep.ok() ? *ep : local).ToString()), id.status(), stack);
    Pump();
    return id;
  });
}

absl::StatusOr<tcp::ConnId> Sandbox::Connect(StackKind stack, wire::Endpoint local, wire::Endpoint remote) {
  return reactor_->Call([&]() -> absl::StatusOr<tcp::ConnId> {
    absl::StatusOr<wire::Endpoint> ep = LocalEndpoint(stack, local);
    absl::StatusOr<tcp::ConnId> id;
    if (!ep.ok()) {
      id = ep.status();
    } else {
      id = stack == StackKind::kKernel ? kernel_->Connect(*ep, remote)
                                       : engine_->Connect(*ep, remote, reactor_->Now());
    }
    AppLog(id.ok() ? *id : 0, absl::StrCat("connect ", remote.ToString()), id.status(), stack);
    Pump();
    return id;
  });
}

absl::StatusOr<size_t> Sandbox::Send(tcp::ConnId id, std::span<const uint8_t> data) {
  return reactor_->Call([&]() -> absl::StatusOr<size_t> {
    absl::StatusOr<StackKind> kind = KindOf(id);
    if (!kind.ok()) return CallOnGone(id, "send", false);
    absl::StatusOr<size_t> n = *kind == StackKind::kKernel ? kernel_->Send(id, data)
                                                             : engine_->Send(id, data, reactor_->Now());
    AppLog(id, absl::StrCat("send ", data.size(), " octets", n.ok() ? absl::StrCat(" (", *n, " taken)") : ""),
           n.status(), *kind);
    Pump();
    return n;
  });
}

absl::StatusOr<Sandbox::Received> Sandbox::Recv(tcp::ConnId id, size_t max) {
  return reactor_->Call([&]() -> absl::StatusOr<Received> {
    absl::StatusOr<StackKind> kind = KindOf(id);
    if (!kind.ok()) return CallOnGone(id, nullptr, false);  // receives are not logged
    Received r;
    if (*kind == StackKind::kEngine) {
      // No more than what is there: callers poll with large maxima while they wait.
      if (const tcp::Tcb* tcb = engine_->Find(id)) max = std::min(max, std::max<size_t>(tcb->readable(), 1));
    }
    r.data.resize(max);
    std::span<uint8_t> out(reinterpret_cast<uint8_t*>(r.data.data()), r.data.size());
    absl::StatusOr<size_t> n;
    if (*kind == StackKind::kKernel) {
      n = kernel_->Recv(id, out, &r.eof);
    } else {
      n = engine_->Recv(id, out, reactor_->Now());
      if (n.ok() && *n == 0) {
        const tcp::Tcb* tcb = engine_->Find(id);
        r.eof = tcb && tcb->AtEof();
      }
    }
    if (!n.ok()) return n.status();
    r.data.resize(*n);
    Pump();  // reading may open the window
    return r;
  });
}

absl::Status Sandbox::Shutdown(tcp::ConnId id) {
  return reactor_->Call([&]() -> absl::Status {
    absl::StatusOr<StackKind> kind = KindOf(id);
    if (!kind.ok()) return CallOnGone(id, "shutdown", false);
    absl::Status s = *kind == StackKind::kKernel ? kernel_->Shutdown(id) : engine_->Shutdown(id, reactor_->Now());
    AppLog(id, "shutdown", s, *kind);
    Pump();
    return s;
  });
}

absl::Status Sandbox::Close(tcp::ConnId id) {
  return reactor_->Call([&]() -> absl::Status {
    absl::StatusOr<StackKind> kind = KindOf(id);
    if (!kind.ok()) return CallOnGone(id, "close", true);
    std::optional<ConnInfo> closed_before = InfoIfClosed(*kind, id);
    absl::Status s = *kind == StackKind::kKernel ? kernel_->Close(id) : engine_->Close(id, reactor_->Now());
    RememberIfGone(std::move(closed_before));
    std::erase(engine_listeners_, id);
    AppLog(id, "close", s, *kind);
    Pump();
    return s;
  });
}

absl::Status Sandbox::Abort(tcp::ConnId id) {
  return reactor_->Call([&]() -> absl::Status {
    absl::StatusOr<StackKind> kind = KindOf(id);
    if (!kind.ok()) return CallOnGone(id, "abort", true);
    std::optional<ConnInfo> closed_before = InfoIfClosed(*kind, id);
    absl::Status s = *kind == StackKind::kKernel ? kernel_->Abort(id) : engine_->Abort(id, reactor_->Now());
    RememberIfGone(std::move(closed_before));
    std::erase(engine_listeners_, id);
    AppLog(id, "abort", s, *kind);
    Pump();
    return s;
  });
}

absl::StatusOr<ConnInfo> Sandbox::LiveInfo(StackKind kind, tcp::ConnId id) {
  ConnInfo info;
  info.id = id;
  info.stack = kind;
  info.now = reactor_->Now();
  if (kind == StackKind::kKernel) {
    absl::StatusOr<KernelInfo> k = kernel_->Info(id);
    if (!k.ok()) return k.status();
    info.state = k->state;
    info.local = k->local;
    info.remote = k->remote;
    info.listener = k->listener;  // also once CLOSED
    info.kernel = *k;
  } else {
    absl::StatusOr<tcp::TcbSnapshot> s = engine_->Snapshot(id);
    if (!s.ok()) return s.status();
    info.state = s->state;
    info.local = s->local;
    info.remote = s->remote;
    info.listener = engine_->IsListener(id);
    info.engine = *s;
  }
  return info;
}

absl::StatusOr<ConnInfo> Sandbox::InfoOnReactor(tcp::ConnId id) {
  // A connection its stack still holds is read live (in CLOSED too: then it is the same as
  // its final info, nothing changes a CLOSED connection); else its final info if remembered.
  if (absl::StatusOr<StackKind> kind = KindOf(id); kind.ok()) return LiveInfo(*kind, id);
  if (auto it = closed_.find(id); it != closed_.end()) return it->second;
  return NotFound(id);
}

std::vector<tcp::ConnId> Sandbox::IdsOnReactor() {
  std::vector<tcp::ConnId> out = engine_->Ids();
  if (kernel_) {
    auto k = kernel_->Ids();
    out.insert(out.end(), k.begin(), k.end());
  }
  // A closed connection may be both remembered and still held (until the user closes it).
  out.insert(out.end(), closed_order_.begin(), closed_order_.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

absl::StatusOr<ConnInfo> Sandbox::Get(tcp::ConnId id) {
  return reactor_->Call([&] { return InfoOnReactor(id); });
}

std::vector<tcp::ConnId> Sandbox::Ids() {
  return reactor_->Call([&] { return IdsOnReactor(); });
}

// One reactor call for the whole list: one consistent view, and a busy sandbox's reactor is
// interrupted once rather than once per connection (up to 256 closed ones among them).
std::vector<ConnInfo> Sandbox::List() {
  return reactor_->Call([&] {
    std::vector<ConnInfo> infos;
    for (tcp::ConnId id : IdsOnReactor()) {
      if (auto info = InfoOnReactor(id); info.ok()) infos.push_back(*std::move(info));
    }
    return infos;
  });
}

absl::Status Sandbox::SetImpairment(Direction dir, const link::Impairment& imp) {
  return reactor_->Call([&]() -> absl::Status {
    absl::Status s = (dir == Direction::kToKernel ? to_kernel_ : to_engine_).SetImpairment(imp);
    Pump();
    return s;
  });
}

void Sandbox::SetLocalApp(LocalApp app) {
  reactor_->Call([&] {
    local_app_ = std::move(app);
    Pump();
  });
}

SandboxCounters Sandbox::counters() {
  return reactor_->Call([&] {
    SandboxCounters c = counters_;
    if (pcap_) c.pcap = pcap_->counters();
    return c;
  });
}

absl::StatusOr<std::string> Sandbox::Pcap() {
  return reactor_->Call([&]() -> absl::StatusOr<std::string> {
    if (!pcap_) {
      return absl::FailedPreconditionError(
          absl::StrCat("sandbox ", name(), " does not capture packets (pcap_max_bytes is 0)"));
    }
    return pcap_->Snapshot();
  });
}

bool Sandbox::WaitFor(const std::function<bool()>& pred, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (reactor_->Call([&] { return pred(); })) return true;
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

}  // namespace tcplab::sandbox
