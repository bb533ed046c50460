// The sandbox's packet capture (PcapTap), checked by tshark: whole connections between the
// engine and the Linux kernel, engine-to-engine loopback, and the bound. tshark reads every
// capture with checksum verification on and must find no malformed packet, no bad checksum,
// no error-level expert info and no "ACKed segment that wasn't captured".
//
// The PcapTap and virtual-backend tests need no privileges; the TUN tests need root and skip
// without it. tshark is required (deploy/install-deps.sh installs it): without it the tests
// fail, they do not skip.
#include "engine/sandbox/pcap_tap.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/sandbox/sandbox.h"
#include "engine/wire/codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/tun/tun_testing.h"

namespace tcplab::sandbox {
namespace {

using ::testing::HasSubstr;
using tcp::TcpState;
using namespace std::chrono_literals;
using namespace tuntest;

constexpr wire::Ipv4 kKernel = wire::Ipv4::Of(198, 18, 0, 1);
constexpr wire::Ipv4 kEngine = wire::Ipv4::Of(198, 18, 0, 2);
constexpr wire::Ipv4 kEngine2 = wire::Ipv4::Of(198, 18, 0, 3);

// _ws.expert.severity of an Error (tshark -G values: 8388608 = 0x800000).
constexpr char kExpertError[] = "_ws.expert.severity == 8388608";

std::string TsharkPath() {
  FILE* p = popen("command -v tshark 2>/dev/null", "r");
  if (p == nullptr) return "";
  char buf[512] = {};
  std::string out = std::fgets(buf, sizeof buf, p) ? buf : "";
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// Fails (not skips) the current test when tshark is missing.
#define ASSERT_TSHARK()                                                                          \
  ASSERT_FALSE(TsharkPath().empty())                                                             \
      << "tshark is not installed (not found in PATH); these tests check every capture with it. " \
         "Install it with deploy/install-deps.sh (as root)."

struct TsharkResult {
  int exit_code = -1;
  std::vector<std::string> lines;  // one per packet that matched
  std::string stderr_text;
};

// A capture written to a temporary file, and tshark run on it. The file is kept (and its
// path printed) when the test failed, for a look with Wireshark.
class PcapFile {
 public:
  explicit PcapFile(const std::string& bytes) {
    char tmpl[] = "/tmp/tcplab-pcap-XXXXXX.pcap";
    int fd = mkstemps(tmpl, 5);
    if (fd < 0) {
      ADD_FAILURE() << "mkstemps: " << std::strerror(errno);
      return;
    }
    path_ = tmpl;
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
      if (n <= 0) {
        ADD_FAILURE() << "write " << path_ << ": " << std::strerror(errno);
        break;
      }
      off += static_cast<size_t>(n);
    }
    close(fd);
  }
  ~PcapFile() {
    if (path_.empty()) return;
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "pcap kept for inspection: %s\n", path_.c_str());
    } else {
      unlink(path_.c_str());
    }
  }
  PcapFile(const PcapFile&) = delete;
  PcapFile& operator=(const PcapFile&) = delete;

  const std::string& path() const { return path_; }

  // tshark -r FILE, checksums verified, display filter `filter` (none if empty), one line
  // per matching packet with `fields` separated by tabs (frame.number when none are given).
  TsharkResult Run(const std::string& filter, const std::vector<std::string>& fields = {}) const {
    TsharkResult r;
    std::string err_path = path_ + ".stderr";
    std::string cmd = absl::StrCat("tshark -r '", path_,
                                   "' -n -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE");
    if (!filter.empty()) absl::StrAppend(&cmd, " -Y '", filter, "'");
    absl::StrAppend(&cmd, " -T fields -E separator=/t -E occurrence=f");
    if (fields.empty()) absl::StrAppend(&cmd, " -e frame.number");
    for (const std::string& f : fields) absl::StrAppend(&cmd, " -e ", f);
    absl::StrAppend(&cmd, " 2>'", err_path, "'");
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) {
      r.stderr_text = absl::StrCat("popen: ", std::strerror(errno));
      return r;
    }
    std::string out;
    char buf[65536];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    int status = pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) r.lines.emplace_back(line);
    std::ifstream err(err_path);
    std::stringstream ss;
    ss << err.rdbuf();
    r.stderr_text = ss.str();
    unlink(err_path.c_str());
    return r;
  }

  // How many packets match `filter`; -1 (and a failure) when tshark does not exit 0.
  int Count(const std::string& filter) const {
    TsharkResult r = Run(filter);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "tshark -Y '" << filter << "' on " << path_ << " exited " << r.exit_code << ": "
                    << r.stderr_text;
      return -1;
    }
    return static_cast<int>(r.lines.size());
  }

 private:
  std::string path_;
};

