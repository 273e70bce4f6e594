// HTTP/1.x request-head parser: decides as soon as the bytes allow (RFC 9112 grammar, strict
// where we act, any deviation goes to production). Rules and edge cases: docs/classifier.md.
#include "classifier/http.hpp"

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace acmegw::classifier {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view kChallengePrefix = "/.well-known/acme-challenge/";
constexpr std::size_t kMaxToken = 255;  // ACME tokens are 43 base64url chars today
// Longest absolute-form authority we accept: "[" + a 255-byte host + "]:" + 5 port digits.
constexpr std::size_t kMaxAuthority = kMaxHostLen + 8;

// Byte classes, one table lookup per byte on the hot loops.
enum : std::uint8_t {
  kTchar = 1 << 0,       // RFC 9110 tchar: field-name characters
  kTokenChar = 1 << 1,   // ACME token alphabet (base64url): A-Z a-z 0-9 _ -
  kQueryChar = 1 << 2,   // visible ASCII, no SP: what we accept in a query string
  kValueChar = 1 << 3,   // RFC 9110 field-vchar / SP / HTAB (obs-text included)
  kHostChar = 1 << 4,    // reg-name subset we route on: A-Z a-z 0-9 . - _
  kV6Char = 1 << 5,      // IP-literal contents: hex digits, ':' and '.' (embedded IPv4)
  kMethodChar = 1 << 6,  // what registered methods are made of: letters, '-', '_'
};

constexpr std::array<std::uint8_t, 256> make_classes() noexcept {
  std::array<std::uint8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    const bool digit = c >= '0' && c <= '9';
    const bool hex = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    std::uint8_t v = 0;
    if (alpha || digit ||
        "!#$%&'*+-.^_`|~"sv.find(static_cast<char>(c)) != std::string_view::npos) {
      v |= kTchar;
    }
    if (alpha || digit || c == '_' || c == '-') {
      v |= kTokenChar;
    }
    if (c >= 0x21 && c <= 0x7e) {
      v |= kQueryChar;
    }
    if ((c >= 0x20 && c != 0x7f) || c == '\t') {
      v |= kValueChar;
    }
    if (alpha || digit || c == '.' || c == '-' || c == '_') {
      v |= kHostChar;
    }
    if (hex || c == ':' || c == '.') {
      v |= kV6Char;
    }
    if (alpha || c == '-' || c == '_') {
      v |= kMethodChar;
    }
    t[c] = v;
  }
  return t;
}
constexpr std::array<std::uint8_t, 256> kClass = make_classes();

constexpr bool is(std::uint8_t c, std::uint8_t cls) noexcept {
  return (kClass[c] & cls) != 0;
}
constexpr std::uint8_t lower(std::uint8_t c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<std::uint8_t>(c + ('a' - 'A')) : c;
}
std::uint8_t byte_at(std::span<const std::byte> s, std::size_t i) noexcept {
  return std::to_integer<std::uint8_t>(s[i]);
}

// Returns the index of the first byte at or after `i` that is not a field-value byte (a CTL
// other than HTAB, or DEL). Header values are most of a head's bytes, so this checks 8 at a
// time (SWAR "has byte less than" from Bit Twiddling Hacks) and finishes byte by byte.
std::size_t scan_value(std::span<const std::byte> s, std::size_t i) noexcept {
  constexpr std::uint64_t kOnes = 0x0101010101010101;
  constexpr std::uint64_t kHigh = 0x8080808080808080;
  while (s.size() - i >= 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + i, 8);
    const std::uint64_t ctl = (w - kOnes * 0x20) & ~w & kHigh;  // some byte < 0x20
    const std::uint64_t d = w ^ (kOnes * 0x7f);
    const std::uint64_t del = (d - kOnes) & ~d & kHigh;  // some byte == 0x7f
    if ((ctl | del) != 0) {
      break;
    }
    i += 8;
  }
  for (; i < s.size() && is(byte_at(s, i), kValueChar); ++i) {
  }
  return i;
}

