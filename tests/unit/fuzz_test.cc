// Fuzz-style robustness: 100,000 random and mutated datagrams fed to two engine stacks joined
// by the VirtualLink, one of them listening, with an established connection between them that
// keeps carrying data. The datagrams are random bytes, valid datagrams with bits flipped, cut
// short or given garbage options, and segments built field by field with flags, sequence and
// acknowledgment numbers, windows and options chosen at random or near the connection's
// windows. Half of the byte-level mutations get their checksums fixed so that they pass
// parsing and reach the state machine.
//
// Nothing may crash or throw, and after every datagram every TCB of both stacks must satisfy:
// SND.UNA <= SND.NXT <= SND.MAX, buffers within capacity, and the reassembler holding no more
// than the receive buffer has room for. Afterwards the stacks must still carry a connection.
// (tests/fuzz/ is not built by CMake; this file is what runs in ctest.)
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/link/stack_pair.h"
#include "engine/wire/codec.h"
#include "gtest/gtest.h"
#include "tests/unit/harness/invariants.h"

namespace tcplab {
namespace {

using link::Side;
using link::StackPair;
using tcp::ConnId;
using tcp::TcpState;

constexpr int kShards = 4;
constexpr int kDatagramsPerShard = 100'000 / kShards;
constexpr uint16_t kServerPort = 80;

using testing::CheckInvariants;

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// Makes the IPv4 header checksum and, where the header allows, the TCP checksum right again,
// so that a mutated datagram gets past parsing to the state machine.
void FixChecksums(std::vector<uint8_t>& d) {
  if (d.size() < wire::kIpv4MinHeaderLen) return;
  const size_t ihl = size_t{d[0] & 0x0fu} * 4;
  if (ihl < wire::kIpv4MinHeaderLen || ihl > d.size()) return;
  Store16(&d[10], wire::Ipv4HeaderChecksum({d.data(), ihl}));
  const size_t total = Load16(&d[2]);
  if (total < ihl + wire::kTcpMinHeaderLen || total > d.size()) return;
  const wire::Ipv4 src{(uint32_t{d[12]} << 24) | (uint32_t{d[13]} << 16) | (uint32_t{d[14]} << 8) | d[15]};
  const wire::Ipv4 dst{(uint32_t{d[16]} << 24) | (uint32_t{d[17]} << 16) | (uint32_t{d[18]} << 8) | d[19]};
  Store16(&d[ihl + 16], wire::TcpChecksum(src, dst, {d.data() + ihl, total - ihl}));
}

// Counts the verdicts on incoming segments, to show the fuzzer reached every layer.
class VerdictCounter : public tcp::EventSink {
 public:
  void OnSegment(Instant, const tcp::SegmentEvent& ev) override {
    if (ev.dir == tcp::Direction::kIn) ++counts[static_cast<size_t>(ev.verdict)];
  }
  uint64_t operator[](tcp::Verdict v) const { return counts[static_cast<size_t>(v)]; }
  std::array<uint64_t, 16> counts{};
};

class FuzzRun {
 public:
  explicit FuzzRun(uint64_t seed) : rng_(seed), pair_(Config(1), Config(2), &verdicts_, &verdicts_) {
    link::Impairment imp;
    imp.delay = std::chrono::milliseconds(1);
    EXPECT_TRUE(pair_.link().SetImpairment(Side::kA, imp).ok());
    EXPECT_TRUE(pair_.link().SetImpairment(Side::kB, imp).ok());
    // Keep a corpus of the valid datagrams the two stacks exchange.
    for (Side side : {Side::kA, Side::kB}) {
      pair_.link().SetFilter(side, [this](std::span<const uint8_t> d) {
        if (corpus_.size() < 256) {
          corpus_.emplace_back(d.begin(), d.end());
        } else if (rng_.Chance(0.05)) {
          corpus_[rng_.Below(corpus_.size())].assign(d.begin(), d.end());
        }
        return true;
      });
    }
    auto l = pair_.b().Listen({StackPair::kAddrB, kServerPort}, pair_.now(), /*backlog=*/8);
    EXPECT_TRUE(l.ok());
    listener_ = *l;
  }

  // Feeds `n` datagrams; returns the first failure, or "".
  std::string Run(int n) {
    for (int i = 0; i < n; ++i) {
      if (std::string err = EnsureConnection(); !err.empty()) return err;
      if (i % 50 == 0) Traffic();
      const bool to_b = rng_.Chance(0.6);
      std::vector<uint8_t> d = Make(to_b);
      (to_b ? pair_.b() : pair_.a()).OnDatagram(d, pair_.now());
      pair_.Advance(std::chrono::microseconds(500));
      if (std::string err = CheckAll(); !err.empty()) {
        return absl::StrCat("after datagram ", i, " (", kind_, "): ", err);
      }
    }
    return "";
  }

