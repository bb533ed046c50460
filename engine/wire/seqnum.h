// TCP sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 §3.4).
#pragma once

#include <cstdint>
#include <ostream>

namespace tcplab::wire {

class SeqNum {
 public:
  constexpr SeqNum() = default;
  constexpr explicit SeqNum(uint32_t v) : v_(v) {}

  constexpr uint32_t raw() const { return v_; }

  // Arithmetic wraps modulo 2^32.
  constexpr SeqNum operator+(uint32_t n) const { return SeqNum(v_ + n); }
  constexpr SeqNum operator-(uint32_t n) const { return SeqNum(v_ - n); }
  constexpr SeqNum& operator+=(uint32_t n) { v_ += n; return *this; }
  // Distance from `o` to this, as a signed number: positive when this is after `o`.
  constexpr int32_t operator-(SeqNum o) const { return static_cast<int32_t>(v_ - o.v_); }

  // "a < b" means a comes before b, for numbers less than 2^31 apart (RFC 1982).
  friend constexpr bool operator==(SeqNum a, SeqNum b) { return a.v_ == b.v_; }
  friend constexpr bool operator<(SeqNum a, SeqNum b) { return (a - b) < 0; }
  friend constexpr bool operator>(SeqNum a, SeqNum b) { return (a - b) > 0; }
  friend constexpr bool operator<=(SeqNum a, SeqNum b) { return (a - b) <= 0; }
  friend constexpr bool operator>=(SeqNum a, SeqNum b) { return (a - b) >= 0; }

  // first <= this < first + size, modulo 2^32. An empty window holds nothing.
  constexpr bool InWindow(SeqNum first, uint32_t size) const {
    return static_cast<uint32_t>(v_ - first.v_) < size;
  }

  friend std::ostream& operator<<(std::ostream& os, SeqNum s) { return os << s.v_; }

 private:
  uint32_t v_ = 0;
};

constexpr SeqNum Max(SeqNum a, SeqNum b) { return a < b ? b : a; }
constexpr SeqNum Min(SeqNum a, SeqNum b) { return a < b ? a : b; }

// The segment acceptability test of RFC 9293 §3.10.7.4 (the four cases of the table):
//   len = 0, wnd = 0: SEG.SEQ = RCV.NXT
//   len = 0, wnd > 0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
//   len > 0, wnd = 0: not acceptable
//   len > 0, wnd > 0: the first or the last octet lies in the window
// `seg_len` counts SYN and FIN as one octet each.
constexpr bool Acceptable(SeqNum seg_seq, uint32_t seg_len, SeqNum rcv_nxt, uint32_t rcv_wnd) {
  if (seg_len == 0) {
    return rcv_wnd == 0 ? seg_seq == rcv_nxt : seg_seq.InWindow(rcv_nxt, rcv_wnd);
  }
  if (rcv_wnd == 0) return false;
  return seg_seq.InWindow(rcv_nxt, rcv_wnd) || (seg_seq + (seg_len - 1)).InWindow(rcv_nxt, rcv_wnd);
}

}  // namespace tcplab::wire
