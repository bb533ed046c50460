// A recursive-descent parser for the grading-script language of SCRIPTS.md, one function per
// construct. Its grammar follows packetdrill's parser.y; the code is tcplab's own.
#include "engine/grading/parser.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/grading/lexer.h"
#include "engine/wire/segment.h"

namespace tcplab::grading {
namespace {

using internal::Describe;
using internal::Lexer;
using internal::Token;
using internal::TokenKind;

// Script times are capped well below int64 overflow; a grading run lasts minutes.
constexpr int64_t kMaxSeconds = 1'000'000;
constexpr int kMaxFractionDigits = 6;  // microseconds
// Bounds the recursion on argument nesting such as [[[[1]]]]; real calls nest 1 deep.
constexpr int kMaxNesting = 8;
constexpr int kMaxOptionBytes = 40;      // RFC 9293 §3.1: Data Offset is 4 bits, 60 - 20 octets
constexpr size_t kMaxSackBlocks = 4;     // RFC 2018 §3: a 40-octet option space holds 4
constexpr uint64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
constexpr uint64_t kMaxU16 = std::numeric_limits<uint16_t>::max();
constexpr uint64_t kMaxU8 = std::numeric_limits<uint8_t>::max();

constexpr absl::string_view kEventTimeExpected =
    "an event time (such as 0, 0.100, +0.1, 0.1...0.2 or *)";
constexpr absl::string_view kFlagsExpected = "TCP flags such as S or .";
constexpr absl::string_view kOptionNames = "mss, nop, wscale, sackOK, sack, TS or eol";
constexpr absl::string_view kArgumentExpected =
    "an argument (a number, a symbol, ..., [value], {field=value} or a string)";
// packetdrill's grammar is not line-based, so its scripts sometimes break long calls.
constexpr absl::string_view kOneLine =
    " (packetdrill lets arguments span lines; tcplab wants one event per line)";

absl::string_view LineSuffix(const Token& t) {
  return t.kind == TokenKind::kNewline ? kOneLine : absl::string_view();
}

// What a syscall takes. The runner checks what the arguments mean; the parser only counts.
struct CallInfo {
  Syscall call;
  int min_args;
  int max_args;
  absl::string_view usage;
};
constexpr CallInfo kCalls[] = {
    {Syscall::kSocket, 3, 3, "socket(domain, type, protocol)"},
    {Syscall::kBind, 3, 3, "bind(fd, addr, addrlen)"},
    {Syscall::kListen, 2, 2, "listen(fd, backlog)"},
    {Syscall::kAccept, 3, 3, "accept(fd, addr, addrlen)"},
    {Syscall::kConnect, 3, 3, "connect(fd, addr, addrlen)"},
    {Syscall::kRead, 3, 3, "read(fd, buf, count)"},
    {Syscall::kWrite, 3, 3, "write(fd, buf, count)"},
    {Syscall::kSend, 4, 4, "send(fd, buf, len, flags)"},
    {Syscall::kRecv, 4, 4, "recv(fd, buf, len, flags)"},
    {Syscall::kShutdown, 2, 2, "shutdown(fd, how)"},
    {Syscall::kClose, 1, 1, "close(fd)"},
    {Syscall::kSetsockopt, 5, 5, "setsockopt(fd, level, optname, optval, optlen)"},
    {Syscall::kGetsockopt, 5, 5, "getsockopt(fd, level, optname, optval, optlen)"},
    {Syscall::kFcntl, 2, 3, "fcntl(fd, cmd) or fcntl(fd, cmd, arg)"},
};

const CallInfo* FindCall(absl::string_view name) {
  for (const CallInfo& info : kCalls) {
    if (SyscallName(info.call) == name) return &info;
  }
  return nullptr;
}

std::string SupportedCalls() {
  std::vector<absl::string_view> names;
  for (const CallInfo& info : kCalls) names.push_back(SyscallName(info.call));
  return absl::StrJoin(names, ", ");
}

// packetdrill words that start a packet this stack cannot take part in, and why.
struct RefusedPacket {
  absl::string_view word;
  absl::string_view reason;
};
constexpr RefusedPacket kRefusedPackets[] = {
    {"udp", "UDP packets are not supported (tcplab grades TCP only)"},
    {"icmp", "ICMP packets are not supported (tcplab grades TCP only)"},
    {"ipv6", "IPv6 packets are not supported (tcplab sandboxes are IPv4 only)"},
    {"ipv4", "explicit 'ipv4' headers are not supported (tcplab writes the IP header itself)"},
    {"gre", "explicit 'gre' headers are not supported (tcplab writes the IP header itself)"},
    {"GREv0", "explicit 'GREv0' headers are not supported (tcplab writes the IP header itself)"},
    {"mpls", "explicit 'mpls' headers are not supported (tcplab writes the IP header itself)"},
    {"encap", "explicit 'encap' headers are not supported (tcplab writes the IP header itself)"},
};

uint8_t FlagBit(char c) {
  switch (c) {
    case 'F': return wire::kFin;
    case 'S': return wire::kSyn;
    case 'R': return wire::kRst;
    case 'P': return wire::kPsh;
    case '.': return wire::kAck;
    case 'U': return wire::kUrg;
    case 'E': return wire::kEce;
    case 'W': return wire::kCwr;
    default: return 0;
  }
}

bool IsWordChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

int HexValue(char c) {
  return absl::ascii_isdigit(static_cast<unsigned char>(c)) ? c - '0'
                                                            : absl::ascii_tolower(c) - 'a' + 10;
}

bool IsInteger(const Token& t) {
  return t.kind == TokenKind::kNumber && !absl::StrContains(t.text, '.');
}

// "a", "a or b", "a, b or c".
std::string OrList(const std::vector<std::string>& items) {
  if (items.size() <= 1) return items.empty() ? "" : items[0];
  std::vector<std::string> head(items.begin(), items.end() - 1);
  return absl::StrCat(absl::StrJoin(head, ", "), " or ", items.back());
}

// The fields after a packet's sequence range come in packetdrill's fixed order.
enum class Field { kAck, kWin, kUrg, kOptions, kBadCsum, kDone };

// What may follow once the fields before `next` are done. An inbound packet must still give
// its window, so nothing after 'win' is offered until it has.
std::string ExpectedFields(Field next, bool inbound) {
  std::vector<std::string> items;
  if (next <= Field::kAck) items.push_back("'ack'");
  if (next <= Field::kWin) items.push_back("'win'");
  if (inbound && next <= Field::kWin) return OrList(items);
  if (next <= Field::kUrg) items.push_back("'urg'");
  if (next <= Field::kOptions) items.push_back("'<'");
  if (inbound && next <= Field::kBadCsum) items.push_back("'bad_csum'");
  items.push_back("end of line");
  return OrList(items);
}

class Parser {
 public:
  Parser(absl::string_view file, absl::string_view text) : file_(file), lex_(text) {}