// "1700000000.123456789" (frame.time_epoch) as nanoseconds since 1970.
int64_t EpochNanos(absl::string_view s) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(s, '.');
  int64_t sec = 0, frac = 0;
  if (!absl::SimpleAtoi(parts.first, &sec)) return -1;
  std::string digits(parts.second.substr(0, 9));
  digits.resize(9, '0');
  if (!absl::SimpleAtoi(digits, &frac)) return -1;
  return sec * 1'000'000'000 + frac;
}

uint32_t U32At(const std::string& file, size_t off) {
  uint32_t v = 0;
  std::memcpy(&v, file.data() + off, 4);
  return v;
}

// What every capture of whole TCP connections must look like in tshark.
//   packets      how many packets tshark must read (the tap's count)
//   from, to     the wall-clock window the traffic happened in
//   connections  how many TCP connections (SYN pairs) the capture holds from their start
void ExpectCleanCapture(const PcapFile& f, uint64_t packets, absl::Time from, absl::Time to,
                        int connections = 1) {
  TsharkResult all = f.Run("", {"frame.number", "frame.time_epoch", "ip.checksum.status",
                                "tcp.checksum.status", "tcp.stream"});
  ASSERT_EQ(all.exit_code, 0) << "tshark -r " << f.path() << ": " << all.stderr_text;
  EXPECT_EQ(all.lines.size(), packets) << "tshark read a different number of packets than the tap wrote";

  // Per-packet fields: nanosecond timestamps, in order, inside the test's window; every IP
  // and TCP checksum verified good (status 1; 0 is bad, 2 unverified).
  int64_t prev = 0, lo = absl::ToUnixNanos(from - absl::Seconds(1)), hi = absl::ToUnixNanos(to + absl::Seconds(1));
  std::set<std::string> streams;
  bool sub_microsecond = false;
  for (const std::string& line : all.lines) {
    std::vector<std::string> v = absl::StrSplit(line, '\t');
    ASSERT_EQ(v.size(), 5u) << line;
    int64_t t = EpochNanos(v[1]);
    EXPECT_GE(t, prev) << "timestamps go backwards at frame " << v[0];
    EXPECT_TRUE(t >= lo && t <= hi) << "frame " << v[0] << " at " << v[1] << " is outside the test";
    if (t % 1000 != 0) sub_microsecond = true;
    prev = t;
    EXPECT_EQ(v[2], "1") << "frame " << v[0] << ": ip.checksum.status";
    EXPECT_EQ(v[3], "1") << "frame " << v[0] << ": tcp.checksum.status";
    streams.insert(v[4]);
  }
  EXPECT_TRUE(sub_microsecond || packets < 10) << "timestamps look like microseconds, not nanoseconds";
  EXPECT_EQ(streams.size(), static_cast<size_t>(connections));

  // Filters over the whole capture.
  EXPECT_EQ(f.Count("_ws.malformed"), 0) << "malformed packets";
  EXPECT_EQ(f.Count("ip.checksum.status == 0"), 0) << "bad IP header checksums";
  EXPECT_EQ(f.Count("tcp.checksum.status == 0"), 0) << "bad TCP checksums";
  EXPECT_EQ(f.Count(kExpertError), 0) << "error-level expert info";
  EXPECT_EQ(f.Count("tcp.analysis.ack_lost_segment"), 0) << "ACKed segments that were not captured";
  // Each connection from its very start: SYN and SYN-ACK.
  EXPECT_EQ(f.Count("tcp.flags.syn == 1 && tcp.flags.ack == 0"), connections);
  EXPECT_EQ(f.Count("tcp.flags.syn == 1 && tcp.flags.ack == 1"), connections);
  EXPECT_GE(f.Count("tcp.flags.fin == 1"), 2 * connections);
  EXPECT_EQ(f.Count("tcp.flags.reset == 1"), 0);
}