  // After the storm: a fresh connection still carries data both ways, intact.
  std::string Liveness() {
    AbortConnection();
    if (std::string err = EnsureConnection(); !err.empty()) return err;
    std::string up(50'000, '\0'), down(30'000, '\0');
    for (char& c : up) c = static_cast<char>(rng_.Next());
    for (char& c : down) c = static_cast<char>(rng_.Next());
    std::string got_up, got_down;
    size_t sent_up = 0, sent_down = 0;
    bool ok = pair_.RunUntil([&] {
      sent_up += SendSome(pair_.a(), client_, up, sent_up);
      sent_down += SendSome(pair_.b(), server_, down, sent_down);
      got_up += Drain(pair_.b(), server_);
      got_down += Drain(pair_.a(), client_);
      return got_up.size() >= up.size() && got_down.size() >= down.size();
    }, std::chrono::seconds(60));
    if (!ok) return absl::StrCat("liveness: stalled with ", got_up.size(), "/", up.size(), " up and ",
                                 got_down.size(), "/", down.size(), " down");
    if (got_up != up || got_down != down) return "liveness: data corrupted";
    return "";
  }

  size_t corpus_size() const { return corpus_.size(); }
  const VerdictCounter& verdicts() const { return verdicts_; }
  const stack::StackCounters& counters(Side side) {
    return (side == Side::kA ? pair_.a() : pair_.b()).counters();
  }
  int reconnects() const { return reconnects_; }

 private:
  static stack::StackConfig Config(uint8_t secret) {
    stack::StackConfig c;
    c.tcp.min_rto = std::chrono::milliseconds(20);
    c.tcp.initial_rto = std::chrono::milliseconds(100);
    c.tcp.msl = std::chrono::milliseconds(500);
    c.tcp.send_buffer = 16 * 1024;
    c.tcp.recv_buffer = 16 * 1024;
    c.tcp.syn_retries = 3;
    c.tcp.data_retries = 5;
    c.isn_secret[0] = secret;
    return c;
  }

  static TcpState StateOf(stack::Stack& s, ConnId id) {
    const tcp::Tcb* t = s.Find(id);
    return t ? t->state() : TcpState::kClosed;
  }

  void AbortConnection() {
    if (client_ != 0 && pair_.a().Find(client_)) (void)pair_.a().Abort(client_, pair_.now());
    if (server_ != 0 && pair_.b().Find(server_)) (void)pair_.b().Abort(server_, pair_.now());
    client_ = server_ = 0;
  }

  // Keeps one ESTABLISHED connection between A and B to aim at; a fuzzed RST, FIN or timeout
  // ends it, and then a new one replaces it.
  std::string EnsureConnection() {
    if (client_ != 0 && StateOf(pair_.a(), client_) == TcpState::kEstablished &&
        StateOf(pair_.b(), server_) == TcpState::kEstablished) {
      return "";
    }
    AbortConnection();
    ++reconnects_;
    // Accept and drop whatever fuzzed SYNs put in the accept queue.
    for (auto id = pair_.b().Accept(listener_); id.ok(); id = pair_.b().Accept(listener_)) {
      (void)pair_.b().Abort(*id, pair_.now());
    }
    auto c = pair_.a().Connect({StackPair::kAddrA, 0}, {StackPair::kAddrB, kServerPort}, pair_.now());
    if (!c.ok()) return absl::StrCat("connect: ", c.status().ToString());
    client_ = *c;
    bool ok = pair_.RunUntil([&] {
      for (auto id = pair_.b().Accept(listener_); id.ok(); id = pair_.b().Accept(listener_)) {
        const tcp::Tcb* t = pair_.b().Find(*id);
        if (t && t->remote() == pair_.a().Find(client_)->local()) {
          server_ = *id;
        } else {
          (void)pair_.b().Abort(*id, pair_.now());
        }
      }
      return server_ != 0 && StateOf(pair_.a(), client_) == TcpState::kEstablished;
    }, std::chrono::seconds(30));
    if (!ok) return "reconnect: handshake did not complete";
    return "";
  }

  size_t SendSome(stack::Stack& s, ConnId id, const std::string& data, size_t from) {
    if (from >= data.size()) return 0;
    auto n = s.Send(id, {reinterpret_cast<const uint8_t*>(data.data()) + from, data.size() - from},
                    pair_.now());
    return n.ok() ? *n : 0;
  }

