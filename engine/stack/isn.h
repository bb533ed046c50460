// Initial sequence numbers per RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport,
// secretkey), where M is a 4-microsecond timer and F a keyed hash (SipHash-2-4 here). The
// secret is handed in, so the same secret and the same times give the same ISNs.
#pragma once

#include <array>
#include <cstdint>

#include "engine/tcp/clock.h"
#include "engine/wire/segment.h"
#include "engine/wire/seqnum.h"

namespace tcplab::stack {

using IsnSecret = std::array<uint8_t, 16>;

// SipHash-2-4 (Aumasson and Bernstein, 2012) of `len` bytes under a 128-bit key.
uint64_t SipHash24(const IsnSecret& key, const uint8_t* data, size_t len);

class IsnGenerator {
 public:
  explicit IsnGenerator(const IsnSecret& secret) : secret_(secret) {}

  // RFC 6528 §3.
  wire::SeqNum Isn(wire::Endpoint local, wire::Endpoint remote, Instant now) const;
  // A per-connection offset for RFC 7323 timestamps (RFC 7323 §5.4 / RFC 6528 style), so
  // timestamps do not reveal the host's clock and differ per connection.
  uint32_t TimestampOffset(wire::Endpoint local, wire::Endpoint remote) const;

 private:
  uint64_t Hash(wire::Endpoint local, wire::Endpoint remote, uint8_t purpose) const;
  IsnSecret secret_;
};

}  // namespace tcplab::stack
