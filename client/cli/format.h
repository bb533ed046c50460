// Text and JSON output of the CLI. Human output spells states the RFC's way (SYN-SENT,
// TIME-WAIT); JSON is the proto mapping with snake_case names and zeros printed, one object
// per line, so scripts can rely on every field being there.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/repeated_field.h"
#include "tcplab/v1/connection.pb.h"
#include "tcplab/v1/events.pb.h"
#include "tcplab/v1/sandbox.pb.h"

namespace tcplab::cli {

namespace v1 = ::tcplab::v1;

// One line of JSON (no trailing newline).
std::string ToJson(const google::protobuf::Message& m);
// ToJson(m) and a newline on stdout.
void PrintJson(const google::protobuf::Message& m);

// {"ok":true}: the answer of commands whose response is empty (rm, impair).
void PrintOk();

google::protobuf::Duration DurationToProto(absl::Duration d);

// TCP_STATE_FIN_WAIT_1 -> "FIN-WAIT-1".
std::string StateName(v1::TcpState s);
std::string StackName(v1::Stack s);      // "engine", "kernel"
std::string VerdictName(v1::Verdict v);  // "ACCEPTED", "BAD_CHECKSUM"
std::string EndpointText(const v1::Endpoint& e);  // "198.18.0.1:80"
std::string DurationText(const google::protobuf::Duration& d);  // "1.5ms"
std::string SinceStartText(const google::protobuf::Duration& d);  // "12.345678s"

// True for verdicts that mean the receiver threw the segment away (drawn as a drop).
bool IsDrop(v1::Verdict v);

// watch: "    12   0.012345s engine  lab/1  OUT 198.18.0.2:32768 > ... [S] seq 0 ... SENT"
std::string EventLine(const std::string& sandbox, const v1::Event& e);
// The body alone: segment summary + verdict, "STATE A -> B (cause)", ...
std::string EventBody(const v1::Event& e);

// show CONN: aligned "key: value" lines, ending in a newline.
std::string ConnectionDetails(const v1::Connection& c);
// conns NAME: a table with a header line.
std::string ConnectionsTable(const google::protobuf::RepeatedPtrField<v1::Connection>& conns);
// sandbox show / sandbox ls.
std::string SandboxDetails(const v1::Sandbox& s);
std::string SandboxesTable(const google::protobuf::RepeatedPtrField<v1::Sandbox>& sandboxes);

}  // namespace tcplab::cli
