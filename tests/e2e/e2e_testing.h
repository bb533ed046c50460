// Helpers for the end-to-end tests: a real tcplabd started per test (port 0, its own data
// directory, stopped with SIGTERM by PID whatever happens), the real tcplab CLI run as a
// subprocess with its stdout, stderr and exit code captured, or in the background with its
// stdout read as it comes, and the CLI's --json output read back into the API's messages.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tcplab/v1/connection.pb.h"
#include "tcplab/v1/events.pb.h"
#include "tcplab/v1/sandbox.pb.h"

namespace tcplab::e2e {

namespace v1 = ::tcplab::v1;

struct Result {
  int exit_code = -1;  // -1: killed (timeout) or not run
  std::string out, err;
  std::string Describe() const {
    return absl::StrCat("exit ", exit_code, "\n--- stdout:\n", out, "\n--- stderr:\n", err);
  }
};

// Runs `argv` (argv[0] is the program path) with stdin from /dev/null. After `timeout` the
// child gets SIGINT (as Ctrl-C), then SIGKILL; its exit code is then -1 unless it exited on
// the SIGINT by itself.
// `env` holds extra NAME=VALUE entries (they override the inherited ones).
inline Result RunProcess(const std::vector<std::string>& argv, absl::Duration timeout = absl::Seconds(60),
                         const std::vector<std::string>& env = {}) {
  Result r;
  // The environment is built before fork(): the child only calls async-signal-safe functions.
  std::vector<std::string> env_strings = env;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const std::string& x : env) overridden = overridden || x.rfind(name + "=", 0) == 0;
    if (!overridden) env_strings.push_back(entry);
  }
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  const absl::Time deadline = absl::Now() + timeout;
  bool interrupted = false, killed = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* bufs[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      if (!interrupted) {
        kill(pid, SIGINT);
        interrupted = true;
      } else if (!killed && left < -absl::Seconds(10)) {
        kill(pid, SIGKILL);
        killed = true;
      }
    }
    int n = poll(fds, 2, left > absl::ZeroDuration() ? static_cast<int>(absl::ToInt64Milliseconds(left)) + 1 : 200);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        bufs[i]->append(buf, got);
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Parses one JSON object of the CLI into `m`.
template <typename M>
bool FromJson(const std::string& json, M* m) {
  return google::protobuf::util::JsonStringToMessage(std::string(absl::StripAsciiWhitespace(json)), m).ok();
}

// The whole file; empty if it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The non-empty lines of `out`.
inline std::vector<std::string> SplitLines(const std::string& out) {
  std::vector<std::string> lines;
  for (absl::string_view l : absl::StrSplit(out, '\n', absl::SkipEmpty())) lines.emplace_back(l);
  return lines;
}

// A fresh temporary directory /tmp/PREFIX-XXXXXX, removed with everything in it; path() is
// empty if it could not be made.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "tcplab-e2e") {
    std::string tmpl = absl::StrCat("/tmp/", prefix, "-XXXXXX");
    if (mkdtemp(tmpl.data())) path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A process in the background (`tcplab dut`, a `tcplab grade` to be cut short): stdin from
// /dev/null, stdout read as it comes through a pipe, stderr to a file. Signalled and killed by
// its PID only; the destructor kills it if the test did not wait for it.
class BackgroundProcess {
 public:
  BackgroundProcess() = default;
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  ~BackgroundProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  // Runs `argv` (argv[0] is the program path), its stderr to `err_path`.
  void Start(const std::vector<std::string>& argv, const std::string& err_path) {
    err_path_ = err_path;
    // Built before fork(): the child only calls async-signal-safe functions.
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int devnull = open("/dev/null", O_RDONLY);
      int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(devnull, STDIN_FILENO);
      dup2(p[1], STDOUT_FILENO);
      dup2(err, STDERR_FILENO);
      execv(args[0], args.data());
      _exit(127);
    }
    close(p[1]);
    fd_ = p[0];
  }

  // Reads stdout until `done(out)`, the deadline or the end of output. True if `done` held.
  bool ReadUntil(const std::function<bool(const std::string&)>& done, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!done(out_)) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration() || fd_ < 0) return false;
      pollfd p = {fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) continue;
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n > 0) {
        out_.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fd_);
        fd_ = -1;
      }
    }
    return true;
  }

  // True while the process has not exited (reaps it when it has).
  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return false;
    }
    return true;
  }

  void Signal(int sig) {
    ASSERT_GT(pid_, 0);
    ASSERT_EQ(kill(pid_, sig), 0);
  }

  // Reads to the end of output and waits for the exit, SIGKILL after `timeout`. The exit
  // code, -1 if it was killed.
  int Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    ReadUntil([](const std::string&) { return false; }, timeout);
    while (Running()) {
      if (absl::Now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return -1;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return exit_code_;
  }

  const std::string& out() const { return out_; }
  std::string err() const { return ReadFile(err_path_); }
  std::string Describe() const { return absl::StrCat("--- stdout:\n", out_, "\n--- stderr:\n", err()); }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int exit_code_ = -1;
  std::string out_, err_path_;
};

