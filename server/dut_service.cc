#include "server/dut_service.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/status.h"

namespace tcplab::server {

namespace {

using Clock = DutSession::Clock;

constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxDescriptionBytes = 1024;
constexpr size_t kMaxDatagramBytes = 65535;
// What a DUT may queue unread (it floods, or no run is reading): beyond it, datagrams drop.
constexpr size_t kMaxQueuedDatagrams = 1024;
constexpr size_t kMaxErrBytes = 64;
// The lab's messages waiting for a DUT that does not read: beyond it, the DUT is detached.
constexpr size_t kMaxOutBytes = 16u << 20;
constexpr size_t kMaxDuts = 256;

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > kMaxNameBytes) return false;
  for (char c : n) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

std::string Ip(wire::Ipv4 ip) { return ip.ToString(); }

absl::Time ToAbsl(Clock::time_point t) { return absl::Now() + absl::FromChrono(t - Clock::now()); }

v1::SockOp ToProto(grading::SockCall::Op op) {
  using Op = grading::SockCall::Op;
  switch (op) {
    case Op::kSocket: return v1::SOCK_OP_SOCKET;
    case Op::kBind: return v1::SOCK_OP_BIND;
    case Op::kListen: return v1::SOCK_OP_LISTEN;
    case Op::kAccept: return v1::SOCK_OP_ACCEPT;
    case Op::kConnect: return v1::SOCK_OP_CONNECT;
    case Op::kRead: return v1::SOCK_OP_READ;
    case Op::kWrite: return v1::SOCK_OP_WRITE;
    case Op::kShutdown: return v1::SOCK_OP_SHUTDOWN;
    case Op::kClose: return v1::SOCK_OP_CLOSE;
    case Op::kSetNonBlocking: return v1::SOCK_OP_SET_NONBLOCKING;
    case Op::kGetFlags: return v1::SOCK_OP_GET_FLAGS;
    case Op::kSetLinger: return v1::SOCK_OP_SET_LINGER;
    case Op::kSetNoDelay: return v1::SOCK_OP_SET_NODELAY;
    case Op::kSetReuseAddr: return v1::SOCK_OP_SET_REUSEADDR;
    case Op::kGetSoError: return v1::SOCK_OP_GET_SO_ERROR;
  }
  return v1::SOCK_OP_UNSPECIFIED;
}

grading::SockResult FromProto(const v1::CallResult& r) {
  grading::SockResult s;
  if (!r.err().empty()) {
    s = grading::SockResult::Error(r.err());
  } else {
    s = grading::SockResult::Ok(r.value());
  }
  s.so_error = r.so_error();
  return s;
}

std::atomic<uint64_t> next_call_id{1};

// An AttachDut that ends at once with `s` (no valid token).
class FailedBidi : public grpc::ServerBidiReactor<v1::DutMessage, v1::LabMessage> {
 public:
  explicit FailedBidi(const absl::Status& s) { Finish(ToGrpc(s)); }
  void OnDone() override { delete this; }
};

}  // namespace

// --- DutSession ---------------------------------------------------------------------------

DutSession::DutSession(DutRegistry& registry, std::string peer, std::string tenant)
    : registry_(registry), peer_(std::move(peer)), tenant_(std::move(tenant)) {}

void DutSession::Start() {
  {
    absl::MutexLock l(&mu_);
    self_ = shared_from_this();
    start_ = Clock::now();
  }
  StartRead(&in_);
}

void DutSession::OnReadDone(bool ok) {
  if (!ok) {  // the DUT closed its side, or the call is gone
    Detach(grpc::Status::OK);
    return;
  }
  if (absl::Status s = Handle(in_); !s.ok()) {
    Detach(ToGrpc(s));
    return;
  }
  StartRead(&in_);
}

