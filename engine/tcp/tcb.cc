#include "engine/tcp/tcb.h"

#include <algorithm>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "engine/tcp/socket_error.h"

namespace tcplab::tcp {

using wire::SegmentRepr;
using wire::SeqNum;

namespace {

// RFC 7323 §2.3: shift counts above 14 are treated as 14.
constexpr uint8_t kMaxWindowScale = 14;
// RFC 7323 §5.5: TS.Recent older than 24 days is invalid and PAWS must not use it.
constexpr Duration kPawsIdle = std::chrono::hours(24 * 24);
// RFC 7323 §3.2: the timestamps option takes 10 octets, 12 with its padding.
constexpr uint16_t kTimestampOptionLen = 12;

// absl::StrCat in Debian's Abseil takes absl::string_view, not std::string_view.
std::string Name(TcpState s) { return std::string(ToString(s)); }

uint8_t ChooseWindowScale(size_t buffer) {
  uint8_t shift = 0;
  while (shift < kMaxWindowScale && (buffer >> shift) > 0xffff) ++shift;
  return shift;
}

}  // namespace

Tcb::Tcb(const TcpConfig& cfg, ConnId id, wire::Endpoint local, wire::Endpoint remote,
         EventSink* sink, Emit emit)
    : cfg_(cfg),
      id_(id),
      local_(local),
      remote_(remote),
      sink_(sink),
      emit_(std::move(emit)),
      send_(cfg.send_buffer),
      recv_(cfg.recv_buffer),
      rtt_(cfg.initial_rto, cfg.min_rto, cfg.max_rto) {}

// ---------------------------------------------------------------------------------------------
// State changes. Every change goes through SetState, which reports it.

void Tcb::SetState(TcpState to, const char* cause, Instant now) {
  if (to == state_) return;
  TcpState from = state_;
  state_ = to;
  if (sink_) sink_->OnState(now, StateEvent{id_, from, to, cause});
  if (to == TcpState::kTimeWait) StartTimeWait(now);
  if (to == TcpState::kFinWait2) MaybeArmFinWait2(now);
  // RFC 6298 (5.7): if our SYN or SYN+ACK timed out and no RTT sample came of the handshake,
  // data starts with the RTO "re-initialized to 3 seconds", not the backed-off value (Linux:
  // tcp_init_metrics). Every way into ESTABLISHED (active, passive, simultaneous) passes here.
  if (to == TcpState::kEstablished && syn_retransmitted_ && !rtt_.has_sample() &&
      cfg_.initial_rto < cfg_.syn_timeout_rto_floor) {
    rtt_ = RttEstimator(std::min(cfg_.syn_timeout_rto_floor, cfg_.max_rto), cfg_.min_rto,
                        cfg_.max_rto);
  }
  // RFC 5681 §3.1: "if the SYN or SYN/ACK is lost, the initial window used by a sender after a
  // correctly transmitted SYN MUST be one segment".
  if (to == TcpState::kEstablished && syn_retransmitted_) cc_.SetLossWindow();
  if (to == TcpState::kEstablished || to == TcpState::kCloseWait) {
    if (cfg_.keepalive) ka_deadline_ = now + cfg_.keepalive_idle;
  }
}

void Tcb::EnterClosed(absl::Status error, const char* cause, Instant now) {
  if (error_.ok()) error_ = std::move(error);
  rto_deadline_ = persist_deadline_ = delack_deadline_ = tw_deadline_ = ka_deadline_ = kNever;
  fw2_deadline_ = kNever;
  SetState(TcpState::kClosed, cause, now);
}

// ---------------------------------------------------------------------------------------------
// Opening.

void Tcb::OpenActive(SeqNum iss, uint32_t ts_offset, Instant now) {
  iss_ = snd_una_ = snd_buf_seq_ = iss;
  snd_buf_seq_ += 1;
  snd_nxt_ = snd_max_ = iss;
  ts_offset_ = ts_offset;
  rcv_wscale_ = cfg_.window_scaling ? ChooseWindowScale(cfg_.recv_buffer) : 0;
  SetState(TcpState::kSynSent, "active open", now);
  SendSyn(now, /*retransmission=*/false);
}

void Tcb::OpenPassive(const SegmentRepr& syn, SeqNum iss, uint32_t ts_offset, Instant now) {
  passive_ = true;
  state_ = TcpState::kListen;  // the listener's state, which this TCB leaves right away
  iss_ = snd_una_ = iss;
  snd_buf_seq_ = iss + 1;
  snd_nxt_ = snd_max_ = iss;
  ts_offset_ = ts_offset;
  irs_ = syn.seq;
  rcv_nxt_ = syn.seq + 1;
  rcv_wscale_ = cfg_.window_scaling ? ChooseWindowScale(cfg_.recv_buffer) : 0;
  NegotiateOptions(syn);
  // RFC 9293 §3.10.7.2: the SYN's window is never scaled (RFC 7323 §2.2).
  snd_wnd_ = max_snd_wnd_ = syn.window;
  snd_wl1_ = syn.seq;
  snd_wl2_ = iss;
  if (ts_enabled_) {
    ts_recent_ = syn.options.timestamps->val;
    ts_recent_age_ = now;
  }
  counters_.segments_in++;
  Verdict(syn, Verdict::kAccepted, now);
  SetState(TcpState::kSynReceived, "SYN received", now);
  SendSyn(now, /*retransmission=*/false);
}

void Tcb::NegotiateOptions(const SegmentRepr& syn) {
  const wire::TcpOptions& o = syn.options;
  // RFC 9293 §3.7.1: without an MSS option the peer takes 536.
  peer_mss_ = o.mss.value_or(cfg_.default_peer_mss);
  // RFC 7323 §2.2: scaling only if both SYNs carry the option.
  ws_enabled_ = cfg_.window_scaling && o.window_scale.has_value();
  if (ws_enabled_) {
    snd_wscale_ = std::min(*o.window_scale, kMaxWindowScale);
  } else {
    snd_wscale_ = rcv_wscale_ = 0;
  }
  ts_enabled_ = cfg_.timestamps && o.timestamps.has_value();      // RFC 7323 §3.2
  sack_enabled_ = cfg_.sack && o.sack_permitted;                  // RFC 2018 §2
  uint16_t mss = std::min(peer_mss_, cfg_.mss);
  // The MSS counts only data: option bytes carried on every segment come out of it.
  if (ts_enabled_ && mss > kTimestampOptionLen + 64) mss -= kTimestampOptionLen;
  smss_ = std::max<uint16_t>(mss, 64);
  cc_.Init(smss_, cfg_.initial_cwnd_segments);
}

// ---------------------------------------------------------------------------------------------
// SEGMENT ARRIVES.

void Tcb::Verdict(const SegmentRepr& seg, tcp::Verdict v, Instant now) {
  if (!sink_) return;
  SegmentEvent ev;
  ev.conn = id_;
  ev.dir = Direction::kIn;
  ev.verdict = v;
  ev.seg = seg;
  ev.seg.payload = {};
  ev.payload_len = static_cast<uint32_t>(seg.payload.size());
  ev.preview_len = static_cast<uint8_t>(std::min<size_t>(seg.payload.size(), ev.preview.size()));
  std::copy_n(seg.payload.begin(), ev.preview_len, ev.preview.begin());
  ev.iss = iss_;
  ev.irs = irs_;
  sink_->OnSegment(now, ev);
}

void Tcb::OnSegment(const SegmentRepr& seg, Instant now) {
  counters_.segments_in++;
  switch (state_) {
    case TcpState::kClosed:
    case TcpState::kListen:
      // The stack answers for closed ports; a TCB that is CLOSED takes nothing.
      Verdict(seg, Verdict::kIgnored, now);
      return;
    case TcpState::kSynSent:
      OnSegmentSynSent(seg, now);
      return;
    default:
      break;
  }
  if (state_ == TcpState::kSynReceived && HandleSynReceivedSpecials(seg, now)) return;
  if (state_ == TcpState::kTimeWait && HandleTimeWaitFin(seg, now)) return;
  if (!CheckPaws(seg, now)) return;
  if (!CheckSequence(seg, now)) return;
  if (!CheckRst(seg, now)) return;
  if (!CheckSyn(seg, now)) return;
  // RFC 9293 §3.10.7.4 fifth: "if the ACK bit is off, drop the segment and return".
  if (!seg.Has(wire::kAck)) {
    Verdict(seg, Verdict::kIgnored, now);
    return;
  }
  if (!CheckAck(seg, now)) return;
  // The segment is accepted: report it before what it causes, so logs read in causal order.
  Verdict(seg, Verdict::kAccepted, now);
  UpdateTsRecent(seg, now);
  if (!ProcessAck(seg, now)) return;
  if (cfg_.keepalive && ka_deadline_ != kNever) {
    ka_deadline_ = now + cfg_.keepalive_idle;
    ka_probes_ = 0;
  }
  ProcessTextAndFin(seg, now);
  if (state_ != TcpState::kClosed) Output(now);
}

// RFC 9293 §3.10.7.3.
void Tcb::OnSegmentSynSent(const SegmentRepr& seg, Instant now) {
  bool ack_ok = false;
  if (seg.Has(wire::kAck)) {
    // First: an ACK must acknowledge our SYN and nothing we have not sent.
    if (seg.ack <= iss_ || seg.ack > snd_max_) {
      if (!seg.Has(wire::kRst)) SendRst(seg.ack, now);
      Verdict(seg, Verdict::kBadAck, now);
      return;
    }
    ack_ok = seg.ack >= snd_una_;
  }
  // Second: a RST is acceptable only with an acceptable ACK; it means "connection refused".
  if (seg.Has(wire::kRst)) {
    if (!ack_ok) {
      Verdict(seg, Verdict::kIgnored, now);
      return;
    }
    Verdict(seg, Verdict::kResetConnection, now);
    EnterClosed(SocketError(absl::StatusCode::kFailedPrecondition, "ECONNREFUSED",
                            "connection refused: RST in SYN-SENT"),
                "RST received: connection refused", now);
    return;
  }
  // Fourth: without SYN there is nothing to do.
  if (!seg.Has(wire::kSyn)) {
    Verdict(seg, Verdict::kIgnored, now);
    return;
  }
  irs_ = seg.seq;
  rcv_nxt_ = seg.seq + 1;
  rcv_adv_ = rcv_nxt_ + syn_window_;  // the window our SYN offered stands (never shrink)
  NegotiateOptions(seg);
  if (ts_enabled_) {
    ts_recent_ = seg.options.timestamps->val;
    ts_recent_age_ = now;
  }
  snd_wnd_ = max_snd_wnd_ = seg.window;  // never scaled in a SYN (RFC 7323 §2.2)
  snd_wl1_ = seg.seq;
  snd_wl2_ = seg.ack;
  if (!ack_ok) {
    // Simultaneous open (RFC 9293 §3.5, Figure 7): SYN-RECEIVED, send SYN+ACK.
    Verdict(seg, Verdict::kAccepted, now);
    SetState(TcpState::kSynReceived, "SYN received in SYN-SENT: simultaneous open", now);
    snd_nxt_ = iss_;  // the SYN goes out again, now with an ACK
    SendSyn(now, /*retransmission=*/true);
    return;
  }
  Verdict(seg, Verdict::kAccepted, now);
  if (!syn_retransmitted_ && rtt_timing_) rtt_.Sample(now - rtt_start_);  // Karn's rule
  rtt_timing_ = false;
  snd_una_ = seg.ack;
  rto_retries_ = 0;
  StopTimer(rto_deadline_, TimerKind::kRetransmission, now);
  SetState(TcpState::kEstablished, "SYN+ACK received", now);  // applies RFC 6298 (5.7)
  // "form an ACK segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it" (RFC 9293
  // §3.10.7.3), with any data or FIN the SYN+ACK carried taken first.
  uint64_t sent_before = counters_.segments_out;
  if (!seg.payload.empty() || seg.Has(wire::kFin)) ProcessTextAndFin(seg, now);
  if (counters_.segments_out == sent_before) SendAck(now);
  if (pending_shutdown_) {
    pending_shutdown_ = false;
    (void)Shutdown(now);
  }
  Output(now);
}

// SYN-RECEIVED cases the RFC's step order does not reach. Returns true if handled.
bool Tcb::HandleSynReceivedSpecials(const SegmentRepr& seg, Instant now) {
  if (!seg.Has(wire::kSyn) || seg.Has(wire::kRst)) return false;
  if (!seg.Has(wire::kAck) && seg.seq == irs_) {
    // The peer retransmitted its SYN: our SYN+ACK was lost. Send it again (RFC 9293 §3.8.1).
    Verdict(seg, Verdict::kAccepted, now);
    snd_nxt_ = iss_;
    SendSyn(now, /*retransmission=*/true);
    return true;
  }
  if (seg.Has(wire::kAck) && seg.seq == irs_ && seg.ack == snd_max_ && !passive_) {
    // Simultaneous open: the peer's SYN+ACK acknowledges our SYN. RFC 9293 Figure 7 (RFC 793
    // Figure 8) moves to ESTABLISHED here; the step-by-step text would drop it as a duplicate
    // SYN. Linux accepts it the same way (tcp_validate_incoming).
    Verdict(seg, Verdict::kAccepted, now);
    snd_una_ = seg.ack;
    rto_retries_ = 0;
    StopTimer(rto_deadline_, TimerKind::kRetransmission, now);
    UpdateSendWindow(seg);
    SetState(TcpState::kEstablished, "SYN+ACK received: simultaneous open", now);
    if (pending_shutdown_) {
      pending_shutdown_ = false;
      (void)Shutdown(now);
    }
    uint64_t sent_before = counters_.segments_out;
    Output(now);
    // Its SYN lies below RCV.NXT: "If an incoming segment is not acceptable, an acknowledgment
    // should be sent in reply" (RFC 9293 §3.10.7.4 first; past that step, fourth would send a
    // challenge ACK). A peer that follows the text rather than Figure 7 waits in SYN-RECEIVED
    // for exactly this ACK. Linux sends it too.
    if (counters_.segments_out == sent_before) SendAck(now);
    return true;
  }
  return false;
}

// TIME-WAIT: the peer retransmitted its FIN because our last ACK was lost. ACK it again and
// restart the 2·MSL timer (RFC 9293 §3.10.7.4 eighth, TIME-WAIT; the first reason for
// TIME-WAIT). The FIN is below RCV.NXT, so the general acceptability test would only ACK it.
bool Tcb::HandleTimeWaitFin(const SegmentRepr& seg, Instant now) {
  if (!seg.Has(wire::kFin) || seg.Has(wire::kRst) || seg.Has(wire::kSyn)) return false;
  if (seg.seq + seg.SeqLen() != rcv_nxt_) return false;
  Verdict(seg, Verdict::kAccepted, now);
  SendAck(now);
  StartTimeWait(now);
  return true;
}

// RFC 7323 §5.3 R1: PAWS. Returns false if the segment was dropped.
bool Tcb::CheckPaws(const SegmentRepr& seg, Instant now) {
  if (!ts_enabled_ || !seg.options.timestamps || seg.Has(wire::kRst)) return true;
  int32_t age = static_cast<int32_t>(seg.options.timestamps->val - ts_recent_);
  if (age >= 0) return true;
  if (now - ts_recent_age_ > kPawsIdle) return true;  // RFC 7323 §5.5
  counters_.paws_drops++;
  Verdict(seg, Verdict::kPawsRejected, now);
  SendAck(now);
  return false;
}

// RFC 9293 §3.10.7.4 first: the acceptability test. Returns false if the segment was dropped.
bool Tcb::CheckSequence(const SegmentRepr& seg, Instant now) {
  if (wire::Acceptable(seg.seq, seg.SeqLen(), rcv_nxt_, RcvWnd())) return true;
  // "If the RCV.WND is zero, no segments will be acceptable, but special allowance should be
  // made to accept valid ACKs, URGs, and RSTs": a segment at RCV.NXT (a window probe, say)
  // still has its ACK processed; its text finds no room and is answered with an ACK.
  if (RcvWnd() == 0 && seg.seq == rcv_nxt_ && (seg.Has(wire::kAck) || seg.Has(wire::kRst))) {
    return true;
  }
  counters_.out_of_window_segments++;
  if (seg.Has(wire::kRst)) {
    // "If the RST bit is set, drop the segment and return." Never answer a RST.
    Verdict(seg, Verdict::kIgnored, now);
    return false;
  }
  Verdict(seg, Verdict::kOutOfWindow, now);
  SendAck(now);
  return false;
}

// RFC 9293 §3.10.7.4 second, with RFC 5961 §3.2: a RST resets only if it carries exactly
// RCV.NXT; an in-window RST gets a challenge ACK.
bool Tcb::CheckRst(const SegmentRepr& seg, Instant now) {
  if (!seg.Has(wire::kRst)) return true;
  if (seg.seq != rcv_nxt_) {
    Verdict(seg, Verdict::kChallengeAcked, now);
    SendChallengeAck(seg, now);
    return false;
  }
  Verdict(seg, Verdict::kResetConnection, now);
  switch (state_) {
    case TcpState::kSynReceived:
      if (passive_) {
        // "If this connection was initiated with a passive OPEN, then return this connection
        // to the LISTEN state": the listener lives on in the stack, this TCB goes.
        rto_deadline_ = kNever;
        SetState(TcpState::kListen, "RST received: back to LISTEN", now);
      } else {
        EnterClosed(SocketError(absl::StatusCode::kFailedPrecondition, "ECONNREFUSED",
                                "connection refused: RST in SYN-RECEIVED"),
                    "RST received: connection refused", now);
      }
      break;
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
    case TcpState::kCloseWait:
      EnterClosed(SocketError(absl::StatusCode::kAborted, "ECONNRESET",
                              absl::StrCat("connection reset by peer in ", Name(state_))),
                  "RST received: connection reset", now);
      break;
    default:  // CLOSING, LAST-ACK, TIME-WAIT: the connection was ending anyway.
      EnterClosed(absl::OkStatus(), "RST received", now);
      break;
  }
  return false;
}

// RFC 9293 §3.10.7.4 fourth, with RFC 5961 §4: a SYN in a synchronized state is answered with
// a challenge ACK, whatever its sequence number.
bool Tcb::CheckSyn(const SegmentRepr& seg, Instant now) {
  if (!seg.Has(wire::kSyn)) return true;
  if (state_ == TcpState::kSynReceived && passive_) {
    // "return this connection to the LISTEN state and return".
    Verdict(seg, Verdict::kIgnored, now);
    rto_deadline_ = kNever;
    SetState(TcpState::kListen, "SYN in SYN-RECEIVED: back to LISTEN", now);
    return false;
  }
  Verdict(seg, Verdict::kChallengeAcked, now);
  SendChallengeAck(seg, now);
  return false;
}

// RFC 7323 §4.3: TS.Recent follows the segment that covers the left window edge.
void Tcb::UpdateTsRecent(const SegmentRepr& seg, Instant now) {
  if (!ts_enabled_ || !seg.options.timestamps) return;
  if (static_cast<int32_t>(seg.options.timestamps->val - ts_recent_) >= 0 &&
      seg.seq <= last_ack_sent_) {
    ts_recent_ = seg.options.timestamps->val;
    ts_recent_age_ = now;
  }
}

// RFC 9293 §3.10.7.4 fifth. Returns false if processing stops here.
// RFC 9293 §3.10.7.4 fifth, the checks: returns false (and answers) if the ACK is unacceptable.
bool Tcb::CheckAck(const SegmentRepr& seg, Instant now) {
  if (state_ == TcpState::kSynReceived) {
    if (snd_una_ < seg.ack && seg.ack <= snd_max_) return true;
    // "<SEQ=SEG.ACK><CTL=RST>"
    Verdict(seg, Verdict::kBadAck, now);
    SendRst(seg.ack, now);
    return false;
  }
  // RFC 5961 §5.2: the ACK must lie in [SND.UNA - MAX.SND.WND, SND.NXT]; otherwise drop it and
  // send an ACK. (SND.NXT here is SND.MAX: after an RTO rewind, later ACKs are still valid.)
  if (seg.ack > snd_max_ || seg.ack < snd_una_ - max_snd_wnd_) {
    Verdict(seg, Verdict::kBadAck, now);
    SendChallengeAck(seg, now);
    return false;
  }
  return true;
}

// RFC 9293 §3.10.7.4 fifth, for an acceptable ACK. Returns false if processing stops here.
bool Tcb::ProcessAck(const SegmentRepr& seg, Instant now) {
  persist_unanswered_ = 0;  // the peer is there
  if (state_ == TcpState::kSynReceived) {
    snd_wnd_ = 0;
    snd_wl1_ = seg.seq - 1;  // let this segment set the window below
    SetState(TcpState::kEstablished, "ACK of SYN received", now);
  }
  ProcessSackBlocks(seg);
  if (seg.ack > snd_una_) {
    ProcessNewAck(seg, now);
  } else if (seg.ack == snd_una_) {
    ProcessDupAck(seg, now);
  }
  // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated": an old ACK
  // (SEG.ACK < SND.UNA) never does, whatever its sequence number.
  if (seg.ack >= snd_una_) UpdateSendWindow(seg);
  if (snd_wnd_ > 0) {
    if (persist_deadline_ != kNever || persist_backoff_ > 0) {
      // The window reopened while probing. A probe octet the peer refused is still
      // outstanding with no timer on it: resend from SND.UNA (as BSD does), which also
      // arms the retransmission timer (RFC 6298 (5.1)).
      snd_nxt_ = snd_una_;
    }
    StopTimer(persist_deadline_, TimerKind::kPersist, now);
    persist_backoff_ = 0;
  } else {
    rto_retries_ = 0;  // the receiver is alive and says "wait": probing goes on (RFC 9293 §3.8.6.1)
  }
  if (pending_shutdown_ && state_ == TcpState::kEstablished) {
    pending_shutdown_ = false;
    (void)Shutdown(now);
  }
  // State-specific parts of step five.
  switch (state_) {
    case TcpState::kFinWait1:
      if (FinAcked()) SetState(TcpState::kFinWait2, "ACK of FIN received", now);
      break;
    case TcpState::kClosing:
      if (FinAcked()) SetState(TcpState::kTimeWait, "ACK of FIN received", now);
      break;
    case TcpState::kLastAck:
      if (FinAcked()) {
        EnterClosed(absl::OkStatus(), "ACK of FIN received", now);
        return false;
      }
      break;
    default:
      break;
  }
  return true;
}

void Tcb::ProcessNewAck(const SegmentRepr& seg, Instant now) {
  uint32_t acked = static_cast<uint32_t>(seg.ack - snd_una_);
  // Sequence space covers SYN and FIN too: only data octets leave the send buffer.
  uint32_t data_acked = acked;
  if (snd_una_ == iss_) data_acked--;  // our SYN
  if (FinSent() && seg.ack == FinSeq() + 1) data_acked--;
  send_.Pop(data_acked);
  snd_buf_seq_ += data_acked;
  snd_una_ = seg.ack;
  if (snd_nxt_ < snd_una_) snd_nxt_ = snd_una_;
  while (!sacked_.empty() && sacked_.front().right <= snd_una_) sacked_.erase(sacked_.begin());
  if (!sacked_.empty() && sacked_.front().left < snd_una_) sacked_.front().left = snd_una_;
  rto_retries_ = 0;

  // RTT: with timestamps every ACK measures (RFC 7323 §4.1, retransmissions included); without
  // them one segment at a time, never a retransmitted one (Karn's rule, RFC 6298 §3).
  if (ts_enabled_ && seg.options.timestamps && seg.options.timestamps->ecr != 0) {
    uint32_t ms = TsNow(now) - seg.options.timestamps->ecr;
    if (ms < 0x7fffffff) rtt_.Sample(std::chrono::milliseconds(ms));
  } else if (rtt_timing_ && seg.ack > rtt_seq_) {
    rtt_.Sample(now - rtt_start_);
    rtt_timing_ = false;
  }

  bool partial = cc_.OnNewAck(seg.ack, acked, FlightSize());
  if (!cc_.in_recovery()) rexmit_in_recovery_ = 0;
  // RFC 6298 (5.2)/(5.3): stop the timer when everything is acknowledged, else restart it.
  if (snd_una_ == snd_max_) {
    StopTimer(rto_deadline_, TimerKind::kRetransmission, now);
  } else {
    rto_deadline_ = now + rtt_.rto();
  }
  if (partial) {
    // RFC 6582 §3.2 step 5: retransmit the first unacknowledged segment. With SACK, holes
    // already resent in this recovery are not sent again.
    hole_next_ = sack_enabled_ ? wire::Max(hole_next_, snd_una_) : snd_una_;
    RetransmitFirstHole(now);
  }
}

// RFC 5681 §2: a duplicate ACK carries no data and no SYN/FIN, acknowledges SND.UNA while data
// is outstanding, and leaves the window unchanged.
void Tcb::ProcessDupAck(const SegmentRepr& seg, Instant now) {
  bool dup = seg.payload.empty() && !seg.Has(wire::kSyn) && !seg.Has(wire::kFin) &&
             snd_max_ > snd_una_ && (uint32_t{seg.window} << snd_wscale_) == snd_wnd_ &&
             snd_wnd_ != 0;  // ACKs of zero-window probes are not a loss signal
  if (!dup) return;
  counters_.dup_acks_in++;
  bool was_recovering = cc_.in_recovery();
  if (cc_.OnDupAck(snd_una_, snd_max_, FlightSize())) {
    // RFC 5681 §3.2 step 2: fast retransmit.
    counters_.fast_retransmits++;
    rtt_timing_ = false;  // Karn
    hole_next_ = snd_una_;
    RetransmitFirstHole(now);
  } else if (was_recovering && sack_enabled_) {
    // With SACK, each further duplicate ACK may fill the next hole (RFC 6675 in spirit).
    RetransmitFirstHole(now);
  }
}

// RFC 9293 §3.10.7.4 fifth: update the send window only from newer segments (SND.WL1/WL2).
void Tcb::UpdateSendWindow(const SegmentRepr& seg) {
  if (snd_wl1_ < seg.seq || (snd_wl1_ == seg.seq && snd_wl2_ <= seg.ack)) {
    snd_wnd_ = uint32_t{seg.window} << snd_wscale_;
    max_snd_wnd_ = std::max(max_snd_wnd_, snd_wnd_);
    snd_wl1_ = seg.seq;
    snd_wl2_ = seg.ack;
  }
}

// RFC 2018 §5: remember which ranges above SND.UNA the receiver holds.
void Tcb::ProcessSackBlocks(const SegmentRepr& seg) {
  if (!sack_enabled_) return;
  for (int i = 0; i < seg.options.sack_count; ++i) {
    wire::SackBlock b = seg.options.sack[i];
    if (!(b.left < b.right) || b.right <= snd_una_ || b.right > snd_max_) continue;
    if (b.left < snd_una_) b.left = snd_una_;
    // Insert and merge.
    auto it = std::find_if(sacked_.begin(), sacked_.end(),
                           [&](const wire::SackBlock& s) { return b.left < s.left; });
    it = sacked_.insert(it, b);
    std::vector<wire::SackBlock> merged;
    for (const wire::SackBlock& s : sacked_) {
      if (!merged.empty() && s.left <= merged.back().right) {
        merged.back().right = wire::Max(merged.back().right, s.right);
      } else {
        merged.push_back(s);
      }
    }
    sacked_ = std::move(merged);
  }
}

// RFC 9293 §3.10.7.4 seventh and eighth.
void Tcb::ProcessTextAndFin(const SegmentRepr& seg, Instant now) {
  bool can_receive = state_ == TcpState::kEstablished || state_ == TcpState::kFinWait1 ||
                     state_ == TcpState::kFinWait2;
  if (!can_receive) return;  // after a FIN from the peer, text "should not occur"; ignore it
  uint32_t syn = seg.Has(wire::kSyn) ? 1 : 0;
  uint64_t off = StreamOffset(seg.seq + syn);
  bool has_text = !seg.payload.empty() && off + seg.payload.size() > rcv_nxt_off_;
  if (has_text && user_closed_) {
    // The application closed and will never read this: reset (RFC 9293 §3.10.4 / RFC 2525
    // §2.17, as Linux does). SEG.ACK is a sequence number the peer is sure to accept.
    SendRst(seg.ack, now);
    EnterClosed(SocketError(absl::StatusCode::kAborted, "ECONNRESET",
                            "data arrived after close; connection reset"),
                "data received after close: RST sent", now);
    return;
  }
  bool out_of_order = off > rcv_nxt_off_;
  bool filled_hole = false;
  if (has_text) {
    uint64_t limit = rcv_nxt_off_ + recv_.free();
    if (!out_of_order && reasm_.empty()) {
      // Fast path: in order, nothing waiting.
      auto data = seg.payload.subspan(rcv_nxt_off_ - off);
      size_t n = recv_.Push(data.first(std::min<uint64_t>(data.size(), limit - rcv_nxt_off_)));
      rcv_nxt_ += static_cast<uint32_t>(n);
      rcv_nxt_off_ += n;
      counters_.bytes_in += n;
    } else {
      if (out_of_order) {
        counters_.out_of_order_segments++;
        last_rcvd_off_ = off;
      }
      filled_hole = !out_of_order && !reasm_.empty();
      reasm_.Insert(off, seg.payload, rcv_nxt_off_, limit);
      uint64_t n = reasm_.DeliverFrom(rcv_nxt_off_, [&](std::span<const uint8_t> d) { recv_.Push(d); });
      rcv_nxt_ += static_cast<uint32_t>(n);
      rcv_nxt_off_ += n;
      counters_.bytes_in += n;
    }
  }
  if (seg.Has(wire::kFin)) reasm_.SetFin(off + seg.payload.size());
  if (!fin_received_ && reasm_.fin() && *reasm_.fin() == rcv_nxt_off_) {
    ProcessFin(now);
    return;
  }
  if (has_text || seg.Has(wire::kFin)) {
    // Text that found no room (a full buffer, a window probe) is answered at once, so the
    // sender learns the window (RFC 9293 §3.8.6.1).
    bool no_room = has_text && !out_of_order && rcv_nxt_off_ < off + seg.payload.size();
    AckPolicyAfterData(out_of_order || no_room || seg.Has(wire::kFin), filled_hole,
                       static_cast<int>(seg.payload.size() / smss_), now);
  }
}

// RFC 9293 §3.10.7.4 eighth: the FIN is in order.
void Tcb::ProcessFin(Instant now) {
  fin_received_ = true;
  rcv_nxt_ += 1;
  rcv_nxt_off_ += 1;
  SendAck(now);  // a FIN is acknowledged at once
  switch (state_) {
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
      SetState(TcpState::kCloseWait, "FIN received", now);
      break;
    case TcpState::kFinWait1:
      // Our FIN is not acknowledged yet (else we would be in FIN-WAIT-2): simultaneous close.
      SetState(TcpState::kClosing, "FIN received: simultaneous close", now);
      break;
    case TcpState::kFinWait2:
      SetState(TcpState::kTimeWait, "FIN received", now);
      break;
    default:
      break;
  }
}

// RFC 5681 §4.2 / RFC 9293 §3.8.6.3: ACK out-of-order and hole-filling segments at once, every
// second full-sized segment, and otherwise within the delayed-ACK time. `full_sized` counts
// full-sized segments in this one: more than 1 for a super-segment a TSO/GSO sender handed
// us in one piece (a TUN with vnet_hdr), which stands for that many segments on a wire.
void Tcb::AckPolicyAfterData(bool out_of_order, bool filled_hole, int full_sized, Instant now) {
  if (!cfg_.delayed_ack || out_of_order || filled_hole) {
    SendAck(now);
    return;
  }
  full_segments_unacked_ += full_sized;
  if (full_segments_unacked_ >= 2) {
    SendAck(now);
    return;
  }
  if (delack_deadline_ == kNever) delack_deadline_ = now + cfg_.delayed_ack_timeout;
}

// ---------------------------------------------------------------------------------------------
// User calls.

absl::StatusOr<size_t> Tcb::Send(std::span<const uint8_t> data, Instant now) {
  switch (state_) {
    case TcpState::kSynSent:
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
    case TcpState::kCloseWait:
      break;
    case TcpState::kClosed:
      if (!error_.ok()) return error_;
      return SocketError(absl::StatusCode::kFailedPrecondition, "ENOTCONN",
                         "connection is CLOSED");
    default:
      return SocketError(absl::StatusCode::kFailedPrecondition, "EPIPE",
                         absl::StrCat("cannot send after shutdown: connection is in ",
                                      Name(state_)));
  }
  if (fin_queued_ || pending_shutdown_) {
    return SocketError(absl::StatusCode::kFailedPrecondition, "EPIPE",
                       "cannot send after shutdown");
  }
  size_t n = send_.Push(data);
  if (IsSynchronized(state_)) Output(now);
  return n;
}

absl::StatusOr<size_t> Tcb::Recv(std::span<uint8_t> out, Instant now) {
  if (recv_.empty()) {
    if (state_ == TcpState::kClosed && !error_.ok()) return error_;
    return 0;  // would block, or end of stream (AtEof)
  }
  uint16_t before = static_cast<uint16_t>(std::min<uint32_t>(RcvWnd() >> rcv_wscale_, 0xffff));
  size_t n = recv_.Read(out);
  if (!IsSynchronized(state_) || state_ == TcpState::kTimeWait) return n;
  // Window update: tell the peer when reading opened the window by a useful amount, i.e. what
  // the receiver-side SWS rule of RFC 9293 §3.8.6.2.2 lets through.
  uint32_t threshold = std::min<uint32_t>(recv_.capacity() / 2, 2u * smss_);
  // The window can only grow up to what the window field can say (RFC 7323 §2.3: 65535 <<
  // the shift): a buffer larger than that has room the peer will never be offered, and an
  // "update" that cannot move the edge is a duplicate ACK the sender may count toward a fast
  // retransmit (RFC 5681 §2).
  uint32_t potential = static_cast<uint32_t>(
      std::min<size_t>(recv_.free(), size_t{0xffff} << rcv_wscale_));
  if (potential >= RcvWnd() + threshold || (before == 0 && potential >= smss_)) SendAck(now);
  return n;
}

absl::Status Tcb::Shutdown(Instant now) {
  switch (state_) {
    case TcpState::kSynSent:
    case TcpState::kSynReceived:
      // RFC 9293 §3.10.4: queue the close until ESTABLISHED.
      pending_shutdown_ = true;
      return absl::OkStatus();
    case TcpState::kEstablished:
      fin_queued_ = true;
      SetState(TcpState::kFinWait1, "close requested: FIN queued", now);
      Output(now);
      return absl::OkStatus();
    case TcpState::kCloseWait:
      fin_queued_ = true;
      SetState(TcpState::kLastAck, "close requested: FIN queued", now);
      Output(now);
      return absl::OkStatus();
    case TcpState::kClosed:
      if (!error_.ok()) return error_;
      return SocketError(absl::StatusCode::kFailedPrecondition, "ENOTCONN",
                         "connection is CLOSED");
    default:
      return absl::OkStatus();  // already closing: shutdown(2) is idempotent
  }
}

absl::Status Tcb::Close(Instant now) {
  user_closed_ = true;
  switch (state_) {
    case TcpState::kClosed:
      return absl::OkStatus();
    case TcpState::kSynSent:
      // RFC 9293 §3.10.4: "Delete the TCB".
      EnterClosed(absl::OkStatus(), "closed by user in SYN-SENT", now);
      return absl::OkStatus();
    default:
      break;
  }
  if (!recv_.empty()) {
    // Unread data would be lost silently: reset instead (RFC 2525 §2.17, Linux tcp_close).
    Abort(now);
    return absl::OkStatus();
  }
  absl::Status s = Shutdown(now);
  MaybeArmFinWait2(now);
  return s;
}

// RFC 9293 §3.10.5.
void Tcb::Abort(Instant now) {
  switch (state_) {
    case TcpState::kSynReceived:
    case TcpState::kEstablished:
    case TcpState::kFinWait1:
    case TcpState::kFinWait2:
    case TcpState::kCloseWait:
      SendRst(AcceptableSeq(), now);
      break;
    default:
      break;
  }
  user_closed_ = true;
  EnterClosed(SocketError(absl::StatusCode::kAborted, "ECONNABORTED", "connection aborted by user"),
              "aborted by user", now);
}

// ---------------------------------------------------------------------------------------------
// Output.

uint32_t Tcb::RcvWnd() const {
  return rcv_adv_ > rcv_nxt_ ? static_cast<uint32_t>(rcv_adv_ - rcv_nxt_) : 0;
}

// The window to advertise, as the 16-bit header field (RFC 7323 §2.3: scaled, except in SYNs).
uint16_t Tcb::AdvertiseWindow() {
  uint32_t max_wnd = uint32_t{0xffff} << rcv_wscale_;
  uint32_t free = static_cast<uint32_t>(std::min<size_t>(recv_.free(), max_wnd));
  SeqNum right = rcv_nxt_ + free;
  SeqNum old_right = rcv_adv_;
  // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): move the right edge only by a useful amount.
  uint32_t threshold = std::min<uint32_t>(static_cast<uint32_t>(recv_.capacity() / 2), smss_);
  if (old_right >= rcv_nxt_ && right > old_right && static_cast<uint32_t>(right - old_right) < threshold) {
    right = old_right;
  }
  // Never shrink the window (RFC 9293 §3.8.6.2.2). Every edge advertised so far lies within
  // the buffer, and reading only adds room, so keeping the old edge never overcommits.
  if (old_right > right) right = old_right;
  uint32_t wnd = static_cast<uint32_t>(right - rcv_nxt_);
  // The scaled field is rounded down, so the advertised edge never passes the free buffer
  // space; it may then lie up to 2^shift - 1 octets short of the old edge (RFC 7323 §2.4),
  // which stays the edge we accept data up to. Rounding up instead would let the edge creep
  // past the buffer a little with every small segment.
  uint32_t field = std::min<uint32_t>(wnd >> rcv_wscale_, 0xffff);
  SeqNum advertised = rcv_nxt_ + (field << rcv_wscale_);
  rcv_adv_ = old_right >= rcv_nxt_ ? wire::Max(old_right, advertised) : advertised;
  return static_cast<uint16_t>(field);
}

SegmentRepr Tcb::Header(uint8_t flags, SeqNum seq, Instant now) {
  SegmentRepr seg;
  seg.src = local_;
  seg.dst = remote_;
  seg.seq = seq;
  seg.flags = flags;
  if (flags & wire::kAck) seg.ack = rcv_nxt_;
  if (flags & wire::kSyn) {
    // RFC 7323 §2.2: the window in a SYN is not scaled.
    seg.window = static_cast<uint16_t>(std::min<size_t>(recv_.free(), 0xffff));
    syn_window_ = seg.window;
    rcv_adv_ = rcv_nxt_ + seg.window;
    seg.options.mss = cfg_.mss;
    bool offer = !(flags & wire::kAck);  // on a SYN+ACK, only echo what the peer offered
    if (cfg_.window_scaling && (offer || ws_enabled_)) seg.options.window_scale = rcv_wscale_;
    if (cfg_.sack && (offer || sack_enabled_)) seg.options.sack_permitted = true;
    if (cfg_.timestamps && (offer || ts_enabled_)) {
      seg.options.timestamps = wire::Timestamps{TsNow(now), (flags & wire::kAck) ? ts_recent_ : 0};
    }
    return seg;
  }
  if (flags & wire::kRst) return seg;
  seg.window = AdvertiseWindow();
  if (ts_enabled_) seg.options.timestamps = wire::Timestamps{TsNow(now), ts_recent_};
  if (sack_enabled_ && !reasm_.empty()) {
    // RFC 2018 §4: the first block holds the most recently received segment, then the others.
    auto ranges = reasm_.Ranges();
    auto to_block = [&](const Reassembler::Range& r) {
      return wire::SackBlock{rcv_nxt_ + static_cast<uint32_t>(r.begin - rcv_nxt_off_),
                             rcv_nxt_ + static_cast<uint32_t>(r.end - rcv_nxt_off_)};
    };
    int max_blocks = ts_enabled_ ? 3 : 4;
    auto recent = reasm_.RangeContaining(last_rcvd_off_);
    if (recent) seg.options.sack[seg.options.sack_count++] = to_block(*recent);
    for (auto it = ranges.rbegin(); it != ranges.rend() && seg.options.sack_count < max_blocks; ++it) {
      if (recent && it->begin == recent->begin) continue;
      seg.options.sack[seg.options.sack_count++] = to_block(*it);
    }
  }
  return seg;
}

void Tcb::Transmit(SegmentRepr& seg, bool retransmission, Instant now) {
  counters_.segments_out++;
  if (retransmission) counters_.retransmissions++;
  if (seg.flags & wire::kAck) {
    last_ack_sent_ = seg.ack;
    full_segments_unacked_ = 0;
    if (delack_deadline_ != kNever) delack_deadline_ = kNever;
  }
  if (sink_) {
    SegmentEvent ev;
    ev.conn = id_;
    ev.dir = Direction::kOut;
    ev.verdict = retransmission ? Verdict::kRetransmitted : Verdict::kSent;
    ev.seg = seg;
    ev.seg.payload = {};
    ev.payload_len = static_cast<uint32_t>(seg.payload.size());
    ev.preview_len = static_cast<uint8_t>(std::min<size_t>(seg.payload.size(), ev.preview.size()));
    std::copy_n(seg.payload.begin(), ev.preview_len, ev.preview.begin());
    ev.iss = iss_;
    ev.irs = irs_;
    sink_->OnSegment(now, ev);
  }
  emit_(seg);
}

void Tcb::SendSyn(Instant now, bool retransmission) {
  uint8_t flags = wire::kSyn | (state_ == TcpState::kSynReceived ? wire::kAck : 0);
  SegmentRepr seg = Header(flags, iss_, now);
  if (retransmission) rtt_timing_ = false;  // Karn's rule (RFC 6298 §3)
  if (!retransmission && !rtt_timing_) {
    rtt_timing_ = true;
    rtt_seq_ = iss_;
    rtt_start_ = now;
  }
  snd_nxt_ = iss_ + 1;
  snd_max_ = wire::Max(snd_max_, snd_nxt_);
  Transmit(seg, retransmission, now);
  ArmRto(now);
}

// A segment with no data, SYN or FIN carries SND.MAX, the next new octet, not SND.NXT: after an
// RTO rewinds SND.NXT (RFC 6298 (5.4)) the peer may already hold octets beyond it, and an ACK
// with a sequence number below its RCV.NXT fails the acceptability test (RFC 9293 §3.10.7.4)
// and is dropped unread, so both sides could end up discarding each other's ACKs forever. BSD
// uses snd_max here for the same reason; Linux never rewinds snd_nxt.
// The sequence number for a segment without data, SYN or FIN (an ACK or a RST we start): SND.MAX,
// the next new octet, but never beyond the peer's window. After an RTO rewinds SND.NXT (RFC
// 6298 (5.4)) the peer may hold octets beyond it, and a sequence number below its RCV.NXT fails
// its acceptability test (RFC 9293 §3.10.7.4); a zero-window probe octet the peer refused lies
// beyond its window, which a zero-length segment must not (the same test with RCV.WND = 0). BSD
// uses snd_max, Linux tcp_acceptable_seq: the same rule.
SeqNum Tcb::AcceptableSeq() const {
  SeqNum right = snd_una_ + snd_wnd_;
  return snd_max_ <= right ? snd_max_ : wire::Max(right, snd_una_);
}

void Tcb::SendAck(Instant now) {
  SegmentRepr seg = Header(wire::kAck, AcceptableSeq(), now);
  Transmit(seg, false, now);
}

// RFC 5961 §3.2, §4.2, §5.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at most
// challenge_ack_limit per second (§7).
void Tcb::SendChallengeAck(const SegmentRepr&, Instant now) {
  if (now - challenge_window_start_ >= std::chrono::seconds(1)) {
    challenge_window_start_ = now;
    challenge_count_ = 0;
  }
  if (challenge_count_ >= cfg_.challenge_ack_limit) return;
  challenge_count_++;
  counters_.challenge_acks++;
  SendAck(now);
}

void Tcb::SendRst(SeqNum seq, Instant now) {
  SegmentRepr seg = Header(wire::kRst, seq, now);
  Transmit(seg, false, now);
}

SeqNum Tcb::FinSeq() const { return snd_buf_seq_ + static_cast<uint32_t>(send_.size()); }
bool Tcb::FinSent() const { return fin_queued_ && snd_max_ > FinSeq(); }
bool Tcb::FinAcked() const { return fin_queued_ && snd_una_ > FinSeq(); }

uint64_t Tcb::StreamOffset(SeqNum seq) const {
  return rcv_nxt_off_ + static_cast<int64_t>(seq - rcv_nxt_);
}

// How much new data the windows allow now: the peer's window from SND.UNA, and cwnd.
uint32_t Tcb::UsableWindow() const {
  SeqNum right = snd_una_ + snd_wnd_;
  uint32_t by_peer = right > snd_nxt_ ? static_cast<uint32_t>(right - snd_nxt_) : 0;
  uint32_t flight = static_cast<uint32_t>(snd_nxt_ - snd_una_) + rexmit_in_recovery_;
  uint32_t by_cc = cc_.cwnd() > flight ? cc_.cwnd() - flight : 0;
  return std::min(by_peer, by_cc);
}

void Tcb::Output(Instant now) {
  switch (state_) {
    case TcpState::kEstablished:
    case TcpState::kCloseWait:
    case TcpState::kFinWait1:
    case TcpState::kClosing:
    case TcpState::kLastAck:
      break;
    default:
      return;
  }
  while (SendOneDataSegment(now)) {
  }
  MaybeArmPersist(now);
}

// Sends the next segment of data (and/or our FIN) if the windows, Nagle and SWS avoidance
// allow. Returns true if it sent something.
bool Tcb::SendOneDataSegment(Instant now) {
  // After an RTO rewind, skip what the receiver already holds (RFC 2018 §5).
  if (snd_nxt_ < snd_max_) {
    for (const wire::SackBlock& b : sacked_) {
      if (b.left <= snd_nxt_ && snd_nxt_ < b.right) snd_nxt_ = b.right;
    }
  }
  uint32_t data_off = static_cast<uint32_t>(snd_nxt_ - snd_buf_seq_);
  uint32_t avail = data_off < send_.size() ? static_cast<uint32_t>(send_.size() - data_off) : 0;
  bool fin_pending = fin_queued_ && snd_nxt_ <= FinSeq();
  if (avail == 0) {
    if (!fin_pending || snd_nxt_ != FinSeq()) return false;
    // A FIN alone. It needs no window (RFC 9293 §3.10.4 sends it when all data is out).
    SendSegmentAt(snd_nxt_, 0, snd_nxt_ < snd_max_, now);
    return false;
  }
  uint32_t usable = UsableWindow();
  bool retransmission = snd_nxt_ < snd_max_;
  // TSO (TcpConfig::tso_max_bytes): new data may go as one super-segment of whole SMSS
  // pieces, which the link cuts into SMSS segments; the window rules are the same as for the
  // separate segments it stands for.
  uint32_t max_len = smss_;
  if (!retransmission && cfg_.tso_max_bytes > smss_) {
    max_len = std::min<uint32_t>(cfg_.tso_max_bytes, 65535 - 120) / smss_ * smss_;
  }
  uint32_t len = std::min({avail, max_len, usable});
  if (len == 0) return false;
  if (len > smss_ && len < avail) len -= len % smss_;  // no short piece in the middle
  if (!retransmission && len < smss_) {
    // Sender SWS avoidance and Nagle (RFC 9293 §3.8.6.2.1, §3.7.4): a short segment goes only
    // if it empties the queue and nothing is unacknowledged (or Nagle is off), or if it is at
    // least half the largest window the peer has offered.
    bool empties_queue = len == avail;
    bool nagle_ok = !nagle_ || snd_max_ == snd_una_ || (fin_queued_ && empties_queue);
    bool big_enough = max_snd_wnd_ > 0 && len >= max_snd_wnd_ / 2;
    if (!((empties_queue && nagle_ok) || big_enough)) return false;
  }
  for (const wire::SackBlock& b : sacked_) {  // do not resend into a SACKed range
    if (snd_nxt_ < b.left && b.left < snd_nxt_ + len) len = static_cast<uint32_t>(b.left - snd_nxt_);
  }
  SendSegmentAt(snd_nxt_, len, retransmission, now);
  return true;
}

// Sends [seq, seq+len) from the send buffer, with our FIN if it follows the last octet.
void Tcb::SendSegmentAt(SeqNum seq, uint32_t len, bool retransmission, Instant now) {
  uint32_t off = static_cast<uint32_t>(seq - snd_buf_seq_);
  auto payload = send_.Peek(off, len, scratch_);
  uint8_t flags = wire::kAck;
  bool fin = fin_queued_ && seq + static_cast<uint32_t>(payload.size()) == FinSeq();
  if (fin) flags |= wire::kFin;
  if (!payload.empty() && off + payload.size() == send_.size()) flags |= wire::kPsh;
  SegmentRepr seg = Header(flags, seq, now);
  seg.payload = payload;
  SeqNum end = seq + static_cast<uint32_t>(payload.size()) + (fin ? 1 : 0);
  if (!retransmission) {
    counters_.bytes_out += payload.size();
    if (!rtt_timing_) {
      rtt_timing_ = true;
      rtt_seq_ = seq;
      rtt_start_ = now;
    }
  } else if (rtt_timing_ && rtt_seq_ >= seq && rtt_seq_ < end) {
    rtt_timing_ = false;  // Karn's rule: an ambiguous sample is no sample
  }
  if (seq == snd_nxt_) snd_nxt_ = end;
  snd_max_ = wire::Max(snd_max_, end);
  Transmit(seg, retransmission, now);
  if (rto_deadline_ == kNever) ArmRto(now);  // RFC 6298 (5.1)
}

// The first range above `from` the peer has not SACKed, below SND.MAX.
bool Tcb::NextHole(SeqNum from, SeqNum* start, uint32_t* len) const {
  SeqNum s = wire::Max(from, snd_una_);
  for (const wire::SackBlock& b : sacked_) {
    if (b.right <= s) continue;
    if (b.left <= s) {
      s = b.right;
      continue;
    }
    *start = s;
    *len = static_cast<uint32_t>(b.left - s);
    return true;
  }
  if (s >= snd_max_) return false;
  // Past the highest SACK block only the first unacknowledged segment counts as a hole.
  if (!sacked_.empty() && s != snd_una_) return false;
  *start = s;
  *len = static_cast<uint32_t>(snd_max_ - s);
  return true;
}

void Tcb::RetransmitFirstHole(Instant now) {
  SeqNum start;
  uint32_t len;
  if (!NextHole(hole_next_, &start, &len)) return;
  uint32_t data_end = static_cast<uint32_t>(FinSeq() - start);  // octets of data left from start
  len = std::min({len, uint32_t{smss_}, data_end});
  SendSegmentAt(start, len, /*retransmission=*/true, now);
  hole_next_ = start + std::max<uint32_t>(len, 1);
  // NewReno's FlightSize is SND.NXT - SND.UNA (RFC 5681 §2, RFC 6582 §3.2 step 4): resending
  // inside it adds nothing. With SACK a hole is resent on every further duplicate ACK, and those
  // count against cwnd, as in the "pipe" of RFC 6675.
  if (cc_.in_recovery() && sack_enabled_) rexmit_in_recovery_ += len;
}

// ---------------------------------------------------------------------------------------------
// Timers.

void Tcb::TimerEvent(TimerKind kind, TimerAction action, Instant deadline, Instant now, int backoff) {
  if (sink_) sink_->OnTimer(now, tcp::TimerEvent{id_, kind, action, deadline, backoff});
}

void Tcb::ArmRto(Instant now) { rto_deadline_ = now + rtt_.rto(); }

void Tcb::StopTimer(Instant& deadline, TimerKind, Instant) { deadline = kNever; }

// The user will never read or send again, so FIN-WAIT-2 may not last forever.
void Tcb::MaybeArmFinWait2(Instant now) {
  if (state_ != TcpState::kFinWait2 || !user_closed_ || fw2_deadline_ != kNever) return;
  fw2_deadline_ = now + cfg_.fin_wait2_timeout;
  TimerEvent(TimerKind::kFinWait2, TimerAction::kStarted, fw2_deadline_, now);
}

void Tcb::StartTimeWait(Instant now) {
  rto_deadline_ = persist_deadline_ = delack_deadline_ = ka_deadline_ = fw2_deadline_ = kNever;
  tw_deadline_ = now + 2 * cfg_.msl;  // RFC 9293 §3.4.2: 2·MSL
  TimerEvent(TimerKind::kTimeWait, TimerAction::kStarted, tw_deadline_, now);
}

void Tcb::MaybeArmPersist(Instant now) {
  // RFC 9293 §3.8.6.1: data waits, the window is zero and nothing is in flight that would
  // bring a window update: probe. The same timer is the override timeout of §3.8.6.2.1 (4) when
  // the window is open but only by a slice that sender SWS avoidance holds back.
  bool waiting = send_.size() > static_cast<uint32_t>(snd_nxt_ - snd_buf_seq_);
  if (!waiting || snd_max_ != snd_una_ || persist_deadline_ != kNever) return;
  Duration d = rtt_.rto();
  for (int i = 0; i < persist_backoff_ && d < cfg_.max_rto; ++i) d *= 2;
  persist_deadline_ = now + std::min(d, cfg_.max_rto);
  TimerEvent(TimerKind::kPersist, TimerAction::kStarted, persist_deadline_, now, persist_backoff_);
}

Instant Tcb::NextDeadline() const {
  return std::min({rto_deadline_, persist_deadline_, delack_deadline_, tw_deadline_, ka_deadline_,
                   fw2_deadline_});
}

void Tcb::OnTick(Instant now) {
  if (fw2_deadline_ <= now) {
    fw2_deadline_ = kNever;
    TimerEvent(TimerKind::kFinWait2, TimerAction::kFired, now, now);
    EnterClosed(absl::OkStatus(), "FIN-WAIT-2 timeout: closed by the user, no FIN from the peer", now);
    return;
  }
  if (tw_deadline_ <= now) {
    tw_deadline_ = kNever;
    TimerEvent(TimerKind::kTimeWait, TimerAction::kFired, now, now);
    EnterClosed(absl::OkStatus(), "2·MSL timer expired", now);
    return;
  }
  if (delack_deadline_ <= now) {
    delack_deadline_ = kNever;
    TimerEvent(TimerKind::kDelayedAck, TimerAction::kFired, now, now);
    SendAck(now);
  }
  if (rto_deadline_ <= now) OnRtoExpired(now);
  if (persist_deadline_ <= now) OnPersistExpired(now);
  if (ka_deadline_ <= now) OnKeepaliveExpired(now);
}

// RFC 6298 §5.4-5.6, RFC 5681 §3.1, RFC 9293 §3.8.3 (R1/R2 give-up thresholds).
void Tcb::OnRtoExpired(Instant now) {
  rto_deadline_ = kNever;
  counters_.rto_expirations++;
  ++rto_retries_;
  TimerEvent(TimerKind::kRetransmission, TimerAction::kFired, now, now, rto_retries_);
  bool handshake = state_ == TcpState::kSynSent || state_ == TcpState::kSynReceived;
  int limit = handshake ? cfg_.syn_retries : cfg_.data_retries;
  if (rto_retries_ > limit) {
    // R2 reached: "close the connection" (RFC 9293 §3.8.3). No RST: the peer is presumed
    // unreachable, and Linux (tcp_write_err) sends none either.
    EnterClosed(SocketError(absl::StatusCode::kDeadlineExceeded, "ETIMEDOUT",
                            absl::StrCat("connection timed out in ", Name(state_), " after ",
                                         limit, " retransmissions")),
                "retransmission limit reached", now);
    return;
  }
  rtt_.Backoff();  // (5.5)
  rtt_timing_ = false;
  if (handshake) {
    syn_retransmitted_ = true;
    SendSyn(now, /*retransmission=*/true);  // arms the timer again (5.6)
    return;
  }
  cc_.OnRto(snd_max_, FlightSize());
  rexmit_in_recovery_ = 0;
  sacked_.clear();  // RFC 2018 §8: the receiver may have reneged; forget SACK state
  snd_nxt_ = snd_una_;  // go back and retransmit from the first unacknowledged octet (5.4)
  if (snd_wnd_ == 0 && send_.size() > static_cast<uint32_t>(snd_una_ - snd_buf_seq_)) {
    // The window is closed: the retransmission is a one-octet window probe (RFC 9293 §3.8.6.1).
    SendSegmentAt(snd_una_, 1, /*retransmission=*/true, now);
  } else if (!SendOneDataSegment(now) && snd_nxt_ == snd_una_ && FinSent()) {
    SendSegmentAt(snd_una_, 0, true, now);
  }
  ArmRto(now);
}

// RFC 9293 §3.8.6.1: send one octet beyond the zero window; back off.
void Tcb::OnPersistExpired(Instant now) {
  persist_deadline_ = kNever;
  TimerEvent(TimerKind::kPersist, TimerAction::kFired, now, now, persist_backoff_);
  ++persist_backoff_;
  if (snd_wnd_ != 0) {
    // Override timeout (RFC 9293 §3.8.6.2.1 (4)): send the small slice the window allows.
    uint32_t sent = static_cast<uint32_t>(snd_nxt_ - snd_buf_seq_);
    uint32_t unsent = sent < send_.size() ? static_cast<uint32_t>(send_.size() - sent) : 0;
    uint32_t len = std::min({unsent, uint32_t{smss_}, UsableWindow()});
    if (len > 0 && snd_max_ == snd_una_) SendSegmentAt(snd_nxt_, len, /*retransmission=*/false, now);
    Output(now);
    return;
  }
  // The octet at SND.UNA is new only if nothing beyond SND.UNA was ever sent; a repeated probe
  // carries the same octet again and is a retransmission.
  if (++persist_unanswered_ > cfg_.data_retries) {
    // Nobody has answered the probes: the peer is gone (Linux gives up after tcp_retries2
    // unanswered probes; RFC 1122 §4.2.2.17 only asks to keep probing while they are answered).
    EnterClosed(SocketError(absl::StatusCode::kDeadlineExceeded, "ETIMEDOUT",
                            absl::StrCat("connection timed out: ", cfg_.data_retries,
                                         " zero-window probes unanswered")),
                "zero-window probes unanswered", now);
    return;
  }
  bool new_octet = snd_una_ == snd_max_;
  SendSegmentAt(snd_una_, 1, !new_octet, now);
  // The probe is not covered by the retransmission timer: the persist timer repeats it.
  rto_deadline_ = kNever;
  Duration d = rtt_.rto();
  for (int i = 0; i < persist_backoff_ && d < cfg_.max_rto; ++i) d *= 2;
  persist_deadline_ = now + std::min(d, cfg_.max_rto);
  TimerEvent(TimerKind::kPersist, TimerAction::kStarted, persist_deadline_, now, persist_backoff_);
}

// RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: <SEQ=SND.UNA-1> with no data elicits an ACK.
void Tcb::OnKeepaliveExpired(Instant now) {
  TimerEvent(TimerKind::kKeepalive, TimerAction::kFired, now, now, ka_probes_);
  if (ka_probes_ >= cfg_.keepalive_probes) {
    SendRst(AcceptableSeq(), now);
    EnterClosed(SocketError(absl::StatusCode::kDeadlineExceeded, "ETIMEDOUT",
                            "keepalive: peer did not answer"),
                "keepalive timeout", now);
    return;
  }
  if (snd_max_ != snd_una_) {
    // Data is in flight: the retransmission timer watches the peer (Linux probes only an
    // idle connection). Look again later.
    ka_deadline_ = now + cfg_.keepalive_interval;
    return;
  }
  ++ka_probes_;
  SegmentRepr seg = Header(wire::kAck, snd_una_ - 1, now);
  Transmit(seg, false, now);
  ka_deadline_ = now + cfg_.keepalive_interval;
}

// ---------------------------------------------------------------------------------------------
// Helpers and inspection.

uint32_t Tcb::TsNow(Instant now) const {
  return static_cast<uint32_t>(ToMillis(now.time_since_epoch())) + ts_offset_;
}

SeqNum Tcb::MinIssForNewIncarnation() const {
  // RFC 1122 §4.2.2.13 (1): the new ISS must be larger than any sequence number this
  // incarnation used. The margin is Linux's (tw_snd_nxt + 65535 + 2).
  return snd_max_ + 65537;
}

bool Tcb::AcceptsNewIncarnation(const SegmentRepr& syn) const {
  if (state_ != TcpState::kTimeWait) return false;
  // RFC 6191 §2: with timestamps, a newer timestamp decides; else RFC 1122 §4.2.2.13: the SYN's
  // sequence number must be beyond the old connection's RCV.NXT.
  if (ts_enabled_ && syn.options.timestamps) {
    return static_cast<int32_t>(syn.options.timestamps->val - ts_recent_) > 0;
  }
  return syn.seq > rcv_nxt_;
}

void Tcb::EndForNewIncarnation(Instant now) {
  EnterClosed(absl::OkStatus(), "SYN of a new incarnation received in TIME-WAIT (RFC 6191)", now);
}

size_t Tcb::HeapBytes() const {
  return send_.allocated() + recv_.allocated() + reasm_.bytes() + scratch_.capacity() +
         sacked_.capacity() * sizeof(wire::SackBlock);
}

TcbSnapshot Tcb::Snapshot() const {
  TcbSnapshot s;
  s.id = id_;
  s.state = state_;
  s.local = local_;
  s.remote = remote_;
  s.iss = iss_.raw();
  s.irs = irs_.raw();
  s.snd_una = snd_una_.raw();
  s.snd_nxt = snd_nxt_.raw();
  s.snd_max = snd_max_.raw();
  s.snd_wnd = snd_wnd_;
  s.snd_wl1 = snd_wl1_.raw();
  s.snd_wl2 = snd_wl2_.raw();
  s.rcv_nxt = rcv_nxt_.raw();
  s.rcv_wnd = RcvWnd();
  s.mss = smss_;
  s.peer_mss = peer_mss_;
  s.snd_wscale = snd_wscale_;
  s.rcv_wscale = rcv_wscale_;
  s.sack = sack_enabled_;
  s.timestamps = ts_enabled_;
  s.cwnd = cc_.cwnd();
  s.ssthresh = cc_.ssthresh();
  s.srtt = rtt_.srtt();
  s.rttvar = rtt_.rttvar();
  s.rto = rtt_.rto();
  s.bytes_in_flight = FlightSize();
  s.send_buffered = send_.size();
  s.send_capacity = send_.capacity();
  s.recv_buffered = recv_.size();
  s.recv_capacity = recv_.capacity();
  s.out_of_order_bytes = reasm_.bytes();
  auto add = [&](TimerKind k, Instant d) {
    if (d != kNever) s.timers.push_back({k, d});
  };
  add(TimerKind::kRetransmission, rto_deadline_);
  add(TimerKind::kPersist, persist_deadline_);
  add(TimerKind::kDelayedAck, delack_deadline_);
  add(TimerKind::kTimeWait, tw_deadline_);
  add(TimerKind::kFinWait2, fw2_deadline_);
  add(TimerKind::kKeepalive, ka_deadline_);
  s.counters = counters_;
  if (!error_.ok()) s.error = std::string(error_.message());
  return s;
}

}  // namespace tcplab::tcp
