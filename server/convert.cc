#include "server/convert.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tcplab::server {

namespace {

std::string S(absl::string_view v) { return std::string(v); }

}  // namespace

absl::StatusOr<wire::Ipv4> ParseIpv4(absl::string_view text, absl::string_view field) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  uint32_t v = 0;
  bool ok = parts.size() == 4;
  for (absl::string_view p : parts) {
    uint32_t octet = 0;
    if (!ok || p.empty() || p.size() > 3 || !absl::SimpleAtoi(p, &octet) || octet > 255) {
      ok = false;
      break;
    }
    v = (v << 8) | octet;
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(S(field), " must be an IPv4 address like 198.18.0.1, got \"", S(text), "\""));
  }
  return wire::Ipv4{v};
}

absl::StatusOr<wire::Endpoint> FromProto(const pb::Endpoint& ep, absl::string_view field, bool ip_required,
                                         PortRule port) {
  wire::Endpoint out;
  if (ep.ip().empty()) {
    if (ip_required) return absl::InvalidArgumentError(absl::StrCat(S(field), ".ip is required"));
  } else {
    absl::StatusOr<wire::Ipv4> ip = ParseIpv4(ep.ip(), absl::StrCat(S(field), ".ip"));
    if (!ip.ok()) return ip.status();
    out.ip = *ip;
  }
  if (ep.port() > 65535 || (port == PortRule::kRequired && ep.port() == 0)) {
    return absl::InvalidArgumentError(absl::StrCat(S(field), ".port must be ",
                                                   port == PortRule::kRequired ? "1" : "0",
                                                   "..65535, got ", ep.port()));
  }
  out.port = static_cast<uint16_t>(ep.port());
  return out;
}

pb::Endpoint ToProto(wire::Endpoint ep) {
  pb::Endpoint out;
  char ip[kMaxIpText];
  out.set_ip(ip, WriteIp(ep.ip, ip) - ip);
  out.set_port(ep.port);
  return out;
}

absl::StatusOr<sandbox::StackKind> FromProto(pb::Stack s, absl::string_view field) {
  switch (s) {
    case pb::STACK_ENGINE:
      return sandbox::StackKind::kEngine;
    case pb::STACK_KERNEL:
      return sandbox::StackKind::kKernel;
    default:
      return absl::InvalidArgumentError(absl::StrCat(S(field), " must be STACK_ENGINE or STACK_KERNEL, got ",
                                                     pb::Stack_Name(s).empty() ? absl::StrCat(int{s})
                                                                               : pb::Stack_Name(s)));
  }
}

pb::Stack ToProto(sandbox::StackKind k) {
  return k == sandbox::StackKind::kKernel ? pb::STACK_KERNEL : pb::STACK_ENGINE;
}

pb::TcpState ToProto(tcp::TcpState s) {
  // The engine's enum is in the RFC's order, as is the proto's, one further along.
  return static_cast<pb::TcpState>(static_cast<int>(s) + 1);
}

const char* StateName(pb::TcpState s) {
  if (s <= pb::TCP_STATE_UNSPECIFIED || s > pb::TCP_STATE_TIME_WAIT) return "UNSPECIFIED";
  return tcp::ToString(static_cast<tcp::TcpState>(static_cast<int>(s) - 1));
}

const char* StackName(pb::Stack s) {
  switch (s) {
    case pb::STACK_ENGINE:
      return "ENGINE";
    case pb::STACK_KERNEL:
      return "KERNEL";
    default:
      return "UNSPECIFIED";
  }
}

absl::StatusOr<Duration> FromProto(const google::protobuf::Duration& d, absl::string_view field) {
  if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() > 999'999'999) {
    return absl::InvalidArgumentError(
        absl::StrCat(S(field), " must be a non-negative duration, got ", d.seconds(), "s ", d.nanos(), "ns"));
  }
  // More than a year is certainly a mistake, and would overflow the nanosecond clock soon.
  if (d.seconds() > 365 * 24 * 3600) {
    return absl::InvalidArgumentError(absl::StrCat(S(field), " must be at most a year, got ", d.seconds(), "s"));
  }
  return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

