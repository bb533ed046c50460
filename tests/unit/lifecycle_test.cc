// The lesson's walkthrough of a TCP connection's life, replayed between two real engine stacks
// joined by the VirtualLink (serialized datagrams, a 10 ms one-way delay, virtual time). Each
// test checks the segments both sides send, with sequence numbers relative to the sender's ISS
// ("seq x", "ack x+1", as the lesson writes them), and the path of states each side takes.
//
// A is the client at 198.18.0.2:40000, B the server at 198.18.0.1:80.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/link/stack_pair.h"
#include "engine/wire/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tcplab {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using link::Side;
using link::StackPair;
using tcp::ConnId;
using tcp::Direction;
using tcp::TcpState;
using tcp::Verdict;
using wire::kAck;
using wire::kFin;
using wire::kPsh;
using wire::kRst;
using wire::kSyn;

constexpr Duration kDelay = std::chrono::milliseconds(10);
constexpr Duration kMsl = std::chrono::seconds(2);
constexpr Duration kLimit = std::chrono::seconds(60);  // bound on any one phase of a test

// What a sink saw, with sequence numbers relative to the ISS of whoever chose them.
struct SegRec {
  uint64_t order;
  Instant at;
  ConnId conn;
  Direction dir;
  Verdict verdict;
  uint8_t flags;
  uint32_t seq, ack;          // absolute
  uint32_t rel_seq, rel_ack;  // seq relative to the sender's ISS, ack to the receiver's
  uint32_t len;
};
struct StateRec {
  uint64_t order;
  Instant at;
  tcp::StateEvent ev;
};
struct TimerRec {
  Instant at;
  tcp::TimerEvent ev;
};

class Recorder : public tcp::EventSink {
 public:
  void OnSegment(Instant now, const tcp::SegmentEvent& ev) override {
    SegRec r{next_++, now, ev.conn, ev.dir, ev.verdict, ev.seg.flags, ev.seg.seq.raw(),
             ev.seg.ack.raw(), 0, 0, ev.payload_len};
    // Ours are relative to our ISS, the peer's to its ISS (our IRS).
    const bool out = ev.dir == Direction::kOut;
    r.rel_seq = static_cast<uint32_t>(ev.seg.seq - (out ? ev.iss : ev.irs));
    r.rel_ack = static_cast<uint32_t>(ev.seg.ack - (out ? ev.irs : ev.iss));
    segs.push_back(r);
  }
  void OnState(Instant now, const tcp::StateEvent& ev) override {
    states.push_back({next_++, now, ev});
  }
  void OnTimer(Instant now, const tcp::TimerEvent& ev) override { timers.push_back({now, ev}); }

  // Segments of one connection in one direction; `verdict` filters when given.
  std::vector<SegRec> Segs(ConnId id, Direction dir,
                           std::optional<Verdict> verdict = std::nullopt) const {
    std::vector<SegRec> out;
    for (const SegRec& s : segs) {
      if (s.conn == id && s.dir == dir && (!verdict || s.verdict == *verdict)) out.push_back(s);
    }
    return out;
  }
  std::vector<SegRec> Sent(ConnId id) const { return Segs(id, Direction::kOut); }
  std::vector<TcpState> Path(ConnId id) const {
    std::vector<TcpState> out;
    for (const StateRec& s : states) {
      if (s.ev.conn == id) out.push_back(s.ev.to);
    }
    return out;
  }
  // When the connection entered `state` (the last time), or nullopt.
  std::optional<Instant> Entered(ConnId id, TcpState state) const {
    std::optional<Instant> at;
    for (const StateRec& s : states) {
      if (s.ev.conn == id && s.ev.to == state) at = s.at;
    }
    return at;
  }
  // The state the connection was in just before event number `order`.
  TcpState StateBefore(ConnId id, uint64_t order) const {
    TcpState st = TcpState::kClosed;
    for (const StateRec& s : states) {
      if (s.ev.conn == id && s.order < order) st = s.ev.to;
    }
    return st;
  }
  std::vector<TimerRec> Timers(ConnId id, tcp::TimerKind kind, tcp::TimerAction action) const {
    std::vector<TimerRec> out;
    for (const TimerRec& t : timers) {
      if (t.ev.conn == id && t.ev.kind == kind && t.ev.action == action) out.push_back(t);
    }
    return out;
  }