  std::string Drain(stack::Stack& s, ConnId id) {
    std::string out;
    uint8_t buf[8192];
    for (;;) {
      auto n = s.Recv(id, buf, pair_.now());
      if (!n.ok() || *n == 0) break;
      out.append(reinterpret_cast<char*>(buf), *n);
    }
    return out;
  }

  // Real data on the connection, so that buffers, the reassembler and the timers have work;
  // sometimes nobody reads, so that windows close.
  void Traffic() {
    std::string chunk(rng_.Below(4000), 'x');
    SendSome(pair_.a(), client_, chunk, 0);
    SendSome(pair_.b(), server_, chunk.substr(0, chunk.size() / 3), 0);
    if (rng_.Chance(0.8)) Drain(pair_.b(), server_);
    if (rng_.Chance(0.8)) Drain(pair_.a(), client_);
  }

  std::string CheckAll() {
    for (stack::Stack* s : {&pair_.a(), &pair_.b()}) {
      for (ConnId id : s->Ids()) {
        if (s->IsListener(id)) continue;
        auto snap = s->Snapshot(id);
        if (!snap.ok()) return absl::StrCat("snapshot of ", id, ": ", snap.status().ToString());
        if (std::string err = CheckInvariants(*snap); !err.empty()) {
          return absl::StrCat(s == &pair_.a() ? "A" : "B", " connection ", id, " in ",
                              std::string(tcp::ToString(snap->state)), ": ", err);
        }
      }
    }
    return "";
  }

  std::vector<uint8_t> RandomBytes(size_t n) {
    std::vector<uint8_t> v(n);
    for (uint8_t& b : v) b = static_cast<uint8_t>(rng_.Next());
    return v;
  }

