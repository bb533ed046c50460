#include "engine/grading/runner.h"

#include <algorithm>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "engine/util/status_macros.h"
#include "engine/wire/codec.h"

namespace tcplab::grading {

namespace {

using Dir = PacketEvent::Direction;

// One read or write moves at most this much (the targets allocate it).
constexpr int64_t kMaxIoBytes = 16 << 20;
constexpr int64_t kMaxToleranceUsecs = 10'000'000;

int64_t Micros(Duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); }
Duration FromMicros(int64_t us) { return std::chrono::microseconds(us); }
std::string Secs(int64_t us) { return absl::StrFormat("%.6f", static_cast<double>(us) / 1e6); }

// When an event is due, in script microseconds since the start.
struct When {
  int64_t start = 0;
  int64_t end = 0;
  bool any = false;
  int64_t tolerance = 0;
  // For the return of a blocking call: measured from its start, as packetdrill does.
  int64_t return_tolerance = 0;
  bool Contains(int64_t t) const { return any || (t >= start - tolerance && t <= end + tolerance); }
  std::string Text() const {
    if (any) return "any time";
    if (end != start) return absl::StrCat("between ", Secs(start), " and ", Secs(end), " s");
    return absl::StrCat("at ", Secs(start), " s");
  }
};

struct Failed {
  int line = 0;
  std::string error;
  std::string expected, actual;
  std::vector<FieldDiff> diffs;
};

// The script's view of one segment the stack sent: relative numbers, as a PacketEvent.
PacketEvent Relative(const wire::SegmentRepr& s, uint32_t local_isn, uint32_t peer_isn) {
  PacketEvent p;
  p.dir = Dir::kOutbound;
  p.flags = s.flags;
  p.start = s.seq.raw() - local_isn;
  p.len = static_cast<uint32_t>(s.payload.size());
  p.end = p.start + p.len;
  if (s.flags & wire::kAck) p.ack = s.ack.raw() - peer_isn;
  p.win = s.window;
  if (s.urgent) p.urg = s.urgent;
  const wire::TcpOptions& o = s.options;
  auto add = [&](PacketOption::Kind kind) -> PacketOption& {
    p.options.mode = OptionsSpec::Mode::kList;
    p.options.list.emplace_back().kind = kind;
    return p.options.list.back();
  };
  if (o.mss) add(PacketOption::Kind::kMss).mss = *o.mss;
  if (o.sack_permitted) add(PacketOption::Kind::kSackPermitted);
  if (o.timestamps) {
    PacketOption& ts = add(PacketOption::Kind::kTimestamp);
    ts.ts_val = o.timestamps->val;
    ts.ts_ecr = o.timestamps->ecr;
  }
  if (o.window_scale) add(PacketOption::Kind::kWscale).wscale = *o.window_scale;
  if (o.sack_count > 0) {
    PacketOption& sack = add(PacketOption::Kind::kSack);
    for (int i = 0; i < o.sack_count; ++i) {
      sack.sack.push_back({o.sack[i].left.raw() - peer_isn, o.sack[i].right.raw() - peer_isn});
    }
  }
  return p;
}

// Options by meaning: everything but padding, in a fixed order.
std::string OptionsText(const std::vector<PacketOption>& list, bool with_ts_val) {
  std::vector<std::string> parts;
  std::vector<PacketOption> sorted;
  for (const PacketOption& o : list) {
    if (o.kind == PacketOption::Kind::kNop || o.kind == PacketOption::Kind::kEol) continue;
    PacketOption c = o;
    if (!with_ts_val) c.ts_val = 0;
    sorted.push_back(c);
  }
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const PacketOption& a, const PacketOption& b) { return a.kind < b.kind; });
  for (const PacketOption& o : sorted) {
    if (o.kind == PacketOption::Kind::kTimestamp && !with_ts_val) {
      parts.push_back(absl::StrCat("TS ecr ", o.ts_ecr));
    } else {
      parts.push_back(ToString(o));
    }
  }
  return absl::StrCat("<", absl::StrJoin(parts, ","), ">");
}

class Run {
 public:
  Run(const Script& s, Target& t, const RunOptions& o) : script_(s), target_(t), opt_(o) {}

