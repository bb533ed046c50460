// IPv4+TCP codec. The hand-written path (Parse/Serialize) is the default; the libtins path
// (ParseWithLibtins/SerializeWithLibtins) is the reference it is tested against. Both share
// only what must be identical for the cross-check to mean anything: the IPv4 pre-checks
// (libtins accepts fragments and other protocols silently), the order in which problems are
// reported, and the wording of the error messages.
#include "engine/wire/codec.h"

#include <tins/endianness.h>
#include <tins/exceptions.h>
#include <tins/ip.h>
#include <tins/ip_address.h>
#include <tins/rawpdu.h>
#include <tins/tcp.h>
#include <tins/utils/checksum_utils.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace tcplab::wire {
namespace {

// ---------------------------------------------------------------------------------------------
// Octets in network byte order.

inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t Load32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Store32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// ---------------------------------------------------------------------------------------------
// The Internet checksum (RFC 1071).
//
// The ones' complement sum does not depend on byte order (RFC 1071 §2(B)), so words are
// loaded in host order, summed into a wide accumulator whose carries are folded once at the
// end (§2(C) "deferred carries"), and the 16-bit result is swapped to network order once.

uint64_t SumHostOrder(const uint8_t* p, size_t n) {
  // Two accumulators of 32-bit words: no carry is lost below 2^32 words, far above 64 KiB.
  uint64_t a = 0;
  uint64_t b = 0;
  while (n >= 16) {
    uint32_t w[4];
    std::memcpy(w, p, sizeof(w));
    a += w[0];
    b += w[1];
    a += w[2];
    b += w[3];
    p += 16;
    n -= 16;
  }
  while (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, sizeof(w));
    a += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, sizeof(w));
    b += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // An odd final octet is padded with a zero octet on its right (RFC 9293 §3.1).
    const uint8_t pad[2] = {p[0], 0};
    uint16_t w;
    std::memcpy(&w, pad, sizeof(w));
    b += w;
  }
  return a + b;
}

// Folds a host-order sum to 16 bits and returns it as a network-order value.
uint16_t FoldToNetwork(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  const auto folded = static_cast<uint16_t>(sum);
  if constexpr (std::endian::native == std::endian::little) {
    return static_cast<uint16_t>((folded >> 8) | (folded << 8));
  }
  return folded;
}

// Adds network-order 16-bit values with end-around carry.
uint16_t OnesAdd(uint32_t sum) {
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The pseudo-header of RFC 9293 §3.1: source, destination, zero, PTCL, TCP length.
uint32_t PseudoHeaderSum(Ipv4 src, Ipv4 dst, size_t tcp_length) {
  return (src.v >> 16) + (src.v & 0xffffu) + (dst.v >> 16) + (dst.v & 0xffffu) + kIpProtoTcp +
         static_cast<uint32_t>(tcp_length);
}

// Sum of `bytes` with the 16-bit field at `field_offset` (even) read as zero.
uint16_t SumSkippingField(std::span<const uint8_t> bytes, size_t field_offset) {
  if (bytes.size() < field_offset + 2)
    return FoldToNetwork(SumHostOrder(bytes.data(), bytes.size()));
  return FoldToNetwork(
      SumHostOrder(bytes.data(), field_offset) +
      SumHostOrder(bytes.data() + field_offset + 2, bytes.size() - field_offset - 2));
}

constexpr size_t kIpv4ChecksumOffset = 10;
constexpr size_t kTcpChecksumOffset = 16;

// ---------------------------------------------------------------------------------------------
// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018) and their lengths, kind and length
// octets included.

enum OptionKind : uint8_t {
  kOptEol = 0,
  kOptNop = 1,
  kOptMss = 2,
  kOptWindowScale = 3,
  kOptSackPermitted = 4,
  kOptSack = 5,
  kOptTimestamps = 8,
};
constexpr uint8_t kLenMss = 4;
constexpr uint8_t kLenWindowScale = 3;
constexpr uint8_t kLenSackPermitted = 2;
constexpr uint8_t kLenTimestamps = 10;
constexpr uint8_t kLenSackBase = 2;
constexpr uint8_t kLenSackBlock = 8;

std::string_view OptionName(uint8_t kind) {
  switch (kind) {
    case kOptEol: return "EOL";
    case kOptNop: return "NOP";
    case kOptMss: return "MSS";
    case kOptWindowScale: return "window scale";
    case kOptSackPermitted: return "SACK-permitted";
    case kOptSack: return "SACK";
    case kOptTimestamps: return "timestamps";
    default: return "unknown";
  }
}

// The lengths RFC 2018 §3 allows for a SACK option: 2 + 8n for n = 1..4.
bool ValidSackLength(size_t len) {
  return len >= kLenSackBase + kLenSackBlock && (len - kLenSackBase) % kLenSackBlock == 0 &&
         (len - kLenSackBase) / kLenSackBlock <= kMaxSackBlocks;
}

// ---------------------------------------------------------------------------------------------
// Error messages. Both codecs report through these so that their results compare equal.

absl::Status OptionOverruns(uint8_t kind, size_t offset, size_t room) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "TCP option kind %d (%s) at option offset %d overruns the TCP header (%d option octets)",
      kind, OptionName(kind), offset, room));
}

