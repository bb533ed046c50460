// EngineTarget: the project's own stack as a grading target, in process and in virtual time.
// Nothing sleeps: letting a second pass runs the timers due in it, so a script that waits
// out TIME-WAIT takes microseconds, and every timing is exact.
//
// The socket layer is the small part of POSIX the script language uses (target.h), mapped
// onto stack::Stack: a listening socket is a listener, a connected one a TCB. Blocking calls
// (accept, connect, read, a write the send buffer cannot take) stay pending and are retried
// after every datagram and every timer, so they complete at the virtual instant they would
// have woken.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/grading/target.h"
#include "engine/stack/stack.h"

namespace tcplab::grading {

class EngineTarget final : public Target, private tcp::EventSink {
 public:
  // `tcp` configures the stack under test (MSL, RTO, options offered...).
  explicit EngineTarget(tcp::TcpConfig tcp = {});
  ~EngineTarget() override;

  std::string name() const override { return "engine"; }
  bool virtual_time() const override { return true; }
  Duration Now() override { return now_ - Instant{}; }
  void AdvanceTo(Duration t) override;
  absl::Status Inject(std::span<const uint8_t> datagram) override;
  std::optional<Sent> NextSent(Duration deadline) override;
  int StartCall(const SockCall& call) override;
  std::optional<Done> Poll(int call) override;
  std::vector<std::string> TakeNotes() override;
  std::vector<std::string> Describe() override;

 private:
  struct Sock {
    enum class Kind { kFresh, kListener, kConn } kind = Kind::kFresh;
    tcp::ConnId id = 0;
    wire::Endpoint bound;
    bool nonblocking = false;
    bool linger = false;  // SO_LINGER on with a zero timeout: close(2) sends RST
    bool nodelay = false;
    bool connecting = false;  // a connect is under way (EINPROGRESS, or a blocking one)
    std::string so_error;     // SO_ERROR: a failed non-blocking connect's errno
  };
  struct Call {
    SockCall call;
    int64_t write_left = -1;  // a write's octets not yet taken (-1: not started)
    std::optional<Done> done;
  };

  // One attempt at a call at now_: its result, or nothing if it would block.
  std::optional<SockResult> Try(Call& c);
  std::optional<SockResult> TryConnect(Sock& s, const SockCall& c);
  std::optional<SockResult> TryRead(Sock& s, const SockCall& c);
  // A connect under way has ended: record how, for SO_ERROR. False while still under way.
  bool ConnectEnded(Sock& s);
  std::optional<SockResult> TryWrite(Sock& s, Call& c);
  SockResult Close(int handle);
  // Retries the pending calls; call after anything that may wake one.
  void Retry();
  void RunTimersUntil(Instant t);
  Sock* Find(int handle);

  // EventSink: notes for failure reports.
  void OnState(Instant now, const tcp::StateEvent& ev) override;
  void OnSegment(Instant now, const tcp::SegmentEvent& ev) override;

  tcp::TcpConfig tcp_;
  std::unique_ptr<stack::Stack> stack_;
  Instant now_{};
  std::deque<Sent> sent_;
  std::map<int, Sock> socks_;
  int next_handle_ = 3;
  std::vector<Call> calls_;
  std::vector<std::string> notes_;
};

// The errno name a stack error stands for ("ECONNRESET"), EINVAL if it names none.
std::string ErrnoName(const absl::Status& s);

}  // namespace tcplab::grading
