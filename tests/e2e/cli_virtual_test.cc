// The virtual backend through the CLI (no privileges): two engine connections in one
// sandbox, data both ways, a file larger than the send buffer sent in full, and the event
// stream followed live.
#include <fstream>
#include <random>
#include <thread>

#include "tests/e2e/e2e_testing.h"

namespace tcplab::e2e {
namespace {

class VirtualCliTest : public CliTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(CliTest::SetUp());
    ASSERT_EQ(Line(Ok({"sandbox", "create", "v", "--backend", "virtual"})), "v");
    listener_ = Line(Ok({"listen", "v", "--stack", "engine", "--port", "7000"}));
    client_ = Line(Ok({"connect", "v", "--stack", "engine", "--to", "198.18.0.2:7000"}));
    ASSERT_TRUE(WaitState(client_, v1::TCP_STATE_ESTABLISHED)) << Show(client_).DebugString();
    const v1::ListConnectionsResponse conns = Conns("v");
    for (const v1::Connection& c : conns.connections()) {
      if (!c.listener() && c.local().port() == 7000) server_ = absl::StrCat("v/", c.id());
    }
    ASSERT_FALSE(server_.empty()) << conns.DebugString();
  }

  std::string listener_, client_, server_;
};

TEST_F(VirtualCliTest, DataFlowsBothWays) {
  EXPECT_EQ(Line(Ok({"send", client_, "--data", "hello engine"})), "sent 12 octets to " + client_);
  EXPECT_EQ(Ok({"recv", server_, "--wait", "5s"}), "hello engine");
  EXPECT_EQ(Line(Ok({"send", server_, "--data", "hello back"})), "sent 10 octets to " + server_);
  v1::ReceiveResponse r;
  ASSERT_TRUE(FromJson(Ok({"--json", "recv", client_, "--wait", "5s"}), &r));
  EXPECT_EQ(r.data(), "hello back");
  EXPECT_FALSE(r.eof());
  // --max bounds what one recv returns.
  Ok({"send", client_, "--data", "0123456789"});
  EXPECT_EQ(Ok({"recv", server_, "--max", "4", "--wait", "5s"}), "0123");
  EXPECT_EQ(Ok({"recv", server_, "--wait", "5s"}), "456789");
  // Nothing left: an empty answer once --wait has passed.
  EXPECT_EQ(Ok({"recv", server_, "--wait", "100ms"}), "");

  // The half-close: shutdown sends FIN; the other side reads the end of the stream and can
  // still send.
  EXPECT_EQ(Cli({"shutdown", client_}).exit_code, 0);
  ASSERT_TRUE(WaitState(server_, v1::TCP_STATE_CLOSE_WAIT));
  ASSERT_TRUE(FromJson(Ok({"--json", "recv", server_, "--wait", "5s"}), &r));
  EXPECT_EQ(r.data(), "");
  EXPECT_TRUE(r.eof());
  Ok({"send", server_, "--data", "still here"});
  EXPECT_EQ(Ok({"recv", client_, "--wait", "5s"}), "still here");
}

// A file four times the engine's send buffer: `send --file` keeps sending what the server did
// not take while the receiver drains the other end.
TEST_F(VirtualCliTest, SendFileSendsTheWholeFile) {
  const std::string path = daemon_.dir() + "/payload.bin";
  std::string payload(3 << 20, '\0');
  std::mt19937 rng(7);
  for (char& ch : payload) ch = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary).write(payload.data(), static_cast<std::streamsize>(payload.size()));

  // The sender runs in the background while this thread reads.
  std::string sent_out;
  int sent_code = -1;
  std::thread sender([&] {
    Result r = Cli({"send", client_, "--file", path}, absl::Seconds(120));
    sent_out = r.out;
    sent_code = r.exit_code;
  });
  std::string got;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (got.size() < payload.size() && absl::Now() < deadline) {
    Result r = Cli({"recv", server_, "--max", "4194304", "--wait", "1s"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    got += r.out;
  }
  sender.join();
  EXPECT_EQ(sent_code, 0);
  EXPECT_EQ(Line(sent_out), absl::StrCat("sent ", payload.size(), " octets to ", client_));
  ASSERT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload) << "the received octets differ from the file";
}

