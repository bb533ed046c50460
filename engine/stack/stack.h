// Stack: many TCBs behind one IP address space. Demultiplexes segments by 4-tuple, answers
// for closed ports, runs listeners with their backlogs, picks ISNs (RFC 6528) and ephemeral
// ports. Deterministic like the TCBs: time and the ISN secret come in from outside.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/stack/isn.h"
#include "engine/tcp/clock.h"
#include "engine/tcp/config.h"
#include "engine/tcp/events.h"
#include "engine/tcp/tcb.h"
#include "engine/wire/segment.h"

namespace tcplab::stack {

using tcp::ConnId;

struct StackConfig {
  tcp::TcpConfig tcp;
  IsnSecret isn_secret{};
  // RFC 6335 §6 dynamic range would be 49152-65535; this is Linux's default range.
  uint16_t ephemeral_first = 32768;
  uint16_t ephemeral_last = 60999;
  int default_backlog = 128;
  // Parse and serialize with the libtins reference codec instead of the hand-written one
  // (same results, about four times the cost per segment; see wire/codec.h).
  bool libtins_codec = false;
  // Where connection ids come from; by default 1, 2, 3... A sandbox shares one allocator
  // between its engine and its kernel peer so that ids are unique across both.
  std::function<ConnId()> id_allocator;
};

struct StackCounters {
  uint64_t datagrams_in = 0;
  uint64_t datagrams_out = 0;
  uint64_t malformed = 0;
  uint64_t bad_checksums = 0;
  uint64_t no_connection = 0;  // segments for no connection or listener
  uint64_t resets_sent = 0;    // RSTs for those
  uint64_t listen_overflows = 0;
};

class Stack : private tcp::EventSink {
 public:
  using Output = std::function<void(std::span<const uint8_t> datagram)>;

  // `sink` (may be null) receives every event; it must outlive the stack. It may read the
  // stack (Snapshot, Find, IsListener) but not call it: a connection or listener that changes
  // to CLOSED is still there while its StateEvent is delivered, so the sink can keep its end.
  Stack(StackConfig cfg, Output output, tcp::EventSink* sink = nullptr);
  ~Stack() override;

  // Input: an IPv4 datagram from the link, or an already parsed segment.
  void OnDatagram(std::span<const uint8_t> datagram, Instant now);
  void OnSegment(const wire::SegmentRepr& seg, Instant now);
  void OnTick(Instant now);
  Instant NextDeadline() const;

  // User calls. Errors name the id, the field or the TCP state.
  absl::StatusOr<ConnId> Listen(wire::Endpoint local, Instant now, int backlog = 0);
  absl::StatusOr<ConnId> Accept(ConnId listener);
  // local.port 0 picks an ephemeral port.
  absl::StatusOr<ConnId> Connect(wire::Endpoint local, wire::Endpoint remote, Instant now);
  absl::StatusOr<size_t> Send(ConnId id, std::span<const uint8_t> data, Instant now);
  absl::StatusOr<size_t> Recv(ConnId id, std::span<uint8_t> out, Instant now);
  absl::Status Shutdown(ConnId id, Instant now);
  absl::Status Close(ConnId id, Instant now);
  absl::Status Abort(ConnId id, Instant now);

  absl::StatusOr<tcp::TcbSnapshot> Snapshot(ConnId id) const;
  // The TCB behind an id, or null (also for listeners).
  tcp::Tcb* Find(ConnId id);
  const tcp::Tcb* Find(ConnId id) const;
  bool IsListener(ConnId id) const { return listeners_.contains(id); }
  // Every connection and listener id, in creation order.
  std::vector<ConnId> Ids() const;
  size_t connection_count() const { return conns_.size(); }
  const StackCounters& counters() const { return counters_; }
  const StackConfig& config() const { return cfg_; }

