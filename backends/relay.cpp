#include "backends/relay.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace acmegw::backends {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// The v2 signature (proxy-protocol.txt §2.2): cannot start an HTTP request or a TLS record.
constexpr std::array<std::uint8_t, 12> kV2Signature{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::uint8_t kV2ProxyCommand = 0x21;  // version 2 (high nibble) | PROXY (low)
constexpr std::uint8_t kV2TcpOverIpv4 = 0x11;   // AF_INET (high) | STREAM (low)
constexpr std::uint8_t kV2TcpOverIpv6 = 0x21;   // AF_INET6 | STREAM
constexpr std::uint8_t kV2Unspec = 0x00;        // AF_UNSPEC | UNSPEC: receivers drop addresses

std::optional<tcp::endpoint> parse_endpoint(std::string_view v) {
  const auto colon = v.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // a bare v6 address: the port would be ambiguous
  }
  unsigned port = 0;
  const auto p = v.substr(colon + 1);
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  boost::system::error_code bad;
  const auto addr = asio::ip::make_address(std::string(host), bad);
  if (ec != std::errc{} || end != p.data() + p.size() || port == 0 || port > 65535 || bad) {
    return std::nullopt;
  }
  return tcp::endpoint(addr, static_cast<std::uint16_t>(port));
}

// Appends `s` at out[n...]; the callers' sizes are bounded by kMaxProxyHeader by construction.
std::size_t put(ProxyHeaderBuffer& out, std::size_t n, std::string_view s) noexcept {
  std::memcpy(out.data() + n, s.data(), s.size());
  return n + s.size();
}

std::size_t put_u16(ProxyHeaderBuffer& out, std::size_t n, std::uint16_t v) noexcept {
  out[n] = static_cast<std::byte>(v >> 8);
  out[n + 1] = static_cast<std::byte>(v & 0xff);
  return n + 2;
}

template <std::size_t N>
std::size_t put_bytes(ProxyHeaderBuffer& out, std::size_t n,
                      const std::array<unsigned char, N>& b) noexcept {
  std::memcpy(out.data() + n, b.data(), N);
  return n + N;
}

// inet_ntop is pure libc formatting (no syscall); v6 comes out in RFC 5952 form as v1 asks.
std::size_t put_addr_text(ProxyHeaderBuffer& out, std::size_t n,
                          const asio::ip::address& a) noexcept {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    ::inet_ntop(AF_INET, b.data(), text, sizeof text);
  } else {
    const auto b = a.to_v6().to_bytes();
    ::inet_ntop(AF_INET6, b.data(), text, sizeof text);
  }
  return put(out, n, text);
}

std::size_t put_port_text(ProxyHeaderBuffer& out, std::size_t n, std::uint16_t port) noexcept {
  char text[5];
  const auto r = std::to_chars(text, text + sizeof text, port);
  return put(out, n, {text, static_cast<std::size_t>(r.ptr - text)});
}

std::size_t encode_v1(const tcp::endpoint& client, const tcp::endpoint& server,
                      ProxyHeaderBuffer& out) noexcept {
  if (client.address().is_v4() != server.address().is_v4()) {
    return put(out, 0, "PROXY UNKNOWN\r\n");
  }
  std::size_t n = put(out, 0, client.address().is_v4() ? "PROXY TCP4 " : "PROXY TCP6 ");
  n = put_addr_text(out, n, client.address());
  n = put(out, n, " ");
  n = put_addr_text(out, n, server.address());
  n = put(out, n, " ");
  n = put_port_text(out, n, client.port());
  n = put(out, n, " ");
  n = put_port_text(out, n, server.port());
  return put(out, n, "\r\n");
}

std::size_t encode_v2(const tcp::endpoint& client, const tcp::endpoint& server,
                      ProxyHeaderBuffer& out) noexcept {
  std::memcpy(out.data(), kV2Signature.data(), kV2Signature.size());
  std::size_t n = kV2Signature.size();
  out[n++] = std::byte{kV2ProxyCommand};
  const bool v4 = client.address().is_v4();
  if (v4 != server.address().is_v4()) {
    out[n++] = std::byte{kV2Unspec};
    return put_u16(out, n, 0);
  }
  if (v4) {
    out[n++] = std::byte{kV2TcpOverIpv4};
    n = put_u16(out, n, 12);  // 4 + 4 address bytes, 2 + 2 port bytes
    n = put_bytes(out, n, client.address().to_v4().to_bytes());
    n = put_bytes(out, n, server.address().to_v4().to_bytes());
  } else {
    out[n++] = std::byte{kV2TcpOverIpv6};
    n = put_u16(out, n, 36);  // 16 + 16 + 2 + 2
    n = put_bytes(out, n, client.address().to_v6().to_bytes());
    n = put_bytes(out, n, server.address().to_v6().to_bytes());
  }
  n = put_u16(out, n, client.port());
  return put_u16(out, n, server.port());
}

}  // namespace

