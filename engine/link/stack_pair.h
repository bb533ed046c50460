// StackPair: two engine stacks joined by a VirtualLink, run in virtual time. What the unit
// tests, the property test, the benchmark and the demo use to make two TCPs talk with no
// network and no privileges.
#pragma once

#include <functional>
#include <memory>

#include "engine/link/virtual_link.h"
#include "engine/stack/stack.h"

namespace tcplab::link {

class StackPair {
 public:
  // Stack A is at 198.18.0.2, stack B at 198.18.0.1 (DESIGN.md's addresses: B plays the
  // part of the kernel side).
  static constexpr wire::Ipv4 kAddrA = wire::Ipv4::Of(198, 18, 0, 2);
  static constexpr wire::Ipv4 kAddrB = wire::Ipv4::Of(198, 18, 0, 1);

  StackPair(stack::StackConfig a, stack::StackConfig b, tcp::EventSink* sink_a = nullptr,
            tcp::EventSink* sink_b = nullptr);

  stack::Stack& a() { return *a_; }
  stack::Stack& b() { return *b_; }
  VirtualLink& link() { return link_; }
  Instant now() const { return now_; }

  // Delivers and ticks everything due now, until nothing more is.
  void Settle();
  // Runs the clock forward by `d`, handling every deadline on the way in order.
  void Advance(Duration d);
  // Runs until `done()` or the clock passes now + limit. Returns done().
  bool RunUntil(const std::function<bool()>& done, Duration limit);

 private:
  Instant NextEvent() const;
  void StepTo(Instant t);

  Instant now_{};
  VirtualLink link_;
  std::unique_ptr<stack::Stack> a_, b_;
};

}  // namespace tcplab::link