// Payload octets tshark sees from `src` (retransmissions included).
uint64_t PayloadFrom(const PcapFile& f, wire::Ipv4 src) {
  TsharkResult r = f.Run(absl::StrCat("ip.src == ", src.ToString(), " && tcp.len > 0"), {"tcp.len"});
  uint64_t sum = 0;
  for (const std::string& l : r.lines) {
    uint64_t n = 0;
    if (absl::SimpleAtoi(l, &n)) sum += n;
  }
  return sum;
}

std::span<const uint8_t> AsSpan(const std::vector<uint8_t>& v) { return {v.data(), v.size()}; }

std::vector<uint8_t> Segment(uint8_t flags, size_t payload_len = 0) {
  static const std::vector<uint8_t> payload(1460, 0x5a);
  wire::SegmentRepr seg;
  seg.src = {kEngine, 40000};
  seg.dst = {kKernel, 80};
  seg.seq = wire::SeqNum(1000);
  seg.ack = wire::SeqNum((flags & wire::kAck) ? 2000 : 0);
  seg.flags = flags;
  seg.window = 65535;
  seg.payload = std::span<const uint8_t>(payload.data(), payload_len);
  std::vector<uint8_t> out;
  wire::Serialize(seg, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// PcapTap on its own (no privileges).

TEST(PcapTap, FileHeaderIsNanosecondRawIp) {
  auto tap = PcapTap::Create();
  ASSERT_TRUE(tap.ok()) << tap.status();
  std::string file = (*tap)->Snapshot();
  ASSERT_EQ(file.size(), PcapTap::kFileHeaderBytes);
  EXPECT_EQ(U32At(file, 0), 0xa1b23c4du) << "nanosecond-resolution pcap magic";
  EXPECT_EQ(U32At(file, 4), 0x00040002u) << "version 2.4";
  EXPECT_EQ(U32At(file, 16), 65535u) << "snaplen";
  EXPECT_EQ(U32At(file, 20), 101u) << "LINKTYPE_RAW: raw IPv4, no link-layer header";
  EXPECT_EQ((*tap)->counters().file_bytes, PcapTap::kFileHeaderBytes);
}

TEST(PcapTap, RecordKeepsNanosecondsAndLength) {
  ASSERT_TSHARK();
  auto tap = PcapTap::Create();
  ASSERT_TRUE(tap.ok());
  std::vector<uint8_t> syn = Segment(wire::kSyn);
  (*tap)->Record(AsSpan(syn), absl::FromUnixNanos(1'700'000'000'123'456'789));
  std::string file = (*tap)->Snapshot();
  ASSERT_EQ(file.size(), PcapTap::kFileHeaderBytes + PcapTap::kRecordHeaderBytes + syn.size());
  EXPECT_EQ(U32At(file, 24), 1'700'000'000u);
  EXPECT_EQ(U32At(file, 28), 123'456'789u);
  EXPECT_EQ(U32At(file, 32), syn.size());  // caplen
  EXPECT_EQ(U32At(file, 36), syn.size());  // len
  EXPECT_EQ(file.substr(40), std::string(syn.begin(), syn.end()));
  EXPECT_EQ((*tap)->counters(), (PcapCounters{1, syn.size(), 0, 0, file.size(), false}));

  PcapFile f(file);
  TsharkResult r = f.Run("", {"frame.time_epoch", "ip.src", "tcp.dstport", "tcp.flags.syn"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_EQ(r.lines[0], "1700000000.123456789\t198.18.0.2\t80\t1");
}

// The checks in ExpectCleanCapture are live: tshark does flag what the tap writes wrongly.
TEST(PcapTap, TsharkFlagsBadChecksumsItIsShown) {
  ASSERT_TSHARK();
  auto tap = PcapTap::Create();
  ASSERT_TRUE(tap.ok());
  std::vector<uint8_t> good = Segment(wire::kAck, 100), bad_tcp = good, bad_ip = good;
  bad_tcp[20 + 16] ^= 0x01;  // TCP checksum (after a 20-octet IPv4 header)
  bad_ip[10] ^= 0x01;        // IPv4 header checksum
  absl::Time t = absl::Now();
  (*tap)->Record(AsSpan(good), t);
  (*tap)->Record(AsSpan(bad_tcp), t);
  (*tap)->Record(AsSpan(bad_ip), t);
  PcapFile f((*tap)->Snapshot());
  EXPECT_EQ(f.Count(""), 3);
  EXPECT_EQ(f.Count("tcp.checksum.status == 0"), 1);
  EXPECT_EQ(f.Count("ip.checksum.status == 0"), 1);
  EXPECT_EQ(f.Count("tcp.checksum.status == 1"), 2);
  EXPECT_GE(f.Count(kExpertError), 2);
  EXPECT_EQ(f.Count("_ws.malformed"), 0);
}

TEST(PcapTap, RejectsABoundSmallerThanTheFileHeader) {
  auto tap = PcapTap::Create(PcapTap::kFileHeaderBytes - 1);
  EXPECT_EQ(tap.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tap.status().message()), HasSubstr("pcap_max_bytes"));
  EXPECT_TRUE(PcapTap::Create(PcapTap::kFileHeaderBytes).ok());
}

// Full: the datagram that does not fit and every one after it (even a small one that would
// fit) are dropped and counted; the file stays valid and under the bound.
TEST(PcapTap, StopsWhenFullAndStaysValid) {
  ASSERT_TSHARK();
  std::vector<uint8_t> big = Segment(wire::kAck, 1000), small = Segment(wire::kAck);
  const size_t rec = PcapTap::kRecordHeaderBytes + big.size();
  const size_t max = PcapTap::kFileHeaderBytes + 2 * rec + rec / 2;
  auto tap = PcapTap::Create(max);
  ASSERT_TRUE(tap.ok());
  absl::Time t = absl::Now();
  for (int i = 0; i < 4; ++i) (*tap)->Record(AsSpan(big), t);
  (*tap)->Record(AsSpan(small), t);  // would fit, but the capture stays a prefix
  const PcapCounters& c = (*tap)->counters();
  EXPECT_EQ(c.datagrams_captured, 2u);
  EXPECT_EQ(c.bytes_captured, 2 * big.size());
  EXPECT_EQ(c.datagrams_dropped, 3u);
  EXPECT_EQ(c.bytes_dropped, 2 * big.size() + small.size());
  EXPECT_TRUE(c.full);
  std::string file = (*tap)->Snapshot();
  EXPECT_EQ(file.size(), PcapTap::kFileHeaderBytes + 2 * rec);
  EXPECT_LE(file.size(), max);
  PcapFile f(file);
  EXPECT_EQ(f.Count(""), 2);
  EXPECT_EQ(f.Count("_ws.malformed"), 0);
}

TEST(PcapTap, SnapshotFromAnOffsetIsTheTail) {
  auto tap = PcapTap::Create();
  ASSERT_TRUE(tap.ok());
  std::vector<uint8_t> syn = Segment(wire::kSyn);
  (*tap)->Record(AsSpan(syn), absl::Now());
  std::string before = (*tap)->Snapshot();
  (*tap)->Record(AsSpan(syn), absl::Now());
  std::string after = (*tap)->Snapshot();
  EXPECT_EQ(after.substr(0, before.size()), before) << "the file only grows at its end";
  EXPECT_EQ((*tap)->Snapshot(before.size()), after.substr(before.size()));
  EXPECT_EQ((*tap)->Snapshot(after.size()), "");
  EXPECT_EQ((*tap)->Snapshot(after.size() + 100), "");
}

// ---------------------------------------------------------------------------------------------
// Captures of whole connections.

class PcapSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TSHARK();
    if (backend_ == Backend::kTun && geteuid() != 0) {
      GTEST_SKIP() << "needs root for network namespaces and TUN (label tun)";
    }
    start_ = absl::Now();
    SandboxConfig cfg;
    cfg.name = "pcap";
    cfg.backend = backend_;
    cfg.engine.tcp.msl = 500ms;  // TIME-WAIT of 1 s keeps the tests short
    cfg.engine.tcp.min_rto = 200ms;
    cfg.engine.isn_secret[0] = 9;
    cfg.pcap_max_bytes = pcap_max_bytes_;
    auto sb = Sandbox::Create(cfg);
    ASSERT_TRUE(sb.ok()) << sb.status();
    sb_ = std::move(*sb);
  }

  // Engine (connecting) and kernel (listening) on `port`, both ESTABLISHED.
  std::pair<tcp::ConnId, tcp::ConnId> ConnectEngineToKernel(uint16_t port) {
    auto l = sb_->Listen(StackKind::kKernel, {kKernel, port});
    EXPECT_TRUE(l.ok()) << l.status();
    auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, port});
    EXPECT_TRUE(e.ok()) << e.status();
    EXPECT_TRUE(WaitUntil([&] { return Accepted(*sb_, StackKind::kKernel, port).has_value(); }));
    tcp::ConnId k = Accepted(*sb_, StackKind::kKernel, port).value_or(0);
    EXPECT_TRUE(WaitState(*sb_, *e, TcpState::kEstablished));
    EXPECT_TRUE(WaitState(*sb_, k, TcpState::kEstablished));
    return {*e, k};
  }

  std::string Capture() {
    auto p = sb_->Pcap();
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : "";
  }

  Backend backend_ = Backend::kTun;
  size_t pcap_max_bytes_ = PcapTap::kDefaultMaxBytes;
  absl::Time start_;
  std::unique_ptr<Sandbox> sb_;
};

