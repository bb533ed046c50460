// Congestion control: slow start and congestion avoidance (RFC 5681) with NewReno fast
// recovery (RFC 6582). Byte-based; the sender tells it what happened and asks what to do.
#pragma once

#include <cstdint>

#include "engine/wire/seqnum.h"

namespace tcplab::tcp {

class NewReno {
 public:
  // `initial_segments` 0 means RFC 5681 §3.1 eq. (1).
  void Init(uint32_t smss, int initial_segments);

  // A cumulative ACK acknowledged `acked` new octets; `flight` is what is still in flight
  // after it. Returns true when a partial ACK in recovery calls for retransmitting the first
  // unacknowledged segment (RFC 6582 §3.2 step 5).
  bool OnNewAck(wire::SeqNum ack, uint32_t acked, uint32_t flight);

  // A duplicate ACK (RFC 5681 §2). Returns true when it is the third and fast retransmit
  // should happen now (RFC 5681 §3.2 step 2, RFC 6582 §3.2 step 2).
  bool OnDupAck(wire::SeqNum snd_una, wire::SeqNum snd_max, uint32_t flight);

  // RFC 5681 §3.1: the SYN or SYN+ACK was lost; start with one segment.
  void SetLossWindow() { cwnd_ = smss_; }

  // RFC 5681 §3.1 eq. (4): the retransmission timer expired.
  void OnRto(wire::SeqNum snd_max, uint32_t flight);

  uint32_t cwnd() const { return cwnd_; }
  uint32_t ssthresh() const { return ssthresh_; }
  bool in_recovery() const { return in_recovery_; }
  int dupacks() const { return dupacks_; }
  wire::SeqNum recover() const { return recover_; }

 private:
  // cwnd never grows past this (a 32-bit cwnd would otherwise wrap after 4 GiB without loss;
  // Linux has snd_cwnd_clamp for the same reason).
  static constexpr uint32_t kMaxCwnd = 1u << 30;

  uint32_t smss_ = 536;
  uint32_t cwnd_ = 0;
  uint32_t ssthresh_ = UINT32_MAX;  // RFC 5681 §3.1: "arbitrarily high"
  uint32_t bytes_acked_ = 0;        // congestion-avoidance byte counter (RFC 5681 §3.1)
  int dupacks_ = 0;
  bool in_recovery_ = false;
  bool recover_valid_ = false;
  wire::SeqNum recover_;
};

}  // namespace tcplab::tcp
