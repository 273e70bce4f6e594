#include "gateway/config/config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include <arpa/inet.h>

#include "backends/routes.hpp"

namespace acmegw::gateway {
namespace {

using classifier::Protocol;

constexpr std::string_view kHttpScheme = "http://";
constexpr std::string_view kTlsScheme = "tls://";
constexpr std::uint16_t kHttpPort = 80;
constexpr std::uint16_t kTlsPort = 443;

// Smallest classifier limits that can still hold a real challenge request head (request line +
// Host) or a minimal ClientHello; below them every challenge would be sent to production.
constexpr std::size_t kMinHttpHead = 256;
constexpr std::size_t kMinClientHello = 256;
// Below this a session timeout would fire inside one round trip of a distant CA.
constexpr std::uint32_t kMinSessionTimeoutMs = 100;

// Longest chain name iptables accepts is 28 characters (XT_EXTENSION_MAXNAMELEN - 1); our
// longest suffix is "-PRE"/"-FWD"/"-OUT".
constexpr std::size_t kMaxChainPrefix = 28 - 4;

// Reserved routing tables (rt_tables: unspec, default, main, local).
constexpr std::array<std::uint32_t, 4> kReservedTables = {0, 253, 254, 255};
// `ip rule` preferences 0 (local) and 32766/32767 (main/default) are the kernel's; ours must
// sit before main so TAKEN packets are routed locally.
constexpr std::uint32_t kMaxRulePriority = 32765;

std::string quoted(std::string_view s) {
  std::string out = "'";
  out.append(s);
  out += '\'';
  return out;
}

template <typename T>
std::optional<T> parse_uint(std::string_view text, std::string& error) {
  int base = 10;
  std::string_view digits = text;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  T value{};
  const auto* end = digits.data() + digits.size();
  const auto [ptr, ec] = std::from_chars(digits.data(), end, value, base);
  if (digits.empty() || ec == std::errc::invalid_argument || ptr != end) {
    error = "not a non-negative integer: " + quoted(text);
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range) {
    error =
        "out of range (max " + std::to_string(std::numeric_limits<T>::max()) + "): " + quoted(text);
    return std::nullopt;
  }
  return value;
}

std::optional<std::uint16_t> parse_port(std::string_view text, std::string& error) {
  const auto port = parse_uint<std::uint16_t>(text, error);
  if (!port) {
    error = "bad port " + quoted(text) + ": " + error;
    return std::nullopt;
  }
  if (*port == 0) {
    error = "port 0 is not a valid port";
    return std::nullopt;
  }
  return port;
}

std::optional<packet::Address> parse_address(std::string_view text, std::string& error) {
  // inet_pton needs a NUL-terminated string; addresses are short.
  const std::string s{text};
  packet::Address a;
  if (s.find(':') != std::string::npos) {
    a.family = packet::Family::V6;
    if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
      return a;
    }
  } else {
    a.family = packet::Family::V4;
    if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
      return a;
    }
  }
  error = "not an IPv4 or IPv6 address: " + quoted(text);
  return std::nullopt;
}

std::uint8_t full_prefix(packet::Family f) {
  return f == packet::Family::V4 ? 32 : 128;
}

// "ADDR" or "ADDR/PREFIX" (no brackets, no port).
bool parse_prefix(std::string_view text, Endpoint& ep, std::string& error) {
  const auto slash = text.find('/');
  const auto addr = parse_address(text.substr(0, slash), error);
  if (!addr) {
    return false;
  }
  ep.addr = *addr;
  ep.prefix_len = full_prefix(addr->family);
  if (slash == std::string_view::npos) {
    return true;
  }
  const auto len = parse_uint<std::uint8_t>(text.substr(slash + 1), error);
  if (!len || *len > full_prefix(addr->family)) {
    error = "bad prefix length " + quoted(text.substr(slash + 1)) + " (0.." +
            std::to_string(full_prefix(addr->family)) + ")";
    return false;
  }
  ep.prefix_len = *len;
  const std::size_t size = addr->family == packet::Family::V4 ? 4 : 16;
  for (std::size_t i = 0; i < size; ++i) {
    const int bits_in_prefix = std::clamp(static_cast<int>(*len) - static_cast<int>(i * 8), 0, 8);
    const auto host_mask = static_cast<std::uint8_t>(0xffu >> bits_in_prefix);
    if ((addr->bytes[i] & host_mask) != 0) {
      error = "host bits set in " + quoted(text) + " (did you mean the network address?)";
      return false;
    }
  }
  return true;
}

