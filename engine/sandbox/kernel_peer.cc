#include "engine/sandbox/kernel_peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/sandbox/reactor.h"

namespace tcplab::sandbox {

using tcp::TcpState;

namespace {

std::string Errno(const char* call) { return absl::StrCat(call, ": ", std::strerror(errno)); }

// Linux's TCP state numbers (include/net/tcp_states.h) in the RFC's names.
TcpState FromLinux(int s) {
  switch (s) {
    case 1: return TcpState::kEstablished;
    case 2: return TcpState::kSynSent;
    case 3: return TcpState::kSynReceived;
    case 4: return TcpState::kFinWait1;
    case 5: return TcpState::kFinWait2;
    case 6: return TcpState::kTimeWait;
    case 8: return TcpState::kCloseWait;
    case 9: return TcpState::kLastAck;
    case 10: return TcpState::kListen;
    case 11: return TcpState::kClosing;
    default: return TcpState::kClosed;  // 7 = TCP_CLOSE, and anything unknown
  }
}

sockaddr_in ToSockaddr(wire::Endpoint ep) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(ep.port);
  sa.sin_addr.s_addr = htonl(ep.ip.v);
  return sa;
}

wire::Endpoint FromSockaddr(const sockaddr_in& sa) {
  return {wire::Ipv4{ntohl(sa.sin_addr.s_addr)}, ntohs(sa.sin_port)};
}

struct TupleKey {
  uint32_t lip, rip;
  uint16_t lport, rport;
  auto operator<=>(const TupleKey&) const = default;
};

}  // namespace

KernelPeer::KernelPeer(Reactor& reactor, IdAllocator ids, StateCallback on_state)
    : reactor_(reactor), ids_(std::move(ids)), on_state_(std::move(on_state)) {
  diag_fd_ = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
}

KernelPeer::~KernelPeer() {
  for (auto& [id, c] : conns_) ReleaseFd(c);
  if (diag_fd_ >= 0) close(diag_fd_);
}

void KernelPeer::ReleaseFd(Conn& c) {
  if (c.fd < 0) return;
  if (!c.listener) {
    KernelInfo last;
    if (ReadTcpInfo(c.fd, &last)) c.last_info = last;
  }
  reactor_.Unwatch(c.fd);
  close(c.fd);
  c.fd = -1;
}

void KernelPeer::Prune() {
  std::erase_if(conns_, [](const auto& kv) { return kv.second.gone && kv.second.fd < 0; });
}

std::vector<tcp::ConnId> KernelPeer::Ids() const {
  std::vector<tcp::ConnId> out;
  for (const auto& [id, c] : conns_) out.push_back(id);
  return out;
}

void KernelPeer::Report(Conn& c, TcpState to, const char* cause) {
  if (c.state == to) return;
  tcp::StateEvent ev{c.id, c.state, to, cause};
  c.state = to;
  on_state_(ev);
}

absl::StatusOr<KernelPeer::Conn*> KernelPeer::Find(tcp::ConnId id, bool want_stream) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return absl::NotFoundError(absl::StrCat("kernel connection ", id, " not found"));
  if (want_stream && it->second.listener) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection ", id, " is a listener (LISTEN): it has no data stream"));
  }
  return &it->second;
}

