#pragma once
// The store of the `tokens` backend (DESIGN.md §3): key authorizations fed by ACME client hooks
// through `acmegw token add/remove/list` over a unix socket (tokens_server.hpp has the socket
// and the backend).
//
// Wire protocol, one request line per connection, every field space-separated, ASCII:
//   add TOKEN KEYAUTH [ttl=SECONDS] [host=NAME]   → "ok\n" | "error MESSAGE\n"
//   remove TOKEN                                  → "ok\n" | "error MESSAGE\n"
//   add-alpn IDENTIFIER KEYAUTH|digest=B64URL [ttl=SECONDS]
//                                                 → "ok\n" | "error MESSAGE\n"
//   remove-alpn IDENTIFIER                        → "ok\n" | "error MESSAGE\n"
//   list                                          → "token TOKEN KEYAUTH ttl=S [host=NAME]\n"…
//                                                   "alpn IDENTIFIER DIGEST_B64URL ttl=S\n"…
//                                                   then "ok N\n" (N: entries of both kinds)
// add-alpn registers a tls-alpn-01 identifier (RFC 8737): IDENTIFIER is a DNS name, an IP
// literal or an RFC 8738 reverse name (parse_alpn_identifier), stored under its SNI form;
// KEYAUTH is TOKEN.THUMBPRINT (certbot, lego, dehydrated hand it over) or digest= the 43-char
// base64url SHA-256 of it (what uacme passes its hook for tls-alpn-01). Only the digest is kept.
// A line is at most kMaxRequestLine bytes including its "\n".
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "backends/alpn_cert.hpp"

namespace acmegw::backends {

inline constexpr std::size_t kMaxRequestLine = 1024;
inline constexpr std::chrono::seconds kDefaultTokenTtl{3600};
inline constexpr std::chrono::seconds kMaxTokenTtl{7 * 24 * 3600};
inline constexpr std::size_t kMaxTokens = 65536;  // bound on memory fed by local clients
// tls-alpn-01 identifiers have their own bound of the same size (an entry is ~100 bytes): a
// client flooding one kind cannot starve the other.
inline constexpr std::size_t kMaxAlpnIdentifiers = 65536;
// Longest identifier accepted on the wire: an ip6.arpa reverse name is 72 characters, a DNS
// name at most 253 (+ a trailing dot).
inline constexpr std::size_t kMaxAlpnIdentifierLen = 254;

struct TokenCommand {
  enum class Op : std::uint8_t { Add, Remove, List, AddAlpn, RemoveAlpn, Invalid };
  Op op = Op::Invalid;
  std::string_view token;       // Add, Remove
  std::string_view keyauth;     // Add; AddAlpn: TOKEN.THUMBPRINT, or empty when `digest` is set
  std::string_view identifier;  // AddAlpn, RemoveAlpn: as given (normalized by the store)
  std::string_view digest;      // AddAlpn: the 43 base64url characters after "digest=", or empty
  std::string_view host;        // Add: empty = any host
  std::chrono::seconds ttl = kDefaultTokenTtl;  // Add, AddAlpn
  std::string_view error;                       // Invalid: a static message
};

// Parses one request line (without its "\n"). Views point into `line`; `error` into static
// storage. Validates the token, the key authorization (TOKEN.THUMBPRINT for this token), the
// ttl (1..kMaxTokenTtl seconds) and the host name; for add-alpn the key authorization's shape
// (TOKEN.THUMBPRINT) or the digest (decode_alpn_digest), and the identifier's characters and
// length only — its full check is parse_alpn_identifier's, in TokenStore::execute. Pure: no
// allocation.
[[nodiscard]] TokenCommand parse_token_command(std::string_view line) noexcept;

// Decodes exactly 43 base64url characters without padding into a SHA-256 digest; nullopt for
// any other length, character, or non-zero trailing bits (so each digest has one spelling).
// Pure: no allocation.
[[nodiscard]] std::optional<AlpnDigest> decode_alpn_digest(std::string_view b64url) noexcept;

// The 43-character base64url (no padding) spelling of `digest`; decode_alpn_digest's inverse.
[[nodiscard]] std::string encode_alpn_digest(const AlpnDigest& digest);

// Formats the request line for `cmd` (without "\n"); the inverse of parse_token_command.
[[nodiscard]] std::string format_token_command(const TokenCommand& cmd);

class TokenStore {
 public:
  using Clock = std::chrono::steady_clock;

  // Adds or replaces `token`. `host` is normalized (lower case, no trailing dot); empty = any.
  // Returns an error message when the store is full, else nullopt. Preconditions: arguments
  // valid as parse_token_command checks them.
  [[nodiscard]] std::optional<std::string_view> add(std::string_view token,
                                                    std::string_view keyauth, std::string_view host,
                                                    std::chrono::seconds ttl,
                                                    Clock::time_point now);
  // Removes `token`; false when it was not there.
  bool remove(std::string_view token);
  // The key authorization for `token` when present, unexpired and, if the entry names a host,
  // requested for that host (lower case, no port).
  [[nodiscard]] std::optional<std::string> find(std::string_view token, std::string_view host,
                                                Clock::time_point now) const;
  // Adds or replaces the tls-alpn-01 entry of `id` (keyed by id.sni). Returns an error message
  // when the store is full, else nullopt.
  [[nodiscard]] std::optional<std::string_view> add_alpn(const AlpnIdentifier& id,
                                                         const AlpnDigest& digest,
                                                         std::chrono::seconds ttl,
                                                         Clock::time_point now);
  // Removes the entry of `sni` (AlpnIdentifier::sni); false when it was not there.
  bool remove_alpn(std::string_view sni);
  // The identifier and digest registered for `sni` (lower case, no trailing dot: the form
  // TlsAnsweringBackend::certificate receives) when present and unexpired. A miss is one hash
  // lookup under the lock, without allocating when `sni` fits the small-string buffer.
  struct AlpnLookup {
    AlpnIdentifier id;
    AlpnDigest digest{};
  };
  [[nodiscard]] std::optional<AlpnLookup> find_alpn(std::string_view sni,
                                                    Clock::time_point now) const;
  // The protocol response to `line` (one request, without "\n"), each line "\n"-terminated.
  [[nodiscard]] std::string execute(std::string_view line, Clock::time_point now);

 private:
  struct Entry {
    std::string keyauth;
    std::string host;  // empty: any host
    Clock::time_point expires;
  };
  struct AlpnEntry {
    AlpnIdentifier id;
    AlpnDigest digest{};
    Clock::time_point expires;
  };
  // Transparent hashing: find_alpn looks a string_view up without building a std::string.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  void erase_expired(Clock::time_point now);  // caller holds mu_

  mutable std::mutex mu_;  // add/remove from the socket thread, find from the session threads
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_map<std::string, AlpnEntry, StringHash, std::equal_to<>> alpn_;  // by SNI
};

}  // namespace acmegw::backends