// Parses an optional ":port" at s[i..]; port must be 1..65535 with 1..5 digits.
bool parse_port(std::span<const std::byte> s, std::size_t i, std::uint16_t& port) noexcept {
  if (i == s.size()) {
    port = 0;
    return true;
  }
  if (byte_at(s, i) != ':' || s.size() - i - 1 == 0 || s.size() - i - 1 > 5) {
    return false;
  }
  std::uint32_t v = 0;
  for (++i; i < s.size(); ++i) {
    const std::uint8_t c = byte_at(s, i);
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + (c - '0');
  }
  if (v == 0 || v > 65535) {
    return false;
  }
  port = static_cast<std::uint16_t>(v);
  return true;
}

// Parses a Host value or absolute-form authority: `name`, `name:port`, `[v6]` or `[v6]:port`
// (RFC 9110 §7.2 with userinfo and percent-encoding refused). Writes the lower-cased name
// without brackets into `host`. Returns false on any other shape.
bool parse_authority(std::span<const std::byte> s, HostName& host, std::uint16_t& port) noexcept {
  std::size_t i = 0;
  std::size_t len = 0;
  if (!s.empty() && byte_at(s, 0) == '[') {
    for (i = 1; i < s.size() && byte_at(s, i) != ']'; ++i) {
      if (!is(byte_at(s, i), kV6Char) || len == kMaxHostLen) {
        return false;
      }
      host.buf[len++] = static_cast<char>(lower(byte_at(s, i)));
    }
    if (i == s.size() || len == 0) {
      return false;  // no closing bracket, or "[]"
    }
    ++i;
  } else {
    for (; i < s.size() && byte_at(s, i) != ':'; ++i) {
      if (!is(byte_at(s, i), kHostChar) || len == kMaxHostLen) {
        return false;
      }
      host.buf[len++] = static_cast<char>(lower(byte_at(s, i)));
    }
    if (len == 0) {
      return false;
    }
  }
  host.len = static_cast<std::uint8_t>(len);
  return parse_port(s, i, port);
}

// One pass over the request head. Each stage returns true when its part is complete and valid
// and false when `out_` already holds the result (NeedMore or a final verdict).
class HttpParser {
 public:
  HttpParser(std::span<const std::byte> in, Classification& out) noexcept : in_(in), out_(out) {}

  void run() noexcept {
    if (method() && target() && version()) {
      headers();
    }
  }

 private:
  enum class Lit : std::uint8_t { Yes, Short, No };

  [[nodiscard]] bool at_end() const noexcept { return i_ == in_.size(); }
  [[nodiscard]] std::uint8_t cur() const noexcept { return byte_at(in_, i_); }

  bool need_more() noexcept {
    out_.verdict = Verdict::NeedMore;
    out_.reason = Reason::None;
    return false;
  }
  // Final verdict decided by the byte at `at`.
  bool decide(Verdict v, Reason r, std::size_t at) noexcept {
    out_.verdict = v;
    out_.reason = r;
    out_.head_len = at + 1;
    out_.token = {};
    return false;
  }
  bool no_match(Reason r) noexcept { return decide(Verdict::NoMatch, r, i_); }
  bool malformed(std::size_t at) noexcept {
    return decide(Verdict::Invalid, Reason::MalformedHead, at);
  }

  // literal() as one parser step: nullopt when `lit` matched (parsing goes on), else the step's
  // result: NeedMore while the input is a prefix of `lit`, NoMatch(`on_mismatch`) otherwise.
  std::optional<bool> expect(std::string_view lit, Reason on_mismatch, bool fold = false) noexcept {
    switch (literal(lit, fold)) {
      case Lit::Yes:
        return std::nullopt;
      case Lit::Short:
        return need_more();
      case Lit::No:
        return no_match(on_mismatch);
    }
    return no_match(on_mismatch);  // unreachable: every Lit value is handled above
  }

  // Matches `lit` at i_ (ASCII case-insensitively if `fold`); on No, i_ is the mismatching byte.
  Lit literal(std::string_view lit, bool fold = false) noexcept {
    if (!fold && in_.size() - i_ >= lit.size() &&
        std::memcmp(in_.data() + i_, lit.data(), lit.size()) == 0) {
      i_ += lit.size();  // the common case, in one comparison
      return Lit::Yes;
    }
    for (const char ch : lit) {
      if (at_end()) {
        return Lit::Short;
      }
      const std::uint8_t c = fold ? lower(cur()) : cur();
      if (c != static_cast<std::uint8_t>(ch)) {
        return Lit::No;
      }
      ++i_;
    }
    return Lit::Yes;
  }

