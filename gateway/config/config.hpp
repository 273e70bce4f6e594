#pragma once
// acmegw's effective configuration (STYLE §22): a plain struct with defaults, filled once at
// startup from the TOML file (gateway/config/toml.hpp) and then the command line flags
// (gateway/config/options.hpp), and checked by one validate() that reports every error.
// Pure: parsing helpers here make no syscalls; only the loaders read files.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "classifier/classify.hpp"
#include "gateway/packet/packet.hpp"

namespace acmegw::gateway {

// A protected destination: the address (or prefix) and TCP port of a production service whose
// client-to-server segments are inspected. Matched pre-DNAT (mangle PREROUTING).
struct Endpoint {
  packet::Address addr;          // network address; host bits below prefix_len are zero
  std::uint8_t prefix_len = 32;  // 32 (v4) / 128 (v6) = one host
  std::uint16_t port = 80;
  // Http unless the port is 443 or the spec says `tls://`.
  classifier::Protocol protocol = classifier::Protocol::Http;
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// A local listen address (metrics endpoint).
struct ListenAddress {
  packet::Address addr;
  std::uint16_t port = 0;
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

// NFQUEUE numbers: `--queue-balance first:first+count-1` (one worker per queue).
struct QueueConfig {
  std::uint16_t first = 0;
  std::uint16_t count = 1;
  std::uint32_t max_len = 4096;  // NFQA_CFG_QUEUE_MAXLEN; beyond it FAIL_OPEN passes packets
};

// Packet/connection marks (Suricata semantics: only the bits under `mask` are read or
// replaced, so other users of the mark keep theirs). All values lie under the mask and differ.
struct Marks {
  std::uint32_t mask = 0x00f00000;
  std::uint32_t pass = 0x00100000;   // verdict mark of production flows (saved to connmark)
  std::uint32_t taken = 0x00200000;  // verdict mark of taken-over flows (policy-routed to local)
  std::uint32_t hold = 0x00300000;   // connmark set via ctnetlink while segments are held
  std::uint32_t rst = 0x00400000;    // SO_MARK of the spoofed RST to production (untracked)
  // Verdict mark of flows dropped by `policy = "drop"`: saved to the connmark, and the ruleset
  // drops every later packet of the flow in the kernel (docs/rules.md).
  std::uint32_t drop = 0x00500000;
};

// How TAKEN packets reach the local repaired socket (docs/takeover.md "Delivery").
// IPv4: no ip rule (any rule unmerges the FIB tables and taxes every forwarded packet): the
// ruleset sets the TOS bits `tos` on taken packets and `ip route local NET tos T table local`
// delivers them; other packets toward protected addresses get those bits cleared first.
// IPv6 has no TOS in its route key: `ip -6 rule fwmark TAKEN lookup table` + `local ::/0`.
struct RoutingConfig {
  // The FIB compares TOS & 0x1c (IPTOS_RT_MASK) only. 0x0c matches DSCP xxx011, all of them
  // pool 2 "experimental or local use" codepoints (RFC 2474 §6): never a standard PHB.
  std::uint32_t tos = 0x0c;
  std::uint32_t table = 3802;     // IPv6: `ip -6 route local ::/0 dev lo table T`
  std::uint32_t priority = 3802;  // IPv6: `ip -6 rule pref P fwmark TAKEN/mask lookup T`
  // rtm_protocol of acmegw's IPv4 local routes: `rules remove` flushes routes of this protocol
  // (including those a takeover added for a post-DNAT address).
  static constexpr std::uint8_t kRouteProtocol = 0xac;
  static constexpr std::uint32_t kTosMask = 0x1c;
};

// Bounds on flows whose first request is still undecided (segments held in the queue). The
// bytes held per flow are bounded by the classifier limit of the flow's protocol
// (Config::held_bytes_limit).
struct HoldConfig {
  std::uint32_t max_flows = 65536;            // undecided flows; beyond: new flows -> production
  std::uint32_t max_segments_per_flow = 32;   // held segments of one flow
  std::uint32_t timeout_ms = 2000;            // undecided this long -> production
  std::uint64_t max_total_bytes = 64u << 20;  // payload bytes held over all flows
};

// Bounds on taken-over connections (docs/configuration.md "Sessions"). At a cap the challenge
// flow goes to production (fail-open) and the cap's counter counts it.
struct SessionLimits {
  std::uint32_t max = 4096;           // open sessions (HTTP, relayed and TLS) at once
  std::uint32_t max_per_source = 64;  // of one client: an IPv4 address, an IPv6 /64
  // A request head (HTTP) or the TLS handshake must be complete this long after it began.
  std::uint32_t header_timeout_ms = 10'000;
  std::uint32_t idle_timeout_ms = 30'000;  // no byte either way this long: abort (RST)
  // A session that answers (HTTP answering, tls-alpn-01) ends after this long, whatever it
  // does; a connection relayed to production or a relay target only has the idle timeout.
  std::uint32_t total_timeout_ms = 60'000;
};

enum class LogLevel : std::uint8_t { Trace, Debug, Info, Warn, Error, Critical, Off };

enum class BackendKind : std::uint8_t { Thumbprint, Tokens, Webroot, Relay, Redirect, Certdir };

// Which kinds can answer which challenge: http-01 (`backend`, `[[route]]`) or tls-alpn-01
// (`tls_backend`, `[[tls_route]]`; the built-in responder on the tokens store, certdir, relay).
[[nodiscard]] bool serves_http(BackendKind k) noexcept;
[[nodiscard]] bool serves_tls(BackendKind k) noexcept;

// `--backend KIND=VALUE`, syntax-checked only; the takeover/backends code interprets VALUE.
struct BackendSpec {
  BackendKind kind = BackendKind::Thumbprint;
  std::string value;
  friend bool operator==(const BackendSpec&, const BackendSpec&) = default;
};

// What a route does for a well-formed token its backend does not know (docs/configuration.md).
enum class OnMiss : std::uint8_t {
  NotFound,    // answer 404 (default)
  Production,  // relay the connection, from that request on, to production
};

// One `[[route]]` table: challenges whose Host matches one of `hosts` go to `backend`; or one
// `[[tls_route]]` table: tls-alpn-01 hellos whose SNI matches (on_miss unused: a miss on a TLS
// route always goes to production, before the takeover).
struct RouteConfig {
  std::vector<std::string> hosts;  // "name", "*.suffix"; empty = the default route
  BackendSpec backend;
  OnMiss on_miss = OnMiss::NotFound;
  std::string where;  // "FILE:LINE" of the [[route]] header, for errors
  friend bool operator==(const RouteConfig&, const RouteConfig&) = default;
};

// What happens to a flow whose first request was classified as not a challenge.
enum class Policy : std::uint8_t {
  Pass,           // production, untouched, in the kernel fast path (default)
  RedirectHttps,  // taken over and answered 301 to https://HOST/PATH
  Reject,         // taken over and reset
  Drop,           // dropped
};

// An address prefix (challenge.allow / challenge.deny).
struct Cidr {
  packet::Address addr;          // network address; host bits are zero
  std::uint8_t prefix_len = 32;  // 32 (v4) / 128 (v6) = one host
  // True when `a` lies inside this prefix (families differ: false).
  [[nodiscard]] bool contains(const packet::Address& a) const noexcept;
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// Which sources may have their challenges taken over (default: everyone; ACME CAs do not
// publish their addresses). deny wins over allow; an empty allow list allows all.
struct ChallengeSources {
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;
  [[nodiscard]] bool admits(const packet::Address& src) const noexcept;
  friend bool operator==(const ChallengeSources&, const ChallengeSources&) = default;
};

struct Config {
  std::vector<Endpoint> protect;  // at least one
  QueueConfig queue;
  Marks marks;
  RoutingConfig routing;
  std::string chain_prefix = "ACMEGW";  // our chains: PREFIX-PRE (mangle), -FWD, -OUT
  HoldConfig hold;
  SessionLimits sessions;
  classifier::Limits limits;
  // xt_bpf prefilter passes non-challenge first segments in the kernel. Default: on with policy
  // "pass", off otherwise (apply_policy_defaults); set explicitly it must suit the policy.
  bool prefilter = true;
  bool keep_rules = false;  // `run`: leave the rules installed on exit
  LogLevel log_level = LogLevel::Info;
  std::optional<ListenAddress> metrics_listen;              // nullopt = no metrics endpoint
  std::string control_socket = "/run/acmegw/control.sock";  // a socket spec; empty = none
  std::optional<BackendSpec> backend;                       // the default route (`--backend`)
  std::vector<RouteConfig> routes;                          // `[[route]]` tables, in file order
  std::optional<BackendSpec> tls_backend;  // the default TLS route (`--tls-backend`)
  std::vector<RouteConfig> tls_routes;     // `[[tls_route]]` tables, in file order
  Policy policy = Policy::Pass;            // non-challenge flows
  ChallengeSources challenge;              // source allow/deny for challenge flows

