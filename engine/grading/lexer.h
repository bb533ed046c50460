// The tokenizer under the grading-script parser. Internal to engine/grading.
//
// Scripts are line-oriented (one event per line), so end of line is a token. Comments (// and
// /* */) and blanks are skipped between tokens; a block comment spanning lines does not end
// the line it starts on.
//
// A few parts of a line are not made of tokens: packet flags ("S." would otherwise lex as a
// word and a dot, "." alone as punctuation), an option's value, and the free text of a
// syscall's note "(Operation now in progress)". The parser reads those with Raw*().
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/grading/script.h"

namespace tcplab::grading::internal {

enum class TokenKind {
  kEnd,          // end of the text
  kNewline,      // end of a line
  kNumber,       // 12, 0.100, .1 (decimal; a fraction only where a digit follows the dot)
  kHex,          // 0x802
  kWord,         // [A-Za-z_][A-Za-z0-9_]*
  kString,       // "..." (text keeps the quotes and escapes)
  kEllipsis,     // ...
  kOptionStart,  // -- at the start of an option
  kBacktick,     // ` : a packetdrill shell command
  kCodeStart,    // %{ : a packetdrill Python block
  kPunct,        // any other single byte: + * ~ ( ) [ ] { } , = < > : | - . ...
  kInvalid,      // a lexical error; `error` says what
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  absl::string_view text;  // points into the script
  SourceLoc loc;
  size_t offset = 0;  // of text's first byte in the script
  std::string error;  // kInvalid only: "unterminated string, expected a closing '\"'"

  bool Is(char punct) const {
    return kind == TokenKind::kPunct && text.size() == 1 && text[0] == punct;
  }
  bool IsWord(absl::string_view w) const { return kind == TokenKind::kWord && text == w; }
  bool EndsLine() const { return kind == TokenKind::kNewline || kind == TokenKind::kEnd; }
  size_t end_offset() const { return offset + text.size(); }
};

// How a token reads in "got X": 'acc', '<', end of line, '\x01'.
std::string Describe(const Token& token);

class Lexer {
 public:
  explicit Lexer(absl::string_view text) : text_(text) {}

  // The next token, without consuming it. Re-lexes on every call; tokens are short.
  Token Peek() const { return Lex(SkipBlanks(pos_)).token; }
  Token Next();

  // Raw reads from just after the blanks at the current position, on the current line.
  // The run of bytes for which `in_run(rest)` is true (possibly empty), consumed; `rest` is the
  // text from the byte in question on, so a run can stop before a two-byte "//".
  template <typename Pred>
  Token RawRun(Pred in_run);
  // Everything up to the ')' that balances an already-consumed '(' on this line, consumed
  // together with that ')'. Returns false (consuming nothing) if the line ends first.
  bool RawUntilCloseParen(absl::string_view& inner);

  absl::string_view text() const { return text_; }

 private:
  struct Pos {
    size_t offset = 0;
    int line = 1;
    size_t line_start = 0;  // offset of the line's first byte
  };
  struct Lexed {
    Token token;
    Pos after;
  };

  // Skips spaces, tabs, '\r' and comments, but not newlines. Stops at an unterminated "/*",
  // which Lex then reports.
  Pos SkipBlanks(Pos p) const;
  Lexed Lex(Pos p) const;
  Lexed LexNumber(Pos p) const;
  Lexed LexString(Pos p) const;
  Token Make(TokenKind kind, Pos p, size_t len) const;
  char At(size_t offset) const { return offset < text_.size() ? text_[offset] : '\0'; }

  absl::string_view text_;
  Pos pos_;
};

template <typename Pred>
Token Lexer::RawRun(Pred in_run) {
  Pos p = SkipBlanks(pos_);
  size_t end = p.offset;
  while (end < text_.size() && text_[end] != '\n' && in_run(text_.substr(end))) ++end;
  Token t = Make(TokenKind::kWord, p, end - p.offset);
  pos_ = p;
  pos_.offset = end;
  return t;
}

}  // namespace tcplab::grading::internal
