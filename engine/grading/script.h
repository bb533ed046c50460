// The AST of a grading script: the documented subset of packetdrill's language described in
// engine/grading/SCRIPTS.md. ParseScript (parser.h) builds it; the runner walks
// `Script::events` in order and switches on each event's variant.
//
// Everything here is a plain struct with value semantics and defaulted ==, so a runner needs
// no visitor and tests can compare whole parses. Sequence numbers are the script's relative
// ones (0 is the ISN); turning them into wire values is the runner's business.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"

namespace tcplab::grading {

// 1-based, in bytes (a tab counts as one column).
struct SourceLoc {
  int line = 0;
  int column = 0;
  friend bool operator==(const SourceLoc&, const SourceLoc&) = default;
};

// packetdrill's timing tolerance (config.c): an event may happen this far from its script
// time, or kDefaultTolerancePercent of the time since the previous event if that is more.
// A script changes them with --tolerance_usecs / --tolerance_percent. SCRIPTS.md has the rule.
inline constexpr int64_t kDefaultToleranceUsecs = 4000;
inline constexpr double kDefaultTolerancePercent = 12.5;

// When an event happens, in script microseconds. The kinds are packetdrill's event_time_t.
struct TimeSpec {
  enum class Kind {
    kAbsolute,       // "0.100": start_us after the script started.
    kRelative,       // "+0.100": start_us after the previous event (SCRIPTS.md says which time).
    kAbsoluteRange,  // "0.1...0.2" or "0.1~0.2": from start_us to end_us.
    kRelativeRange,  // "+0...0.3", "+0...+0.3", "+0~+0.3": both ends relative, as above.
    kAny,            // "*": any time; outbound packets only.
  };
  Kind kind = Kind::kAbsolute;
  int64_t start_us = 0;
  int64_t end_us = 0;  // == start_us unless a range; 0 for kAny
  std::string text;    // as written, e.g. "+.1...0.200"

  bool IsRange() const { return kind == Kind::kAbsoluteRange || kind == Kind::kRelativeRange; }
  bool IsRelative() const { return kind == Kind::kRelative || kind == Kind::kRelativeRange; }
  friend bool operator==(const TimeSpec&, const TimeSpec&) = default;
};

// A system call argument: packetdrill's expression, cut down to what the supported calls use.
struct Expr {
  enum class Kind {
    kInt,       // 3, -1, 0x802
    kSymbol,    // SOCK_STREAM, SHUT_WR, ECONNREFUSED: the runner resolves the name
    kFlags,     // O_RDWR|O_NONBLOCK: `items` are the operands (kInt or kSymbol), OR-ed
    kEllipsis,  // ...: don't care (the runner supplies a suitable value)
    kPointer,   // [1]: a pointer to `items[0]` (an int, or an errno symbol for SO_ERROR)
    kStruct,    // {onoff=1, linger=0}: `items` are the members, each with `field` set
    kString,    // "abc": `text` holds the unescaped contents
  };
  Kind kind = Kind::kInt;
  SourceLoc loc;
  int64_t value = 0;        // kInt
  std::string text;         // kInt: as written ("0x802"); kSymbol: the name; kString: contents
  std::string field;        // set on a member of a kStruct: "onoff" in {onoff=1}
  std::vector<Expr> items;  // kFlags, kPointer, kStruct
  friend bool operator==(const Expr&, const Expr&) = default;
};

// The calls a script may make. Anything else is refused at parse time.
enum class Syscall {
  kSocket,
  kBind,
  kListen,
  kAccept,
  kConnect,
  kRead,
  kWrite,
  kSend,
  kRecv,
  kShutdown,
  kClose,
  kSetsockopt,
  kGetsockopt,
  kFcntl,
};
absl::string_view SyscallName(Syscall call);  // "setsockopt"

// "= 0", "= -1 EINPROGRESS (Operation now in progress)", "= 0x802 (flags O_RDWR|O_NONBLOCK)".
struct ReturnSpec {
  int64_t value = 0;
  std::string text;                       // the value as written ("0x802")
  std::optional<std::string> errno_name;  // only after -1: "EINPROGRESS"
  std::string note;                       // the parenthesised text, if any, without ( )
  friend bool operator==(const ReturnSpec&, const ReturnSpec&) = default;
};

// A call the runner makes on the stack under test. When the event's time is a range the call
// is expected to block: it starts at the range's start and returns at its end.
struct SyscallEvent {
  Syscall call = Syscall::kSocket;
  std::vector<Expr> args;
  ReturnSpec ret;
  friend bool operator==(const SyscallEvent&, const SyscallEvent&) = default;
};

struct SackBlock {
  uint32_t left = 0;   // relative sequence number of the first octet
  uint32_t right = 0;  // one past the last octet
  friend bool operator==(const SackBlock&, const SackBlock&) = default;
};

// One TCP option, in the order written: the order is the wire layout to inject or expect.
struct PacketOption {
  enum class Kind { kEol, kNop, kMss, kWscale, kSackPermitted, kSack, kTimestamp };
  Kind kind = Kind::kNop;
  uint16_t mss = 0;              // kMss
  uint8_t wscale = 0;            // kWscale
  std::vector<SackBlock> sack;   // kSack: 1 to 4 blocks (RFC 2018 §3)
  uint32_t ts_val = 0;           // kTimestamp
  uint32_t ts_ecr = 0;           // kTimestamp