std::string join_lines(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) {
      out += '\n';
    }
    out += e.to_string();
  }
  return out;
}

bool valid_chain_prefix(std::string_view p) {
  if (p.empty() || p.size() > kMaxChainPrefix ||
      !((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z'))) {
    return false;
  }
  return std::all_of(p.begin(), p.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

std::string hex(std::uint32_t v) {
  std::array<char, 11> buf{};
  std::snprintf(buf.data(), buf.size(), "0x%08x", v);
  return buf.data();
}

bool printable_no_space(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::string ConfigError::to_string() const {
  std::string out;
  for (const std::string* part : {&where, &key}) {
    if (!part->empty()) {
      out += *part;
      out += ": ";
    }
  }
  out += message;
  return out;
}

ConfigException::ConfigException(std::vector<ConfigError> errors)
    : std::runtime_error(join_lines(errors)), errors_(std::move(errors)) {}

std::optional<std::uint32_t> parse_u32(std::string_view text, std::string& error) {
  return parse_uint<std::uint32_t>(text, error);
}

std::optional<std::uint64_t> parse_u64(std::string_view text, std::string& error) {
  return parse_uint<std::uint64_t>(text, error);
}

std::optional<bool> parse_bool(std::string_view text, std::string& error) {
  if (text == "true") {
    return true;
  }
  if (text == "false") {
    return false;
  }
  error = "expected true or false: " + quoted(text);
  return std::nullopt;
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string& error) {
  const std::string_view original = text;
  Endpoint ep;
  std::optional<Protocol> scheme;
  if (text.starts_with(kHttpScheme)) {
    scheme = Protocol::Http;
    text.remove_prefix(kHttpScheme.size());
  } else if (text.starts_with(kTlsScheme)) {
    scheme = Protocol::Tls;
    text.remove_prefix(kTlsScheme.size());
  }
  std::string_view prefix_part = text;
  std::string_view port_part;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      error = "missing ']' in " + quoted(original);
      return std::nullopt;
    }
    prefix_part = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        error = "expected ':PORT' after ']' in " + quoted(original);
        return std::nullopt;
      }
      port_part = rest.substr(1);
      if (port_part.empty()) {
        error = "empty port in " + quoted(original);
        return std::nullopt;
      }
    }
    if (prefix_part.find(':') == std::string_view::npos) {
      error = "brackets are for IPv6 addresses: " + quoted(original);
      return std::nullopt;
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    prefix_part = text.substr(0, colon);
    port_part = text.substr(colon + 1);
    if (port_part.empty()) {
      error = "empty port in " + quoted(original);
      return std::nullopt;
    }
  }  // else: "V4[/P]" or a bare "V6[/P]" without a port
  if (!parse_prefix(prefix_part, ep, error)) {
    error = "bad protected endpoint " + quoted(original) + ": " + error;
    return std::nullopt;
  }
  if (!port_part.empty()) {
    const auto port = parse_port(port_part, error);
    if (!port) {
      error = "bad protected endpoint " + quoted(original) + ": " + error;
      return std::nullopt;
    }
    ep.port = *port;
  } else {
    ep.port = scheme == Protocol::Tls ? kTlsPort : kHttpPort;
  }
  ep.protocol = scheme.value_or(ep.port == kTlsPort ? Protocol::Tls : Protocol::Http);
  return ep;
}

std::optional<QueueConfig> parse_queue_balance(std::string_view text, std::string& error) {
  const auto colon = text.find(':');
  const auto first = parse_uint<std::uint16_t>(text.substr(0, colon), error);
  if (!first) {
    error = "bad queue number in " + quoted(text) + ": " + error;
    return std::nullopt;
  }
  QueueConfig q;
  q.first = *first;
  if (colon == std::string_view::npos) {
    return q;
  }
  const auto last = parse_uint<std::uint16_t>(text.substr(colon + 1), error);
  if (!last) {
    error = "bad queue number in " + quoted(text) + ": " + error;
    return std::nullopt;
  }
  if (*last < *first) {
    error = "queue range " + quoted(text) + " ends before it starts";
    return std::nullopt;
  }
  q.count = static_cast<std::uint16_t>(*last - *first + 1);
  return q;
}

std::optional<LogLevel> parse_log_level(std::string_view text, std::string& error) {
  for (const LogLevel l : {LogLevel::Trace, LogLevel::Debug, LogLevel::Info, LogLevel::Warn,
                           LogLevel::Error, LogLevel::Critical, LogLevel::Off}) {
    if (to_string(l) == text) {
      return l;
    }
  }
  error = "unknown log level " + quoted(text) + " (trace, debug, info, warn, error, critical, off)";
  return std::nullopt;
}

std::optional<ListenAddress> parse_listen(std::string_view text, std::string& error) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) {
      error = "expected '[V6]:PORT': " + quoted(text);
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
      error = "expected 'ADDR:PORT' or '[V6]:PORT': " + quoted(text);
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  const auto addr = parse_address(host, error);
  if (!addr) {
    return std::nullopt;
  }
  const auto p = parse_port(port, error);
  if (!p) {
    return std::nullopt;
  }
  return ListenAddress{*addr, *p};
}

bool serves_http(BackendKind k) noexcept {
  return k != BackendKind::Certdir;
}

bool serves_tls(BackendKind k) noexcept {
  return k == BackendKind::Tokens || k == BackendKind::Certdir || k == BackendKind::Relay;
}

std::optional<BackendSpec> parse_backend(std::string_view text, std::string& error) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos) {
    error = "expected KIND=VALUE (thumbprint, tokens, webroot, relay, redirect, certdir): " +
            quoted(text);
    return std::nullopt;
  }
  const std::string_view kind_text = text.substr(0, eq);
  const std::string_view value = text.substr(eq + 1);
  std::optional<BackendKind> kind;
  for (const BackendKind k : {BackendKind::Thumbprint, BackendKind::Tokens, BackendKind::Webroot,
                              BackendKind::Relay, BackendKind::Redirect, BackendKind::Certdir}) {
    if (to_string(k) == kind_text) {
      kind = k;
    }
  }
  if (!kind) {
    error = "unknown backend kind " + quoted(kind_text) +
            " (thumbprint, tokens, webroot, relay, redirect, certdir)";
    return std::nullopt;
  }
  if (value.empty() || !printable_no_space(value)) {
    error = "backend " + std::string{kind_text} +
            " needs a non-empty value without spaces or control characters";
    return std::nullopt;
  }
  switch (*kind) {
    case BackendKind::Thumbprint:
      // RFC 7638 JWK thumbprint: base64url (no padding) of a SHA-256 digest = 43 characters.
      if (value.size() != 43 || !std::all_of(value.begin(), value.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
          })) {
        error = "thumbprint must be 43 base64url characters (RFC 7638 SHA-256): " + quoted(value);
        return std::nullopt;
      }
      break;
    case BackendKind::Tokens:
    case BackendKind::Webroot:
    case BackendKind::Certdir:
      if (value[0] != '/') {
        error = "backend " + std::string{kind_text} + " needs an absolute path: " + quoted(value);
        return std::nullopt;
      }
      break;
    case BackendKind::Relay: {
      // HOST:PORT[,proxy=v1|v2][,connect-timeout=MS]: the options are checked by
      // backends::parse_relay_spec when the backend is built.
      const std::string_view target = value.substr(0, value.find(','));
      const auto colon = target.rfind(':');
      if (colon == std::string_view::npos || colon == 0 ||
          !parse_port(target.substr(colon + 1), error)) {
        error = "relay needs HOST:PORT: " + quoted(value);
        return std::nullopt;
      }
      break;
    }
    case BackendKind::Redirect:
      if (!value.starts_with("http://") && !value.starts_with("https://")) {
        error = "redirect needs an http:// or https:// URL: " + quoted(value);
        return std::nullopt;
      }
      break;
  }
  return BackendSpec{*kind, std::string{value}};
}

