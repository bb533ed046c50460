// DutService: stacks under test attached over gRPC (proto/tcplab/v1/dut.proto), and the
// grading target that drives one (DutTarget).
//
// A DutSession is one AttachDut stream. Its reactor reads the DUT's messages continuously
// (datagrams and call results go into queues a grading run waits on) and writes the lab's
// messages one at a time from a queue. The DutRegistry knows the sessions by name and lends
// one to at most one grading run at a time.
//
// Lifetimes: a session is held by shared_ptr: by itself until its stream is done, by the
// registry while attached, and by a DutTarget during a run, so a DUT that detaches in the
// middle of a script fails that script ("the DUT detached") and nothing dangles.
//
// Tenants (server/auth.h): a DUT belongs to the tenant that attached it. Names are unique per
// tenant; only that tenant lists it or grades against it, and to every other tenant its name
// is unknown (the same error as a name nobody attached).
//
// Lock order: DutRegistry::mu_, then DutSession::mu_.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/grading/target.h"
#include "server/auth.h"
#include "tcplab/v1/dut.grpc.pb.h"

namespace tcplab::server {

class DutRegistry;

class DutSession : public grpc::ServerBidiReactor<v1::DutMessage, v1::LabMessage>,
                   public std::enable_shared_from_this<DutSession> {
 public:
  using Clock = std::chrono::steady_clock;

  DutSession(DutRegistry& registry, std::string peer, std::string tenant);
  void Start();  // after construction: holds itself, starts reading

  // --- for a grading run (DutTarget) ---
  // Starts a script: restarts the clock and tells the DUT; what the DUT sends counts once it
  // has answered reset_done (AwaitResetDone).
  void Reset(const std::string& script);
  bool AwaitResetDone(Clock::time_point deadline) ABSL_LOCKS_EXCLUDED(mu_);
  Clock::time_point start() const;
  bool Send(v1::LabMessage m) ABSL_LOCKS_EXCLUDED(mu_);  // false once detached
  // The next datagram the DUT sent since Reset, waiting until `deadline`.
  struct Received {
    Clock::time_point at;
    std::string bytes;
  };
  std::optional<Received> NextDatagram(Clock::time_point deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // The DUT's answers to call `id`: waits until one arrives (blocked or final) or `deadline`.
  std::optional<v1::CallResult> AwaitAnswer(uint64_t id, Clock::time_point deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // The final result of call `id` with the time it arrived, if it has.
  std::optional<std::pair<Clock::time_point, v1::CallResult>> Final(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  bool detached() const ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the stream with `why` (server shutdown).
  void End(grpc::Status why) { Detach(std::move(why)); }

  const std::string& name() const { return name_; }
  const std::string& description() const { return description_; }
  const std::string& peer() const { return peer_; }
  const std::string& tenant() const { return tenant_; }

  // --- the reactor ---
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  enum class Action { kNone, kWrite, kFinish };
  Action NextWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Perform(Action a);
  void Detach(grpc::Status why) ABSL_LOCKS_EXCLUDED(mu_);
  // Handles one message; an error ends the stream.
  absl::Status Handle(const v1::DutMessage& m);

  DutRegistry& registry_;
  const std::string peer_;
  const std::string tenant_;
  std::string name_, description_;  // set by the hello, then constant
  v1::DutMessage in_;               // the read in flight

  mutable absl::Mutex mu_;
  std::shared_ptr<DutSession> self_ ABSL_GUARDED_BY(mu_);  // until OnDone
  bool attached_ ABSL_GUARDED_BY(mu_) = false;  // hello accepted
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point start_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::LabMessage> out_ ABSL_GUARDED_BY(mu_);
  size_t out_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  v1::LabMessage writing_msg_;  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_;
  bool expecting_ ABSL_GUARDED_BY(mu_) = false;  // a script runs and the DUT has reset
  bool resetting_ ABSL_GUARDED_BY(mu_) = false;  // reset sent, reset_done not yet seen
  std::set<uint64_t> issued_ ABSL_GUARDED_BY(mu_);  // calls sent and not finally answered
  std::deque<Received> datagrams_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, v1::CallResult> answered_ ABSL_GUARDED_BY(mu_);  // first answer (blocked or final)
  std::map<uint64_t, std::pair<Clock::time_point, v1::CallResult>> final_ ABSL_GUARDED_BY(mu_);
};

class DutRegistry {
 public:
  // Names a session in its tenant; ALREADY_EXISTS if the tenant has a DUT of that name.
  absl::Status Add(std::shared_ptr<DutSession> s) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(const DutSession* s) ABSL_LOCKS_EXCLUDED(mu_);
  // Lends the tenant's DUT `name` to a run until the lease is dropped. FAILED_PRECONDITION if
  // the tenant has no DUT of that name attached or another run has it.
  class Lease {
   public:
    Lease(DutRegistry* r, std::shared_ptr<DutSession> s) : registry_(r), session_(std::move(s)) {}
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    const std::shared_ptr<DutSession>& session() const { return session_; }

   private:
    DutRegistry* registry_;
    std::shared_ptr<DutSession> session_;
  };
  absl::StatusOr<std::unique_ptr<Lease>> Acquire(const std::string& name, const std::string& tenant = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  // The tenant's DUTs.
  std::vector<v1::AttachedDut> List(const std::string& tenant = "") const ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every DUT's stream with `why` (at shutdown, so DUTs learn it at once).
  void EndAll(const grpc::Status& why) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Key = std::pair<std::string, std::string>;  // tenant, name
  mutable absl::Mutex mu_;
  std::map<Key, std::shared_ptr<DutSession>> by_name_ ABSL_GUARDED_BY(mu_);
  std::map<Key, bool> busy_ ABSL_GUARDED_BY(mu_);
};

class DutServiceImpl final : public v1::DutService::CallbackService {
 public:
  DutServiceImpl(DutRegistry& registry, const Authenticator& auth) : registry_(registry), auth_(auth) {}
  grpc::ServerBidiReactor<v1::DutMessage, v1::LabMessage>* AttachDut(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* ListDuts(grpc::CallbackServerContext* ctx, const v1::ListDutsRequest* req,
                                     v1::ListDutsResponse* resp) override;

 private:
  DutRegistry& registry_;
  const Authenticator& auth_;
};

// A grading target that is an attached DUT, for one script: Reset on construction, real time.
class DutTarget final : public grading::Target {
 public:
  DutTarget(std::shared_ptr<DutSession> session, const std::string& script);
  // OK once the DUT acknowledged the reset; otherwise why the script cannot run.
  absl::Status ready() const;

  std::string name() const override { return "dut"; }
  bool virtual_time() const override { return false; }
  Duration Now() override;
  void AdvanceTo(Duration t) override;
  absl::Status Inject(std::span<const uint8_t> datagram) override;
  std::optional<Sent> NextSent(Duration deadline) override;
  int StartCall(const grading::SockCall& call) override;
  std::optional<Done> Poll(int call) override;
  std::vector<std::string> Describe() override;

  // How long a DUT may take to answer a call (at once, or "blocked").
  static constexpr std::chrono::seconds kAnswerTimeout{2};

 private:
  std::shared_ptr<DutSession> s_;
  bool reset_ok_ = false;
  DutSession::Clock::time_point start_;
  std::vector<std::optional<Done>> immediate_;  // by call index: failed without an answer
  std::vector<uint64_t> ids_;                   // by call index: the id the DUT sees
};

}  // namespace tcplab::server