  // Octets on the wire, kind and length bytes included (RFC 9293 §3.2, RFC 7323, RFC 2018).
  int WireLength() const;
  friend bool operator==(const PacketOption&, const PacketOption&) = default;
};

struct OptionsSpec {
  enum class Mode {
    kNotGiven,  // no <...> on the line: as in packetdrill, the segment carries no options
    kAny,       // "<...>": outbound only; options are not checked
    kList,      // "<mss 1460,nop,wscale 7>": exactly these, in this order
  };
  Mode mode = Mode::kNotGiven;
  std::vector<PacketOption> list;  // kList only; never empty then
  friend bool operator==(const OptionsSpec&, const OptionsSpec&) = default;
};

// "< S. 0:0(0) ack 1 win 5792 <mss 1460,nop,wscale 2>": a segment to inject (inbound) or
// one the stack under test must send (outbound). Sequence numbers are relative.
struct PacketEvent {
  enum class Direction { kInbound, kOutbound };  // '<' and '>'
  Direction dir = Direction::kInbound;
  uint8_t flags = 0;  // wire::Flag bits (engine/wire/segment.h)
  uint32_t start = 0;
  uint32_t end = 0;   // start + len, modulo 2^32
  uint32_t len = 0;   // payload octets; SYN and FIN are not counted
  std::optional<uint32_t> ack;  // absent: 0 when injected; not checked when expected
  std::optional<uint16_t> win;  // always present on inbound packets
  std::optional<uint16_t> urg;  // urgent pointer
  OptionsSpec options;
  bool bad_checksum = false;  // tcplab extension `bad_csum`: inject with a corrupt checksum
  friend bool operator==(const PacketEvent&, const PacketEvent&) = default;
};

struct Event {
  SourceLoc loc;  // where the event's time starts
  // tcplab extension: "@kernel +0 > . 1:1(0) ack 1 // why": the line applies only to these
  // targets ("engine", "kernel", "dut"); empty means every target. Where Linux differs from
  // the RFC on purpose, a script states each side's behaviour this way, with the reason.
  std::vector<std::string> only;
  TimeSpec time;
  std::variant<SyscallEvent, PacketEvent> body;
  std::string text;  // the source line, trimmed, for reports
  friend bool operator==(const Event&, const Event&) = default;
};

// "--tolerance_usecs=10000" at the top of a script. The runner decides which names it knows.
struct ScriptOption {
  std::string name;                  // "tolerance_usecs"
  std::optional<std::string> value;  // "10000"; absent for a bare "--flag"
  SourceLoc loc;
  friend bool operator==(const ScriptOption&, const ScriptOption&) = default;
};

struct Script {
  std::string file;  // the name errors were reported against
  std::vector<ScriptOption> options;
  std::vector<Event> events;
};

// Canonical packetdrill text, for reports: ToString(Parse(line)) parses back to the same AST.
// Flags print in tcpdump's order (as packetdrill does): "F", "S", "R", "P", ".", "U", "E", "W".
std::string ToString(const Expr& expr);
std::string ToString(const SyscallEvent& call);     // "close(4) = 0"
std::string ToString(const PacketEvent& packet);    // "> S. 0:0(0) ack 1 <mss 1460,nop,wscale 7>"
std::string ToString(const PacketOption& option);   // "TS val 100 ecr 0"
// The time then the body. Ranges print as packetdrill writes them: "+0...0.2 read(...)" for
// calls (the end without '+') and "+0~+0.2 > ..." for packets.
std::string ToString(const Event& event);

}  // namespace tcplab::grading