std::optional<Policy> parse_policy(std::string_view text, std::string& error) {
  for (const Policy p : {Policy::Pass, Policy::RedirectHttps, Policy::Reject, Policy::Drop}) {
    if (to_string(p) == text) {
      return p;
    }
  }
  error = "unknown policy " + quoted(text) + " (pass, redirect-https, reject, drop)";
  return std::nullopt;
}

std::optional<OnMiss> parse_on_miss(std::string_view text, std::string& error) {
  for (const OnMiss m : {OnMiss::NotFound, OnMiss::Production}) {
    if (to_string(m) == text) {
      return m;
    }
  }
  error = "unknown on-miss " + quoted(text) + " (404, production)";
  return std::nullopt;
}

std::optional<Cidr> parse_cidr(std::string_view text, std::string& error) {
  Endpoint ep;  // parse_prefix fills the address part only
  if (!parse_prefix(text, ep, error)) {
    error = "bad address prefix " + quoted(text) + ": " + error;
    return std::nullopt;
  }
  return Cidr{ep.addr, ep.prefix_len};
}

bool Cidr::contains(const packet::Address& a) const noexcept {
  if (a.family != addr.family) {
    return false;
  }
  for (std::size_t i = 0; i * 8 < prefix_len; ++i) {
    const int bits = std::min(8, static_cast<int>(prefix_len) - static_cast<int>(i * 8));
    const auto mask = static_cast<std::uint8_t>(0xff00u >> bits);
    if ((a.bytes[i] & mask) != addr.bytes[i]) {
      return false;
    }
  }
  return true;
}

