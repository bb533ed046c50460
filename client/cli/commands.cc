// The unary commands: sandboxes, connections, impairments. Streams are in watch.cc.
#include "client/cli/commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cli/format.h"
#include "google/protobuf/duration.pb.h"

namespace tcplab::cli {

namespace {

constexpr size_t kSendChunk = 1 << 20;  // octets per Send call (the server takes up to 4 MiB)

// A usage error from a failed argument check: prints it, exit 2.
int Usage(const absl::Status& s) { return UsageError(std::string(s.message())); }

void PrintOk() { std::fputs("{\"ok\":true}\n", stdout); }

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return out;
}

absl::StatusOr<v1::Stack> ParseStack(const Args& a) {
  const std::string s = a.Get("--stack");
  if (s == "engine") return v1::STACK_ENGINE;
  if (s == "kernel") return v1::STACK_KERNEL;
  if (!a.Has("--stack")) return absl::InvalidArgumentError("--stack is required: engine or kernel");
  return absl::InvalidArgumentError(absl::StrCat("--stack must be engine or kernel, got \"", s, "\""));
}

// "IP:PORT". The address itself is the server's to check (it names remote.ip when it is bad).
absl::StatusOr<v1::Endpoint> ParseEndpoint(const std::string& what, const std::string& text) {
  v1::Endpoint ep;
  auto colon = text.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(text.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be IP:PORT with a port 0..65535, e.g. 198.18.0.1:80, got \"", text, "\""));
  }
  ep.set_ip(text.substr(0, colon));
  ep.set_port(port);
  return ep;
}

// Prints a connection after listen/connect/shutdown/close/abort: its name in text mode.
void PrintConnection(const Client& c, const v1::Connection& conn, bool with_state) {
  if (c.json()) {
    PrintJson(conn);
  } else if (with_state) {
    std::printf("%s/%lu %s\n", conn.sandbox().c_str(), static_cast<unsigned long>(conn.id()),
                StateName(conn.state()).c_str());
  } else {
    std::printf("%s/%lu\n", conn.sandbox().c_str(), static_cast<unsigned long>(conn.id()));
  }
}

// ---- sandboxes

