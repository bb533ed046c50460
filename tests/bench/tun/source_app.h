// A local application (Sandbox::SetLocalApp) for the benchmarks: the engine connects to the
// kernel side of the sandbox's TUN and writes as fast as its send buffer empties.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "engine/sandbox/sandbox.h"

namespace tcplab::bench {

// Connects to 198.18.0.1:`port`; stores the connection's id in `*id_out` if given.
inline sandbox::Sandbox::LocalApp SourceApp(uint16_t port, std::atomic<uint64_t>* id_out = nullptr) {
  struct State {
    tcp::ConnId id = 0;
    std::vector<uint8_t> chunk = std::vector<uint8_t>(64 * 1024, 'e');
  };
  auto st = std::make_shared<State>();
  return [st, port, id_out](stack::Stack& e, Instant now) {
    if (st->id == 0) {
      auto id = e.Connect({sandbox::Sandbox::kEngineAddr, 0}, {wire::Ipv4::Of(198, 18, 0, 1), port}, now);
      if (!id.ok()) return false;
      st->id = *id;
      if (id_out) *id_out = *id;
      return true;
    }
    const tcp::Tcb* tcb = e.Find(st->id);
    if (!tcb || tcb->state() != tcp::TcpState::kEstablished) return false;
    bool did = false;
    while (tcb->send_space() > 0) {
      auto n = e.Send(st->id, st->chunk, now);
      if (!n.ok() || *n == 0) break;
      did = true;
    }
    return did;
  };
}

}  // namespace tcplab::bench
