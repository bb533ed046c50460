// The eleven connection states of RFC 9293 §3.3.2, printed in the RFC's spelling.
#pragma once

#include <cstdint>
#include <ostream>
#include <string_view>

namespace tcplab::tcp {

enum class TcpState : uint8_t {
  kClosed,
  kListen,
  kSynSent,
  kSynReceived,
  kEstablished,
  kFinWait1,
  kFinWait2,
  kCloseWait,
  kClosing,
  kLastAck,
  kTimeWait,
};

const char* ToString(TcpState s);  // "SYN-SENT"
inline std::ostream& operator<<(std::ostream& os, TcpState s) { return os << ToString(s); }

// RFC 9293 §3.3.2: the states after the handshake has synchronized both sequence spaces.
bool IsSynchronized(TcpState s);

}  // namespace tcplab::tcp
