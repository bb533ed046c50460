// A harness for one Tcb in virtual time that reads like the RFC's examples (STYLE.md 9):
//   h.Deliver(h.Peer(kSyn | kAck, 0, 1));
//   h.ExpectSent(AllOf(HasFlags(kAck), HasSeq(1), HasAck(1)));
//   h.Advance(2 * msl);
// "We" are the TCB under test at 198.18.0.2:40000; the "peer" is 198.18.0.1:80. Sequence
// numbers in Peer()/Matchers are relative: ours to our ISS, the peer's to its ISS. A failing
// expectation prints every step that came before it.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "engine/tcp/tcb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tcplab::testing {

using namespace std::chrono_literals;
using tcp::TcpState;
using wire::SegmentRepr;
using wire::SeqNum;

inline constexpr uint32_t kOurIss = 1000;
inline constexpr uint32_t kPeerIss = 5000;
inline const wire::Endpoint kUs{wire::Ipv4::Of(198, 18, 0, 2), 40000};
inline const wire::Endpoint kPeer{wire::Ipv4::Of(198, 18, 0, 1), 80};

// What tests use unless they say otherwise: no delayed ACK and no Nagle (every rule shows up
// as an immediate segment), no options (plain RFC 9293 numbers), short timers.
tcp::TcpConfig TestConfig();

struct PeerOptions {
  std::optional<uint16_t> mss;
  std::optional<uint8_t> wscale;
  bool sack_permitted = false;
  std::optional<wire::Timestamps> ts;
};

class TcbHarness : public tcp::EventSink {
 public:
  explicit TcbHarness(tcp::TcpConfig cfg = TestConfig());

  tcp::Tcb& tcb() { return *tcb_; }
  tcp::TcpConfig& config() { return cfg_; }
  Instant now() const { return now_; }
  TcpState state() const { return tcb_->state(); }

  // A segment from the peer: seq relative to the peer's ISS, ack relative to ours.
  SegmentRepr Peer(uint8_t flags, uint32_t rel_seq, uint32_t rel_ack = 0, std::string_view data = {},
                   uint16_t window = 65535);
  // The same with absolute numbers.
  SegmentRepr PeerAbs(uint8_t flags, SeqNum seq, SeqNum ack, std::string_view data = {},
                      uint16_t window = 65535);

  void Deliver(const SegmentRepr& seg);
  // Moves the clock forward by `d`, running every timer due on the way, in order.
  void Advance(Duration d);

  // Pops the oldest segment we sent and checks it; returns it (payload stays valid).
  SegmentRepr ExpectSent(const ::testing::Matcher<const SegmentRepr&>& m);
  void ExpectNothingSent();
  size_t SentCount() const { return sent_.size(); }
  void DiscardSent() { sent_.clear(); }

  // Events seen so far.
  const std::vector<tcp::StateEvent>& states() const { return states_; }
  const std::vector<tcp::TimerEvent>& timers() const { return timers_; }
  const std::vector<tcp::SegmentEvent>& segments() const { return segs_; }
  tcp::Verdict LastInVerdict() const;
  std::vector<TcpState> StatePath() const;  // the `to` of every state event, in order

  // User calls at `now`.
  absl::StatusOr<size_t> Send(std::string_view data);
  std::string Recv(size_t max = 1 << 20);

  // Fixtures (STYLE.md 8): put the TCB in a state through the ordinary segments, then forget
  // what was sent. Peer options apply to the peer's SYN or SYN+ACK.
  void OpenActive();  // SYN-SENT, our SYN discarded
  void MakeEstablished(const PeerOptions& o = {}, uint16_t peer_window = 65535);
  void MakeEstablishedPassive(const PeerOptions& o = {});  // via LISTEN -> SYN-RECEIVED
  void MakeSynReceived(const PeerOptions& o = {});
  void MakeFinWait1();   // we closed, our FIN (seq 1) unacknowledged
  void MakeFinWait2();   // ... and acknowledged
  void MakeCloseWait();  // the peer's FIN (seq 1) received
  void MakeLastAck();    // CLOSE-WAIT, then we closed
  void MakeClosing();    // both FINs crossed
  void MakeTimeWait();   // FIN-WAIT-2, then the peer's FIN

  std::string History() const;

 private:
  void OnSegment(Instant now, const tcp::SegmentEvent& ev) override;
  void OnState(Instant now, const tcp::StateEvent& ev) override;
  void OnTimer(Instant now, const tcp::TimerEvent& ev) override;
  void Step(std::string s);

  tcp::TcpConfig cfg_;
  Instant now_ = InstantFromNanos(1'000'000'000);
  std::unique_ptr<tcp::Tcb> tcb_;
  struct Sent {
    SegmentRepr seg;
    std::shared_ptr<std::vector<uint8_t>> data;
  };
  std::deque<Sent> sent_;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> kept_;
  std::vector<std::shared_ptr<std::string>> peer_payloads_;
  std::vector<tcp::StateEvent> states_;
  std::vector<tcp::TimerEvent> timers_;
  std::vector<tcp::SegmentEvent> segs_;
  std::vector<std::string> steps_;
};

// Matchers (STYLE.md 10). Sequence numbers relative to the sender's ISS.
MATCHER_P(HasFlags, flags, "has flags " + wire::FlagsToString(flags)) {
  if (arg.flags != flags) {
    *result_listener << "flags are " << wire::FlagsToString(arg.flags);
    return false;
  }
  return true;
}
MATCHER_P(HasSeq, rel, "has seq " + ::testing::PrintToString(rel) + " (relative to our ISS)") {
  uint32_t got = static_cast<uint32_t>(arg.seq - SeqNum(kOurIss));
  if (got != static_cast<uint32_t>(rel)) {
    *result_listener << "seq is " << got;
    return false;
  }
  return true;
}
MATCHER_P(HasAck, rel, "has ack " + ::testing::PrintToString(rel) + " (relative to the peer's ISS)") {
  uint32_t got = static_cast<uint32_t>(arg.ack - SeqNum(kPeerIss));
  if (!(arg.flags & wire::kAck) || got != static_cast<uint32_t>(rel)) {
    *result_listener << "ack is " << got << ((arg.flags & wire::kAck) ? "" : " without the ACK flag");
    return false;
  }
  return true;
}
MATCHER_P(HasLen, n, "has " + ::testing::PrintToString(n) + " payload octets") {
  if (arg.payload.size() != static_cast<size_t>(n)) {
    *result_listener << "payload has " << arg.payload.size() << " octets";
    return false;
  }
  return true;
}
MATCHER_P(HasWindow, w, "has window field " + ::testing::PrintToString(w)) {
  if (arg.window != static_cast<uint16_t>(w)) {
    *result_listener << "window field is " << arg.window;
    return false;
  }
  return true;
}
MATCHER_P(HasPayload, s, "carries \"" + std::string(s) + "\"") {
  std::string got(arg.payload.begin(), arg.payload.end());
  if (got != s) {
    *result_listener << "carries \"" << got << "\"";
    return false;
  }
  return true;
}
MATCHER(IsRst, "is a RST") { return (arg.flags & wire::kRst) != 0; }

}  // namespace tcplab::testing