bool ChallengeSources::admits(const packet::Address& src) const noexcept {
  const auto in = [&](const std::vector<Cidr>& list) {
    return std::any_of(list.begin(), list.end(), [&](const Cidr& c) { return c.contains(src); });
  };
  return !in(deny) && (allow.empty() || in(allow));
}

void apply_policy_defaults(Config& cfg) noexcept {
  if (cfg.policy != Policy::Pass && !cfg.origins.contains("prefilter")) {
    cfg.prefilter = false;
  }
}

namespace {

// The policy's needs (docs/configuration.md "Policy"). `fail(key, message)` records an error.
template <typename Fail>
void validate_policy(const Config& cfg, ConfigUse use, Fail& fail) {
  if (cfg.policy == Policy::Pass) {
    return;
  }
  const std::string name = quoted(to_string(cfg.policy));
  if (cfg.prefilter) {
    // Only an explicit `prefilter = true` / an origin gets here (apply_policy_defaults): the
    // prefilter passes non-challenge first segments in the kernel, so acmegw would never see
    // the flows the policy is about.
    fail("prefilter", "prefilter = true cannot be combined with policy " + name +
                          ": the prefilter passes non-challenge flows in the kernel (leave "
                          "prefilter unset or false)");
  }
  // Only `run` carries the policy out; the rules commands build the same ruleset without one.
  if (use == ConfigUse::Run && !cfg.backend && cfg.routes.empty()) {  // TLS routes do not count
    fail("policy", "policy " + name +
                       " needs a backend (--backend / backend): acmegw carries it out with the "
                       "takeover that serves challenges");
  }
  if (cfg.policy == Policy::RedirectHttps && cfg.backend &&
      cfg.backend->kind == BackendKind::Relay && cfg.routes.empty()) {
    fail("policy",
         "policy \"redirect-https\" needs an answering backend: a relay backend takes "
         "whole connections to the validation host, so acmegw could not answer "
         "the redirects");
  }
}

enum class RouteKind : std::uint8_t { Http, Tls };

// `backend` + `[[route]]` (Http) or `tls_backend` + `[[tls_route]]` (Tls): every backend is of a
// kind that can answer that challenge, and the hosts build the same RouteTable the takeover
// builds, so what passes here cannot fail there.
template <typename Fail>
void validate_routes(const Config& cfg, RouteKind kind, Fail& fail,
                     std::vector<ConfigError>& errors) {
  const bool tls = kind == RouteKind::Tls;
  const std::optional<BackendSpec>& fallback = tls ? cfg.tls_backend : cfg.backend;
  const std::vector<RouteConfig>& routes = tls ? cfg.tls_routes : cfg.routes;
  const std::string table_name = tls ? "tls_route" : "route";
  const std::string fallback_key = tls ? "tls_backend" : "backend";
  const auto kind_error = [&](BackendKind k) -> std::optional<std::string> {
    if (tls && !serves_tls(k)) {
      return std::string{to_string(k)} +
             " cannot answer tls-alpn-01 (tls_backend kinds: tokens, certdir, relay)";
    }
    if (!tls && !serves_http(k)) {
      return std::string{to_string(k)} +
             " serves tls-alpn-01 certificates only: give it as tls_backend / --tls-backend";
    }
    return std::nullopt;
  };
  backends::RouteTable table;
  if (fallback) {
    (void)table.add("*", 0);
    if (const auto e = kind_error(fallback->kind)) {
      fail(fallback_key, *e);
    }
  }
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const RouteConfig& r = routes[i];
    const std::string name = table_name + "[" + std::to_string(i + 1) + "]";
    const auto route_fail = [&](const std::string& key, std::string message) {
      errors.push_back(ConfigError{r.where, name + key, std::move(message)});
    };
    if (const auto e = kind_error(r.backend.kind)) {
      route_fail(".backend", *e);
    }
    if (r.hosts.empty()) {
      if (table.add("*", i + 1)) {
        route_fail(".hosts", fallback ? "a second default route (no hosts) besides " +
                                            fallback_key + "/--" + (tls ? "tls-backend" : "backend")
                                      : std::string{"a second default route (no hosts)"});
      }
      continue;
    }
    for (const auto& h : r.hosts) {
      if (h == "*") {
        route_fail(".hosts", "write the default route without hosts, not \"*\"");
      } else if (const auto e = table.add(h, i + 1)) {
        route_fail(".hosts", e->starts_with("route: ") ? e->substr(7) : *e);
      }
    }
  }
}

}  // namespace

