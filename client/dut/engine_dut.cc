#include "client/dut/engine_dut.h"

#include <chrono>
#include <deque>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "engine/grading/engine_target.h"
#include "tcplab/v1/dut.grpc.pb.h"

namespace tcplab::dut {

namespace {

namespace v1 = ::tcplab::v1;
using Clock = std::chrono::steady_clock;
using grading::SockCall;

wire::Ipv4 ParseIp(const std::string& s) {
  std::vector<std::string> p = absl::StrSplit(s, '.');
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    uint32_t b = 0;
    if (i < p.size()) (void)absl::SimpleAtoi(p[i], &b);
    v = (v << 8) | (b & 0xff);
  }
  return wire::Ipv4{v};
}

SockCall FromProto(const v1::SocketCall& c) {
  SockCall s;
  switch (c.op()) {
    case v1::SOCK_OP_SOCKET: s.op = SockCall::Op::kSocket; break;
    case v1::SOCK_OP_BIND: s.op = SockCall::Op::kBind; break;
    case v1::SOCK_OP_LISTEN: s.op = SockCall::Op::kListen; break;
    case v1::SOCK_OP_ACCEPT: s.op = SockCall::Op::kAccept; break;
    case v1::SOCK_OP_CONNECT: s.op = SockCall::Op::kConnect; break;
    case v1::SOCK_OP_READ: s.op = SockCall::Op::kRead; break;
    case v1::SOCK_OP_WRITE: s.op = SockCall::Op::kWrite; break;
    case v1::SOCK_OP_SHUTDOWN: s.op = SockCall::Op::kShutdown; break;
    case v1::SOCK_OP_CLOSE: s.op = SockCall::Op::kClose; break;
    case v1::SOCK_OP_SET_NONBLOCKING: s.op = SockCall::Op::kSetNonBlocking; break;
    case v1::SOCK_OP_GET_FLAGS: s.op = SockCall::Op::kGetFlags; break;
    case v1::SOCK_OP_SET_LINGER: s.op = SockCall::Op::kSetLinger; break;
    case v1::SOCK_OP_SET_NODELAY: s.op = SockCall::Op::kSetNoDelay; break;
    case v1::SOCK_OP_SET_REUSEADDR: s.op = SockCall::Op::kSetReuseAddr; break;
    case v1::SOCK_OP_GET_SO_ERROR: s.op = SockCall::Op::kGetSoError; break;
    default: break;  // the caller answers EINVAL before getting here
  }
  s.handle = c.handle();
  s.arg = c.arg();
  s.flag = c.flag();
  s.addr = {ParseIp(c.addr_ip()), static_cast<uint16_t>(c.addr_port())};
  return s;
}

v1::DutMessage Result(uint64_t id, const grading::SockResult& r) {
  v1::DutMessage m;
  v1::CallResult* c = m.mutable_result();
  c->set_id(id);
  c->set_value(r.value);
  c->set_err(r.err);
  c->set_so_error(r.so_error);
  return m;
}

}  // namespace

absl::Status RunEngineDut(const std::shared_ptr<grpc::Channel>& channel, const EngineDutOptions& options,
                          const std::atomic<bool>& stop) {
  auto log = [&](const std::string& s) {
    if (options.log) options.log(s);
  };
  std::unique_ptr<v1::DutService::Stub> stub = v1::DutService::NewStub(channel);
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::DutMessage, v1::LabMessage>> stream = stub->AttachDut(&ctx);
  {
    v1::DutMessage hello;
    hello.mutable_hello()->set_name(options.name);
    hello.mutable_hello()->set_description(options.description);
    if (!stream->Write(hello)) {
      // The stream is over before it started (no server there, most often): its status says why.
      grpc::Status s = stream->Finish();
      if (s.ok()) return absl::UnavailableError("the lab closed the stream before the hello");
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
  }

  // The reader thread queues the lab's messages; this thread serves them and the engine's
  // timers, and is the only writer.
  absl::Mutex mu;
  std::deque<v1::LabMessage> inbox;
  bool ended = false;
  std::thread reader([&] {
    v1::LabMessage m;
    while (stream->Read(&m)) {
      absl::MutexLock l(&mu);
      inbox.push_back(m);
    }
    absl::MutexLock l(&mu);
    ended = true;
  });

  std::unique_ptr<grading::EngineTarget> engine;
  Clock::time_point start = Clock::now();
  std::map<int, uint64_t> blocked;  // engine call index -> the lab's call id
  bool write_failed = false;
  auto write = [&](const v1::DutMessage& m) {
    if (!write_failed && !stream->Write(m)) write_failed = true;
  };
  while (!stop.load() && !write_failed) {
    std::deque<v1::LabMessage> batch;
    {
      absl::MutexLock l(&mu);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !inbox.empty() || ended; };
      // 1 ms: the engine's timers are served at that granularity.
      mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(1));
      batch.swap(inbox);
      if (ended && batch.empty()) break;
    }
    if (engine) engine->AdvanceTo(Clock::now() - start);
    for (const v1::LabMessage& m : batch) {
      switch (m.msg_case()) {
        case v1::LabMessage::kWelcome:
          log(absl::StrCat("attached as \"", m.welcome().name(), "\" (", m.welcome().local_ip(), ")"));
          break;
        case v1::LabMessage::kReset:
          engine = std::make_unique<grading::EngineTarget>();
          start = Clock::now();
          blocked.clear();
          log(absl::StrCat("reset: ", m.reset().script()));
          {
            v1::DutMessage done;
            done.mutable_reset_done();
            write(done);
          }
          break;
        case v1::LabMessage::kDatagram:
          if (engine) {
            const std::string& d = m.datagram().data();
            (void)engine->Inject(std::span(reinterpret_cast<const uint8_t*>(d.data()), d.size()));
          }
          break;
        case v1::LabMessage::kCall: {
          const v1::SocketCall& c = m.call();
          if (!engine || c.op() == v1::SOCK_OP_UNSPECIFIED || !v1::SockOp_IsValid(c.op())) {
            write(Result(c.id(), grading::SockResult::Error("EINVAL")));
            break;
          }
          const int index = engine->StartCall(FromProto(c));
          if (std::optional<grading::Target::Done> d = engine->Poll(index)) {
            write(Result(c.id(), d->result));
          } else {
            v1::DutMessage b;
            b.mutable_result()->set_id(c.id());
            b.mutable_result()->set_blocked(true);
            write(b);
            blocked[index] = c.id();
          }
          break;
        }
        case v1::LabMessage::MSG_NOT_SET:
          break;
      }
    }
    if (!engine) continue;
    // What the engine sent, and blocked calls that completed.
    while (std::optional<grading::Target::Sent> s = engine->NextSent(engine->Now())) {
      v1::DutMessage m;
      m.mutable_datagram()->set_data(s->bytes.data(), s->bytes.size());
      write(m);
    }
    for (auto it = blocked.begin(); it != blocked.end();) {
      if (std::optional<grading::Target::Done> d = engine->Poll(it->first)) {
        write(Result(it->second, d->result));
        it = blocked.erase(it);
      } else {
        ++it;
      }
    }
  }
  stream->WritesDone();
  if (stop.load()) ctx.TryCancel();
  reader.join();
  grpc::Status s = stream->Finish();
  log("detached");
  // CANCELLED is our own TryCancel only when stopping; otherwise the lab (or its transport) cut
  // the stream, which the caller must hear about.
  if (stop.load() || s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace tcplab::dut
