// engine/stack/Stack driven directly: segments in through Stack::OnSegment (or raw datagrams
// through OnDatagram), datagrams out captured and parsed back with wire::Parse. Covers what
// the stack owns rather than the TCBs: RSTs for closed ports (RFC 9293 §3.10.7.1), LISTEN
// (§3.10.7.2) with its backlog and accept queue, ephemeral ports and 4-tuple conflicts,
// datagram validation, reaping, and TIME-WAIT reuse (RFC 9293 §3.10.7.4, RFC 6191).
#include "engine/stack/stack.h"
#include "engine/tcp/socket_error.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/stack/isn.h"
#include "engine/wire/codec.h"

namespace tcplab::stack {
namespace {

// The errno a socket user would see, as the payload the server turns into metadata.
std::string ErrnoOf(const absl::Status& s) {
  auto p = s.GetPayload(tcp::kErrnoPayload);
  return p ? std::string(*p) : "(none)";
}

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using tcp::TcpState;
using tcp::Verdict;
using wire::Endpoint;
using wire::Ipv4;
using wire::kAck;
using wire::kFin;
using wire::kRst;
using wire::kSyn;
using wire::SegmentRepr;
using wire::SeqNum;

constexpr Ipv4 kLocalIp = Ipv4::Of(198, 18, 0, 1);
constexpr Ipv4 kRemoteIp = Ipv4::Of(198, 18, 0, 2);
const Endpoint kServer{kLocalIp, 80};
const Endpoint kClient{kRemoteIp, 40000};

StackConfig TestStackConfig() {
  StackConfig c;
  c.tcp.delayed_ack = false;
  c.tcp.nagle = false;
  c.tcp.window_scaling = false;
  c.tcp.timestamps = false;
  c.tcp.sack = false;
  c.tcp.msl = 1s;
  for (size_t i = 0; i < c.isn_secret.size(); ++i) c.isn_secret[i] = static_cast<uint8_t>(0xA0 + i);
  return c;
}

// One Stack, its output captured, its events recorded. "We" are the stack at 198.18.0.1; the
// segments handed in come from peers at 198.18.0.2.
class Net : public tcp::EventSink {
 public:
  explicit Net(StackConfig cfg = TestStackConfig())
      : stack_(std::move(cfg), [this](std::span<const uint8_t> d) { Capture(d); }, this) {}

  Stack& stack() { return stack_; }
  Instant now() const { return now_; }

  // A segment from `from` to `to` (the stack's side).
  SegmentRepr In(uint8_t flags, uint32_t seq, uint32_t ack = 0, std::string_view data = {},
                 Endpoint from = kClient, Endpoint to = kServer) {
    SegmentRepr s;
    s.src = from;
    s.dst = to;
    s.flags = flags;
    s.seq = SeqNum(seq);
    s.ack = (flags & kAck) ? SeqNum(ack) : SeqNum(0);
    s.window = 65535;
    payloads_.emplace_back(data);
    const std::string& p = payloads_.back();
    s.payload = {reinterpret_cast<const uint8_t*>(p.data()), p.size()};
    return s;
  }

  void Deliver(const SegmentRepr& s) { stack_.OnSegment(s, now_); }

  void Advance(Duration d) {
    Instant end = now_ + d;
    for (Instant t = stack_.NextDeadline(); t <= end; t = stack_.NextDeadline()) {
      now_ = std::max(now_, t);
      stack_.OnTick(now_);
    }
    now_ = end;
  }

  // The oldest datagram the stack sent, parsed back (checksums verified).
  SegmentRepr Pop() {
    if (out_.empty()) {
      ADD_FAILURE() << "expected a datagram from the stack, but none was sent";
      return SegmentRepr{};
    }
    SegmentRepr s = out_.front();
    out_.pop_front();
    return s;
  }
  size_t SentCount() const { return out_.size(); }
  void DiscardSent() { out_.clear(); }

  // Runs a passive handshake from `from` with the peer's ISS `peer_iss`; returns the id of the
  // connection the listener made. `complete` false leaves it in SYN-RECEIVED.
  tcp::ConnId Handshake(Endpoint from, uint32_t peer_iss, bool complete = true) {
    Deliver(In(kSyn, peer_iss, 0, {}, from));
    SegmentRepr synack = Pop();
    EXPECT_EQ(synack.flags, kSyn | kAck) << synack.ToString();
    tcp::ConnId id = last_conn_;
    if (complete) Deliver(In(kAck, peer_iss + 1, synack.seq.raw() + 1, {}, from));
    DiscardSent();
    iss_[id] = synack.seq.raw();
    return id;
  }
  uint32_t IssOf(tcp::ConnId id) { return iss_[id]; }

