#include "client/cli/ladder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/format.h"

namespace tcplab::cli {

namespace {

constexpr size_t kRecentOut = 4096;  // OUT segments remembered to match their IN copies

// ANSI SGR codes.
constexpr char kBold[] = "1";
constexpr char kRed[] = "1;31";
constexpr char kGreen[] = "32";
constexpr char kYellow[] = "33";
constexpr char kCyan[] = "36";
constexpr char kMagenta[] = "35";
constexpr char kDim[] = "2";
constexpr char kBlue[] = "34";

std::string Ip(const std::string& endpoint) { return endpoint.substr(0, endpoint.rfind(':')); }

// Writes `text` into `line` starting at `at`, growing the line when needed.
void Overlay(std::string& line, int at, const std::string& text) {
  at = std::max(at, 0);
  if (line.size() < static_cast<size_t>(at) + text.size()) line.resize(at + text.size(), ' ');
  line.replace(at, text.size(), text);
}

std::string RightTrim(std::string s) {
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

}  // namespace

Ladder::Ladder(Options opts, Resolver resolve) : opts_(std::move(opts)), resolve_(std::move(resolve)) {}

std::string Ladder::Paint(const std::string& text, const char* code) const {
  if (!opts_.color) return text;
  return absl::StrCat("\x1b[", code, "m", text, "\x1b[0m");
}

int Ladder::ColumnOf(const std::string& endpoint) const {
  auto it = std::find(columns_.begin(), columns_.end(), endpoint);
  return it == columns_.end() ? -1 : static_cast<int>(it - columns_.begin());
}

int Ladder::AddColumn(const std::string& endpoint) {
  columns_.push_back(endpoint);
  return static_cast<int>(columns_.size()) - 1;
}

void Ladder::DrawHeader(std::string* out) const {
  std::string names, roles;
  for (size_t i = 0; i < columns_.size(); ++i) {
    const std::string& ep = columns_[i];
    const std::string role = Ip(ep) == opts_.kernel_ip ? "(kernel)" : "(engine)";
    Overlay(names, Center(i) - static_cast<int>(ep.size()) / 2, ep);
    Overlay(roles, Center(i) - static_cast<int>(role.size()) / 2, role);
  }
  absl::StrAppend(out, "\n", Paint(RightTrim(names), kBold), "\n", RightTrim(roles), "\n", Blank(nullptr), "\n");
}

std::string Ladder::Blank(const google::protobuf::Duration* t) const {
  std::string line(columns_.empty() ? kMargin : Center(columns_.size() - 1) + 1, ' ');
  if (t) Overlay(line, 0, absl::StrFormat("%*s", kMargin - 1, SinceStartText(*t)));
  for (size_t i = 0; i < columns_.size(); ++i) line[Center(i)] = '|';
  return line;
}

int Ladder::ColumnFor(const v1::Event& e, bool final) {
  const uint64_t conn = e.connection_id();
  auto it = local_of_.find(conn);
  if (it == local_of_.end() && conn != 0 && !resolved_.contains(conn)) {
    resolved_.insert(conn);
    if (std::optional<std::string> ep = resolve_(conn)) it = local_of_.emplace(conn, *ep).first;
  }
  if (it != local_of_.end()) return ColumnOf(it->second);
  // Not known (a connection that is gone): when exactly one column belongs to the event's
  // stack, it is that one. The kernel's side of a tun sandbox usually has a single endpoint.
  int match = -1, count = 0;
  for (size_t i = 0; i < columns_.size(); ++i) {
    const bool kernel_side = Ip(columns_[i]) == opts_.kernel_ip;
    if (kernel_side == (e.stack() == v1::STACK_KERNEL)) {
      match = static_cast<int>(i);
      ++count;
    }
  }
  if (count == 1 && (final || e.stack() == v1::STACK_KERNEL)) return match;
  return -1;
}

void Ladder::Add(const v1::Event& e, std::string* out) {
  switch (e.body_case()) {
    case v1::Event::kSegment:
      DrawSegment(e, out);
      return;
    case v1::Event::kGap:
      absl::StrAppend(out, Paint(absl::StrCat("~~~~ missed ", e.gap().missed(), " events ~~~~"), kRed), "\n");
      return;
    default:
      break;
  }
  if (e.connection_id() == 0) {
    absl::StrAppend(out, Blank(&e.since_start()), " ", EventBody(e), "\n");
    return;
  }
  pending_.push_back(e);
  FlushPending(false, out);
}

void Ladder::FlushPending(bool final, std::string* out) {
  std::deque<v1::Event> waiting;
  for (v1::Event& e : pending_) {
    int col = ColumnFor(e, final);
    if (col < 0 && final) {
      auto it = local_of_.find(e.connection_id());
      if (it != local_of_.end()) {
        col = AddColumn(it->second);
        DrawHeader(out);
      }
    }
    if (col >= 0) {
      DrawAt(e, col, out);
    } else if (final) {
      absl::StrAppend(out, Blank(&e.since_start()), " ", StackName(e.stack()), " conn ", e.connection_id(), ": ",
                      EventBody(e), "\n");
    } else {
      waiting.push_back(std::move(e));
    }
  }
  pending_ = std::move(waiting);
}

void Ladder::Finish(std::string* out) { FlushPending(true, out); }

void Ladder::DrawAt(const v1::Event& e, int column, std::string* out) {
  const char* color = e.stack() == v1::STACK_KERNEL ? kMagenta : kGreen;
  switch (e.body_case()) {
    case v1::Event::kState:
      DrawMark(e, column, StateName(e.state().to()), color, out);
      return;
    case v1::Event::kTimer: {
      const v1::TimerEvent& t = e.timer();
      std::string text;
      if (t.kind() == v1::TimerEvent::KIND_TIME_WAIT) {
        if (t.action() == v1::TimerEvent::ACTION_STARTED) text = "(2MSL timer started)";
        if (t.action() == v1::TimerEvent::ACTION_FIRED) text = "(2MSL expired)";
      } else if (t.action() == v1::TimerEvent::ACTION_FIRED && t.kind() != v1::TimerEvent::KIND_DELAYED_ACK) {
        static const std::map<int, std::string> kNames = {{v1::TimerEvent::KIND_RETRANSMISSION, "RTO"},
                                                          {v1::TimerEvent::KIND_PERSIST, "persist timer"},
                                                          {v1::TimerEvent::KIND_KEEPALIVE, "keepalive"},
                                                          {v1::TimerEvent::KIND_FIN_WAIT_2, "FIN-WAIT-2 timer"}};
        auto it = kNames.find(t.kind());
        text = absl::StrCat("(", it == kNames.end() ? "timer" : it->second, " fired",
                            t.backoff() ? absl::StrCat(", backoff ", t.backoff()) : "", ")");
      }
      if (!text.empty()) DrawMark(e, column, text, kYellow, out);
      return;
    }
    case v1::Event::kApp: {
      // The call's verb: "close()", "send()"; with its error when it failed.
      const std::string& call = e.app().call();
      std::string text = absl::StrCat(call.substr(0, call.find(' ')), "()");
      if (e.app().result() != "OK") absl::StrAppend(&text, ": ", e.app().result().substr(0, 30));
      DrawMark(e, column, text, kDim, out);
      return;
    }
    default:
      return;
  }
}

void Ladder::DrawMark(const v1::Event& e, int column, const std::string& text, const char* color, std::string* out) {
  std::string line = Blank(&e.since_start());
  const std::string padded = absl::StrCat(" ", text, " ");
  const int at = std::max(Center(column) - static_cast<int>(padded.size()) / 2, kMargin);
  Overlay(line, at, padded);
  line = RightTrim(line);
  if (opts_.color) {
    line = absl::StrCat(line.substr(0, at), Paint(padded, color), line.size() > at + padded.size() ? line.substr(at + padded.size()) : "");
  }
  absl::StrAppend(out, line, "\n");
}

void Ladder::DrawSegment(const v1::Event& e, std::string* out) {
  const v1::SegmentEvent& s = e.segment();
  const bool in = s.direction() == v1::SegmentEvent::DIRECTION_IN;
  const std::string src = EndpointText(s.src()), dst = EndpointText(s.dst());
  if (e.connection_id() != 0) local_of_[e.connection_id()] = in ? dst : src;
  const Key key{src, dst, s.seq(), s.ack(), s.flags(), s.payload_length()};
  const bool drop = IsDrop(s.verdict());

  // The IN copy of an OUT segment already drawn (engine to engine): only a drop shows.
  if (in) {
    auto it = std::find(drawn_out_.begin(), drawn_out_.end(), key);
    if (it != drawn_out_.end()) {
      drawn_out_.erase(it);
      FlushPending(false, out);
      if (drop) DrawMark(e, ColumnOf(dst), absl::StrCat("x ", VerdictName(s.verdict())), kRed, out);
      return;
    }
  } else if (Ip(dst) != opts_.kernel_ip) {
    // Only a segment to another engine connection comes back as an IN copy.
    drawn_out_.push_back(key);
    if (drawn_out_.size() > kRecentOut) drawn_out_.pop_front();
  }

  // New endpoints get columns; of a new pair, the engine's goes left (the sender's when both
  // are the engine's).
  const size_t had = columns_.size();
  if (ColumnOf(src) < 0 && ColumnOf(dst) < 0 && Ip(src) == opts_.kernel_ip) AddColumn(dst);
  if (ColumnOf(src) < 0) AddColumn(src);
  if (ColumnOf(dst) < 0) AddColumn(dst);
  if (columns_.size() != had) DrawHeader(out);
  // Events that waited for these columns happened before this segment.
  FlushPending(false, out);

  const int a = Center(ColumnOf(src)), b = Center(ColumnOf(dst));
  std::string label = absl::StrCat("[", s.flags_text(), "] seq ", s.relative_seq());
  if (s.flags() & 0x10) absl::StrAppend(&label, " ack ", s.relative_ack());
  absl::StrAppend(&label, " win ", s.window(), " len ", s.payload_length());
  if (s.verdict() == v1::VERDICT_RETRANSMITTED) absl::StrAppend(&label, " (retx)");
  if (drop || s.verdict() == v1::VERDICT_CHALLENGE_ACKED || s.verdict() == v1::VERDICT_RESET_CONNECTION) {
    absl::StrAppend(&label, " ", VerdictName(s.verdict()));
  }

  std::string line = Blank(&e.since_start());
  const int left = std::min(a, b) + 1, right = std::max(a, b) - 1;
  if (right < left) {  // a segment from an endpoint to itself
    absl::StrAppend(out, line, " ", label, "\n");
    return;
  }
  const int width = right - left + 1;
  std::string arrow(width, '-');
  if (a < b) {
    arrow.back() = drop ? 'x' : '>';
  } else {
    arrow.front() = drop ? 'x' : '<';
  }
  const std::string text = absl::StrCat(" ", label.substr(0, std::max(0, width - 6)), " ");
  arrow.replace((width - text.size()) / 2, text.size(), text);
  line.replace(left, width, arrow);
  const char* color = drop                                     ? kRed
                      : s.flags() & 0x04                       ? kRed
                      : s.verdict() == v1::VERDICT_RETRANSMITTED ? kYellow
                      : a < b                                  ? kCyan
                                                               : kBlue;
  if (opts_.color) line = absl::StrCat(line.substr(0, left), Paint(arrow, color), line.substr(left + width));
  absl::StrAppend(out, line, "\n");
}

}  // namespace tcplab::cli
