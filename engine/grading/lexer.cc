#include "engine/grading/lexer.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tcplab::grading::internal {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsWordStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsWordChar(char c) { return IsWordStart(c) || IsDigit(c); }
bool IsPrintable(char c) { return c >= 0x20 && c < 0x7f; }

// Long tokens are cut in messages so that one bad line cannot flood a report.
constexpr size_t kMaxDescribed = 40;

}  // namespace

std::string Describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::kEnd:
    case TokenKind::kNewline:
      return "end of line";
    default:
      break;
  }
  std::string shown;
  for (char c : token.text.substr(0, kMaxDescribed)) {
    if (IsPrintable(c)) {
      shown += c;
    } else {
      shown += absl::StrFormat("\\x%02x", static_cast<unsigned char>(c));
    }
  }
  if (token.text.size() > kMaxDescribed) shown += "...";
  return absl::StrCat("'", shown, "'");
}

Token Lexer::Next() {
  Lexed l = Lex(SkipBlanks(pos_));
  pos_ = l.after;
  return l.token;
}

bool Lexer::RawUntilCloseParen(absl::string_view& inner) {
  const size_t start = pos_.offset;
  int depth = 1;
  for (size_t i = start; i < text_.size() && text_[i] != '\n'; ++i) {
    if (text_[i] == '(') ++depth;
    if (text_[i] == ')' && --depth == 0) {
      inner = text_.substr(start, i - start);
      pos_.offset = i + 1;
      return true;
    }
  }
  return false;
}

Lexer::Pos Lexer::SkipBlanks(Pos p) const {
  while (p.offset < text_.size()) {
    const char c = text_[p.offset];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      ++p.offset;
    } else if (c == '/' && At(p.offset + 1) == '/') {
      // A line comment runs to the newline, which stays: it still ends the line.
      while (p.offset < text_.size() && text_[p.offset] != '\n') ++p.offset;
    } else if (c == '/' && At(p.offset + 1) == '*') {
      const size_t close = text_.find("*/", p.offset + 2);
      if (close == absl::string_view::npos) return p;  // Lex reports it
      for (size_t i = p.offset; i < close; ++i) {
        if (text_[i] == '\n') {
          ++p.line;
          p.line_start = i + 1;
        }
      }
      p.offset = close + 2;
    } else {
      break;
    }
  }
  return p;
}

Token Lexer::Make(TokenKind kind, Pos p, size_t len) const {
  Token t;
  t.kind = kind;
  t.text = text_.substr(p.offset, len);
  t.loc = SourceLoc{p.line, static_cast<int>(p.offset - p.line_start) + 1};
  t.offset = p.offset;
  return t;
}

Lexer::Lexed Lexer::Lex(Pos p) const {
  const size_t o = p.offset;
  auto fixed = [&](TokenKind kind, size_t len) {
    Pos after = p;
    after.offset += len;
    return Lexed{Make(kind, p, len), after};
  };
  if (o >= text_.size()) return fixed(TokenKind::kEnd, 0);
  const char c = text_[o];
  if (c == '\n') {
    Lexed l = fixed(TokenKind::kNewline, 1);
    ++l.after.line;
    l.after.line_start = o + 1;
    return l;
  }
  if (c == '/' && At(o + 1) == '*') {
    Lexed l = fixed(TokenKind::kInvalid, 2);
    l.token.error = "unterminated comment, expected '*/' before the end of the file";
    return l;
  }
  if (IsDigit(c) || (c == '.' && IsDigit(At(o + 1)))) return LexNumber(p);
  if (IsWordStart(c)) {
    size_t end = o + 1;
    while (IsWordChar(At(end))) ++end;
    return fixed(TokenKind::kWord, end - o);
  }
  if (c == '"') return LexString(p);
  if (absl::StartsWith(text_.substr(o), "...")) return fixed(TokenKind::kEllipsis, 3);
  if (absl::StartsWith(text_.substr(o), "--")) return fixed(TokenKind::kOptionStart, 2);
  if (absl::StartsWith(text_.substr(o), "%{")) return fixed(TokenKind::kCodeStart, 2);
  if (c == '`') return fixed(TokenKind::kBacktick, 1);
  return fixed(TokenKind::kPunct, 1);
}

// 12, 0.100 and .1 are numbers; "0...0.2" is 0, ..., 0.2 because a fraction needs a digit
// right after its dot. Letters right after a number start a separate token, which the parser
// then reports as unexpected.
Lexer::Lexed Lexer::LexNumber(Pos p) const {
  size_t end = p.offset;
  TokenKind kind = TokenKind::kNumber;
  if (At(end) == '0' && (At(end + 1) == 'x' || At(end + 1) == 'X') && IsHexDigit(At(end + 2))) {
    kind = TokenKind::kHex;
    end += 2;
    while (IsHexDigit(At(end))) ++end;
  } else {
    while (IsDigit(At(end))) ++end;
    if (At(end) == '.' && IsDigit(At(end + 1))) {
      ++end;
      while (IsDigit(At(end))) ++end;
    }
  }
  Pos after = p;
  after.offset = end;
  return Lexed{Make(kind, p, end - p.offset), after};
}

// A string ends at its closing quote on the same line; escapes are checked by the parser,
// which unescapes them.
Lexer::Lexed Lexer::LexString(Pos p) const {
  size_t end = p.offset + 1;
  while (end < text_.size() && text_[end] != '\n') {
    if (text_[end] == '\\' && end + 1 < text_.size() && text_[end + 1] != '\n') {
      end += 2;
      continue;
    }
    if (text_[end] == '"') {
      Pos after = p;
      after.offset = end + 1;
      return Lexed{Make(TokenKind::kString, p, end + 1 - p.offset), after};
    }
    ++end;
  }
  Pos after = p;
  after.offset = end;
  Lexed l{Make(TokenKind::kInvalid, p, 1), after};
  l.token.error = "unterminated string, expected a closing '\"'";
  return l;
}

}  // namespace tcplab::grading::internal