  // Method: exactly "GET " or "HEAD " (methods are case-sensitive, RFC 9110 §9.1).
  bool method() noexcept {
    if (at_end()) {
      return need_more();
    }
    switch (literal(cur() == 'H' ? "HEAD "sv : "GET "sv)) {
      case Lit::Yes:
        return true;
      case Lit::Short:
        return need_more();
      case Lit::No:
        break;
    }
    // Production from this byte on. The reason looks at the method token seen so far: another
    // method ("POST ", "get ", "VERSION-CONTROL ": letters, '-', '_') is NoMatch; bytes that
    // cannot start a request line (TLS, binary, SSH's "SSH-2.0-...", the HTTP/2 preface's
    // "PRI ", RFC 9113 §3.4) are NotHttp. Only the reason can still change (Method -> NotHttp)
    // while the token is arriving; the decision never does.
    std::size_t j = 0;
    while (j < in_.size() && is(byte_at(in_, j), kMethodChar)) {
      ++j;
    }
    const bool preface =
        j == 3 && byte_at(in_, 0) == 'P' && byte_at(in_, 1) == 'R' && byte_at(in_, 2) == 'I';
    const bool other_method = j > 0 && (j == in_.size() || (byte_at(in_, j) == ' ' && !preface));
    return other_method ? no_match(Reason::Method) : decide(Verdict::Invalid, Reason::NotHttp, i_);
  }

  // request-target: origin-form "/..." or absolute-form "http://authority/..." (RFC 9112 §3.2).
  bool target() noexcept {
    if (at_end()) {
      return need_more();
    }
    if (cur() != '/') {
      if (const auto stop = expect("http://", Reason::Path, true)) {
        return *stop;
      }
      const std::size_t start = i_;
      for (; !at_end() && cur() != '/'; ++i_) {
        const std::uint8_t c = cur();
        if (!(is(c, kHostChar) || c == ':' || c == '[' || c == ']') ||
            i_ - start == kMaxAuthority) {
          return no_match(Reason::Path);  // userinfo, %-escapes, empty path, or too long
        }
      }
      if (at_end()) {
        return need_more();
      }
      if (!parse_authority(in_.subspan(start, i_ - start), out_.host, out_.host_port)) {
        return no_match(Reason::Path);
      }
      absolute_form_ = true;
    }
    if (const auto stop = expect(kChallengePrefix, Reason::Path)) {
      return *stop;
    }
    const std::size_t start = i_;
    for (; !at_end() && is(cur(), kTokenChar); ++i_) {
      if (i_ - start == kMaxToken) {
        return no_match(Reason::Token);
      }
    }
    if (at_end()) {
      return need_more();
    }
    const std::uint8_t end = cur();
    if (i_ == start || (end != ' ' && end != '?' && end != '\r' && end != '\n')) {
      return no_match(Reason::Token);  // empty, or '.', '%', '/', ... in the token
    }
    token_ = in_.subspan(start, i_ - start);
    if (end == '?') {  // the query is allowed and ignored
      for (++i_; !at_end() && is(cur(), kQueryChar); ++i_) {
      }
      if (at_end()) {
        return need_more();
      }
    }
    if (cur() == '\r' || cur() == '\n') {
      return no_match(Reason::Version);  // HTTP/0.9 simple request: no version
    }
    if (cur() != ' ') {
      return no_match(Reason::Path);
    }
    ++i_;
    return true;
  }

  // HTTP-version: exactly HTTP/1.0 or HTTP/1.1 (case-sensitive), then CRLF or bare LF.
  bool version() noexcept {
    if (const auto stop = expect("HTTP/1.", Reason::Version)) {
      return *stop;
    }
    if (at_end()) {
      return need_more();
    }
    if (cur() != '0' && cur() != '1') {
      return no_match(Reason::Version);
    }
    http11_ = cur() == '1';
    ++i_;
    return line_end(Reason::Version);
  }