  const std::vector<tcp::StateEvent>& states() const { return states_; }
  const std::vector<tcp::SegmentEvent>& segments() const { return segs_; }
  Verdict LastInVerdict() const {
    for (auto it = segs_.rbegin(); it != segs_.rend(); ++it) {
      if (it->dir == tcp::Direction::kIn) return it->verdict;
    }
    return Verdict::kSent;  // none: a value no input segment gets
  }

 private:
  void Capture(std::span<const uint8_t> d) {
    raw_.emplace_back(d.begin(), d.end());
    absl::StatusOr<SegmentRepr> s = wire::Parse(raw_.back());
    if (!s.ok()) {
      ADD_FAILURE() << "the stack sent an unparseable datagram: " << s.status();
      return;
    }
    out_.push_back(*s);
  }
  void OnSegment(Instant, const tcp::SegmentEvent& ev) override { segs_.push_back(ev); }
  void OnState(Instant, const tcp::StateEvent& ev) override {
    states_.push_back(ev);
    if (ev.to == TcpState::kSynReceived || ev.to == TcpState::kSynSent) last_conn_ = ev.conn;
  }

  Instant now_ = InstantFromNanos(1'000'000'000);
  std::deque<std::string> payloads_;
  std::deque<std::vector<uint8_t>> raw_;
  std::deque<SegmentRepr> out_;
  std::vector<tcp::StateEvent> states_;
  std::vector<tcp::SegmentEvent> segs_;
  std::map<tcp::ConnId, uint32_t> iss_;
  tcp::ConnId last_conn_ = 0;
  Stack stack_;  // last: its output and events reach the members above
};

// =============================================================================================
// No connection (RFC 9293 §3.10.7.1: "If the state is CLOSED (i.e., TCB does not exist)")

// "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>".
TEST(ClosedPort, SegmentWithAckGetsRstWithSeqSegAck) {
  Net n;
  n.Deliver(n.In(kAck, 100, 7777, "data"));
  SegmentRepr rst = n.Pop();
  EXPECT_EQ(rst.flags, kRst);
  EXPECT_EQ(rst.seq, SeqNum(7777));
  EXPECT_EQ(rst.src, kServer);
  EXPECT_EQ(rst.dst, kClient);
  EXPECT_EQ(n.SentCount(), 0u);
  EXPECT_EQ(n.stack().counters().no_connection, 1u);
  EXPECT_EQ(n.stack().counters().resets_sent, 1u);
  EXPECT_EQ(n.LastInVerdict(), Verdict::kNoConnection);
}

// "If the ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
// <CTL=RST,ACK>" — SEG.LEN counts the SYN.
TEST(ClosedPort, SynGetsRstAckWithAckSegSeqPlusOne) {
  Net n;
  n.Deliver(n.In(kSyn, 100));
  SegmentRepr rst = n.Pop();
  EXPECT_EQ(rst.flags, kRst | kAck);
  EXPECT_EQ(rst.seq, SeqNum(0));
  EXPECT_EQ(rst.ack, SeqNum(101));
}

// The same, where SEG.LEN counts the data and the FIN: 4 octets + FIN = 5.
TEST(ClosedPort, SegmentWithoutAckGetsAckCoveringDataAndFin) {
  Net n;
  n.Deliver(n.In(kFin, 100, 0, "abcd"));
  SegmentRepr rst = n.Pop();
  EXPECT_EQ(rst.flags, kRst | kAck);
  EXPECT_EQ(rst.seq, SeqNum(0));
  EXPECT_EQ(rst.ack, SeqNum(105));
}

// "An incoming segment containing a RST is discarded."
TEST(ClosedPort, RstIsNotAnswered) {
  Net n;
  n.Deliver(n.In(kRst | kAck, 100, 200));
  n.Deliver(n.In(kRst, 100));
  EXPECT_EQ(n.SentCount(), 0u);
  EXPECT_EQ(n.stack().counters().resets_sent, 0u);
  EXPECT_EQ(n.stack().counters().no_connection, 2u);
}

// =============================================================================================
// LISTEN (RFC 9293 §3.10.7.2)

// "First, check for a RST: An incoming RST segment in LISTEN state SHOULD be ignored."
TEST(Listen, RstIsIgnored) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now()).ok());
  n.Deliver(n.In(kRst, 100));
  EXPECT_EQ(n.SentCount(), 0u);
  EXPECT_EQ(n.LastInVerdict(), Verdict::kIgnored);
  EXPECT_EQ(n.stack().connection_count(), 0u);
}

// "Second, check for an ACK: Any acknowledgment is bad if it arrives on a connection still
// in the LISTEN state. An acceptable reset segment should be formed ... <SEQ=SEG.ACK>
// <CTL=RST>" — a SYN+ACK included: the ACK check comes first.
TEST(Listen, AckGetsRstWithSeqSegAck) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now()).ok());
  n.Deliver(n.In(kSyn | kAck, 100, 4242));
  SegmentRepr rst = n.Pop();
  EXPECT_EQ(rst.flags, kRst);
  EXPECT_EQ(rst.seq, SeqNum(4242));
  EXPECT_EQ(n.stack().connection_count(), 0u);
}

