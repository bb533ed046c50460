#include "engine/link/stack_pair.h"

#include <algorithm>

namespace tcplab::link {

StackPair::StackPair(stack::StackConfig a, stack::StackConfig b, tcp::EventSink* sink_a,
                     tcp::EventSink* sink_b) {
  a_ = std::make_unique<stack::Stack>(
      std::move(a), [this](std::span<const uint8_t> d) { link_.Send(Side::kA, d, now_); }, sink_a);
  b_ = std::make_unique<stack::Stack>(
      std::move(b), [this](std::span<const uint8_t> d) { link_.Send(Side::kB, d, now_); }, sink_b);
}

Instant StackPair::NextEvent() const {
  return std::min({link_.NextDeadline(), a_->NextDeadline(), b_->NextDeadline()});
}

void StackPair::StepTo(Instant t) {
  now_ = std::max(now_, t);
  link_.Poll(now_, [this](Side to, std::span<const uint8_t> d, Instant) {
    (to == Side::kA ? *a_ : *b_).OnDatagram(d, now_);
  });
  if (a_->NextDeadline() <= now_) a_->OnTick(now_);
  if (b_->NextDeadline() <= now_) b_->OnTick(now_);
}

void StackPair::Settle() {
  while (NextEvent() <= now_) StepTo(now_);
}

void StackPair::Advance(Duration d) {
  Instant end = now_ + d;
  for (Instant t = NextEvent(); t <= end; t = NextEvent()) StepTo(t);
  now_ = end;
  Settle();
}

bool StackPair::RunUntil(const std::function<bool()>& done, Duration limit) {
  Instant end = now_ + limit;
  Settle();
  while (!done()) {
    Instant t = NextEvent();
    if (t > end) {
      now_ = end;
      return done();
    }
    StepTo(t);
  }
  return true;
}

}  // namespace tcplab::link
