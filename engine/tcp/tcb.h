// Tcb: one TCP connection's state machine (RFC 9293 §3.10), with the RFC 5961 hardening,
// RFC 7323 timestamps and window scaling, RFC 2018 SACK, RFC 6298 retransmission timing and
// RFC 5681/6582 congestion control. Deterministic: time comes in as `now`, segments go out
// through the emit callback, and what happens is reported to the EventSink.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tcp/byte_ring.h"
#include "engine/tcp/clock.h"
#include "engine/tcp/config.h"
#include "engine/tcp/congestion.h"
#include "engine/tcp/events.h"
#include "engine/tcp/reassembler.h"
#include "engine/tcp/rtt.h"
#include "engine/tcp/state.h"
#include "engine/wire/segment.h"

namespace tcplab::tcp {

struct TcbCounters {
  uint64_t segments_in = 0;
  uint64_t segments_out = 0;
  uint64_t bytes_in = 0;   // payload octets accepted in order
  uint64_t bytes_out = 0;  // payload octets sent, first transmissions only
  uint64_t retransmissions = 0;
  uint64_t rto_expirations = 0;
  uint64_t fast_retransmits = 0;
  uint64_t dup_acks_in = 0;
  uint64_t out_of_order_segments = 0;
  uint64_t out_of_window_segments = 0;
  uint64_t challenge_acks = 0;
  uint64_t paws_drops = 0;
  uint64_t bad_checksums = 0;  // counted by the stack, which sees the bytes
};

struct ArmedTimer {
  TimerKind kind;
  Instant deadline;
};

// Everything DESIGN.md lists for a TCB snapshot. Sequence numbers are absolute.
struct TcbSnapshot {
  ConnId id = 0;
  TcpState state = TcpState::kClosed;
  wire::Endpoint local, remote;
  uint32_t iss = 0, irs = 0;
  uint32_t snd_una = 0, snd_nxt = 0, snd_max = 0, snd_wnd = 0, snd_wl1 = 0, snd_wl2 = 0;
  uint32_t rcv_nxt = 0, rcv_wnd = 0;
  uint16_t mss = 0;       // payload octets per segment we send (SMSS)
  uint16_t peer_mss = 0;  // what the peer announced
  int snd_wscale = 0, rcv_wscale = 0;
  bool sack = false, timestamps = false;
  uint32_t cwnd = 0, ssthresh = 0;
  Duration srtt{0}, rttvar{0}, rto{0};
  uint32_t bytes_in_flight = 0;
  size_t send_buffered = 0, send_capacity = 0;
  size_t recv_buffered = 0, recv_capacity = 0;
  uint64_t out_of_order_bytes = 0;
  std::vector<ArmedTimer> timers;
  TcbCounters counters;
  std::string error;  // why the connection ended, if it did abnormally
};

class Tcb {
 public:
  using Emit = std::function<void(const wire::SegmentRepr&)>;

  Tcb(const TcpConfig& cfg, ConnId id, wire::Endpoint local, wire::Endpoint remote,
      EventSink* sink, Emit emit);
  Tcb(const Tcb&) = delete;
  Tcb& operator=(const Tcb&) = delete;

  // Active OPEN (RFC 9293 §3.10.1): CLOSED -> SYN-SENT, SYN sent.
  void OpenActive(wire::SeqNum iss, uint32_t ts_offset, Instant now);
  // Passive OPEN completed by a SYN that a listener accepted: LISTEN -> SYN-RECEIVED,
  // SYN+ACK sent (RFC 9293 §3.10.7.2).
  void OpenPassive(const wire::SegmentRepr& syn, wire::SeqNum iss, uint32_t ts_offset, Instant now);

  // SEGMENT ARRIVES (RFC 9293 §3.10.7.3, §3.10.7.4). The segment's addresses are the stack's
  // business; this only looks at the TCP fields.
  void OnSegment(const wire::SegmentRepr& seg, Instant now);
  // Runs the timers that are due.
  void OnTick(Instant now);
  // When OnTick next has something to do; kNever if nothing is armed.
  Instant NextDeadline() const;

  // User calls (RFC 9293 §3.10). Errors read like a socket's: the status message names the
  // errno (ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTCONN, EPIPE) and the TCP state.
  absl::StatusOr<size_t> Send(std::span<const uint8_t> data, Instant now);
  absl::StatusOr<size_t> Recv(std::span<uint8_t> out, Instant now);
  absl::Status Shutdown(Instant now);  // half-close: FIN after the queued data
  absl::Status Close(Instant now);     // close(2): no more sends or receives
  void Abort(Instant now);             // RST now (RFC 9293 §3.10.5)