absl::Status DutSession::Handle(const v1::DutMessage& m) {
  bool attached;
  {
    absl::MutexLock l(&mu_);
    attached = attached_;
  }
  if (!attached) {
    if (!m.has_hello()) {
      return absl::InvalidArgumentError("the first message must be hello {name}, got another kind");
    }
    if (!ValidName(m.hello().name())) {
      return absl::InvalidArgumentError(absl::StrCat("hello.name: must be 1 to ", kMaxNameBytes,
                                                     " of [A-Za-z0-9._-], got \"", m.hello().name(), "\""));
    }
    if (m.hello().description().size() > kMaxDescriptionBytes) {
      return absl::InvalidArgumentError(absl::StrCat("hello.description: at most ", kMaxDescriptionBytes, " octets"));
    }
    name_ = m.hello().name();
    description_ = m.hello().description();
    TCPLAB_RETURN_IF_ERROR(registry_.Add(shared_from_this()));
    {
      absl::MutexLock l(&mu_);
      attached_ = true;
    }
    v1::LabMessage w;
    w.mutable_welcome()->set_name(name_);
    w.mutable_welcome()->set_local_ip(Ip(grading::kLocalAddr));
    w.mutable_welcome()->set_peer_ip(Ip(grading::kRemoteAddr));
    Send(std::move(w));
    return absl::OkStatus();
  }
  switch (m.msg_case()) {
    case v1::DutMessage::kHello:
      return absl::InvalidArgumentError("hello: already attached as \"" + name_ + "\"");
    case v1::DutMessage::kDatagram: {
      if (m.datagram().data().size() > kMaxDatagramBytes || m.datagram().data().empty()) {
        return absl::InvalidArgumentError(absl::StrCat("datagram.data: must be 1 to 65535 octets, got ",
                                                       m.datagram().data().size()));
      }
      absl::MutexLock l(&mu_);
      // Only while a script runs, and bounded: a DUT cannot fill the server's memory.
      if (expecting_ && datagrams_.size() < kMaxQueuedDatagrams) {
        datagrams_.push_back({Clock::now(), m.datagram().data()});
      }
      return absl::OkStatus();
    }
    case v1::DutMessage::kResetDone: {
      absl::MutexLock l(&mu_);
      if (resetting_) {
        resetting_ = false;
        datagrams_.clear();  // whatever came before the DUT had reset
        expecting_ = true;
      }
      return absl::OkStatus();
    }
    case v1::DutMessage::kResult: {
      const v1::CallResult& r = m.result();
      if (r.err().size() > kMaxErrBytes || r.so_error().size() > kMaxErrBytes) {
        return absl::InvalidArgumentError(absl::StrCat("result.err: an errno name of at most ", kMaxErrBytes,
                                                       " octets, like \"ECONNREFUSED\""));
      }
      absl::MutexLock l(&mu_);
      if (!issued_.contains(r.id())) return absl::OkStatus();  // not a call of the script running now
      answered_.try_emplace(r.id(), r);
      if (!r.blocked()) {
        final_.try_emplace(r.id(), Clock::now(), r);
        issued_.erase(r.id());
      }
      return absl::OkStatus();
    }
    case v1::DutMessage::MSG_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("an empty message: expected hello, datagram or result");
}

void DutSession::Reset(const std::string& script) {
  {
    absl::MutexLock l(&mu_);
    datagrams_.clear();
    answered_.clear();
    final_.clear();
    issued_.clear();
    expecting_ = false;  // until the DUT says it has reset
    resetting_ = true;
    start_ = Clock::now();
  }
  v1::LabMessage m;
  m.mutable_reset()->set_script(script);
  Send(std::move(m));
}

bool DutSession::AwaitResetDone(Clock::time_point deadline) {
  absl::MutexLock l(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !resetting_ || detached_; };
  mu_.AwaitWithDeadline(absl::Condition(&ready), ToAbsl(deadline));
  return !resetting_ && !detached_;
}

Clock::time_point DutSession::start() const {
  absl::MutexLock l(&mu_);
  return start_;
}

bool DutSession::Send(v1::LabMessage m) {
  Action a;
  bool overflow = false;
  {
    absl::MutexLock l(&mu_);
    if (detached_) return false;
    if (m.has_call()) issued_.insert(m.call().id());
    out_bytes_ += m.ByteSizeLong();
    out_.push_back(std::move(m));
    overflow = out_bytes_ > kMaxOutBytes;
    a = NextWrite();
  }
  Perform(a);
  if (overflow) {  // the DUT does not read what it is sent
    Detach(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "the DUT did not read the lab's messages (more than 16 MiB waiting)"));
    return false;
  }
  return true;
}

DutSession::Action DutSession::NextWrite() {
  if (writing_ || finishing_) return Action::kNone;
  if (detached_) {
    finishing_ = true;
    return Action::kFinish;
  }
  if (out_.empty()) return Action::kNone;
  writing_msg_ = std::move(out_.front());
  out_.pop_front();
  out_bytes_ -= writing_msg_.ByteSizeLong();
  writing_ = true;
  return Action::kWrite;
}

void DutSession::Perform(Action a) {
  if (a == Action::kWrite) StartWrite(&writing_msg_);
  if (a == Action::kFinish) Finish(finish_status_);
}

void DutSession::OnWriteDone(bool ok) {
  if (!ok) {
    {
      absl::MutexLock l(&mu_);
      writing_ = false;  // the write has ended, failed: Detach may now Finish
    }
    Detach(grpc::Status::OK);
    return;
  }
  Action a;
  {
    absl::MutexLock l(&mu_);
    writing_ = false;
    a = NextWrite();
  }
  Perform(a);
}

