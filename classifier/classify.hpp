#pragma once
// Flow classification: the one entry point the gateway calls for every client segment of an
// undecided flow. Pure: no syscalls, no allocation, no logging, no globals, no clocks.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace acmegw::classifier {

// Outcome of one protocol parser over a prefix (STYLE §5).
enum class Verdict : std::uint8_t {
  NeedMore,  // prefix is a valid start; call again with more bytes
  Match,     // an ACME challenge (http-01 request or tls-alpn-01 ClientHello)
  NoMatch,   // well-formed, but not a challenge
  Invalid,   // not this protocol (or malformed)
};

// What the gateway does with the flow.
enum class Decision : std::uint8_t {
  NeedMore,    // hold the segments and wait for more bytes
  Challenge,   // take the flow over
  Production,  // send the flow to production, untouched
};

enum class Protocol : std::uint8_t { Http, Tls };

enum class ChallengeType : std::uint8_t { None, Http01, TlsAlpn01 };

// Why a flow went to production (or None for a challenge / undecided flow).
enum class Reason : std::uint8_t {
  None,
  Empty,           // no bytes at all (only from classify(): an empty stream at close)
  NotHttp,         // bytes cannot start an HTTP/1.x request (TLS, SSH, HTTP/2 preface, binary)
  Method,          // HTTP method other than GET/HEAD
  Path,            // target is not /.well-known/acme-challenge/<token>
  Token,           // challenge prefix, but the token is empty, too long or has bad characters
  Version,         // not HTTP/1.0 or HTTP/1.1 (includes HTTP/0.9)
  MalformedHead,   // request line ok, header section malformed
  LimitReached,    // no decision within Limits (caller-side mapping of NeedMore)
  Incomplete,      // stream ended before a decision (classify() with at_end)
  NotTls,          // not a TLS handshake record
  NotClientHello,  // TLS, but the first handshake message is not a ClientHello
  MalformedTls,    // inconsistent lengths inside the records/ClientHello
  NoAlpn,          // ClientHello without ALPN
  AlpnOther,       // ALPN present but not exactly ["acme-tls/1"]
  // ALPN exactly ["acme-tls/1"] but no SNI: RFC 8737 §3 says a CA always names the identifier
  // in SNI, so such a hello is not a validation; production may answer it (Caddy, certmagic).
  NoSni,
};

// Hard maxima, validated against at config time (STYLE §6).
inline constexpr std::size_t kHardMaxHttpHead = 64 * 1024;
inline constexpr std::size_t kHardMaxClientHello = 64 * 1024;

struct Limits {
  std::size_t max_http_head = 8 * 1024;      // bytes of request line + headers inspected
  std::size_t max_client_hello = 16 * 1024;  // bytes of TLS records inspected
};

// Longest host name kept (RFC 1035 presentation limit), lower-cased into a fixed buffer.
inline constexpr std::size_t kMaxHostLen = 255;

struct HostName {
  std::array<char, kMaxHostLen> buf{};
  std::uint8_t len = 0;
  [[nodiscard]] std::string_view view() const noexcept { return {buf.data(), len}; }
};

struct Classification {
  Decision decision = Decision::NeedMore;
  Verdict verdict = Verdict::NeedMore;
  Protocol protocol = Protocol::Http;
  ChallengeType challenge = ChallengeType::None;
  Reason reason = Reason::None;
  // Views into the caller's `prefix`; valid while that buffer lives and is unchanged.
  std::string_view token;       // http-01 token on Challenge
  std::string_view sni;         // TLS server_name, if present
  std::string_view alpn;        // TLS ALPN extension body (wire format: len-prefixed names), if any
  HostName host;                // HTTP Host name (lower-cased, no port, no [] for v6) or TLS SNI
  std::uint16_t host_port = 0;  // port from Host: name:port, 0 when absent
  std::size_t head_len = 0;     // HTTP: bytes of the request head consumed when decided
};

// Classifies the first bytes a client sent on a flow. `prefix` starts at byte 0 of the stream.
// The result depends only on the bytes, never on how they were segmented. NeedMore is turned
// into Production(LimitReached) once prefix.size() reaches the protocol's limit, and into
// Production(Incomplete) when `at_end` says no more bytes will come.
[[nodiscard]] Classification classify(std::span<const std::byte> prefix, Protocol protocol,
                                      const Limits& limits = {}, bool at_end = false) noexcept;

// Parses a Host header value or an absolute-form authority exactly as the classifier does:
// `name`, `name:port`, `[v6]` or `[v6]:port` (name: A-Z a-z 0-9 . - _; no userinfo, no
// %-escapes, no whitespace). Writes the lower-cased name (v6 without brackets) into `host` and
// the port (0 = none) into `port`. Returns false on any other shape. Pure.
[[nodiscard]] bool parse_host(std::string_view text, HostName& host, std::uint16_t& port) noexcept;

// Stable lower-case names for logs, metrics and `acmegw classify --json`.
[[nodiscard]] std::string_view to_string(Decision d) noexcept;
[[nodiscard]] std::string_view to_string(Reason r) noexcept;
[[nodiscard]] std::string_view to_string(ChallengeType c) noexcept;
[[nodiscard]] std::string_view to_string(Protocol p) noexcept;

}  // namespace acmegw::classifier