// "Third, check for a SYN: ... <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> is sent ... the connection
// state should be changed to SYN-RECEIVED"; the ISS is RFC 6528's, from the stack's secret.
TEST(Listen, SynCreatesASynReceivedConnectionWithRfc6528Iss) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now()).ok());
  n.Deliver(n.In(kSyn, 100));
  SegmentRepr synack = n.Pop();
  EXPECT_EQ(synack.flags, kSyn | kAck);
  EXPECT_EQ(synack.ack, SeqNum(101));
  EXPECT_EQ(synack.src, kServer);
  EXPECT_EQ(synack.dst, kClient);
  IsnGenerator isn(TestStackConfig().isn_secret);
  EXPECT_EQ(synack.seq, isn.Isn(kServer, kClient, n.now()));
  ASSERT_EQ(n.stack().connection_count(), 1u);
  const tcp::Tcb* tcb = n.stack().Find(n.states().back().conn);
  ASSERT_NE(tcb, nullptr);
  EXPECT_EQ(tcb->state(), TcpState::kSynReceived);
}

// "Fourth, other data or control: ... drop the segment and return."
TEST(Listen, SegmentWithoutSynRstOrAckIsIgnored) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now()).ok());
  n.Deliver(n.In(kFin, 100, 0, "data"));
  EXPECT_EQ(n.SentCount(), 0u);
  EXPECT_EQ(n.LastInVerdict(), Verdict::kIgnored);
  EXPECT_EQ(n.stack().connection_count(), 0u);
}

// A listener on 0.0.0.0 takes SYNs for any local address.
TEST(Listen, WildcardListenerTakesSynsForAnyLocalAddress) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(Endpoint{Ipv4{}, 80}, n.now()).ok());
  n.Deliver(n.In(kSyn, 100));
  EXPECT_EQ(n.Pop().flags, kSyn | kAck);
  EXPECT_EQ(n.stack().connection_count(), 1u);
}

// Like Linux, a SYN that finds the backlog full is dropped without a reply: the client's SYN
// retransmission may find room later.
TEST(Listen, SynBeyondTheBacklogIsDroppedAndCounted) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now(), /*backlog=*/1).ok());
  n.Handshake(Endpoint{kRemoteIp, 1001}, 100, /*complete=*/false);
  n.Deliver(n.In(kSyn, 200, 0, {}, Endpoint{kRemoteIp, 1002}));
  EXPECT_EQ(n.SentCount(), 0u);
  EXPECT_EQ(n.stack().counters().listen_overflows, 1u);
  EXPECT_EQ(n.LastInVerdict(), Verdict::kListenOverflow);
  EXPECT_EQ(n.stack().connection_count(), 1u);
}

// RFC 9293 §3.10.7.4 second: a RST returns a passive SYN-RECEIVED connection to LISTEN; the
// stack forgets it and its backlog slot is free again.
TEST(Listen, RstInSynReceivedFreesTheBacklogSlot) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now(), /*backlog=*/1).ok());
  n.Handshake(Endpoint{kRemoteIp, 1001}, 100, /*complete=*/false);
  n.Deliver(n.In(kRst, 101, 0, {}, Endpoint{kRemoteIp, 1001}));
  EXPECT_EQ(n.stack().connection_count(), 0u);
  n.Deliver(n.In(kSyn, 200, 0, {}, Endpoint{kRemoteIp, 1002}));
  EXPECT_EQ(n.Pop().flags, kSyn | kAck);
  EXPECT_EQ(n.stack().counters().listen_overflows, 0u);
}

// listen(2) on an address already listening fails with EADDRINUSE.
TEST(Listen, SecondListenOnTheSameEndpointIsEaddrinuse) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now()).ok());
  absl::StatusOr<tcp::ConnId> again = n.stack().Listen(kServer, n.now());
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(again.status()));
  EXPECT_THAT(again.status().message(), HasSubstr("EADDRINUSE"));
  EXPECT_EQ(ErrnoOf(again.status()), "EADDRINUSE");
}