absl::Status OptionLengthBelowTwo(uint8_t kind, size_t len) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "TCP option kind %d (%s) has length %d; a length counts its kind and length octets, so "
      "it is at least 2",
      kind, OptionName(kind), len));
}

absl::Status OptionWrongLength(uint8_t kind, size_t len) {
  std::string_view want;
  switch (kind) {
    case kOptMss: want = "4"; break;
    case kOptWindowScale: want = "3"; break;
    case kOptSackPermitted: want = "2"; break;
    case kOptTimestamps: want = "10"; break;
    case kOptSack: want = "10, 18, 26 or 34"; break;
    default: want = "?"; break;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "TCP option kind %d (%s) has length %d, want %s", kind, OptionName(kind), len, want));
}

absl::Status BadChecksum(std::string_view what, uint16_t got, uint16_t want) {
  return absl::DataLossError(
      absl::StrFormat("bad %s checksum: got 0x%04x, want 0x%04x", what, got, want));
}

// ---------------------------------------------------------------------------------------------
// IPv4 header (RFC 791 §3.1), checked by hand in both codecs: libtins' IP parser accepts
// fragments and any protocol, and rejects legal END-padded IP options.

struct Ipv4Header {
  Ipv4 src;
  Ipv4 dst;
  uint8_t ttl = 0;
  size_t header_len = 0;  // IHL * 4
  size_t total_len = 0;   // Total Length
};

absl::Status CheckIpv4Header(std::span<const uint8_t> d, bool verify_checksum, Ipv4Header& ip) {
  if (d.size() < kIpv4MinHeaderLen) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "truncated IPv4 header: %d octets, need at least %d", d.size(), kIpv4MinHeaderLen));
  }
  const int version = d[0] >> 4;
  if (version != 4) {
    return absl::InvalidArgumentError(absl::StrFormat("wrong IP version %d, want 4", version));
  }
  const int ihl = d[0] & 0x0f;
  if (ihl < 5) {
    return absl::InvalidArgumentError(absl::StrFormat("IPv4 IHL %d < 5", ihl));
  }
  ip.header_len = static_cast<size_t>(ihl) * 4;
  if (ip.header_len > d.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "truncated IPv4 header: IHL says %d octets, datagram has %d", ip.header_len, d.size()));
  }
  // The header checksum is checked before any other field is believed (as Linux's ip_rcv).
  if (verify_checksum && FoldToNetwork(SumHostOrder(d.data(), ip.header_len)) != 0xffff) {
    return BadChecksum("IPv4 header", Load16(&d[kIpv4ChecksumOffset]),
                       Ipv4HeaderChecksum(d.first(ip.header_len)));
  }
  ip.total_len = Load16(&d[2]);
  // Octets beyond Total Length are link padding and ignored; fewer are a truncation.
  if (ip.total_len < ip.header_len || ip.total_len > d.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "IPv4 total length %d inconsistent with the buffer (%d octets) and header length %d",
        ip.total_len, d.size(), ip.header_len));
  }
  // The engine does not reassemble (RFC 791 §3.2): a fragment is refused, not half-parsed.
  const uint16_t frag = Load16(&d[6]);
  const bool more_fragments = (frag & 0x2000) != 0;
  const int offset = frag & 0x1fff;
  if (more_fragments || offset != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "fragmented IPv4 datagram (MF=%d, fragment offset=%d): reassembly is not supported",
        more_fragments ? 1 : 0, offset));
  }
  if (d[9] != kIpProtoTcp) {
    return absl::InvalidArgumentError(absl::StrFormat("not TCP: IPv4 protocol %d", d[9]));
  }
  ip.ttl = d[8];
  ip.src = Ipv4{Load32(&d[12])};
  ip.dst = Ipv4{Load32(&d[16])};
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// TCP header (RFC 9293 §3.1), hand-written path.