google::protobuf::Duration ToProto(Duration d) {
  google::protobuf::Duration out;
  int64_t ns = d.count();
  out.set_seconds(ns / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  return out;
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  int64_t ns = absl::ToUnixNanos(t);
  out.set_seconds(ns / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  if (out.nanos() < 0) {
    out.set_seconds(out.seconds() - 1);
    out.set_nanos(out.nanos() + 1'000'000'000);
  }
  return out;
}

absl::StatusOr<link::Impairment> FromProto(const pb::Impairment& in) {
  link::Impairment imp;
  imp.loss = in.loss();
  imp.duplicate = in.duplicate();
  imp.reorder = in.reorder();
  imp.corrupt = in.corrupt();
  if (in.has_delay()) {
    absl::StatusOr<Duration> d = FromProto(in.delay(), "impairment.delay");
    if (!d.ok()) return d.status();
    imp.delay = *d;
  }
  if (in.has_jitter()) {
    absl::StatusOr<Duration> d = FromProto(in.jitter(), "impairment.jitter");
    if (!d.ok()) return d.status();
    imp.jitter = *d;
  }
  if (in.has_reorder_delay()) {
    absl::StatusOr<Duration> d = FromProto(in.reorder_delay(), "impairment.reorder_delay");
    if (!d.ok()) return d.status();
    imp.reorder_delay = *d;
  }
  if (in.seed() != 0) imp.seed = in.seed();
  if (absl::Status s = imp.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("impairment.", s.message()));
  }
  return imp;
}

namespace {

void FillEngine(const tcp::TcbSnapshot& s, Instant now_hint, pb::EngineTcb* out) {
  out->set_iss(s.iss);
  out->set_irs(s.irs);
  out->set_snd_una(s.snd_una);
  out->set_snd_nxt(s.snd_nxt);
  out->set_snd_max(s.snd_max);
  out->set_snd_wnd(s.snd_wnd);
  out->set_snd_wl1(s.snd_wl1);
  out->set_snd_wl2(s.snd_wl2);
  out->set_rcv_nxt(s.rcv_nxt);
  out->set_rcv_wnd(s.rcv_wnd);
  out->set_mss(s.mss);
  out->set_peer_mss(s.peer_mss);
  out->set_snd_wscale(s.snd_wscale);
  out->set_rcv_wscale(s.rcv_wscale);
  out->set_sack(s.sack);
  out->set_timestamps(s.timestamps);
  out->set_cwnd(s.cwnd);
  out->set_ssthresh(s.ssthresh);
  *out->mutable_srtt() = ToProto(s.srtt);
  *out->mutable_rttvar() = ToProto(s.rttvar);
  *out->mutable_rto() = ToProto(s.rto);
  out->set_bytes_in_flight(s.bytes_in_flight);
  out->set_send_buffered(s.send_buffered);
  out->set_send_capacity(s.send_capacity);
  out->set_recv_buffered(s.recv_buffered);
  out->set_recv_capacity(s.recv_capacity);
  out->set_out_of_order_bytes(s.out_of_order_bytes);
  for (const tcp::ArmedTimer& t : s.timers) {
    pb::Timer* pt = out->add_timers();
    pt->set_kind(tcp::ToString(t.kind));
    Duration left = t.deadline - now_hint;
    *pt->mutable_remaining() = ToProto(left < Duration{0} ? Duration{0} : left);
  }
  pb::EngineTcb::Counters* c = out->mutable_counters();
  c->set_segments_in(s.counters.segments_in);
  c->set_segments_out(s.counters.segments_out);
  c->set_bytes_in(s.counters.bytes_in);
  c->set_bytes_out(s.counters.bytes_out);
  c->set_retransmissions(s.counters.retransmissions);
  c->set_rto_expirations(s.counters.rto_expirations);
  c->set_fast_retransmits(s.counters.fast_retransmits);
  c->set_dup_acks_in(s.counters.dup_acks_in);
  c->set_out_of_order_segments(s.counters.out_of_order_segments);
  c->set_out_of_window_segments(s.counters.out_of_window_segments);
  c->set_challenge_acks(s.counters.challenge_acks);
  c->set_paws_drops(s.counters.paws_drops);
  c->set_bad_checksums(s.counters.bad_checksums);
  out->set_error(s.error);
}

void FillKernel(const sandbox::KernelInfo& k, pb::KernelTcpInfo* out) {
  out->set_has_fd(k.has_fd);
  *out->mutable_rto() = ToProto(std::chrono::microseconds(k.rto_us));
  *out->mutable_rtt() = ToProto(std::chrono::microseconds(k.rtt_us));
  *out->mutable_rttvar() = ToProto(std::chrono::microseconds(k.rttvar_us));
  out->set_snd_mss(k.snd_mss);
  out->set_rcv_mss(k.rcv_mss);
  out->set_snd_cwnd(k.snd_cwnd);
  out->set_snd_ssthresh(k.snd_ssthresh);
  out->set_unacked(k.unacked);
  out->set_retransmits(k.retransmits);
  out->set_total_retrans(k.total_retrans);
  out->set_snd_wscale(k.snd_wscale);
  out->set_rcv_wscale(k.rcv_wscale);
  out->set_timestamps(k.timestamps);
  out->set_sack(k.sack);
  out->set_wscale(k.wscale);
  out->set_bytes_acked(k.bytes_acked);
  out->set_bytes_received(k.bytes_received);
  out->set_segs_in(k.segs_in);
  out->set_segs_out(k.segs_out);
  out->set_pending_send(k.pending_send);
}

}  // namespace

pb::Connection ToProto(const sandbox::ConnInfo& info, const std::string& sandbox) {
  pb::Connection c;
  c.set_sandbox(sandbox);
  c.set_id(info.id);
  c.set_stack(ToProto(info.stack));
  c.set_state(ToProto(info.state));
  *c.mutable_local() = ToProto(info.local);
  *c.mutable_remote() = ToProto(info.remote);
  c.set_listener(info.listener);
  if (info.engine) FillEngine(*info.engine, info.now, c.mutable_engine());
  if (info.kernel) FillKernel(*info.kernel, c.mutable_kernel());
  return c;
}

pb::Verdict ToProto(tcp::Verdict v) {
  // Same order as the engine's enum, one further along.
  return static_cast<pb::Verdict>(static_cast<int>(v) + 1);
}

char* WriteFlagsText(uint8_t f, char* p) {
  // tcpdump's notation: S F R P U E W, then "." for ACK; "none" when no flag is set.
  if (f == 0) return std::copy_n("none", 4, p);
  if (f & wire::kSyn) *p++ = 'S';
  if (f & wire::kFin) *p++ = 'F';
  if (f & wire::kRst) *p++ = 'R';
  if (f & wire::kPsh) *p++ = 'P';
  if (f & wire::kUrg) *p++ = 'U';
  if (f & wire::kEce) *p++ = 'E';
  if (f & wire::kCwr) *p++ = 'W';
  if (f & wire::kAck) *p++ = '.';
  return p;
}

RelativeNumbers Relative(const tcp::SegmentEvent& e) {
  const wire::SegmentRepr& s = e.seg;
  const bool in = e.dir == tcp::Direction::kIn;
  // The sender's ISN is ours for OUT segments and the peer's for IN ones.
  const uint32_t sender_isn = in ? e.irs.raw() : e.iss.raw();
  const uint32_t receiver_isn = in ? e.iss.raw() : e.irs.raw();
  // A SYN's sequence number is its sender's ISN: relative 0 even before anyone knew it. An
  // ISN of 0 means "not known" (a segment for no connection).
  const bool syn = s.flags & wire::kSyn;
  return {syn ? 0 : sender_isn ? s.seq.raw() - sender_isn : 0,
          (s.flags & wire::kAck) && receiver_isn ? s.ack.raw() - receiver_isn : 0};
}

namespace {
char* WriteNumber(uint64_t v, char* p) { return std::to_chars(p, p + 20, v).ptr; }
char* WriteText(std::string_view s, char* p) { return std::copy(s.begin(), s.end(), p); }
}  // namespace

char* WriteIp(wire::Ipv4 ip, char* p) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    p = WriteNumber((ip.v >> shift) & 0xff, p);
    if (shift) *p++ = '.';
  }
  return p;
}

