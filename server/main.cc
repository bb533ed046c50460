// tcplabd: the tcplab gRPC server. Flags live here and only here (STYLE.md 14).
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "engine/sandbox/netns.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "comma-separated addresses to serve on: host:port (port 0 picks one) or unix:/path");
ABSL_FLAG(std::string, backend, "auto",
          "default backend of new sandboxes: tun (a network namespace with a TUN and the Linux kernel "
          "as peer; needs CAP_SYS_ADMIN and CAP_NET_ADMIN), virtual (engine only, no privileges), or "
          "auto (tun when the privileges are there, else virtual)");
ABSL_FLAG(absl::Duration, msl, absl::Seconds(30), "default MSL of new sandboxes' engines (TIME-WAIT is 2*MSL)");
ABSL_FLAG(absl::Duration, min_rto, absl::Seconds(1), "default RTO floor of new sandboxes' engines (RFC 6298 (2.4))");
ABSL_FLAG(uint32_t, mtu, 1500, "default MTU of new sandboxes' TUN devices");
ABSL_FLAG(uint32_t, event_capacity, 1 << 16, "default number of events each sandbox retains for WatchEvents");
ABSL_FLAG(uint32_t, max_sandboxes, 64, "most sandboxes the server holds at once");
ABSL_FLAG(std::string, data_dir, "", "where tcplabd keeps its data (default /var/lib/tcplab as root, else ~/.tcplab)");
ABSL_FLAG(int, max_grading_runs, 2, "grading runs (GradingService.RunSuite) at a time; more are refused");
ABSL_FLAG(std::string, auth_tokens, "",
          "a file of \"TOKEN TENANT\" lines: every call (but health) then needs \"authorization: Bearer "
          "TOKEN\" (tcplab --token), and sandboxes, grading runs and DUTs belong to the token's tenant. "
          "Default: no authentication");
ABSL_FLAG(int, max_pcap_exports, tcplab::server::kDefaultMaxPcapExports,
          "ExportPcap streams at a time, server-wide (each holds a copy of its sandbox's capture until "
          "written); more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, ready_file, "",
          "once serving, write the bound addresses (one per line) to this file; for scripts that start "
          "tcplabd with port 0");

namespace {

using tcplab::server::Server;
using tcplab::server::ServerConfig;

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tcplabd: %s\n", msg.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("tcplabd [--listen ADDR,...] [--backend tun|virtual|auto] [--msl D] ...");
  absl::ParseCommandLine(argc, argv);

  // Block the signals in every thread (gRPC's and the sandboxes' inherit this mask); one
  // thread takes them with sigwait and shuts down in order.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  ServerConfig cfg;
  cfg.listen = absl::StrSplit(absl::GetFlag(FLAGS_listen), ',', absl::SkipWhitespace());
  std::string backend = absl::GetFlag(FLAGS_backend);
  const bool privileged =
      tcplab::sandbox::HaveCapability(CAP_SYS_ADMIN) && tcplab::sandbox::HaveCapability(CAP_NET_ADMIN);
  if (backend == "auto") backend = privileged ? "tun" : "virtual";
  if (backend == "tun") {
    cfg.defaults.backend = tcplab::sandbox::Backend::kTun;
  } else if (backend == "virtual") {
    cfg.defaults.backend = tcplab::sandbox::Backend::kVirtual;
  } else {
    return Fail("--backend must be tun, virtual or auto, got \"" + backend + "\"");
  }
  if (absl::GetFlag(FLAGS_msl) <= absl::ZeroDuration()) return Fail("--msl must be positive");
  if (absl::GetFlag(FLAGS_min_rto) < absl::Milliseconds(1)) return Fail("--min_rto must be at least 1ms");
  cfg.defaults.msl = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_msl));
  cfg.defaults.min_rto = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_min_rto));
  cfg.defaults.mtu = absl::GetFlag(FLAGS_mtu);
  if (cfg.defaults.mtu < 576 || cfg.defaults.mtu > 65535) return Fail("--mtu must be 576..65535");
  cfg.defaults.event_capacity = absl::GetFlag(FLAGS_event_capacity);
  if (cfg.defaults.event_capacity < 16 || cfg.defaults.event_capacity > (1u << 20)) {
    return Fail("--event_capacity must be 16..1048576");
  }
  cfg.defaults.max_sandboxes = absl::GetFlag(FLAGS_max_sandboxes);
  cfg.max_grading_runs = absl::GetFlag(FLAGS_max_grading_runs);
  if (cfg.max_grading_runs < 1) return Fail("--max_grading_runs must be at least 1");
  cfg.auth_tokens = absl::GetFlag(FLAGS_auth_tokens);
  cfg.max_pcap_exports = absl::GetFlag(FLAGS_max_pcap_exports);
  if (cfg.max_pcap_exports < 1) return Fail("--max_pcap_exports must be at least 1");
  cfg.data_dir = absl::GetFlag(FLAGS_data_dir);
  if (cfg.data_dir.empty()) {
    const char* home = std::getenv("HOME");
    cfg.data_dir = geteuid() == 0 ? "/var/lib/tcplab" : std::string(home ? home : ".") + "/.tcplab";
  }

  if (privileged) {
    // Namespaces a killed tcplabd (or test) left behind; those of live processes stay.
    if (auto removed = tcplab::sandbox::RemoveLeftovers(); !removed.ok()) {
      std::fprintf(stderr, "tcplabd: cannot remove leftover namespaces: %s\n",
                   std::string(removed.status().message()).c_str());
    } else if (!removed->empty()) {
      std::fprintf(stderr, "tcplabd: removed %zu leftover namespace(s): %s\n", removed->size(),
                   absl::StrJoin(*removed, " ").c_str());
    }
  }

  tcplab::server::LowerServerPriority();  // before gRPC starts its threads: they inherit it
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(cfg);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  const std::string addrs = absl::StrJoin((*server)->addresses(), ",");
  if (int n = (*server)->results().interrupted_at_open(); n > 0) {
    std::fprintf(stderr, "tcplabd: %d grading run(s) of an earlier tcplabd were cut short; stored as INTERRUPTED\n", n);
  }
  std::fprintf(stderr, "tcplabd: serving on %s; default backend %s%s; data in %s%s\n", addrs.c_str(), backend.c_str(),
               backend == "virtual" && !privileged ? " (no CAP_SYS_ADMIN/CAP_NET_ADMIN: run as root for tun)" : "",
               cfg.data_dir.c_str(), cfg.auth_tokens.empty() ? "; no authentication" : "; bearer tokens required");
  if (std::string ready = absl::GetFlag(FLAGS_ready_file); !ready.empty()) {
    std::string tmp = ready + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
      for (const std::string& a : (*server)->addresses()) std::fprintf(f, "%s\n", a.c_str());
      std::fclose(f);
      std::rename(tmp.c_str(), ready.c_str());  // readers never see half a file
    }
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "tcplabd: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->Shutdown();
  std::fprintf(stderr, "tcplabd: stopped\n");
  return 0;
}