  TcpState state() const { return state_; }
  ConnId id() const { return id_; }
  const wire::Endpoint& local() const { return local_; }
  const wire::Endpoint& remote() const { return remote_; }
  bool passive() const { return passive_; }
  // Peer's FIN received and every byte before it read: Recv returns 0 from now on.
  bool AtEof() const { return fin_received_ && recv_.empty(); }
  size_t readable() const { return recv_.size(); }
  size_t send_space() const { return send_.free(); }
  const absl::Status& error() const { return error_; }
  // TCP_NODELAY: Nagle's algorithm (RFC 9293 §3.7.4) off for this connection.
  void set_nodelay(bool on) { nagle_ = !on; }
  bool user_closed() const { return user_closed_; }
  // The stack may forget this TCB: it is CLOSED, or went back to LISTEN.
  bool finished() const { return state_ == TcpState::kClosed || state_ == TcpState::kListen; }
  wire::SeqNum rcv_nxt() const { return rcv_nxt_; }
  wire::SeqNum snd_nxt() const { return snd_nxt_; }
  const TcbCounters& counters() const { return counters_; }
  TcbCounters& mutable_counters() { return counters_; }
  // Octets of memory this TCB holds beyond its own object (buffers, reassembly).
  size_t HeapBytes() const;

  TcbSnapshot Snapshot() const;

  // For the stack: a SYN arrived for a 4-tuple in TIME-WAIT. True if it may start a new
  // incarnation (RFC 9293 §3.10.7.4 note, RFC 6191): its sequence number (or timestamp) is
  // beyond anything of this incarnation.
  bool AcceptsNewIncarnation(const wire::SegmentRepr& syn) const;
  // The smallest ISS a new incarnation of this 4-tuple may use.
  wire::SeqNum MinIssForNewIncarnation() const;
  // TIME-WAIT ends early because a new incarnation of the 4-tuple takes over.
  void EndForNewIncarnation(Instant now);

 private:
  // --- state ---
  void SetState(TcpState to, const char* cause, Instant now);
  void EnterClosed(absl::Status error, const char* cause, Instant now);

  // --- segment arrival, by step of RFC 9293 §3.10.7.4 ---
  void OnSegmentSynSent(const wire::SegmentRepr& seg, Instant now);
  bool HandleSynReceivedSpecials(const wire::SegmentRepr& seg, Instant now);
  bool HandleTimeWaitFin(const wire::SegmentRepr& seg, Instant now);
  bool CheckPaws(const wire::SegmentRepr& seg, Instant now);
  bool CheckSequence(const wire::SegmentRepr& seg, Instant now);
  bool CheckRst(const wire::SegmentRepr& seg, Instant now);
  bool CheckSyn(const wire::SegmentRepr& seg, Instant now);
  bool CheckAck(const wire::SegmentRepr& seg, Instant now);
  bool ProcessAck(const wire::SegmentRepr& seg, Instant now);
  void ProcessNewAck(const wire::SegmentRepr& seg, Instant now);
  void ProcessDupAck(const wire::SegmentRepr& seg, Instant now);
  void UpdateSendWindow(const wire::SegmentRepr& seg);
  void ProcessSackBlocks(const wire::SegmentRepr& seg);
  void ProcessTextAndFin(const wire::SegmentRepr& seg, Instant now);
  void ProcessFin(Instant now);
  void NegotiateOptions(const wire::SegmentRepr& syn);
  void UpdateTsRecent(const wire::SegmentRepr& seg, Instant now);
  void Verdict(const wire::SegmentRepr& seg, tcp::Verdict v, Instant now);

  // --- output ---
  void Output(Instant now);
  bool SendOneDataSegment(Instant now);
  void SendSegmentAt(wire::SeqNum seq, uint32_t max_len, bool retransmission, Instant now);
  void SendSyn(Instant now, bool retransmission);
  void SendAck(Instant now);
  void SendChallengeAck(const wire::SegmentRepr& seg, Instant now);
  void SendRst(wire::SeqNum seq, Instant now);
  wire::SegmentRepr Header(uint8_t flags, wire::SeqNum seq, Instant now);
  void Transmit(wire::SegmentRepr& seg, bool retransmission, Instant now);
  uint16_t AdvertiseWindow();
  uint32_t RcvWnd() const;
  void AckPolicyAfterData(bool out_of_order, bool filled_hole, int full_sized, Instant now);
  void RetransmitFirstHole(Instant now);
  bool NextHole(wire::SeqNum from, wire::SeqNum* start, uint32_t* len) const;