std::vector<ConfigError> validate(const Config& cfg, ConfigUse use) {
  std::vector<ConfigError> errors;
  auto fail = [&](std::string_view key, std::string message) {
    const auto it = cfg.origins.find(key);
    errors.push_back(ConfigError{it == cfg.origins.end() ? std::string{} : it->second,
                                 std::string{key}, std::move(message)});
  };

  if (use != ConfigUse::RulesRemove && cfg.protect.empty()) {
    fail("protect", "no protected endpoint: give --protect ADDR[:PORT] or protect = [\"ADDR\"]");
  }
  for (std::size_t i = 0; i < cfg.protect.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      const Endpoint& a = cfg.protect[i];
      const Endpoint& b = cfg.protect[j];
      if (a.addr == b.addr && a.prefix_len == b.prefix_len && a.port == b.port) {
        fail("protect", "endpoint " + to_string(a) + " is listed twice");
      }
    }
  }

  if (cfg.queue.count == 0) {
    fail("queue.balance", "needs at least one queue");
  } else if (cfg.queue.first + cfg.queue.count - 1u > std::numeric_limits<std::uint16_t>::max()) {
    fail("queue.balance", "queues " + std::to_string(cfg.queue.first) + ".." +
                              std::to_string(cfg.queue.first + cfg.queue.count - 1u) +
                              " exceed queue number 65535");
  }
  if (cfg.queue.max_len == 0) {
    fail("queue.max_len", "must be at least 1");
  }

  const Marks& m = cfg.marks;
  if (m.mask == 0) {
    fail("marks.mask", "must not be 0");
  } else {
    const std::pair<std::string_view, std::uint32_t> values[] = {{"marks.pass", m.pass},
                                                                 {"marks.taken", m.taken},
                                                                 {"marks.hold", m.hold},
                                                                 {"marks.rst", m.rst},
                                                                 {"marks.drop", m.drop}};
    // The DROP mark is only used by policy drop: a config written before it existed (custom
    // mask, four marks) stays valid unless it asks for drop or sets the mark.
    const bool check_drop = cfg.uses_drop_mark() || cfg.origins.contains("marks.drop");
    for (std::size_t i = 0; i < std::size(values) - (check_drop ? 0 : 1); ++i) {
      const auto [key, v] = values[i];
      if ((v & m.mask) == 0) {
        fail(key, "value " + hex(v) + " has no bit under marks.mask " + hex(m.mask));
        continue;  // equal to the others under the mask, but that is the same mistake
      }
      if ((v & ~m.mask) != 0) {
        fail(key, "value " + hex(v) + " has bits outside marks.mask " + hex(m.mask));
      }
      for (std::size_t j = 0; j < i; ++j) {
        if ((values[j].second & m.mask) == (v & m.mask)) {
          // Blame the key the operator set (it has an origin), not the default it collides with.
          const bool blame_j = !cfg.origins.contains(key) && cfg.origins.contains(values[j].first);
          const auto [bad, other] =
              blame_j ? std::pair{values[j].first, key} : std::pair{key, values[j].first};
          fail(bad, "value " + hex(v) + " equals " + std::string{other});
        }
      }
    }
  }

  if (const std::uint32_t tos = cfg.routing.tos;
      tos == 0 || (tos & ~RoutingConfig::kTosMask) != 0) {
    fail("routing.tos", "value " + hex(tos) +
                            " must be non-zero and within 0x1c (the TOS bits the kernel's route "
                            "lookup compares): 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18 or 0x1c");
  }
  if (std::find(kReservedTables.begin(), kReservedTables.end(), cfg.routing.table) !=
      kReservedTables.end()) {
    fail("routing.table", "table " + std::to_string(cfg.routing.table) +
                              " is reserved (0 unspec, 253 default, 254 main, 255 local)");
  }
  if (cfg.routing.priority == 0 || cfg.routing.priority > kMaxRulePriority) {
    fail("routing.priority", "must be 1.." + std::to_string(kMaxRulePriority) +
                                 " (before the main table's rule 32766)");
  }

  if (!valid_chain_prefix(cfg.chain_prefix)) {
    fail("chain_prefix",
         "must be 1.." + std::to_string(kMaxChainPrefix) +
             " characters [A-Za-z0-9_-] starting with a letter: " + quoted(cfg.chain_prefix));
  }

  if (cfg.hold.max_flows == 0) {
    fail("hold.max_flows", "must be at least 1");
  }
  if (cfg.hold.max_segments_per_flow == 0) {
    fail("hold.max_segments_per_flow", "must be at least 1");
  }
  if (cfg.hold.timeout_ms == 0) {
    fail("hold.timeout_ms", "must be at least 1");
  }

  const SessionLimits& sl = cfg.sessions;
  if (sl.max == 0) {
    fail("sessions.max", "must be at least 1");
  }
  if (sl.max_per_source == 0 || sl.max_per_source > sl.max) {
    fail("sessions.max_per_source", "must be 1..sessions.max (" + std::to_string(sl.max) +
                                        "), got " + std::to_string(sl.max_per_source));
  }
  for (const auto& [key, ms] : {std::pair{"sessions.idle_timeout_ms", sl.idle_timeout_ms},
                                std::pair{"sessions.total_timeout_ms", sl.total_timeout_ms}}) {
    if (ms < kMinSessionTimeoutMs) {
      fail(key, "must be at least " + std::to_string(kMinSessionTimeoutMs) + ", got " +
                    std::to_string(ms));
    }
  }
  if (sl.header_timeout_ms < kMinSessionTimeoutMs || sl.header_timeout_ms > sl.total_timeout_ms) {
    fail("sessions.header_timeout_ms", "must be " + std::to_string(kMinSessionTimeoutMs) +
                                           "..sessions.total_timeout_ms (" +
                                           std::to_string(sl.total_timeout_ms) + "), got " +
                                           std::to_string(sl.header_timeout_ms));
  }

  if (cfg.limits.max_http_head < kMinHttpHead ||
      cfg.limits.max_http_head > classifier::kHardMaxHttpHead) {
    fail("limits.max_http_head", "must be " + std::to_string(kMinHttpHead) + ".." +
                                     std::to_string(classifier::kHardMaxHttpHead) + ", got " +
                                     std::to_string(cfg.limits.max_http_head));
  }
  if (cfg.limits.max_client_hello < kMinClientHello ||
      cfg.limits.max_client_hello > classifier::kHardMaxClientHello) {
    fail("limits.max_client_hello", "must be " + std::to_string(kMinClientHello) + ".." +
                                        std::to_string(classifier::kHardMaxClientHello) + ", got " +
                                        std::to_string(cfg.limits.max_client_hello));
  }
  const std::size_t one_flow = std::max(cfg.limits.max_http_head, cfg.limits.max_client_hello);
  if (cfg.hold.max_total_bytes < one_flow) {
    fail("hold.max_total_bytes", "must hold at least one full flow (" + std::to_string(one_flow) +
                                     " bytes, the larger classifier limit)");
  }

  validate_policy(cfg, use, fail);
  validate_routes(cfg, RouteKind::Http, fail, errors);
  validate_routes(cfg, RouteKind::Tls, fail, errors);
  return errors;
}

