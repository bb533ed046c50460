#include "engine/tcp/events.h"

namespace tcplab::tcp {

const char* ToString(Verdict v) {
  switch (v) {
    case Verdict::kSent: return "sent";
    case Verdict::kRetransmitted: return "retransmitted";
    case Verdict::kAccepted: return "accepted";
    case Verdict::kOutOfWindow: return "out of window";
    case Verdict::kPawsRejected: return "PAWS rejected";
    case Verdict::kBadAck: return "unacceptable ACK";
    case Verdict::kChallengeAcked: return "challenge-ACKed";
    case Verdict::kResetConnection: return "reset the connection";
    case Verdict::kIgnored: return "ignored";
    case Verdict::kNoConnection: return "no connection";
    case Verdict::kListenOverflow: return "listen backlog full";
    case Verdict::kBadChecksum: return "bad checksum";
    case Verdict::kMalformed: return "malformed";
  }
  return "?";
}

const char* ToString(TimerKind k) {
  switch (k) {
    case TimerKind::kRetransmission: return "retransmission";
    case TimerKind::kPersist: return "persist";
    case TimerKind::kDelayedAck: return "delayed-ack";
    case TimerKind::kTimeWait: return "2MSL";
    case TimerKind::kKeepalive: return "keepalive";
    case TimerKind::kFinWait2: return "FIN-WAIT-2";
  }
  return "?";
}

const char* ToString(TimerAction a) {
  switch (a) {
    case TimerAction::kStarted: return "started";
    case TimerAction::kFired: return "fired";
    case TimerAction::kStopped: return "stopped";
  }
  return "?";
}

}  // namespace tcplab::tcp
