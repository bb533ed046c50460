#include "engine/grading/script.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "engine/wire/segment.h"

namespace tcplab::grading {
namespace {

// Microseconds as the shortest exact decimal seconds: 100000 -> "0.1", 1500 -> "0.0015".
std::string Seconds(int64_t us) {
  const std::string s = absl::StrFormat("%d.%06d", us / 1'000'000, us % 1'000'000);
  absl::string_view trimmed = s;
  while (!trimmed.empty() && trimmed.back() == '0') trimmed.remove_suffix(1);
  if (!trimmed.empty() && trimmed.back() == '.') trimmed.remove_suffix(1);
  return std::string(trimmed);
}

// packetdrill writes a packet's range "a~b" / "+a~+b" and a blocking call's "a...b" /
// "+a...b", the end of the latter without a '+' although it is relative too.
std::string TimeToString(const TimeSpec& t, bool packet) {
  const std::string plus = t.IsRelative() ? "+" : "";
  switch (t.kind) {
    case TimeSpec::Kind::kAny:
      return "*";
    case TimeSpec::Kind::kAbsolute:
    case TimeSpec::Kind::kRelative:
      return plus + Seconds(t.start_us);
    case TimeSpec::Kind::kAbsoluteRange:
    case TimeSpec::Kind::kRelativeRange:
      return absl::StrCat(plus, Seconds(t.start_us), packet ? "~" : "...", packet ? plus : "",
                          Seconds(t.end_us));
  }
  return t.text;
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
          out += absl::StrFormat("\\x%02x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// tcpdump's order, as packetdrill prints them; "-" (no flags) so that the text parses back.
std::string FlagsToString(uint8_t flags) {
  static constexpr std::pair<uint8_t, char> kOrder[] = {
      {wire::kFin, 'F'}, {wire::kSyn, 'S'}, {wire::kRst, 'R'}, {wire::kPsh, 'P'},
      {wire::kAck, '.'}, {wire::kUrg, 'U'}, {wire::kEce, 'E'}, {wire::kCwr, 'W'},
  };
  std::string out;
  for (const auto& [bit, c] : kOrder) {
    if (flags & bit) out += c;
  }
  return out.empty() ? "-" : out;
}

}  // namespace

absl::string_view SyscallName(Syscall call) {
  switch (call) {
    case Syscall::kSocket: return "socket";
    case Syscall::kBind: return "bind";
    case Syscall::kListen: return "listen";
    case Syscall::kAccept: return "accept";
    case Syscall::kConnect: return "connect";
    case Syscall::kRead: return "read";
    case Syscall::kWrite: return "write";
    case Syscall::kSend: return "send";
    case Syscall::kRecv: return "recv";
    case Syscall::kShutdown: return "shutdown";
    case Syscall::kClose: return "close";
    case Syscall::kSetsockopt: return "setsockopt";
    case Syscall::kGetsockopt: return "getsockopt";
    case Syscall::kFcntl: return "fcntl";
  }
  return "?";
}

int PacketOption::WireLength() const {
  switch (kind) {
    case Kind::kEol:
    case Kind::kNop:
      return 1;
    case Kind::kMss:
      return 4;  // RFC 9293 §3.2
    case Kind::kWscale:
      return 3;  // RFC 7323 §2.2
    case Kind::kSackPermitted:
      return 2;  // RFC 2018 §2
    case Kind::kSack:
      return 2 + 8 * static_cast<int>(sack.size());  // RFC 2018 §3
    case Kind::kTimestamp:
      return 10;  // RFC 7323 §3.2
  }
  return 0;
}

std::string ToString(const Expr& expr) {
  auto items = [&](absl::string_view separator) {
    std::vector<std::string> parts;
    for (const Expr& item : expr.items) {
      parts.push_back(item.field.empty() ? ToString(item)
                                         : absl::StrCat(item.field, "=", ToString(item)));
    }
    return absl::StrJoin(parts, separator);
  };
  switch (expr.kind) {
    case Expr::Kind::kInt:
      return expr.text.empty() ? absl::StrCat(expr.value) : expr.text;
    case Expr::Kind::kSymbol:
      return expr.text;
    case Expr::Kind::kFlags:
      return items("|");
    case Expr::Kind::kEllipsis:
      return "...";
    case Expr::Kind::kPointer:
      return absl::StrCat("[", items(", "), "]");
    case Expr::Kind::kStruct:
      return absl::StrCat("{", items(", "), "}");
    case Expr::Kind::kString:
      return Quote(expr.text);
  }
  return "?";
}

std::string ToString(const SyscallEvent& call) {
  std::vector<std::string> args;
  for (const Expr& arg : call.args) args.push_back(ToString(arg));
  std::string out = absl::StrCat(SyscallName(call.call), "(", absl::StrJoin(args, ", "), ") = ",
                                 call.ret.text.empty() ? absl::StrCat(call.ret.value)
                                                       : call.ret.text);
  if (call.ret.errno_name) absl::StrAppend(&out, " ", *call.ret.errno_name);
  if (!call.ret.note.empty()) absl::StrAppend(&out, " (", call.ret.note, ")");
  return out;
}

std::string ToString(const PacketOption& option) {
  using K = PacketOption::Kind;
  switch (option.kind) {
    case K::kEol: return "eol";
    case K::kNop: return "nop";
    case K::kMss: return absl::StrCat("mss ", option.mss);
    case K::kWscale: return absl::StrCat("wscale ", static_cast<int>(option.wscale));
    case K::kSackPermitted: return "sackOK";
    case K::kSack: {
      std::vector<std::string> blocks;
      for (const SackBlock& b : option.sack) blocks.push_back(absl::StrCat(b.left, ":", b.right));
      return absl::StrCat("sack ", absl::StrJoin(blocks, " "));
    }
    case K::kTimestamp: return absl::StrCat("TS val ", option.ts_val, " ecr ", option.ts_ecr);
  }
  return "?";
}

std::string ToString(const PacketEvent& p) {
  std::string out =
      absl::StrCat(p.dir == PacketEvent::Direction::kInbound ? "<" : ">", " ",
                   FlagsToString(p.flags), " ", p.start, ":", p.end, "(", p.len, ")");
  if (p.ack) absl::StrAppend(&out, " ack ", *p.ack);
  if (p.win) absl::StrAppend(&out, " win ", *p.win);
  if (p.urg) absl::StrAppend(&out, " urg ", *p.urg);
  switch (p.options.mode) {
    case OptionsSpec::Mode::kNotGiven:
      break;
    case OptionsSpec::Mode::kAny:
      absl::StrAppend(&out, " <...>");
      break;
    case OptionsSpec::Mode::kList: {
      std::vector<std::string> options;
      for (const PacketOption& o : p.options.list) options.push_back(ToString(o));
      absl::StrAppend(&out, " <", absl::StrJoin(options, ","), ">");
      break;
    }
  }
  if (p.bad_checksum) absl::StrAppend(&out, " bad_csum");
  return out;
}

std::string ToString(const Event& event) {
  const bool packet = std::holds_alternative<PacketEvent>(event.body);
  const std::string body = packet ? ToString(std::get<PacketEvent>(event.body))
                                  : ToString(std::get<SyscallEvent>(event.body));
  return absl::StrCat(TimeToString(event.time, packet), " ", body);
}

}  // namespace tcplab::grading
