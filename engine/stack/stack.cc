#include "engine/stack/stack.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/tcp/socket_error.h"
#include "engine/wire/codec.h"

namespace tcplab::stack {

using tcp::Tcb;
using tcp::TcpState;
using tcp::Verdict;
using wire::SegmentRepr;
using wire::SeqNum;

Stack::Stack(StackConfig cfg, Output output, tcp::EventSink* sink)
    : cfg_(std::move(cfg)),
      output_(std::move(output)),
      sink_(sink),
      isn_(cfg_.isn_secret),
      next_ephemeral_(cfg_.ephemeral_first) {}

Stack::~Stack() = default;

// ---------------------------------------------------------------------------------------------
// Input.

void Stack::OnDatagram(std::span<const uint8_t> datagram, Instant now) {
  counters_.datagrams_in++;
  auto parse = cfg_.libtins_codec ? wire::ParseWithLibtins : wire::Parse;
  absl::StatusOr<SegmentRepr> seg = parse(datagram, /*verify_checksum=*/true);
  if (seg.ok()) {
    OnSegment(*seg, now);
    return;
  }
  if (absl::IsDataLoss(seg.status())) {
    // A bad checksum: drop it (RFC 9293 §3.1), but show its headers and count it on the
    // connection it claims to belong to.
    counters_.bad_checksums++;
    absl::StatusOr<SegmentRepr> headers = parse(datagram, /*verify_checksum=*/false);
    if (headers.ok()) {
      auto it = demux_.find(Tuple{headers->dst, headers->src});
      if (it != demux_.end()) conns_[it->second].tcb->mutable_counters().bad_checksums++;
      ReportUnmatched(*headers, Verdict::kBadChecksum, now);
      return;
    }
  }
  counters_.malformed++;
  ReportUnmatched(SegmentRepr{}, Verdict::kMalformed, now);
}

void Stack::OnSegment(const SegmentRepr& seg, Instant now) {
  Demux(seg, now);
  Settle();
}

void Stack::Demux(const SegmentRepr& seg, Instant now) {
  auto it = demux_.find(Tuple{seg.dst, seg.src});
  if (it != demux_.end()) {
    Touch(it->second);
    Tcb& tcb = *conns_[it->second].tcb;
    if (tcb.state() == TcpState::kTimeWait && seg.Has(wire::kSyn) && !seg.Has(wire::kAck) &&
        !seg.Has(wire::kRst) && tcb.AcceptsNewIncarnation(seg)) {
      if (Listener* l = FindListener(seg.dst)) {
        // RFC 9293 §3.10.7.4 note / RFC 6191: a new SYN may take over a 4-tuple in TIME-WAIT.
        SeqNum min_iss = tcb.MinIssForNewIncarnation();
        tcb.EndForNewIncarnation(now);
        conns_[it->second].in_demux = false;
        demux_.erase(it);
        OnListenSegment(*l, seg, now, min_iss);
        return;
      }
    }
    tcb.OnSegment(seg, now);
    return;
  }
  if (Listener* l = FindListener(seg.dst)) {
    OnListenSegment(*l, seg, now);
    return;
  }
  ReplyToClosedPort(seg, Verdict::kNoConnection, now);
}

Stack::Listener* Stack::FindListener(wire::Endpoint local) {
  auto it = listen_by_ep_.find(EndpointKey{local});
  if (it == listen_by_ep_.end()) it = listen_by_ep_.find(EndpointKey{{wire::Ipv4{}, local.port}});
  if (it == listen_by_ep_.end()) return nullptr;
  return &listeners_.at(it->second);
}

// RFC 9293 §3.10.7.2, LISTEN.
void Stack::OnListenSegment(Listener& l, const SegmentRepr& seg, Instant now,
                            std::optional<wire::SeqNum> min_iss) {
  if (seg.Has(wire::kRst)) {  // "An incoming RST should be ignored"
    ReportUnmatched(seg, Verdict::kIgnored, now);
    return;
  }
  if (seg.Has(wire::kAck)) {  // "<SEQ=SEG.ACK><CTL=RST>"
    ReplyToClosedPort(seg, Verdict::kNoConnection, now);
    return;
  }
  if (!seg.Has(wire::kSyn)) {
    ReportUnmatched(seg, Verdict::kIgnored, now);
    return;
  }
  int pending = l.embryonic + static_cast<int>(l.accept_queue.size());
  if (pending >= l.backlog) {
    // Like Linux, drop the SYN silently: the client retries, and may get in later.
    counters_.listen_overflows++;
    ReportUnmatched(seg, Verdict::kListenOverflow, now);
    return;
  }
  Conn& c = NewConn(seg.dst, seg.src, l.id);
  l.embryonic++;
  wire::SeqNum iss = isn_.Isn(seg.dst, seg.src, now);
  if (min_iss && iss < *min_iss) iss = *min_iss;
  c.tcb->OpenPassive(seg, iss, isn_.TimestampOffset(seg.dst, seg.src), now);
  Touch(c.tcb->id());
}

// RFC 9293 §3.10.7.1: a segment for a closed port gets a RST, unless it is one.
void Stack::ReplyToClosedPort(const SegmentRepr& seg, Verdict verdict, Instant now) {
  counters_.no_connection++;
  ReportUnmatched(seg, verdict, now);
  if (seg.Has(wire::kRst)) return;
  SegmentRepr rst;
  rst.src = seg.dst;
  rst.dst = seg.src;
  if (seg.Has(wire::kAck)) {
    rst.seq = seg.ack;  // <SEQ=SEG.ACK><CTL=RST>
    rst.flags = wire::kRst;
  } else {
    rst.ack = seg.seq + seg.SeqLen();  // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    rst.flags = wire::kRst | wire::kAck;
  }
  counters_.resets_sent++;
  if (sink_) {
    tcp::SegmentEvent ev;
    ev.dir = tcp::Direction::kOut;
    ev.verdict = Verdict::kSent;
    ev.seg = rst;
    sink_->OnSegment(now, ev);
  }
  Emit(rst);
}

void Stack::ReportUnmatched(const SegmentRepr& seg, Verdict verdict, Instant now) {
  if (!sink_) return;
  tcp::SegmentEvent ev;
  ev.dir = tcp::Direction::kIn;
  ev.verdict = verdict;
  ev.seg = seg;
  ev.seg.payload = {};
  ev.payload_len = static_cast<uint32_t>(seg.payload.size());
  ev.preview_len = static_cast<uint8_t>(std::min<size_t>(seg.payload.size(), ev.preview.size()));
  std::copy_n(seg.payload.begin(), ev.preview_len, ev.preview.begin());
  auto it = demux_.find(Tuple{seg.dst, seg.src});
  if (it != demux_.end()) ev.conn = it->second;
  sink_->OnSegment(now, ev);
}

void Stack::Emit(const SegmentRepr& seg) {
  counters_.datagrams_out++;
  if (cfg_.libtins_codec) {
    wire::SerializeWithLibtins(seg, out_buf_);
  } else {
    wire::Serialize(seg, out_buf_);
  }
  output_(out_buf_);
}

// ---------------------------------------------------------------------------------------------
// Timers.

void Stack::OnTick(Instant now) {
  // Take every due entry first, then run those TCBs: each runs OnTick at most once per call,
  // and the timers they arm are filed afterwards (Settle).
  due_.clear();
  while (!timers_.empty() && timers_.top().deadline <= now) {
    TimerEntry e = timers_.top();
    timers_.pop();
    auto it = conns_.find(e.id);
    if (it == conns_.end() || it->second.filed != e.deadline) continue;  // stale
    it->second.filed = kNever;
    due_.push_back(e.id);
  }
  for (ConnId id : due_) {
    Tcb& tcb = *conns_.at(id).tcb;  // nothing leaves conns_ before Settle()
    if (tcb.NextDeadline() <= now) tcb.OnTick(now);  // else the entry was early: re-file it
    Touch(id);
  }
  Settle();
}

Instant Stack::NextDeadline() const { return timers_.empty() ? kNever : timers_.top().deadline; }

void Stack::FileTimer(ConnId id, Conn& c) {
  Instant d = c.tcb->NextDeadline();
  // An entry at or before the deadline stays: it is re-filed when it reaches the top. So an
  // RTO restarted by every ACK costs nothing here.
  if (d >= c.filed) return;
  c.filed = d;
  timers_.push(TimerEntry{d, id});
}

void Stack::Settle() {
  Reap();
  for (ConnId id : touched_) {
    auto it = conns_.find(id);
    if (it != conns_.end()) FileTimer(id, it->second);
  }
  touched_.clear();
  // Make the top entry exact, so NextDeadline() is: drop stale entries, re-file early ones.
  while (!timers_.empty()) {
    TimerEntry top = timers_.top();
    auto it = conns_.find(top.id);
    if (it == conns_.end() || it->second.filed != top.deadline) {
      timers_.pop();
      continue;
    }
    if (it->second.tcb->NextDeadline() == top.deadline) break;
    timers_.pop();
    it->second.filed = kNever;
    FileTimer(top.id, it->second);
  }
  // Stale entries of TCBs that went long before their deadline (e.g. reset while a keepalive
  // was hours away) would pile up: start afresh when they outnumber the connections.
  if (timers_.size() > 2 * conns_.size() + 64) {
    timers_ = {};
    for (auto& [id, c] : conns_) {
      c.filed = kNever;
      FileTimer(id, c);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Events from the TCBs.

void Stack::OnSegment(Instant now, const tcp::SegmentEvent& ev) {
  if (sink_) sink_->OnSegment(now, ev);
}
void Stack::OnTimer(Instant now, const tcp::TimerEvent& ev) {
  if (sink_) sink_->OnTimer(now, ev);
}

void Stack::OnState(Instant now, const tcp::StateEvent& ev) {
  if (sink_) sink_->OnState(now, ev);
  auto it = conns_.find(ev.conn);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  if (c.listener != 0 && ev.from == TcpState::kSynReceived) {
    auto l = listeners_.find(c.listener);
    if (l != listeners_.end()) {
      l->second.embryonic--;
      if (ev.to == TcpState::kEstablished || ev.to == TcpState::kCloseWait) {
        l->second.accept_queue.push_back(ev.conn);
      }
    }
  }
  if (ev.to == TcpState::kClosed || ev.to == TcpState::kListen) to_reap_.push_back(ev.conn);
}

// Forget finished TCBs: out of the demux at once (the 4-tuple is free again); the TCB itself
// once nobody can ask about it (the user closed it, or never got it).
void Stack::Reap() {
  for (ConnId id : to_reap_) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Conn& c = it->second;
    if (c.in_demux) {
      auto d = demux_.find(Tuple{c.tcb->local(), c.tcb->remote()});
      if (d != demux_.end() && d->second == id) demux_.erase(d);
      c.in_demux = false;
    }
    if (c.listener != 0) {
      auto l = listeners_.find(c.listener);
      if (l != listeners_.end()) {
        auto& q = l->second.accept_queue;
        q.erase(std::remove(q.begin(), q.end(), id), q.end());
      }
    }
    if (!c.owned || c.tcb->user_closed()) conns_.erase(it);
  }
  to_reap_.clear();
}

// ---------------------------------------------------------------------------------------------
// User calls.

Stack::Conn& Stack::NewConn(wire::Endpoint local, wire::Endpoint remote, ConnId listener) {
  ConnId id = NewId();
  auto tcb = std::make_unique<Tcb>(cfg_.tcp, id, local, remote, static_cast<tcp::EventSink*>(this),
                                   [this](const SegmentRepr& seg) { Emit(seg); });
  Conn& c = conns_[id];
  c.tcb = std::move(tcb);
  c.listener = listener;
  demux_[Tuple{local, remote}] = id;
  return c;
}

absl::StatusOr<ConnId> Stack::Listen(wire::Endpoint local, Instant now, int backlog) {
  if (local.port == 0) return absl::InvalidArgumentError("listen: local port must not be 0");
  if (listen_by_ep_.contains(EndpointKey{local})) {
    return tcp::SocketError(absl::StatusCode::kAlreadyExists, "EADDRINUSE",
                            absl::StrCat(local.ToString(), " is already listening"));
  }
  ConnId id = NewId();
  listeners_[id] = Listener{id, local, backlog > 0 ? backlog : cfg_.default_backlog, {}, 0};
  listen_by_ep_[EndpointKey{local}] = id;
  if (sink_) sink_->OnState(now, tcp::StateEvent{id, TcpState::kClosed, TcpState::kListen, "passive open"});
  return id;
}

absl::StatusOr<ConnId> Stack::Accept(ConnId listener) {
  auto it = listeners_.find(listener);
  if (it == listeners_.end()) {
    return absl::NotFoundError(absl::StrCat("listener ", listener, " not found"));
  }
  auto& q = it->second.accept_queue;
  if (q.empty()) {
    return tcp::SocketError(absl::StatusCode::kUnavailable, "EAGAIN",
                            absl::StrCat("no established connection waiting on listener ", listener));
  }
  ConnId id = q.front();
  q.pop_front();
  Conn& c = conns_.at(id);
  c.owned = true;
  c.listener = 0;
  return id;
}

absl::StatusOr<uint16_t> Stack::PickEphemeralPort(wire::Endpoint local, wire::Endpoint remote) {
  // RFC 6056 §3.3.2-like: walk the range from where the last search stopped; the first port
  // whose 4-tuple is free wins.
  uint32_t span = uint32_t{cfg_.ephemeral_last} - cfg_.ephemeral_first + 1;
  for (uint32_t i = 0; i < span; ++i) {
    uint16_t port = next_ephemeral_;
    next_ephemeral_ = port == cfg_.ephemeral_last ? cfg_.ephemeral_first : port + 1;
    local.port = port;
    if (!demux_.contains(Tuple{local, remote}) && !listen_by_ep_.contains(EndpointKey{local})) {
      return port;
    }
  }
  return tcp::SocketError(absl::StatusCode::kResourceExhausted, "EADDRNOTAVAIL",
                          absl::StrCat("no free ephemeral port towards ", remote.ToString()));
}

absl::StatusOr<ConnId> Stack::Connect(wire::Endpoint local, wire::Endpoint remote, Instant now) {
  if (remote.port == 0) return absl::InvalidArgumentError("connect: remote port must not be 0");
  if (remote.ip.v == 0) return absl::InvalidArgumentError("connect: remote address must not be 0.0.0.0");
  if (local.ip.v == 0) return absl::InvalidArgumentError("connect: local address must not be 0.0.0.0");
  if (local.port == 0) {
    absl::StatusOr<uint16_t> port = PickEphemeralPort(local, remote);
    if (!port.ok()) return port.status();
    local.port = *port;
  } else if (auto it = demux_.find(Tuple{local, remote}); it != demux_.end()) {
    return tcp::SocketError(
        absl::StatusCode::kAlreadyExists, "EADDRINUSE",
        absl::StrCat(local.ToString(), " -> ", remote.ToString(), " is in use by connection ", it->second, " (",
                     std::string(tcp::ToString(conns_.at(it->second).tcb->state())), ")"));
  }
  Conn& c = NewConn(local, remote, 0);
  c.owned = true;
  ConnId id = c.tcb->id();
  c.tcb->OpenActive(isn_.Isn(local, remote, now), isn_.TimestampOffset(local, remote), now);
  Touch(id);
  Settle();
  return id;
}

absl::StatusOr<Tcb*> Stack::Lookup(ConnId id) {
  auto it = conns_.find(id);
  if (it != conns_.end()) {
    Touch(id);  // the caller is about to call it
    return it->second.tcb.get();
  }
  if (listeners_.contains(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection ", id, " is a listener (LISTEN): it has no data stream"));
  }
  return absl::NotFoundError(absl::StrCat("connection ", id, " not found"));
}

absl::StatusOr<size_t> Stack::Send(ConnId id, std::span<const uint8_t> data, Instant now) {
  absl::StatusOr<Tcb*> tcb = Lookup(id);
  if (!tcb.ok()) return tcb.status();
  auto n = (*tcb)->Send(data, now);
  Settle();
  return n;
}

absl::StatusOr<size_t> Stack::Recv(ConnId id, std::span<uint8_t> out, Instant now) {
  absl::StatusOr<Tcb*> tcb = Lookup(id);
  if (!tcb.ok()) return tcb.status();
  auto n = (*tcb)->Recv(out, now);
  Settle();
  return n;
}

absl::Status Stack::Shutdown(ConnId id, Instant now) {
  absl::StatusOr<Tcb*> tcb = Lookup(id);
  if (!tcb.ok()) return tcb.status();
  absl::Status s = (*tcb)->Shutdown(now);
  Settle();
  return s;
}

absl::Status Stack::Close(ConnId id, Instant now) {
  if (auto l = listeners_.find(id); l != listeners_.end()) {
    // Closing a listener resets the connections nobody accepted (as close(2) does on Linux).
    std::vector<ConnId> orphans;
    for (auto& [cid, c] : conns_) {
      if (c.listener == id) orphans.push_back(cid);
    }
    for (ConnId cid : orphans) {
      conns_.at(cid).tcb->Abort(now);
      Touch(cid);
    }
    // Reported while the listener still exists, so that the sink can take its last snapshot
    // (as it can a TCB's, which goes only when the stack settles).
    if (sink_) sink_->OnState(now, tcp::StateEvent{id, TcpState::kListen, TcpState::kClosed, "listener closed"});
    listen_by_ep_.erase(EndpointKey{l->second.local});
    listeners_.erase(l);
    Settle();
    return absl::OkStatus();
  }
  absl::StatusOr<Tcb*> tcb = Lookup(id);
  if (!tcb.ok()) return tcb.status();
  absl::Status s = (*tcb)->Close(now);
  if ((*tcb)->state() == TcpState::kClosed) to_reap_.push_back(id);
  Settle();
  return s;
}

absl::Status Stack::Abort(ConnId id, Instant now) {
  if (listeners_.contains(id)) return Close(id, now);
  absl::StatusOr<Tcb*> tcb = Lookup(id);
  if (!tcb.ok()) return tcb.status();
  (*tcb)->Abort(now);
  to_reap_.push_back(id);
  Settle();
  return absl::OkStatus();
}

absl::StatusOr<tcp::TcbSnapshot> Stack::Snapshot(ConnId id) const {
  if (auto l = listeners_.find(id); l != listeners_.end()) {
    tcp::TcbSnapshot s;
    s.id = id;
    s.state = TcpState::kListen;
    s.local = l->second.local;
    return s;
  }
  const Tcb* tcb = Find(id);
  if (!tcb) return absl::NotFoundError(absl::StrCat("connection ", id, " not found"));
  return tcb->Snapshot();
}

Tcb* Stack::Find(ConnId id) {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.tcb.get();
}

const Tcb* Stack::Find(ConnId id) const {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.tcb.get();
}

std::vector<ConnId> Stack::Ids() const {
  std::vector<ConnId> ids;
  for (const auto& [id, c] : conns_) ids.push_back(id);
  for (const auto& [id, l] : listeners_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace tcplab::stack