absl::StatusOr<tcp::ConnId> KernelPeer::Listen(wire::Endpoint local, int backlog) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(Errno("socket"));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa = ToSockaddr(local);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    absl::Status s = errno == EADDRINUSE
                         ? absl::AlreadyExistsError(absl::StrCat("EADDRINUSE: ", local.ToString(), " is in use in the kernel"))
                         : absl::InvalidArgumentError(absl::StrCat("bind ", local.ToString(), ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  if (listen(fd, backlog > 0 ? backlog : 128) != 0) {
    absl::Status s = absl::InternalError(Errno("listen"));
    close(fd);
    return s;
  }
  tcp::ConnId id = ids_();
  Conn& c = conns_[id];
  c.id = id;
  c.fd = fd;
  c.listener = true;
  c.local = local;
  Report(c, TcpState::kListen, "passive open (listen)");
  reactor_.Watch(fd, EPOLLIN, [this, id](uint32_t) {
    auto it = conns_.find(id);
    if (it != conns_.end()) OnListenerReadable(it->second);
  });
  return id;
}

void KernelPeer::OnListenerReadable(Conn& l) {
  for (;;) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int fd = accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or an error accept() will report again
    sockaddr_in local{};
    len = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    wire::Endpoint lep = FromSockaddr(local), rep = FromSockaddr(peer);
    // The connection may already be known from its SYN-RECEIVED request sock (Observe).
    Conn* c = nullptr;
    for (auto& [id, k] : conns_) {
      if (!k.listener && k.fd < 0 && !k.gone && k.local == lep && k.remote == rep) c = &k;
    }
    if (!c) {
      tcp::ConnId id = ids_();
      c = &conns_[id];
      c->id = id;
      c->local = lep;
      c->remote = rep;
      c->listener_id = l.id;
      Report(*c, TcpState::kSynReceived, "SYN received (observed)");
    }
    c->fd = fd;
    WatchStream(*c);
  }
}

void KernelPeer::WatchStream(Conn& c) {
  tcp::ConnId id = c.id;
  reactor_.Watch(c.fd, EPOLLOUT | EPOLLET, [this, id](uint32_t) {
    auto it = conns_.find(id);
    if (it != conns_.end()) OnWritable(it->second);
  });
}

absl::StatusOr<tcp::ConnId> KernelPeer::Connect(wire::Endpoint local, wire::Endpoint remote) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(Errno("socket"));
  sockaddr_in la = ToSockaddr(local);
  if ((local.port != 0 || local.ip.v != 0) && bind(fd, reinterpret_cast<sockaddr*>(&la), sizeof la) != 0) {
    absl::Status s = absl::InvalidArgumentError(absl::StrCat("bind ", local.ToString(), ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  sockaddr_in ra = ToSockaddr(remote);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ra), sizeof ra) != 0 && errno != EINPROGRESS) {
    absl::Status s = absl::UnavailableError(absl::StrCat("connect ", remote.ToString(), ": ", std::strerror(errno)));
    close(fd);
    return s;
  }
  socklen_t len = sizeof la;
  getsockname(fd, reinterpret_cast<sockaddr*>(&la), &len);
  tcp::ConnId id = ids_();
  Conn& c = conns_[id];
  c.id = id;
  c.fd = fd;
  c.local = FromSockaddr(la);
  c.remote = remote;
  Report(c, TcpState::kSynSent, "active open (connect)");
  WatchStream(c);
  Observe();
  return id;
}

absl::StatusOr<size_t> KernelPeer::Send(tcp::ConnId id, std::span<const uint8_t> data) {
  absl::StatusOr<Conn*> c = Find(id, true);
  if (!c.ok()) return c.status();
  Conn& k = **c;
  // A socket the kernel no longer has (reset) would take the data into `pending` for ever.
  if (k.fd < 0 || k.gone || k.shutdown_pending || k.close_pending) {
    return absl::FailedPreconditionError(absl::StrCat(
        "EPIPE: kernel connection ", id, " is ", tcp::ToString(k.state), " and closed for sending"));
  }
  size_t room = kMaxPendingSend - std::min(kMaxPendingSend, k.pending.size());
  size_t n = std::min(room, data.size());
  k.pending.append(reinterpret_cast<const char*>(data.data()), n);
  Flush(k);
  return n;
}