char* WriteSummary(const tcp::SegmentEvent& e, RelativeNumbers rel, char* p) {
  const wire::SegmentRepr& s = e.seg;
  p = WriteIp(s.src.ip, p);
  *p++ = ':';
  p = WriteNumber(s.src.port, p);
  p = WriteText(" > ", p);
  p = WriteIp(s.dst.ip, p);
  *p++ = ':';
  p = WriteNumber(s.dst.port, p);
  p = WriteText(" [", p);
  p = WriteFlagsText(s.flags, p);
  p = WriteText("] seq ", p);
  p = WriteNumber(rel.seq, p);
  if (s.flags & wire::kAck) {
    p = WriteText(" ack ", p);
    p = WriteNumber(rel.ack, p);
  }
  p = WriteText(" win ", p);
  p = WriteNumber(s.window, p);
  p = WriteText(" len ", p);
  return WriteNumber(e.payload_len, p);
}

namespace {

void FillSegment(const tcp::SegmentEvent& e, pb::SegmentEvent* out) {
  const wire::SegmentRepr& s = e.seg;
  out->set_direction(e.dir == tcp::Direction::kIn ? pb::SegmentEvent::DIRECTION_IN : pb::SegmentEvent::DIRECTION_OUT);
  *out->mutable_src() = server::ToProto(s.src);
  *out->mutable_dst() = server::ToProto(s.dst);
  out->set_seq(s.seq.raw());
  out->set_ack(s.ack.raw());
  const RelativeNumbers rel = Relative(e);
  out->set_relative_seq(rel.seq);
  out->set_relative_ack(rel.ack);
  out->set_flags(s.flags);
  char text[kMaxSummaryText];
  out->set_flags_text(text, WriteFlagsText(s.flags, text) - text);
  out->set_window(s.window);
  out->set_urgent_pointer(s.urgent);
  out->set_ttl(s.ttl);
  pb::TcpOptions* o = out->mutable_options();
  if (s.options.mss) o->set_mss(*s.options.mss);
  if (s.options.window_scale) {
    o->set_has_window_scale(true);
    o->set_window_scale(*s.options.window_scale);
  }
  o->set_sack_permitted(s.options.sack_permitted);
  if (s.options.timestamps) {
    o->set_has_timestamps(true);
    o->set_ts_val(s.options.timestamps->val);
    o->set_ts_ecr(s.options.timestamps->ecr);
  }
  for (int i = 0; i < s.options.sack_count; ++i) {
    pb::SackBlock* b = o->add_sack();
    b->set_left(s.options.sack[i].left.raw());
    b->set_right(s.options.sack[i].right.raw());
  }
  out->set_payload_length(e.payload_len);
  out->set_payload_preview(e.preview.data(), e.preview_len);
  out->set_verdict(ToProto(e.verdict));
  out->set_checksum_ok(e.verdict != tcp::Verdict::kBadChecksum);
  out->set_iss(e.iss.raw());
  out->set_irs(e.irs.raw());
  out->set_summary(text, WriteSummary(e, rel, text) - text);
}

pb::TimerEvent::Kind ToProto(tcp::TimerKind k) {
  switch (k) {
    case tcp::TimerKind::kRetransmission:
      return pb::TimerEvent::KIND_RETRANSMISSION;
    case tcp::TimerKind::kPersist:
      return pb::TimerEvent::KIND_PERSIST;
    case tcp::TimerKind::kDelayedAck:
      return pb::TimerEvent::KIND_DELAYED_ACK;
    case tcp::TimerKind::kTimeWait:
      return pb::TimerEvent::KIND_TIME_WAIT;
    case tcp::TimerKind::kKeepalive:
      return pb::TimerEvent::KIND_KEEPALIVE;
    case tcp::TimerKind::kFinWait2:
      return pb::TimerEvent::KIND_FIN_WAIT_2;
  }
  return pb::TimerEvent::KIND_UNSPECIFIED;
}

pb::TimerEvent::Action ToProto(tcp::TimerAction a) {
  switch (a) {
    case tcp::TimerAction::kStarted:
      return pb::TimerEvent::ACTION_STARTED;
    case tcp::TimerAction::kFired:
      return pb::TimerEvent::ACTION_FIRED;
    case tcp::TimerAction::kStopped:
      return pb::TimerEvent::ACTION_STOPPED;
  }
  return pb::TimerEvent::ACTION_UNSPECIFIED;
}

struct BodyFiller {
  pb::Event* out;
  void operator()(const tcp::SegmentEvent& e) const {
    out->set_connection_id(e.conn);
    FillSegment(e, out->mutable_segment());
  }
  void operator()(const tcp::StateEvent& e) const {
    out->set_connection_id(e.conn);
    pb::StateEvent* s = out->mutable_state();
    s->set_from(server::ToProto(e.from));
    s->set_to(server::ToProto(e.to));
    s->set_cause(e.cause);
  }
  void operator()(const tcp::TimerEvent& e) const {
    out->set_connection_id(e.conn);
    pb::TimerEvent* t = out->mutable_timer();
    t->set_kind(ToProto(e.kind));
    t->set_action(ToProto(e.action));
    if (e.action == tcp::TimerAction::kStarted) *t->mutable_deadline() = server::ToProto(e.deadline.time_since_epoch());
    t->set_backoff(e.backoff);
  }
  void operator()(const sandbox::AppEvent& e) const {
    out->set_connection_id(e.conn);
    pb::AppEvent* a = out->mutable_app();
    a->set_call(e.call);
    a->set_result(e.result);
  }
};

}  // namespace

void ToProto(const sandbox::Event& ev, pb::Event* out) {
  out->Clear();
  out->set_sequence(ev.seq);
  *out->mutable_since_start() = ToProto(ev.since_start);
  *out->mutable_wall_time() = ToProto(ev.wall);
  out->set_stack(ToProto(ev.stack));
  std::visit(BodyFiller{out}, ev.body);
}

pb::EventKind KindOf(const sandbox::Event& ev) {
  switch (ev.body.index()) {
    case 0:
      return pb::EVENT_KIND_SEGMENT;
    case 1:
      return pb::EVENT_KIND_STATE;
    case 2:
      return pb::EVENT_KIND_TIMER;
    default:
      return pb::EVENT_KIND_APP;
  }
}

}  // namespace tcplab::server