  std::vector<SegRec> segs;
  std::vector<StateRec> states;
  std::vector<TimerRec> timers;

 private:
  uint64_t next_ = 0;
};

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class Lifecycle : public ::testing::Test {
 protected:
  static stack::StackConfig Config(uint8_t secret, bool timestamps) {
    stack::StackConfig c;
    c.tcp.delayed_ack = false;  // one ACK per segment, as the lesson draws them
    c.tcp.msl = kMsl;
    c.tcp.timestamps = timestamps;
    c.isn_secret[0] = secret;  // the two sides pick unrelated ISNs
    return c;
  }

  explicit Lifecycle(bool timestamps = true)
      : pair_(Config(1, timestamps), Config(2, timestamps), &rec_a_, &rec_b_) {
    link::Impairment imp;
    imp.delay = kDelay;
    imp.seed = 11;
    EXPECT_TRUE(pair_.link().SetImpairment(Side::kA, imp).ok());
    imp.seed = 12;
    EXPECT_TRUE(pair_.link().SetImpairment(Side::kB, imp).ok());
  }

  stack::Stack& a() { return pair_.a(); }
  stack::Stack& b() { return pair_.b(); }
  Instant now() const { return pair_.now(); }

  static TcpState StateOf(stack::Stack& s, ConnId id) {
    const tcp::Tcb* t = s.Find(id);
    return t ? t->state() : TcpState::kClosed;
  }
  // The connection's state as its event stream tells it (works after the stack forgot it).
  static TcpState LastState(const Recorder& r, ConnId id) {
    std::vector<TcpState> p = r.Path(id);
    return p.empty() ? TcpState::kClosed : p.back();
  }

  // A connects to B:80 from `port`; returns when B accepted. Sets client_ and server_.
  void Connect(uint16_t port = 40000) {
    if (listener_ == 0) {
      auto l = b().Listen({StackPair::kAddrB, 80}, now());
      ASSERT_TRUE(l.ok()) << l.status();
      listener_ = *l;
    }
    auto c = a().Connect({StackPair::kAddrA, port}, {StackPair::kAddrB, 80}, now());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *c;
    absl::StatusOr<ConnId> acc = absl::UnavailableError("not yet");
    ASSERT_TRUE(pair_.RunUntil(
        [&] { return StateOf(a(), client_) == TcpState::kEstablished && (acc = b().Accept(listener_)).ok(); },
        kLimit));
    server_ = *acc;
  }

  void OldDuplicateScenario();

  std::string Drain(stack::Stack& s, ConnId id) {
    std::string out;
    uint8_t buf[4096];
    for (;;) {
      auto n = s.Recv(id, buf, now());
      if (!n.ok() || *n == 0) break;
      out.append(reinterpret_cast<char*>(buf), *n);
    }
    return out;
  }

  // Runs until `want` octets arrived at `to` (reading them as they come); returns them.
  std::string ReceiveAll(stack::Stack& to, ConnId id, size_t want) {
    std::string got;
    pair_.RunUntil([&] { got += Drain(to, id); return got.size() >= want; }, kLimit);
    return got;
  }

  Recorder rec_a_, rec_b_;  // before pair_: the stacks report to them
  StackPair pair_;
  ConnId listener_ = 0, client_ = 0, server_ = 0;
};

// The same two stacks without RFC 7323 timestamps, so that only sequence numbers (and no PAWS)
// stand between an old duplicate and a new connection.
class LifecycleWithoutTimestamps : public Lifecycle {
 protected:
  LifecycleWithoutTimestamps() : Lifecycle(/*timestamps=*/false) {}
};