// Closing a listener resets the connections nobody accepted, established or not, as close(2)
// of a listening socket does on Linux; the port is closed afterwards (§3.10.7.1).
TEST(Listen, ClosingTheListenerResetsUnacceptedConnections) {
  Net n;
  absl::StatusOr<tcp::ConnId> l = n.stack().Listen(kServer, n.now());
  ASSERT_TRUE(l.ok());
  n.Handshake(Endpoint{kRemoteIp, 1001}, 100);                     // ESTABLISHED, queued
  n.Handshake(Endpoint{kRemoteIp, 1002}, 200, /*complete=*/false);  // SYN-RECEIVED
  ASSERT_TRUE(n.stack().Close(*l, n.now()).ok());
  std::set<uint16_t> reset_ports;
  while (n.SentCount() > 0) {
    SegmentRepr s = n.Pop();
    EXPECT_TRUE(s.flags & kRst) << s.ToString();
    reset_ports.insert(s.dst.port);
  }
  EXPECT_EQ(reset_ports, (std::set<uint16_t>{1001, 1002}));
  EXPECT_EQ(n.stack().connection_count(), 0u);
  n.Deliver(n.In(kSyn, 300, 0, {}, Endpoint{kRemoteIp, 1003}));
  EXPECT_EQ(n.Pop().flags, kRst | kAck);
}

// =============================================================================================
// Accept

// accept(2) hands out connections in the order their handshakes completed.
TEST(Accept, ReturnsConnectionsInTheOrderTheyWereEstablished) {
  Net n;
  absl::StatusOr<tcp::ConnId> l = n.stack().Listen(kServer, n.now());
  ASSERT_TRUE(l.ok());
  const Endpoint a{kRemoteIp, 1001}, b{kRemoteIp, 1002};
  tcp::ConnId ida = n.Handshake(a, 100, /*complete=*/false);
  tcp::ConnId idb = n.Handshake(b, 200, /*complete=*/false);
  n.Deliver(n.In(kAck, 201, n.IssOf(idb) + 1, {}, b));  // b completes first
  n.Deliver(n.In(kAck, 101, n.IssOf(ida) + 1, {}, a));
  absl::StatusOr<tcp::ConnId> first = n.stack().Accept(*l);
  absl::StatusOr<tcp::ConnId> second = n.stack().Accept(*l);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, idb);
  EXPECT_EQ(*second, ida);
}

// With nothing established, accept is "would block": EAGAIN. SYN-RECEIVED does not count.
TEST(Accept, NothingEstablishedIsEagain) {
  Net n;
  absl::StatusOr<tcp::ConnId> l = n.stack().Listen(kServer, n.now());
  ASSERT_TRUE(l.ok());
  n.Handshake(Endpoint{kRemoteIp, 1001}, 100, /*complete=*/false);
  absl::StatusOr<tcp::ConnId> c = n.stack().Accept(*l);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::IsUnavailable(c.status()));
  EXPECT_THAT(c.status().message(), HasSubstr("EAGAIN"));
  EXPECT_EQ(ErrnoOf(c.status()), "EAGAIN");
}

// An accepted connection leaves the queue: the next accept has nothing.
TEST(Accept, AcceptedConnectionLeavesTheQueue) {
  Net n;
  absl::StatusOr<tcp::ConnId> l = n.stack().Listen(kServer, n.now());
  ASSERT_TRUE(l.ok());
  tcp::ConnId id = n.Handshake(kClient, 100);
  absl::StatusOr<tcp::ConnId> c = n.stack().Accept(*l);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, id);
  EXPECT_EQ(n.stack().Find(id)->state(), TcpState::kEstablished);
  EXPECT_TRUE(absl::IsUnavailable(n.stack().Accept(*l).status()));
}

// =============================================================================================
// Connect and ephemeral ports

// Port 0 picks ports from the ephemeral range in turn; when none is free towards the remote
// address, connect fails with EADDRNOTAVAIL.
TEST(Connect, PicksEphemeralPortsFromTheRangeUntilExhausted) {
  StackConfig cfg = TestStackConfig();
  cfg.ephemeral_first = 50000;
  cfg.ephemeral_last = 50001;
  Net n(cfg);
  const Endpoint any_port{kLocalIp, 0};
  const Endpoint remote{kRemoteIp, 80};
  ASSERT_TRUE(n.stack().Connect(any_port, remote, n.now()).ok());
  EXPECT_EQ(n.Pop().src.port, 50000);
  ASSERT_TRUE(n.stack().Connect(any_port, remote, n.now()).ok());
  EXPECT_EQ(n.Pop().src.port, 50001);
  absl::StatusOr<tcp::ConnId> third = n.stack().Connect(any_port, remote, n.now());
  ASSERT_FALSE(third.ok());
  EXPECT_THAT(third.status().message(), HasSubstr("EADDRNOTAVAIL"));
  EXPECT_EQ(ErrnoOf(third.status()), "EADDRNOTAVAIL");
}