std::string to_string(const packet::Address& a) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  const int af = a.family == packet::Family::V4 ? AF_INET : AF_INET6;
  if (::inet_ntop(af, a.bytes.data(), buf.data(), buf.size()) == nullptr) {
    return "?";  // unreachable: the buffer fits every address
  }
  return buf.data();
}

std::string to_string(const Endpoint& e) {
  std::string out;
  const Protocol by_port = e.port == kTlsPort ? Protocol::Tls : Protocol::Http;
  if (e.protocol != by_port) {
    out = e.protocol == Protocol::Tls ? kTlsScheme : kHttpScheme;
  }
  std::string net = to_string(e.addr);
  if (e.prefix_len != full_prefix(e.addr.family)) {
    net += '/' + std::to_string(e.prefix_len);
  }
  if (e.addr.family == packet::Family::V6) {
    out += '[' + net + ']';
  } else {
    out += net;
  }
  return out + ':' + std::to_string(e.port);
}

std::string to_string(const ListenAddress& l) {
  const std::string a = to_string(l.addr);
  return (l.addr.family == packet::Family::V6 ? '[' + a + ']' : a) + ':' + std::to_string(l.port);
}

std::string_view to_string(LogLevel l) noexcept {
  switch (l) {
    case LogLevel::Trace:
      return "trace";
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
    case LogLevel::Critical:
      return "critical";
    case LogLevel::Off:
      return "off";
  }
  std::abort();  // corrupt enum (STYLE §15)
}

