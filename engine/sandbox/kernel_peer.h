// KernelPeer: TCP sockets of the Linux kernel inside a sandbox's namespace, driven like the
// engine's connections (listen, connect, send, receive, half-close, close, abort) and watched:
// the kernel's TCP states are read with sock_diag (which also sees SYN-RECEIVED request socks
// and TIME-WAIT sockets that no longer have a file descriptor) and reported as state changes.
// Everything here runs on the sandbox's reactor thread, which lives in the namespace.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tcp/events.h"
#include "engine/tcp/state.h"
#include "engine/wire/segment.h"

namespace tcplab::sandbox {

class Reactor;

// What TCP_INFO says about a kernel connection (a subset of struct tcp_info).
struct KernelInfo {
  tcp::TcpState state = tcp::TcpState::kClosed;
  wire::Endpoint local, remote;
  bool has_fd = false;
  bool listener = false;
  uint32_t rto_us = 0, rtt_us = 0, rttvar_us = 0, snd_mss = 0, rcv_mss = 0;
  uint32_t snd_cwnd = 0, snd_ssthresh = 0, unacked = 0, retransmits = 0, total_retrans = 0;
  uint8_t snd_wscale = 0, rcv_wscale = 0;
  bool timestamps = false, sack = false, wscale = false;
  uint64_t bytes_acked = 0, bytes_received = 0;
  uint32_t segs_in = 0, segs_out = 0;
  size_t pending_send = 0;  // accepted from the user, not yet taken by the kernel
};

class KernelPeer {
 public:
  using IdAllocator = std::function<tcp::ConnId()>;
  // Called with every state change, while the connection is still here: a connection that
  // changes to CLOSED can be read (Info) in the callback. A CLOSED connection is dropped once
  // the user no longer holds its socket (closed or aborted it), right after that callback or
  // when the user lets go, so the map holds only connections alive or in the user's hands.
  using StateCallback = std::function<void(const tcp::StateEvent&)>;

  KernelPeer(Reactor& reactor, IdAllocator ids, StateCallback on_state);
  ~KernelPeer();
  KernelPeer(const KernelPeer&) = delete;
  KernelPeer& operator=(const KernelPeer&) = delete;

  absl::StatusOr<tcp::ConnId> Listen(wire::Endpoint local, int backlog);
  absl::StatusOr<tcp::ConnId> Connect(wire::Endpoint local, wire::Endpoint remote);
  // Takes all of `data` (up to a bound) and hands it to the kernel as it makes room.
  absl::StatusOr<size_t> Send(tcp::ConnId id, std::span<const uint8_t> data);
  absl::StatusOr<size_t> Recv(tcp::ConnId id, std::span<uint8_t> out, bool* eof);
  absl::Status Shutdown(tcp::ConnId id);  // shutdown(SHUT_WR) once pending data is out
  absl::Status Close(tcp::ConnId id);     // close(2) once pending data is out
  absl::Status Abort(tcp::ConnId id);     // SO_LINGER {1, 0} + close: RST
  absl::StatusOr<KernelInfo> Info(tcp::ConnId id) const;

  bool Owns(tcp::ConnId id) const { return conns_.contains(id); }
  std::vector<tcp::ConnId> Ids() const;
  // Reads the kernel's TCP states and reports every change. Cheap enough to call after each
  // segment that can change a state.
  void Observe();
  // True while some connection is in a state that changes by itself (timers): the caller
  // should call Observe() now and then.
  bool NeedsPolling() const;

  static constexpr size_t kMaxPendingSend = 16 << 20;

 private:
  struct Conn {
    tcp::ConnId id = 0;
    int fd = -1;
    bool listener = false;
    tcp::ConnId listener_id = 0;  // for accepted connections
    wire::Endpoint local, remote;
    tcp::TcpState state = tcp::TcpState::kClosed;
    std::string pending;  // user data the kernel has not taken yet
    bool shutdown_pending = false, close_pending = false, eof = false;
    bool gone = false;  // no longer in the kernel: CLOSED (dropped once fd < 0 too)
    // TCP_INFO as it was when the user let go of the socket: what Info reports from then on
    // (the kernel keeps the connection, through FIN-WAIT and TIME-WAIT, without an fd).
    std::optional<KernelInfo> last_info;
  };

  absl::StatusOr<Conn*> Find(tcp::ConnId id, bool want_stream);
  // TCP_INFO of an open stream socket into `info`; false if there is none to read.
  static bool ReadTcpInfo(int fd, KernelInfo* info);
  void Report(Conn& c, tcp::TcpState to, const char* cause);
  void OnListenerReadable(Conn& l);
  void OnWritable(Conn& c);
  void Flush(Conn& c);
  void ReleaseFd(Conn& c);
  void WatchStream(Conn& c);
  // Drops the connections that are gone from the kernel and whose socket the user has closed.
  void Prune();

  Reactor& reactor_;
  IdAllocator ids_;
  StateCallback on_state_;
  int diag_fd_ = -1;
  std::map<tcp::ConnId, Conn> conns_;
};

}  // namespace tcplab::sandbox
