// The classic ladder diagram of TCP textbooks, drawn in the terminal from a sandbox's events:
// one column per endpoint seen in segments (the engine's on the left of a new pair, the
// kernel's on the right), one arrow per segment labelled with its flags, relative seq/ack,
// window and length, and each side's state changes (and notable timers) written under its
// own column.
//
//   198.18.0.2:40000                                      198.18.0.1:80
//        (engine)                                             (kernel)
//           |                                                     |
//       SYN-SENT                                                  |
//           |----------- [S] seq 0 win 64240 len 0 -------------->|
//
// Segments appear in events only from the engine's side: OUT ones it sent, IN ones it
// received. Between two engine connections (the virtual backend) every segment therefore
// appears twice, OUT from the sender and IN at the receiver: the OUT copy is drawn, and the
// IN copy only when the receiver dropped it (then as a mark "x VERDICT" under the receiver).
// A segment the receiver dropped is drawn with an "x" instead of the arrow head.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tcplab/v1/events.pb.h"

namespace tcplab::cli {

namespace v1 = ::tcplab::v1;

class Ladder {
 public:
  struct Options {
    bool color = false;     // ANSI colours (stdout is a terminal)
    std::string kernel_ip;  // endpoints with this address are the kernel's
  };
  // Finds a connection's local endpoint ("ip:port") when the events have not shown it yet
  // (listeners, kernel connections); nullopt when it is unknown or gone.
  using Resolver = std::function<std::optional<std::string>(uint64_t conn)>;

  Ladder(Options opts, Resolver resolve);

  // What a connection's local endpoint is, learnt elsewhere (ListConnections).
  void Learn(uint64_t conn, const std::string& local) { local_of_[conn] = local; }
  // Draws one event; appends zero or more lines to `out`.
  void Add(const v1::Event& e, std::string* out);
  // The end of the stream: draws what still waits for its column.
  void Finish(std::string* out);

  static constexpr int kMargin = 13;  // "   12.345678s"
  static constexpr int kGap = 54;     // between two columns

 private:
  struct Key {
    std::string src, dst;
    uint32_t seq, ack, flags, len;
    bool operator==(const Key&) const = default;
  };

  int Center(size_t column) const { return kMargin + 10 + static_cast<int>(column) * kGap; }
  int ColumnOf(const std::string& endpoint) const;
  int AddColumn(const std::string& endpoint);  // the caller draws the header
  // The column of a non-segment event, or -1 while it is not known.
  int ColumnFor(const v1::Event& e, bool final);
  std::string Blank(const google::protobuf::Duration* t) const;  // margin and bars
  std::string Paint(const std::string& text, const char* code) const;
  void DrawHeader(std::string* out) const;
  void DrawSegment(const v1::Event& e, std::string* out);
  void DrawMark(const v1::Event& e, int column, const std::string& text, const char* color, std::string* out);
  // Draws a non-segment event at `column`; false if it has nothing to show.
  void DrawAt(const v1::Event& e, int column, std::string* out);
  void FlushPending(bool final, std::string* out);

  Options opts_;
  Resolver resolve_;
  std::vector<std::string> columns_;
  std::map<uint64_t, std::string> local_of_;
  std::set<uint64_t> resolved_;       // connections the resolver was asked about
  std::deque<v1::Event> pending_;     // events waiting for their column
  std::deque<Key> drawn_out_;         // recent OUT segments, to recognise their IN copies
};

}  // namespace tcplab::cli
