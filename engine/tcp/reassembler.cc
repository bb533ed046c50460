#include "engine/tcp/reassembler.h"

#include <algorithm>

namespace tcplab::tcp {

void Reassembler::Insert(uint64_t offset, std::span<const uint8_t> data, uint64_t next,
                         uint64_t limit) {
  uint64_t begin = std::max(offset, next);
  uint64_t end = std::min(offset + data.size(), limit);
  // Fill only the gaps between what is already stored, so stored pieces never overlap and
  // the first copy of an octet wins (RFC 9293 leaves the choice open; Linux keeps the first).
  while (begin < end) {
    auto it = segs_.upper_bound(begin);
    if (it != segs_.begin()) {
      auto prev = std::prev(it);
      uint64_t prev_end = prev->first + prev->second.size();
      if (prev_end > begin) {
        begin = prev_end;  // already held
        continue;
      }
    }
    uint64_t piece_end = end;
    if (it != segs_.end()) piece_end = std::min(piece_end, it->first);
    if (piece_end > begin) {
      auto src = data.subspan(begin - offset, piece_end - begin);
      segs_.emplace(begin, std::vector<uint8_t>(src.begin(), src.end()));
      bytes_ += piece_end - begin;
    }
    begin = piece_end;
  }
}

void Reassembler::DropBefore(uint64_t next) {
  while (!segs_.empty() && segs_.begin()->first < next) {
    auto node = segs_.extract(segs_.begin());
    uint64_t first = node.key();
    auto& bytes = node.mapped();
    bytes_ -= bytes.size();
    uint64_t end = first + bytes.size();
    if (end > next) {
      std::vector<uint8_t> rest(bytes.begin() + (next - first), bytes.end());
      bytes_ += rest.size();
      segs_.emplace(next, std::move(rest));
      break;
    }
  }
}

std::vector<Reassembler::Range> Reassembler::Ranges() const {
  std::vector<Range> out;
  for (const auto& [first, bytes] : segs_) {
    uint64_t end = first + bytes.size();
    if (!out.empty() && out.back().end == first) {
      out.back().end = end;
    } else {
      out.push_back({first, end});
    }
  }
  return out;
}

std::optional<Reassembler::Range> Reassembler::RangeContaining(uint64_t offset) const {
  for (const Range& r : Ranges()) {
    if (r.begin <= offset && offset < r.end) return r;
  }
  return std::nullopt;
}

}  // namespace tcplab::tcp
