// SipHash-2-4 and the RFC 6528 initial sequence numbers built on it (engine/stack/isn.h).
#include "engine/stack/isn.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

namespace tcplab::stack {
namespace {

using namespace std::chrono_literals;

// The key of the SipHash paper's test vectors (Aumasson and Bernstein 2012, Appendix A):
// 00 01 02 ... 0f.
IsnSecret PaperKey() {
  IsnSecret k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i);
  return k;
}

// The paper's messages: 00 01 02 ... (len - 1).
std::vector<uint8_t> PaperMessage(size_t len) {
  std::vector<uint8_t> m(len);
  for (size_t i = 0; i < len; ++i) m[i] = static_cast<uint8_t>(i);
  return m;
}

// SipHash-2-4 as OpenSSL 3 computes it (EVP_MAC "SIPHASH", 8-octet output, little-endian as
// the paper specifies): an independent implementation to cross-check against.
uint64_t OpenSslSipHash(const IsnSecret& key, const std::vector<uint8_t>& msg) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "SIPHASH", nullptr);
  EXPECT_NE(mac, nullptr);
  if (mac == nullptr) return 0;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  size_t size = 8;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                         OSSL_PARAM_construct_end()};
  uint8_t out[8] = {};
  size_t out_len = 0;
  bool ok = EVP_MAC_init(ctx, key.data(), key.size(), params) == 1 &&
            EVP_MAC_update(ctx, msg.data(), msg.size()) == 1 &&
            EVP_MAC_final(ctx, out, &out_len, sizeof out) == 1 && out_len == 8;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  EXPECT_TRUE(ok);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | out[i];
  return v;
}

const wire::Endpoint kLocal{wire::Ipv4::Of(198, 18, 0, 1), 80};
const wire::Endpoint kRemote{wire::Ipv4::Of(198, 18, 0, 2), 40000};
constexpr Instant kT = InstantFromNanos(123'456'788'000);  // on a 4 µs tick

// SipHash paper, Appendix A: the 15-octet message 00..0e under key 00..0f gives
// a129ca6149be45e5.
TEST(SipHash24, PaperVectorFor15Octets) {
  std::vector<uint8_t> m = PaperMessage(15);
  EXPECT_EQ(SipHash24(PaperKey(), m.data(), m.size()), 0xa129ca6149be45e5ULL);
}

// The reference implementation's vectors.h, entry 0: the empty message gives 726fdb47dd0e0e31.
TEST(SipHash24, ReferenceVectorForTheEmptyMessage) {
  EXPECT_EQ(SipHash24(PaperKey(), nullptr, 0), 0x726fdb47dd0e0e31ULL);
}

// vectors.h, entry 8: a message of exactly one 8-octet word (no partial last word) gives
// 93f5f5799a932462.
TEST(SipHash24, ReferenceVectorForOneFullWord) {
  std::vector<uint8_t> m = PaperMessage(8);
  EXPECT_EQ(SipHash24(PaperKey(), m.data(), m.size()), 0x93f5f5799a932462ULL);
}

// Every message length 0..63 (each partial-word case several times over), under two keys,
// agrees with OpenSSL's SipHash-2-4.
TEST(SipHash24, AgreesWithOpenSslForEveryLengthUpTo63) {
  IsnSecret other{};
  for (size_t i = 0; i < other.size(); ++i) other[i] = static_cast<uint8_t>(0xf0 ^ (i * 37));
  for (const IsnSecret& key : {PaperKey(), other}) {
    for (size_t len = 0; len < 64; ++len) {
      std::vector<uint8_t> m = PaperMessage(len);
      EXPECT_EQ(SipHash24(key, m.data(), m.size()), OpenSslSipHash(key, m)) << "len " << len;
    }
  }
}

// RFC 6528 §3: F() depends on the connection-id, so ISNs differ per 4-tuple at the same time.
TEST(Isn, DiffersPerFourTuple) {
  IsnGenerator g(PaperKey());
  wire::SeqNum base = g.Isn(kLocal, kRemote, kT);
  wire::Endpoint other_port = kRemote;
  other_port.port++;
  wire::Endpoint other_ip = kRemote;
  other_ip.ip = wire::Ipv4::Of(198, 18, 0, 3);
  wire::Endpoint other_local = kLocal;
  other_local.port = 81;
  EXPECT_NE(g.Isn(kLocal, other_port, kT), base);
  EXPECT_NE(g.Isn(kLocal, other_ip, kT), base);
  EXPECT_NE(g.Isn(other_local, kRemote, kT), base);
  EXPECT_NE(g.Isn(kRemote, kLocal, kT), base);  // the direction matters too
}

// RFC 6528 §3: "M is the 4 microsecond timer": the ISN of a 4-tuple advances by one every
// 4 µs, i.e. 250 000 per second, wrapping modulo 2^32.
TEST(Isn, AdvancesOnePerFourMicroseconds) {
  IsnGenerator g(PaperKey());
  wire::SeqNum t0 = g.Isn(kLocal, kRemote, kT);
  EXPECT_EQ(g.Isn(kLocal, kRemote, kT + 3us), t0);
  EXPECT_EQ(g.Isn(kLocal, kRemote, kT + 4us) - t0, 1);
  EXPECT_EQ(g.Isn(kLocal, kRemote, kT + 1s) - t0, 250'000);
  // 2^32 ticks of 4 µs (about 4.77 hours) later the ISN has come round again.
  EXPECT_EQ(g.Isn(kLocal, kRemote, kT + 4us * (int64_t{1} << 32)), t0);
}

// The engine is deterministic: the same secret, 4-tuple and time give the same ISN.
TEST(Isn, SameSecretAndTimeGiveTheSameIsn) {
  IsnGenerator a(PaperKey()), b(PaperKey());
  EXPECT_EQ(a.Isn(kLocal, kRemote, kT), b.Isn(kLocal, kRemote, kT));
  EXPECT_EQ(a.TimestampOffset(kLocal, kRemote), b.TimestampOffset(kLocal, kRemote));
}

// RFC 6528 §3: the secret key is what makes the ISN unguessable: another key, another ISN.
TEST(Isn, DifferentSecretGivesADifferentIsn) {
  IsnSecret other = PaperKey();
  other[15] ^= 0x01;
  IsnGenerator a(PaperKey()), b(other);
  EXPECT_NE(a.Isn(kLocal, kRemote, kT), b.Isn(kLocal, kRemote, kT));
}

// RFC 7323 §5.4 / §7.1: the timestamp clock gets a per-connection offset, so TSvals neither
// reveal the host's clock nor link connections; it is not the ISN's hash either.
TEST(Isn, TimestampOffsetIsPerConnection) {
  IsnGenerator g(PaperKey());
  wire::Endpoint other = kRemote;
  other.port++;
  uint32_t off = g.TimestampOffset(kLocal, kRemote);
  EXPECT_NE(off, g.TimestampOffset(kLocal, other));
  EXPECT_EQ(off, g.TimestampOffset(kLocal, kRemote));
  // At time zero the ISN is F() alone; the offset comes from a different hash input.
  EXPECT_NE(off, g.Isn(kLocal, kRemote, InstantFromNanos(0)).raw());
}

}  // namespace
}  // namespace tcplab::stack