  ScriptResult Go() {
    result_.file = script_.file;
    result_.target = target_.name();
    if (Options()) {
      for (const Event& e : script_.events) {
        if (!e.only.empty() && std::find(e.only.begin(), e.only.end(), target_.name()) == e.only.end()) continue;
        if (Stopped()) break;
        if (!Pending(e.loc.line)) break;
        const bool ok = std::visit([&](const auto& body) { return Do(e, body); }, e.body);
        if (!ok) break;
      }
      if (!failed_) Finish();
    }
    Notes();
    result_.passed = !failed_;
    if (dropped_ > 0) result_.timeline.push_back(absl::StrCat("... ", dropped_, " more lines not kept"));
    if (failed_) {
      for (std::string& d : target_.Describe()) result_.timeline.push_back(absl::StrCat("at the end: ", d));
    }
    if (failed_) {
      result_.line = failed_->line;
      result_.error = absl::StrCat(script_.file, ":", failed_->line, ": ", failed_->error);
      result_.expected = failed_->expected;
      result_.actual = failed_->actual;
      result_.diffs = failed_->diffs;
    }
    result_.elapsed = target_.Now();
    return std::move(result_);
  }

 private:
  struct PendingCall {
    const Event* event;
    int id;
    When when;
  };

  // --- bookkeeping ---
  int64_t Now() { return Micros(target_.Now()); }
  // The target's own notes first: they happened before what the runner saw of them.
  void Log(std::string line) {
    Notes();
    Timeline(absl::StrCat(Secs(Now()), " ", line));
  }
  // The timeline is bounded (a report must fit in a gRPC message): the first kMaxTimeline
  // lines of at most kMaxLine octets, then one line saying how many more there were.
  void Timeline(std::string line) {
    if (result_.timeline.size() >= kMaxTimeline) {
      ++dropped_;
      return;
    }
    if (line.size() > kMaxLine) line.resize(kMaxLine);
    result_.timeline.push_back(std::move(line));
  }
  static constexpr size_t kMaxTimeline = 2000;
  static constexpr size_t kMaxLine = 400;
  size_t dropped_ = 0;
  void Notes() {
    for (std::string& n : target_.TakeNotes()) Timeline(std::move(n));
  }
  bool Fail(int line, std::string error, std::string expected = "", std::string actual = "",
            std::vector<FieldDiff> diffs = {}) {
    if (!failed_) failed_ = Failed{line, std::move(error), std::move(expected), std::move(actual), std::move(diffs)};
    return false;
  }

  bool Options() {
    for (const ScriptOption& o : script_.options) {
      const std::string v = o.value.value_or("");
      int64_t usecs = 0;
      if (o.name == "tolerance_usecs" && absl::SimpleAtoi(v, &usecs) && usecs >= 0 && usecs <= kMaxToleranceUsecs) {
        if (!opt_.tolerance_usecs_fixed) opt_.tolerance_usecs = usecs;
        continue;
      }
      double pct = 0;
      if (o.name == "tolerance_percent" && absl::SimpleAtod(v, &pct) && pct >= 0 && pct <= 100) {
        opt_.tolerance_percent = pct;
        continue;
      }
      if (o.name == "tolerance_usecs") {
        return Fail(o.loc.line, absl::StrCat("--tolerance_usecs needs a number from 0 to ", kMaxToleranceUsecs,
                                             ", got '", v, "'"));
      }
      if (o.name == "tolerance_percent") {
        return Fail(o.loc.line, absl::StrCat("--tolerance_percent needs a number from 0 to 100, got '", v, "'"));
      }
      return Fail(o.loc.line, absl::StrCat("unknown option --", o.name,
                                           "; supported: --tolerance_usecs, --tolerance_percent"));
    }
    return true;
  }