// Checks that the fixed header is there and Data Offset is sane; sets `header_len`.
absl::Status CheckTcpHeader(std::span<const uint8_t> seg, size_t& header_len) {
  if (seg.size() < kTcpMinHeaderLen) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "truncated TCP header: %d octets, need at least %d", seg.size(), kTcpMinHeaderLen));
  }
  const int data_offset = seg[12] >> 4;
  if (data_offset < 5) {
    return absl::InvalidArgumentError(absl::StrFormat("TCP data offset %d < 5", data_offset));
  }
  header_len = static_cast<size_t>(data_offset) * 4;
  if (header_len > seg.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("TCP data offset %d (%d octets) is beyond the segment (%d octets)",
                        data_offset, header_len, seg.size()));
  }
  return absl::OkStatus();
}

absl::Status VerifyTcpChecksum(Ipv4 src, Ipv4 dst, std::span<const uint8_t> seg) {
  // Summing the whole segment, checksum included, gives all ones when it is intact
  // (RFC 1071 §1 (3)). The wanted value is only computed for the error message.
  const uint16_t sum = OnesAdd(uint32_t{FoldToNetwork(SumHostOrder(seg.data(), seg.size()))} +
                               PseudoHeaderSum(src, dst, seg.size()));
  if (sum == 0xffff) return absl::OkStatus();
  return BadChecksum("TCP", Load16(&seg[kTcpChecksumOffset]), TcpChecksum(src, dst, seg));
}

// Decodes one option whose kind and length octets have been read; `value` is the rest.
absl::Status DecodeOption(uint8_t kind, const uint8_t* value, size_t len, TcpOptions& out) {
  switch (kind) {
    case kOptMss:  // RFC 9293 §3.2
      if (len != kLenMss) return OptionWrongLength(kind, len);
      out.mss = Load16(value);
      return absl::OkStatus();
    case kOptWindowScale:  // RFC 7323 §2.2; values above 14 are the TCP layer's to clamp
      if (len != kLenWindowScale) return OptionWrongLength(kind, len);
      out.window_scale = value[0];
      return absl::OkStatus();
    case kOptSackPermitted:  // RFC 2018 §2
      if (len != kLenSackPermitted) return OptionWrongLength(kind, len);
      out.sack_permitted = true;
      return absl::OkStatus();
    case kOptSack: {  // RFC 2018 §3; a later SACK option replaces an earlier one
      if (!ValidSackLength(len)) return OptionWrongLength(kind, len);
      const size_t n = (len - kLenSackBase) / kLenSackBlock;
      for (size_t i = 0; i < n; ++i) {
        out.sack[i] = SackBlock{SeqNum(Load32(value + 8 * i)), SeqNum(Load32(value + 8 * i + 4))};
      }
      out.sack_count = static_cast<uint8_t>(n);
      return absl::OkStatus();
    }
    case kOptTimestamps:  // RFC 7323 §3.2
      if (len != kLenTimestamps) return OptionWrongLength(kind, len);
      out.timestamps = Timestamps{Load32(value), Load32(value + 4)};
      return absl::OkStatus();
    default:  // Unknown kinds are skipped by their length (RFC 9293 §3.2, MUST-6).
      return absl::OkStatus();
  }
}

