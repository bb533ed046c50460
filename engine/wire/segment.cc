// Text forms of the wire types, for logs, events and test failure messages.
#include "engine/wire/segment.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tcplab::wire {
namespace {

// One flag per header bit, low to high (RFC 9293 §3.1; ECE and CWR from RFC 3168 §6.1).
struct FlagName {
  Flag flag;
  const char* name;  // FlagsToString
  char letter;       // tcpdump / packetdrill
};
// In tcpdump's order (F S R P . U E W), so SYN+ACK prints "S." and FIN+ACK "F." as there.
constexpr FlagName kFlagNames[] = {
    {kFin, "FIN", 'F'}, {kSyn, "SYN", 'S'}, {kRst, "RST", 'R'}, {kPsh, "PSH", 'P'},
    {kAck, "ACK", '.'}, {kUrg, "URG", 'U'}, {kEce, "ECE", 'E'}, {kCwr, "CWR", 'W'},
};

std::string FlagLetters(uint8_t flags) {
  if (flags == 0) return "none";
  std::string s;
  for (const FlagName& f : kFlagNames) {
    if (flags & f.flag) s.push_back(f.letter);
  }
  return s;
}

// Options in tcpdump's words, in the order Serialize writes them.
std::string OptionsToString(const TcpOptions& o) {
  std::string s;
  auto add = [&s](const std::string& item) { absl::StrAppend(&s, s.empty() ? "" : ",", item); };
  if (o.mss) add(absl::StrCat("mss ", *o.mss));
  if (o.sack_permitted) add("sackOK");
  if (o.timestamps) add(absl::StrCat("TS val ", o.timestamps->val, " ecr ", o.timestamps->ecr));
  if (o.window_scale) add(absl::StrCat("wscale ", *o.window_scale));
  if (o.sack_count > 0) {
    std::string sack = absl::StrCat("sack ", o.sack_count, " ");
    for (int i = 0; i < o.sack_count && i < kMaxSackBlocks; ++i) {
      absl::StrAppend(&sack, "{", o.sack[i].left.raw(), ":", o.sack[i].right.raw(), "}");
    }
    add(sack);
  }
  return s;
}

}  // namespace

std::string Ipv4::ToString() const {
  // StrCat, not StrFormat: this runs four times per segment event the server converts.
  return absl::StrCat((v >> 24) & 0xff, ".", (v >> 16) & 0xff, ".", (v >> 8) & 0xff, ".", v & 0xff);
}

std::string Endpoint::ToString() const { return absl::StrCat(ip.ToString(), ":", port); }

std::string FlagsToString(uint8_t flags) {
  if (flags == 0) return "none";
  std::string s;
  for (const FlagName& f : kFlagNames) {
    if (flags & f.flag) absl::StrAppend(&s, s.empty() ? "" : "|", f.name);
  }
  return s;
}

// "198.18.0.2:40000 > 198.18.0.1:80 [S.] seq 1000 ack 2001 win 65535 len 0 <mss 1460,...>".
// As in tcpdump, ack is shown only with ACK set and urg only with URG set.
std::string SegmentRepr::ToString() const {
  std::string s = absl::StrCat(src.ToString(), " > ", dst.ToString(), " [", FlagLetters(flags),
                               "] seq ", seq.raw());
  if (flags & kAck) absl::StrAppend(&s, " ack ", ack.raw());
  absl::StrAppend(&s, " win ", window);
  if (flags & kUrg) absl::StrAppend(&s, " urg ", urgent);
  absl::StrAppend(&s, " len ", payload.size());
  if (std::string opts = OptionsToString(options); !opts.empty())
    absl::StrAppend(&s, " <", opts, ">");
  return s;
}

}  // namespace tcplab::wire