  // packetdrill's timing: a relative time counts from now (when the previous event ended),
  // except that consecutive inbound packets count from the previous one's script time, so
  // that processing delays do not add up. Tolerance: tolerance_usecs, or tolerance_percent
  // of the time since the previous event if that is more.
  When Resolve(const Event& e, bool inbound_packet) {
    const TimeSpec& t = e.time;
    When w;
    w.any = t.kind == TimeSpec::Kind::kAny;
    int64_t offset = 0;
    if (t.IsRelative() || w.any) {
      offset = last_inbound_ && inbound_packet && last_us_ ? *last_us_ : Now();
    }
    w.start = offset + t.start_us;
    w.end = offset + (t.IsRange() ? t.end_us : t.start_us);
    w.tolerance = opt_.tolerance_usecs;
    w.return_tolerance = std::max<int64_t>(
        opt_.tolerance_usecs, static_cast<int64_t>(opt_.tolerance_percent / 100.0 * static_cast<double>(w.end - w.start)));
    if (last_us_) {
      w.tolerance = std::max<int64_t>(w.tolerance, static_cast<int64_t>(opt_.tolerance_percent / 100.0 *
                                                                        static_cast<double>(w.start - *last_us_)));
    }
    // A call without a range returns by its start time, with the event's own tolerance.
    if (!t.IsRange()) w.return_tolerance = w.tolerance;
    last_us_ = w.start;
    last_inbound_ = inbound_packet;
    return w;
  }

  // Real time passes in slices, so that a stop request ends a long wait (a script that
  // waits out TIME-WAIT) within a tenth of a second. False if stopped.
  bool Stopped() {
    if (opt_.stop && opt_.stop->load(std::memory_order_relaxed)) {
      result_.stopped = true;
      Fail(0, "stopped: the server is shutting down or the run was cancelled");
      return true;
    }
    return false;
  }
  bool AdvanceTo(int64_t us) {
    if (target_.virtual_time()) {
      target_.AdvanceTo(FromMicros(us));
      return true;
    }
    while (Now() < us) {
      if (Stopped()) return false;
      target_.AdvanceTo(FromMicros(std::min(us, Now() + kSliceUs)));
    }
    return true;
  }
  bool WaitSent(int64_t deadline, std::optional<Target::Sent>& sent) {
    if (target_.virtual_time()) {
      sent = target_.NextSent(FromMicros(deadline));
      return true;
    }
    do {
      if (Stopped()) return false;
      sent = target_.NextSent(FromMicros(std::min(deadline, Now() + kSliceUs)));
    } while (!sent && Now() < deadline);
    return true;
  }
  static constexpr int64_t kSliceUs = 100000;

  // Strict between events: whatever the stack sent by now was expected by no line.
  bool NothingSent(int line) {
    if (std::optional<Target::Sent> s = target_.NextSent(target_.Now())) {
      absl::StatusOr<wire::SegmentRepr> seg = wire::Parse(s->bytes, /*verify_checksum=*/false);
      if (seg.ok() && (seg->flags & wire::kSyn) && !local_isn_) local_isn_ = seg->seq.raw();
      std::string text = seg.ok() ? ToString(Relative(*seg, local_isn_.value_or(0), kPeerIsn)) : "(unparseable)";
      Log(absl::StrCat("unexpected ", text));
      return Fail(line, absl::StrCat("unexpected segment sent at ", Secs(Micros(s->at)), " s: ", text,
                                     " (no line of the script expects it here)"),
                  "", text);
    }
    return true;
  }

  // --- inbound packets ---
  bool Do(const Event& e, const PacketEvent& p) {
    return p.dir == Dir::kInbound ? Inject(e, p) : Expect(e, p);
  }