  // Where each set key came from, for error messages: TOML key path ("marks.pass") ->
  // "FILE:LINE" or "--flag". Filled by the loaders; keys absent here are defaults.
  std::map<std::string, std::string, std::less<>> origins;

  // The DROP verdict mark means something only under policy drop: only then is it validated
  // (under the mask, distinct), so with any other policy it may equal another mark (e.g. HOLD
  // of a config older than DROP) and the engine, the takeover and the ruleset ignore it.
  [[nodiscard]] bool uses_drop_mark() const noexcept { return policy == Policy::Drop; }

  // The default TLS route: tls_backend; with neither tls_backend nor [[tls_route]] tables, the
  // built-in responder on the tokens store when `backend` is tokens=…; else none (tls-alpn-01
  // hellos whose SNI no TLS route matches go to production).
  [[nodiscard]] std::optional<BackendSpec> default_tls_backend() const {
    if (tls_backend) {
      return tls_backend;
    }
    if (tls_routes.empty() && backend && backend->kind == BackendKind::Tokens) {
      return backend;
    }
    return std::nullopt;
  }
  // True when a challenge takeover can happen at all: some http or TLS route exists.
  [[nodiscard]] bool has_backend() const {
    return backend || !routes.empty() || tls_backend || !tls_routes.empty();
  }

