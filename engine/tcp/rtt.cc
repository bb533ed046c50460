#include "engine/tcp/rtt.h"

#include <algorithm>

namespace tcplab::tcp {

namespace {
// RFC 6298 §2: K = 4, alpha = 1/8, beta = 1/4, and a clock granularity G. The engine's clock
// has nanosecond resolution, but timestamps tick in milliseconds: G = 1 ms.
constexpr int kK = 4;
constexpr Duration kGranularity = std::chrono::milliseconds(1);
}  // namespace

RttEstimator::RttEstimator(Duration initial_rto, Duration min_rto, Duration max_rto)
    : min_rto_(min_rto), max_rto_(max_rto), rto_(initial_rto) {}

void RttEstimator::Sample(Duration r) {
  if (r < Duration::zero()) return;
  if (!has_sample_) {
    // RFC 6298 (2.2): SRTT <- R, RTTVAR <- R/2.
    srtt_ = r;
    rttvar_ = r / 2;
    has_sample_ = true;
  } else {
    // RFC 6298 (2.3): RTTVAR first, with the old SRTT.
    Duration err = srtt_ > r ? srtt_ - r : r - srtt_;
    rttvar_ = (3 * rttvar_ + err) / 4;
    srtt_ = (7 * srtt_ + r) / 8;
  }
  Recompute();
}

void RttEstimator::Recompute() {
  // RFC 6298 (2.2)/(2.3): RTO <- SRTT + max(G, K*RTTVAR); (2.4) at least min; (2.5) at most max.
  Duration rto = srtt_ + std::max(kGranularity, kK * rttvar_);
  rto_ = std::clamp(rto, min_rto_, max_rto_);
}

void RttEstimator::Backoff() { rto_ = std::min(rto_ * 2, max_rto_); }

void RttEstimator::RaiseTo(Duration floor) { rto_ = std::max(rto_, std::min(floor, max_rto_)); }

}  // namespace tcplab::tcp