  bool Inject(const Event& e, const PacketEvent& p) {
    const When w = Resolve(e, true);
    if (!AdvanceTo(w.start)) return false;
    if (!NothingSent(e.loc.line)) return false;
    if (local_port_ == 0) local_port_ = kScriptPort;
    if (peer_port_ == 0) peer_port_ = kPeerPort;
    wire::SegmentRepr seg;
    seg.src = {kRemoteAddr, peer_port_};
    seg.dst = {kLocalAddr, local_port_};
    seg.seq = wire::SeqNum(kPeerIsn + p.start);
    seg.ack = wire::SeqNum(p.ack ? local_isn_.value_or(0) + *p.ack : 0);
    seg.flags = p.flags;
    seg.window = p.win.value_or(0);
    seg.urgent = p.urg.value_or(0);
    for (const PacketOption& o : p.options.list) {
      switch (o.kind) {
        case PacketOption::Kind::kMss:
          seg.options.mss = o.mss;
          break;
        case PacketOption::Kind::kWscale:
          seg.options.window_scale = o.wscale;
          break;
        case PacketOption::Kind::kSackPermitted:
          seg.options.sack_permitted = true;
          break;
        case PacketOption::Kind::kTimestamp: {
          // An ecr the script wrote as one of the stack's (script) vals goes out as the real one.
          auto it = ts_vals_.find(o.ts_ecr);
          seg.options.timestamps = wire::Timestamps{o.ts_val, it != ts_vals_.end() ? it->second : o.ts_ecr};
          break;
        }
        case PacketOption::Kind::kSack:
          for (const SackBlock& b : o.sack) {
            if (seg.options.sack_count >= wire::kMaxSackBlocks) break;
            const uint32_t base = local_isn_.value_or(0);
            seg.options.sack[seg.options.sack_count++] = {wire::SeqNum(base + b.left), wire::SeqNum(base + b.right)};
          }
          break;
        case PacketOption::Kind::kNop:
        case PacketOption::Kind::kEol:
          break;
      }
    }
    std::vector<uint8_t> payload(p.len, 'p');
    seg.payload = payload;
    std::vector<uint8_t> bytes;
    wire::Serialize(seg, bytes);
    if (p.bad_checksum) {
      const size_t ihl = (bytes[0] & 0x0f) * 4u;
      bytes[ihl + 16] ^= 0x5a;  // the TCP checksum's first octet
    }
    Log(absl::StrCat("inject ", ToString(p)));
    if (absl::Status s = target_.Inject(bytes); !s.ok()) {
      return Fail(e.loc.line, absl::StrCat("could not inject the segment: ", s.message()));
    }
    return true;
  }

  // --- outbound packets ---
  bool Expect(const Event& e, const PacketEvent& p) {
    const When w = Resolve(e, false);
    const int64_t deadline = w.any ? Now() + Micros(opt_.any_time_limit) : w.end + w.tolerance;
    std::optional<Target::Sent> sent;
    if (!WaitSent(deadline, sent)) return false;
    const std::string want = ToString(p);
    if (!sent) {
      Log(absl::StrCat("nothing sent; expected ", want));
      return Fail(e.loc.line, absl::StrCat("expected ", want, " ", w.Text(), " but nothing was sent by ",
                                           Secs(deadline), " s"),
                  want, "(nothing)");
    }
    const int64_t at = Micros(sent->at);
    absl::StatusOr<wire::SegmentRepr> parsed = wire::Parse(sent->bytes, /*verify_checksum=*/true);
    std::vector<FieldDiff> diffs;
    if (!parsed.ok() && parsed.status().code() == absl::StatusCode::kDataLoss) {
      diffs.push_back({"checksum", "valid", std::string(parsed.status().message())});
      parsed = wire::Parse(sent->bytes, /*verify_checksum=*/false);
    }
    if (!parsed.ok()) {
      Log(absl::StrCat("unparseable datagram: ", parsed.status().message()));
      return Fail(e.loc.line, absl::StrCat("expected ", want, " but the stack sent a datagram that is not a valid "
                                           "TCP/IPv4 segment: ", parsed.status().message()),
                  want, "(malformed)");
    }
    const wire::SegmentRepr& seg = *parsed;
    // What the stack's first SYN says: its ISN, and the ports of a connection it opened.
    if ((seg.flags & wire::kSyn) && !local_isn_) local_isn_ = seg.seq.raw();
    if (local_port_ == 0) local_port_ = seg.src.port;
    if (peer_port_ == 0) peer_port_ = seg.dst.port;
    const PacketEvent got = Relative(seg, local_isn_.value_or(0), kPeerIsn);
    const std::string got_text = ToString(got);
    Log(absl::StrCat("sent ", got_text));

    auto diff = [&](std::string field, auto want_v, auto got_v) {
      if (want_v != got_v) diffs.push_back({std::move(field), absl::StrCat(want_v), absl::StrCat(got_v)});
    };
    if (!w.Contains(at)) {
      diffs.push_back({"time", w.Text() + absl::StrCat(" (tolerance ", Secs(w.tolerance), " s)"),
                       absl::StrCat("at ", Secs(at), " s")});
    }
    diff("flags", FlagsText(p.flags), FlagsText(seg.flags));
    diff("seq", p.start, got.start);
    diff("len", p.len, got.len);
    if (p.ack) {
      if (!(seg.flags & wire::kAck)) {
        diffs.push_back({"ack", absl::StrCat(*p.ack), "(no ACK bit)"});
      } else {
        diff("ack", *p.ack, *got.ack);
      }
    }
    if (p.win) diff("win", *p.win, seg.window);
    if (p.urg) diff("urg", *p.urg, seg.urgent);
    diff("src", wire::Endpoint{kLocalAddr, local_port_}.ToString(), seg.src.ToString());
    diff("dst", wire::Endpoint{kRemoteAddr, peer_port_}.ToString(), seg.dst.ToString());
    switch (p.options.mode) {
      case OptionsSpec::Mode::kAny:
        break;
      case OptionsSpec::Mode::kNotGiven:
        diff("options", std::string("none"), got.options.list.empty() ? std::string("none") : OptionsText(got.options.list, true));
        break;
      case OptionsSpec::Mode::kList: {
        // The stack's TS val is its own clock: not compared, remembered for inbound ecrs.
        diff("options", OptionsText(p.options.list, false), OptionsText(got.options.list, false));
        for (const PacketOption& o : p.options.list) {
          if (o.kind == PacketOption::Kind::kTimestamp && seg.options.timestamps) {
            ts_vals_[o.ts_val] = seg.options.timestamps->val;
          }
        }
        break;
      }
    }
    if (!diffs.empty()) {
      std::vector<std::string> names;
      for (const FieldDiff& d : diffs) names.push_back(d.field);
      return Fail(e.loc.line, absl::StrCat("segment mismatch (", absl::StrJoin(names, ", "), "): expected ", want,
                                           ", got ", got_text),
                  want, got_text, std::move(diffs));
    }
    return true;
  }

