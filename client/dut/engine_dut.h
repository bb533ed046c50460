// The engine as an external DUT: attaches tcplab's own stack to a lab through
// DutService.AttachDut, exactly as a student's stack would, and serves the lab's datagrams
// and socket calls in real time. `tcplab dut --stack engine` runs it; grading the engine
// this way and in process must agree, which proves the DUT protocol end to end.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"

namespace tcplab::dut {

struct EngineDutOptions {
  std::string name = "engine";
  std::string description = "tcplab engine (tcplab dut --stack engine)";
  // Called with one line per notable thing (attached, reset, detached).
  std::function<void(const std::string&)> log;
};

// Serves until `stop` becomes true or the lab ends the stream. OK when stopped or ended
// cleanly; otherwise the stream's status (ALREADY_EXISTS for a name in use, UNAVAILABLE
// when the server cannot be reached...).
absl::Status RunEngineDut(const std::shared_ptr<grpc::Channel>& channel, const EngineDutOptions& options,
                          const std::atomic<bool>& stop);

}  // namespace tcplab::dut