// The ephemeral search skips ports whose 4-tuple is taken.
TEST(Connect, EphemeralSearchSkipsPortsInUse) {
  StackConfig cfg = TestStackConfig();
  cfg.ephemeral_first = 50000;
  cfg.ephemeral_last = 50010;
  Net n(cfg);
  const Endpoint remote{kRemoteIp, 80};
  ASSERT_TRUE(n.stack().Connect(Endpoint{kLocalIp, 50000}, remote, n.now()).ok());
  n.DiscardSent();
  ASSERT_TRUE(n.stack().Connect(Endpoint{kLocalIp, 0}, remote, n.now()).ok());
  EXPECT_EQ(n.Pop().src.port, 50001);
}

// A second connection with the same 4-tuple fails with EADDRINUSE, naming the first.
TEST(Connect, DuplicateFourTupleIsEaddrinuse) {
  Net n;
  const Endpoint local{kLocalIp, 5555};
  const Endpoint remote{kRemoteIp, 80};
  absl::StatusOr<tcp::ConnId> first = n.stack().Connect(local, remote, n.now());
  ASSERT_TRUE(first.ok());
  absl::StatusOr<tcp::ConnId> second = n.stack().Connect(local, remote, n.now());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(second.status()));
  EXPECT_THAT(second.status().message(), HasSubstr("EADDRINUSE"));
  EXPECT_EQ(ErrnoOf(second.status()), "EADDRINUSE");
  EXPECT_THAT(second.status().message(), HasSubstr(std::to_string(*first)));
}

// RFC 6528 §3: the active opener's ISS is M + F(4-tuple, secret) too.
TEST(Connect, SynCarriesTheRfc6528Iss) {
  Net n;
  const Endpoint local{kLocalIp, 5555};
  const Endpoint remote{kRemoteIp, 80};
  ASSERT_TRUE(n.stack().Connect(local, remote, n.now()).ok());
  SegmentRepr syn = n.Pop();
  EXPECT_EQ(syn.flags, kSyn);
  EXPECT_EQ(syn.seq, IsnGenerator(TestStackConfig().isn_secret).Isn(local, remote, n.now()));
}

// =============================================================================================
// Ids

// Every user call on an id that does not exist fails with NOT_FOUND and names the id.
TEST(Ids, UnknownIdIsNotFoundAndNamed) {
  Net n;
  const tcp::ConnId bogus = 4242;
  uint8_t buf[8] = {};
  std::vector<absl::Status> results = {
      n.stack().Send(bogus, buf, n.now()).status(),
      n.stack().Recv(bogus, buf, n.now()).status(),
      n.stack().Shutdown(bogus, n.now()),
      n.stack().Close(bogus, n.now()),
      n.stack().Abort(bogus, n.now()),
      n.stack().Snapshot(bogus).status(),
      n.stack().Accept(bogus).status(),
  };
  for (const absl::Status& s : results) {
    EXPECT_TRUE(absl::IsNotFound(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr("4242"));
  }
}

// A listener has no data stream: SEND on it is refused, and says it is a listener.
TEST(Ids, SendOnAListenerIsRefused) {
  Net n;
  absl::StatusOr<tcp::ConnId> l = n.stack().Listen(kServer, n.now());
  ASSERT_TRUE(l.ok());
  uint8_t buf[1] = {'x'};
  absl::StatusOr<size_t> r = n.stack().Send(*l, buf, n.now());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("listener"));
}

// =============================================================================================
// Datagrams

// RFC 9293 §3.1: a segment with a bad checksum is dropped — no reply, no connection — and
// counted, with the verdict kBadChecksum.
TEST(Datagram, BadChecksumIsCountedAndDropped) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now()).ok());
  std::vector<uint8_t> d;
  wire::Serialize(n.In(kSyn, 100), d);
  d[wire::kIpv4MinHeaderLen + 16] ^= 0x5a;  // the TCP checksum field
  n.stack().OnDatagram(d, n.now());
  EXPECT_EQ(n.stack().counters().datagrams_in, 1u);
  EXPECT_EQ(n.stack().counters().bad_checksums, 1u);
  EXPECT_EQ(n.LastInVerdict(), Verdict::kBadChecksum);
  EXPECT_EQ(n.SentCount(), 0u);
  EXPECT_EQ(n.stack().connection_count(), 0u);
}

// A bad checksum on a segment of an existing connection is counted on that connection too,
// and does not touch its state.
TEST(Datagram, BadChecksumIsCountedOnTheConnectionItNames) {
  Net n;
  ASSERT_TRUE(n.stack().Listen(kServer, n.now()).ok());
  tcp::ConnId id = n.Handshake(kClient, 100);
  std::vector<uint8_t> d;
  wire::Serialize(n.In(kRst | kAck, 101, n.IssOf(id) + 1), d);
  d[d.size() - 1] ^= 0x01;  // last octet of the TCP header (urgent pointer)
  n.stack().OnDatagram(d, n.now());
  EXPECT_EQ(n.stack().Find(id)->counters().bad_checksums, 1u);
  EXPECT_EQ(n.stack().Find(id)->state(), TcpState::kEstablished);
}

