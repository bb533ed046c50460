// Bytes <-> SegmentRepr for IPv4 datagrams carrying TCP.
//
// Two implementations live behind this header:
//   - Parse / Serialize: the default, a hand-written codec that allocates nothing. The engine
//     pushes every segment through it, so it has to keep up with ~1M segments/s on one core.
//   - ParseWithLibtins / SerializeWithLibtins: the same contract built on libtins. It is the
//     reference the hand-written codec is cross-checked against in tests/unit/wire_test.cc,
//     and it is several times slower (PDU objects, option vectors, a payload copy); see
//     tests/bench/wire_bench.cc.
// libtins is included only in codec.cc; nothing libtins-shaped leaks through this header, and
// no exception escapes either path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/wire/segment.h"

namespace tcplab::wire {

inline constexpr size_t kIpv4MinHeaderLen = 20;  // RFC 791 §3.1, IHL = 5
inline constexpr size_t kTcpMinHeaderLen = 20;   // RFC 9293 §3.1, Data Offset = 5
inline constexpr size_t kTcpMaxOptionsLen = 40;  // Data Offset is 4 bits: 60 - 20 octets
inline constexpr uint8_t kIpProtoTcp = 6;

// Parses one IPv4 datagram carrying a TCP segment. The result's `payload` points into
// `datagram` (no copy), so it is valid only while `datagram` is.
//
// Errors:
//   INVALID_ARGUMENT  the datagram is malformed, fragmented or not TCP; the message says what.
//   DATA_LOSS         the IPv4 header or TCP checksum is wrong ("bad TCP checksum: got 0x...,
//                     want 0x..."); only when `verify_checksum`. With verify_checksum=false the
//                     headers are returned anyway, so bad segments can still be logged.
// Octets past the IPv4 Total Length are ignored (link padding), as Linux does.
absl::StatusOr<SegmentRepr> Parse(std::span<const uint8_t> datagram, bool verify_checksum = true);

// Writes `seg` as a complete IPv4+TCP datagram into `out`, replacing its contents and reusing
// its capacity. The IPv4 header has DF set, ID 0, TTL seg.ttl, no options. TCP options are
// written in Linux's layout (each option group is 4-octet aligned with NOPs):
//   mss, sackOK,TS | nop,nop,TS | nop,nop,sackOK, nop,wscale, nop,nop,sack
// If they would exceed 40 octets, SACK blocks are dropped from the end until they fit.
// `seg.payload` must not point into `out`. A payload that would push the datagram past
// 65535 octets is cut so that Total Length stays truthful (the engine never builds one).
void Serialize(const SegmentRepr& seg, std::vector<uint8_t>& out);

// The libtins-based reference codec: same contract, same results, same error messages.
absl::StatusOr<SegmentRepr> ParseWithLibtins(std::span<const uint8_t> datagram,
                                             bool verify_checksum = true);
// On the (never expected) event that libtins throws, `out` is left empty.
void SerializeWithLibtins(const SegmentRepr& seg, std::vector<uint8_t>& out);

// The value that belongs in the TCP checksum field of `tcp_segment` (header and payload),
// over the pseudo-header of RFC 9293 §3.1. Whatever the segment's checksum field holds is
// treated as zero, so the result can be compared with the field directly.
uint16_t TcpChecksum(Ipv4 src, Ipv4 dst, std::span<const uint8_t> tcp_segment);

// The value that belongs in the IPv4 Header Checksum field (RFC 791 §3.1); the field itself
// is treated as zero. `header` is the whole header, options included.
uint16_t Ipv4HeaderChecksum(std::span<const uint8_t> header);

// How many of `options.sack_count` SACK blocks Serialize writes: as many as fit beside the
// other options in 40 octets (RFC 2018 §3: three with timestamps, four without).
int SackBlocksThatFit(const TcpOptions& options);

}  // namespace tcplab::wire