  absl::StatusOr<Script> Run();

 private:
  // Every Parse* function returns false once it has recorded the first error in error_, as
  // protobuf's compiler::Parser does: only the first error is reported, so there is nothing
  // to recover and no status to thread through each call.
  bool Fail(SourceLoc loc, absl::string_view what);
  // "expected EXPECTED, got GOT[SUFFIX]", or the lexer's own error for an invalid token.
  bool Unexpected(const Token& got, absl::string_view expected, absl::string_view suffix = "");

  bool ParseOptionLine(std::vector<ScriptOption>& options);
  bool ParseOptionValue(const Token& equals, ScriptOption& option);
  bool ParseEvent(Event& event);
  bool ParseTargets(Event& event);
  bool ParseTime(TimeSpec& time);
  bool ParseSeconds(const Token& number, int64_t& us);
  bool ParseBody(Event& event);
  bool CheckTimeFitsBody(const Event& event);

  bool ParseSyscall(SyscallEvent& call);
  bool ParseArgs(std::vector<Expr>& args);
  bool ParseExpr(Expr& expr, int depth);
  bool ParsePrimary(Expr& expr, int depth);
  bool ParseInt(Expr& expr, absl::string_view expected);
  bool ParsePointer(Expr& expr, int depth);
  bool ParseStruct(Expr& expr, int depth);
  bool Unescape(const Token& string, std::string& out);
  bool ParseReturn(ReturnSpec& ret);

  bool ParsePacket(PacketEvent& packet);
  bool ParseFlags(uint8_t& flags);
  bool ParseSequence(PacketEvent& packet);
  bool ParsePacketFields(PacketEvent& packet);
  bool ParseOptions(OptionsSpec& options, bool inbound);
  bool ParseOption(PacketOption& option);
  bool ParseTimestamp(PacketOption& option);
  bool ParseSackBlocks(PacketOption& option);
  // Reads a decimal integer no greater than `max`; `expected` describes a missing one and
  // `what` names it in a range error ("win '65536' is out of range, expected 0 to 65535").
  bool ParseUnsigned(absl::string_view expected, absl::string_view what, uint64_t max,
                     uint64_t& out);
  bool ExpectPunct(char c, absl::string_view expected);

