// TLS ClientHello parser: walks the record layer and the first handshake message in one pass,
// reading through record boundaries without copying (RFC 8446 §4.1.2, §5.1; RFC 6066 §3;
// RFC 7301 §3.1; RFC 8737 §3). Rules and edge cases: docs/classifier.md.
#include "classifier/tls.hpp"

#include <algorithm>
#include <cstdint>
#include <string_view>

namespace acmegw::classifier {
namespace {

constexpr std::uint8_t kContentHandshake = 22;
constexpr std::uint8_t kHandshakeClientHello = 1;
constexpr std::uint16_t kExtServerName = 0;
constexpr std::uint16_t kExtAlpn = 16;
constexpr std::uint8_t kNameTypeHostName = 0;
constexpr std::size_t kRecordHeader = 5;       // type(1) version(2) length(2)
constexpr std::size_t kHandshakeHeader = 4;    // msg_type(1) length(3)
constexpr std::size_t kMaxFragment = 1 << 14;  // RFC 8446 §5.1: TLSPlaintext.length <= 2^14
constexpr std::string_view kAcmeTls1 = "acme-tls/1";

// Why a read failed: the prefix ended (wait for more bytes) or the records are not a valid
// handshake stream.
enum class Stop : std::uint8_t { None, Short, NotTls, Malformed };

// Forward-only cursor over the handshake-layer bytes carried by a sequence of TLS records.
// Every read checks sizes first; record headers are validated as they are crossed, so a
// ClientHello fragmented into many records (down to 1 byte each) reads like a contiguous one.
// pos() counts handshake bytes consumed, which is what nested length fields are checked against.
class HandshakeReader {
 public:
  explicit HandshakeReader(std::span<const std::byte> in) noexcept : in_(in) {}

  [[nodiscard]] Stop stop() const noexcept { return stop_; }
  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
  // Whether the record that carried the last byte read ends there (declared length, arrived
  // or not): nothing may follow a ClientHello in its record.
  [[nodiscard]] bool record_ends_here() const noexcept { return frag_left_ == 0; }

  bool u8(std::uint8_t& v) noexcept {
    if (!ensure_fragment() || !ensure_byte()) {
      return false;
    }
    v = std::to_integer<std::uint8_t>(in_[off_]);
    ++off_;
    --frag_left_;
    ++pos_;
    return true;
  }
  bool u16(std::uint16_t& v) noexcept {
    if (frag_left_ >= 2 && in_.size() - off_ >= 2) {  // fast path: both bytes in this record
      v = static_cast<std::uint16_t>(std::to_integer<unsigned>(in_[off_]) << 8 |
                                     std::to_integer<unsigned>(in_[off_ + 1]));
      off_ += 2;
      frag_left_ -= 2;
      pos_ += 2;
      return true;
    }
    std::uint8_t hi = 0;
    std::uint8_t lo = 0;
    if (!u8(hi) || !u8(lo)) {
      return false;
    }
    v = static_cast<std::uint16_t>(hi << 8 | lo);
    return true;
  }
  // Consumes the next `n` bytes, handing them to `f` as contiguous chunks (one per record
  // they span). Returns false if they are not all there or a record header is bad.
  template <typename F>
  bool chunks(std::size_t n, F&& f) noexcept {
    while (n > 0) {
      if (!ensure_fragment() || !ensure_byte()) {
        return false;
      }
      const std::size_t k = std::min({n, frag_left_, in_.size() - off_});
      f(in_.subspan(off_, k));
      off_ += k;
      frag_left_ -= k;
      pos_ += k;
      n -= k;
    }
    return true;
  }
  bool skip(std::size_t n) noexcept {
    return chunks(n, [](std::span<const std::byte>) noexcept {});
  }
  // The next `n` bytes as one view into the input when they are already present in the current
  // record; empty otherwise (straddling, or not arrived yet). Consumes nothing.
  [[nodiscard]] std::span<const std::byte> peek(std::size_t n) noexcept {
    if (n == 0 || !ensure_fragment() || n > frag_left_ || n > in_.size() - off_) {
      return {};  // the next read meets (and reports) the same condition
    }
    return in_.subspan(off_, n);
  }

