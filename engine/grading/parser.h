// Grading scripts: text -> Script (script.h). The language is the documented subset of
// packetdrill in engine/grading/SCRIPTS.md.
//
// The parser refuses what it does not support (shell commands, Python blocks, UDP/ICMP/IPv6
// packets, unknown system calls, ...) rather than skipping it: a skipped line would grade a
// different test from the one the instructor wrote.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/grading/script.h"

namespace tcplab::grading {

// Parses a whole script. `file_name` is used only in messages and Script::file.
//
// Errors: INVALID_ARGUMENT for the first problem found, as
//   "FILE:LINE:COLUMN: error: WHAT, expected WHAT[, got WHAT]"
// e.g. "handshake.pkt:7:21: error: expected 'ack', 'win', 'urg', '<' or end of line, got 'acc'".
absl::StatusOr<Script> ParseScript(absl::string_view file_name, absl::string_view text);

// Reads `path` and parses it under that name. A file that cannot be read gives the status
// its errno maps to (NOT_FOUND, PERMISSION_DENIED, ...) naming the path.
absl::StatusOr<Script> ParseScriptFile(const std::string& path);

}  // namespace tcplab::grading
