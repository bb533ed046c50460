// What the engine tells the outside world: segments with their verdicts, state changes with
// their causes, timers. Delivered synchronously through an EventSink; the sink must not call
// back into the engine.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "engine/tcp/clock.h"
#include "engine/tcp/state.h"
#include "engine/wire/segment.h"

namespace tcplab::tcp {

// Connection ids are unique per stack and never reused. 0 means "no connection".
using ConnId = uint64_t;

enum class Direction : uint8_t { kIn, kOut };

// What happened to a segment.
enum class Verdict : uint8_t {
  kSent,               // out: first transmission
  kRetransmitted,      // out: sent again (RTO, fast retransmit, probe)
  kAccepted,           // in: processed
  kOutOfWindow,        // in: failed the acceptability test (RFC 9293 §3.10.7.4); ACK sent
  kPawsRejected,       // in: timestamp older than TS.Recent (RFC 7323 §5)
  kBadAck,             // in: ACK for unsent data or too old (RFC 5961 §5.2); ACK sent
  kChallengeAcked,     // in: in-window RST or SYN answered with a challenge ACK (RFC 5961)
  kResetConnection,    // in: RST accepted, connection reset
  kIgnored,            // in: dropped without reply (out-of-window RST, no ACK bit, ...)
  kNoConnection,       // in: matched no connection or listener; RST sent unless it was a RST
  kListenOverflow,     // in: SYN dropped, listener backlog full
  kBadChecksum,        // in: TCP or IPv4 checksum wrong; dropped
  kMalformed,          // in: not a parseable IPv4/TCP datagram; dropped
};
const char* ToString(Verdict v);

struct SegmentEvent {
  ConnId conn = 0;
  Direction dir = Direction::kIn;
  Verdict verdict = Verdict::kAccepted;
  wire::SegmentRepr seg;  // headers only; seg.payload is empty
  uint32_t payload_len = 0;
  uint8_t preview_len = 0;
  std::array<uint8_t, 16> preview{};
  // The connection's ISS and IRS (0 before known), so viewers can print relative numbers.
  wire::SeqNum iss, irs;
};

struct StateEvent {
  ConnId conn = 0;
  TcpState from = TcpState::kClosed;
  TcpState to = TcpState::kClosed;
  const char* cause = "";  // a static string: "SYN+ACK received", "2·MSL expired", ...
};

enum class TimerKind : uint8_t { kRetransmission, kPersist, kDelayedAck, kTimeWait, kKeepalive, kFinWait2 };
enum class TimerAction : uint8_t { kStarted, kFired, kStopped };
const char* ToString(TimerKind k);
const char* ToString(TimerAction a);

struct TimerEvent {
  ConnId conn = 0;
  TimerKind kind = TimerKind::kRetransmission;
  TimerAction action = TimerAction::kStarted;
  Instant deadline;      // for kStarted: when it fires
  int backoff = 0;       // consecutive expiries of this timer
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnSegment(Instant, const SegmentEvent&) {}
  virtual void OnState(Instant, const StateEvent&) {}
  virtual void OnTimer(Instant, const TimerEvent&) {}
};

}  // namespace tcplab::tcp
