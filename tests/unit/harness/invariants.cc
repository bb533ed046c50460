#include "tests/unit/harness/invariants.h"

#include "absl/strings/str_cat.h"

namespace tcplab::testing {

std::string CheckInvariants(const tcp::TcbSnapshot& s) {
  wire::SeqNum una(s.snd_una), nxt(s.snd_nxt), max(s.snd_max);
  if (!(una <= nxt)) return absl::StrCat("SND.UNA ", s.snd_una, " > SND.NXT ", s.snd_nxt);
  if (!(nxt <= max)) return absl::StrCat("SND.NXT ", s.snd_nxt, " > SND.MAX ", s.snd_max);
  if (s.send_buffered > s.send_capacity) {
    return absl::StrCat("send buffer holds ", s.send_buffered, " > ", s.send_capacity);
  }
  if (s.recv_buffered > s.recv_capacity) {
    return absl::StrCat("receive buffer holds ", s.recv_buffered, " > ", s.recv_capacity);
  }
  if (s.recv_buffered + s.out_of_order_bytes > s.recv_capacity) {
    return absl::StrCat("reassembler holds ", s.out_of_order_bytes, " beside ", s.recv_buffered,
                        " buffered, more than the ", s.recv_capacity, "-octet receive buffer");
  }
  return "";
}

}  // namespace tcplab::testing
