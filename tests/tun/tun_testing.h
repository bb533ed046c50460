// Helpers shared by the tun-labelled tests that drive a whole Sandbox: random payloads,
// SHA-256, polling waits, a connection's state path from the event log, and moving data
// both ways until it has all arrived.
#pragma once

#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/sandbox/sandbox.h"

namespace tcplab::sandbox::tuntest {

inline std::string Sha256Hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

inline bool WaitUntil(const std::function<bool()>& pred, absl::Duration timeout = absl::Seconds(10)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return pred();
}

inline tcp::TcpState State(Sandbox& sb, tcp::ConnId id) {
  auto info = sb.Get(id);
  return info.ok() ? info->state : tcp::TcpState::kClosed;
}

inline bool WaitState(Sandbox& sb, tcp::ConnId id, tcp::TcpState s,
                      absl::Duration timeout = absl::Seconds(10)) {
  return WaitUntil([&] { return State(sb, id) == s; }, timeout);
}

// Every state `id` went through, from the event log.
inline std::vector<tcp::TcpState> Path(Sandbox& sb, tcp::ConnId id) {
  std::vector<tcp::TcpState> out;
  auto r = sb.events().Read(0, 1 << 20);
  for (const Event& e : r.events) {
    if (auto* st = std::get_if<tcp::StateEvent>(&e.body); st && st->conn == id) out.push_back(st->to);
  }
  return out;
}

inline bool PathContains(Sandbox& sb, tcp::ConnId id, tcp::TcpState s) {
  auto p = Path(sb, id);
  return std::find(p.begin(), p.end(), s) != p.end();
}

// The connection `stack` accepted on local port `port` (the sandbox accepts by itself).
inline std::optional<tcp::ConnId> Accepted(Sandbox& sb, StackKind stack, uint16_t port) {
  for (const ConnInfo& c : sb.List()) {
    if (c.stack == stack && !c.listener && c.local.port == port) return c.id;
  }
  return std::nullopt;
}

// Sends `a_to_b` from `a` and `b_to_a` from `b` at the same time, in 1 MiB pieces, and
// receives on both ends until everything has arrived or `timeout` passes. Returns what each
// end received: {at b, at a}.
inline std::pair<std::string, std::string> Exchange(Sandbox& sb, tcp::ConnId a, tcp::ConnId b,
                                                    const std::string& a_to_b, const std::string& b_to_a,
                                                    absl::Duration timeout) {
  size_t a_sent = 0, b_sent = 0;
  std::string at_b, at_a;
  auto send = [&](tcp::ConnId id, const std::string& data, size_t& sent) {
    if (sent >= data.size()) return;
    auto n = sb.Send(id, Bytes(data).subspan(sent, std::min<size_t>(1 << 20, data.size() - sent)));
    if (n.ok()) sent += *n;
  };
  WaitUntil([&] {
    send(a, a_to_b, a_sent);
    send(b, b_to_a, b_sent);
    if (auto r = sb.Recv(b, 1 << 20); r.ok()) at_b += r->data;
    if (auto r = sb.Recv(a, 1 << 20); r.ok()) at_a += r->data;
    return at_b.size() >= a_to_b.size() && at_a.size() >= b_to_a.size();
  }, timeout);
  return {at_b, at_a};
}

}  // namespace tcplab::sandbox::tuntest