 private:
  struct Tuple {
    wire::Endpoint local, remote;
    friend bool operator==(const Tuple&, const Tuple&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const Tuple& t) {
      return H::combine(std::move(h), t.local.ip.v, t.local.port, t.remote.ip.v, t.remote.port);
    }
  };
  struct EndpointKey {
    wire::Endpoint ep;
    friend bool operator==(const EndpointKey&, const EndpointKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const EndpointKey& k) {
      return H::combine(std::move(h), k.ep.ip.v, k.ep.port);
    }
  };
  struct Conn {
    std::unique_ptr<tcp::Tcb> tcb;
    ConnId listener = 0;  // the listener it came from, until accepted
    bool owned = false;   // the user holds it (connected, or accepted)
    bool in_demux = true;
    Instant filed = kNever;  // deadline of its live entry in timers_; kNever: none
  };
  // (deadline, id) in timers_, earliest first.
  struct TimerEntry {
    Instant deadline;
    ConnId id;
    friend bool operator>(const TimerEntry& a, const TimerEntry& b) {
      return a.deadline != b.deadline ? a.deadline > b.deadline : a.id > b.id;
    }
  };
  struct Listener {
    ConnId id;
    wire::Endpoint local;
    int backlog;
    std::deque<ConnId> accept_queue;  // ESTABLISHED, not yet accepted
    int embryonic = 0;                // in SYN-RECEIVED
  };

  // EventSink: watches the TCBs' state changes, forwards everything to the user's sink.
  void OnSegment(Instant now, const tcp::SegmentEvent& ev) override;
  void OnState(Instant now, const tcp::StateEvent& ev) override;
  void OnTimer(Instant now, const tcp::TimerEvent& ev) override;

  void Demux(const wire::SegmentRepr& seg, Instant now);
  // `min_iss`: when the SYN takes over a 4-tuple in TIME-WAIT, the ISS must exceed the old
  // incarnation's sequence numbers.
  void OnListenSegment(Listener& l, const wire::SegmentRepr& seg, Instant now,
                       std::optional<wire::SeqNum> min_iss = std::nullopt);
  void ReplyToClosedPort(const wire::SegmentRepr& seg, tcp::Verdict verdict, Instant now);
  void ReportUnmatched(const wire::SegmentRepr& seg, tcp::Verdict verdict, Instant now);
  Listener* FindListener(wire::Endpoint local);
  Conn& NewConn(wire::Endpoint local, wire::Endpoint remote, ConnId listener);
  absl::StatusOr<tcp::Tcb*> Lookup(ConnId id);
  void Emit(const wire::SegmentRepr& seg);
  void Reap();
  // Ends every public call that may have called a TCB: Reap(), then files the timers of the
  // TCBs that were called (touched_).
  void Settle();
  void FileTimer(ConnId id, Conn& c);
  void Touch(ConnId id) { touched_.push_back(id); }
  absl::StatusOr<uint16_t> PickEphemeralPort(wire::Endpoint local_ip, wire::Endpoint remote);

  StackConfig cfg_;
  Output output_;
  tcp::EventSink* sink_;
  IsnGenerator isn_;
  ConnId NewId() { return cfg_.id_allocator ? cfg_.id_allocator() : next_id_++; }

  ConnId next_id_ = 1;
  uint16_t next_ephemeral_;
  absl::flat_hash_map<ConnId, Conn> conns_;
  absl::flat_hash_map<Tuple, ConnId> demux_;
  absl::flat_hash_map<ConnId, Listener> listeners_;
  absl::flat_hash_map<EndpointKey, ConnId> listen_by_ep_;
  std::vector<ConnId> to_reap_;
  // Timers of all TCBs, so that NextDeadline and OnTick do not walk every connection (with
  // thousands in TIME-WAIT, that walk was most of the cost of each datagram). A TCB's entry
  // may be early: its deadline moved later (an RTO restarted by an ACK) and the entry stayed,
  // to be re-filed when it reaches the top. An entry whose deadline is not its Conn's `filed`
  // (or whose Conn is gone) is stale and skipped. Invariant after Settle(): every TCB with a
  // timer has an entry at or before its deadline, and the top entry is exact.
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers_;
  std::vector<ConnId> touched_;  // TCBs called since the last Settle()
  std::vector<ConnId> due_;      // OnTick's scratch
  std::vector<uint8_t> out_buf_;
  StackCounters counters_;
};

}  // namespace tcplab::stack
