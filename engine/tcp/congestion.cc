#include "engine/tcp/congestion.h"

#include <algorithm>

namespace tcplab::tcp {

void NewReno::Init(uint32_t smss, int initial_segments) {
  smss_ = smss;
  if (initial_segments > 0) {
    cwnd_ = initial_segments * smss;
  } else if (smss > 2190) {  // RFC 5681 §3.1 eq. (1)
    cwnd_ = 2 * smss;
  } else if (smss > 1095) {
    cwnd_ = 3 * smss;
  } else {
    cwnd_ = 4 * smss;
  }
}

bool NewReno::OnNewAck(wire::SeqNum ack, uint32_t acked, uint32_t flight) {
  dupacks_ = 0;
  if (in_recovery_) {
    if (ack > recover_) {
      // RFC 6582 §3.2 step 3, full acknowledgment: deflate to min(ssthresh, FlightSize + SMSS).
      cwnd_ = std::min(ssthresh_, std::max(flight, smss_) + smss_);
      in_recovery_ = false;
      return false;
    }
    // RFC 6582 §3.2 step 5, partial acknowledgment: deflate by the amount acked, add back one
    // SMSS if at least one SMSS was acked, retransmit the first unacknowledged segment.
    cwnd_ = cwnd_ > acked ? cwnd_ - acked : smss_;
    if (acked >= smss_) cwnd_ += smss_;
    cwnd_ = std::max(cwnd_, smss_);
    return true;
  }
  if (cwnd_ >= kMaxCwnd) return false;
  if (cwnd_ < ssthresh_) {
    // RFC 5681 §3.1 eq. (2): slow start, at most SMSS per ACK.
    cwnd_ += std::min(acked, smss_);
  } else {
    // RFC 5681 §3.1: congestion avoidance, about one SMSS per RTT, counted in bytes.
    bytes_acked_ += acked;
    if (bytes_acked_ >= cwnd_) {
      bytes_acked_ -= cwnd_;
      cwnd_ += smss_;
    }
  }
  return false;
}

bool NewReno::OnDupAck(wire::SeqNum snd_una, wire::SeqNum snd_max, uint32_t flight) {
  ++dupacks_;
  if (in_recovery_) {
    if (cwnd_ < kMaxCwnd) cwnd_ += smss_;  // RFC 6582 §3.2 step 4: inflate per further dup ACK
    return false;
  }
  if (dupacks_ != 3) return false;
  // RFC 6582 §3.2 step 2: only start recovery if the ACK covers more than `recover`, so that
  // duplicate ACKs from an earlier loss episode do not halve cwnd again.
  if (recover_valid_ && !(snd_una - 1 > recover_)) return false;
  // RFC 5681 §3.2 eq. (4), steps 2-3.
  ssthresh_ = std::max(flight / 2, 2 * smss_);
  recover_ = snd_max - 1;
  recover_valid_ = true;
  cwnd_ = ssthresh_ + 3 * smss_;
  in_recovery_ = true;
  return true;
}

void NewReno::OnRto(wire::SeqNum snd_max, uint32_t flight) {
  // RFC 5681 §3.1 eq. (4) and "loss window" of one segment; RFC 6582 §4 sets recover.
  ssthresh_ = std::max(flight / 2, 2 * smss_);
  cwnd_ = smss_;
  bytes_acked_ = 0;
  dupacks_ = 0;
  in_recovery_ = false;
  recover_ = snd_max - 1;
  recover_valid_ = true;
}

}  // namespace tcplab::tcp
