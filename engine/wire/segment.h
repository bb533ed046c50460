// SegmentRepr: a parsed IPv4+TCP segment as a plain struct. The state machine sees only this;
// the bytes on the wire are wire::Parse's and wire::Serialize's business (codec.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "engine/wire/seqnum.h"

namespace tcplab::wire {

// An IPv4 address in host byte order.
struct Ipv4 {
  uint32_t v = 0;
  static constexpr Ipv4 Of(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return Ipv4{(uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d};
  }
  friend constexpr bool operator==(Ipv4, Ipv4) = default;
  std::string ToString() const;
};

struct Endpoint {
  Ipv4 ip;
  uint16_t port = 0;
  friend constexpr bool operator==(const Endpoint&, const Endpoint&) = default;
  std::string ToString() const;  // "198.18.0.2:80"
};

// TCP header flags, in their header bit positions (RFC 9293 §3.1).
enum Flag : uint8_t {
  kFin = 0x01,
  kSyn = 0x02,
  kRst = 0x04,
  kPsh = 0x08,
  kAck = 0x10,
  kUrg = 0x20,
  kEce = 0x40,
  kCwr = 0x80,
};
std::string FlagsToString(uint8_t flags);  // "SYN|ACK"

struct SackBlock {
  SeqNum left;   // first octet
  SeqNum right;  // one past the last octet
  friend constexpr bool operator==(const SackBlock&, const SackBlock&) = default;
};

struct Timestamps {
  uint32_t val = 0;
  uint32_t ecr = 0;
  friend constexpr bool operator==(const Timestamps&, const Timestamps&) = default;
};

// RFC 2018 allows at most 4 SACK blocks (3 beside timestamps).
inline constexpr int kMaxSackBlocks = 4;

struct TcpOptions {
  std::optional<uint16_t> mss;           // RFC 9293 §3.7.1, SYN only
  std::optional<uint8_t> window_scale;   // RFC 7323 §2, SYN only
  bool sack_permitted = false;           // RFC 2018, SYN only
  std::optional<Timestamps> timestamps;  // RFC 7323 §3
  std::array<SackBlock, kMaxSackBlocks> sack{};
  uint8_t sack_count = 0;
  friend bool operator==(const TcpOptions&, const TcpOptions&) = default;
};

struct SegmentRepr {
  Endpoint src;
  Endpoint dst;
  SeqNum seq;
  SeqNum ack;
  uint8_t flags = 0;
  uint16_t window = 0;  // as on the wire, not scaled
  uint16_t urgent = 0;
  uint8_t ttl = 64;
  TcpOptions options;
  // Borrowed: points into the datagram being parsed or the sender's buffer. Valid only for the
  // duration of the call that hands the segment over.
  std::span<const uint8_t> payload;

  bool Has(uint8_t f) const { return (flags & f) == f; }
  // SEG.LEN of RFC 9293 §3.3.1: payload octets plus one each for SYN and FIN.
  uint32_t SeqLen() const {
    return static_cast<uint32_t>(payload.size()) + ((flags & kSyn) ? 1 : 0) + ((flags & kFin) ? 1 : 0);
  }
  // One line for logs and test failures, like tcpdump:
  // "198.18.0.2:40000 > 198.18.0.1:80 [S.] seq 1000 ack 2001 win 65535 len 0 <mss 1460,...>".
  std::string ToString() const;
};

}  // namespace tcplab::wire
