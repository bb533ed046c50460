#include "tests/unit/harness/tcb_harness.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tcplab::testing {

tcp::TcpConfig TestConfig() {
  tcp::TcpConfig c;
  c.delayed_ack = false;
  c.nagle = false;
  c.window_scaling = false;
  c.timestamps = false;
  c.sack = false;
  c.msl = 1s;
  c.initial_rto = 1s;
  c.min_rto = 200ms;
  c.send_buffer = 64 * 1024;
  c.recv_buffer = 64 * 1024;
  return c;
}

TcbHarness::TcbHarness(tcp::TcpConfig cfg) : cfg_(cfg) {
  tcb_ = std::make_unique<tcp::Tcb>(cfg_, /*id=*/1, kUs, kPeer, this, [this](const SegmentRepr& s) {
    auto data = std::make_shared<std::vector<uint8_t>>(s.payload.begin(), s.payload.end());
    sent_.push_back({s, data});
    Step(absl::StrCat("  sent      ", s.ToString()));
  });
}

void TcbHarness::Step(std::string s) {
  steps_.push_back(absl::StrCat(absl::FormatDuration(absl::FromChrono(now_.time_since_epoch())),
                                " ", s));
}

std::string TcbHarness::History() const {
  return absl::StrCat("steps so far:\n  ", absl::StrJoin(steps_, "\n  "));
}

SegmentRepr TcbHarness::PeerAbs(uint8_t flags, SeqNum seq, SeqNum ack, std::string_view data,
                                uint16_t window) {
  SegmentRepr s;
  s.src = kPeer;
  s.dst = kUs;
  s.flags = flags;
  s.seq = seq;
  s.ack = (flags & wire::kAck) ? ack : SeqNum(0);
  s.window = window;
  auto owned = std::make_shared<std::string>(data);
  peer_payloads_.push_back(owned);
  s.payload = {reinterpret_cast<const uint8_t*>(owned->data()), owned->size()};
  return s;
}

SegmentRepr TcbHarness::Peer(uint8_t flags, uint32_t rel_seq, uint32_t rel_ack, std::string_view data,
                             uint16_t window) {
  return PeerAbs(flags, SeqNum(kPeerIss) + rel_seq, SeqNum(kOurIss) + rel_ack, data, window);
}

void TcbHarness::Deliver(const SegmentRepr& seg) {
  Step(absl::StrCat("delivered ", seg.ToString()));
  tcb_->OnSegment(seg, now_);
}

void TcbHarness::Advance(Duration d) {
  Instant end = now_ + d;
  for (Instant t = tcb_->NextDeadline(); t <= end; t = tcb_->NextDeadline()) {
    now_ = std::max(now_, t);
    tcb_->OnTick(now_);
  }
  now_ = end;
  Step(absl::StrCat("advanced to here by ", absl::FormatDuration(absl::FromChrono(d))));
}

SegmentRepr TcbHarness::ExpectSent(const ::testing::Matcher<const SegmentRepr&>& m) {
  if (sent_.empty()) {
    ADD_FAILURE() << "expected a segment to be sent, but nothing was\n" << History();
    return SegmentRepr{};
  }
  Sent s = sent_.front();
  sent_.pop_front();
  kept_.push_back(s.data);
  s.seg.payload = *s.data;
  EXPECT_THAT(s.seg, m) << "segment: " << s.seg.ToString() << "\n" << History();
  return s.seg;
}

void TcbHarness::ExpectNothingSent() {
  if (!sent_.empty()) {
    ADD_FAILURE() << "expected nothing sent, but sent " << sent_.front().seg.ToString()
                  << (sent_.size() > 1 ? absl::StrCat(" and ", sent_.size() - 1, " more") : "")
                  << "\n" << History();
  }
}

tcp::Verdict TcbHarness::LastInVerdict() const {
  for (auto it = segs_.rbegin(); it != segs_.rend(); ++it) {
    if (it->dir == tcp::Direction::kIn) return it->verdict;
  }
  return tcp::Verdict::kIgnored;
}