// RFC 9293 §3.5, Figure 6: SYN <SEQ=x>; SYN,ACK <SEQ=y><ACK=x+1>; ACK <SEQ=x+1><ACK=y+1>.
// The client goes SYN-SENT -> ESTABLISHED, the server LISTEN -> SYN-RECEIVED -> ESTABLISHED.
TEST_F(Lifecycle, ThreeWayHandshake) {
  Connect();
  std::vector<SegRec> a_out = rec_a_.Sent(client_);
  std::vector<SegRec> b_out = rec_b_.Sent(server_);
  ASSERT_EQ(a_out.size(), 2u);
  ASSERT_EQ(b_out.size(), 1u);
  const SegRec& syn = a_out[0];
  const SegRec& syn_ack = b_out[0];
  const SegRec& ack = a_out[1];
  EXPECT_EQ(syn.flags, kSyn);
  EXPECT_EQ(syn.rel_seq, 0u);  // x
  EXPECT_EQ(syn_ack.flags, kSyn | kAck);
  EXPECT_EQ(syn_ack.rel_seq, 0u);  // y
  EXPECT_EQ(syn_ack.ack, syn.seq + 1);  // x+1
  EXPECT_EQ(ack.flags, kAck);
  EXPECT_EQ(ack.seq, syn.seq + 1);      // x+1
  EXPECT_EQ(ack.ack, syn_ack.seq + 1);  // y+1
  EXPECT_EQ(ack.len, 0u);
  EXPECT_NE(syn.seq, syn_ack.seq);  // each side chose its own ISN

  EXPECT_THAT(rec_a_.Path(client_), ElementsAre(TcpState::kSynSent, TcpState::kEstablished));
  EXPECT_THAT(rec_b_.Path(server_), ElementsAre(TcpState::kSynReceived, TcpState::kEstablished));
  EXPECT_EQ(rec_b_.states.front().ev.to, TcpState::kListen);  // the listener, first of all
  // The SYN is in flight for one delay before the server's TCB even exists.
  EXPECT_EQ(*rec_b_.Entered(server_, TcpState::kSynReceived) - syn.at, kDelay);
  EXPECT_EQ(*rec_a_.Entered(client_, TcpState::kEstablished) - syn.at, 2 * kDelay);
}

// RFC 9293 §3.6, Figure 12: FIN <SEQ=x+1>; ACK <ACK=x+2>; FIN <SEQ=y+1><ACK=x+2>;
// ACK <SEQ=x+2><ACK=y+2>. The lesson's diagram gives the client's FIN seq x+2: wrong when no
// data was sent, since the SYN took only x and the ACK of the handshake took no sequence
// number at all; the FIN takes x+1.
TEST_F(Lifecycle, FourWayClose) {
  Connect();
  const size_t a_before = rec_a_.Sent(client_).size();
  const size_t b_before = rec_b_.Sent(server_).size();
  ASSERT_TRUE(a().Close(client_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] {
    return StateOf(b(), server_) == TcpState::kCloseWait && LastState(rec_a_, client_) == TcpState::kFinWait2;
  }, kLimit));
  ASSERT_TRUE(b().Close(server_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return LastState(rec_a_, client_) == TcpState::kClosed; },
                             2 * kMsl + kLimit));

  std::vector<SegRec> a_out = rec_a_.Sent(client_);
  std::vector<SegRec> b_out = rec_b_.Sent(server_);
  a_out.erase(a_out.begin(), a_out.begin() + a_before);
  b_out.erase(b_out.begin(), b_out.begin() + b_before);
  ASSERT_EQ(a_out.size(), 2u);
  ASSERT_EQ(b_out.size(), 2u);
  EXPECT_EQ(a_out[0].flags, kFin | kAck);
  EXPECT_EQ(a_out[0].rel_seq, 1u);  // x+1, not x+2
  EXPECT_EQ(a_out[0].rel_ack, 1u);  // y+1
  EXPECT_EQ(b_out[0].flags, kAck);
  EXPECT_EQ(b_out[0].rel_ack, 2u);  // x+2: the FIN took one sequence number
  EXPECT_EQ(b_out[1].flags, kFin | kAck);
  EXPECT_EQ(b_out[1].rel_seq, 1u);  // y+1
  EXPECT_EQ(b_out[1].rel_ack, 2u);  // x+2
  EXPECT_EQ(a_out[1].flags, kAck);
  EXPECT_EQ(a_out[1].rel_seq, 2u);  // x+2
  EXPECT_EQ(a_out[1].rel_ack, 2u);  // y+2

  EXPECT_THAT(rec_a_.Path(client_),
              ElementsAre(TcpState::kSynSent, TcpState::kEstablished, TcpState::kFinWait1,
                          TcpState::kFinWait2, TcpState::kTimeWait, TcpState::kClosed));
  EXPECT_THAT(rec_b_.Path(server_),
              ElementsAre(TcpState::kSynReceived, TcpState::kEstablished, TcpState::kCloseWait,
                          TcpState::kLastAck, TcpState::kClosed));
  // RFC 9293 §3.4.2: TIME-WAIT lasts exactly 2·MSL.
  EXPECT_EQ(*rec_a_.Entered(client_, TcpState::kClosed) - *rec_a_.Entered(client_, TcpState::kTimeWait),
            2 * kMsl);
  // The server, which closed second, never waits.
  EXPECT_EQ(*rec_b_.Entered(server_, TcpState::kClosed) - b_out[1].at, 2 * kDelay);
}

