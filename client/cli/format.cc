#include "client/cli/format.h"

#include <cstdio>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace tcplab::cli {

namespace {

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// Strips an enum value's prefix: ("TCP_STATE_", "TCP_STATE_LISTEN") -> "LISTEN".
std::string Strip(const std::string& prefix, const std::string& name) {
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

// Aligned "key:   value" lines.
class Lines {
 public:
  void Add(const std::string& key, const std::string& value) {
    absl::StrAppendFormat(&out_, "%-15s %s\n", key + ":", value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string OnOff(bool b) { return b ? "on" : "off"; }

std::string Window(uint32_t ssthresh) {
  // The engine starts with an "infinite" slow-start threshold (RFC 5681 §3.1).
  return ssthresh >= 0x7fffffffu ? "unlimited" : absl::StrCat(ssthresh);
}

void AddEngine(const v1::EngineTcb& t, Lines& l) {
  l.Add("ISS / IRS", absl::StrCat(t.iss(), " / ", t.irs()));
  l.Add("SND.UNA", absl::StrCat(t.snd_una(), " (+", t.snd_una() - t.iss(), ")"));
  l.Add("SND.NXT", absl::StrCat(t.snd_nxt(), " (+", t.snd_nxt() - t.iss(), ")"));
  l.Add("SND.MAX", absl::StrCat(t.snd_max(), " (+", t.snd_max() - t.iss(), ")"));
  l.Add("SND.WND", absl::StrCat(t.snd_wnd()));
  l.Add("SND.WL1 / WL2", absl::StrCat(t.snd_wl1(), " / ", t.snd_wl2()));
  l.Add("RCV.NXT", absl::StrCat(t.rcv_nxt(), " (+", t.rcv_nxt() - t.irs(), ")"));
  l.Add("RCV.WND", absl::StrCat(t.rcv_wnd()));
  l.Add("MSS", absl::StrCat(t.mss(), " (peer ", t.peer_mss(), ")"));
  l.Add("wscale", absl::StrCat("snd ", t.snd_wscale(), ", rcv ", t.rcv_wscale()));
  l.Add("SACK / TS", absl::StrCat(OnOff(t.sack()), " / ", OnOff(t.timestamps())));
  l.Add("cwnd / ssthresh", absl::StrCat(t.cwnd(), " / ", Window(t.ssthresh())));
  l.Add("SRTT / RTTVAR", absl::StrCat(DurationText(t.srtt()), " / ", DurationText(t.rttvar())));
  l.Add("RTO", DurationText(t.rto()));
  l.Add("in flight", absl::StrCat(t.bytes_in_flight(), " octets"));
  l.Add("send buffer", absl::StrCat(t.send_buffered(), " / ", t.send_capacity(), " octets"));
  l.Add("recv buffer", absl::StrCat(t.recv_buffered(), " / ", t.recv_capacity(), " octets"));
  l.Add("out of order", absl::StrCat(t.out_of_order_bytes(), " octets"));
  std::vector<std::string> timers;
  for (const v1::Timer& tm : t.timers()) timers.push_back(absl::StrCat(tm.kind(), " in ", DurationText(tm.remaining())));
  l.Add("timers", timers.empty() ? "none" : absl::StrJoin(timers, ", "));
  const v1::EngineTcb::Counters& c = t.counters();
  l.Add("segments", absl::StrCat("in ", c.segments_in(), ", out ", c.segments_out()));
  l.Add("octets", absl::StrCat("in ", c.bytes_in(), ", out ", c.bytes_out()));
  l.Add("retransmits", absl::StrCat(c.retransmissions(), " (RTO expirations ", c.rto_expirations(),
                                    ", fast retransmits ", c.fast_retransmits(), ")"));
  l.Add("dup ACKs in", absl::StrCat(c.dup_acks_in()));
  l.Add("dropped in", absl::StrCat("out of order ", c.out_of_order_segments(), ", out of window ",
                                   c.out_of_window_segments(), ", PAWS ", c.paws_drops(), ", bad checksum ",
                                   c.bad_checksums()));
  l.Add("challenge ACKs", absl::StrCat(c.challenge_acks()));
  if (!t.error().empty()) l.Add("error", t.error());
}

void AddKernel(const v1::KernelTcpInfo& k, Lines& l) {
  l.Add("socket", k.has_fd() ? "open (TCP_INFO)" : "no fd (seen through sock_diag only)");
  if (!k.has_fd()) return;
  l.Add("MSS", absl::StrCat("snd ", k.snd_mss(), ", rcv ", k.rcv_mss()));
  l.Add("wscale", k.wscale() ? absl::StrCat("snd ", k.snd_wscale(), ", rcv ", k.rcv_wscale()) : "off");
  l.Add("SACK / TS", absl::StrCat(OnOff(k.sack()), " / ", OnOff(k.timestamps())));
  l.Add("cwnd / ssthresh", absl::StrCat(k.snd_cwnd(), " / ", Window(k.snd_ssthresh()), " segments"));
  l.Add("RTT / RTTVAR", absl::StrCat(DurationText(k.rtt()), " / ", DurationText(k.rttvar())));
  l.Add("RTO", DurationText(k.rto()));
  l.Add("unacked", absl::StrCat(k.unacked(), " segments"));
  l.Add("retransmits", absl::StrCat(k.retransmits(), " now, ", k.total_retrans(), " total"));
  l.Add("octets", absl::StrCat("acked ", k.bytes_acked(), ", received ", k.bytes_received()));
  l.Add("segments", absl::StrCat("in ", k.segs_in(), ", out ", k.segs_out()));
  l.Add("pending send", absl::StrCat(k.pending_send(), " octets"));
}

}  // namespace

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) return "{}";
  return out;
}

void PrintJson(const google::protobuf::Message& m) {
  std::string s = ToJson(m);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

void PrintOk() { std::fputs("{\"ok\":true}\n", stdout); }

google::protobuf::Duration DurationToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return out;
}

std::string StateName(v1::TcpState s) {
  return absl::StrReplaceAll(Strip("TCP_STATE_", v1::TcpState_Name(s)), {{"_", "-"}});
}

std::string StackName(v1::Stack s) {
  switch (s) {
    case v1::STACK_ENGINE: return "engine";
    case v1::STACK_KERNEL: return "kernel";
    default: return "-";
  }
}

std::string VerdictName(v1::Verdict v) { return Strip("VERDICT_", v1::Verdict_Name(v)); }

std::string EndpointText(const v1::Endpoint& e) { return absl::StrCat(e.ip(), ":", e.port()); }

std::string DurationText(const google::protobuf::Duration& d) { return absl::FormatDuration(FromProto(d)); }

std::string SinceStartText(const google::protobuf::Duration& d) {
  return absl::StrFormat("%.6fs", absl::ToDoubleSeconds(FromProto(d)));
}

bool IsDrop(v1::Verdict v) {
  switch (v) {
    case v1::VERDICT_OUT_OF_WINDOW:
    case v1::VERDICT_PAWS_REJECTED:
    case v1::VERDICT_BAD_ACK:
    case v1::VERDICT_IGNORED:
    case v1::VERDICT_NO_CONNECTION:
    case v1::VERDICT_LISTEN_OVERFLOW:
    case v1::VERDICT_BAD_CHECKSUM:
    case v1::VERDICT_MALFORMED:
      return true;
    default:
      return false;
  }
}

std::string EventBody(const v1::Event& e) {
  switch (e.body_case()) {
    case v1::Event::kSegment: {
      const v1::SegmentEvent& s = e.segment();
      std::string opts;
      const v1::TcpOptions& o = s.options();
      std::vector<std::string> parts;
      if (o.mss()) parts.push_back(absl::StrCat("mss ", o.mss()));
      if (o.has_window_scale()) parts.push_back(absl::StrCat("wscale ", o.window_scale()));
      if (o.sack_permitted()) parts.push_back("sackOK");
      if (o.has_timestamps()) parts.push_back(absl::StrCat("TS val ", o.ts_val(), " ecr ", o.ts_ecr()));
      for (const v1::SackBlock& b : o.sack()) parts.push_back(absl::StrCat("sack ", b.left(), "-", b.right()));
      if (!parts.empty()) opts = absl::StrCat(" <", absl::StrJoin(parts, ","), ">");
      return absl::StrCat(s.direction() == v1::SegmentEvent::DIRECTION_IN ? "IN  " : "OUT ", s.summary(), opts,
                          " ", VerdictName(s.verdict()));
    }
    case v1::Event::kState:
      return absl::StrCat("STATE ", StateName(e.state().from()), " -> ", StateName(e.state().to()), " (",
                          e.state().cause(), ")");
    case v1::Event::kTimer: {
      const v1::TimerEvent& t = e.timer();
      std::string kind = absl::AsciiStrToLower(Strip("KIND_", v1::TimerEvent::Kind_Name(t.kind())));
      std::string action = absl::AsciiStrToLower(Strip("ACTION_", v1::TimerEvent::Action_Name(t.action())));
      std::string out = absl::StrCat("TIMER ", absl::StrReplaceAll(kind, {{"_", "-"}}), " ", action);
      if (t.action() == v1::TimerEvent::ACTION_STARTED) absl::StrAppend(&out, " (fires at ", SinceStartText(t.deadline()), ")");
      if (t.backoff()) absl::StrAppend(&out, " backoff ", t.backoff());
      return out;
    }
    case v1::Event::kApp:
      return absl::StrCat("APP ", e.app().call(), " -> ", e.app().result());
    case v1::Event::kGap:
      return absl::StrCat("GAP: missed ", e.gap().missed(), " events (next ", e.gap().next_sequence(), ")");
    default:
      return "(unknown event)";
  }
}

std::string EventLine(const std::string& sandbox, const v1::Event& e) {
  std::string conn = e.connection_id() ? absl::StrCat(sandbox, "/", e.connection_id()) : "-";
  return absl::StrFormat("%6d %12s %-6s %-8s %s", e.sequence(), SinceStartText(e.since_start()),
                         StackName(e.stack()), conn, EventBody(e));
}

std::string ConnectionDetails(const v1::Connection& c) {
  Lines l;
  l.Add("connection", absl::StrCat(c.sandbox(), "/", c.id()));
  l.Add("stack", StackName(c.stack()));
  l.Add("state", StateName(c.state()) + (c.listener() ? " (listener)" : ""));
  l.Add("local", EndpointText(c.local()));
  l.Add("remote", EndpointText(c.remote()));
  if (c.has_engine()) AddEngine(c.engine(), l);
  if (c.has_kernel()) AddKernel(c.kernel(), l);
  return l.Take();
}

std::string ConnectionsTable(const google::protobuf::RepeatedPtrField<v1::Connection>& conns) {
  std::string out = absl::StrFormat("%-12s %-7s %-12s %-22s %-22s %s\n", "ID", "STACK", "STATE", "LOCAL", "REMOTE",
                                    "LISTENER");
  for (const v1::Connection& c : conns) {
    absl::StrAppendFormat(&out, "%-12s %-7s %-12s %-22s %-22s %s\n", absl::StrCat(c.sandbox(), "/", c.id()),
                          StackName(c.stack()), StateName(c.state()), EndpointText(c.local()),
                          EndpointText(c.remote()), c.listener() ? "yes" : "no");
  }
  return out;
}

std::string SandboxDetails(const v1::Sandbox& s) {
  Lines l;
  const v1::SandboxOptions& o = s.options();
  l.Add("name", s.name());
  l.Add("backend", absl::AsciiStrToLower(Strip("BACKEND_", v1::Backend_Name(o.backend()))));
  l.Add("created", google::protobuf::util::TimeUtil::ToString(s.create_time()));
  l.Add("netns", s.netns().empty() ? "(none: virtual backend)" : s.netns());
  l.Add("kernel address", s.kernel_address().ip());
  l.Add("engine address", s.engine_address().ip());
  l.Add("connections", absl::StrCat(s.connections()));
  l.Add("MSL", absl::StrCat(DurationText(o.msl()), " (TIME-WAIT lasts 2*MSL)"));
  l.Add("min RTO", DurationText(o.min_rto()));
  l.Add("MTU", absl::StrCat(o.mtu()));
  l.Add("events kept", absl::StrCat(o.event_capacity()));
  l.Add("pcap", o.pcap_off() ? "off" : absl::StrCat("up to ", o.pcap_max_bytes(), " octets"));
  l.Add("vnet_hdr", OnOff(o.vnet_hdr()));
  l.Add("delayed ACK", OnOff(!o.no_delayed_ack()));
  l.Add("Nagle", OnOff(!o.no_nagle()));
  l.Add("buffers", absl::StrCat("send ", o.send_buffer(), ", recv ", o.recv_buffer(), " octets"));
  const v1::SandboxCounters& c = s.counters();
  l.Add("TUN datagrams", absl::StrCat("in ", c.tun_datagrams_in(), ", out ", c.tun_datagrams_out(), ", write errors ",
                                      c.tun_write_errors()));
  l.Add("loopback", absl::StrCat(c.loopback_datagrams(), " datagrams"));
  l.Add("pcap counters", absl::StrCat(c.pcap_packets(), " packets, ", c.pcap_bytes(), " octets, ", c.pcap_dropped(),
                                      " dropped"));
  l.Add("events", absl::StrCat(c.events(), " (last sequence number)"));
  return l.Take();
}

std::string SandboxesTable(const google::protobuf::RepeatedPtrField<v1::Sandbox>& sandboxes) {
  std::string out = absl::StrFormat("%-14s %-8s %-22s %-6s %-8s %s\n", "NAME", "BACKEND", "NETNS", "CONNS", "EVENTS",
                                    "CREATED");
  for (const v1::Sandbox& s : sandboxes) {
    absl::StrAppendFormat(&out, "%-14s %-8s %-22s %-6d %-8d %s\n", s.name(),
                          absl::AsciiStrToLower(Strip("BACKEND_", v1::Backend_Name(s.options().backend()))),
                          s.netns().empty() ? "-" : s.netns(), s.connections(), s.counters().events(),
                          google::protobuf::util::TimeUtil::ToString(s.create_time()));
  }
  return out;
}

}  // namespace tcplab::cli