// Walks the option list (RFC 9293 §3.2). EOL ends the list; what follows it is padding.
// `eol_at`, if given, receives EOL's offset (or the list's size if there is none).
absl::Status DecodeTcpOptions(std::span<const uint8_t> opts, TcpOptions& out,
                              size_t* eol_at = nullptr) {
  size_t i = 0;
  while (i < opts.size()) {
    const uint8_t kind = opts[i];
    if (kind == kOptEol) break;
    if (kind == kOptNop) {
      ++i;
      continue;
    }
    if (i + 1 >= opts.size()) return OptionOverruns(kind, i, opts.size());
    const size_t len = opts[i + 1];
    if (len < 2) return OptionLengthBelowTwo(kind, len);
    if (i + len > opts.size()) return OptionOverruns(kind, i, opts.size());
    if (absl::Status s = DecodeOption(kind, opts.data() + i + 2, len, out); !s.ok()) return s;
    i += len;
  }
  if (eol_at != nullptr) *eol_at = i;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// TCP option layout for Serialize, after Linux's tcp_options_write: every group is a multiple
// of 4 octets, so no trailing padding is ever needed.

size_t OptionsLength(const TcpOptions& o, int sack_blocks) {
  size_t n = 0;
  if (o.mss) n += 4;  // mss
  if (o.timestamps)
    n += 12;  // sackOK,TS  or  nop,nop,TS
  else if (o.sack_permitted)
    n += 4;                                                            // nop,nop,sackOK
  if (o.window_scale) n += 4;                                          // nop,wscale
  if (sack_blocks > 0) n += 4 + 8 * static_cast<size_t>(sack_blocks);  // nop,nop,sack
  return n;
}

uint8_t* WriteOptions(const TcpOptions& o, int sack_blocks, uint8_t* p) {
  if (o.mss) {
    p[0] = kOptMss;
    p[1] = kLenMss;
    Store16(p + 2, *o.mss);
    p += 4;
  }
  if (o.timestamps) {
    // SACK-permitted rides in the two octets the NOPs would otherwise take.
    if (o.sack_permitted) {
      p[0] = kOptSackPermitted;
      p[1] = kLenSackPermitted;
    } else {
      p[0] = kOptNop;
      p[1] = kOptNop;
    }
    p[2] = kOptTimestamps;
    p[3] = kLenTimestamps;
    Store32(p + 4, o.timestamps->val);
    Store32(p + 8, o.timestamps->ecr);
    p += 12;
  } else if (o.sack_permitted) {
    p[0] = kOptNop;
    p[1] = kOptNop;
    p[2] = kOptSackPermitted;
    p[3] = kLenSackPermitted;
    p += 4;
  }
  if (o.window_scale) {
    p[0] = kOptNop;
    p[1] = kOptWindowScale;
    p[2] = kLenWindowScale;
    p[3] = *o.window_scale;
    p += 4;
  }
  if (sack_blocks > 0) {
    p[0] = kOptNop;
    p[1] = kOptNop;
    p[2] = kOptSack;
    p[3] = static_cast<uint8_t>(kLenSackBase + kLenSackBlock * sack_blocks);
    p += 4;
    for (int i = 0; i < sack_blocks; ++i) {
      Store32(p, o.sack[i].left.raw());
      Store32(p + 4, o.sack[i].right.raw());
      p += 8;
    }
  }
  return p;
}

// The payload octets that fit in one datagram beside headers of the given size.
size_t PayloadThatFits(const SegmentRepr& seg, size_t options_len) {
  const size_t room = 0xffff - kIpv4MinHeaderLen - kTcpMinHeaderLen - options_len;
  return std::min(seg.payload.size(), room);
}

// ---------------------------------------------------------------------------------------------
// libtins reference path.

Tins::IPv4Address TinsAddress(Ipv4 a) { return Tins::IPv4Address(Tins::Endian::host_to_be(a.v)); }

// The TCP checksum computed with libtins' own checksum helpers, as a network-order value.
// libtins sums in host order, like SumHostOrder, hence the final swap.
uint16_t TcpChecksumWithLibtins(Ipv4 src, Ipv4 dst, std::span<const uint8_t> seg) {
  const uint8_t* p = seg.data();
  uint32_t sum = Tins::Utils::pseudoheader_checksum(TinsAddress(src), TinsAddress(dst),
                                                    static_cast<uint16_t>(seg.size()), kIpProtoTcp);
  sum += Tins::Utils::sum_range(p, p + kTcpChecksumOffset);
  sum += Tins::Utils::sum_range(p + kTcpChecksumOffset + 2, p + seg.size());
  while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
  return Tins::Endian::be_to_host(static_cast<uint16_t>(~sum));
}

// Decodes the options libtins has split into TLVs. Value lengths are checked by libtins'
// converters (they throw malformed_option), the rest here.
absl::Status DecodeLibtinsOptions(const Tins::TCP& tcp, TcpOptions& out) {
  for (const Tins::TCP::option& opt : tcp.options()) {
    const auto kind = static_cast<uint8_t>(opt.option());
    const size_t len = opt.data_size() + 2;
    if (kind == kOptEol) break;
    try {
      switch (kind) {
        case kOptMss: out.mss = opt.to<uint16_t>(); break;
        case kOptWindowScale: out.window_scale = opt.to<uint8_t>(); break;
        case kOptSackPermitted:
          if (opt.data_size() != 0) return OptionWrongLength(kind, len);
          out.sack_permitted = true;
          break;
        case kOptSack: {
          if (!ValidSackLength(len)) return OptionWrongLength(kind, len);
          const auto edges = opt.to<std::vector<uint32_t>>();
          out.sack_count = static_cast<uint8_t>(edges.size() / 2);
          for (size_t i = 0; i < out.sack_count; ++i) {
            out.sack[i] = SackBlock{SeqNum(edges[2 * i]), SeqNum(edges[2 * i + 1])};
          }
          break;
        }
        case kOptTimestamps: {
          const auto [val, ecr] = opt.to<std::pair<uint32_t, uint32_t>>();
          out.timestamps = Timestamps{val, ecr};
          break;
        }
        default: break;
      }
    } catch (const Tins::malformed_option&) {
      return OptionWrongLength(kind, len);
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyTcpChecksumWithLibtins(Ipv4 src, Ipv4 dst, std::span<const uint8_t> seg) {
  const uint16_t got = Load16(&seg[kTcpChecksumOffset]);
  const uint16_t want = TcpChecksumWithLibtins(src, dst, seg);
  // 0x0000 and 0xffff are the same number in ones' complement (RFC 1071 §1).
  if (got == want || (got == 0xffff && want == 0) || (got == 0 && want == 0xffff)) {
    return absl::OkStatus();
  }
  return BadChecksum("TCP", got, want);
}

// libtins threw while parsing `seg`; say why in the hand-written path's words, in the same
// order (structure, checksum, options). Returns OK when the only trouble lies past an EOL,
// which libtins does not treat as the end of the list but RFC 9293 §3.2 does.
absl::Status DiagnoseLibtinsFailure(const Ipv4Header& ip, std::span<const uint8_t> seg,
                                    bool verify_checksum, size_t& eol_at) {
  size_t header_len = 0;
  if (absl::Status s = CheckTcpHeader(seg, header_len); !s.ok()) return s;
  if (verify_checksum) {
    if (absl::Status s = VerifyTcpChecksumWithLibtins(ip.src, ip.dst, seg); !s.ok()) return s;
  }
  TcpOptions scratch;
  return DecodeTcpOptions(seg.subspan(kTcpMinHeaderLen, header_len - kTcpMinHeaderLen), scratch,
                          &eol_at);
}

// Fills `r` from a TCP PDU that libtins accepted.
absl::Status FromLibtins(const Tins::TCP& tcp, const Ipv4Header& ip, SegmentRepr& r) {
  r.src = Endpoint{ip.src, tcp.sport()};
  r.dst = Endpoint{ip.dst, tcp.dport()};
  r.seq = SeqNum(tcp.seq());
  r.ack = SeqNum(tcp.ack_seq());
  r.flags = static_cast<uint8_t>(tcp.flags() & 0xff);
  r.window = tcp.window();
  r.urgent = tcp.urg_ptr();
  r.ttl = ip.ttl;
  return DecodeLibtinsOptions(tcp, r.options);
}

absl::StatusOr<SegmentRepr> ParseTcpWithLibtins(const Ipv4Header& ip, std::span<const uint8_t> seg,
                                                bool verify_checksum) {
  SegmentRepr r;
  size_t header_len = 0;
  try {
    const Tins::TCP tcp(seg.data(), static_cast<uint32_t>(seg.size()));
    header_len = static_cast<size_t>(tcp.data_offset()) * 4;
    if (verify_checksum) {
      if (absl::Status s = VerifyTcpChecksumWithLibtins(ip.src, ip.dst, seg); !s.ok()) return s;
    }
    if (absl::Status s = FromLibtins(tcp, ip, r); !s.ok()) return s;
  } catch (...) {  // libtins throws malformed_packet; nothing may escape (codec.h)
    size_t eol_at = 0;
    if (absl::Status s = DiagnoseLibtinsFailure(ip, seg, verify_checksum, eol_at); !s.ok()) {
      return s;
    }
    // Garbage after EOL: hand libtins the header with everything past EOL zeroed (zeros are
    // EOLs, which it reads as one-octet options).
    header_len = static_cast<size_t>(seg[12] >> 4) * 4;
    std::array<uint8_t, kTcpMinHeaderLen + kTcpMaxOptionsLen> copy{};
    std::memcpy(copy.data(), seg.data(), kTcpMinHeaderLen + eol_at);
    try {
      const Tins::TCP tcp(copy.data(), static_cast<uint32_t>(header_len));
      if (absl::Status s = FromLibtins(tcp, ip, r); !s.ok()) return s;
    } catch (const std::exception& e) {
      return absl::InternalError(
          absl::StrFormat("libtins rejected a valid TCP header: %s", e.what()));
    } catch (...) {
      return absl::InternalError("libtins rejected a valid TCP header");
    }
  }
  r.payload = seg.subspan(header_len);
  return r;
}

void AddNops(Tins::TCP& tcp, int n) {
  for (int i = 0; i < n; ++i) tcp.add_option(Tins::TCP::option(Tins::TCP::NOP));
}

// The same layout as WriteOptions, through libtins' option setters.
void AddLibtinsOptions(const TcpOptions& o, int sack_blocks, Tins::TCP& tcp) {
  if (o.mss) tcp.mss(*o.mss);
  if (o.timestamps) {
    if (o.sack_permitted) {
      tcp.sack_permitted();
    } else {
      AddNops(tcp, 2);
    }
    tcp.timestamp(o.timestamps->val, o.timestamps->ecr);
  } else if (o.sack_permitted) {
    AddNops(tcp, 2);
    tcp.sack_permitted();
  }
  if (o.window_scale) {
    AddNops(tcp, 1);
    tcp.winscale(*o.window_scale);
  }
  if (sack_blocks > 0) {
    AddNops(tcp, 2);
    Tins::TCP::sack_type edges;
    for (int i = 0; i < sack_blocks; ++i) {
      edges.push_back(o.sack[i].left.raw());
      edges.push_back(o.sack[i].right.raw());
    }
    tcp.sack(edges);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions.

uint16_t TcpChecksum(Ipv4 src, Ipv4 dst, std::span<const uint8_t> tcp_segment) {
  const uint16_t sum = OnesAdd(uint32_t{SumSkippingField(tcp_segment, kTcpChecksumOffset)} +
                               PseudoHeaderSum(src, dst, tcp_segment.size()));
  return static_cast<uint16_t>(~sum);
}

uint16_t Ipv4HeaderChecksum(std::span<const uint8_t> header) {
  return static_cast<uint16_t>(~SumSkippingField(header, kIpv4ChecksumOffset));
}

int SackBlocksThatFit(const TcpOptions& options) {
  int n = std::min<int>(options.sack_count, kMaxSackBlocks);
  const size_t others = OptionsLength(options, 0);
  while (n > 0 && others + OptionsLength(TcpOptions{}, n) > kTcpMaxOptionsLen) --n;
  return n;
}

absl::StatusOr<SegmentRepr> Parse(std::span<const uint8_t> datagram, bool verify_checksum) {
  Ipv4Header ip;
  if (absl::Status s = CheckIpv4Header(datagram, verify_checksum, ip); !s.ok()) return s;
  const std::span<const uint8_t> seg =
      datagram.subspan(ip.header_len, ip.total_len - ip.header_len);
  size_t header_len = 0;
  if (absl::Status s = CheckTcpHeader(seg, header_len); !s.ok()) return s;
  // A corrupted segment is reported as such before its options are believed.
  if (verify_checksum) {
    if (absl::Status s = VerifyTcpChecksum(ip.src, ip.dst, seg); !s.ok()) return s;
  }
  SegmentRepr r;
  r.src = Endpoint{ip.src, Load16(&seg[0])};
  r.dst = Endpoint{ip.dst, Load16(&seg[2])};
  r.seq = SeqNum(Load32(&seg[4]));
  r.ack = SeqNum(Load32(&seg[8]));
  r.flags = seg[13];
  r.window = Load16(&seg[14]);
  r.urgent = Load16(&seg[18]);
  r.ttl = ip.ttl;
  if (absl::Status s =
          DecodeTcpOptions(seg.subspan(kTcpMinHeaderLen, header_len - kTcpMinHeaderLen), r.options);
      !s.ok()) {
    return s;
  }
  r.payload = seg.subspan(header_len);
  return r;
}

void Serialize(const SegmentRepr& seg, std::vector<uint8_t>& out) {
  const int sack_blocks = SackBlocksThatFit(seg.options);
  const size_t options_len = OptionsLength(seg.options, sack_blocks);
  const size_t payload_len = PayloadThatFits(seg, options_len);
  const size_t tcp_len = kTcpMinHeaderLen + options_len + payload_len;
  const size_t total_len = kIpv4MinHeaderLen + tcp_len;
  out.resize(total_len);

  // IPv4 header, RFC 791 §3.1: version 4, IHL 5, no options, DF (RFC 1191 path MTU discovery).
  uint8_t* ip = out.data();
  ip[0] = 0x45;
  ip[1] = 0;  // DSCP/ECN
  Store16(ip + 2, static_cast<uint16_t>(total_len));
  Store16(ip + 4, 0);       // Identification: unused with DF set (RFC 6864 §4.1)
  Store16(ip + 6, 0x4000);  // DF, fragment offset 0
  ip[8] = seg.ttl;
  ip[9] = kIpProtoTcp;
  Store16(ip + 10, 0);
  Store32(ip + 12, seg.src.ip.v);
  Store32(ip + 16, seg.dst.ip.v);
  Store16(ip + 10, Ipv4HeaderChecksum({ip, kIpv4MinHeaderLen}));

  // TCP header, RFC 9293 §3.1.
  uint8_t* tcp = ip + kIpv4MinHeaderLen;
  Store16(tcp + 0, seg.src.port);
  Store16(tcp + 2, seg.dst.port);
  Store32(tcp + 4, seg.seq.raw());
  Store32(tcp + 8, seg.ack.raw());
  tcp[12] = static_cast<uint8_t>(((kTcpMinHeaderLen + options_len) / 4) << 4);
  tcp[13] = seg.flags;
  Store16(tcp + 14, seg.window);
  Store16(tcp + 16, 0);
  Store16(tcp + 18, seg.urgent);
  uint8_t* payload = WriteOptions(seg.options, sack_blocks, tcp + kTcpMinHeaderLen);
  if (payload_len > 0) std::memcpy(payload, seg.payload.data(), payload_len);
  Store16(tcp + 16, TcpChecksum(seg.src.ip, seg.dst.ip, {tcp, tcp_len}));
}

absl::StatusOr<SegmentRepr> ParseWithLibtins(std::span<const uint8_t> datagram,
                                             bool verify_checksum) {
  Ipv4Header ip;
  if (absl::Status s = CheckIpv4Header(datagram, verify_checksum, ip); !s.ok()) return s;
  return ParseTcpWithLibtins(ip, datagram.subspan(ip.header_len, ip.total_len - ip.header_len),
                             verify_checksum);
}

void SerializeWithLibtins(const SegmentRepr& seg, std::vector<uint8_t>& out) {
  const int sack_blocks = SackBlocksThatFit(seg.options);
  const size_t payload_len = PayloadThatFits(seg, OptionsLength(seg.options, sack_blocks));
  try {
    Tins::IP ip(TinsAddress(seg.dst.ip), TinsAddress(seg.src.ip));
    ip.ttl(seg.ttl);
    ip.id(0);
    ip.flags(Tins::IP::DONT_FRAGMENT);
    auto* tcp = new Tins::TCP(seg.dst.port, seg.src.port);
    ip.inner_pdu(tcp);  // ip owns it from here on
    tcp->seq(seg.seq.raw());
    tcp->ack_seq(seg.ack.raw());
    tcp->flags(seg.flags);
    tcp->window(seg.window);
    tcp->urg_ptr(seg.urgent);
    AddLibtinsOptions(seg.options, sack_blocks, *tcp);
    if (payload_len > 0) {
      tcp->inner_pdu(new Tins::RawPDU(seg.payload.data(), static_cast<uint32_t>(payload_len)));
    }
    const Tins::PDU::serialization_type bytes = ip.serialize();
    out.assign(bytes.begin(), bytes.end());
  } catch (...) {
    out.clear();
  }
}

}  // namespace tcplab::wire