// Handshake, 1 MiB each way, the engine closes first and sits in TIME-WAIT for 2·MSL; the
// kernel goes CLOSE-WAIT, LAST-ACK, CLOSED (RFC 9293 §3.6). Every segment is in the capture.
TEST_F(PcapSandboxTest, EngineClosesFirstWholeConnectionIsCleanInTshark) {
  auto [e, k] = ConnectEngineToKernel(5001);
  const std::string up = RandomBytes(1 << 20, 1), down = RandomBytes(1 << 20, 2);
  auto [at_kernel, at_engine] = Exchange(*sb_, e, k, up, down, absl::Seconds(60));
  ASSERT_EQ(Sha256Hex(at_kernel), Sha256Hex(up));
  ASSERT_EQ(Sha256Hex(at_engine), Sha256Hex(down));
  ASSERT_TRUE(sb_->Close(e).ok());
  ASSERT_TRUE(WaitState(*sb_, k, TcpState::kCloseWait));
  ASSERT_TRUE(sb_->Close(k).ok());
  ASSERT_TRUE(WaitState(*sb_, e, TcpState::kTimeWait));
  ASSERT_TRUE(WaitState(*sb_, e, TcpState::kClosed));  // after 2·MSL
  ASSERT_TRUE(WaitState(*sb_, k, TcpState::kClosed));
  EXPECT_TRUE(PathContains(*sb_, k, TcpState::kLastAck));

  std::string pcap = Capture();
  SandboxCounters c = sb_->counters();
  EXPECT_EQ(pcap.size(), c.pcap.file_bytes);
  EXPECT_EQ(c.pcap.datagrams_dropped, 0u);
  EXPECT_EQ(c.loopback_datagrams, 0u);
  EXPECT_EQ(c.pcap.datagrams_captured, c.tun_datagrams_in + c.tun_datagrams_out);
  EXPECT_GT(c.pcap.datagrams_captured, 2u * (1 << 20) / 1460);
  PcapFile f(pcap);
  ExpectCleanCapture(f, c.pcap.datagrams_captured, start_, absl::Now());
  EXPECT_GE(PayloadFrom(f, kEngine), uint64_t{1} << 20);
  EXPECT_GE(PayloadFrom(f, kKernel), uint64_t{1} << 20);
  // The FINs in close order: the engine's first.
  TsharkResult fins = f.Run("tcp.flags.fin == 1", {"ip.src"});
  ASSERT_GE(fins.lines.size(), 2u);
  EXPECT_EQ(fins.lines.front(), "198.18.0.2");
}