// Starts `tcplabd ARGS... --ready_file READY` (stdin /dev/null, stdout and stderr to `log`)
// and waits up to 30 s for it to write its addresses, one a line, to `ready`. `*pid` is set as
// soon as it is forked, so that the caller can stop it whatever happens here; it is -1 again
// if tcplabd exited before it was ready. Fails the test (fatally) unless it became ready.
inline void StartTcplabd(const std::vector<std::string>& args, const std::string& ready, const std::string& log,
                         pid_t* pid, std::vector<std::string>* addresses) {
  std::vector<std::string> argv = {TCPLABD_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--ready_file", ready});
  // Built before fork(): the child only calls async-signal-safe functions.
  std::vector<char*> cargs;
  for (const std::string& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
  cargs.push_back(nullptr);
  *pid = fork();
  ASSERT_GE(*pid, 0);
  if (*pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    execv(cargs[0], cargs.data());
    _exit(127);
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::ifstream f(ready);
    std::string line;
    if (f && std::getline(f, line) && !line.empty()) {
      *addresses = {line};
      while (std::getline(f, line)) {
        if (!line.empty()) addresses->push_back(line);
      }
      return;
    }
    int status = 0;
    if (waitpid(*pid, &status, WNOHANG) == *pid) {
      *pid = -1;
      FAIL() << "tcplabd exited before it was ready:\n" << ReadFile(log);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  FAIL() << "tcplabd did not write " << ready << " within 30 s:\n" << ReadFile(log);
}

// SIGTERM to the tcplabd with this PID, then waits for it (SIGKILL after 30 s, a test
// failure). Its exit code; -1 if a signal ended it.
inline int StopTcplabd(pid_t pid) {
  kill(pid, SIGTERM);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      ADD_FAILURE() << "tcplabd did not stop on SIGTERM within 30 s; killing it";
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A tcplabd of its own: `--listen 127.0.0.1:0 --data_dir D --ready_file F` in a fresh
// temporary directory. Stop() (also run by the destructor) sends SIGTERM to its PID, waits,
// and removes the directory.
class Daemon {
 public:
  Daemon() = default;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon() { Stop(); }

  // Starts tcplabd and waits until it writes its address. Fails the test if it does not.
  // `listen` is tcplabd's --listen ("$DIR" stands for the temporary directory); the first
  // address it reports is address().
  void Start(const std::vector<std::string>& extra = {}, const std::string& listen = "127.0.0.1:0") {
    char tmpl[] = "/tmp/tcplab-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::vector<std::string> args = {"--listen", absl::StrReplaceAll(listen, {{"$DIR", dir_}}), "--data_dir",
                                     dir_ + "/data"};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_NO_FATAL_FAILURE(StartTcplabd(args, dir_ + "/ready", dir_ + "/tcplabd.log", &pid_, &addresses_));
    address_ = addresses_.front();
  }

  // SIGTERM to the PID we started, then wait for it (SIGKILL after 30 s).
  void Stop() {
    if (pid_ > 0) {
      StopTcplabd(pid_);
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  const std::string& address() const { return address_; }
  const std::vector<std::string>& addresses() const { return addresses_; }
  const std::string& dir() const { return dir_; }
  std::string Log() const { return ReadFile(dir_ + "/tcplabd.log"); }

 private:
  pid_t pid_ = -1;
  std::string dir_, address_;
  std::vector<std::string> addresses_;
};

// A test with its own tcplabd and a way to run the CLI against it.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(daemon_.Start()); }
  void TearDown() override {
    if (HasFailure()) std::fprintf(stderr, "--- tcplabd log:\n%s\n", daemon_.Log().c_str());
    daemon_.Stop();
  }

  // `tcplab --server ADDR args...`.
  Result Cli(const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(60)) {
    std::vector<std::string> argv = {TCPLAB_CLI_BIN, "--server", daemon_.address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, timeout);
  }

  // Runs the CLI and expects success; returns stdout.
  std::string Ok(const std::vector<std::string>& args) {
    Result r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << "tcplab " << absl::StrJoin(args, " ") << "\n" << r.Describe();
    return r.out;
  }

  // `tcplab --json show CONN`, parsed; state UNSPECIFIED when the call fails.
  v1::Connection Show(const std::string& conn) {
    v1::Connection c;
    Result r = Cli({"--json", "show", conn});
    if (r.exit_code != 0 || !FromJson(r.out, &c)) c.Clear();
    return c;
  }

  // Polls `show CONN` until the connection is in `state` (or gone, when `state` is CLOSED
  // and the server has removed it). Generous: the machine may be slow.
  bool WaitState(const std::string& conn, v1::TcpState state, absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      v1::Connection c = Show(conn);
      if (c.state() == state) return true;
      if (state == v1::TCP_STATE_CLOSED && c.state() == v1::TCP_STATE_UNSPECIFIED) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // `tcplab --json conns NAME`, parsed.
  v1::ListConnectionsResponse Conns(const std::string& sandbox) {
    v1::ListConnectionsResponse list;
    Result r = Cli({"--json", "conns", sandbox});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_TRUE(FromJson(r.out, &list)) << r.out;
    return list;
  }

  // Every retained event of `sandbox` (`watch --json --no-follow`), one JSON object a line.
  std::vector<v1::Event> Events(const std::string& sandbox) {
    Result r = Cli({"--json", "watch", sandbox, "--no-follow"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    std::vector<v1::Event> events;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      v1::Event e;
      EXPECT_TRUE(FromJson(std::string(line), &e)) << "not an Event: " << line;
      events.push_back(e);
    }
    return events;
  }

  // Polls the events until `pred` holds for one of them; returns all of them then.
  std::vector<v1::Event> WaitEvent(const std::string& sandbox, const std::function<bool(const v1::Event&)>& pred,
                                   absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<v1::Event> events;
    while (absl::Now() < deadline) {
      events = Events(sandbox);
      for (const v1::Event& e : events) {
        if (pred(e)) return events;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "the awaited event did not happen within " << timeout;
    return events;
  }

  Daemon daemon_;
};

// A CliTest whose CLI runs in tests/scripts, so that script names are
// "lifecycle/close_active.pkt" as a user in the repository would type them, with a temporary
// directory tmp_ for what a test writes.
class ScriptsCliTest : public CliTest {
 protected:
  explicit ScriptsCliTest(const std::string& tmp_prefix = "tcplab-e2e") : tmp_(tmp_prefix) {}

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(CliTest::SetUp());
    ASSERT_FALSE(tmp_.path().empty());
    old_cwd_ = std::filesystem::current_path();
    std::filesystem::current_path(std::string(TCPLAB_SOURCE_DIR) + "/tests/scripts");
  }
  void TearDown() override {
    if (!old_cwd_.empty()) std::filesystem::current_path(old_cwd_);
    CliTest::TearDown();
  }

  // `grade SCRIPTS... --target TARGET EXTRA...`
  Result Grade(const std::vector<std::string>& scripts, const std::string& target,
               const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"grade"};
    args.insert(args.end(), scripts.begin(), scripts.end());
    args.insert(args.end(), {"--target", target});
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args, absl::Minutes(3));
  }

  TempDir tmp_;
  std::string old_cwd_;
};

// A sandbox connection's name as the CLI prints it, without the newline.
inline std::string Line(const std::string& out) { return std::string(absl::StripAsciiWhitespace(out)); }

// The `to` states of one connection's StateEvents, in order.
inline std::vector<v1::TcpState> StatePath(const std::vector<v1::Event>& events, uint64_t conn) {
  std::vector<v1::TcpState> path;
  for (const v1::Event& e : events) {
    if (e.connection_id() == conn && e.has_state()) path.push_back(e.state().to());
  }
  return path;
}

// True if `want` appears in `path` in order (other states may come between).
inline bool InOrder(const std::vector<v1::TcpState>& path, const std::vector<v1::TcpState>& want) {
  size_t i = 0;
  for (v1::TcpState s : path) {
    if (i < want.size() && s == want[i]) ++i;
  }
  return i == want.size();
}

inline std::string PathText(const std::vector<v1::TcpState>& path) {
  std::vector<std::string> names;
  for (v1::TcpState s : path) names.push_back(v1::TcpState_Name(s));
  return absl::StrJoin(names, " ");
}

inline double Seconds(const google::protobuf::Duration& d) { return d.seconds() + d.nanos() / 1e9; }

// The connection id in "lab/3".
inline uint64_t IdOf(const std::string& conn) {
  uint64_t id = 0;
  auto slash = conn.rfind('/');
  if (slash == std::string::npos || !absl::SimpleAtoi(conn.substr(slash + 1), &id)) return 0;
  return id;
}

// A test that needs the tun backend (a network namespace, a TUN, the kernel as peer): it
// skips, saying why, unless run as root.
class TunCliTest : public CliTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: the tun backend creates a network namespace and a TUN device "
                      "(CAP_SYS_ADMIN, CAP_NET_ADMIN)";
    }
    CliTest::SetUp();
  }
};

}  // namespace tcplab::e2e