std::string_view to_string(BackendKind k) noexcept {
  switch (k) {
    case BackendKind::Thumbprint:
      return "thumbprint";
    case BackendKind::Tokens:
      return "tokens";
    case BackendKind::Webroot:
      return "webroot";
    case BackendKind::Relay:
      return "relay";
    case BackendKind::Redirect:
      return "redirect";
    case BackendKind::Certdir:
      return "certdir";
  }
  std::abort();  // corrupt enum (STYLE §15)
}

std::string_view to_string(Policy p) noexcept {
  switch (p) {
    case Policy::Pass:
      return "pass";
    case Policy::RedirectHttps:
      return "redirect-https";
    case Policy::Reject:
      return "reject";
    case Policy::Drop:
      return "drop";
  }
  std::abort();  // corrupt enum (STYLE §15)
}

std::string_view to_string(OnMiss m) noexcept {
  switch (m) {
    case OnMiss::NotFound:
      return "404";
    case OnMiss::Production:
      return "production";
  }
  std::abort();  // corrupt enum (STYLE §15)
}

std::string to_string(const Cidr& c) {
  return to_string(c.addr) + '/' + std::to_string(c.prefix_len);
}

std::string to_string(const BackendSpec& b) {
  return std::string{to_string(b.kind)} + '=' + b.value;
}