// The same with the kernel closing first: the kernel is the one in TIME-WAIT.
TEST_F(PcapSandboxTest, KernelClosesFirstWholeConnectionIsCleanInTshark) {
  auto [e, k] = ConnectEngineToKernel(5002);
  const std::string up = RandomBytes(1 << 20, 3), down = RandomBytes(1 << 20, 4);
  auto [at_kernel, at_engine] = Exchange(*sb_, e, k, up, down, absl::Seconds(60));
  ASSERT_EQ(Sha256Hex(at_kernel), Sha256Hex(up));
  ASSERT_EQ(Sha256Hex(at_engine), Sha256Hex(down));
  ASSERT_TRUE(sb_->Close(k).ok());
  ASSERT_TRUE(WaitState(*sb_, e, TcpState::kCloseWait));
  ASSERT_TRUE(sb_->Close(e).ok());
  ASSERT_TRUE(WaitState(*sb_, e, TcpState::kClosed));
  ASSERT_TRUE(WaitUntil([&] { return PathContains(*sb_, k, TcpState::kTimeWait); }));
  EXPECT_TRUE(PathContains(*sb_, e, TcpState::kLastAck));

  std::string pcap = Capture();
  SandboxCounters c = sb_->counters();
  EXPECT_EQ(c.pcap.datagrams_dropped, 0u);
  EXPECT_EQ(c.pcap.datagrams_captured, c.tun_datagrams_in + c.tun_datagrams_out);
  PcapFile f(pcap);
  ExpectCleanCapture(f, c.pcap.datagrams_captured, start_, absl::Now());
  TsharkResult fins = f.Run("tcp.flags.fin == 1", {"ip.src"});
  ASSERT_GE(fins.lines.size(), 2u);
  EXPECT_EQ(fins.lines.front(), "198.18.0.1");
  // The last segment is the kernel's ACK of the engine's FIN, sent on entering TIME-WAIT.
  TsharkResult all = f.Run("", {"ip.src", "tcp.flags.ack", "tcp.flags.fin"});
  ASSERT_FALSE(all.lines.empty());
  EXPECT_EQ(all.lines.back(), "198.18.0.1\t1\t0");
}

