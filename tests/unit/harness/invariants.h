// Invariants every TCB snapshot must satisfy, for the property and fuzz tests.
#pragma once

#include <string>

#include "engine/tcp/tcb.h"

namespace tcplab::testing {

// "" if `s` is sound, else a description of the first broken invariant: SND.UNA <= SND.NXT <=
// SND.MAX, and buffers (with the reassembler) within their capacities.
std::string CheckInvariants(const tcp::TcbSnapshot& s);

}  // namespace tcplab::testing
