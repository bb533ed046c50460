// Status propagation for code that returns absl::Status or absl::StatusOr. Abseil 20220623
// (Debian 12's) has no status macros (DESIGN.md); these two are all the project needs.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TCPLAB_RETURN_IF_ERROR(expr)          \
  do {                                        \
    if (absl::Status _s = (expr); !_s.ok()) { \
      return _s;                              \
    }                                         \
  } while (0)

#define TCPLAB_CONCAT_INNER(a, b) a##b
#define TCPLAB_CONCAT(a, b) TCPLAB_CONCAT_INNER(a, b)
// Declares a temporary: use it where a declaration may stand (not as a lone if/case body).
#define TCPLAB_ASSIGN_OR_RETURN(lhs, expr) \
  TCPLAB_ASSIGN_OR_RETURN_IMPL(TCPLAB_CONCAT(_statusor_, __LINE__), lhs, expr)
#define TCPLAB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = *std::move(tmp)
