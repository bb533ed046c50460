// The sandbox commands: create, ls, show, rm, and impair.
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/cli/commands.h"
#include "client/cli/format.h"

namespace tcplab::cli {

int RunSandboxCreate(Client& c, const Args& a) {
  v1::CreateSandboxRequest req;
  if (!a.positional().empty()) req.set_name(a.positional()[0]);
  v1::SandboxOptions* o = req.mutable_options();
  if (a.Has("--backend")) {
    const std::string b = a.Get("--backend");
    if (b == "tun") {
      o->set_backend(v1::BACKEND_TUN);
    } else if (b == "virtual") {
      o->set_backend(v1::BACKEND_VIRTUAL);
    } else {
      return UsageError(absl::StrCat("--backend must be tun or virtual, got \"", b, "\""));
    }
  }
  if (a.Has("--msl")) {
    auto d = a.GetDuration("--msl", absl::ZeroDuration());
    if (!d.ok()) return Usage(d.status());
    *o->mutable_msl() = DurationToProto(*d);
  }
  if (a.Has("--min-rto")) {
    auto d = a.GetDuration("--min-rto", absl::ZeroDuration());
    if (!d.ok()) return Usage(d.status());
    *o->mutable_min_rto() = DurationToProto(*d);
  }
  auto mtu = a.GetUint("--mtu", 0, 576, 65535);
  if (!mtu.ok()) return Usage(mtu.status());
  o->set_mtu(static_cast<uint32_t>(*mtu));

  v1::Sandbox resp;
  auto ctx = c.Context();
  grpc::Status s = c.sandboxes().CreateSandbox(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintJson(resp);
  } else {
    std::printf("%s\n", resp.name().c_str());
  }
  return kExitOk;
}

int RunSandboxList(Client& c, const Args&) {
  v1::ListSandboxesResponse resp;
  auto ctx = c.Context();
  grpc::Status s = c.sandboxes().ListSandboxes(ctx.get(), v1::ListSandboxesRequest(), &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintJson(resp);
  } else {
    std::fputs(SandboxesTable(resp.sandboxes()).c_str(), stdout);
  }
  return kExitOk;
}

int RunSandboxShow(Client& c, const Args& a) {
  v1::GetSandboxRequest req;
  req.set_name(a.positional()[0]);
  v1::Sandbox resp;
  auto ctx = c.Context();
  grpc::Status s = c.sandboxes().GetSandbox(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintJson(resp);
  } else {
    std::fputs(SandboxDetails(resp).c_str(), stdout);
  }
  return kExitOk;
}

int RunSandboxRemove(Client& c, const Args& a) {
  v1::DeleteSandboxRequest req;
  req.set_name(a.positional()[0]);
  v1::DeleteSandboxResponse resp;
  auto ctx = c.Context();
  grpc::Status s = c.sandboxes().DeleteSandbox(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintOk();
  } else {
    std::printf("deleted %s\n", req.name().c_str());
  }
  return kExitOk;
}

int RunImpair(Client& c, const Args& a) {
  using D = v1::SetImpairmentRequest;
  v1::SetImpairmentRequest req;
  req.set_sandbox(a.positional()[0]);
  const std::string dir = a.Get("--direction", "both");
  if (dir == "in") {
    req.set_direction(D::DIRECTION_TO_ENGINE);
  } else if (dir == "out") {
    req.set_direction(D::DIRECTION_TO_KERNEL);
  } else if (dir == "both") {
    req.set_direction(D::DIRECTION_BOTH);
  } else {
    return UsageError(absl::StrCat("--direction must be in, out or both, got \"", dir, "\""));
  }
  static const char* const kSettings[] = {"--loss", "--dup", "--reorder", "--corrupt", "--delay", "--jitter", "--seed"};
  bool any = false;
  for (const char* s : kSettings) any = any || a.Has(s);
  if (a.Has("--clear") && any) return UsageError("--clear takes no other impairment option");
  if (!a.Has("--clear") && !any) {
    return UsageError("impair needs --loss, --dup, --reorder, --corrupt, --delay, --jitter or --seed, or --clear");
  }
  v1::Impairment* imp = req.mutable_impairment();
  if (!a.Has("--clear")) {
    struct {
      const char* name;
      void (v1::Impairment::*set)(double);
    } probs[] = {{"--loss", &v1::Impairment::set_loss},
                 {"--dup", &v1::Impairment::set_duplicate},
                 {"--reorder", &v1::Impairment::set_reorder},
                 {"--corrupt", &v1::Impairment::set_corrupt}};
    for (const auto& p : probs) {
      auto v = a.GetProbability(p.name);
      if (!v.ok()) return Usage(v.status());
      (imp->*p.set)(*v);
    }
    auto delay = a.GetDuration("--delay", absl::ZeroDuration());
    if (!delay.ok()) return Usage(delay.status());
    if (*delay > absl::ZeroDuration()) *imp->mutable_delay() = DurationToProto(*delay);
    auto jitter = a.GetDuration("--jitter", absl::ZeroDuration());
    if (!jitter.ok()) return Usage(jitter.status());
    if (*jitter > absl::ZeroDuration()) *imp->mutable_jitter() = DurationToProto(*jitter);
    auto seed = a.GetUint("--seed", 0, 0, UINT64_MAX);
    if (!seed.ok()) return Usage(seed.status());
    imp->set_seed(*seed);
  }
  v1::SetImpairmentResponse resp;
  auto ctx = c.Context();
  grpc::Status s = c.sandboxes().SetImpairment(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintOk();
  } else if (a.Has("--clear")) {
    std::printf("%s: impairments cleared (%s)\n", req.sandbox().c_str(), dir.c_str());
  } else {
    std::printf("%s: impairment set (%s)\n", req.sandbox().c_str(), dir.c_str());
  }
  return kExitOk;
}

}  // namespace tcplab::cli