void DutSession::OnCancel() { Detach(grpc::Status(grpc::StatusCode::CANCELLED, "detached")); }

void DutSession::Detach(grpc::Status why) {
  Action a;
  {
    absl::MutexLock l(&mu_);
    if (!detached_) {
      detached_ = true;
      finish_status_ = std::move(why);
    }
    a = NextWrite();
  }
  registry_.Remove(this);
  Perform(a);
}

void DutSession::OnDone() {
  registry_.Remove(this);
  std::shared_ptr<DutSession> keep;
  {
    absl::MutexLock l(&mu_);
    detached_ = true;
    keep = std::move(self_);
  }
  // `keep` ends here and may destroy this, unless a grading run still holds the session.
}

bool DutSession::detached() const {
  absl::MutexLock l(&mu_);
  return detached_;
}

std::optional<DutSession::Received> DutSession::NextDatagram(Clock::time_point deadline) {
  absl::MutexLock l(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !datagrams_.empty() || detached_; };
  mu_.AwaitWithDeadline(absl::Condition(&ready), ToAbsl(deadline));
  if (datagrams_.empty()) return std::nullopt;
  Received r = std::move(datagrams_.front());
  datagrams_.pop_front();
  return r;
}

std::optional<v1::CallResult> DutSession::AwaitAnswer(uint64_t id, Clock::time_point deadline) {
  absl::MutexLock l(&mu_);
  auto ready = [this, id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return answered_.contains(id) || detached_; };
  mu_.AwaitWithDeadline(absl::Condition(&ready), ToAbsl(deadline));
  auto it = answered_.find(id);
  if (it == answered_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::pair<Clock::time_point, v1::CallResult>> DutSession::Final(uint64_t id) {
  absl::MutexLock l(&mu_);
  auto it = final_.find(id);
  if (it == final_.end()) return std::nullopt;
  return it->second;
}

// --- DutRegistry --------------------------------------------------------------------------

absl::Status DutRegistry::Add(std::shared_ptr<DutSession> s) {
  absl::MutexLock l(&mu_);
  if (by_name_.size() >= kMaxDuts) {
    return absl::ResourceExhaustedError(absl::StrCat(kMaxDuts, " DUTs are attached, the most a server takes"));
  }
  Key key{s->tenant(), s->name()};
  if (by_name_.contains(key)) {
    return absl::AlreadyExistsError(absl::StrCat("a DUT named \"", s->name(), "\" is already attached"));
  }
  by_name_[key] = std::move(s);
  return absl::OkStatus();
}

void DutRegistry::Remove(const DutSession* s) {
  // By pointer, not name: the session's name may be being set on another reaction.
  absl::MutexLock l(&mu_);
  for (auto it = by_name_.begin(); it != by_name_.end(); ++it) {
    if (it->second.get() == s) {
      by_name_.erase(it);
      return;
    }
  }
}

absl::StatusOr<std::unique_ptr<DutRegistry::Lease>> DutRegistry::Acquire(const std::string& name,
                                                                          const std::string& tenant) {
  absl::MutexLock l(&mu_);
  const Key key{tenant, name};
  auto it = by_name_.find(key);
  if (it == by_name_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no DUT named \"", name, "\" is attached (attach one with DutService.AttachDut, e.g. `tcplab dut`)"));
  }
  if (busy_[key]) {
    return absl::FailedPreconditionError(absl::StrCat("DUT \"", name, "\" is busy with another grading run"));
  }
  busy_[key] = true;
  return std::make_unique<Lease>(this, it->second);
}

DutRegistry::Lease::~Lease() {
  absl::MutexLock l(&registry_->mu_);
  registry_->busy_.erase({session_->tenant(), session_->name()});
}

void DutRegistry::EndAll(const grpc::Status& why) {
  std::vector<std::shared_ptr<DutSession>> all;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [key, s] : by_name_) all.push_back(s);
  }
  for (const auto& s : all) s->End(why);  // Detach takes mu_ through Remove: not under it
}

std::vector<v1::AttachedDut> DutRegistry::List(const std::string& tenant) const {
  absl::MutexLock l(&mu_);
  std::vector<v1::AttachedDut> out;
  for (auto it = by_name_.lower_bound({tenant, ""}); it != by_name_.end() && it->first.first == tenant; ++it) {
    const auto& [key, s] = *it;
    v1::AttachedDut d;
    d.set_name(key.second);
    d.set_description(s->description());
    d.set_peer(s->peer());
    auto b = busy_.find(key);
    d.set_busy(b != busy_.end() && b->second);
    out.push_back(std::move(d));
  }
  return out;
}