  static std::string FlagsText(uint8_t f) {
    PacketEvent p;
    p.flags = f;
    std::string s = ToString(p);  // "< F. 0:0(0)": the flags are the second word
    size_t a = s.find(' ');
    size_t b = s.find(' ', a + 1);
    return s.substr(a + 1, b - a - 1);
  }

  // --- system calls ---
  bool Do(const Event& e, const SyscallEvent& c) {
    const When w = Resolve(e, false);
    if (!AdvanceTo(w.start)) return false;
    if (!NothingSent(e.loc.line)) return false;
    if (!AwaitPending(e.loc.line)) return false;
    absl::StatusOr<SockCall> call = Translate(c);
    if (!call.ok()) return Fail(e.loc.line, std::string(call.status().message()));
    Log(absl::StrCat("call ", ToString(c)));
    const int id = target_.StartCall(*call);
    std::optional<Target::Done> done = target_.Poll(id);
    if (!done) {
      pending_.push_back({&e, id, w});
      Log(absl::StrCat("  ... blocks"));
      return true;
    }
    return Check(e, c, w, *done);
  }

  // Blocking calls that returned since; failure if one is overdue.
  bool Pending(int line) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      std::optional<Target::Done> done = target_.Poll(it->id);
      if (done) {
        const Event& e = *it->event;
        const When w = it->when;
        it = pending_.erase(it);
        if (!Check(e, std::get<SyscallEvent>(e.body), w, *done)) return false;
        continue;
      }
      if (Now() > it->when.end + it->when.return_tolerance) {
        return Fail(it->event->loc.line,
                    absl::StrCat(ToString(std::get<SyscallEvent>(it->event->body)), " was expected to return at ",
                                 Secs(it->when.end), " s but was still blocked at ", Secs(Now()), " s",
                                 line > 0 ? absl::StrCat(" (when line ", line, " was due)") : ""));
      }
      ++it;
    }
    return true;
  }

  // Calls are made one at a time, as by packetdrill's single system-call thread: a call
  // waits for a blocked one to return (by its return time at the latest). In real time the
  // blocked call's thread may still be waking up when the next line is due, and the next
  // line often uses what it returns (accept's fd).
  bool AwaitPending(int line) {
    if (!target_.virtual_time()) {
      for (const PendingCall& p : pending_) {
        const int64_t latest = p.when.end + p.when.return_tolerance;
        while (!target_.Poll(p.id) && Now() <= latest) {
          if (Stopped()) return false;
          target_.AdvanceTo(FromMicros(std::min(latest + 1, Now() + 200)));
        }
      }
    }
    return Pending(line);
  }

  void Finish() {
    // Give blocked calls until their latest return time, then hold them to it.
    int64_t until = 0;
    for (const PendingCall& p : pending_) until = std::max(until, p.when.end + p.when.return_tolerance + 1);
    if (!pending_.empty() && !AdvanceTo(until)) return;
    Pending(0);
  }

  bool Check(const Event& e, const SyscallEvent& c, const When& w, const Target::Done& done) {
    const int64_t at = Micros(done.at);
    const SockResult& r = done.result;
    const bool new_fd = c.call == Syscall::kSocket || c.call == Syscall::kAccept;
    const std::string got = r.value < 0 ? absl::StrCat("-1 ", r.err) : absl::StrCat(r.value);
    Log(absl::StrCat("returned ", new_fd && r.value >= 0 ? absl::StrCat("fd (the target's ", r.value, ")") : got,
                     r.so_error.empty() ? "" : absl::StrCat(", SO_ERROR ", r.so_error), ": ", ToString(c)));
    const std::string want = c.ret.errno_name ? absl::StrCat(c.ret.value, " ", *c.ret.errno_name)
                                              : absl::StrCat(c.ret.value);
    // A new fd is any fd >= 0 (the runner maps the script's number to it).
    const bool same = c.ret.errno_name ? (r.value == -1 && r.err == *c.ret.errno_name)
                      : (new_fd && c.ret.value >= 0) ? r.value >= 0
                                                      : r.value == c.ret.value;
    if (!same) {
      return Fail(e.loc.line, absl::StrCat(SyscallName(c.call), " returned ", got, ", expected ", want), want, got,
                  {{"return", want, got}});
    }
    // Then when: at its time, or at the end of its range. (What it returned comes first: a
    // call that failed, e.g. a DUT that never answered, is reported as such, not as late.)
    When ret = w;
    ret.start = ret.end;
    ret.tolerance = w.return_tolerance;
    if (!ret.Contains(at)) {
      return Fail(e.loc.line, absl::StrCat(SyscallName(c.call), " returned at ", Secs(at), " s, expected to return ",
                                           ret.Text(), " (tolerance ", Secs(ret.tolerance), " s)"),
                  want, got, {{"time", ret.Text(), absl::StrCat("at ", Secs(at), " s")}});
    }
    if (new_fd) fds_[c.ret.value] = static_cast<int>(r.value);
    // A closed fd is gone: the target may give its number to another socket.
    if (c.call == Syscall::kClose && r.value == 0 && !c.args.empty()) fds_.erase(c.args[0].value);
    if (c.call == Syscall::kGetsockopt && c.args.size() >= 4) {
      const Expr& out = c.args[3].kind == Expr::Kind::kPointer && !c.args[3].items.empty() ? c.args[3].items[0] : c.args[3];
      std::string want_err = out.kind == Expr::Kind::kSymbol ? out.text : absl::StrCat(out.value);
      if (out.kind != Expr::Kind::kEllipsis && want_err != r.so_error) {
        return Fail(e.loc.line, absl::StrCat("getsockopt(SO_ERROR) gave ", r.so_error, ", expected ", want_err), want_err,
                    r.so_error, {{"SO_ERROR", want_err, r.so_error}});
      }
    }
    return true;
  }

  // The script's call as a target call: fds mapped, symbols resolved, what the runner does
  // not support refused by name.
  absl::StatusOr<SockCall> Translate(const SyscallEvent& c) {
    SockCall s;
    const std::string name(SyscallName(c.call));
    auto arg = [&](size_t i) -> const Expr* { return i < c.args.size() ? &c.args[i] : nullptr; };
    auto fd = [&]() -> int {
      const Expr* a = arg(0);
      if (!a || a->kind != Expr::Kind::kInt) return -1;
      auto it = fds_.find(a->value);
      return it == fds_.end() ? -1 : it->second;
    };
    auto unsupported = [&](const Expr* a, absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", what, " ",
                                                     a ? absl::StrCat("'", ToString(*a), "'") : std::string("(missing)"),
                                                     " is not supported"));
    };
    auto int_or = [&](const Expr* a, int64_t dflt, absl::string_view what) -> absl::StatusOr<int64_t> {
      if (!a || a->kind == Expr::Kind::kEllipsis) return dflt;
      if (a->kind == Expr::Kind::kInt) return a->value;
      if (a->kind == Expr::Kind::kPointer && !a->items.empty() && a->items[0].kind == Expr::Kind::kInt) {
        return a->items[0].value;
      }
      return unsupported(a, what);
    };
    s.handle = fd();
    switch (c.call) {
      case Syscall::kSocket: {
        const Expr* type = arg(1);
        if (type && type->kind != Expr::Kind::kEllipsis && !(type->kind == Expr::Kind::kSymbol && type->text == "SOCK_STREAM")) {
          return unsupported(type, "socket type");
        }
        s.op = SockCall::Op::kSocket;
        return s;
      }
      case Syscall::kBind:
        s.op = SockCall::Op::kBind;
        s.addr = {kLocalAddr, kScriptPort};
        return s;
      case Syscall::kListen: {
        s.op = SockCall::Op::kListen;
        TCPLAB_ASSIGN_OR_RETURN(s.arg, int_or(arg(1), 128, "backlog"));
        return s;
      }
      case Syscall::kAccept:
        s.op = SockCall::Op::kAccept;
        return s;
      case Syscall::kConnect:
        s.op = SockCall::Op::kConnect;
        s.addr = {kRemoteAddr, kScriptPort};
        return s;
      case Syscall::kRead:
      case Syscall::kRecv:
      case Syscall::kWrite:
      case Syscall::kSend: {
        const bool rd = c.call == Syscall::kRead || c.call == Syscall::kRecv;
        s.op = rd ? SockCall::Op::kRead : SockCall::Op::kWrite;
        TCPLAB_ASSIGN_OR_RETURN(s.arg, int_or(arg(2), -1, "length"));
        if (s.arg < 0) return unsupported(arg(2), "length");
        if (s.arg > kMaxIoBytes) {
          return absl::InvalidArgumentError(
              absl::StrCat(name, ": length ", s.arg, " is more than ", kMaxIoBytes, ", the most a script may move in one call"));
        }
        if (c.call == Syscall::kRecv || c.call == Syscall::kSend) {
          const Expr* flags = arg(3);
          if (flags && !(flags->kind == Expr::Kind::kEllipsis || (flags->kind == Expr::Kind::kInt && flags->value == 0))) {
            return unsupported(flags, "flags");
          }
        }
        return s;
      }
      case Syscall::kShutdown: {
        s.op = SockCall::Op::kShutdown;
        const Expr* how = arg(1);
        if (how && how->kind == Expr::Kind::kSymbol) {
          if (how->text == "SHUT_RD") s.arg = 0;
          else if (how->text == "SHUT_WR") s.arg = 1;
          else if (how->text == "SHUT_RDWR") s.arg = 2;
          else return unsupported(how, "how");
          return s;
        }
        TCPLAB_ASSIGN_OR_RETURN(s.arg, int_or(how, -1, "how"));
        if (s.arg < 0 || s.arg > 2) return unsupported(how, "how");
        return s;
      }
      case Syscall::kClose:
        s.op = SockCall::Op::kClose;
        return s;
      case Syscall::kFcntl: {
        const Expr* cmd = arg(1);
        if (cmd && cmd->kind == Expr::Kind::kSymbol && cmd->text == "F_GETFL") {
          s.op = SockCall::Op::kGetFlags;
          return s;
        }
        if (!(cmd && cmd->kind == Expr::Kind::kSymbol && cmd->text == "F_SETFL")) return unsupported(cmd, "command");
        s.op = SockCall::Op::kSetNonBlocking;
        const Expr* flags = arg(2);
        std::vector<const Expr*> items;
        if (flags && flags->kind == Expr::Kind::kFlags) {
          for (const Expr& i : flags->items) items.push_back(&i);
        } else if (flags) {
          items.push_back(flags);
        }
        for (const Expr* i : items) {
          if (i->kind == Expr::Kind::kSymbol && i->text == "O_NONBLOCK") s.flag = true;
          else if (i->kind == Expr::Kind::kSymbol && i->text == "O_RDWR") continue;
          else if (i->kind == Expr::Kind::kInt) s.flag = s.flag || (i->value & 04000);
          else return unsupported(i, "flag");
        }
        return s;
      }
      case Syscall::kSetsockopt:
      case Syscall::kGetsockopt: {
        const Expr* opt = arg(2);
        const std::string o = opt && opt->kind == Expr::Kind::kSymbol ? opt->text : "";
        const Expr* val = arg(3);
        if (c.call == Syscall::kGetsockopt) {
          if (o != "SO_ERROR") return unsupported(opt, "option");
          s.op = SockCall::Op::kGetSoError;
          return s;
        }
        if (o == "SO_REUSEADDR" || o == "TCP_NODELAY") {
          s.op = o == "SO_REUSEADDR" ? SockCall::Op::kSetReuseAddr : SockCall::Op::kSetNoDelay;
          int64_t v = 0;
          TCPLAB_ASSIGN_OR_RETURN(v, int_or(val, 1, "value"));
          s.flag = v != 0;
          return s;
        }
        if (o == "SO_LINGER") {
          s.op = SockCall::Op::kSetLinger;
          if (!val || val->kind != Expr::Kind::kStruct) return unsupported(val, "value");
          for (const Expr& m : val->items) {
            if (m.kind != Expr::Kind::kInt) return unsupported(&m, "member");
            if (m.field == "onoff" || m.field == "l_onoff") s.flag = m.value != 0;
            else if (m.field == "linger" || m.field == "l_linger") s.arg = m.value;
            else return unsupported(&m, "member");
          }
          return s;
        }
        return unsupported(opt, "option");
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(name, " is not supported"));
  }

  const Script& script_;
  Target& target_;
  RunOptions opt_;
  ScriptResult result_;
  std::optional<Failed> failed_;
  std::optional<int64_t> last_us_;  // script time of the previous event
  bool last_inbound_ = false;
  std::optional<uint32_t> local_isn_;
  uint16_t local_port_ = 0, peer_port_ = 0;
  std::map<int64_t, int> fds_;              // script fd -> target handle
  std::map<uint32_t, uint32_t> ts_vals_;    // the stack's TS val: script value -> real one
  std::vector<PendingCall> pending_;
};

}  // namespace

ScriptResult RunScript(const Script& script, Target& target, const RunOptions& options) {
  return Run(script, target, options).Go();
}

std::string FormatFailure(const ScriptResult& r) {
  if (r.passed) return absl::StrCat(r.file, ": passed on ", r.target, "\n");
  std::string out = absl::StrCat(r.error, "\n");
  if (!r.expected.empty() || !r.actual.empty()) {
    absl::StrAppend(&out, "  expected: ", r.expected, "\n  actual:   ", r.actual, "\n");
  }
  if (!r.diffs.empty()) {
    size_t w = 5;
    for (const FieldDiff& d : r.diffs) w = std::max(w, d.field.size());
    absl::StrAppend(&out, absl::StrFormat("  %-*s  %-28s %s\n", static_cast<int>(w), "field", "expected", "actual"));
    for (const FieldDiff& d : r.diffs) {
      absl::StrAppend(&out, absl::StrFormat("  %-*s  %-28s %s\n", static_cast<int>(w), d.field, d.expected, d.actual));
    }
  }
  absl::StrAppend(&out, "  timeline (", r.target, "):\n");
  for (const std::string& t : r.timeline) absl::StrAppend(&out, "    ", t, "\n");
  return out;
}

}  // namespace tcplab::grading