  // A value near `base`: exactly it, off by a little, inside or beyond a window, or anything.
  wire::SeqNum Near(wire::SeqNum base, uint32_t window) {
    switch (rng_.Below(6)) {
      case 0: return base;
      case 1: return base + static_cast<uint32_t>(rng_.Below(7)) - 3;
      case 2: return base + static_cast<uint32_t>(rng_.Below(uint64_t{window} + 2));
      case 3: return base - static_cast<uint32_t>(rng_.Below(70'000));
      case 4: return base + static_cast<uint32_t>(rng_.Below(140'000));
      default: return wire::SeqNum(static_cast<uint32_t>(rng_.Next()));
    }
  }

  // A segment built field by field, aimed at the connection on the receiving stack or at its
  // listener.
  std::vector<uint8_t> Structured(bool to_b) {
    wire::SegmentRepr s;
    std::optional<tcp::TcbSnapshot> snap;
    stack::Stack& to = to_b ? pair_.b() : pair_.a();
    ConnId target = to_b ? server_ : client_;
    if (to_b && rng_.Chance(0.3)) {
      // At the listener, from a handful of made-up clients (so later segments find the
      // embryonic connections their SYNs created).
      s.dst = {StackPair::kAddrB, kServerPort};
      s.src = {wire::Ipv4::Of(10, 0, 0, static_cast<uint8_t>(1 + rng_.Below(4))),
               static_cast<uint16_t>(1000 + rng_.Below(8))};
    } else if (auto sn = to.Snapshot(target); sn.ok()) {
      snap = *sn;
      s.dst = snap->local;
      s.src = snap->remote;
    } else {
      s.dst = {to_b ? StackPair::kAddrB : StackPair::kAddrA, static_cast<uint16_t>(rng_.Next())};
      s.src = {to_b ? StackPair::kAddrA : StackPair::kAddrB, static_cast<uint16_t>(rng_.Next())};
    }
    const wire::SeqNum rcv_nxt(snap ? snap->rcv_nxt : static_cast<uint32_t>(rng_.Next()));
    const wire::SeqNum snd_una(snap ? snap->snd_una : static_cast<uint32_t>(rng_.Next()));
    const uint32_t rcv_wnd = snap ? std::max<uint32_t>(snap->rcv_wnd, 1) : 65535;
    const uint32_t flight = snap ? snap->snd_max - snap->snd_una : 1000;
    s.seq = Near(rcv_nxt, rcv_wnd);
    s.ack = Near(snd_una, flight);
    static constexpr uint8_t kCommon[] = {wire::kSyn, wire::kSyn | wire::kAck, wire::kRst,
                                          wire::kRst | wire::kAck, wire::kFin | wire::kAck,
                                          wire::kAck, wire::kPsh | wire::kAck};
    s.flags = rng_.Chance(0.6) ? kCommon[rng_.Below(std::size(kCommon))]
                               : static_cast<uint8_t>(rng_.Next());
    s.window = rng_.Chance(0.1) ? 0 : static_cast<uint16_t>(rng_.Next());
    s.urgent = rng_.Chance(0.9) ? 0 : static_cast<uint16_t>(rng_.Next());
    if (rng_.Chance(0.2)) s.options.mss = static_cast<uint16_t>(rng_.Next());
    if (rng_.Chance(0.2)) s.options.window_scale = static_cast<uint8_t>(rng_.Below(20));
    s.options.sack_permitted = rng_.Chance(0.2);
    if (rng_.Chance(0.4)) {
      s.options.timestamps = wire::Timestamps{static_cast<uint32_t>(rng_.Next()),
                                              static_cast<uint32_t>(rng_.Next())};
    }
    if (rng_.Chance(0.3)) {
      s.options.sack_count = static_cast<uint8_t>(1 + rng_.Below(wire::kMaxSackBlocks));
      for (int i = 0; i < s.options.sack_count; ++i) {
        wire::SeqNum left = Near(snd_una, flight);
        s.options.sack[i] = {left, left + static_cast<uint32_t>(rng_.Below(5000))};
      }
    }
    std::vector<uint8_t> payload;
    if (rng_.Chance(0.5)) payload = RandomBytes(rng_.Chance(0.8) ? rng_.Below(200) : rng_.Below(3000));
    s.payload = payload;
    std::vector<uint8_t> d;
    wire::Serialize(s, d);
    return d;
  }

  std::vector<uint8_t> Make(bool to_b) {
    const uint64_t pick = rng_.Below(100);
    if (pick < 45 || corpus_.empty()) {
      kind_ = "structured";
      std::vector<uint8_t> d = Structured(to_b);
      if (rng_.Chance(0.1)) d[rng_.Below(d.size())] ^= static_cast<uint8_t>(1u << rng_.Below(8));
      return d;
    }
    if (pick < 55) {
      kind_ = "random bytes";
      std::vector<uint8_t> d = RandomBytes(rng_.Below(120));
      if (d.size() >= 40 && rng_.Chance(0.5)) {
        d[0] = 0x45;
        d[9] = wire::kIpProtoTcp;
        Store16(&d[2], static_cast<uint16_t>(d.size()));
        Store16(&d[6], 0);
        d[32] = static_cast<uint8_t>((5 + rng_.Below(2)) << 4);  // a plausible data offset
        FixChecksums(d);
      }
      return d;
    }
    std::vector<uint8_t> d = corpus_[rng_.Below(corpus_.size())];
    const bool fix = rng_.Chance(0.5);
    if (pick < 80) {
      kind_ = fix ? "bit flips, checksums fixed" : "bit flips";
      for (uint64_t i = 0, n = 1 + rng_.Below(8); i < n; ++i) {
        d[rng_.Below(d.size())] ^= static_cast<uint8_t>(1u << rng_.Below(8));
      }
    } else if (pick < 90) {
      kind_ = fix ? "truncated, lengths and checksums fixed" : "truncated";
      d.resize(rng_.Below(d.size() + 1));
      if (fix && d.size() >= 2 + 2) Store16(&d[2], static_cast<uint16_t>(d.size()));
    } else {
      kind_ = fix ? "random options, checksums fixed" : "random options";
      // Garbage where the options go: a random data offset and random option octets.
      if (d.size() >= wire::kIpv4MinHeaderLen + wire::kTcpMinHeaderLen) {
        const size_t tcp = wire::kIpv4MinHeaderLen;
        const size_t offset_words = 5 + rng_.Below(11);
        std::vector<uint8_t> payload(d.begin() + tcp + (d[tcp + 12] >> 4) * 4, d.end());
        d.resize(tcp + wire::kTcpMinHeaderLen);
        std::vector<uint8_t> opts = RandomBytes(offset_words * 4 - wire::kTcpMinHeaderLen);
        d.insert(d.end(), opts.begin(), opts.end());
        d.insert(d.end(), payload.begin(), payload.end());
        d[tcp + 12] = static_cast<uint8_t>(offset_words << 4);
        Store16(&d[2], static_cast<uint16_t>(d.size()));
      }
    }
    if (fix) FixChecksums(d);
    return d;
  }

  link::SplitMix64 rng_;
  VerdictCounter verdicts_;  // before pair_: the stacks report to it
  StackPair pair_;
  ConnId listener_ = 0, client_ = 0, server_ = 0;
  std::vector<std::vector<uint8_t>> corpus_;
  const char* kind_ = "";
  int reconnects_ = 0;
};

class Fuzz : public ::testing::TestWithParam<int> {};

// RFC 9293 §3.10.7 (every segment, whatever it holds, is either processed or dropped) and
// RFC 1122 §1.2.2 (the robustness principle): 25,000 datagrams per shard, four shards.
TEST_P(Fuzz, MutatedDatagramsNeverBreakInvariants) {
  FuzzRun run(0xF022 + GetParam());
  std::string err;
  EXPECT_NO_THROW(err = run.Run(kDatagramsPerShard));
  EXPECT_EQ(err, "");
  EXPECT_GT(run.corpus_size(), 10u);  // the mutations had real datagrams to work on
  // Every layer saw its share: the codec refused some, the checksum others, and the state
  // machine judged the rest every way it can.
  const auto& b = run.counters(Side::kB);
  EXPECT_GE(b.datagrams_in + run.counters(Side::kA).datagrams_in, uint64_t{kDatagramsPerShard});
  EXPECT_GT(b.malformed, 0u);
  EXPECT_GT(b.bad_checksums, 0u);
  EXPECT_GT(b.no_connection, 0u);
  for (tcp::Verdict v : {tcp::Verdict::kAccepted, tcp::Verdict::kOutOfWindow, tcp::Verdict::kBadAck,
                         tcp::Verdict::kChallengeAcked, tcp::Verdict::kResetConnection,
                         tcp::Verdict::kIgnored}) {
    EXPECT_GT(run.verdicts()[v], 0u) << tcp::ToString(v);
  }
  for (size_t v = 0; v < run.verdicts().counts.size(); ++v) {
    if (run.verdicts().counts[v] > 0) {
      RecordProperty(tcp::ToString(static_cast<tcp::Verdict>(v)),
                     static_cast<int>(run.verdicts().counts[v]));
    }
  }
  EXPECT_NO_THROW(err = run.Liveness());
  EXPECT_EQ(err, "");
  RecordProperty("reconnects", run.reconnects());
}

INSTANTIATE_TEST_SUITE_P(Shards, Fuzz, ::testing::Range(0, kShards));

// A segment with every field at an extreme goes straight to the state machine (no codec in
// between), in every state a connection passes through.
TEST(Fuzz, ExtremeFieldValuesInEveryStateAreHandled) {
  StackPair pair({}, {});
  auto l = pair.b().Listen({StackPair::kAddrB, kServerPort}, pair.now());
  ASSERT_TRUE(l.ok());
  auto c = pair.a().Connect({StackPair::kAddrA, 0}, {StackPair::kAddrB, kServerPort}, pair.now());
  ASSERT_TRUE(c.ok());
  std::vector<uint8_t> big(65000, 0xEE);
  int delivered = 0;
  for (int step = 0; step < 200; ++step) {
    const tcp::Tcb* t = pair.a().Find(*c);
    if (!t) break;
    for (uint32_t seq : {0u, 1u, 0x7fffffffu, 0x80000000u, 0xffffffffu, t->rcv_nxt().raw()}) {
      for (uint8_t flags : {uint8_t{0}, uint8_t{0xff}, uint8_t{wire::kAck}, uint8_t{wire::kSyn | wire::kFin}}) {
        wire::SegmentRepr s;
        s.src = t->remote();
        s.dst = t->local();
        s.seq = wire::SeqNum(seq);
        s.ack = wire::SeqNum(~seq);
        s.flags = flags;
        s.window = 0xffff;
        s.urgent = 0xffff;
        s.options.mss = 0;
        s.options.window_scale = 255;
        s.options.timestamps = wire::Timestamps{0xffffffffu, 0};
        s.options.sack_count = wire::kMaxSackBlocks;
        s.payload = big;
        EXPECT_NO_THROW(pair.a().OnSegment(s, pair.now()));
        ++delivered;
        if (!pair.a().Find(*c)) break;
        auto snap = pair.a().Snapshot(*c);
        ASSERT_TRUE(snap.ok());
        EXPECT_EQ(CheckInvariants(*snap), "") << "in " << tcp::ToString(snap->state);
      }
      if (!pair.a().Find(*c)) break;
    }
    pair.Advance(std::chrono::milliseconds(50));
    if (step == 5) (void)pair.a().Shutdown(*c, pair.now());
  }
  EXPECT_GT(delivered, 0);
}

}  // namespace
}  // namespace tcplab
