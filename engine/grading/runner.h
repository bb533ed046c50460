// Runs a grading script (script.h) against a target (target.h) the way packetdrill runs one
// against a kernel, and reports the first mismatch field by field.
//
// What the runner adds to the script, as packetdrill does:
// - Sequence numbers: the script's are relative. Its peer's ISN is kPeerIsn; the stack's ISN
//   is learned from the first SYN it sends. Inbound seq/ack and SACK blocks are translated to
//   wire values, outbound ones back before comparing.
// - Addresses and ports: the stack is 198.18.0.1, the peer 198.18.0.2. A script that starts
//   with an inbound packet talks to port 8080 from port kPeerPort; one that starts with the
//   stack's SYN learns both ports from it.
// - Timestamps: an outbound TS val is not checked (it is the stack's clock), but remembered,
//   so that an inbound ecr written as the script's val is sent as the stack's real one.
//
// Where this differs from packetdrill, on purpose (SCRIPTS.md):
// - Outbound options are compared by meaning, not layout: the same options in another order
//   or with other padding (NOPs, EOL) match. RFC 9293 fixes no layout.
// - Strict between events: a segment the stack sends that no outbound line expects fails the
//   script at the next line, whatever that line is, so a script can say "nothing is sent
//   here" by what it leaves out (a segment with a bad checksum is ignored: no reply).
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "engine/grading/script.h"
#include "engine/grading/target.h"

namespace tcplab::grading {

inline constexpr uint32_t kPeerIsn = 1000000;
inline constexpr uint16_t kPeerPort = 45000;

struct RunOptions {
  // packetdrill's tolerance; a script's --tolerance_usecs / --tolerance_percent override it.
  int64_t tolerance_usecs = kDefaultToleranceUsecs;
  double tolerance_percent = kDefaultTolerancePercent;
  // The grader's tolerance_usecs wins over the script's --tolerance_usecs (a slow machine).
  bool tolerance_usecs_fixed = false;
  // How long `*` (any time) waits for an outbound segment.
  Duration any_time_limit = std::chrono::seconds(10);
  // Checked before every event: once true, the run ends as failed with `stopped_reason`
  // (a server shutting down does not wait out a 60 s TIME-WAIT script).
  const std::atomic<bool>* stop = nullptr;
};

// One field of a segment that did not match.
struct FieldDiff {
  std::string field;  // "flags", "seq", "ack", "win", "len", "options", "time", ...
  std::string expected;
  std::string actual;
  friend bool operator==(const FieldDiff&, const FieldDiff&) = default;
};

struct ScriptResult {
  std::string file;
  std::string target;
  bool passed = false;
  // For a failure: where and what, as "FILE:LINE: WHAT" (one line), and for a segment the
  // expected and actual ones in script form with the fields that differ.
  int line = 0;
  std::string error;
  std::string expected;
  std::string actual;
  std::vector<FieldDiff> diffs;
  // Everything that happened up to the end or the failure, one line each, with times:
  // injected and received segments, calls and results, and the target's own notes.
  std::vector<std::string> timeline;
  Duration elapsed{};  // on the target's clock
  bool stopped = false;  // RunOptions::stop ended it: not a verdict on the stack
};

ScriptResult RunScript(const Script& script, Target& target, const RunOptions& options = {});

// A failure as people read it: the error, the expected and actual segments side by side
// field by field, then the timeline.
std::string FormatFailure(const ScriptResult& r);

}  // namespace tcplab::grading
