#include "engine/grading/engine_target.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/tcp/socket_error.h"

namespace tcplab::grading {

namespace {

using Op = SockCall::Op;
using tcp::TcpState;

std::string Seconds(Instant t) {
  return absl::StrFormat("%.6f", std::chrono::duration<double>(t - Instant{}).count());
}

// Linux's F_GETFL for a socket: O_RDWR, plus O_NONBLOCK when set.
constexpr int64_t kORdwr = 02;
constexpr int64_t kONonblock = 04000;

}  // namespace

std::string ErrnoName(const absl::Status& s) {
  if (auto p = s.GetPayload(tcp::kErrnoPayload)) return std::string(*p);
  // Stack errors start with the errno they stand for: "EAGAIN: no established connection".
  absl::string_view m = s.message();
  size_t colon = m.find(':');
  if (colon != absl::string_view::npos && colon > 1 && m[0] == 'E' &&
      std::all_of(m.begin(), m.begin() + colon, [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return std::string(m.substr(0, colon));
  }
  if (s.code() == absl::StatusCode::kNotFound) return "EBADF";
  return "EINVAL";
}

EngineTarget::EngineTarget(tcp::TcpConfig tcp) : tcp_(tcp) {
  stack::StackConfig cfg;
  cfg.tcp = tcp_;
  stack_ = std::make_unique<stack::Stack>(
      cfg, [this](std::span<const uint8_t> d) { sent_.push_back(Sent{Now(), {d.begin(), d.end()}}); },
      static_cast<tcp::EventSink*>(this));
}

EngineTarget::~EngineTarget() = default;

void EngineTarget::RunTimersUntil(Instant t) {
  for (Instant next = stack_->NextDeadline(); next <= t; next = stack_->NextDeadline()) {
    now_ = std::max(now_, next);
    stack_->OnTick(now_);
    Retry();
  }
  now_ = std::max(now_, t);
  Retry();
}

void EngineTarget::AdvanceTo(Duration t) { RunTimersUntil(Instant{} + t); }

absl::Status EngineTarget::Inject(std::span<const uint8_t> datagram) {
  stack_->OnDatagram(datagram, now_);
  Retry();
  return absl::OkStatus();
}

std::optional<Target::Sent> EngineTarget::NextSent(Duration deadline) {
  const Instant until = Instant{} + deadline;
  // Time moves one timer at a time, so a datagram a timer sends is seen at its instant.
  while (sent_.empty()) {
    Instant next = stack_->NextDeadline();
    if (next > until) break;
    now_ = std::max(now_, next);
    stack_->OnTick(now_);
    Retry();
  }
  if (sent_.empty()) {
    now_ = std::max(now_, until);
    Retry();
    return std::nullopt;
  }
  Sent s = std::move(sent_.front());
  sent_.pop_front();
  return s;
}

int EngineTarget::StartCall(const SockCall& call) {
  calls_.push_back(Call{});
  calls_.back().call = call;
  Call& c = calls_.back();
  if (std::optional<SockResult> r = Try(c)) c.done = Done{Now(), *r};
  return static_cast<int>(calls_.size()) - 1;
}

std::optional<Target::Done> EngineTarget::Poll(int call) {
  if (call < 0 || call >= static_cast<int>(calls_.size())) return std::nullopt;
  return calls_[call].done;
}

void EngineTarget::Retry() {
  // Indexes, not iterators: a completed call does not add calls, but stay safe anyway.
  for (size_t i = 0; i < calls_.size(); ++i) {
    if (calls_[i].done) continue;
    if (std::optional<SockResult> r = Try(calls_[i])) calls_[i].done = Done{Now(), *r};
  }
}

EngineTarget::Sock* EngineTarget::Find(int handle) {
  auto it = socks_.find(handle);
  return it == socks_.end() ? nullptr : &it->second;
}

std::optional<SockResult> EngineTarget::Try(Call& c) {
  const SockCall& call = c.call;
  if (call.op == Op::kSocket) {
    socks_[next_handle_] = Sock{};
    return SockResult::Ok(next_handle_++);
  }
  Sock* s = Find(call.handle);
  if (s == nullptr) return SockResult::Error("EBADF");
  tcp::Tcb* tcb = s->kind == Sock::Kind::kConn ? stack_->Find(s->id) : nullptr;
  switch (call.op) {
    case Op::kSocket:
      break;
    case Op::kBind:
      if (s->kind != Sock::Kind::kFresh || s->bound.port != 0) return SockResult::Error("EINVAL");
      s->bound = call.addr;
      return SockResult::Ok(0);
    case Op::kListen: {
      if (s->kind == Sock::Kind::kListener) return SockResult::Ok(0);
      if (s->kind != Sock::Kind::kFresh) return SockResult::Error("EINVAL");
      wire::Endpoint local = s->bound.port ? s->bound : wire::Endpoint{kLocalAddr, kScriptPort};
      absl::StatusOr<tcp::ConnId> id = stack_->Listen(local, now_, static_cast<int>(call.arg));
      if (!id.ok()) return SockResult::Error(id.status().code() == absl::StatusCode::kAlreadyExists
                                                 ? "EADDRINUSE"
                                                 : ErrnoName(id.status()));
      s->kind = Sock::Kind::kListener;
      s->id = *id;
      return SockResult::Ok(0);
    }
    case Op::kAccept: {
      if (s->kind != Sock::Kind::kListener) return SockResult::Error("EINVAL");
      absl::StatusOr<tcp::ConnId> id = stack_->Accept(s->id);
      if (!id.ok()) {
        if (s->nonblocking) return SockResult::Error("EAGAIN");
        return std::nullopt;
      }
      // Accepted sockets inherit the listener's options, as on Linux.
      Sock a;
      a.kind = Sock::Kind::kConn;
      a.id = *id;
      a.nodelay = s->nodelay;
      a.linger = s->linger;
      if (tcp::Tcb* t = stack_->Find(*id)) t->set_nodelay(a.nodelay);
      socks_[next_handle_] = a;
      return SockResult::Ok(next_handle_++);
    }
    case Op::kConnect:
      return TryConnect(*s, call);
    case Op::kRead:
      return TryRead(*s, call);
    case Op::kWrite:
      return TryWrite(*s, c);
    case Op::kShutdown:
      if (s->kind != Sock::Kind::kConn) return SockResult::Error("ENOTCONN");
      if (call.arg == 0) return SockResult::Ok(0);  // SHUT_RD: nothing goes on the wire
      if (absl::Status st = stack_->Shutdown(s->id, now_); !st.ok()) return SockResult::Error(ErrnoName(st));
      return SockResult::Ok(0);
    case Op::kClose:
      return Close(call.handle);
    case Op::kSetNonBlocking:
      s->nonblocking = call.flag;
      return SockResult::Ok(0);
    case Op::kGetFlags:
      return SockResult::Ok(kORdwr | (s->nonblocking ? kONonblock : 0));
    case Op::kSetLinger:
      s->linger = call.flag && call.arg == 0;
      return SockResult::Ok(0);
    case Op::kSetNoDelay:
      s->nodelay = call.flag;
      if (tcb) tcb->set_nodelay(call.flag);
      return SockResult::Ok(0);
    case Op::kSetReuseAddr:
      return SockResult::Ok(0);  // the engine lets a listener take a port in TIME-WAIT anyway
    case Op::kGetSoError: {
      ConnectEnded(*s);
      SockResult r = SockResult::Ok(0);
      r.so_error = s->so_error.empty() ? "0" : std::exchange(s->so_error, "");
      return r;
    }
  }
  return SockResult::Error("EINVAL");
}

std::optional<SockResult> EngineTarget::TryConnect(Sock& s, const SockCall& call) {
  if (s.kind == Sock::Kind::kListener) return SockResult::Error("EINVAL");
  if (s.kind == Sock::Kind::kFresh) {
    wire::Endpoint local = s.bound.port ? s.bound : wire::Endpoint{kLocalAddr, 0};
    absl::StatusOr<tcp::ConnId> id = stack_->Connect(local, call.addr, now_);
    if (!id.ok()) return SockResult::Error(ErrnoName(id.status()));
    s.kind = Sock::Kind::kConn;
    s.id = *id;
    s.connecting = true;
    if (tcp::Tcb* t = stack_->Find(*id)) t->set_nodelay(s.nodelay);
    if (s.nonblocking) return SockResult::Error("EINPROGRESS");
  } else if (!s.connecting) {
    return SockResult::Error("EISCONN");
  }
  // Under way: done when the handshake completes or fails.
  if (!ConnectEnded(s)) {
    if (s.nonblocking) return SockResult::Error("EALREADY");
    return std::nullopt;
  }
  if (!s.so_error.empty()) return SockResult::Error(std::exchange(s.so_error, ""));
  return SockResult::Ok(0);
}

bool EngineTarget::ConnectEnded(Sock& s) {
  if (!s.connecting) return true;
  tcp::Tcb* tcb = stack_->Find(s.id);
  const TcpState st = tcb ? tcb->state() : TcpState::kClosed;
  if (st == TcpState::kSynSent || st == TcpState::kSynReceived) return false;
  s.connecting = false;
  if (st == TcpState::kClosed) s.so_error = tcb && !tcb->error().ok() ? ErrnoName(tcb->error()) : "ECONNREFUSED";
  return true;
}

std::optional<SockResult> EngineTarget::TryRead(Sock& s, const SockCall& call) {
  if (s.kind != Sock::Kind::kConn) return SockResult::Error(s.kind == Sock::Kind::kListener ? "EINVAL" : "ENOTCONN");
  tcp::Tcb* tcb = stack_->Find(s.id);
  if (tcb == nullptr) return SockResult::Ok(0);
  if (tcb->state() == TcpState::kSynSent || tcb->state() == TcpState::kSynReceived) {
    if (s.nonblocking) return SockResult::Error("EAGAIN");
    return std::nullopt;
  }
  std::vector<uint8_t> buf(static_cast<size_t>(std::max<int64_t>(call.arg, 0)));
  if (buf.empty()) return SockResult::Ok(0);
  absl::StatusOr<size_t> n = stack_->Recv(s.id, buf, now_);
  if (!n.ok()) return SockResult::Error(ErrnoName(n.status()));
  if (*n > 0 || tcb->AtEof()) return SockResult::Ok(static_cast<int64_t>(*n));
  if (!tcb->error().ok()) return SockResult::Error(ErrnoName(tcb->error()));
  if (s.nonblocking) return SockResult::Error("EAGAIN");
  return std::nullopt;
}

std::optional<SockResult> EngineTarget::TryWrite(Sock& s, Call& c) {
  if (s.kind != Sock::Kind::kConn) return SockResult::Error("EPIPE");
  const int64_t total = std::max<int64_t>(c.call.arg, 0);
  if (c.write_left < 0) c.write_left = total;
  tcp::Tcb* tcb = stack_->Find(s.id);
  if (tcb && (tcb->state() == TcpState::kSynSent || tcb->state() == TcpState::kSynReceived)) {
    if (s.nonblocking) return SockResult::Error("EAGAIN");
    return std::nullopt;
  }
  static const std::vector<uint8_t> kFiller(64 * 1024, 'x');
  while (c.write_left > 0) {
    size_t chunk = static_cast<size_t>(std::min<int64_t>(c.write_left, kFiller.size()));
    absl::StatusOr<size_t> n = stack_->Send(s.id, std::span(kFiller).first(chunk), now_);
    if (!n.ok()) {
      if (c.write_left == total) return SockResult::Error(ErrnoName(n.status()));
      break;  // a partial write returns what it took; the next write gets the error
    }
    if (*n == 0) break;
    c.write_left -= static_cast<int64_t>(*n);
  }
  const int64_t taken = total - c.write_left;
  if (c.write_left == 0) return SockResult::Ok(total);
  if (tcb && !tcb->error().ok()) {
    return taken ? SockResult::Ok(taken) : SockResult::Error(ErrnoName(tcb->error()));
  }
  if (s.nonblocking) return taken ? SockResult::Ok(taken) : SockResult::Error("EAGAIN");
  return std::nullopt;  // blocking: wait for room
}

SockResult EngineTarget::Close(int handle) {
  Sock s = socks_.at(handle);
  socks_.erase(handle);
  if (s.kind == Sock::Kind::kFresh) return SockResult::Ok(0);
  absl::Status st = s.linger && s.kind == Sock::Kind::kConn ? stack_->Abort(s.id, now_) : stack_->Close(s.id, now_);
  // close(2) succeeds even on a connection that was reset.
  (void)st;
  return SockResult::Ok(0);
}

void EngineTarget::OnState(Instant now, const tcp::StateEvent& ev) {
  notes_.push_back(absl::StrCat(Seconds(now), " engine conn ", ev.conn, " ", tcp::ToString(ev.from), " -> ",
                                tcp::ToString(ev.to), " (", ev.cause, ")"));
}

void EngineTarget::OnSegment(Instant now, const tcp::SegmentEvent& ev) {
  if (ev.dir != tcp::Direction::kIn || ev.verdict == tcp::Verdict::kAccepted) return;
  notes_.push_back(absl::StrCat(Seconds(now), " engine took the segment as: ", tcp::ToString(ev.verdict)));
}

std::vector<std::string> EngineTarget::TakeNotes() { return std::exchange(notes_, {}); }

std::vector<std::string> EngineTarget::Describe() {
  std::vector<std::string> out;
  for (const auto& [handle, s] : socks_) {
    std::string state = "not connected";
    if (s.kind == Sock::Kind::kListener) state = "LISTEN";
    if (const tcp::Tcb* t = s.kind == Sock::Kind::kConn ? stack_->Find(s.id) : nullptr) state = tcp::ToString(t->state());
    out.push_back(absl::StrCat("engine socket ", handle, ": ", state));
  }
  return out;
}

}  // namespace tcplab::grading