// RFC 9293 §3.6: a FIN closes one direction only. The client's FIN says "no more from me"; the
// server, in CLOSE-WAIT, keeps sending and the client, in FIN-WAIT-2, keeps receiving.
TEST_F(Lifecycle, HalfCloseServerKeepsSending) {
  Connect();
  ASSERT_TRUE(a().Shutdown(client_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return StateOf(b(), server_) == TcpState::kCloseWait; }, kLimit));
  std::string response(20000, '\0');
  for (size_t i = 0; i < response.size(); ++i) response[i] = static_cast<char>('a' + i % 26);
  auto n = b().Send(server_, Bytes(response), now());
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_EQ(*n, response.size());
  ASSERT_TRUE(b().Close(server_, now()).ok());
  std::string got;
  ASSERT_TRUE(pair_.RunUntil([&] {
    got += Drain(a(), client_);
    return a().Find(client_)->AtEof();
  }, kLimit));
  EXPECT_EQ(got, response);

  // Every data segment of the server left after it had received the client's FIN, and reached
  // a client in FIN-WAIT-2.
  const Instant fin_seen = *rec_b_.Entered(server_, TcpState::kCloseWait);
  std::vector<SegRec> data_in;
  for (const SegRec& s : rec_a_.Segs(client_, Direction::kIn, Verdict::kAccepted)) {
    if (s.len > 0) data_in.push_back(s);
  }
  ASSERT_FALSE(data_in.empty());
  for (const SegRec& s : data_in) {
    EXPECT_GE(s.at, fin_seen + kDelay);
    EXPECT_EQ(rec_a_.StateBefore(client_, s.order), TcpState::kFinWait2) << "data at seq " << s.rel_seq;
  }
  EXPECT_EQ(LastState(rec_a_, client_), TcpState::kTimeWait);
  ASSERT_TRUE(pair_.RunUntil([&] { return LastState(rec_b_, server_) == TcpState::kClosed; }, kLimit));
  EXPECT_THAT(rec_b_.Path(server_),
              ElementsAre(TcpState::kSynReceived, TcpState::kEstablished, TcpState::kCloseWait,
                          TcpState::kLastAck, TcpState::kClosed));
}

