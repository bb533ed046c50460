// Target: the TCP implementation a script grades, seen the way packetdrill sees a kernel: a
// socket API to call, and a wire on which the script plays the remote peer. The runner
// (runner.h) drives one; EngineTarget (in process, virtual time), KernelTarget (Linux in a
// namespace, through a TUN, real time) and the DUT adapter (a student's stack over gRPC)
// implement it.
//
// Addresses are fixed, as in packetdrill: the stack under test is 198.18.0.1, the script's
// peer 198.18.0.2, inside the sandbox's 198.18.0.0/24.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/tcp/clock.h"
#include "engine/wire/segment.h"

namespace tcplab::grading {

inline constexpr wire::Ipv4 kLocalAddr = wire::Ipv4::Of(198, 18, 0, 1);   // under test
inline constexpr wire::Ipv4 kRemoteAddr = wire::Ipv4::Of(198, 18, 0, 2);  // the script
// bind(..., ...) binds this port (packetdrill's default); connect(..., ...) connects to it.
inline constexpr uint16_t kScriptPort = 8080;

// A socket call with its arguments resolved. Handles are the target's own; the runner maps
// the script's file descriptors to them.
struct SockCall {
  enum class Op {
    kSocket,        // -> a new handle
    kBind,          // addr: the local endpoint
    kListen,        // arg: backlog
    kAccept,        // -> a new handle
    kConnect,       // addr: the remote endpoint
    kRead,          // arg: at most this many octets; -> octets read, 0 at end of stream
    kWrite,         // arg: octets to write (the contents do not matter); -> octets taken
    kShutdown,      // arg: SHUT_RD, SHUT_WR or SHUT_RDWR (0, 1, 2)
    kClose,
    kSetNonBlocking,  // flag: O_NONBLOCK on or off
    kGetFlags,        // -> O_RDWR | (O_NONBLOCK if set), as Linux's F_GETFL reports them
    kSetLinger,       // flag: l_onoff; arg: l_linger (seconds)
    kSetNoDelay,      // flag: TCP_NODELAY
    kSetReuseAddr,    // flag: SO_REUSEADDR
    kGetSoError,      // -> the pending error's errno number, cleared (SO_ERROR)
  };
  Op op = Op::kSocket;
  int handle = -1;
  int64_t arg = 0;
  bool flag = false;
  wire::Endpoint addr;
};

// A call's outcome, as the system call would return it: a value >= 0, or -1 and an errno
// name ("EAGAIN", "ECONNREFUSED"). getsockopt(SO_ERROR) also fills `so_error`: the pending
// error's name, or "0".
struct SockResult {
  int64_t value = 0;
  std::string err;
  std::string so_error;
  static SockResult Ok(int64_t v) { return {v, "", ""}; }
  static SockResult Error(std::string e) { return {-1, std::move(e), ""}; }
};

class Target {
 public:
  virtual ~Target() = default;

  virtual std::string name() const = 0;  // "engine", "kernel", "dut"
  // True if time is virtual: timings are exact and waiting costs nothing.
  virtual bool virtual_time() const = 0;

  // Time since the script started, on the target's clock.
  virtual Duration Now() = 0;
  // Lets time pass until `t` (no-op if it has): the engine runs the timers due; real
  // targets sleep.
  virtual void AdvanceTo(Duration t) = 0;

  // Hands the stack an IPv4 datagram from the script's peer.
  virtual absl::Status Inject(std::span<const uint8_t> datagram) = 0;
  // The next datagram the stack sent to the peer, waiting for it until `deadline` at most.
  struct Sent {
    Duration at;
    std::vector<uint8_t> bytes;
  };
  virtual std::optional<Sent> NextSent(Duration deadline) = 0;

  // Starts a socket call and returns its id. A call that cannot complete yet (a blocking
  // accept, connect, read or write) stays pending while the script goes on; Poll reports
  // when it completed and how.
  virtual int StartCall(const SockCall& call) = 0;
  struct Done {
    Duration at;
    SockResult result;
  };
  virtual std::optional<Done> Poll(int call) = 0;

  // Lines about what happened inside since the last call ("0.100000 engine conn 1 SYN-SENT
  // -> ESTABLISHED (SYN+ACK received)"), for the timeline. Targets that cannot see inside
  // return nothing.
  virtual std::vector<std::string> TakeNotes() { return {}; }
  // The state of every socket now ("kernel socket 4 (fd 6): ESTABLISHED"), for a failure
  // report.
  virtual std::vector<std::string> Describe() { return {}; }
};

}  // namespace tcplab::grading