std::optional<RelaySpec> parse_relay_spec(std::string_view value, std::string& error) {
  const auto comma = value.find(',');
  const auto target = parse_endpoint(value.substr(0, comma));
  if (!target) {
    error = "relay needs a numeric ADDR:PORT or [V6]:PORT: \"" +
            std::string(value.substr(0, comma)) + "\"";
    return std::nullopt;
  }
  RelaySpec spec{*target};
  bool seen_proxy = false;
  bool seen_timeout = false;
  std::string_view rest = comma == std::string_view::npos ? "" : value.substr(comma + 1);
  while (comma != std::string_view::npos) {
    const auto next = rest.find(',');
    const std::string_view opt = rest.substr(0, next);
    const auto eq = opt.find('=');
    const std::string_view key = opt.substr(0, eq);
    const std::string_view val = eq == std::string_view::npos ? "" : opt.substr(eq + 1);
    if (key == "proxy" && !seen_proxy) {
      seen_proxy = true;
      if (val == "v1") {
        spec.proxy = ProxyProtocol::V1;
      } else if (val == "v2") {
        spec.proxy = ProxyProtocol::V2;
      } else if (val != "none") {
        error = "relay option proxy must be v1, v2 or none: \"" + std::string(opt) + "\"";
        return std::nullopt;
      }
    } else if (key == "connect-timeout" && !seen_timeout) {
      seen_timeout = true;
      unsigned ms = 0;
      const auto [end, ec] = std::from_chars(val.data(), val.data() + val.size(), ms);
      if (ec != std::errc{} || end != val.data() + val.size() || ms == 0 ||
          ms > kMaxRelayConnectTimeout.count()) {
        error = "relay option connect-timeout must be 1.." +
                std::to_string(kMaxRelayConnectTimeout.count()) + " ms: \"" + std::string(opt) +
                "\"";
        return std::nullopt;
      }
      spec.connect_timeout = std::chrono::milliseconds(ms);
    } else {
      error = "unknown or repeated relay option (proxy=v1|v2, connect-timeout=MS): \"" +
              std::string(opt) + "\"";
      return std::nullopt;
    }
    if (next == std::string_view::npos) {
      break;
    }
    rest = rest.substr(next + 1);
  }
  return spec;
}

std::string to_string(const RelaySpec& spec) {
  // Appends only: GCC 12 gives a false -Wrestrict on `"[" + std::string` (GCC bug 105329).
  const auto& a = spec.target.address();
  std::string s;
  if (a.is_v4()) {
    s.append(a.to_string());
  } else {
    s.append("[").append(a.to_string()).append("]");
  }
  s.append(":").append(std::to_string(spec.target.port()));
  if (spec.proxy != ProxyProtocol::None) {
    s += spec.proxy == ProxyProtocol::V1 ? ",proxy=v1" : ",proxy=v2";
  }
  if (spec.connect_timeout != RelaySpec{}.connect_timeout) {
    s += ",connect-timeout=" + std::to_string(spec.connect_timeout.count());
  }
  return s;
}

std::size_t encode_proxy_header(ProxyProtocol version, const tcp::endpoint& client,
                                const tcp::endpoint& server, ProxyHeaderBuffer& out) noexcept {
  switch (version) {
    case ProxyProtocol::None:
      return 0;
    case ProxyProtocol::V1:
      return encode_v1(client, server, out);
    case ProxyProtocol::V2:
      return encode_v2(client, server, out);
  }
  return 0;
}

void RateLimitedWarning::warn(std::string_view message) {
  const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  std::int64_t next = next_allowed_.load(std::memory_order_relaxed);
  if (now < next || !next_allowed_.compare_exchange_strong(next, now + interval_.count(),
                                                           std::memory_order_relaxed)) {
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto dropped = suppressed_.exchange(0, std::memory_order_relaxed);
  if (dropped == 0) {
    sink_(message);
    return;
  }
  sink_(std::string(message) + " (" + std::to_string(dropped) + " more since the last report)");
}

}  // namespace acmegw::backends
