#include "server/auth.h"

#include <grpc/grpc.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tcplab::server {

namespace {

namespace gx = ::grpc::experimental;

constexpr absl::string_view kHealthPrefix = "/grpc.health.v1.Health/";

std::array<unsigned char, 32> Sha256(absl::string_view s) {
  std::array<unsigned char, 32> d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

// A token goes into an HTTP/2 header value: visible ASCII, no spaces.
bool ValidTokenChars(absl::string_view t) {
  for (char c : t) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

class AuthInterceptor : public gx::Interceptor {
 public:
  AuthInterceptor(const Authenticator& auth, gx::ServerRpcInfo* info) : auth_(auth), info_(info) {}

  void Intercept(gx::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(gx::InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      absl::StatusOr<std::string> tenant = auth_.TenantOf(*m->GetRecvInitialMetadata());
      if (!tenant.ok()) {
        // The status reaches the client as sent here; the handler, which checks the token
        // itself, does nothing for this call.
        const std::string msg(tenant.status().message());
        grpc_call_cancel_with_status(info_->server_context()->c_call(), GRPC_STATUS_UNAUTHENTICATED, msg.c_str(),
                                     nullptr);
      }
    }
    m->Proceed();
  }

 private:
  const Authenticator& auth_;
  gx::ServerRpcInfo* info_;
};

}  // namespace

bool Authenticator::ValidTenant(absl::string_view t) {
  if (t.empty() || t.size() > 32) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(t[0])) return false;
  for (char c : t) {
    if (!lower_or_digit(c) && c != '_' && c != '-') return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the token file"));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the token file"));
  return FromText(text.str(), path);
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::FromText(absl::string_view text,
                                                                       absl::string_view source) {
  auto a = std::make_unique<Authenticator>();
  absl::flat_hash_map<std::string, int> first_line;  // by digest: where each token first appeared
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": ", why));
    };
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() != 2) {
      return fail(absl::StrCat("expected \"TOKEN TENANT\", got ", f.size(), " fields"));
    }
    if (f[0].size() < kMinTokenBytes) {
      return fail(absl::StrCat("token too short: ", f[0].size(), " characters, at least ", kMinTokenBytes));
    }
    if (!ValidTokenChars(f[0])) return fail("token must be printable ASCII without spaces");
    if (!ValidTenant(f[1])) {
      return fail(absl::StrCat("tenant must match [a-z0-9][a-z0-9_-]{0,31}, got \"", f[1].substr(0, 64), "\""));
    }
    Entry e{Sha256(f[0]), std::string(f[1])};
    const std::string key(reinterpret_cast<const char*>(e.digest.data()), e.digest.size());
    if (auto [it, inserted] = first_line.try_emplace(key, line_no); !inserted) {
      return fail(absl::StrCat("duplicate token (first on line ", it->second, ")"));
    }
    a->tokens_.push_back(std::move(e));
  }
  if (a->tokens_.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": no tokens"));
  return a;
}

absl::StatusOr<std::string> Authenticator::TenantOf(const grpc::CallbackServerContext& ctx) const {
  if (!enabled()) return std::string();
  return TenantOf(ctx.client_metadata());
}

absl::StatusOr<std::string> Authenticator::TenantOf(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  if (!enabled()) return std::string();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return absl::UnauthenticatedError(kMissingTokenMessage);
  absl::string_view v(it->second.data(), it->second.size());
  // RFC 6750 §2.1: "Bearer" then the token; the scheme is case-insensitive (RFC 9110 §11.1).
  if (v.size() < 7 || !absl::EqualsIgnoreCase(v.substr(0, 7), "bearer ")) {
    return absl::UnauthenticatedError(kMissingTokenMessage);
  }
  v = absl::StripAsciiWhitespace(v.substr(7));
  if (v.empty()) return absl::UnauthenticatedError(kMissingTokenMessage);
  // Every entry is compared, digests of equal length with CRYPTO_memcmp: the time taken says
  // nothing about how much of a token matched, or which.
  const Digest d = Sha256(v);
  const std::string* tenant = nullptr;
  for (const Entry& e : tokens_) {
    if (CRYPTO_memcmp(d.data(), e.digest.data(), d.size()) == 0) tenant = &e.tenant;
  }
  if (tenant == nullptr) return absl::UnauthenticatedError(kUnknownTokenMessage);
  return *tenant;
}

gx::Interceptor* AuthInterceptorFactory::CreateServerInterceptor(gx::ServerRpcInfo* info) {
  if (!auth_.enabled() || absl::StartsWith(info->method(), kHealthPrefix)) return nullptr;
  return new AuthInterceptor(auth_, info);
}

}  // namespace tcplab::server
