#include "server/event_codec.h"

#include <cstring>

#include "server/convert.h"

namespace tcplab::server {

namespace {

enum WireType : uint32_t { kVarint = 0, kLengthDelimited = 2 };

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes protobuf's wire format at a pointer into a buffer the caller sized for the worst
// case. Fields are written in field order, as the generated serializer does.
class Writer {
 public:
  explicit Writer(char* p) : p_(p) {}
  char* end() const { return p_; }

  void Varint(uint64_t v) {
    while (v >= 0x80) {
      *p_++ = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    *p_++ = static_cast<char>(v);
  }
  void Tag(uint32_t field, WireType type) { Varint((field << 3) | type); }

  // proto3 scalars: a field at its default value is not written. Signed values are written
  // as their 64-bit two's complement (int32 and int64 alike).
  void Uint(uint32_t field, uint64_t v) {
    if (v == 0) return;
    Tag(field, kVarint);
    Varint(v);
  }
  void Int(uint32_t field, int64_t v) { Uint(field, static_cast<uint64_t>(v)); }
  void Bytes(uint32_t field, const void* data, size_t n) {
    if (n == 0) return;
    Tag(field, kLengthDelimited);
    Varint(n);
    std::memcpy(p_, data, n);
    p_ += n;
  }

  // A sub-message (or text written in place): Begin leaves `reserve` octets for its length,
  // End writes the length there, moving the body when its varint needs another size. A set
  // sub-message is written even when empty.
  struct Open {
    char* len;
    size_t reserve;
  };
  Open Begin(uint32_t field, size_t reserve) {
    Tag(field, kLengthDelimited);
    Open o{p_, reserve};
    p_ += reserve;
    return o;
  }
  void End(Open o) {
    char* body = o.len + o.reserve;
    const size_t n = static_cast<size_t>(p_ - body);
    const size_t need = VarintSize(n);
    if (need != o.reserve) {
      std::memmove(o.len + need, body, n);
      p_ = o.len + need + n;
    }
    Writer(o.len).Varint(n);
  }

  // google.protobuf.Duration and Timestamp: seconds = 1, nanos = 2.
  template <typename SecondsNanos>
  void Time(uint32_t field, const SecondsNanos& t) {
    Open o = Begin(field, 1);
    Int(1, t.seconds());
    Int(2, t.nanos());
    End(o);
  }
  void Endpoint(uint32_t field, wire::Endpoint ep) {
    Open o = Begin(field, 1);
    Open ip = Begin(1, 1);  // Endpoint.ip: never empty
    p_ = WriteIp(ep.ip, p_);
    End(ip);
    Uint(2, ep.port);
    End(o);
  }

  char*& p() { return p_; }

 private:
  char* p_;
};

}  // namespace

void EventEncoder::AppendEntry(const v1::Event& ev, std::string* out) {
  const size_t n = ev.ByteSizeLong();
  const size_t at = out->size();
  out->resize(at + 1 + VarintSize(n));
  Writer w(out->data() + at);
  w.Tag(1, kLengthDelimited);  // WatchEventsResponse.events
  w.Varint(n);
  ev.AppendToString(out);
}

void EventEncoder::AppendEntry(const sandbox::Event& ev, std::string* out) {
  const auto* seg = std::get_if<tcp::SegmentEvent>(&ev.body);
  if (seg == nullptr) {  // rare: through the generated code
    ToProto(ev, &proto_);
    AppendEntry(proto_, out);
    return;
  }
  const tcp::SegmentEvent& e = *seg;
  const wire::SegmentRepr& s = e.seg;
  char buf[kMaxSegmentEntry];
  Writer w(buf);
  Writer::Open entry = w.Begin(1, 2);  // WatchEventsResponse.events
  w.Uint(1, ev.seq);
  w.Time(2, ToProto(ev.since_start));
  w.Time(3, ToProto(ev.wall));
  w.Uint(4, ToProto(ev.stack));
  w.Uint(5, e.conn);
  Writer::Open body = w.Begin(10, 2);  // Event.segment
  const RelativeNumbers rel = Relative(e);
  w.Uint(1, e.dir == tcp::Direction::kIn ? v1::SegmentEvent::DIRECTION_IN : v1::SegmentEvent::DIRECTION_OUT);
  w.Endpoint(2, s.src);
  w.Endpoint(3, s.dst);
  w.Uint(4, s.seq.raw());
  w.Uint(5, s.ack.raw());
  w.Uint(6, rel.seq);
  w.Uint(7, rel.ack);
  w.Uint(8, s.flags);
  Writer::Open flags = w.Begin(9, 1);  // never empty
  w.p() = WriteFlagsText(s.flags, w.p());
  w.End(flags);
  w.Uint(10, s.window);
  w.Uint(11, s.urgent);
  w.Uint(12, s.ttl);
  Writer::Open opts = w.Begin(13, 1);  // TcpOptions: always set, as FillSegment does
  if (s.options.mss) w.Uint(1, *s.options.mss);
  if (s.options.window_scale) {
    w.Uint(2, 1);
    w.Uint(3, *s.options.window_scale);
  }
  w.Uint(4, s.options.sack_permitted);
  if (s.options.timestamps) {
    w.Uint(5, 1);
    w.Uint(6, s.options.timestamps->val);
    w.Uint(7, s.options.timestamps->ecr);
  }
  for (int i = 0; i < s.options.sack_count; ++i) {
    Writer::Open block = w.Begin(8, 1);
    w.Uint(1, s.options.sack[i].left.raw());
    w.Uint(2, s.options.sack[i].right.raw());
    w.End(block);
  }
  w.End(opts);
  w.Uint(14, e.payload_len);
  w.Bytes(15, e.preview.data(), e.preview_len);
  w.Uint(16, ToProto(e.verdict));
  w.Uint(17, e.verdict != tcp::Verdict::kBadChecksum);
  w.Uint(18, e.iss.raw());
  w.Uint(19, e.irs.raw());
  Writer::Open summary = w.Begin(20, 1);  // never empty; 1 octet of length (< 128)
  w.p() = WriteSummary(e, rel, w.p());
  w.End(summary);
  w.End(body);
  w.End(entry);
  out->append(buf, w.end());
}

}  // namespace tcplab::server