// RFC 9293 §3.4.2 and §3.10.7.4 eighth, TIME-WAIT: the first reason for TIME-WAIT. The last
// ACK is lost; the server, in LAST-ACK, retransmits its FIN; the client, still in TIME-WAIT,
// acknowledges it again and restarts its 2·MSL timer; the server closes cleanly.
TEST_F(Lifecycle, LastAckLostPeerRetransmitsFinAndTimeWaitReAcks) {
  Connect();
  const uint32_t server_iss = b().Snapshot(server_)->iss;
  const wire::SeqNum ack_of_server_fin(server_iss + 2);  // SYN and FIN, no data
  int dropped = 0;
  pair_.link().SetFilter(Side::kA, [&](std::span<const uint8_t> d) {
    auto seg = wire::Parse(d);
    if (dropped == 0 && seg.ok() && seg->flags == kAck && seg->payload.empty() &&
        seg->ack == ack_of_server_fin) {
      ++dropped;
      return false;
    }
    return true;
  });
  ASSERT_TRUE(a().Close(client_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return StateOf(b(), server_) == TcpState::kCloseWait; }, kLimit));
  ASSERT_TRUE(b().Close(server_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return LastState(rec_b_, server_) == TcpState::kClosed; }, kLimit));
  EXPECT_EQ(dropped, 1);
  EXPECT_EQ(LastState(rec_a_, client_), TcpState::kTimeWait);

  // The server sent its FIN twice, the second time as a retransmission.
  std::vector<SegRec> fins;
  for (const SegRec& s : rec_b_.Sent(server_)) {
    if (s.flags & kFin) fins.push_back(s);
  }
  ASSERT_EQ(fins.size(), 2u);
  EXPECT_EQ(fins[0].verdict, Verdict::kSent);
  EXPECT_EQ(fins[1].verdict, Verdict::kRetransmitted);
  EXPECT_EQ(fins[1].seq, fins[0].seq);
  EXPECT_THAT(rec_b_.Path(server_),
              ElementsAre(TcpState::kSynReceived, TcpState::kEstablished, TcpState::kCloseWait,
                          TcpState::kLastAck, TcpState::kClosed));
  EXPECT_TRUE(b().Find(server_) == nullptr || b().Find(server_)->error().ok());

  // The client acknowledged both copies, with the same numbers.
  std::vector<SegRec> acks;
  for (const SegRec& s : rec_a_.Sent(client_)) {
    if (s.flags == kAck && s.rel_ack == 2) acks.push_back(s);
  }
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[1].rel_seq, 2u);
  // The 2·MSL timer started on the first FIN and again on the retransmitted one, and the
  // client closes 2·MSL after the second.
  auto starts = rec_a_.Timers(client_, tcp::TimerKind::kTimeWait, tcp::TimerAction::kStarted);
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[1].at, acks[1].at);
  ASSERT_TRUE(pair_.RunUntil([&] { return LastState(rec_a_, client_) == TcpState::kClosed; },
                             2 * kMsl + kLimit));
  EXPECT_EQ(*rec_a_.Entered(client_, TcpState::kClosed) - starts[1].at, 2 * kMsl);
  EXPECT_EQ(pair_.link().counters(Side::kA).dropped, 1u);
}