// `watch` follows live events until interrupted; `--conn` and `--from` select.
TEST_F(VirtualCliTest, WatchFollowsAndFilters) {
  std::string live;
  std::thread watcher([&] { live = Cli({"--json", "watch", "v", "--conn", client_}, absl::Seconds(4)).out; });
  absl::SleepFor(absl::Seconds(1));
  Ok({"send", client_, "--data", "live"});
  watcher.join();
  std::vector<v1::Event> events;
  bool saw_send = false;
  for (absl::string_view line : absl::StrSplit(live, '\n', absl::SkipEmpty())) {
    v1::Event e;
    ASSERT_TRUE(FromJson(std::string(line), &e)) << line;
    EXPECT_EQ(e.connection_id(), IdOf(client_)) << line;
    if (e.has_segment() && e.segment().payload_length() == 4) saw_send = true;
    events.push_back(e);
  }
  EXPECT_TRUE(saw_send) << live;
  ASSERT_GE(events.size(), 3u);

  // --from resumes: every event from that number on, nothing before it.
  const uint64_t from = events[1].sequence();
  Result r = Cli({"--json", "watch", "v", "--no-follow", "--from", std::to_string(from)});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  v1::Event first;
  ASSERT_TRUE(FromJson(r.out.substr(0, r.out.find('\n')), &first));
  EXPECT_EQ(first.sequence(), from);

  // --conn takes the bare id as well: only that connection's events.
  Result server_only = Cli({"--json", "watch", "v", "--no-follow", "--conn", std::to_string(IdOf(server_))});
  ASSERT_EQ(server_only.exit_code, 0) << server_only.Describe();
  size_t n = 0;
  for (absl::string_view line : absl::StrSplit(server_only.out, '\n', absl::SkipEmpty())) {
    v1::Event e;
    ASSERT_TRUE(FromJson(std::string(line), &e)) << line;
    EXPECT_EQ(e.connection_id(), IdOf(server_)) << line;
    ++n;
  }
  EXPECT_GE(n, 3u) << server_only.out;  // SYN in, SYN-RECEIVED, SYN+ACK out, ...

  // Text mode: one line per event, the sequence number first, RFC state names.
  Result text = Cli({"watch", "v", "--no-follow"});
  ASSERT_EQ(text.exit_code, 0) << text.Describe();
  EXPECT_NE(text.out.find("STATE SYN-SENT -> ESTABLISHED"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("APP connect 198.18.0.2:7000 -> OK"), std::string::npos) << text.out;
  EXPECT_EQ(std::count(text.out.begin(), text.out.end(), '\n'), static_cast<long>(Events("v").size()));
}

// Deleting the sandbox ends a live watch: exit 0, a note on stderr.
TEST_F(VirtualCliTest, WatchEndsWhenTheSandboxIsDeleted) {
  Result r;
  std::thread watcher([&] { r = Cli({"watch", "v"}, absl::Seconds(60)); });
  absl::SleepFor(absl::Seconds(1));
  Ok({"sandbox", "rm", "v"});
  watcher.join();
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.err.find("deleted"), std::string::npos) << r.Describe();
  EXPECT_NE(r.out.find("STATE CLOSED -> LISTEN"), std::string::npos) << r.Describe();
}

TEST_F(VirtualCliTest, ShowAndConns) {
  Result show = Cli({"show", client_});
  ASSERT_EQ(show.exit_code, 0) << show.Describe();
  for (const char* key : {"state:", "ESTABLISHED", "ISS / IRS:", "SND.UNA:", "SND.NXT:", "SND.WND:", "RCV.NXT:",
                          "RCV.WND:", "MSS:", "wscale:", "SACK / TS:", "cwnd / ssthresh:", "SRTT / RTTVAR:", "RTO:",
                          "in flight:", "send buffer:", "timers:", "segments:"}) {
    EXPECT_NE(show.out.find(key), std::string::npos) << key << "\n" << show.out;
  }
  Result conns = Cli({"conns", "v"});
  ASSERT_EQ(conns.exit_code, 0);
  EXPECT_NE(conns.out.find(listener_), std::string::npos);
  EXPECT_NE(conns.out.find("LISTEN"), std::string::npos);
  EXPECT_NE(conns.out.find("198.18.0.2:7000"), std::string::npos);
  EXPECT_EQ(std::count(conns.out.begin(), conns.out.end(), '\n'), 4) << conns.out;  // header + 3

  Result sb = Cli({"sandbox", "show", "v"});
  ASSERT_EQ(sb.exit_code, 0);
  EXPECT_NE(sb.out.find("backend:        virtual"), std::string::npos) << sb.out;
  v1::ListSandboxesResponse list;
  ASSERT_TRUE(FromJson(Ok({"--json", "sandbox", "ls"}), &list));
  ASSERT_EQ(list.sandboxes_size(), 1);
  EXPECT_EQ(list.sandboxes(0).connections(), 3u);

  Result rm = Cli({"--json", "sandbox", "rm", "v"});
  EXPECT_EQ(rm.exit_code, 0);
  EXPECT_EQ(Line(rm.out), "{\"ok\":true}");
  EXPECT_EQ(Cli({"conns", "v"}).exit_code, 1);
}

TEST_F(VirtualCliTest, ImpairSetsAndClears) {
  Result r = Cli({"--json", "impair", "v", "--direction", "out", "--loss", "0.5", "--delay", "10ms", "--seed", "3"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(Line(r.out), "{\"ok\":true}");
  // Data still arrives, through losses, by retransmission.
  Ok({"send", client_, "--data", "through the loss"});
  std::string got;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (got.size() < 16 && absl::Now() < deadline) got += Ok({"recv", server_, "--wait", "2s"});
  EXPECT_EQ(got, "through the loss");
  EXPECT_EQ(Cli({"impair", "v", "--clear"}).exit_code, 0);
}

}  // namespace
}  // namespace tcplab::e2e
