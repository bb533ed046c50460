// Out-of-order reassembly (RFC 9293 §3.10.7.4, "seventh, process the segment text"): holds
// segments that arrived ahead of RCV.NXT until the gap before them is filled. Positions are
// 64-bit stream offsets, so sequence-number wrap-around never reaches this class.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

namespace tcplab::tcp {

class Reassembler {
 public:
  struct Range {
    uint64_t begin;  // first octet
    uint64_t end;    // one past the last
  };

  // Stores the part of [offset, offset + data.size()) that lies in [next, limit): `next` is the
  // first octet not yet delivered, `limit` the right edge of the receive window.
  void Insert(uint64_t offset, std::span<const uint8_t> data, uint64_t next, uint64_t limit);

  // Removes and hands to `sink` the bytes that start exactly at `next`, in order. Returns how
  // many octets it delivered. `sink(span)` must take everything it is given.
  template <typename Sink>
  uint64_t DeliverFrom(uint64_t next, Sink&& sink) {
    uint64_t delivered = 0;
    DropBefore(next);
    while (!segs_.empty() && segs_.begin()->first == next) {
      auto node = segs_.extract(segs_.begin());
      sink(std::span<const uint8_t>(node.mapped()));
      next += node.mapped().size();
      delivered += node.mapped().size();
      bytes_ -= node.mapped().size();
    }
    return delivered;
  }

  // Forgets everything that starts before `next` (already delivered by a newer segment).
  void DropBefore(uint64_t next);

  // FIN seen at stream offset `offset` (the octet after the last data octet).
  void SetFin(uint64_t offset) { fin_ = offset; }
  std::optional<uint64_t> fin() const { return fin_; }

  uint64_t bytes() const { return bytes_; }
  bool empty() const { return segs_.empty(); }
  // Contiguous ranges held, in order, merged.
  std::vector<Range> Ranges() const;
  // The range that contains `offset`, if any.
  std::optional<Range> RangeContaining(uint64_t offset) const;

 private:
  std::map<uint64_t, std::vector<uint8_t>> segs_;  // non-overlapping, keyed by first octet
  uint64_t bytes_ = 0;
  std::optional<uint64_t> fin_;
};

}  // namespace tcplab::tcp