// RFC 9293 §3.4.2 and §3.4.1 (the second reason for TIME-WAIT, and why ISNs follow a clock):
// a datagram of the first incarnation, replayed while its receiver is in TIME-WAIT and again
// after a new incarnation of the same 4-tuple has started, is never accepted; the new
// connection's data arrive intact.
//
// The replay into TIME-WAIT is answered with an ACK, which reaches a client that has already
// forgotten the connection: its stack answers with a RST whose sequence number is exactly the
// server's RCV.NXT, and that RST ends TIME-WAIT early. This is the "TIME-WAIT assassination"
// of RFC 1337; RFC 9293 §3.10.7.4 still lets a RST close TIME-WAIT (and so does Linux, with
// net.ipv4.tcp_rfc1337=0), so the test only requires that TIME-WAIT is over one way or the other
// before the new incarnation starts.
void Lifecycle::OldDuplicateScenario() {
  Connect();
  const std::string old_data(100, 'O');
  const std::string new_data(100, 'N');
  std::vector<uint8_t> captured;
  pair_.link().SetFilter(Side::kA, [&](std::span<const uint8_t> d) {
    auto seg = wire::Parse(d);
    if (captured.empty() && seg.ok() && !seg->payload.empty()) captured.assign(d.begin(), d.end());
    return true;
  });
  ASSERT_TRUE(a().Send(client_, Bytes(old_data), now()).ok());
  ASSERT_EQ(ReceiveAll(b(), server_, old_data.size()), old_data);
  ASSERT_FALSE(captured.empty());
  pair_.link().SetFilter(Side::kA, nullptr);

  // The server closes first, so it is the server that holds TIME-WAIT.
  ASSERT_TRUE(b().Close(server_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return StateOf(a(), client_) == TcpState::kCloseWait; }, kLimit));
  ASSERT_TRUE(a().Close(client_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return StateOf(b(), server_) == TcpState::kTimeWait; }, kLimit));
  const ConnId old_server = server_;

  // Replay into TIME-WAIT: below RCV.NXT, so not acceptable (or PAWS-rejected): ACKed, dropped.
  size_t seen = rec_b_.Segs(old_server, Direction::kIn).size();
  pair_.link().Send(Side::kA, captured, now());
  pair_.Advance(3 * kDelay);
  std::vector<SegRec> in = rec_b_.Segs(old_server, Direction::kIn);
  ASSERT_GT(in.size(), seen);
  EXPECT_EQ(in[seen].len, old_data.size());
  EXPECT_THAT(in[seen].verdict, ::testing::AnyOf(Verdict::kOutOfWindow, Verdict::kPawsRejected));
  for (size_t i = seen; i < in.size(); ++i) EXPECT_NE(in[i].verdict, Verdict::kAccepted);
  if (const tcp::Tcb* t = b().Find(old_server)) {
    EXPECT_EQ(t->readable(), 0u);
  }

  // A new incarnation of the same 4-tuple, after TIME-WAIT.
  ASSERT_TRUE(pair_.RunUntil([&] { return LastState(rec_b_, old_server) == TcpState::kClosed; },
                             2 * kMsl + kLimit));
  pair_.Advance(std::chrono::milliseconds(100));
  Connect(40000);
  ASSERT_NE(server_, old_server);
  EXPECT_EQ(b().Find(server_)->remote().port, 40000);
  ASSERT_TRUE(a().Send(client_, Bytes(new_data), now()).ok());
  // The old datagram arrives first, then the new data.
  seen = rec_b_.Segs(server_, Direction::kIn).size();
  pair_.link().Send(Side::kA, captured, now());
  EXPECT_EQ(ReceiveAll(b(), server_, new_data.size()), new_data);
  pair_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(Drain(b(), server_), "");  // nothing more came through
  in = rec_b_.Segs(server_, Direction::kIn);
  ASSERT_GT(in.size(), seen);
  bool replay_seen = false;
  for (size_t i = seen; i < in.size(); ++i) {
    if (in[i].len == old_data.size() && in[i].seq == wire::Parse(captured)->seq.raw()) {
      replay_seen = true;
      EXPECT_NE(in[i].verdict, Verdict::kAccepted);
    }
  }
  EXPECT_TRUE(replay_seen);
  EXPECT_EQ(b().Snapshot(server_)->counters.bytes_in, new_data.size());
  EXPECT_EQ(StateOf(b(), server_), TcpState::kEstablished);
  EXPECT_EQ(StateOf(a(), client_), TcpState::kEstablished);
}

// With timestamps (the default), PAWS rejects the old segment (RFC 7323 §5).
TEST_F(Lifecycle, OldDuplicateDuringTimeWaitDoesNotCorruptNewConnection) { OldDuplicateScenario(); }

// Without timestamps, the acceptability test of RFC 9293 §3.10.7.4 does: the old segment lies
// below RCV.NXT in TIME-WAIT, and below the new incarnation's ISN, which the clock has moved on.
TEST_F(LifecycleWithoutTimestamps, OldDuplicateDuringTimeWaitDoesNotCorruptNewConnection) {
  OldDuplicateScenario();
}

// RFC 9293 §3.1 (the checksum) and §3.8.1 / RFC 6298: a corrupted segment fails its checksum
// and is dropped as if lost; the sender's retransmission timer recovers it.
TEST_F(Lifecycle, CorruptedSegmentDroppedAndRecoveredByRetransmission) {
  Connect();
  link::Impairment imp = pair_.link().impairment(Side::kA);
  link::Impairment corrupting = imp;
  corrupting.corrupt = 1.0;
  ASSERT_TRUE(pair_.link().SetImpairment(Side::kA, corrupting).ok());
  const std::string data = "checksummed payload";
  ASSERT_TRUE(a().Send(client_, Bytes(data), now()).ok());
  ASSERT_TRUE(pair_.link().SetImpairment(Side::kA, imp).ok());  // only that one datagram
  EXPECT_EQ(pair_.link().counters(Side::kA).corrupted, 1u);

  EXPECT_EQ(ReceiveAll(b(), server_, data.size()), data);
  EXPECT_EQ(b().counters().bad_checksums + b().counters().malformed, 1u);
  EXPECT_GE(a().Snapshot(client_)->counters.retransmissions, 1u);
  EXPECT_EQ(b().Snapshot(server_)->counters.bytes_in, data.size());
  // The corrupted copy was not acknowledged: the first ACK for the data came after the
  // retransmission.
  std::vector<SegRec> retx = rec_a_.Segs(client_, Direction::kOut, Verdict::kRetransmitted);
  ASSERT_FALSE(retx.empty());
  for (const SegRec& s : rec_b_.Sent(server_)) {
    if (s.rel_ack == 1 + data.size()) {
      EXPECT_GT(s.at, retx.front().at);
    }
  }
}

