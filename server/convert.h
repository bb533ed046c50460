// Translation between the public API (proto/tcplab/v1) and the engine's types, with the
// validation of every field a client can get wrong. Errors are INVALID_ARGUMENT naming the
// field ("remote.port must be 1..65535, got 70000").
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/link/impairment.h"
#include "engine/sandbox/event_log.h"
#include "engine/sandbox/sandbox.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "tcplab/v1/common.pb.h"
#include "tcplab/v1/connection.pb.h"
#include "tcplab/v1/events.pb.h"
#include "tcplab/v1/sandbox.pb.h"

namespace tcplab::server {

namespace pb = ::tcplab::v1;

// Endpoints. `field` names the message field in errors ("local", "remote").
enum class PortRule { kRequired, kOptional };
absl::StatusOr<wire::Endpoint> FromProto(const pb::Endpoint& ep, absl::string_view field, bool ip_required,
                                         PortRule port);
absl::StatusOr<wire::Ipv4> ParseIpv4(absl::string_view text, absl::string_view field);
pb::Endpoint ToProto(wire::Endpoint ep);

// Stacks: STACK_UNSPECIFIED is an error where a stack is required.
absl::StatusOr<sandbox::StackKind> FromProto(pb::Stack s, absl::string_view field);
pb::Stack ToProto(sandbox::StackKind k);
pb::TcpState ToProto(tcp::TcpState s);
// "TIME-WAIT" for TCP_STATE_TIME_WAIT (the RFC's spelling, as the engine prints it).
const char* StateName(pb::TcpState s);
const char* StackName(pb::Stack s);  // "ENGINE", "KERNEL"

// Durations: negative ones are refused, naming the field.
absl::StatusOr<Duration> FromProto(const google::protobuf::Duration& d, absl::string_view field);
google::protobuf::Duration ToProto(Duration d);
google::protobuf::Timestamp ToProto(absl::Time t);

absl::StatusOr<link::Impairment> FromProto(const pb::Impairment& imp);

pb::Connection ToProto(const sandbox::ConnInfo& info, const std::string& sandbox);

// Events. `out` is cleared first. Conversion is total: every engine event has a proto form.
void ToProto(const sandbox::Event& ev, pb::Event* out);
pb::EventKind KindOf(const sandbox::Event& ev);

// The parts of a SegmentEvent's proto form, shared with the stream's direct encoder
// (event_codec.h), which must produce the very same bytes. The Write functions write text at
// `p` (at most the kMax... octets) and return the end.
pb::Verdict ToProto(tcp::Verdict v);
struct RelativeNumbers {
  uint32_t seq = 0, ack = 0;
};
RelativeNumbers Relative(const tcp::SegmentEvent& e);  // relative_seq and relative_ack
inline constexpr size_t kMaxIpText = 15;                // "255.255.255.255"
// "255.255.255.255:65535 > 255.255.255.255:65535 [SFRPUEW.] seq 4294967295 ack 4294967295
// win 65535 len 4294967295" is 111.
inline constexpr size_t kMaxSummaryText = 112;
char* WriteFlagsText(uint8_t flags, char* p);  // flags_text: "S.", "F.", "none"; at most 8
char* WriteIp(wire::Ipv4 ip, char* p);         // "198.18.0.1"
char* WriteSummary(const tcp::SegmentEvent& e, RelativeNumbers rel, char* p);

}  // namespace tcplab::server
