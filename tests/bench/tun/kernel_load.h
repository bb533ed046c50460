// Kernel-side load for tun_bench: Linux TCP sockets inside a network namespace, each driven
// by its own thread (the way ordinary programs use the kernel), counting what they move.
// Every loop checks a stop flag at least every kTick, so Stop() returns within about a
// second whatever the peer does. Nothing here leaves the namespace it is given.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "engine/wire/segment.h"

namespace tcplab::bench {

// Moves the calling thread into the network namespace at `path` (e.g. /run/netns/<name>).
absl::Status EnterNetns(const std::string& path);

// Thread placement (on by default in tun_bench): the user-space datapath (the forwarder,
// lwIP's driver, the sandbox's reactor) on CPU 0, the kernel-side application threads on
// CPU 1, so that every row runs with the same placement rather than whatever the scheduler
// picks that time (which moved results by up to 50% between runs). No-ops while off or
// with fewer than two CPUs.
void SetPinning(bool on);
void PinToDatapathCpu();
void PinToAppCpu();

class KernelLoad {
 public:
  // `netns_path`: where every thread of this load lives.
  explicit KernelLoad(std::string netns_path);
  ~KernelLoad();  // Stop()
  KernelLoad(const KernelLoad&) = delete;
  KernelLoad& operator=(const KernelLoad&) = delete;

  // Listens on `local`; returns once the socket listens. Then reads every accepted
  // connection to its end, adding the octets to `*meter`.
  absl::Status BulkReceive(wire::Endpoint local, std::atomic<uint64_t>* meter);
  // Connects to `remote` (retrying for up to 2 s while nobody listens) and writes as fast as
  // the socket takes data, until Stop().
  void BulkSend(wire::Endpoint remote);
  // Listens on ports first_port .. first_port+ports-1 of `ip`; accepts, reads to EOF and
  // closes every connection (the server half of a connect+close loop). Returns once listening.
  absl::Status HandshakeServer(wire::Ipv4 ip, uint16_t first_port, int ports);
  // socket, connect, close, in a loop, to the ports in turn (spreading TIME-WAIT 4-tuples
  // over `ports` destinations, see tun_bench.cc). Adds each completed connect to `*meter`,
  // each failed one to `*failures`.
  void HandshakeClient(wire::Ipv4 ip, uint16_t first_port, int ports, std::atomic<uint64_t>* meter,
                       std::atomic<uint64_t>* failures);

  // Asks every thread to finish and joins them; idempotent.
  void Stop();

 private:
  // Starts a thread named `name` in the namespace; returns what `setup` returned there (after which `run`
  // goes on in the background), or the error of entering the namespace.
  absl::Status Spawn(const char* name, std::function<absl::Status()> setup, std::function<void()> run);

  const std::string netns_path_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace tcplab::bench