// A datagram that is not IPv4+TCP is counted as malformed and dropped.
TEST(Datagram, MalformedDatagramIsCountedAndDropped) {
  Net n;
  const std::vector<uint8_t> junk = {0x45, 0x00, 0x00};
  n.stack().OnDatagram(junk, n.now());
  EXPECT_EQ(n.stack().counters().malformed, 1u);
  EXPECT_EQ(n.stack().counters().bad_checksums, 0u);
  EXPECT_EQ(n.LastInVerdict(), Verdict::kMalformed);
  EXPECT_EQ(n.SentCount(), 0u);
}

// A good datagram goes the same way as a parsed segment: here to the closed-port RST.
TEST(Datagram, ValidDatagramIsProcessed) {
  Net n;
  std::vector<uint8_t> d;
  wire::Serialize(n.In(kSyn, 100), d);
  n.stack().OnDatagram(d, n.now());
  SegmentRepr rst = n.Pop();
  EXPECT_EQ(rst.flags, kRst | kAck);
  EXPECT_EQ(rst.ack, SeqNum(101));
  EXPECT_EQ(n.stack().counters().datagrams_out, 1u);
}

// =============================================================================================
// Reaping

// A connection the user closed is forgotten once it is CLOSED: here CLOSE in SYN-SENT.
TEST(Reap, ConnectionIsForgottenWhenClosedByTheUser) {
  Net n;
  absl::StatusOr<tcp::ConnId> c = n.stack().Connect(Endpoint{kLocalIp, 5555}, kServer, n.now());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(n.stack().Close(*c, n.now()).ok());
  EXPECT_EQ(n.stack().Find(*c), nullptr);
  EXPECT_EQ(n.stack().connection_count(), 0u);
  EXPECT_TRUE(absl::IsNotFound(n.stack().Snapshot(*c).status()));
}

// A connection that ended on its own (refused) stays until the user has seen why: the
// error is still readable, and Close then forgets it.
TEST(Reap, ConnectionEndedByThePeerStaysUntilTheUserCloses) {
  Net n;
  const Endpoint local{kLocalIp, 5555};
  absl::StatusOr<tcp::ConnId> c = n.stack().Connect(local, kServer, n.now());
  ASSERT_TRUE(c.ok());
  SegmentRepr syn = n.Pop();
  n.Deliver(n.In(kRst | kAck, 0, syn.seq.raw() + 1, {}, kServer, local));
  absl::StatusOr<tcp::TcbSnapshot> s = n.stack().Snapshot(*c);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, TcpState::kClosed);
  uint8_t buf[1] = {'x'};
  EXPECT_THAT(n.stack().Send(*c, buf, n.now()).status().message(), HasSubstr("ECONNREFUSED"));
  ASSERT_TRUE(n.stack().Close(*c, n.now()).ok());
  EXPECT_EQ(n.stack().Find(*c), nullptr);
}

// A CLOSED connection frees its 4-tuple at once, even before the user closes it.
TEST(Reap, ClosedConnectionFreesItsFourTuple) {
  Net n;
  const Endpoint local{kLocalIp, 5555};
  absl::StatusOr<tcp::ConnId> c = n.stack().Connect(local, kServer, n.now());
  ASSERT_TRUE(c.ok());
  SegmentRepr syn = n.Pop();
  n.Deliver(n.In(kRst | kAck, 0, syn.seq.raw() + 1, {}, kServer, local));
  absl::StatusOr<tcp::ConnId> again = n.stack().Connect(local, kServer, n.now());
  EXPECT_TRUE(again.ok()) << again.status();
}

// =============================================================================================
// TIME-WAIT reuse (RFC 9293 §3.10.7.4 TIME-WAIT note, RFC 6191, RFC 1122 §4.2.2.13)

// Brings the accepted connection from kClient (peer ISS 100) into TIME-WAIT: we close first,
// the peer ACKs our FIN and sends its own. Returns the id; RCV.NXT is then 102.
tcp::ConnId ServerInTimeWait(Net& n, uint32_t peer_ts = 0) {
  absl::StatusOr<tcp::ConnId> l = n.stack().Listen(kServer, n.now());
  EXPECT_TRUE(l.ok());
  auto with_ts = [&](SegmentRepr s, uint32_t val) {
    if (peer_ts != 0) s.options.timestamps = wire::Timestamps{val, 0};
    return s;
  };
  n.Deliver(with_ts(n.In(kSyn, 100), peer_ts));
  SegmentRepr synack = n.Pop();
  const uint32_t iss = synack.seq.raw();
  n.Deliver(with_ts(n.In(kAck, 101, iss + 1), peer_ts + 1u));
  absl::StatusOr<tcp::ConnId> id = n.stack().Accept(*l);
  EXPECT_TRUE(id.ok());
  EXPECT_TRUE(n.stack().Close(*id, n.now()).ok());                  // our FIN, seq iss+1
  n.Deliver(with_ts(n.In(kAck, 101, iss + 2), peer_ts + 2u));        // FIN-WAIT-2
  n.Deliver(with_ts(n.In(kFin | kAck, 101, iss + 2), peer_ts + 3u));  // TIME-WAIT
  n.DiscardSent();
  EXPECT_EQ(n.stack().Find(*id)->state(), TcpState::kTimeWait);
  return *id;
}

