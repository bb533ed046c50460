// The connection commands (listen, connect, send, recv, shutdown, close, abort, show, conns)
// and the table of every command. Sandboxes are in sandbox.cc, streams in watch.cc, grading
// in grade.cc, DUTs in dut.cc.
#include "client/cli/commands.h"

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cli/format.h"

namespace tcplab::cli {

namespace {

constexpr size_t kSendChunk = 1 << 20;  // octets per Send call (the server takes up to 4 MiB)

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
  *req.mutable_wait() = DurationToProto(*wait);
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

int Help(Client&, const Args&) {
  std::fputs(UsageText(), stdout);
  return kExitOk;
}

}  // namespace

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {{"sandbox", "create"}, {{"--backend"}, {"--msl"}, {"--mtu"}, {"--min-rto"}}, 0, 1, "[NAME]", RunSandboxCreate},
      {{"sandbox", "ls"}, {}, 0, 0, "", RunSandboxList},
      {{"sandbox", "show"}, {}, 1, 1, "NAME", RunSandboxShow},
      {{"sandbox", "rm"}, {}, 1, 1, "NAME", RunSandboxRemove},
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
       1, 1, "NAME", RunImpair},
      {{"pcap"}, {{"-o"}, {"--output"}}, 1, 1, "NAME", RunPcap},
      {{"grade"}, {{"--target"}, {"--dut"}, {"--student"}, {"--junit"}, {"--tolerance-usecs"}}, 1, SIZE_MAX,
       "at least one SCRIPT", RunGrade},
      {{"grade", "results"}, {{"--student"}, {"--run"}, {"--csv", false}, {"--limit"}}, 0, 0, "", RunGradeResults},
      {{"dut"}, {{"--stack"}, {"--name"}, {"--description"}}, 0, 0, "", RunDut},
      {{"dut", "ls"}, {}, 0, 0, "", RunDutList},
      {{"help"}, {}, 0, 1, "", Help},
  };
  return kCommands;
}

}  // namespace tcplab::cli