 private:
  // Steps over the next record header when the current fragment is used up. Header bytes are
  // checked as soon as they arrive, so non-TLS input is refused at its first byte.
  bool ensure_fragment() noexcept {
    if (frag_left_ > 0) {
      return true;
    }
    const std::size_t have = std::min(kRecordHeader, in_.size() - off_);
    const auto hdr = [&](std::size_t k) { return std::to_integer<std::uint8_t>(in_[off_ + k]); };
    // A bad header on the first record means "not TLS"; later it breaks the handshake stream
    // (handshake records must not be interleaved with other content types).
    const Stop bad = off_ == 0 ? Stop::NotTls : Stop::Malformed;
    if ((have > 0 && hdr(0) != kContentHandshake) || (have > 1 && hdr(1) != 3) ||
        (have > 2 && hdr(2) > 4)) {
      return fail(bad);  // legacy_record_version 3.0 .. 3.4
    }
    if (have < kRecordHeader) {
      return fail(Stop::Short);
    }
    const std::size_t len = static_cast<std::size_t>(hdr(3)) << 8 | hdr(4);
    if (len == 0 || len > kMaxFragment) {
      return fail(Stop::Malformed);  // RFC 8446 §5.1: no empty handshake fragments
    }
    off_ += kRecordHeader;
    frag_left_ = len;
    return true;
  }
  bool ensure_byte() noexcept { return off_ < in_.size() || fail(Stop::Short); }
  bool fail(Stop s) noexcept {
    stop_ = s;
    return false;
  }

  std::span<const std::byte> in_;
  std::size_t off_ = 0;        // next unread input byte
  std::size_t frag_left_ = 0;  // handshake bytes left in the current record (may not have arrived)
  std::size_t pos_ = 0;        // handshake-layer bytes consumed
  Stop stop_ = Stop::None;
};

// The same interface over one contiguous handshake message: the common case, where the
// whole ClientHello sits in the first record. A failed read can only mean "not arrived yet".
class ContiguousReader {
 public:
  explicit ContiguousReader(std::span<const std::byte> msg) noexcept : in_(msg) {}

  [[nodiscard]] Stop stop() const noexcept { return Stop::Short; }
  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
  // The fast path only takes a record that ends with the message.
  [[nodiscard]] bool record_ends_here() const noexcept { return true; }