void KernelPeer::Flush(Conn& c) {
  while (c.fd >= 0 && !c.pending.empty()) {
    ssize_t n = send(c.fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) break;  // EAGAIN (wait for EPOLLOUT), or an error the next call reports
    c.pending.erase(0, static_cast<size_t>(n));
  }
  if (c.fd < 0 || !c.pending.empty()) return;
  if (c.close_pending) {
    ReleaseFd(c);
    Observe();
  } else if (c.shutdown_pending) {
    c.shutdown_pending = false;
    ::shutdown(c.fd, SHUT_WR);
    Observe();
  }
}

void KernelPeer::OnWritable(Conn& c) {
  Flush(c);
  Observe();
}

absl::StatusOr<size_t> KernelPeer::Recv(tcp::ConnId id, std::span<uint8_t> out, bool* eof) {
  absl::StatusOr<Conn*> c = Find(id, true);
  if (!c.ok()) return c.status();
  Conn& k = **c;
  *eof = k.eof;
  if (k.fd < 0 || k.eof || out.empty()) return 0;
  ssize_t n = recv(k.fd, out.data(), out.size(), MSG_DONTWAIT);
  if (n == 0) {
    k.eof = *eof = true;
    return 0;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno == ECONNRESET) return absl::AbortedError("ECONNRESET: connection reset by peer");
    return absl::InternalError(Errno("recv"));
  }
  return static_cast<size_t>(n);
}

absl::Status KernelPeer::Shutdown(tcp::ConnId id) {
  absl::StatusOr<Conn*> c = Find(id, true);
  if (!c.ok()) return c.status();
  if ((*c)->fd < 0) return absl::FailedPreconditionError(absl::StrCat("ENOTCONN: kernel connection ", id, " is closed"));
  (*c)->shutdown_pending = true;
  Flush(**c);
  return absl::OkStatus();
}

absl::Status KernelPeer::Close(tcp::ConnId id) {
  absl::StatusOr<Conn*> c = Find(id, false);
  if (!c.ok()) return c.status();
  Conn& k = **c;
  if (k.listener) {
    ReleaseFd(k);
    Report(k, TcpState::kClosed, "listener closed");
    conns_.erase(id);
    return absl::OkStatus();
  }
  if (k.fd < 0) return absl::OkStatus();
  k.close_pending = true;
  Flush(k);
  return absl::OkStatus();
}

absl::Status KernelPeer::Abort(tcp::ConnId id) {
  absl::StatusOr<Conn*> c = Find(id, false);
  if (!c.ok()) return c.status();
  Conn& k = **c;
  if (k.listener) return Close(id);
  if (k.fd >= 0) {
    linger lg{1, 0};  // close(2) with a zero linger time sends RST (Linux tcp_close)
    setsockopt(k.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    k.pending.clear();
    ReleaseFd(k);
  }
  Observe();
  return absl::OkStatus();
}

absl::StatusOr<KernelInfo> KernelPeer::Info(tcp::ConnId id) const {
  auto it = conns_.find(id);
  if (it == conns_.end()) return absl::NotFoundError(absl::StrCat("kernel connection ", id, " not found"));
  const Conn& c = it->second;
  KernelInfo info;
  if (c.fd < 0 && c.last_info) info = *c.last_info;  // the socket's last TCP_INFO
  info.state = c.state;
  info.local = c.local;
  info.remote = c.remote;
  info.has_fd = c.fd >= 0;
  info.listener = c.listener;
  info.pending_send = c.pending.size();
  if (c.fd >= 0 && !c.listener) ReadTcpInfo(c.fd, &info);
  return info;
}

bool KernelPeer::ReadTcpInfo(int fd, KernelInfo* info) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
  info->rto_us = ti.tcpi_rto;
  info->rtt_us = ti.tcpi_rtt;
  info->rttvar_us = ti.tcpi_rttvar;
  info->snd_mss = ti.tcpi_snd_mss;
  info->rcv_mss = ti.tcpi_rcv_mss;
  info->snd_cwnd = ti.tcpi_snd_cwnd;
  info->snd_ssthresh = ti.tcpi_snd_ssthresh;
  info->unacked = ti.tcpi_unacked;
  info->retransmits = ti.tcpi_retransmits;
  info->total_retrans = ti.tcpi_total_retrans;
  info->snd_wscale = ti.tcpi_snd_wscale;
  info->rcv_wscale = ti.tcpi_rcv_wscale;
  info->timestamps = ti.tcpi_options & TCPI_OPT_TIMESTAMPS;
  info->sack = ti.tcpi_options & TCPI_OPT_SACK;
  info->wscale = ti.tcpi_options & TCPI_OPT_WSCALE;
  info->bytes_acked = ti.tcpi_bytes_acked;
  info->bytes_received = ti.tcpi_bytes_received;
  info->segs_in = ti.tcpi_segs_in;
  info->segs_out = ti.tcpi_segs_out;
  return true;
}