// Engine-to-engine inside the sandbox: the loopback datagrams are in the capture, once each.
TEST_F(PcapSandboxTest, EngineToEngineLoopbackIsCaptured) {
  ASSERT_TRUE(sb_->Listen(StackKind::kEngine, {kEngine2, 80}).ok());
  auto a = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kEngine2, 80});
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(WaitUntil([&] { return Accepted(*sb_, StackKind::kEngine, 80).has_value(); }));
  tcp::ConnId b = *Accepted(*sb_, StackKind::kEngine, 80);
  const std::string ab = RandomBytes(256 << 10, 5), ba = RandomBytes(128 << 10, 6);
  auto [at_b, at_a] = Exchange(*sb_, *a, b, ab, ba, absl::Seconds(60));
  ASSERT_TRUE(at_b == ab);
  ASSERT_TRUE(at_a == ba);
  ASSERT_TRUE(sb_->Close(*a).ok());
  ASSERT_TRUE(WaitState(*sb_, b, TcpState::kCloseWait));
  ASSERT_TRUE(sb_->Close(b).ok());
  ASSERT_TRUE(WaitState(*sb_, *a, TcpState::kClosed));  // through TIME-WAIT
  ASSERT_TRUE(WaitState(*sb_, b, TcpState::kClosed));

  std::string pcap = Capture();
  SandboxCounters c = sb_->counters();
  EXPECT_GT(c.loopback_datagrams, 0u);
  EXPECT_EQ(c.pcap.datagrams_captured, c.loopback_datagrams + c.tun_datagrams_in + c.tun_datagrams_out);
  PcapFile f(pcap);
  ExpectCleanCapture(f, c.pcap.datagrams_captured, start_, absl::Now());
  EXPECT_GE(PayloadFrom(f, kEngine), ab.size());
  EXPECT_GE(PayloadFrom(f, kEngine2), ba.size());
}

class TinyPcapSandboxTest : public PcapSandboxTest {
 protected:
  TinyPcapSandboxTest() { pcap_max_bytes_ = kBound; }
  static constexpr size_t kBound = 16 << 10;
};