// RFC 9293 §3.5, Figure 7: both sides open actively at the same time. Each SYN meets a TCB in
// SYN-SENT, which goes to SYN-RECEIVED and answers SYN,ACK; each SYN,ACK completes the other.
TEST_F(Lifecycle, SimultaneousOpen) {
  auto ca = a().Connect({StackPair::kAddrA, 5000}, {StackPair::kAddrB, 6000}, now());
  auto cb = b().Connect({StackPair::kAddrB, 6000}, {StackPair::kAddrA, 5000}, now());
  ASSERT_TRUE(ca.ok() && cb.ok());
  ASSERT_TRUE(pair_.RunUntil([&] {
    return StateOf(a(), *ca) == TcpState::kEstablished && StateOf(b(), *cb) == TcpState::kEstablished;
  }, kLimit));
  for (auto [rec, id] : {std::pair{&rec_a_, *ca}, std::pair{&rec_b_, *cb}}) {
    EXPECT_THAT(rec->Path(id), ElementsAre(TcpState::kSynSent, TcpState::kSynReceived,
                                           TcpState::kEstablished));
    std::vector<SegRec> out = rec->Sent(id);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].flags, kSyn);
    EXPECT_EQ(out[1].flags, kSyn | kAck);
    EXPECT_EQ(out[1].rel_seq, 0u);  // the same SYN again, now with an ACK
    EXPECT_EQ(out[1].rel_ack, 1u);  // of the peer's SYN
    // The peer's SYN,ACK repeats its SYN, below RCV.NXT: it is ACKed (§3.10.7.4 first).
    EXPECT_EQ(out[2].flags, kAck);
    EXPECT_EQ(out[2].rel_seq, 1u);
    EXPECT_EQ(out[2].rel_ack, 1u);
  }
  // Data flows both ways afterwards.
  ASSERT_TRUE(a().Send(*ca, Bytes("from a"), now()).ok());
  ASSERT_TRUE(b().Send(*cb, Bytes("from b"), now()).ok());
  EXPECT_EQ(ReceiveAll(b(), *cb, 6), "from a");
  EXPECT_EQ(ReceiveAll(a(), *ca, 6), "from b");
}

// RFC 9293 §3.6, Figure 13: both sides close at the same time. Each FIN reaches a TCB in
// FIN-WAIT-1 whose own FIN is not yet acknowledged: CLOSING, then TIME-WAIT on the ACK. Both
// sides wait 2·MSL.
TEST_F(Lifecycle, SimultaneousClose) {
  Connect();
  ASSERT_TRUE(a().Shutdown(client_, now()).ok());
  ASSERT_TRUE(b().Shutdown(server_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] {
    return StateOf(a(), client_) == TcpState::kClosed && StateOf(b(), server_) == TcpState::kClosed;
  }, 2 * kMsl + kLimit));
  EXPECT_THAT(rec_a_.Path(client_),
              ElementsAre(TcpState::kSynSent, TcpState::kEstablished, TcpState::kFinWait1,
                          TcpState::kClosing, TcpState::kTimeWait, TcpState::kClosed));
  EXPECT_THAT(rec_b_.Path(server_),
              ElementsAre(TcpState::kSynReceived, TcpState::kEstablished, TcpState::kFinWait1,
                          TcpState::kClosing, TcpState::kTimeWait, TcpState::kClosed));
  for (auto [rec, id] : {std::pair{&rec_a_, client_}, std::pair{&rec_b_, server_}}) {
    std::vector<SegRec> out = rec->Sent(id);
    ASSERT_GE(out.size(), 2u);
    const SegRec& fin = out[out.size() - 2];
    const SegRec& ack = out.back();
    EXPECT_EQ(fin.flags, kFin | kAck);
    EXPECT_EQ(fin.rel_seq, 1u);
    EXPECT_EQ(fin.rel_ack, 1u);  // the peer's FIN had not arrived yet
    EXPECT_EQ(ack.flags, kAck);
    EXPECT_EQ(ack.rel_seq, 2u);
    EXPECT_EQ(ack.rel_ack, 2u);
    EXPECT_EQ(*rec->Entered(id, TcpState::kClosed) - *rec->Entered(id, TcpState::kTimeWait), 2 * kMsl);
    EXPECT_TRUE(rec->Segs(id, Direction::kOut, Verdict::kRetransmitted).empty());
  }
}

