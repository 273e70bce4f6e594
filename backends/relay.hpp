#pragma once
// The `relay` backend's value types (DESIGN.md §3): where a taken-over connection is relayed,
// the PROXY protocol header that may precede it, and the rate-limited warning for a validation
// host that is down. The session itself lives in backends/http_session.hpp.
//
// PROXY protocol: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt (v1 §2.1 text,
// v2 §2.2 binary). The header carries the client's real address and port and the address the
// client connected to, so the validation host (nginx `listen ... proxy_protocol`,
// `$proxy_protocol_addr`) logs the ACME server instead of the gateway.
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

namespace acmegw::backends {

enum class ProxyProtocol : std::uint8_t { None, V1, V2 };

// `relay=HOST:PORT[,proxy=v1|v2][,connect-timeout=MS]`.
struct RelaySpec {
  boost::asio::ip::tcp::endpoint target;
  ProxyProtocol proxy = ProxyProtocol::None;
  // The validation host did not accept within this: the client gets a 504 (docs/backends.md).
  std::chrono::milliseconds connect_timeout{3000};
  // Set for a tls-alpn-01 relay (`tls_backend`): the client speaks TLS, so an unreachable
  // target gets a reset instead of an HTTP 502/504. Not part of the text form.
  bool tls = false;
};

inline constexpr std::chrono::milliseconds kMaxRelayConnectTimeout{60'000};

// Parses the relay backend's VALUE: a numeric "ADDR:PORT" or "[V6]:PORT", then options in any
// order, each at most once: `proxy=v1|v2|none`, `connect-timeout=MS` (1..60000). Returns
// nullopt and sets `error` (naming the offending part) when VALUE is not one. Pure.
[[nodiscard]] std::optional<RelaySpec> parse_relay_spec(std::string_view value, std::string& error);

// The canonical text of `spec` (inverse of parse_relay_spec; options only when not default).
[[nodiscard]] std::string to_string(const RelaySpec& spec);

// v1's longest line ("PROXY TCP6 " + 2 * 39 + 2 * 5 + 3 spaces + CRLF) is 104 bytes (the spec
// bounds it at 107); v2 for TCP over IPv6 is 16 + 36 = 52 bytes.
inline constexpr std::size_t kMaxProxyHeader = 108;
using ProxyHeaderBuffer = std::array<std::byte, kMaxProxyHeader>;

// Writes the PROXY protocol header of `version` for a TCP connection from `client` to
// `server` (the address the client connected to) at the start of `out`; returns its length
// (0 for None). Families that differ (not expected: both ends of one socket) give v1
// "PROXY UNKNOWN\r\n" / v2 PROXY with family AF_UNSPEC and no addresses, which receivers must
// accept. Pure: no syscalls, no allocation.
[[nodiscard]] std::size_t encode_proxy_header(ProxyProtocol version,
                                              const boost::asio::ip::tcp::endpoint& client,
                                              const boost::asio::ip::tcp::endpoint& server,
                                              ProxyHeaderBuffer& out) noexcept;

// A warning that a burst of failures (a validation host down while an ACME server retries from
// several perspectives) must not turn into a log flood: passes at most one message per
// `interval` to `sink` and appends how many were suppressed since the last one. Thread-safe
// (the Asio threads share one); `sink` must be thread-safe too.
class RateLimitedWarning {
 public:
  using Sink = std::function<void(std::string_view)>;
  RateLimitedWarning(Sink sink, std::chrono::milliseconds interval) noexcept
      : sink_(std::move(sink)), interval_(interval) {}

  // Reports `message` now, or counts it if one was reported less than `interval` ago.
  void warn(std::string_view message);

 private:
  Sink sink_;
  std::chrono::steady_clock::duration interval_;
  std::atomic<std::int64_t> next_allowed_{0};  // steady_clock ticks
  std::atomic<std::uint64_t> suppressed_{0};
};

}  // namespace acmegw::backends