  std::string file_;
  Lexer lex_;
  absl::Status error_;
};

bool Parser::Fail(SourceLoc loc, absl::string_view what) {
  error_ = absl::InvalidArgumentError(
      absl::StrFormat("%s:%d:%d: error: %s", file_, loc.line, loc.column, what));
  return false;
}

bool Parser::Unexpected(const Token& got, absl::string_view expected, absl::string_view suffix) {
  if (got.kind == TokenKind::kInvalid) return Fail(got.loc, got.error);
  return Fail(got.loc, absl::StrCat("expected ", expected, ", got ", Describe(got), suffix));
}

bool Parser::ExpectPunct(char c, absl::string_view expected) {
  Token t = lex_.Peek();
  if (!t.Is(c)) return Unexpected(t, expected);
  lex_.Next();
  return true;
}

absl::StatusOr<Script> Parser::Run() {
  Script script;
  script.file = file_;
  while (true) {
    Token t = lex_.Peek();
    if (t.kind == TokenKind::kEnd) break;
    if (t.kind == TokenKind::kNewline) {
      lex_.Next();
      continue;
    }
    if (t.kind == TokenKind::kOptionStart) {
      // packetdrill reads its options before the first event; so must the runner.
      if (!script.events.empty()) {
        Fail(t.loc, "options must come before the first event, expected an event time");
        return error_;
      }
      if (!ParseOptionLine(script.options)) return error_;
      continue;
    }
    Event event;
    if (!ParseEvent(event)) return error_;
    // packetdrill's run.c refuses this too: script time is counted from the first event.
    if (script.events.empty() && event.time.kind != TimeSpec::Kind::kAny &&
        event.time.start_us != 0) {
      Fail(event.loc, absl::StrCat("the first event is at '", event.time.text,
                                   "', expected time 0 (script time counts from the first "
                                   "event)"));
      return error_;
    }
    script.events.push_back(std::move(event));
  }
  return script;
}

// --name, --name=value, --name="quoted value"; several may share a line.
bool Parser::ParseOptionLine(std::vector<ScriptOption>& options) {
  while (true) {
    ScriptOption option;
    option.loc = lex_.Next().loc;  // "--"
    Token name = lex_.RawRun([](absl::string_view rest) { return IsWordChar(rest[0]); });
    if (name.text.empty()) return Unexpected(lex_.Peek(), "an option name after '--'");
    option.name = std::string(name.text);
    Token equals = lex_.Peek();
    if (equals.Is('=') && equals.offset == name.end_offset()) {
      lex_.Next();
      if (!ParseOptionValue(equals, option)) return false;
    }
    options.push_back(std::move(option));
    Token t = lex_.Peek();
    if (t.kind == TokenKind::kOptionStart) continue;
    if (!t.EndsLine()) return Unexpected(t, "another option or end of line");
    lex_.Next();
    return true;
  }
}

// The value is the text up to a blank or comment, like a shell word, so paths and
// packetdrill's --define=NAME=VALUE need no quotes.
bool Parser::ParseOptionValue(const Token& equals, ScriptOption& option) {
  const absl::string_view text = lex_.text();
  const size_t at = equals.end_offset();
  if (at < text.size() && text[at] == '"') {
    Token quoted = lex_.Next();
    if (quoted.kind != TokenKind::kString) return Unexpected(quoted, "a quoted option value");
    std::string value;
    if (!Unescape(quoted, value)) return false;
    option.value = std::move(value);
    return true;
  }
  if (at >= text.size() || absl::ascii_isspace(static_cast<unsigned char>(text[at]))) {
    option.value = "";
    return true;
  }
  Token run = lex_.RawRun([](absl::string_view rest) {
    return !absl::ascii_isspace(static_cast<unsigned char>(rest[0])) &&
           !absl::StartsWith(rest, "//") && !absl::StartsWith(rest, "/*");
  });
  option.value = std::string(run.text);
  return true;
}

bool Parser::ParseEvent(Event& event) {
  const Token first = lex_.Peek();
  // packetdrill's init command is a shell command with no time: refuse it as such.
  if (first.kind == TokenKind::kBacktick || first.kind == TokenKind::kCodeStart) {
    return ParseBody(event);
  }
  if (first.Is('@') && !ParseTargets(event)) return false;
  event.loc = lex_.Peek().loc;
  if (!ParseTime(event.time) || !ParseBody(event) || !CheckTimeFitsBody(event)) return false;
  const Token end = lex_.Peek();
  if (!end.EndsLine()) return Unexpected(end, "end of line");
  lex_.Next();
  event.text = std::string(absl::StripAsciiWhitespace(
      lex_.text().substr(first.offset, end.offset - first.offset)));
  return true;
}

// "@kernel" or "@engine,dut" before the time: the line is for those targets only, and must
// say why in a // comment on the line or on the line just above.
bool Parser::ParseTargets(Event& event) {
  const Token at = lex_.Next();
  while (true) {
    Token t = lex_.Next();
    if (t.kind != TokenKind::kWord || (t.text != "engine" && t.text != "kernel" && t.text != "dut")) {
      return Unexpected(t, "a target after '@': 'engine', 'kernel' or 'dut'");
    }
    event.only.emplace_back(t.text);
    if (!lex_.Peek().Is(',')) break;
    lex_.Next();
  }
  const absl::string_view text = lex_.text();
  const size_t line_start = at.offset - (at.loc.column - 1);
  size_t line_end = text.find('\n', at.offset);
  if (line_end == absl::string_view::npos) line_end = text.size();
  const bool on_line = text.substr(at.offset, line_end - at.offset).find("//") != absl::string_view::npos;
  bool above = false;
  if (line_start > 0) {
    const size_t prev_start = text.rfind('\n', line_start - 2) + 1;  // npos + 1 == 0
    above = absl::StartsWith(absl::StripLeadingAsciiWhitespace(text.substr(prev_start, line_start - prev_start)), "//");
  }
  if (!on_line && !above) {
    return Fail(at.loc, "a line for some targets only must give its reason, expected a // comment on the line "
                        "or on the line just above");
  }
  return true;
}

// N, +N, a...b, a~b, +a...b, +a...+b, *. A range's end is in its start's frame: packetdrill
// writes a blocking call as "+.1...0.200", both ends after the previous event.
bool Parser::ParseTime(TimeSpec& time) {
  const Token first = lex_.Peek();
  if (first.Is('*')) {
    lex_.Next();
    time.kind = TimeSpec::Kind::kAny;
    time.text = "*";
    return true;
  }
  const bool relative = first.Is('+');
  if (relative) lex_.Next();
  Token start = lex_.Peek();
  if (start.kind != TokenKind::kNumber) return Unexpected(start, kEventTimeExpected);
  lex_.Next();
  if (!ParseSeconds(start, time.start_us)) return false;
  time.end_us = time.start_us;
  time.kind = relative ? TimeSpec::Kind::kRelative : TimeSpec::Kind::kAbsolute;
  Token last = start;

  const Token separator = lex_.Peek();
  if (separator.kind == TokenKind::kEllipsis || separator.Is('~')) {
    lex_.Next();
    Token end = lex_.Peek();
    if (end.Is('+')) {
      if (!relative) {
        return Unexpected(end, absl::StrCat("an absolute end time after the absolute start '",
                                            start.text, "'"));
      }
      lex_.Next();
      end = lex_.Peek();
    }
    if (end.kind != TokenKind::kNumber) return Unexpected(end, "the end time of the range");
    lex_.Next();
    if (!ParseSeconds(end, time.end_us)) return false;
    last = end;
    time.kind = relative ? TimeSpec::Kind::kRelativeRange : TimeSpec::Kind::kAbsoluteRange;
  }
  time.text = std::string(lex_.text().substr(first.offset, last.end_offset() - first.offset));
  if (time.end_us < time.start_us) {
    return Fail(first.loc, absl::StrCat("time range '", time.text,
                                        "' ends before it starts, expected an end at or after "
                                        "the start"));
  }
  return true;
}

// Decimal seconds to microseconds without floating point, so "0.1" is exactly 100000.
bool Parser::ParseSeconds(const Token& number, int64_t& us) {
  const absl::string_view text = number.text;
  const size_t dot = text.find('.');
  const absl::string_view whole = text.substr(0, dot);
  const absl::string_view fraction =
      dot == absl::string_view::npos ? absl::string_view() : text.substr(dot + 1);
  if (fraction.size() > kMaxFractionDigits) {
    return Fail(number.loc, absl::StrCat("time '", text, "' has more than 6 decimal places, "
                                         "expected at most microsecond precision"));
  }
  int64_t seconds = 0;
  for (char c : whole) {
    seconds = seconds * 10 + (c - '0');
    if (seconds > kMaxSeconds) break;  // stops before overflow
  }
  int64_t micros = 0;
  for (size_t i = 0; i < kMaxFractionDigits; ++i) {
    micros = micros * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
  }
  if (seconds > kMaxSeconds || (seconds == kMaxSeconds && micros > 0)) {
    return Fail(number.loc, absl::StrCat("time '", text, "' is too large, expected at most ",
                                         kMaxSeconds, " seconds"));
  }
  us = seconds * 1'000'000 + micros;
  return true;
}

bool Parser::ParseBody(Event& event) {
  const Token t = lex_.Peek();
  if (t.kind == TokenKind::kBacktick) {
    return Fail(t.loc, "shell commands (`...`) are not supported (tcplab runs no commands on "
                       "the grading host), expected a system call or a packet");
  }
  if (t.kind == TokenKind::kCodeStart) {
    return Fail(t.loc, "Python code blocks (%{ ... }%) are not supported (tcplab runs no "
                       "Python), expected a system call or a packet");
  }
  if (t.Is('<') || t.Is('>')) {
    PacketEvent packet;
    if (!ParsePacket(packet)) return false;
    event.body = std::move(packet);
    return true;
  }
  if (t.kind == TokenKind::kWord) {
    SyscallEvent call;
    if (!ParseSyscall(call)) return false;
    event.body = std::move(call);
    return true;
  }
  return Unexpected(t, "a system call or a packet ('<' or '>')");
}

// packetdrill's rules: '*' only for packets the stack sends, since only those are waited
// for; ranges also for calls (blocking) but never for a packet the script injects itself.
bool Parser::CheckTimeFitsBody(const Event& event) {
  const auto* packet = std::get_if<PacketEvent>(&event.body);
  const bool outbound = packet && packet->dir == PacketEvent::Direction::kOutbound;
  if (event.time.kind == TimeSpec::Kind::kAny && !outbound) {
    return Fail(event.loc, "'*' (any time) applies only to outbound packets ('>'), expected a "
                           "time such as 0.1 or +0");
  }
  if (event.time.IsRange() && packet && !outbound) {
    return Fail(event.loc, "a time range applies only to system calls and outbound packets "
                           "('>'), expected a single time for an inbound packet");
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// System calls.

bool Parser::ParseSyscall(SyscallEvent& call) {
  const Token name = lex_.Next();
  const CallInfo* info = FindCall(name.text);
  // A word without '(' is no call at all, e.g. a packet missing its '<' or '>'.
  if (info == nullptr && !lex_.Peek().Is('(')) {
    return Unexpected(name, "a system call or a packet ('<' or '>')");
  }
  if (info == nullptr) {
    return Fail(name.loc, absl::StrCat("unsupported system call '", name.text,
                                       "', expected one of ", SupportedCalls()));
  }
  call.call = info->call;
  if (!ExpectPunct('(', absl::StrCat("'(' after '", name.text, "'")) || !ParseArgs(call.args)) {
    return false;
  }
  const int n = static_cast<int>(call.args.size());
  if (n < info->min_args || n > info->max_args) {
    const std::string takes =
        info->min_args == info->max_args
            ? absl::StrCat(info->min_args, info->min_args == 1 ? " argument" : " arguments")
            : absl::StrCat(info->min_args, " or ", info->max_args, " arguments");
    return Fail(name.loc, absl::StrCat(name.text, " takes ", takes, ", got ", n, ", expected ",
                                       info->usage));
  }
  return ExpectPunct('=', "'=' and the return value") && ParseReturn(call.ret);
}

// After the '(': "expr, expr, ...)" or ")".
bool Parser::ParseArgs(std::vector<Expr>& args) {
  if (lex_.Peek().Is(')')) {
    lex_.Next();
    return true;
  }
  while (true) {
    Expr arg;
    if (!ParseExpr(arg, 0)) return false;
    args.push_back(std::move(arg));
    const Token t = lex_.Peek();
    if (t.Is(',') || t.Is(')')) {
      lex_.Next();
      if (t.Is(')')) return true;
      continue;
    }
    return Unexpected(t, "',' or ')'", LineSuffix(t));
  }
}

// A primary, or a flag set "A|B|0x4" of numbers and symbols. A '|' after any other primary is
// left for the caller to report, with the separators it expects.
bool Parser::ParseExpr(Expr& expr, int depth) {
  if (!ParsePrimary(expr, depth)) return false;
  const bool flaggable = expr.kind == Expr::Kind::kInt || expr.kind == Expr::Kind::kSymbol;
  if (!flaggable || !lex_.Peek().Is('|')) return true;
  Expr flags;
  flags.kind = Expr::Kind::kFlags;
  flags.loc = expr.loc;
  flags.items.push_back(std::move(expr));
  while (lex_.Peek().Is('|')) {
    lex_.Next();
    const Token t = lex_.Peek();
    Expr operand;
    if (t.kind == TokenKind::kWord) {
      lex_.Next();
      operand.kind = Expr::Kind::kSymbol;
      operand.loc = t.loc;
      operand.text = std::string(t.text);
    } else if (t.kind == TokenKind::kHex || IsInteger(t) || t.Is('-')) {
      if (!ParseInt(operand, "a number after '-'")) return false;
    } else {
      return Unexpected(t, "a number or a symbol after '|'");
    }
    flags.items.push_back(std::move(operand));
  }
  expr = std::move(flags);
  return true;
}

bool Parser::ParsePrimary(Expr& expr, int depth) {
  const Token t = lex_.Peek();
  expr.loc = t.loc;
  if (t.kind == TokenKind::kEllipsis || t.kind == TokenKind::kWord) {
    lex_.Next();
    expr.kind = t.kind == TokenKind::kWord ? Expr::Kind::kSymbol : Expr::Kind::kEllipsis;
    if (t.kind == TokenKind::kWord) expr.text = std::string(t.text);
    return true;
  }
  if (t.kind == TokenKind::kString) {
    lex_.Next();
    expr.kind = Expr::Kind::kString;
    return Unescape(t, expr.text);
  }
  if (t.kind == TokenKind::kHex || IsInteger(t) || t.Is('-')) {
    return ParseInt(expr, "a number after '-'");
  }
  if (t.Is('[') || t.Is('{')) {
    if (depth + 1 > kMaxNesting) {
      return Fail(t.loc, absl::StrCat("argument nests more than ", kMaxNesting,
                                      " levels deep, expected at most ", kMaxNesting));
    }
    return t.Is('[') ? ParsePointer(expr, depth) : ParseStruct(expr, depth);
  }
  return Unexpected(t, kArgumentExpected, LineSuffix(t));
}

// [-]decimal or hex, into an int64.
bool Parser::ParseInt(Expr& expr, absl::string_view expected) {
  Token t = lex_.Peek();
  expr.loc = t.loc;
  const bool negative = t.Is('-');
  if (negative) {
    lex_.Next();
    t = lex_.Peek();
  }
  if (t.kind != TokenKind::kHex && !IsInteger(t)) return Unexpected(t, expected);
  lex_.Next();
  const bool hex = t.kind == TokenKind::kHex;
  const absl::string_view digits = hex ? t.text.substr(2) : t.text;
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  uint64_t value = 0;
  for (char c : digits) {
    const uint64_t d = static_cast<uint64_t>(HexValue(c));
    const uint64_t base = hex ? 16 : 10;
    if (value > (kMax - d) / base) {
      return Fail(t.loc, absl::StrCat("integer '", t.text, "' is out of range, expected at most ",
                                      kMax));
    }
    value = value * base + d;
  }
  expr.kind = Expr::Kind::kInt;
  expr.value = negative ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
  expr.text = absl::StrCat(negative ? "-" : "", t.text);
  return true;
}

bool Parser::ParsePointer(Expr& expr, int depth) {
  lex_.Next();  // '['
  expr.kind = Expr::Kind::kPointer;
  Expr pointee;
  if (!ParseExpr(pointee, depth + 1)) return false;
  expr.items.push_back(std::move(pointee));
  return ExpectPunct(']', "']'");
}

// {name=expr, name=expr}: members keep their order and name (Expr::field).
bool Parser::ParseStruct(Expr& expr, int depth) {
  lex_.Next();  // '{'
  expr.kind = Expr::Kind::kStruct;
  while (true) {
    const Token name = lex_.Peek();
    if (name.kind != TokenKind::kWord) return Unexpected(name, "a field name");
    lex_.Next();
    if (!ExpectPunct('=', absl::StrCat("'=' after '", name.text, "'"))) return false;
    Expr member;
    if (!ParseExpr(member, depth + 1)) return false;
    member.field = std::string(name.text);
    expr.items.push_back(std::move(member));
    const Token t = lex_.Peek();
    if (t.Is(',') || t.Is('}')) {
      lex_.Next();
      if (t.Is('}')) return true;
      continue;
    }
    return Unexpected(t, "',' or '}'");
  }
}

bool Parser::Unescape(const Token& string, std::string& out) {
  const absl::string_view inner = string.text.substr(1, string.text.size() - 2);
  out.clear();
  for (size_t i = 0; i < inner.size(); ++i) {
    if (inner[i] != '\\') {
      out += inner[i];
      continue;
    }
    const char c = inner[++i];  // the lexer never ends a string on a backslash
    switch (c) {
      case '\\': out += '\\'; break;
      case '"': out += '"'; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '0': out += '\0'; break;
      case 'x':
        // \xHH, as in packetdrill's TCP_FASTOPEN_KEY strings: exactly two hex digits.
        if (i + 2 < inner.size() &&
            absl::ascii_isxdigit(static_cast<unsigned char>(inner[i + 1])) &&
            absl::ascii_isxdigit(static_cast<unsigned char>(inner[i + 2]))) {
          out += static_cast<char>(HexValue(inner[i + 1]) * 16 + HexValue(inner[i + 2]));
          i += 2;
          break;
        }
        [[fallthrough]];
      default: {
        Token escape = string;
        escape.text = inner.substr(i - 1, 2);
        const SourceLoc at{string.loc.line, string.loc.column + static_cast<int>(i)};
        return Fail(at, absl::StrCat("unknown escape ", Describe(escape),
                                     ", expected one of \\\\ \\\" \\n \\t \\r \\0 \\xHH"));
      }
    }
  }
  return true;
}

// "= 3", "= -1 ECONNREFUSED", "= -1 EINPROGRESS (Operation now in progress)",
// "= 0x802 (flags O_RDWR|O_NONBLOCK)".
bool Parser::ParseReturn(ReturnSpec& ret) {
  Expr value;
  if (!ParseInt(value, "an integer return value")) return false;
  ret.value = value.value;
  ret.text = value.text;
  Token t = lex_.Peek();
  if (t.kind == TokenKind::kWord) {
    if (ret.value != -1) {
      return Fail(t.loc, absl::StrCat("an errno name follows only -1, expected '(' or end of "
                                      "line, got ",
                                      Describe(t)));
    }
    ret.errno_name = std::string(t.text);
    lex_.Next();
    t = lex_.Peek();
  }
  if (!t.Is('(')) return t.EndsLine() || Unexpected(t, "'(' or end of line");
  lex_.Next();
  absl::string_view note;
  if (!lex_.RawUntilCloseParen(note)) {
    lex_.RawRun([](absl::string_view) { return true; });  // to the end of the line
    return Unexpected(lex_.Peek(), "')' to close the note");
  }
  ret.note = std::string(absl::StripAsciiWhitespace(note));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Packets.

bool Parser::ParsePacket(PacketEvent& packet) {
  packet.dir = lex_.Next().Is('<') ? PacketEvent::Direction::kInbound
                                   : PacketEvent::Direction::kOutbound;
  return ParseFlags(packet.flags) && ParseSequence(packet) && ParsePacketFields(packet);
}

// "S.", ".", "FP.", "SEW", or "-" for none. Read raw: as tokens "S." would be a word and a dot.
bool Parser::ParseFlags(uint8_t& flags) {
  const Token next = lex_.Peek();
  if (next.Is('(') || next.Is('[')) {
    return Fail(next.loc, absl::StrCat("IP header fields such as (ect0) or [tos 0x2] are not "
                                       "supported, expected ",
                                       kFlagsExpected));
  }
  const Token run = lex_.RawRun([](absl::string_view rest) {
    return IsWordChar(rest[0]) || rest[0] == '.' || rest[0] == '-';
  });
  if (run.text.empty()) return Unexpected(lex_.Peek(), kFlagsExpected);
  for (const RefusedPacket& refused : kRefusedPackets) {
    if (run.text == refused.word) {
      return Fail(run.loc, absl::StrCat(refused.reason, ", expected ", kFlagsExpected));
    }
  }
  flags = 0;
  if (run.text == "-") return true;
  for (size_t i = 0; i < run.text.size(); ++i) {
    const char c = run.text[i];
    const uint8_t bit = FlagBit(c);
    const SourceLoc at{run.loc.line, run.loc.column + static_cast<int>(i)};
    if (bit == 0) {
      return Fail(at, absl::StrFormat("invalid TCP flag '%c' in '%s', expected flags from S . P "
                                      "F R E W U, or - alone for none",
                                      c, run.text));
    }
    if (flags & bit) {
      return Fail(at, absl::StrFormat("TCP flag '%c' appears twice in '%s', expected each flag "
                                      "at most once",
                                      c, run.text));
    }
    flags |= bit;
  }
  return true;
}

// start:end(length), with end - start == length modulo 2^32 (sequence space wraps, RFC 9293
// §3.4). The length counts payload octets only, as in packetdrill: "S 0:0(0)".
bool Parser::ParseSequence(PacketEvent& packet) {
  const Token first = lex_.Peek();
  uint64_t start = 0, end = 0, len = 0;
  if (!ParseUnsigned("a sequence range start:end(length)", "sequence number", kMaxU32, start) ||
      !ExpectPunct(':', "':' in start:end(length)") ||
      !ParseUnsigned("the end sequence number", "sequence number", kMaxU32, end) ||
      !ExpectPunct('(', "'(' in start:end(length)") ||
      !ParseUnsigned("the payload length", "payload length", kMaxU16, len) ||
      !ExpectPunct(')', "')' in start:end(length)")) {
    return false;
  }
  packet.start = static_cast<uint32_t>(start);
  packet.end = static_cast<uint32_t>(end);
  packet.len = static_cast<uint32_t>(len);
  const uint32_t span = packet.end - packet.start;
  if (span != packet.len) {
    return Fail(first.loc, absl::StrFormat("sequence numbers %u:%u span %u bytes but the length "
                                           "is %u, expected end - start to equal the length",
                                           packet.start, packet.end, span, packet.len));
  }
  return true;
}

// [ack N] [win N] [urg N] [<options>] [bad_csum], in that order.
bool Parser::ParsePacketFields(PacketEvent& packet) {
  const bool inbound = packet.dir == PacketEvent::Direction::kInbound;
  Field next = Field::kAck;
  while (true) {
    const Token t = lex_.Peek();
    uint64_t value = 0;
    if (t.IsWord("ack") && next <= Field::kAck) {
      lex_.Next();
      if (!ParseUnsigned("a number after 'ack'", "ack", kMaxU32, value)) return false;
      packet.ack = static_cast<uint32_t>(value);
      next = Field::kWin;
    } else if (t.IsWord("win") && next <= Field::kWin) {
      lex_.Next();
      if (!ParseUnsigned("a number after 'win'", "win", kMaxU16, value)) return false;
      packet.win = static_cast<uint16_t>(value);
      next = Field::kUrg;
    } else if (inbound && next <= Field::kWin) {
      // packetdrill requires it too: there is no sensible default window to inject.
      return Unexpected(t, ExpectedFields(next, inbound), " (an inbound packet must give its "
                                                          "window)");
    } else if (t.IsWord("urg") && next <= Field::kUrg) {
      lex_.Next();
      if (!ParseUnsigned("a number after 'urg'", "urg", kMaxU16, value)) return false;
      packet.urg = static_cast<uint16_t>(value);
      next = Field::kOptions;
    } else if (t.Is('<') && next <= Field::kOptions) {
      if (!ParseOptions(packet.options, inbound)) return false;
      next = Field::kBadCsum;
    } else if (t.IsWord("bad_csum") && next <= Field::kBadCsum) {
      if (!inbound) {
        return Fail(t.loc, absl::StrCat("'bad_csum' applies only to inbound packets ('<'), "
                                        "expected ",
                                        ExpectedFields(next, inbound)));
      }
      lex_.Next();
      packet.bad_checksum = true;
      next = Field::kDone;
    } else if (t.EndsLine()) {
      return true;
    } else if (next == Field::kDone) {
      return Unexpected(t, "end of line");
    } else {
      const bool known = t.IsWord("ack") || t.IsWord("win") || t.IsWord("urg") || t.Is('<') ||
                         t.IsWord("bad_csum");
      const std::string order =
          known ? absl::StrCat(" (packet fields go in the order ack, win, urg, <options>",
                               inbound ? ", bad_csum)" : ")")
                : "";
      return Unexpected(t, ExpectedFields(next, inbound), order);
    }
  }
}

// <...> or <option,option,...>, at most 40 octets padded to a multiple of 4 (RFC 9293 §3.1:
// the header length is counted in 32-bit words), as packetdrill also requires.
bool Parser::ParseOptions(OptionsSpec& options, bool inbound) {
  const Token open = lex_.Next();  // '<'
  if (lex_.Peek().kind == TokenKind::kEllipsis) {
    if (inbound) {
      return Fail(open.loc, "'<...>' (any options) applies only to outbound packets ('>'), "
                            "expected the options to inject, such as <mss 1460>");
    }
    lex_.Next();
    options.mode = OptionsSpec::Mode::kAny;
    return ExpectPunct('>', "'>' after '<...'");
  }
  options.mode = OptionsSpec::Mode::kList;
  while (true) {
    PacketOption option;
    if (!ParseOption(option)) return false;
    options.list.push_back(std::move(option));
    const Token t = lex_.Peek();
    if (t.Is(',')) {
      lex_.Next();
      continue;
    }
    if (t.Is('>')) {
      lex_.Next();
      break;
    }
    return Unexpected(t, "',' or '>'");
  }
  int bytes = 0;
  for (const PacketOption& option : options.list) bytes += option.WireLength();
  if (bytes > kMaxOptionBytes) {
    return Fail(open.loc, absl::StrCat("TCP options take ", bytes, " bytes, expected at most ",
                                       kMaxOptionBytes));
  }
  if (bytes % 4 != 0) {
    return Fail(open.loc, absl::StrCat("TCP options take ", bytes,
                                       " bytes, expected a multiple of 4 (pad with nop)"));
  }
  return true;
}

bool Parser::ParseOption(PacketOption& option) {
  using K = PacketOption::Kind;
  const Token name = lex_.Peek();
  if (name.kind != TokenKind::kWord) {
    return Unexpected(name, absl::StrCat("a TCP option (", kOptionNames, ")"));
  }
  lex_.Next();
  uint64_t value = 0;
  if (name.text == "nop" || name.text == "eol" || name.text == "sackOK") {
    option.kind = name.text == "nop" ? K::kNop : name.text == "eol" ? K::kEol : K::kSackPermitted;
    return true;
  }
  if (name.text == "mss") {
    option.kind = K::kMss;
    if (!ParseUnsigned("a number after 'mss'", "mss", kMaxU16, value)) return false;
    option.mss = static_cast<uint16_t>(value);
    return true;
  }
  if (name.text == "wscale") {
    // Up to 255, not RFC 7323's 14: a script may test how a stack treats a larger shift.
    option.kind = K::kWscale;
    if (!ParseUnsigned("a number after 'wscale'", "wscale", kMaxU8, value)) return false;
    option.wscale = static_cast<uint8_t>(value);
    return true;
  }
  if (name.text == "sack") {
    option.kind = K::kSack;
    return ParseSackBlocks(option);
  }
  if (name.text == "TS") {
    option.kind = K::kTimestamp;
    return ParseTimestamp(option);
  }
  return Fail(name.loc, absl::StrCat("unknown TCP option ", Describe(name), ", expected ",
                                     kOptionNames));
}

// "TS val 100 ecr 0" (RFC 7323 §3.2), after the "TS".
bool Parser::ParseTimestamp(PacketOption& option) {
  uint64_t val = 0, ecr = 0;
  Token t = lex_.Peek();
  if (!t.IsWord("val")) return Unexpected(t, "'val' after 'TS'");
  lex_.Next();
  if (!ParseUnsigned("a number after 'val'", "TS val", kMaxU32, val)) return false;
  t = lex_.Peek();
  if (!t.IsWord("ecr")) return Unexpected(t, "'ecr' after the TS val");
  lex_.Next();
  if (!ParseUnsigned("a number after 'ecr'", "TS ecr", kMaxU32, ecr)) return false;
  option.ts_val = static_cast<uint32_t>(val);
  option.ts_ecr = static_cast<uint32_t>(ecr);
  return true;
}

// "sack 1001:2001 3001:4001": one to four blocks.
bool Parser::ParseSackBlocks(PacketOption& option) {
  do {
    const Token left = lex_.Peek();
    if (option.sack.size() == kMaxSackBlocks) {
      return Fail(left.loc, absl::StrCat(kMaxSackBlocks + 1, " SACK blocks, expected at most ",
                                         kMaxSackBlocks, " (RFC 2018)"));
    }
    uint64_t l = 0, r = 0;
    if (!ParseUnsigned("a SACK block left:right", "SACK block edge", kMaxU32, l) ||
        !ExpectPunct(':', "':' in the SACK block left:right") ||
        !ParseUnsigned("the right edge of the SACK block", "SACK block edge", kMaxU32, r)) {
      return false;
    }
    option.sack.push_back(SackBlock{static_cast<uint32_t>(l), static_cast<uint32_t>(r)});
  } while (IsInteger(lex_.Peek()));
  return true;
}

bool Parser::ParseUnsigned(absl::string_view expected, absl::string_view what, uint64_t max,
                           uint64_t& out) {
  const Token t = lex_.Peek();
  if (!IsInteger(t)) return Unexpected(t, expected);
  lex_.Next();
  uint64_t value = 0;
  for (char c : t.text) {
    value = value * 10 + static_cast<uint64_t>(c - '0');
    if (value > max) {  // max < 2^32, so this stops long before overflow
      return Fail(t.loc, absl::StrCat(what, " '", t.text, "' is out of range, expected 0 to ",
                                      max));
    }
  }
  out = value;
  return true;
}

}  // namespace

absl::StatusOr<Script> ParseScript(absl::string_view file_name, absl::string_view text) {
  return Parser(file_name, text).Run();
}

absl::StatusOr<Script> ParseScriptFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open grading script ", path));
  }
  std::string text;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int error = errno;
  std::fclose(f);
  if (failed) return absl::ErrnoToStatus(error, absl::StrCat("cannot read grading script ", path));
  return ParseScript(path, text);
}

}  // namespace tcplab::grading
