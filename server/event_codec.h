// The stream's encoding of events: each event becomes one WatchEventsResponse.events entry
// (tag, length, Event), so that a response is the concatenation of entries.
//
// Segment events, nearly all of a busy sandbox's events, are written straight from the
// engine's struct in protobuf's wire format, in field order, as the generated serializer
// would write them: building a v1::Event allocates a dozen sub-objects and strings per event,
// which made conversion the largest cost of watching. The other kinds, rare, go through
// ToProto. Tests hold the two paths to the same bytes (tests/server/event_codec_test.cc).
#pragma once

#include <string>

#include "engine/sandbox/event_log.h"
#include "server/convert.h"
#include "tcplab/v1/events.pb.h"

namespace tcplab::server {

class EventEncoder {
 public:
  // Appends `ev`'s entry to `out`.
  void AppendEntry(const sandbox::Event& ev, std::string* out);
  // Appends the entry of an event already in proto form (a Gap, say).
  static void AppendEntry(const v1::Event& ev, std::string* out);

  // The worst case of a segment event's entry: every field at its largest (varints of 10
  // octets for 64-bit values, 5 for 32-bit ones, the longest texts, four SACK blocks).
  static constexpr size_t kMaxSegmentEntry = 3 + 11 + 25 + 25 + 2 + 11 + 3 +  // entry, Event's fields
                                             2 + 2 * (2 + 2 + kMaxIpText + 4) +  // direction, src, dst
                                             4 * 6 + 3 + 2 + 8 + 3 * 4 +  // seq .. flags_text .. ttl
                                             2 + 4 + 2 + 2 + 2 + 2 + 12 + 4 * (2 + 12) +  // options
                                             6 + 2 + 16 + 3 + 3 + 2 * 7 + 3 + kMaxSummaryText;

 private:
  v1::Event proto_;  // for the other kinds; reused
};

}  // namespace tcplab::server