  // Consumes CRLF or LF at i_ (RFC 9112 §2.2 allows a bare LF); anything else decides `r`.
  bool line_end(Reason r) noexcept {
    if (at_end()) {
      return need_more();
    }
    if (cur() == '\r') {
      ++i_;
      if (at_end()) {
        return need_more();
      }
    }
    if (cur() != '\n') {
      return decide(r == Reason::Version ? Verdict::NoMatch : Verdict::Invalid, r, i_);
    }
    ++i_;
    return true;
  }

  // Header section up to the empty line. Every line must be `token ":" field-value`; obs-fold,
  // bare CR, NUL and other controls are malformed (RFC 9112 §5). Host must appear at most once.
  void headers() noexcept {
    for (;;) {
      if (at_end()) {
        need_more();
        return;
      }
      if (cur() == '\r' || cur() == '\n') {
        if (line_end(Reason::MalformedHead)) {
          finish();
        }
        return;
      }
      const std::size_t name_start = i_;
      for (; !at_end() && is(cur(), kTchar); ++i_) {
      }
      if (at_end()) {
        need_more();
        return;
      }
      if (cur() != ':' || i_ == name_start) {
        malformed(i_);  // obs-fold, space before the colon, empty or invalid name
        return;
      }
      const std::size_t name_len = i_ - name_start;
      const std::size_t value_start = ++i_;
      i_ = scan_value(in_, i_);
      const std::size_t value_end = i_;
      if (!line_end(Reason::MalformedHead)) {
        return;
      }
      if (name_len == 4 && is_host_name(name_start) &&
          !host_line(in_.subspan(value_start, value_end - value_start))) {
        return;
      }
    }
  }

  [[nodiscard]] bool is_host_name(std::size_t at) const noexcept {
    return lower(byte_at(in_, at)) == 'h' && lower(byte_at(in_, at + 1)) == 'o' &&
           lower(byte_at(in_, at + 2)) == 's' && lower(byte_at(in_, at + 3)) == 't';
  }

  // A complete Host line (i_ is past its LF). RFC 9112 §3.2: more than one Host, or an invalid
  // value, is a 400 — let production say so. With an absolute-form target the target's authority
  // wins and Host is only validated.
  bool host_line(std::span<const std::byte> v) noexcept {
    if (host_seen_) {
      return malformed(i_ - 1);
    }
    host_seen_ = true;
    while (!v.empty() && (byte_at(v, 0) == ' ' || byte_at(v, 0) == '\t')) {
      v = v.subspan(1);
    }
    while (!v.empty() && (byte_at(v, v.size() - 1) == ' ' || byte_at(v, v.size() - 1) == '\t')) {
      v = v.first(v.size() - 1);
    }
    bool valid = false;
    if (absolute_form_) {
      HostName ignored;
      std::uint16_t ignored_port = 0;
      valid = parse_authority(v, ignored, ignored_port);
    } else {
      valid = parse_authority(v, out_.host, out_.host_port);
    }
    return valid || malformed(i_ - 1);
  }

  // End of the head (i_ is past the empty line). HTTP/1.1 requires a Host (or absolute form).
  void finish() noexcept {
    if (http11_ && !host_seen_ && !absolute_form_) {
      malformed(i_ - 1);
      return;
    }
    out_.verdict = Verdict::Match;
    out_.reason = Reason::None;
    out_.challenge = ChallengeType::Http01;
    out_.token = {reinterpret_cast<const char*>(token_.data()), token_.size()};
    out_.head_len = i_;
  }

  std::span<const std::byte> in_;
  Classification& out_;
  std::size_t i_ = 0;
  std::span<const std::byte> token_;
  bool absolute_form_ = false;
  bool http11_ = false;
  bool host_seen_ = false;
};

}  // namespace

bool parse_host(std::string_view text, HostName& host, std::uint16_t& port) noexcept {
  return parse_authority(std::as_bytes(std::span{text.data(), text.size()}), host, port);
}

Classification classify_http(std::span<const std::byte> in) noexcept {
  Classification out;
  out.protocol = Protocol::Http;
  HttpParser{in, out}.run();
  if (out.verdict != Verdict::Match) {
    out.host.len = 0;  // only a challenge reports where it goes
    out.host_port = 0;
  }
  return out;
}

}  // namespace acmegw::classifier
