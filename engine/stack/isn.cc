#include "engine/stack/isn.h"

#include <cstring>

namespace tcplab::stack {

namespace {

inline uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];  // little-endian, as the paper specifies
  return v;
}

struct SipState {
  uint64_t v0, v1, v2, v3;
  void Round() {
    v0 += v1; v1 = Rotl(v1, 13); v1 ^= v0; v0 = Rotl(v0, 32);
    v2 += v3; v3 = Rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = Rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = Rotl(v1, 17); v1 ^= v2; v2 = Rotl(v2, 32);
  }
  void Compress(uint64_t m) {
    v3 ^= m;
    Round();
    Round();
    v0 ^= m;
  }
};

}  // namespace

uint64_t SipHash24(const IsnSecret& key, const uint8_t* data, size_t len) {
  uint64_t k0 = Load64(key.data()), k1 = Load64(key.data() + 8);
  SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
             k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
  size_t full = len / 8 * 8;
  for (size_t i = 0; i < full; i += 8) s.Compress(Load64(data + i));
  uint64_t last = uint64_t{len & 0xff} << 56;
  for (size_t i = 0; i < len - full; ++i) last |= uint64_t{data[full + i]} << (8 * i);
  s.Compress(last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.Round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t IsnGenerator::Hash(wire::Endpoint local, wire::Endpoint remote, uint8_t purpose) const {
  uint8_t buf[13];
  std::memcpy(buf, &local.ip.v, 4);
  std::memcpy(buf + 4, &local.port, 2);
  std::memcpy(buf + 6, &remote.ip.v, 4);
  std::memcpy(buf + 10, &remote.port, 2);
  buf[12] = purpose;
  return SipHash24(secret_, buf, sizeof buf);
}

wire::SeqNum IsnGenerator::Isn(wire::Endpoint local, wire::Endpoint remote, Instant now) const {
  // M: a timer that ticks every 4 microseconds (RFC 6528 §3, as in RFC 793).
  auto m = static_cast<uint32_t>(now.time_since_epoch().count() / 4000);
  return wire::SeqNum(m + static_cast<uint32_t>(Hash(local, remote, 0)));
}

uint32_t IsnGenerator::TimestampOffset(wire::Endpoint local, wire::Endpoint remote) const {
  return static_cast<uint32_t>(Hash(local, remote, 1));
}

}  // namespace tcplab::stack