std::string describe(const Config& cfg) {
  std::string out = "protect:";
  for (const auto& e : cfg.protect) {
    out += ' ' + to_string(e) + (e.protocol == Protocol::Tls ? " (tls)" : " (http)");
  }
  out += "\nqueues: " + std::to_string(cfg.queue.first) + ".." +
         std::to_string(cfg.queue.first + cfg.queue.count - 1u) +
         " max_len=" + std::to_string(cfg.queue.max_len);
  out += "\nmarks: mask=" + hex(cfg.marks.mask) + " pass=" + hex(cfg.marks.pass) +
         " taken=" + hex(cfg.marks.taken) + " hold=" + hex(cfg.marks.hold) +
         " rst=" + hex(cfg.marks.rst) + " drop=" + hex(cfg.marks.drop);
  out += "\nrouting: tos=" + hex(cfg.routing.tos) + " table=" + std::to_string(cfg.routing.table) +
         " priority=" + std::to_string(cfg.routing.priority);
  out += "\nchains: " + cfg.chain_prefix +
         "-PRE/-FLOW/-HTTP/-FWD/-OUT prefilter=" + (cfg.prefilter ? "on" : "off") +
         (!cfg.prefilter && cfg.policy != Policy::Pass && !cfg.origins.contains("prefilter")
              ? " (default for policy " + std::string{to_string(cfg.policy)} + ")"
              : std::string{}) +
         " keep_rules=" + (cfg.keep_rules ? "yes" : "no");
  out += "\nhold: max_flows=" + std::to_string(cfg.hold.max_flows) +
         " max_segments_per_flow=" + std::to_string(cfg.hold.max_segments_per_flow) +
         " timeout_ms=" + std::to_string(cfg.hold.timeout_ms) +
         " max_total_bytes=" + std::to_string(cfg.hold.max_total_bytes);
  out += "\nsessions: max=" + std::to_string(cfg.sessions.max) +
         " max_per_source=" + std::to_string(cfg.sessions.max_per_source) +
         " header_timeout_ms=" + std::to_string(cfg.sessions.header_timeout_ms) +
         " idle_timeout_ms=" + std::to_string(cfg.sessions.idle_timeout_ms) +
         " total_timeout_ms=" + std::to_string(cfg.sessions.total_timeout_ms);
  out += "\nlimits: max_http_head=" + std::to_string(cfg.limits.max_http_head) +
         " max_client_hello=" + std::to_string(cfg.limits.max_client_hello);
  out += "\nlog_level: " + std::string{to_string(cfg.log_level)};
  out += "\nmetrics: " + (cfg.metrics_listen ? to_string(*cfg.metrics_listen) : "off");
  out += "\ncontrol socket: " + (cfg.control_socket.empty() ? "off" : cfg.control_socket);
  out += "\nbackend: " + (cfg.backend ? to_string(*cfg.backend) : std::string{"none"});
  for (const auto& r : cfg.routes) {
    out += "\nroute:";
    for (const auto& h : r.hosts) {
      out += ' ' + h;
    }
    out += (r.hosts.empty() ? " (default) -> " : " -> ") + to_string(r.backend) +
           " on-miss=" + std::string{to_string(r.on_miss)};
  }
  const auto tls = cfg.default_tls_backend();
  out += "\ntls_backend: " + (tls ? to_string(*tls) : std::string{"none"}) +
         (tls && !cfg.tls_backend ? " (the built-in responder on backend's tokens store)" : "");
  for (const auto& r : cfg.tls_routes) {
    out += "\ntls_route:";
    for (const auto& h : r.hosts) {
      out += ' ' + h;
    }
    out += (r.hosts.empty() ? " (default) -> " : " -> ") + to_string(r.backend);
  }
  out += "\npolicy: " + std::string{to_string(cfg.policy)} +
         (cfg.policy == Policy::Pass ? "" : " (http endpoints; tls endpoints pass)");
  out += "\nchallenge sources: allow";
  for (const auto& c : cfg.challenge.allow) {
    out += ' ' + to_string(c);
  }
  out += cfg.challenge.allow.empty() ? " all" : "";
  out += ", deny";
  for (const auto& c : cfg.challenge.deny) {
    out += ' ' + to_string(c);
  }
  out += cfg.challenge.deny.empty() ? " none" : "";
  return out;
}

}  // namespace acmegw::gateway
