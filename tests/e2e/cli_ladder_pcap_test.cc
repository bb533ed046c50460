// `watch --ladder` (the ladder diagram, plain text when stdout is not a terminal) and `pcap`.
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/e2e/e2e_testing.h"

namespace tcplab::e2e {
namespace {

// The ladder's lines, and where each endpoint's column is (the '|' under its name).
struct Diagram {
  std::vector<std::string> lines;
  std::map<std::string, size_t> center;  // endpoint -> column of its bar

  explicit Diagram(const std::string& text) {
    lines = absl::StrSplit(text, '\n');
    // A header line names the endpoints; the bars of the lines below sit under the middle
    // of each name.
    for (const std::string& l : lines) {
      for (const std::string& word : std::vector<std::string>(absl::StrSplit(l, ' ', absl::SkipEmpty()))) {
        if (word.find(':') == std::string::npos || word.find('.') == std::string::npos || word[0] == '[') continue;
        if (word.back() == 's') continue;  // a time in the margin
        const size_t at = l.find(word);
        center[word] = at + word.size() / 2;
      }
    }
  }

  // The first line at or after `from` containing `needle`; lines.size() if none.
  size_t Find(const std::string& needle, size_t from = 0) const {
    for (size_t i = from; i < lines.size(); ++i) {
      if (lines[i].find(needle) != std::string::npos) return i;
    }
    return lines.size();
  }