// RFC 9293 §3.10.5 and §3.10.7.4 second: the client aborts; its RST carries SND.NXT, which is
// exactly the server's RCV.NXT, so the server resets: ECONNRESET.
TEST_F(Lifecycle, ClientAbortResetsServer) {
  Connect();
  ASSERT_TRUE(a().Abort(client_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return StateOf(b(), server_) == TcpState::kClosed; }, kLimit));
  EXPECT_EQ(rec_a_.Sent(client_).back().flags, kRst);
  EXPECT_EQ(rec_b_.Segs(server_, Direction::kIn).back().verdict, Verdict::kResetConnection);
  uint8_t buf[8];
  auto n = b().Recv(server_, buf, now());
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(n.status().message()), HasSubstr("ECONNRESET"));
}

// RFC 9293 §3.10.5 and §3.10.7.4 second, the other way round, with the client half-closed in
// FIN-WAIT-2: a RST there resets too.
TEST_F(Lifecycle, ServerAbortResetsHalfClosedClient) {
  Connect();
  ASSERT_TRUE(a().Shutdown(client_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return StateOf(a(), client_) == TcpState::kFinWait2; }, kLimit));
  ASSERT_TRUE(b().Abort(server_, now()).ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return StateOf(a(), client_) == TcpState::kClosed; }, kLimit));
  EXPECT_EQ(rec_b_.Sent(server_).back().flags, kRst);
  EXPECT_EQ(rec_b_.Sent(server_).back().rel_seq, 1u);  // SND.NXT: after the SYN
  const absl::Status& err = a().Find(client_)->error();
  EXPECT_EQ(err.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(err.message()), HasSubstr("ECONNRESET"));
  EXPECT_THAT(rec_a_.Path(client_),
              ElementsAre(TcpState::kSynSent, TcpState::kEstablished, TcpState::kFinWait1,
                          TcpState::kFinWait2, TcpState::kClosed));
}

// RFC 9293 §3.10.7.1 and §3.10.7.3: a SYN to a port nobody listens on gets
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, and the client gives up: ECONNREFUSED.
TEST_F(Lifecycle, ConnectToClosedPortIsRefused) {
  auto c = a().Connect({StackPair::kAddrA, 0}, {StackPair::kAddrB, 81}, now());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(pair_.RunUntil([&] { return StateOf(a(), *c) == TcpState::kClosed; }, kLimit));
  std::vector<SegRec> syn = rec_a_.Sent(*c);
  ASSERT_EQ(syn.size(), 1u);
  std::vector<SegRec> rst = rec_b_.Segs(0, Direction::kOut);
  ASSERT_EQ(rst.size(), 1u);
  EXPECT_EQ(rst[0].flags, kRst | kAck);
  EXPECT_EQ(rst[0].ack, syn[0].seq + 1);
  auto n = a().Send(*c, Bytes("x"), now());
  ASSERT_FALSE(n.ok());
  EXPECT_THAT(std::string(n.status().message()), HasSubstr("ECONNREFUSED"));
  EXPECT_THAT(rec_a_.Path(*c), ElementsAre(TcpState::kSynSent, TcpState::kClosed));
}

}  // namespace
}  // namespace tcplab