// 4 MiB through a 16 KiB capture: the file stays under the bound, holds the start of the
// connection (its SYN first), counts the rest as dropped, and tshark still reads it.
TEST_F(TinyPcapSandboxTest, CaptureStaysUnderItsBound) {
  auto [e, k] = ConnectEngineToKernel(5003);
  const std::string up = RandomBytes(4 << 20, 7);
  auto [at_kernel, at_engine] = Exchange(*sb_, e, k, up, "", absl::Seconds(60));
  ASSERT_TRUE(at_kernel == up);

  std::string pcap = Capture();
  SandboxCounters c = sb_->counters();
  EXPECT_LE(pcap.size(), kBound);
  EXPECT_EQ(pcap.size(), c.pcap.file_bytes);
  // Capture stopped at the first record that did not fit, and records are at most
  // 16 + 1500 octets (the TUN's MTU): the file is nearly full.
  EXPECT_GT(pcap.size(), kBound - PcapTap::kRecordHeaderBytes - 1500);
  EXPECT_TRUE(c.pcap.full);
  EXPECT_GT(c.pcap.datagrams_dropped, 0u);
  EXPECT_GT(c.pcap.bytes_dropped, uint64_t{3} << 20);
  EXPECT_EQ(c.pcap.datagrams_captured + c.pcap.datagrams_dropped, c.tun_datagrams_in + c.tun_datagrams_out);

  PcapFile f(pcap);
  EXPECT_EQ(f.Count(""), static_cast<int>(c.pcap.datagrams_captured));
  EXPECT_EQ(f.Count("_ws.malformed"), 0);
  EXPECT_EQ(f.Count("tcp.checksum.status == 0"), 0);
  EXPECT_EQ(f.Count("tcp.analysis.ack_lost_segment"), 0);
  TsharkResult first = f.Run("frame.number == 1", {"tcp.flags.syn", "tcp.flags.ack", "ip.src"});
  ASSERT_EQ(first.lines.size(), 1u);
  EXPECT_EQ(first.lines[0], "1\t0\t198.18.0.2");
}

class NoPcapSandboxTest : public PcapSandboxTest {
 protected:
  NoPcapSandboxTest() {
    backend_ = Backend::kVirtual;
    pcap_max_bytes_ = 0;
  }
};

TEST_F(NoPcapSandboxTest, ZeroBoundTurnsCaptureOff) {
  ASSERT_TRUE(sb_->Listen(StackKind::kEngine, {kKernel, 80}).ok());
  auto e = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 80});
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(WaitState(*sb_, *e, TcpState::kEstablished));
  auto p = sb_->Pcap();
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("pcap_max_bytes is 0"));
  EXPECT_EQ(sb_->counters().pcap, PcapCounters{});
}

class VirtualPcapSandboxTest : public PcapSandboxTest {
 protected:
  VirtualPcapSandboxTest() { backend_ = Backend::kVirtual; }
};

// The virtual backend (no privileges) captures its engine-to-engine traffic the same way.
TEST_F(VirtualPcapSandboxTest, EngineToEngineIsCapturedWithoutPrivileges) {
  ASSERT_TRUE(sb_->Listen(StackKind::kEngine, {kKernel, 80}).ok());
  auto a = sb_->Connect(StackKind::kEngine, {kEngine, 0}, {kKernel, 80});
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(WaitUntil([&] { return Accepted(*sb_, StackKind::kEngine, 80).has_value(); }));
  tcp::ConnId b = *Accepted(*sb_, StackKind::kEngine, 80);
  const std::string ab = RandomBytes(200 << 10, 8);
  auto [at_b, at_a] = Exchange(*sb_, *a, b, ab, "", absl::Seconds(60));
  ASSERT_TRUE(at_b == ab);
  ASSERT_TRUE(sb_->Close(b).ok());
  ASSERT_TRUE(WaitState(*sb_, *a, TcpState::kCloseWait));
  ASSERT_TRUE(sb_->Close(*a).ok());
  ASSERT_TRUE(WaitState(*sb_, b, TcpState::kClosed));

  std::string pcap = Capture();
  SandboxCounters c = sb_->counters();
  EXPECT_EQ(c.pcap.datagrams_captured, c.loopback_datagrams);
  PcapFile f(pcap);
  ExpectCleanCapture(f, c.pcap.datagrams_captured, start_, absl::Now());
}

}  // namespace
}  // namespace tcplab::sandbox