// RFC 9293 §3.10.7.4 (TIME-WAIT note) / RFC 1122 §4.2.2.13: a SYN whose sequence number is
// above the old incarnation's RCV.NXT may reopen the 4-tuple: the TIME-WAIT connection ends
// and the listener answers with a SYN+ACK.
TEST(TimeWait, SynWithHigherSeqStartsANewIncarnation) {
  Net n;
  tcp::ConnId old = ServerInTimeWait(n);
  n.Deliver(n.In(kSyn, 100000));
  SegmentRepr synack = n.Pop();
  EXPECT_EQ(synack.flags, kSyn | kAck);
  EXPECT_EQ(synack.ack, SeqNum(100001));
  EXPECT_EQ(n.stack().Find(old), nullptr);  // the user had closed it: forgotten
  ASSERT_EQ(n.stack().connection_count(), 1u);
  EXPECT_EQ(n.stack().Find(n.states().back().conn)->state(), TcpState::kSynReceived);
}

// RFC 1122 §4.2.2.13 (1): the new incarnation's ISS is larger than any sequence number the old
// one used, even when no time has passed (the RFC 6528 clock alone would give the same ISS).
TEST(TimeWait, NewIncarnationIssIsAboveTheOldSequenceSpace) {
  Net n;
  ServerInTimeWait(n);
  // The old incarnation's ISS is what its SYN+ACK carried; find it in the events.
  SeqNum old_iss;
  for (const auto& ev : n.segments()) {
    if (ev.dir == tcp::Direction::kOut && ev.seg.flags == (kSyn | kAck)) old_iss = ev.seg.seq;
  }
  n.Deliver(n.In(kSyn, 100000));
  SegmentRepr synack = n.Pop();
  ASSERT_EQ(synack.flags, kSyn | kAck);
  // The old incarnation used old_iss .. old_iss+1 (SYN and FIN): Linux's margin is 65537.
  EXPECT_GE(synack.seq - old_iss, 65537 + 2);
}

// RFC 9293 §3.10.7.4 TIME-WAIT / §3.4.2: after 2·MSL the connection is CLOSED; the user
// closed it long ago, so the stack forgets it and its 4-tuple.
TEST(TimeWait, ConnectionIsForgottenAfterTwoMsl) {
  Net n;
  tcp::ConnId old = ServerInTimeWait(n);  // MSL is 1 s in TestStackConfig
  n.Advance(2s - 1ms);
  ASSERT_NE(n.stack().Find(old), nullptr);
  n.Advance(1ms);
  EXPECT_EQ(n.stack().Find(old), nullptr);
  EXPECT_EQ(n.stack().connection_count(), 0u);
  EXPECT_EQ(n.stack().NextDeadline(), kNever);
}

// RFC 5961 §4 / RFC 9293 §3.10.7.4: a SYN below RCV.NXT is an old duplicate, not a new
// incarnation: TIME-WAIT answers with an ACK <SEQ=SND.NXT><ACK=RCV.NXT> and stays.
TEST(TimeWait, SynWithLowerSeqGetsAnAckAndNoNewConnection) {
  Net n;
  tcp::ConnId old = ServerInTimeWait(n);
  n.Deliver(n.In(kSyn, 50));
  SegmentRepr ack = n.Pop();
  EXPECT_EQ(ack.flags, kAck);
  EXPECT_EQ(ack.ack, SeqNum(102));
  EXPECT_EQ(n.SentCount(), 0u);
  ASSERT_NE(n.stack().Find(old), nullptr);
  EXPECT_EQ(n.stack().Find(old)->state(), TcpState::kTimeWait);
  EXPECT_EQ(n.stack().connection_count(), 1u);
}

// RFC 6191 §2: with timestamps, a SYN whose timestamp is newer than TS.Recent may reopen the
// 4-tuple even if its sequence number is lower.
TEST(TimeWait, SynWithNewerTimestampStartsANewIncarnationDespiteLowerSeq) {
  StackConfig cfg = TestStackConfig();
  cfg.tcp.timestamps = true;
  Net n(cfg);
  tcp::ConnId old = ServerInTimeWait(n, /*peer_ts=*/1000);
  SegmentRepr syn = n.In(kSyn, 50);
  syn.options.timestamps = wire::Timestamps{5000, 0};
  n.Deliver(syn);
  SegmentRepr synack = n.Pop();
  EXPECT_EQ(synack.flags, kSyn | kAck);
  EXPECT_EQ(synack.ack, SeqNum(51));
  EXPECT_EQ(n.stack().Find(old), nullptr);
}