// --- DutServiceImpl -------------------------------------------------------------------------

grpc::ServerBidiReactor<v1::DutMessage, v1::LabMessage>* DutServiceImpl::AttachDut(grpc::CallbackServerContext* ctx) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return new FailedBidi(tenant.status());
  auto s = std::make_shared<DutSession>(registry_, ctx->peer(), *std::move(tenant));
  s->Start();
  return s.get();
}

grpc::ServerUnaryReactor* DutServiceImpl::ListDuts(grpc::CallbackServerContext* ctx, const v1::ListDutsRequest*,
                                                   v1::ListDutsResponse* resp) {
  absl::StatusOr<std::string> tenant = auth_.TenantOf(*ctx);
  if (!tenant.ok()) return FinishUnary(ctx, tenant.status());
  for (v1::AttachedDut& d : registry_.List(*tenant)) *resp->add_duts() = std::move(d);
  return FinishUnary(ctx, absl::OkStatus());
}

// --- DutTarget ------------------------------------------------------------------------------

DutTarget::DutTarget(std::shared_ptr<DutSession> session, const std::string& script) : s_(std::move(session)) {
  s_->Reset(script);
  reset_ok_ = s_->AwaitResetDone(Clock::now() + kAnswerTimeout);
  start_ = s_->start();
}

absl::Status DutTarget::ready() const {
  if (reset_ok_) return absl::OkStatus();
  if (s_->detached()) return absl::UnavailableError("the DUT detached");
  return absl::DeadlineExceededError("the DUT did not answer reset with reset_done within 2 s (see dut.proto)");
}

Duration DutTarget::Now() { return Clock::now() - start_; }

void DutTarget::AdvanceTo(Duration t) {
  const Duration d = t - Now();
  if (d > Duration::zero()) std::this_thread::sleep_for(d);
}

absl::Status DutTarget::Inject(std::span<const uint8_t> datagram) {
  v1::LabMessage m;
  m.mutable_datagram()->set_data(datagram.data(), datagram.size());
  if (!s_->Send(std::move(m))) return absl::UnavailableError("the DUT detached");
  return absl::OkStatus();
}

std::optional<grading::Target::Sent> DutTarget::NextSent(Duration deadline) {
  std::optional<DutSession::Received> r = s_->NextDatagram(start_ + deadline);
  if (!r) return std::nullopt;
  return Sent{r->at - start_, std::vector<uint8_t>(r->bytes.begin(), r->bytes.end())};
}

int DutTarget::StartCall(const grading::SockCall& call) {
  const uint64_t id = next_call_id.fetch_add(1);  // unique per process: a late answer never matches
  const int index = static_cast<int>(immediate_.size());
  immediate_.emplace_back();
  ids_.push_back(id);
  v1::LabMessage m;
  v1::SocketCall* c = m.mutable_call();
  c->set_id(id);
  c->set_op(ToProto(call.op));
  c->set_handle(call.handle);
  c->set_arg(call.arg);
  c->set_flag(call.flag);
  if (call.op == grading::SockCall::Op::kBind || call.op == grading::SockCall::Op::kConnect) {
    c->set_addr_ip(call.addr.ip.ToString());
    c->set_addr_port(call.addr.port);
  }
  if (!s_->Send(std::move(m))) {
    immediate_[index] = Done{Now(), grading::SockResult::Error("EDUTDETACHED (the DUT detached)")};
    return index;
  }
  std::optional<v1::CallResult> a = s_->AwaitAnswer(id, Clock::now() + kAnswerTimeout);
  if (!a) {
    immediate_[index] = Done{Now(), grading::SockResult::Error(
                                        s_->detached() ? "EDUTDETACHED (the DUT detached)"
                                                       : "EDUTTIMEOUT (the DUT did not answer within 2 s)")};
  }
  return index;
}

std::optional<grading::Target::Done> DutTarget::Poll(int call) {
  if (call < 0 || call >= static_cast<int>(immediate_.size())) return std::nullopt;
  if (immediate_[call]) return immediate_[call];
  if (auto f = s_->Final(ids_[call])) return Done{f->first - start_, FromProto(f->second)};
  if (s_->detached()) return Done{Now(), grading::SockResult::Error("EDUTDETACHED (the DUT detached)")};
  return std::nullopt;
}

std::vector<std::string> DutTarget::Describe() {
  return {absl::StrCat("DUT \"", s_->name(), "\" at ", s_->peer(), s_->detached() ? " (detached)" : "")};
}

}  // namespace tcplab::server