  // --- timers ---
  void ArmRto(Instant now);
  void StopTimer(Instant& deadline, TimerKind kind, Instant now);
  void OnRtoExpired(Instant now);
  void OnPersistExpired(Instant now);
  void OnKeepaliveExpired(Instant now);
  void MaybeArmPersist(Instant now);
  void StartTimeWait(Instant now);
  void MaybeArmFinWait2(Instant now);
  void TimerEvent(TimerKind kind, TimerAction action, Instant deadline, Instant now, int backoff = 0);

  // --- helpers ---
  uint32_t TsNow(Instant now) const;
  wire::SeqNum AcceptableSeq() const;
  uint32_t FlightSize() const { return static_cast<uint32_t>(snd_max_ - snd_una_); }
  wire::SeqNum FinSeq() const;  // sequence number our FIN has or will have
  bool FinSent() const;
  bool FinAcked() const;
  uint64_t StreamOffset(wire::SeqNum seq) const;
  uint32_t UsableWindow() const;

  const TcpConfig& cfg_;
  const ConnId id_;
  const wire::Endpoint local_, remote_;
  EventSink* sink_;
  Emit emit_;

  TcpState state_ = TcpState::kClosed;
  bool passive_ = false;
  bool nagle_ = cfg_.nagle;  // per connection: TCP_NODELAY turns it off
  bool user_closed_ = false;       // Close() called: data arriving now is answered with RST
  bool fin_queued_ = false;        // Shutdown()/Close() asked for a FIN
  bool pending_shutdown_ = false;  // Shutdown() before ESTABLISHED, applied on entering it
  bool fin_received_ = false;
  absl::Status error_;

  // Send sequence space (RFC 9293 §3.3.1). SND.MAX is the highest sequence number sent; it
  // differs from SND.NXT after an RTO rewinds SND.NXT to retransmit.
  wire::SeqNum iss_, snd_una_, snd_nxt_, snd_max_, snd_wl1_, snd_wl2_;
  uint32_t snd_wnd_ = 0;
  uint32_t max_snd_wnd_ = 0;  // RFC 5961 §5.2 MAX.SND.WND
  wire::SeqNum snd_buf_seq_;  // sequence number of send_'s first octet
  ByteRing send_;

  // Receive sequence space.
  wire::SeqNum irs_, rcv_nxt_;
  wire::SeqNum rcv_adv_;      // right edge of the window we last advertised
  // Stream offset of RCV.NXT. It starts at 2^32 so that a segment starting before RCV.NXT
  // still has a positive offset.
  uint64_t rcv_nxt_off_ = uint64_t{1} << 32;
  ByteRing recv_;
  Reassembler reasm_;
  uint64_t last_rcvd_off_ = uint64_t{1} << 32;  // where the most recent out-of-order segment started (RFC 2018 §4)

  // Options (RFC 7323, RFC 2018, RFC 9293 §3.7.1).
  uint16_t peer_mss_ = 536;
  uint16_t smss_ = 536;
  uint8_t snd_wscale_ = 0, rcv_wscale_ = 0;
  uint16_t syn_window_ = 0;  // the (unscaled) window our SYN or SYN+ACK offered
  bool ws_enabled_ = false, ts_enabled_ = false, sack_enabled_ = false;
  uint32_t ts_offset_ = 0;
  uint32_t ts_recent_ = 0;
  Instant ts_recent_age_{};
  wire::SeqNum last_ack_sent_;

  // SACK scoreboard: ranges the peer holds above SND.UNA, sorted, merged.
  std::vector<wire::SackBlock> sacked_;
  wire::SeqNum hole_next_;            // next hole to retransmit in recovery
  uint32_t rexmit_in_recovery_ = 0;   // octets sent again during this recovery

  RttEstimator rtt_;
  NewReno cc_;
  bool rtt_timing_ = false;  // Karn: one timed segment at a time, never a retransmitted one
  wire::SeqNum rtt_seq_;
  Instant rtt_start_{};
  bool syn_retransmitted_ = false;

  // Timers: each is a deadline, kNever when stopped.
  Instant rto_deadline_ = kNever, persist_deadline_ = kNever, delack_deadline_ = kNever;
  Instant tw_deadline_ = kNever, ka_deadline_ = kNever, fw2_deadline_ = kNever;
  int rto_retries_ = 0;
  int persist_backoff_ = 0;
  int persist_unanswered_ = 0;  // probes sent since the last ACK
  int ka_probes_ = 0;
  int full_segments_unacked_ = 0;

  // RFC 5961 §7 rate limit.
  Instant challenge_window_start_{};
  int challenge_count_ = 0;

  TcbCounters counters_;
  std::vector<uint8_t> scratch_;  // a segment's payload when it wraps around the send ring
};

}  // namespace tcplab::tcp