  // Where the text `word` on line `i` is centred.
  size_t CenterOf(size_t i, const std::string& word) const { return lines[i].find(word) + word.size() / 2; }
};

// True if `at` is within a few characters of `center` (odd-length names round either way).
bool Near(size_t at, size_t center) { return at + 2 >= center && at <= center + 2; }

class LadderTunTest : public TunCliTest {
 protected:
  // The engine connects to a kernel listener, sends, both close.
  void LifeCycle() {
    ASSERT_EQ(Line(Ok({"sandbox", "create", "lab", "--backend", "tun", "--msl", "200ms"})), "lab");
    Ok({"listen", "lab", "--stack", "kernel", "--port", "80"});
    client_ = Line(Ok({"connect", "lab", "--stack", "engine", "--to", "198.18.0.1:80"}));
    ASSERT_TRUE(WaitState(client_, v1::TCP_STATE_ESTABLISHED));
    Ok({"send", client_, "--data", "GET / HTTP/1.0\r\n\r\n"});
    Ok({"close", client_});
    const v1::ListConnectionsResponse conns = Conns("lab");
    for (const v1::Connection& c : conns.connections()) {
      if (c.stack() == v1::STACK_KERNEL && !c.listener()) server_ = absl::StrCat("lab/", c.id());
    }
    ASSERT_FALSE(server_.empty());
    // Read what was sent: Linux answers close() with a RST when unread data is left.
    EXPECT_EQ(Ok({"recv", server_, "--wait", "5s"}), "GET / HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(WaitState(server_, v1::TCP_STATE_CLOSE_WAIT));
    Ok({"close", server_});
    WaitEvent("lab", [&](const v1::Event& e) {
      return e.connection_id() == IdOf(client_) && e.has_state() && e.state().to() == v1::TCP_STATE_CLOSED;
    });
  }
  std::string client_, server_;
};

TEST_F(LadderTunTest, HandshakeArrowsAndStatesUnderTheirColumns) {
  ASSERT_NO_FATAL_FAILURE(LifeCycle());
  Result r = Cli({"watch", "lab", "--ladder", "--no-follow"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "ANSI escapes although stdout is a pipe";
  const Diagram d(r.out);

  // The engine's connection is gone by now: its endpoint is read from the diagram.
  std::string engine_ep, kernel_ep = "198.18.0.1:80";
  for (const auto& [ep, at] : d.center) {
    if (ep.rfind("198.18.0.2:", 0) == 0) engine_ep = ep;
  }
  ASSERT_FALSE(engine_ep.empty()) << r.out;
  ASSERT_TRUE(d.center.contains(kernel_ep)) << r.out;
  const size_t left = d.center.at(engine_ep), right = d.center.at(kernel_ep);
  EXPECT_LT(left, right) << "the engine's column should be left of the kernel's\n" << r.out;
  EXPECT_NE(d.Find("(engine)"), d.lines.size());
  EXPECT_NE(d.Find("(kernel)"), d.lines.size());

  // The handshake: [S] left to right, [S.] right to left, [.] left to right, in that order.
  const size_t syn = d.Find("[S] seq 0 ");
  const size_t synack = d.Find("[S.] seq 0 ack 1 ", syn);
  const size_t ack = d.Find("[.] seq 1 ack 1 ", synack);
  ASSERT_LT(syn, d.lines.size()) << r.out;
  ASSERT_LT(synack, d.lines.size()) << r.out;
  ASSERT_LT(ack, d.lines.size()) << r.out;
  EXPECT_EQ(d.lines[syn].find("->|"), right - 2) << d.lines[syn];
  EXPECT_EQ(d.lines[synack].find("|<-"), left) << d.lines[synack];
  EXPECT_EQ(d.lines[ack].find("->|"), right - 2) << d.lines[ack];
  EXPECT_NE(d.Find("[P.] seq 1 ack 1 "), d.lines.size()) << r.out;
  EXPECT_NE(d.Find("[F.] seq 19 ack 1 "), d.lines.size()) << r.out;

  // Each side's states under its own column, in order.
  size_t prev = 0;
  for (const char* s : {"SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSED"}) {
    size_t i = prev;
    while ((i = d.Find(absl::StrCat(" ", s, " "), i)) < d.lines.size() && !Near(d.CenterOf(i, s), left)) ++i;
    ASSERT_LT(i, d.lines.size()) << "engine state " << s << " not under the engine's column\n" << r.out;
    EXPECT_GE(i, prev) << s;
    prev = i;
  }
  prev = 0;
  for (const char* s : {"LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"}) {
    size_t i = prev;
    while ((i = d.Find(s, i)) < d.lines.size() && !Near(d.CenterOf(i, s), right)) ++i;
    ASSERT_LT(i, d.lines.size()) << "kernel state " << s << " not under the kernel's column\n" << r.out;
    prev = i;
  }
  // SYN-SENT before the SYN's arrow; TIME-WAIT after the last ACK.
  EXPECT_LT(d.Find("SYN-SENT"), syn);
}

TEST_F(LadderTunTest, PcapWritesACaptureTsharkCanRead) {
  ASSERT_NO_FATAL_FAILURE(LifeCycle());
  const std::string path = daemon_.dir() + "/lab.pcap";
  Result r = Cli({"pcap", "lab", "-o", path});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string pcap = ss.str();
  ASSERT_GE(pcap.size(), 24u + 7 * 16) << "a pcap header and the life cycle's segments";
  EXPECT_EQ(Line(r.out), absl::StrCat("wrote ", pcap.size(), " octets to ", path));
  // The magic number of a (nanosecond or microsecond) pcap file, either byte order.
  uint32_t magic = 0;
  std::memcpy(&magic, pcap.data(), 4);
  EXPECT_TRUE(magic == 0xa1b23c4d || magic == 0xa1b2c3d4 || magic == 0x4d3cb2a1 || magic == 0xd4c3b2a1)
      << std::hex << magic;

  // -o - writes the same bytes to stdout (nothing was sent since).
  Result out = Cli({"pcap", "lab", "-o", "-"});
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_TRUE(out.out == pcap) << "stdout capture differs: " << out.out.size() << " vs " << pcap.size() << " octets";

  if (access("/usr/bin/tshark", X_OK) != 0) {
    std::fprintf(stderr, "tshark not installed: pcap checked by its magic number only\n");
    return;
  }
  Result t = RunProcess({"/usr/bin/tshark", "-r", path});
  EXPECT_EQ(t.exit_code, 0) << t.Describe();
  EXPECT_NE(t.out.find("[SYN]"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("[SYN, ACK]"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("[FIN, ACK]"), std::string::npos) << t.out;
}

// Engine to engine every segment is logged twice (OUT at the sender, IN at the receiver):
// the ladder draws each once.
TEST_F(CliTest, VirtualLadderDrawsEachSegmentOnce) {
  ASSERT_EQ(Line(Ok({"sandbox", "create", "v", "--backend", "virtual"})), "v");
  Ok({"listen", "v", "--stack", "engine", "--port", "7000"});
  const std::string client = Line(Ok({"connect", "v", "--stack", "engine", "--to", "198.18.0.2:7000"}));
  ASSERT_TRUE(WaitState(client, v1::TCP_STATE_ESTABLISHED));
  Ok({"send", client, "--data", "hello"});
  Ok({"close", client});
  ASSERT_TRUE(WaitState(client, v1::TCP_STATE_FIN_WAIT_2));

  size_t out_segments = 0;
  for (const v1::Event& e : Events("v")) {
    if (e.has_segment() && e.segment().direction() == v1::SegmentEvent::DIRECTION_OUT) ++out_segments;
  }
  Result r = Cli({"watch", "v", "--ladder", "--no-follow"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  const Diagram d(r.out);
  size_t arrows = 0;
  for (const std::string& l : d.lines) {
    if (l.find("->|") != std::string::npos || l.find("|<-") != std::string::npos) ++arrows;
  }
  EXPECT_EQ(arrows, out_segments) << r.out;
  EXPECT_GE(arrows, 5u) << r.out;  // SYN, SYN+ACK, ACK, data, its ACK, FIN...
  ASSERT_TRUE(d.center.contains("198.18.0.2:7000")) << r.out;
  // The client's column is the left one: it sent the first segment.
  const size_t server_col = d.center.at("198.18.0.2:7000");
  for (const auto& [ep, at] : d.center) {
    if (ep != "198.18.0.2:7000") {
      EXPECT_LT(at, server_col) << ep;
    }
  }
}

}  // namespace
}  // namespace tcplab::e2e