  // Bytes of one flow's client stream that may be held: the classifier limit for `p`.
  [[nodiscard]] std::size_t held_bytes_limit(classifier::Protocol p) const noexcept {
    return p == classifier::Protocol::Tls ? limits.max_client_hello : limits.max_http_head;
  }
};

// One configuration problem. `where` is "FILE:LINE", "--flag" or empty (a default/derived
// value); `key` is the TOML key path.
struct ConfigError {
  std::string where;
  std::string key;
  std::string message;
  // "WHERE: KEY: MESSAGE" (parts that are empty are left out).
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const ConfigError&, const ConfigError&) = default;
};

// Thrown by the loaders and finish_config() with every error found; what() lists them, one per
// line. Startup only (STYLE §11).
class ConfigException : public std::runtime_error {
 public:
  explicit ConfigException(std::vector<ConfigError> errors);
  [[nodiscard]] const std::vector<ConfigError>& errors() const noexcept { return errors_; }

 private:
  std::vector<ConfigError> errors_;
};

// Fills in the defaults that depend on other keys: a policy other than "pass" turns the
// prefilter off unless the operator set `prefilter` (then validate() judges the pair). Called
// by the loaders after every key is applied, before validate().
void apply_policy_defaults(Config& cfg) noexcept;

// What a configuration is loaded for: validate() demands what that use needs, nothing more.
enum class ConfigUse : std::uint8_t {
  Run,          // `run`, `check-config`: everything
  Rules,        // `rules install`, `rules print`: the ruleset's inputs (endpoints, policy, marks,
                // routing); no backend, which only `run` uses
  RulesRemove,  // `rules remove`, `rules print --counters`: names, marks and routing only, so an
                // empty `protect` is fine
};

// Checks every cross-field and range rule that `use` needs; returns all violations (empty =
// valid). Errors carry the origin recorded in cfg.origins.
[[nodiscard]] std::vector<ConfigError> validate(const Config& cfg, ConfigUse use = ConfigUse::Run);

// ---- Value parsers shared by the TOML loader and the flags. Each returns the value, or
// std::nullopt and sets `error` to a message naming the offending text.

// "ADDR", "ADDR/PREFIX", "ADDR:PORT", "ADDR/PREFIX:PORT", "[V6]", "[V6]:PORT",
// "[V6/PREFIX]:PORT", a bare v6 "V6" or "V6/PREFIX" (no port), optionally prefixed by
// "http://" or "tls://". Port defaults to 80 (http) / 443 (tls://).
[[nodiscard]] std::optional<Endpoint> parse_endpoint(std::string_view text, std::string& error);
// "A" (one queue) or "A:B" (queues A..B inclusive), as iptables' --queue-balance.
[[nodiscard]] std::optional<QueueConfig> parse_queue_balance(std::string_view text,
                                                             std::string& error);
// Decimal or 0x-hex unsigned value.
[[nodiscard]] std::optional<std::uint32_t> parse_u32(std::string_view text, std::string& error);
[[nodiscard]] std::optional<std::uint64_t> parse_u64(std::string_view text, std::string& error);
// "true" | "false".
[[nodiscard]] std::optional<bool> parse_bool(std::string_view text, std::string& error);
// "trace" | "debug" | "info" | "warn" | "error" | "critical" | "off".
[[nodiscard]] std::optional<LogLevel> parse_log_level(std::string_view text, std::string& error);
// "ADDR:PORT" or "[V6]:PORT".
[[nodiscard]] std::optional<ListenAddress> parse_listen(std::string_view text, std::string& error);
// "KIND=VALUE" with KIND one of thumbprint, tokens, webroot, relay, redirect, certdir.
[[nodiscard]] std::optional<BackendSpec> parse_backend(std::string_view text, std::string& error);
// "pass" | "redirect-https" | "reject" | "drop".
[[nodiscard]] std::optional<Policy> parse_policy(std::string_view text, std::string& error);
// "404" | "production".
[[nodiscard]] std::optional<OnMiss> parse_on_miss(std::string_view text, std::string& error);
// "ADDR" or "ADDR/PREFIX" (v4 or v6, host bits zero).
[[nodiscard]] std::optional<Cidr> parse_cidr(std::string_view text, std::string& error);

// Canonical text forms (inverse of the parsers; used in logs and the effective-config dump).
[[nodiscard]] std::string to_string(const packet::Address& a);
[[nodiscard]] std::string to_string(const Endpoint& e);
[[nodiscard]] std::string to_string(const ListenAddress& l);
[[nodiscard]] std::string_view to_string(LogLevel l) noexcept;
[[nodiscard]] std::string_view to_string(BackendKind k) noexcept;
[[nodiscard]] std::string_view to_string(Policy p) noexcept;
[[nodiscard]] std::string_view to_string(OnMiss m) noexcept;
[[nodiscard]] std::string to_string(const Cidr& c);
[[nodiscard]] std::string to_string(const BackendSpec& b);
// Multi-line human-readable summary of the effective configuration (logged once at info).
[[nodiscard]] std::string describe(const Config& cfg);

}  // namespace acmegw::gateway
