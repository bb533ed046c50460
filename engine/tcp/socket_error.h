// Errors that read like a socket's: the status message starts with the errno a socket user
// would see ("ECONNREFUSED: ..."), and the errno travels as the payload "tcplab.errno" too, so
// that the server can send it as trailing metadata and the grader can map it back.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace tcplab::tcp {

inline constexpr char kErrnoPayload[] = "tcplab.errno";

inline absl::Status SocketError(absl::StatusCode code, const char* errno_name, std::string_view msg) {
  absl::Status s(code, absl::StrCat(errno_name, ": ", absl::string_view(msg.data(), msg.size())));
  s.SetPayload(kErrnoPayload, absl::Cord(errno_name));
  return s;
}

}  // namespace tcplab::tcp
