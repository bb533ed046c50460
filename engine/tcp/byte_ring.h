// A fixed-capacity byte FIFO: the send buffer (unacknowledged + unsent data) and the receive
// buffer (in-order data the application has not read yet).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace tcplab::tcp {

class ByteRing {
 public:
  explicit ByteRing(size_t capacity) : cap_(capacity) {}

  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  size_t free() const { return cap_ - size_; }
  bool empty() const { return size_ == 0; }
  // Bytes actually allocated: storage is allocated on first write, so idle connections are small.
  size_t allocated() const { return buf_ ? cap_ : 0; }

  // Appends as much of `data` as fits; returns how much.
  size_t Push(std::span<const uint8_t> data) {
    size_t n = std::min(data.size(), free());
    if (n == 0) return 0;
    if (!buf_) buf_ = std::make_unique<uint8_t[]>(cap_);
    size_t tail = (head_ + size_) % cap_;
    size_t first = std::min(n, cap_ - tail);
    std::memcpy(&buf_[tail], data.data(), first);
    std::memcpy(&buf_[0], data.data() + first, n - first);
    size_ += n;
    return n;
  }

  // `len` bytes starting `offset` bytes past the front, contiguous: either a view into the ring
  // or, only when the range wraps, a copy in `scratch`.
  std::span<const uint8_t> Peek(size_t offset, size_t len, std::vector<uint8_t>& scratch) const {
    len = std::min(len, size_ - std::min(offset, size_));
    if (len == 0) return {};
    size_t start = (head_ + offset) % cap_;
    if (start + len <= cap_) return {&buf_[start], len};
    size_t first = cap_ - start;
    if (scratch.size() < len) scratch.resize(len);
    std::memcpy(scratch.data(), &buf_[start], first);
    std::memcpy(scratch.data() + first, &buf_[0], len - first);
    return {scratch.data(), len};
  }

  // Copies out and removes up to out.size() bytes from the front.
  size_t Read(std::span<uint8_t> out) {
    size_t n = std::min(out.size(), size_);
    if (n == 0) return 0;
    size_t first = std::min(n, cap_ - head_);
    std::memcpy(out.data(), &buf_[head_], first);
    std::memcpy(out.data() + first, &buf_[0], n - first);
    Pop(n);
    return n;
  }

  void Pop(size_t n) {
    n = std::min(n, size_);
    head_ = (head_ + n) % cap_;
    size_ -= n;
    if (size_ == 0) head_ = 0;
  }

 private:
  std::unique_ptr<uint8_t[]> buf_;
  size_t cap_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace tcplab::tcp
