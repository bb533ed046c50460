// The life-cycle demo against the real Linux kernel: a sandbox (network namespace + TUN),
// the engine as the client, the namespace's kernel as the server.
#pragma once

#include "absl/time/time.h"

namespace tcplab::demo {

struct KernelDemoOptions {
  absl::Duration msl = absl::Seconds(2);
  std::string request, response;
};

// Runs the demo; returns the process exit code. Removes the sandbox on SIGINT/SIGTERM.
int RunKernelDemo(const KernelDemoOptions& opts);

}  // namespace tcplab::demo