int SandboxCreate(Client& c, const Args& a) {
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
    *o->mutable_msl() = ToProto(*d);
  }
  if (a.Has("--min-rto")) {
    auto d = a.GetDuration("--min-rto", absl::ZeroDuration());
    if (!d.ok()) return Usage(d.status());
    *o->mutable_min_rto() = ToProto(*d);
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

int SandboxList(Client& c, const Args&) {
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

int SandboxShow(Client& c, const Args& a) {
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

int SandboxRemove(Client& c, const Args& a) {
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

// ---- connections

int Listen(Client& c, const Args& a) {
  v1::ListenRequest req;
  req.set_sandbox(a.positional()[0]);
  auto stack = ParseStack(a);
  if (!stack.ok()) return Usage(stack.status());
  req.set_stack(*stack);
  if (!a.Has("--port")) return UsageError("--port is required");
  auto port = a.GetUint("--port", 0, 1, 65535);
  if (!port.ok()) return Usage(port.status());
  req.mutable_local()->set_ip(a.Get("--ip"));
  req.mutable_local()->set_port(static_cast<uint32_t>(*port));
  auto backlog = a.GetUint("--backlog", 0, 0, 4096);
  if (!backlog.ok()) return Usage(backlog.status());
  req.set_backlog(static_cast<uint32_t>(*backlog));

  v1::Connection resp;
  auto ctx = c.Context();
  grpc::Status s = c.connections().Listen(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  PrintConnection(c, resp, false);
  return kExitOk;
}

int Connect(Client& c, const Args& a) {
  v1::ConnectRequest req;
  req.set_sandbox(a.positional()[0]);
  auto stack = ParseStack(a);
  if (!stack.ok()) return Usage(stack.status());
  req.set_stack(*stack);
  if (!a.Has("--to")) return UsageError("--to IP:PORT is required");
  auto remote = ParseEndpoint("--to", a.Get("--to"));
  if (!remote.ok()) return Usage(remote.status());
  *req.mutable_remote() = *remote;
  if (a.Has("--from")) {
    auto local = ParseEndpoint("--from", a.Get("--from"));
    if (!local.ok()) return Usage(local.status());
    *req.mutable_local() = *local;
  }

  v1::Connection resp;
  auto ctx = c.Context();
  grpc::Status s = c.connections().Connect(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  PrintConnection(c, resp, false);
  return kExitOk;
}

// Sends `data` in full: the server may take fewer octets than offered while the send buffer
// is full, so the rest goes again, after a pause that grows while nothing is taken.
bool SendAll(Client& c, const ConnRef& ref, const std::string& data, uint64_t* sent, v1::Connection* last,
             int* exit_code) {
  size_t off = 0;
  absl::Duration nap = absl::Milliseconds(1);
  while (off < data.size()) {
    v1::SendRequest req;
    req.set_sandbox(ref.sandbox);
    req.set_connection_id(ref.id);
    req.set_data(data.substr(off, kSendChunk));
    v1::SendResponse resp;
    auto ctx = c.Context();
    grpc::Status s = c.connections().Send(ctx.get(), req, &resp);
    if (!s.ok()) {
      *exit_code = c.Fail(s, *ctx);
      return false;
    }
    const uint64_t took = std::min<uint64_t>(resp.accepted(), req.data().size());
    off += took;
    *sent += took;
    if (resp.has_connection()) *last = resp.connection();
    if (took == 0) {
      absl::SleepFor(nap);
      nap = std::min(nap * 2, absl::Milliseconds(100));
    } else {
      nap = absl::Milliseconds(1);
    }
  }
  return true;
}

int Send(Client& c, const Args& a) {
  auto ref = ParseConnRef("CONN", a.positional()[0]);
  if (!ref.ok()) return Usage(ref.status());
  if (a.Has("--data") == a.Has("--file")) return UsageError("send needs exactly one of --data TEXT or --file PATH");
  uint64_t sent = 0;
  v1::Connection last;
  int code = kExitOk;
  bool ok = true;
  if (a.Has("--data")) {
    if (a.Get("--data").empty()) return UsageError("--data is empty; send at least one octet");
    ok = SendAll(c, *ref, a.Get("--data"), &sent, &last, &code);
  } else {
    const std::string path = a.Get("--file");
    std::ifstream in;
    std::istream* src = &std::cin;
    if (path != "-") {
      in.open(path, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "tcplab: --file: cannot open %s\n", path.c_str());
        return kExitUsage;
      }
      src = &in;
    }
    std::string chunk(kSendChunk, '\0');
    while (ok && *src) {
      src->read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      const size_t n = static_cast<size_t>(src->gcount());
      if (n == 0) break;
      ok = SendAll(c, *ref, chunk.substr(0, n), &sent, &last, &code);
    }
    if (ok && src->bad()) {
      std::fprintf(stderr, "tcplab: --file: error reading %s\n", path.c_str());
      return kExitUsage;
    }
  }
  if (!ok) {
    if (sent) std::fprintf(stderr, "tcplab: %lu octets were sent before the error\n", static_cast<unsigned long>(sent));
    return code;
  }
  if (c.json()) {
    v1::SendResponse out;
    out.set_accepted(sent);
    *out.mutable_connection() = last;
    PrintJson(out);
  } else {
    std::printf("sent %lu octets to %s\n", static_cast<unsigned long>(sent), ref->ToString().c_str());
  }
  return kExitOk;
}

int Receive(Client& c, const Args& a) {
  auto ref = ParseConnRef("CONN", a.positional()[0]);
  if (!ref.ok()) return Usage(ref.status());
  auto max = a.GetUint("--max", 65536, 1, 4 << 20);
  if (!max.ok()) return Usage(max.status());
  auto wait = a.GetDuration("--wait", absl::ZeroDuration());
  if (!wait.ok()) return Usage(wait.status());
  v1::ReceiveRequest req;
  req.set_sandbox(ref->sandbox);
  req.set_connection_id(ref->id);
  req.set_max_bytes(static_cast<uint32_t>(*max));
  *req.mutable_wait() = ToProto(*wait);
  v1::ReceiveResponse resp;
  auto ctx = c.Context(*wait + Client::kUnaryTimeout);
  grpc::Status s = c.connections().Receive(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintJson(resp);
  } else {
    std::fwrite(resp.data().data(), 1, resp.data().size(), stdout);
    if (resp.eof()) std::fprintf(stderr, "tcplab: end of stream: %s's peer has closed its side\n", ref->ToString().c_str());
  }
  return kExitOk;
}

// shutdown, close, abort: the same request, a different call.
using FinalCall = grpc::Status (v1::ConnectionService::Stub::*)(grpc::ClientContext*, const v1::ConnectionRequest&,
                                                               v1::Connection*);
int Final(Client& c, const Args& a, FinalCall call) {
  auto ref = ParseConnRef("CONN", a.positional()[0]);
  if (!ref.ok()) return Usage(ref.status());
  v1::ConnectionRequest req;
  req.set_sandbox(ref->sandbox);
  req.set_connection_id(ref->id);
  v1::Connection resp;
  auto ctx = c.Context();
  grpc::Status s = (c.connections().*call)(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  PrintConnection(c, resp, true);
  return kExitOk;
}
int Shutdown(Client& c, const Args& a) { return Final(c, a, &v1::ConnectionService::Stub::Shutdown); }
int Close(Client& c, const Args& a) { return Final(c, a, &v1::ConnectionService::Stub::Close); }
int Abort(Client& c, const Args& a) { return Final(c, a, &v1::ConnectionService::Stub::Abort); }

int Show(Client& c, const Args& a) {
  auto ref = ParseConnRef("CONN", a.positional()[0]);
  if (!ref.ok()) return Usage(ref.status());
  v1::ConnectionRequest req;
  req.set_sandbox(ref->sandbox);
  req.set_connection_id(ref->id);
  v1::Connection resp;
  auto ctx = c.Context();
  grpc::Status s = c.connections().GetConnection(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintJson(resp);
  } else {
    std::fputs(ConnectionDetails(resp).c_str(), stdout);
  }
  return kExitOk;
}

int Conns(Client& c, const Args& a) {
  v1::ListConnectionsRequest req;
  req.set_sandbox(a.positional()[0]);
  v1::ListConnectionsResponse resp;
  auto ctx = c.Context();
  grpc::Status s = c.connections().ListConnections(ctx.get(), req, &resp);
  if (!s.ok()) return c.Fail(s, *ctx);
  if (c.json()) {
    PrintJson(resp);
  } else {
    std::fputs(ConnectionsTable(resp.connections()).c_str(), stdout);
  }
  return kExitOk;
}

// ---- impairments

int Impair(Client& c, const Args& a) {
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
    if (*delay > absl::ZeroDuration()) *imp->mutable_delay() = ToProto(*delay);
    auto jitter = a.GetDuration("--jitter", absl::ZeroDuration());
    if (!jitter.ok()) return Usage(jitter.status());
    if (*jitter > absl::ZeroDuration()) *imp->mutable_jitter() = ToProto(*jitter);
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

int Help(Client&, const Args&) {
  std::fputs(UsageText(), stdout);
  return kExitOk;
}

}  // namespace

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {{"sandbox", "create"}, {{"--backend"}, {"--msl"}, {"--mtu"}, {"--min-rto"}}, 0, 1, "[NAME]", SandboxCreate},
      {{"sandbox", "ls"}, {}, 0, 0, "", SandboxList},
      {{"sandbox", "show"}, {}, 1, 1, "NAME", SandboxShow},
      {{"sandbox", "rm"}, {}, 1, 1, "NAME", SandboxRemove},
      {{"listen"}, {{"--stack"}, {"--port"}, {"--ip"}, {"--backlog"}}, 1, 1, "NAME", Listen},
      {{"connect"}, {{"--stack"}, {"--to"}, {"--from"}}, 1, 1, "NAME", Connect},
      {{"send"}, {{"--data"}, {"--file"}}, 1, 1, "CONN", Send},
      {{"recv"}, {{"--max"}, {"--wait"}}, 1, 1, "CONN", Receive},
      {{"shutdown"}, {}, 1, 1, "CONN", Shutdown},
      {{"close"}, {}, 1, 1, "CONN", Close},
      {{"abort"}, {}, 1, 1, "CONN", Abort},
      {{"show"}, {}, 1, 1, "CONN", Show},
      {{"conns"}, {}, 1, 1, "NAME", Conns},
      {{"watch"}, {{"--conn"}, {"--from"}, {"--ladder", false}, {"--no-follow", false}}, 1, 1, "NAME", RunWatch},
      {{"impair"},
       {{"--direction"}, {"--loss"}, {"--dup"}, {"--reorder"}, {"--corrupt"}, {"--delay"}, {"--jitter"}, {"--seed"},
        {"--clear", false}},
       1, 1, "NAME", Impair},
      {{"pcap"}, {{"-o"}, {"--output"}}, 1, 1, "NAME", RunPcap},
      {{"help"}, {}, 0, 1, "", Help},
  };
  return kCommands;
}

}  // namespace tcplab::cli