// =============================================================================================
// Timers: the stack keeps its TCBs' deadlines in a queue instead of asking every TCB.

// Against an oracle: with connections whose timers start, move later (SYN backoff, RFC 6298
// (5.5)), stop (handshake done), end (reset) and restart (data sent, (5.1)), the stack's
// NextDeadline is always the earliest deadline of its TCBs, and OnTick at it runs them.
TEST(Timers, NextDeadlineIsAlwaysTheEarliestTcbDeadline) {
  StackConfig cfg = TestStackConfig();
  cfg.tcp.initial_rto = 100ms;
  cfg.tcp.min_rto = 100ms;
  Net n(cfg);
  std::vector<tcp::ConnId> ids;
  auto earliest = [&] {
    Instant t = kNever;
    for (tcp::ConnId id : ids) {
      if (const tcp::Tcb* tcb = n.stack().Find(id)) t = std::min(t, tcb->NextDeadline());
    }
    return t;
  };
  for (int i = 0; i < 60; ++i) {
    const Endpoint local{kLocalIp, static_cast<uint16_t>(50000 + i)};
    absl::StatusOr<tcp::ConnId> c = n.stack().Connect(local, kServer, n.now());
    ASSERT_TRUE(c.ok());
    ids.push_back(*c);
    SegmentRepr syn = n.Pop();
    if (i % 3 == 1) {  // handshake done: the SYN timer stops; then data restarts a timer
      n.Deliver(n.In(kSyn | kAck, 1000, syn.seq.raw() + 1, {}, kServer, local));
      const uint8_t data[10] = {};
      ASSERT_TRUE(n.stack().Send(*c, data, n.now()).ok());
    } else if (i % 5 == 2) {  // reset: the TCB and its timer go
      n.Deliver(n.In(kRst | kAck, 0, syn.seq.raw() + 1, {}, kServer, local));
    }
    n.DiscardSent();
    ASSERT_EQ(n.stack().NextDeadline(), earliest()) << "after connection " << i;
    n.Advance(3ms);
  }
  for (int step = 0; step < 500 && n.stack().NextDeadline() != kNever; ++step) {
    ASSERT_EQ(n.stack().NextDeadline(), earliest()) << "step " << step;
    if (step % 7 == 0 && !ids.empty()) {  // the user aborts one now and then
      (void)n.stack().Abort(ids[static_cast<size_t>(step) % ids.size()], n.now());
    }
    n.Advance(11ms);
    n.DiscardSent();
  }
}

// =============================================================================================
// Events

// Every state change and segment of the TCBs reaches the user's sink, tagged with the id.
TEST(Events, TcbEventsAreForwardedToTheSink) {
  Net n;
  absl::StatusOr<tcp::ConnId> c = n.stack().Connect(Endpoint{kLocalIp, 5555}, kServer, n.now());
  ASSERT_TRUE(c.ok());
  ASSERT_FALSE(n.states().empty());
  EXPECT_EQ(n.states().back().conn, *c);
  EXPECT_EQ(n.states().back().from, TcpState::kClosed);
  EXPECT_EQ(n.states().back().to, TcpState::kSynSent);
  ASSERT_FALSE(n.segments().empty());
  const tcp::SegmentEvent& ev = n.segments().back();
  EXPECT_EQ(ev.conn, *c);
  EXPECT_EQ(ev.dir, tcp::Direction::kOut);
  EXPECT_EQ(ev.verdict, Verdict::kSent);
  EXPECT_EQ(ev.seg.flags, kSyn);
}

// The stack's own events reach the sink too: a listener's LISTEN, and the RST it sends for a
// closed port as an outgoing segment.
TEST(Events, StackEventsAreForwardedToTheSink) {
  Net n;
  absl::StatusOr<tcp::ConnId> l = n.stack().Listen(kServer, n.now());
  ASSERT_TRUE(l.ok());
  ASSERT_FALSE(n.states().empty());
  EXPECT_EQ(n.states().back().conn, *l);
  EXPECT_EQ(n.states().back().to, TcpState::kListen);
  n.Deliver(n.In(kSyn, 100, 0, {}, kClient, Endpoint{kLocalIp, 81}));
  const tcp::SegmentEvent& ev = n.segments().back();
  EXPECT_EQ(ev.dir, tcp::Direction::kOut);
  EXPECT_EQ(ev.seg.flags, kRst | kAck);
}

}  // namespace
}  // namespace tcplab::stack
