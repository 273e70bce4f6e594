#pragma once
// The store of the `tokens` backend (DESIGN.md §3): key authorizations fed by ACME client hooks
// through `acmegw token add/remove/list` over a unix socket (tokens_server.hpp has the socket
// and the backend).
//
// Wire protocol, one request line per connection, every field space-separated, ASCII:
//   add TOKEN KEYAUTH [ttl=SECONDS] [host=NAME]   → "ok\n" | "error MESSAGE\n"
//   remove TOKEN                                  → "ok\n" | "error MESSAGE\n"
//   list                                          → "token TOKEN KEYAUTH ttl=S [host=NAME]\n"…
//                                                   then "ok N\n"
// A line is at most kMaxRequestLine bytes including its "\n".
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>


namespace acmegw::backends {

inline constexpr std::size_t kMaxRequestLine = 1024;
inline constexpr std::chrono::seconds kDefaultTokenTtl{3600};
inline constexpr std::chrono::seconds kMaxTokenTtl{7 * 24 * 3600};
inline constexpr std::size_t kMaxTokens = 65536;  // bound on memory fed by local clients

struct TokenCommand {
  enum class Op : std::uint8_t { Add, Remove, List, Invalid };
  Op op = Op::Invalid;
  std::string_view token;    // Add, Remove
  std::string_view keyauth;  // Add
  std::string_view host;     // Add: empty = any host
  std::chrono::seconds ttl = kDefaultTokenTtl;  // Add
  std::string_view error;    // Invalid: a static message
};

// Parses one request line (without its "\n"). Views point into `line`; `error` into static
// storage. Validates the token, the key authorization (TOKEN.THUMBPRINT for this token), the
// ttl (1..kMaxTokenTtl seconds) and the host name. Pure: no allocation.
[[nodiscard]] TokenCommand parse_token_command(std::string_view line) noexcept;

// Formats the request line for `cmd` (without "\n"); the inverse of parse_token_command.
[[nodiscard]] std::string format_token_command(const TokenCommand& cmd);

class TokenStore {
 public:
  using Clock = std::chrono::steady_clock;

  // Adds or replaces `token`. `host` is normalized (lower case, no trailing dot); empty = any.
  // Returns an error message when the store is full, else nullopt. Preconditions: arguments
  // valid as parse_token_command checks them.
  [[nodiscard]] std::optional<std::string_view> add(std::string_view token,
                                                    std::string_view keyauth,
                                                    std::string_view host,
                                                    std::chrono::seconds ttl,
                                                    Clock::time_point now);
  // Removes `token`; false when it was not there.
  bool remove(std::string_view token);
  // The key authorization for `token` when present, unexpired and, if the entry names a host,
  // requested for that host (lower case, no port).
  [[nodiscard]] std::optional<std::string> find(std::string_view token, std::string_view host,
                                                Clock::time_point now) const;
  // The protocol response to `line` (one request, without "\n"), each line "\n"-terminated.
  [[nodiscard]] std::string execute(std::string_view line, Clock::time_point now);

 private:
  struct Entry {
    std::string keyauth;
    std::string host;  // empty: any host
    Clock::time_point expires;
  };
  void erase_expired(Clock::time_point now);  // caller holds mu_

  mutable std::mutex mu_;  // add/remove from the socket thread, find from the session threads
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace acmegw::backends