  bool u8(std::uint8_t& v) noexcept {
    if (pos_ == in_.size()) {
      return false;
    }
    v = std::to_integer<std::uint8_t>(in_[pos_++]);
    return true;
  }
  bool u16(std::uint16_t& v) noexcept {
    if (in_.size() - pos_ < 2) {
      return false;
    }
    v = static_cast<std::uint16_t>(std::to_integer<unsigned>(in_[pos_]) << 8 |
                                   std::to_integer<unsigned>(in_[pos_ + 1]));
    pos_ += 2;
    return true;
  }
  template <typename F>
  bool chunks(std::size_t n, F&& f) noexcept {
    if (in_.size() - pos_ < n) {
      return false;
    }
    f(in_.subspan(pos_, n));
    pos_ += n;
    return true;
  }
  bool skip(std::size_t n) noexcept {
    return chunks(n, [](std::span<const std::byte>) noexcept {});
  }
  [[nodiscard]] std::span<const std::byte> peek(std::size_t n) const noexcept {
    return n <= in_.size() - pos_ ? in_.subspan(pos_, n) : std::span<const std::byte>{};
  }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
};

bool is_host_char(std::uint8_t c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// One pass over the ClientHello through `Reader` (HandshakeReader or ContiguousReader). Stages
// return false once `out_` holds the result; the first decisive fact in stream order decides.
template <typename Reader>
class ClientHelloParser {
 public:
  ClientHelloParser(Reader r, std::size_t max_bytes, Classification& out) noexcept
      : r_(r), max_bytes_(max_bytes), out_(out) {}

  void run() noexcept {
    std::uint8_t type = 0;
    std::uint32_t len = 0;
    if (!r_.u8(type)) {
      return stopped();
    }
    if (type != kHandshakeClientHello) {
      return decide(Verdict::NoMatch, Reason::NotClientHello);
    }
    std::uint8_t len_hi = 0;
    std::uint16_t len_lo = 0;
    if (!r_.u8(len_hi) || !r_.u16(len_lo)) {
      return stopped();
    }
    len = static_cast<std::uint32_t>(len_hi) << 16 | len_lo;
    if (kRecordHeader + kHandshakeHeader + len > max_bytes_) {
      // Cannot fit in the inspection limit whatever comes next: decide now.
      return decide(Verdict::NeedMore, Reason::LimitReached);
    }
    end_ = r_.pos() + len;
    body();
  }

 private:
  void decide(Verdict v, Reason r) noexcept {
    out_.verdict = v;
    out_.reason = r;
  }
  void malformed() noexcept { decide(Verdict::Invalid, Reason::MalformedTls); }
  void stopped() noexcept {
    switch (r_.stop()) {
      case Stop::None:
      case Stop::Short:
        return decide(Verdict::NeedMore, Reason::None);
      case Stop::NotTls:
        return decide(Verdict::Invalid, Reason::NotTls);
      case Stop::Malformed:
        return malformed();
    }
  }
  // True when `n` more bytes fit before `end` (a nested vector's end offset).
  [[nodiscard]] bool fits(std::size_t n, std::size_t end) const noexcept {
    return n <= end - r_.pos();
  }
  // Reads a length field of `width` bytes and checks the vector it announces fits in `end`.
  bool vec(int width, std::size_t end, std::size_t& vec_end) noexcept {
    std::size_t len = 0;
    if (width == 1) {
      std::uint8_t v = 0;
      if (!fits(1, end)) {
        return fail_malformed();
      }
      if (!r_.u8(v)) {
        return fail_stopped();
      }
      len = v;
    } else {
      std::uint16_t v = 0;
      if (!fits(2, end)) {
        return fail_malformed();
      }
      if (!r_.u16(v)) {
        return fail_stopped();
      }
      len = v;
    }
    if (!fits(len, end)) {
      return fail_malformed();
    }
    vec_end = r_.pos() + len;
    return true;
  }
  bool fail_malformed() noexcept {
    malformed();
    return false;
  }
  bool fail_stopped() noexcept {
    stopped();
    return false;
  }
  bool skip_to(std::size_t end) noexcept { return r_.skip(end - r_.pos()) || fail_stopped(); }
  bool read16(std::size_t end, std::uint16_t& v) noexcept {
    if (!fits(2, end)) {
      return fail_malformed();
    }
    return r_.u16(v) || fail_stopped();
  }

  // ClientHello body (RFC 8446 §4.1.2): legacy_version, random, session id, cipher suites,
  // compression methods, then extensions (optional before TLS 1.3) filling the message exactly.
  void body() noexcept {
    std::uint16_t version = 0;
    std::size_t e = 0;
    if (!read16(end_, version)) {
      return;
    }
    if (version >> 8 != 3) {
      return malformed();
    }
    if (!fits(32, end_)) {
      return malformed();
    }
    if (!r_.skip(32)) {
      return stopped();
    }
    if (!vec(1, end_, e) || !skip_to(e)) {  // legacy_session_id <0..32>
      return;
    }
    if (!vec(2, end_, e)) {  // cipher_suites <2..2^16-2>, pairs
      return;
    }
    if ((e - r_.pos()) < 2 || (e - r_.pos()) % 2 != 0) {
      return malformed();
    }
    if (!skip_to(e)) {
      return;
    }
    if (!vec(1, end_, e)) {  // legacy_compression_methods <1..2^8-1>
      return;
    }
    if (e == r_.pos()) {
      return malformed();
    }
    if (!skip_to(e)) {
      return;
    }
    if (r_.pos() == end_) {
      return finish();  // no extensions at all
    }
    if (!vec(2, end_, e)) {
      return;
    }
    if (e != end_) {
      return malformed();  // bytes after the extensions block
    }
    while (r_.pos() < end_) {
      std::uint16_t type = 0;
      std::size_t ext_end = 0;
      if (!read16(end_, type) || !vec(2, end_, ext_end)) {
        return;
      }
      bool ok = true;
      if (type == kExtServerName) {
        ok = server_name(ext_end);
      } else if (type == kExtAlpn) {
        ok = alpn(ext_end);
        if (ok && !acme_) {
          return decide(Verdict::NoMatch, Reason::AlpnOther);  // nothing later can change it
        }
      } else {
        ok = skip_to(ext_end);
      }
      if (!ok) {
        return;
      }
    }
    finish();
  }

  // server_name (RFC 6066 §3): a list filling the extension; the first host_name is the SNI.
  bool server_name(std::size_t ext_end) noexcept {
    if (sni_seen_) {
      return fail_malformed();  // RFC 8446 §4.2: at most one extension of each type
    }
    sni_seen_ = true;
    std::size_t list_end = 0;
    if (!vec(2, ext_end, list_end)) {
      return false;
    }
    if (list_end != ext_end || list_end == r_.pos()) {
      return fail_malformed();
    }
    while (r_.pos() < list_end) {
      std::uint8_t name_type = 0;
      std::size_t name_end = 0;
      if (!fits(1, list_end)) {
        return fail_malformed();
      }
      if (!r_.u8(name_type)) {
        return fail_stopped();
      }
      if (!vec(2, list_end, name_end)) {
        return false;
      }
      if (name_type != kNameTypeHostName || out_.host.len != 0) {
        if (!skip_to(name_end)) {
          return false;
        }
        continue;
      }
      const std::size_t len = name_end - r_.pos();
      if (len == 0 || len > kMaxHostLen) {
        return fail_malformed();
      }
      const auto view = r_.peek(len);
      out_.sni = {reinterpret_cast<const char*>(view.data()), view.size()};
      std::size_t k = 0;
      bool valid = true;
      const bool read = r_.chunks(len, [&](std::span<const std::byte> chunk) noexcept {
        for (const std::byte b : chunk) {
          const auto c = std::to_integer<std::uint8_t>(b);
          valid = valid && is_host_char(c);  // RFC 6066: ASCII DNS name, no NUL or other bytes
          out_.host.buf[k++] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
      });
      if (!read) {
        return fail_stopped();
      }
      if (!valid) {
        return fail_malformed();
      }
      out_.host.len = static_cast<std::uint8_t>(len);
    }
    return true;
  }

  // ALPN (RFC 7301 §3.1): a non-empty list of non-empty names filling the extension. Sets acme_
  // when the list is exactly ["acme-tls/1"] (RFC 8737 §3).
  bool alpn(std::size_t ext_end) noexcept {
    if (alpn_seen_) {
      return fail_malformed();
    }
    alpn_seen_ = true;
    std::size_t list_end = 0;
    if (!vec(2, ext_end, list_end)) {
      return false;
    }
    if (list_end != ext_end || list_end == r_.pos()) {
      return fail_malformed();
    }
    const auto view = r_.peek(list_end - r_.pos());
    out_.alpn = {reinterpret_cast<const char*>(view.data()), view.size()};
    std::size_t names = 0;
    bool is_acme = false;
    while (r_.pos() < list_end) {
      std::size_t name_end = 0;
      if (!vec(1, list_end, name_end)) {
        return false;
      }
      const std::size_t len = name_end - r_.pos();
      if (len == 0) {
        return fail_malformed();
      }
      is_acme = len == kAcmeTls1.size();
      std::size_t k = 0;
      const bool read = r_.chunks(len, [&](std::span<const std::byte> chunk) noexcept {
        for (const std::byte b : chunk) {
          is_acme = is_acme && std::to_integer<char>(b) == kAcmeTls1[k++];
        }
      });
      if (!read) {
        return fail_stopped();
      }
      ++names;
    }
    acme_ = names == 1 && is_acme;
    return true;
  }

  void finish() noexcept {
    if (!acme_) {
      return decide(Verdict::NoMatch, Reason::NoAlpn);
    }
    if (out_.host.len == 0) {
      return decide(Verdict::NoMatch, Reason::NoSni);
    }
    // Record bytes after the ClientHello (a client sends nothing more before the server's
    // flight): a hello that would break the responder's handshake goes to production.
    if (!r_.record_ends_here()) {
      return decide(Verdict::NoMatch, Reason::MalformedTls);
    }
    decide(Verdict::Match, Reason::None);
    out_.challenge = ChallengeType::TlsAlpn01;
  }

  Reader r_;
  std::size_t max_bytes_;
  Classification& out_;
  std::size_t end_ = 0;  // handshake-layer offset where the ClientHello ends
  bool sni_seen_ = false;
  bool alpn_seen_ = false;
  bool acme_ = false;
};

}  // namespace

Classification classify_tls(std::span<const std::byte> in, std::size_t max_client_hello) noexcept {
  Classification out;
  out.protocol = Protocol::Tls;
  const auto b = [&](std::size_t i) { return std::to_integer<std::size_t>(in[i]); };
  // Fast path: a valid first record header whose fragment is exactly the ClientHello (what TLS
  // stacks send) is parsed without record bookkeeping. The parser never reads past the
  // message, so both readers see the same bytes and give the same answer.
  if (in.size() >= kRecordHeader + kHandshakeHeader && b(0) == kContentHandshake && b(1) == 3 &&
      b(2) <= 4) {
    const std::size_t record_len = b(3) << 8 | b(4);
    const std::size_t message_len = kHandshakeHeader + (b(6) << 16 | b(7) << 8 | b(8));
    if (record_len > 0 && record_len <= kMaxFragment && message_len == record_len) {
      const auto msg = in.subspan(kRecordHeader, std::min(record_len, in.size() - kRecordHeader));
      ClientHelloParser<ContiguousReader>{ContiguousReader{msg}, max_client_hello, out}.run();
      return out;
    }
  }
  ClientHelloParser<HandshakeReader>{HandshakeReader{in}, max_client_hello, out}.run();
  return out;
}

}  // namespace acmegw::classifier
