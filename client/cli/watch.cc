// The streaming commands: watch (events as lines, JSON or a ladder diagram) and pcap.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/cli/commands.h"
#include "client/cli/format.h"
#include "client/cli/ladder.h"
#include "google/protobuf/struct.pb.h"

namespace tcplab::cli {

namespace {

// --conn 3 or --conn lab1/3 (which must then name the watched sandbox).
absl::StatusOr<uint64_t> ParseConnFilter(const std::string& sandbox, const std::string& text) {
  uint64_t id = 0;
  if (absl::SimpleAtoi(text, &id) && id > 0) return id;
  absl::StatusOr<ConnRef> ref = ParseConnRef("--conn", text);
  if (!ref.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--conn must be ID or SANDBOX/ID, e.g. 3 or ", sandbox,
                                                   "/3, got \"", text, "\""));
  }
  if (ref->sandbox != sandbox) {
    return absl::InvalidArgumentError(
        absl::StrCat("--conn ", text, " is in sandbox ", ref->sandbox, ", not ", sandbox));
  }
  return ref->id;
}

void Write(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);  // a watcher reads as events happen; Ctrl-C must not lose a buffer
}

// A ladder for `sandbox`: the kernel's address from GetSandbox, the connections that exist
// now from ListConnections, and GetConnection for the ones that appear later.
std::unique_ptr<Ladder> MakeLadder(Client& c, const std::string& sandbox) {
  Ladder::Options opts;
  opts.color = isatty(STDOUT_FILENO);
  opts.kernel_ip = "198.18.0.1";
  {
    v1::GetSandboxRequest req;
    req.set_name(sandbox);
    v1::Sandbox sb;
    auto ctx = c.Context();
    if (c.sandboxes().GetSandbox(ctx.get(), req, &sb).ok() && !sb.kernel_address().ip().empty()) {
      opts.kernel_ip = sb.kernel_address().ip();
    }
  }
  auto resolve = [&c, sandbox](uint64_t id) -> std::optional<std::string> {
    v1::ConnectionRequest req;
    req.set_sandbox(sandbox);
    req.set_connection_id(id);
    v1::Connection conn;
    auto ctx = c.Context();
    if (!c.connections().GetConnection(ctx.get(), req, &conn).ok()) return std::nullopt;
    return EndpointText(conn.local());
  };
  auto ladder = std::make_unique<Ladder>(opts, resolve);
  v1::ListConnectionsRequest req;
  req.set_sandbox(sandbox);
  v1::ListConnectionsResponse list;
  auto ctx = c.Context();
  if (c.connections().ListConnections(ctx.get(), req, &list).ok()) {
    for (const v1::Connection& conn : list.connections()) ladder->Learn(conn.id(), EndpointText(conn.local()));
  }
  return ladder;
}

}  // namespace

int RunWatch(Client& c, const Args& a) {
  const std::string sandbox = a.positional()[0];
  v1::WatchEventsRequest req;
  req.set_sandbox(sandbox);
  if (a.Has("--conn")) {
    absl::StatusOr<uint64_t> id = ParseConnFilter(sandbox, a.Get("--conn"));
    if (!id.ok()) return UsageError(std::string(id.status().message()));
    req.set_connection_id(*id);
  }
  absl::StatusOr<uint64_t> from = a.GetUint("--from", 0, 0, UINT64_MAX);
  if (!from.ok()) return UsageError(std::string(from.status().message()));
  req.set_from_sequence(*from);
  req.set_no_follow(a.Has("--no-follow"));
  const bool ladder_mode = a.Has("--ladder");
  if (ladder_mode && c.json()) return UsageError("watch: --ladder draws text; it cannot be combined with --json");

  std::unique_ptr<Ladder> ladder;
  if (ladder_mode) ladder = MakeLadder(c, sandbox);
  auto ctx = c.Context(absl::InfiniteDuration());
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader = c.sandboxes().WatchEvents(ctx.get(), req);
  v1::WatchEventsResponse resp;
  while (reader->Read(&resp)) {
    std::string out;
    for (const v1::Event& e : resp.events()) {
      if (ladder) {
        ladder->Add(e, &out);
      } else if (c.json()) {
        absl::StrAppend(&out, ToJson(e), "\n");
      } else {
        absl::StrAppend(&out, EventLine(sandbox, e), "\n");
      }
    }
    Write(out);
  }
  grpc::Status s = reader->Finish();
  if (ladder) {
    std::string out;
    ladder->Finish(&out);
    Write(out);
  }
  if (s.ok()) return kExitOk;
  // The sandbox was deleted while we watched: the stream is over, not failed.
  if (s.error_code() == grpc::StatusCode::NOT_FOUND && absl::StrContains(s.error_message(), "deleted")) {
    std::fprintf(stderr, "tcplab: %s; the event stream has ended\n", s.error_message().c_str());
    return kExitOk;
  }
  return c.Fail(s, *ctx);
}

int RunPcap(Client& c, const Args& a) {
  if (a.Has("-o") == a.Has("--output")) return UsageError("pcap needs -o FILE (or -o - for stdout)");
  const std::string path = a.Has("-o") ? a.Get("-o") : a.Get("--output");
  const bool to_stdout = path == "-";
  if (to_stdout && c.json()) return UsageError("pcap -o - writes the capture to stdout; it cannot be combined with --json");
  if (to_stdout && isatty(STDOUT_FILENO)) {
    return UsageError("pcap -o -: stdout is a terminal; pipe it (e.g. | tshark -r -) or name a file");
  }
  v1::ExportPcapRequest req;
  req.set_sandbox(a.positional()[0]);
  auto ctx = c.Context(absl::Minutes(10));
  std::unique_ptr<grpc::ClientReader<v1::PcapChunk>> reader = c.sandboxes().ExportPcap(ctx.get(), req);
  // Written to a temporary file first: a failed export leaves no half capture behind.
  const std::string tmp = path + ".tmp";
  FILE* f = to_stdout ? stdout : std::fopen(tmp.c_str(), "wb");
  if (!f) {
    std::fprintf(stderr, "tcplab: -o: cannot write %s\n", path.c_str());
    ctx->TryCancel();
    reader->Finish();
    return kExitUsage;
  }
  uint64_t total = 0;
  bool write_ok = true;
  v1::PcapChunk chunk;
  while (reader->Read(&chunk)) {
    write_ok = write_ok && std::fwrite(chunk.data().data(), 1, chunk.data().size(), f) == chunk.data().size();
    total += chunk.data().size();
  }
  grpc::Status s = reader->Finish();
  if (!to_stdout) {
    write_ok = std::fclose(f) == 0 && write_ok;
    if (s.ok() && write_ok && std::rename(tmp.c_str(), path.c_str()) != 0) write_ok = false;
    if (!s.ok() || !write_ok) std::remove(tmp.c_str());
  } else {
    write_ok = std::fflush(stdout) == 0 && write_ok;
  }
  if (!s.ok()) return c.Fail(s, *ctx);
  if (!write_ok) {
    std::fprintf(stderr, "tcplab: error writing %s\n", to_stdout ? "stdout" : path.c_str());
    return kExitServer;
  }
  if (to_stdout) return kExitOk;
  if (c.json()) {
    google::protobuf::Struct out;
    (*out.mutable_fields())["file"].set_string_value(path);
    (*out.mutable_fields())["bytes"].set_number_value(static_cast<double>(total));
    PrintJson(out);
  } else {
    std::printf("wrote %lu octets to %s\n", static_cast<unsigned long>(total), path.c_str());
  }
  return kExitOk;
}

}  // namespace tcplab::cli
