// Cost of the wire codec per segment: the engine's budget is 1M segments/s through
// Serialize + Parse on one core, i.e. well under 1 µs for both together.
//
// Two segment shapes, the common ones on a bulk transfer:
//   - a 1460-octet data segment with timestamps (RFC 7323), the sender's side;
//   - a pure ACK with timestamps and 2 SACK blocks (RFC 2018), the receiver's side.
// Each is measured through the hand-written default codec and the libtins reference codec.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "engine/wire/codec.h"
#include "engine/wire/segment.h"

namespace tcplab::wire {
namespace {

const std::vector<uint8_t>& Payload1460() {
  static const std::vector<uint8_t> payload = [] {
    std::vector<uint8_t> p(1460);
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(i * 7);
    return p;
  }();
  return payload;
}

SegmentRepr DataSegment() {
  SegmentRepr s;
  s.src = Endpoint{Ipv4::Of(198, 18, 0, 2), 40000};
  s.dst = Endpoint{Ipv4::Of(198, 18, 0, 1), 80};
  s.seq = SeqNum(1000001);
  s.ack = SeqNum(2000001);
  s.flags = kAck | kPsh;
  s.window = 502;
  s.options.timestamps = Timestamps{123456, 654321};
  s.payload = Payload1460();
  return s;
}

SegmentRepr SackAck() {
  SegmentRepr s;
  s.src = Endpoint{Ipv4::Of(198, 18, 0, 1), 80};
  s.dst = Endpoint{Ipv4::Of(198, 18, 0, 2), 40000};
  s.seq = SeqNum(2000001);
  s.ack = SeqNum(1000001);
  s.flags = kAck;
  s.window = 65535;
  s.options.timestamps = Timestamps{654321, 123456};
  s.options.sack[0] = SackBlock{SeqNum(1002921), SeqNum(1004381)};
  s.options.sack[1] = SackBlock{SeqNum(1005841), SeqNum(1007301)};
  s.options.sack_count = 2;
  return s;
}

using SerializeFn = void (*)(const SegmentRepr&, std::vector<uint8_t>&);
using ParseFn = absl::StatusOr<SegmentRepr> (*)(std::span<const uint8_t>, bool);

void RunSerialize(benchmark::State& state, SegmentRepr seg, SerializeFn fn) {
  std::vector<uint8_t> out;
  for (auto _ : state) {
    fn(seg, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}

void RunParse(benchmark::State& state, SegmentRepr seg, ParseFn fn) {
  std::vector<uint8_t> bytes;
  Serialize(seg, bytes);
  for (auto _ : state) {
    absl::StatusOr<SegmentRepr> r = fn(bytes, true);
    benchmark::DoNotOptimize(r);
    if (!r.ok()) state.SkipWithError("parse failed");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

// What the engine does per segment: build one, then read it back.
void RunRoundTrip(benchmark::State& state, SegmentRepr seg, SerializeFn ser, ParseFn parse) {
  std::vector<uint8_t> out;
  for (auto _ : state) {
    ser(seg, out);
    absl::StatusOr<SegmentRepr> r = parse(out, true);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Serialize_Data1460Ts(benchmark::State& s) { RunSerialize(s, DataSegment(), Serialize); }
void BM_Serialize_SackAck(benchmark::State& s) { RunSerialize(s, SackAck(), Serialize); }
void BM_Parse_Data1460Ts(benchmark::State& s) { RunParse(s, DataSegment(), Parse); }
void BM_Parse_SackAck(benchmark::State& s) { RunParse(s, SackAck(), Parse); }
void BM_RoundTrip_Data1460Ts(benchmark::State& s) {
  RunRoundTrip(s, DataSegment(), Serialize, Parse);
}

void BM_SerializeWithLibtins_Data1460Ts(benchmark::State& s) {
  RunSerialize(s, DataSegment(), SerializeWithLibtins);
}
void BM_SerializeWithLibtins_SackAck(benchmark::State& s) {
  RunSerialize(s, SackAck(), SerializeWithLibtins);
}
void BM_ParseWithLibtins_Data1460Ts(benchmark::State& s) {
  RunParse(s, DataSegment(), ParseWithLibtins);
}
void BM_ParseWithLibtins_SackAck(benchmark::State& s) { RunParse(s, SackAck(), ParseWithLibtins); }
void BM_RoundTripWithLibtins_Data1460Ts(benchmark::State& s) {
  RunRoundTrip(s, DataSegment(), SerializeWithLibtins, ParseWithLibtins);
}

// The checksum alone: most of the per-octet cost of both Serialize and Parse.
void BM_TcpChecksum_1480(benchmark::State& state) {
  std::vector<uint8_t> bytes;
  Serialize(DataSegment(), bytes);
  const std::span<const uint8_t> tcp(bytes.data() + 20, bytes.size() - 20);
  for (auto _ : state) {
    benchmark::DoNotOptimize(TcpChecksum(Ipv4::Of(198, 18, 0, 2), Ipv4::Of(198, 18, 0, 1), tcp));
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(tcp.size()));
}

BENCHMARK(BM_Serialize_Data1460Ts);
BENCHMARK(BM_Serialize_SackAck);
BENCHMARK(BM_Parse_Data1460Ts);
BENCHMARK(BM_Parse_SackAck);
BENCHMARK(BM_RoundTrip_Data1460Ts);
BENCHMARK(BM_SerializeWithLibtins_Data1460Ts);
BENCHMARK(BM_SerializeWithLibtins_SackAck);
BENCHMARK(BM_ParseWithLibtins_Data1460Ts);
BENCHMARK(BM_ParseWithLibtins_SackAck);
BENCHMARK(BM_RoundTripWithLibtins_Data1460Ts);
BENCHMARK(BM_TcpChecksum_1480);

}  // namespace
}  // namespace tcplab::wire

BENCHMARK_MAIN();