bool KernelPeer::NeedsPolling() const {
  for (const auto& [id, c] : conns_) {
    if (c.gone || c.listener) continue;
    switch (c.state) {
      case TcpState::kEstablished:
      case TcpState::kCloseWait:
        continue;
      default:
        return true;
    }
  }
  return false;
}

// One sock_diag dump of every IPv4 TCP socket in the namespace (RFC-free: Linux's
// NETLINK_SOCK_DIAG, see sock_diag(7)), matched to our connections by 4-tuple.
void KernelPeer::Observe() {
  if (diag_fd_ < 0 || conns_.empty()) return;
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = AF_INET;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0u;
  sockaddr_nl nl{};
  nl.nl_family = AF_NETLINK;
  if (sendto(diag_fd_, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&nl), sizeof nl) < 0) return;

  std::map<TupleKey, int> seen;
  std::vector<std::pair<TupleKey, int>> syn_recv;
  alignas(nlmsghdr) char buf[16384];
  bool done = false;
  while (!done) {
    ssize_t n = recv(diag_fd_, buf, sizeof buf, 0);
    if (n <= 0) return;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
        done = true;
        break;
      }
      auto* m = reinterpret_cast<inet_diag_msg*>(NLMSG_DATA(h));
      TupleKey k{ntohl(m->id.idiag_src[0]), ntohl(m->id.idiag_dst[0]), ntohs(m->id.idiag_sport),
                 ntohs(m->id.idiag_dport)};
      seen[k] = m->idiag_state;
    }
  }
  // Match known connections.
  std::set<TupleKey> matched;
  for (auto& [id, c] : conns_) {
    if (c.listener || c.gone) continue;
    TupleKey k{c.local.ip.v, c.remote.ip.v, c.local.port, c.remote.port};
    auto it = seen.find(k);
    matched.insert(k);
    if (it == seen.end()) {
      if (c.state != TcpState::kSynSent || c.fd < 0) {
        c.gone = true;
        Report(c, TcpState::kClosed, "gone from the kernel (observed)");
      }
      continue;
    }
    TcpState s = FromLinux(it->second);
    if (s == TcpState::kClosed && c.fd >= 0) continue;  // e.g. reset, fd still open
    Report(c, s, "observed in the kernel");
  }
  // New SYN-RECEIVED request socks on one of our listeners: a connection in the making.
  for (const auto& [k, state] : seen) {
    if (FromLinux(state) != TcpState::kSynReceived || matched.contains(k)) continue;
    for (auto& [lid, l] : conns_) {
      if (!l.listener || l.local.port != k.lport) continue;
      if (l.local.ip.v != 0 && l.local.ip.v != k.lip) continue;
      tcp::ConnId id = ids_();
      Conn& c = conns_[id];
      c.id = id;
      c.local = {wire::Ipv4{k.lip}, k.lport};
      c.remote = {wire::Ipv4{k.rip}, k.rport};
      c.listener_id = lid;
      c.state = TcpState::kListen;
      Report(c, TcpState::kSynReceived, "SYN received (observed)");
      break;
    }
  }
  Prune();
}

}  // namespace tcplab::sandbox
