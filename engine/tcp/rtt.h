// Retransmission timeout per RFC 6298.
#pragma once

#include "engine/tcp/clock.h"

namespace tcplab::tcp {

class RttEstimator {
 public:
  RttEstimator(Duration initial_rto, Duration min_rto, Duration max_rto);

  // One RTT measurement R (RFC 6298 §2.2, §2.3). Also ends any backoff.
  void Sample(Duration r);
  // RFC 6298 (5.5): the timer expired, double the RTO (bounded by max_rto).
  void Backoff();
  // RFC 6298 (5.7): raise the RTO to at least `floor` (after a SYN was retransmitted).
  void RaiseTo(Duration floor);

  Duration rto() const { return rto_; }
  Duration srtt() const { return srtt_; }
  Duration rttvar() const { return rttvar_; }
  bool has_sample() const { return has_sample_; }

 private:
  void Recompute();

  Duration min_rto_, max_rto_;
  Duration srtt_{0}, rttvar_{0}, rto_;
  bool has_sample_ = false;
};

}  // namespace tcplab::tcp