std::vector<TcpState> TcbHarness::StatePath() const {
  std::vector<TcpState> out;
  for (const auto& e : states_) out.push_back(e.to);
  return out;
}

absl::StatusOr<size_t> TcbHarness::Send(std::string_view data) {
  Step(absl::StrCat("user SEND ", data.size(), " octets"));
  return tcb_->Send({reinterpret_cast<const uint8_t*>(data.data()), data.size()}, now_);
}

std::string TcbHarness::Recv(size_t max) {
  std::string out(max, '\0');
  auto n = tcb_->Recv({reinterpret_cast<uint8_t*>(out.data()), out.size()}, now_);
  out.resize(n.ok() ? *n : 0);
  Step(absl::StrCat("user RECEIVE got ", out.size(), " octets"));
  return out;
}

void TcbHarness::OnSegment(Instant, const tcp::SegmentEvent& ev) {
  segs_.push_back(ev);
  if (ev.dir == tcp::Direction::kIn) Step(absl::StrCat("  verdict   ", tcp::ToString(ev.verdict)));
}
void TcbHarness::OnState(Instant, const tcp::StateEvent& ev) {
  states_.push_back(ev);
  Step(absl::StrCat("  state     ", tcp::ToString(ev.from), " -> ", tcp::ToString(ev.to), " (",
                    ev.cause, ")"));
}
void TcbHarness::OnTimer(Instant, const tcp::TimerEvent& ev) {
  timers_.push_back(ev);
  Step(absl::StrCat("  timer     ", tcp::ToString(ev.kind), " ", tcp::ToString(ev.action)));
}

// --- fixtures ---

namespace {
SegmentRepr WithOptions(SegmentRepr s, const PeerOptions& o) {
  s.options.mss = o.mss;
  s.options.window_scale = o.wscale;
  s.options.sack_permitted = o.sack_permitted;
  s.options.timestamps = o.ts;
  return s;
}
}  // namespace

void TcbHarness::OpenActive() {
  tcb_->OpenActive(SeqNum(kOurIss), 0, now_);
  DiscardSent();
}

void TcbHarness::MakeEstablished(const PeerOptions& o, uint16_t peer_window) {
  OpenActive();
  Deliver(WithOptions(Peer(wire::kSyn | wire::kAck, 0, 1, {}, peer_window), o));
  DiscardSent();
}

void TcbHarness::MakeSynReceived(const PeerOptions& o) {
  SegmentRepr syn = WithOptions(Peer(wire::kSyn, 0), o);
  Step(absl::StrCat("listener got ", syn.ToString()));
  tcb_->OpenPassive(syn, SeqNum(kOurIss), 0, now_);
  DiscardSent();
}

void TcbHarness::MakeEstablishedPassive(const PeerOptions& o) {
  MakeSynReceived(o);
  SegmentRepr ack = Peer(wire::kAck, 1, 1);
  if (o.ts) ack.options.timestamps = wire::Timestamps{o.ts->val + 1, 0};
  Deliver(ack);
  DiscardSent();
}

void TcbHarness::MakeFinWait1() {
  MakeEstablished();
  (void)tcb_->Shutdown(now_);
  DiscardSent();
}

void TcbHarness::MakeFinWait2() {
  MakeFinWait1();
  Deliver(Peer(wire::kAck, 1, 2));
  DiscardSent();
}

void TcbHarness::MakeCloseWait() {
  MakeEstablished();
  Deliver(Peer(wire::kFin | wire::kAck, 1, 1));
  DiscardSent();
}

void TcbHarness::MakeLastAck() {
  MakeCloseWait();
  (void)tcb_->Shutdown(now_);
  DiscardSent();
}

void TcbHarness::MakeClosing() {
  MakeFinWait1();
  Deliver(Peer(wire::kFin | wire::kAck, 1, 1));
  DiscardSent();
}

void TcbHarness::MakeTimeWait() {
  MakeFinWait2();
  Deliver(Peer(wire::kFin | wire::kAck, 1, 2));
  DiscardSent();
}

}  // namespace tcplab::testing
