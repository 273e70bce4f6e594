// Config parsing: value parsers, the TOML loader, the flags, validate(), every error message.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/config/options.hpp"

namespace {

using namespace acmegw::gateway;
using acmegw::classifier::Protocol;
using acmegw::packet::Family;
using Flags = std::vector<std::pair<std::string, std::string>>;

const std::filesystem::path kDocs = std::filesystem::path(ACMEGW_SOURCE_DIR) / "docs";

Config from_toml(const std::string& text, const Flags& flags = {}) {
  std::istringstream in(text);
  return build_config(&in, "t.toml", flags);
}

// All error lines of a config that must fail.
std::vector<std::string> errors_of(const std::string& toml, const Flags& flags = {},
                                   bool with_file = true) {
  try {
    std::istringstream in(toml);
    (void)build_config(with_file ? &in : nullptr, "t.toml", flags);
  } catch (const ConfigException& e) {
    std::vector<std::string> out;
    for (const auto& err : e.errors()) {
      out.push_back(err.to_string());
    }
    return out;
  }
  FAIL("config was accepted");
  return {};
}

Endpoint ep(std::string_view text) {
  std::string error;
  const auto e = parse_endpoint(text, error);
  INFO(error);
  REQUIRE(e.has_value());
  return *e;
}

std::string ep_error(std::string_view text) {
  std::string error;
  CHECK_FALSE(parse_endpoint(text, error).has_value());
  return error;
}

}  // namespace

TEST_CASE("parse_endpoint: every accepted form, canonical text and protocol", "[config]") {
  struct Case {
    std::string_view in;
    std::string_view canonical;
    Family family;
    std::uint8_t prefix;
    std::uint16_t port;
    Protocol protocol;
  };
  const Case cases[] = {
      {"203.0.113.10", "203.0.113.10:80", Family::V4, 32, 80, Protocol::Http},
      {"203.0.113.0/24", "203.0.113.0/24:80", Family::V4, 24, 80, Protocol::Http},
      {"203.0.113.10:8080", "203.0.113.10:8080", Family::V4, 32, 8080, Protocol::Http},
      {"203.0.113.0/24:8080", "203.0.113.0/24:8080", Family::V4, 24, 8080, Protocol::Http},
      {"203.0.113.10:443", "203.0.113.10:443", Family::V4, 32, 443, Protocol::Tls},
      {"tls://203.0.113.10", "203.0.113.10:443", Family::V4, 32, 443, Protocol::Tls},
      {"tls://203.0.113.10:8443", "tls://203.0.113.10:8443", Family::V4, 32, 8443, Protocol::Tls},
      {"http://203.0.113.10:443", "http://203.0.113.10:443", Family::V4, 32, 443, Protocol::Http},
      {"0.0.0.0/0", "0.0.0.0/0:80", Family::V4, 0, 80, Protocol::Http},
      {"2001:db8::1", "[2001:db8::1]:80", Family::V6, 128, 80, Protocol::Http},
      {"2001:db8::/32", "[2001:db8::/32]:80", Family::V6, 32, 80, Protocol::Http},
      {"[2001:db8::1]", "[2001:db8::1]:80", Family::V6, 128, 80, Protocol::Http},
      {"[2001:db8::1]:8080", "[2001:db8::1]:8080", Family::V6, 128, 8080, Protocol::Http},
      {"[2001:db8::/64]:443", "[2001:db8::/64]:443", Family::V6, 64, 443, Protocol::Tls},
      {"tls://[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]:443", Family::V6, 128, 443, Protocol::Tls},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    const Endpoint e = ep(c.in);
    CHECK(to_string(e) == c.canonical);
    CHECK(e.addr.family == c.family);
    CHECK(e.prefix_len == c.prefix);
    CHECK(e.port == c.port);
    CHECK(e.protocol == c.protocol);
    CHECK(ep(to_string(e)) == e);  // canonical text round-trips
  }
  CHECK(ep("198.51.100.7").addr.bytes[0] == 198);
  CHECK(ep("198.51.100.7").addr.bytes[3] == 7);
  CHECK(ep("198.51.100.7").addr.bytes[4] == 0);  // v4 uses the first 4 bytes only
}

TEST_CASE("parse_endpoint: every rejected form names the problem", "[config]") {
  CHECK(ep_error("") == "bad protected endpoint '': not an IPv4 or IPv6 address: ''");
  CHECK(ep_error("example.com") ==
        "bad protected endpoint 'example.com': not an IPv4 or IPv6 address: 'example.com'");
  CHECK(ep_error("203.0.113.10/24") ==
        "bad protected endpoint '203.0.113.10/24': host bits set in '203.0.113.10/24' (did you "
        "mean the network address?)");
  CHECK(ep_error("2001:db8::1/64") ==
        "bad protected endpoint '2001:db8::1/64': host bits set in '2001:db8::1/64' (did you "
        "mean the network address?)");
  CHECK(ep_error("203.0.113.0/33") ==
        "bad protected endpoint '203.0.113.0/33': bad prefix length '33' (0..32)");
  CHECK(ep_error("[2001:db8::/129]:80") ==
        "bad protected endpoint '[2001:db8::/129]:80': bad prefix length '129' (0..128)");
  CHECK(ep_error("203.0.113.10:0") ==
        "bad protected endpoint '203.0.113.10:0': port 0 is not a valid port");
  CHECK(ep_error("203.0.113.10:65536") ==
        "bad protected endpoint '203.0.113.10:65536': bad port '65536': out of range (max "
        "65535): '65536'");
  CHECK(ep_error("203.0.113.10:") == "empty port in '203.0.113.10:'");
  CHECK(ep_error("[2001:db8::1]:") == "empty port in '[2001:db8::1]:'");
  CHECK(ep_error("[2001:db8::1") == "missing ']' in '[2001:db8::1'");
  CHECK(ep_error("[2001:db8::1]80") == "expected ':PORT' after ']' in '[2001:db8::1]80'");
  CHECK(ep_error("[192.0.2.1]:80") == "brackets are for IPv6 addresses: '[192.0.2.1]:80'");
  CHECK(ep_error("2001:db8::1:80:") ==
        "bad protected endpoint '2001:db8::1:80:': not an IPv4 or IPv6 address: "
        "'2001:db8::1:80:'");
  CHECK(ep_error("udp://192.0.2.1") ==
        "bad protected endpoint 'udp://192.0.2.1': not an IPv4 or IPv6 address: 'udp'");
}

TEST_CASE("scalar parsers: queue balance, integers, log level, listen, backend", "[config]") {
  std::string e;
  CHECK(parse_queue_balance("3", e)->first == 3);
  CHECK(parse_queue_balance("3", e)->count == 1);
  CHECK(parse_queue_balance("2:5", e)->count == 4);
  CHECK(parse_queue_balance("65535:65535", e)->count == 1);
  CHECK_FALSE(parse_queue_balance("5:3", e));
  CHECK(e == "queue range '5:3' ends before it starts");
  CHECK_FALSE(parse_queue_balance("65536", e));
  CHECK(e == "bad queue number in '65536': out of range (max 65535): '65536'");
  CHECK_FALSE(parse_queue_balance("1:", e));
  CHECK(e == "bad queue number in '1:': not a non-negative integer: ''");

  CHECK(parse_u32("0x00f00000", e) == 0x00f00000u);
  CHECK(parse_u32("0XFF", e) == 0xffu);
  CHECK(parse_u32("4294967295", e) == 4294967295u);
  CHECK_FALSE(parse_u32("4294967296", e));
  CHECK(e == "out of range (max 4294967295): '4294967296'");
  CHECK_FALSE(parse_u32("-1", e));
  CHECK(e == "not a non-negative integer: '-1'");
  CHECK_FALSE(parse_u32("12abc", e));
  CHECK_FALSE(parse_u32("0x", e));
  CHECK(parse_u64("67108864", e) == 67108864u);

  CHECK(parse_log_level("debug", e) == LogLevel::Debug);
  CHECK_FALSE(parse_log_level("DEBUG", e));
  CHECK(e == "unknown log level 'DEBUG' (trace, debug, info, warn, error, critical, off)");

  CHECK(to_string(*parse_listen("127.0.0.1:9891", e)) == "127.0.0.1:9891");
  CHECK(to_string(*parse_listen("[::1]:9891", e)) == "[::1]:9891");
  CHECK_FALSE(parse_listen("::1:9891", e));
  CHECK(e == "expected 'ADDR:PORT' or '[V6]:PORT': '::1:9891'");
  CHECK_FALSE(parse_listen("localhost:80", e));
  CHECK(e == "not an IPv4 or IPv6 address: 'localhost'");

  const std::string thumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
  CHECK(*parse_backend("thumbprint=" + thumb, e) == BackendSpec{BackendKind::Thumbprint, thumb});
  CHECK(parse_backend("tokens=/run/acmegw/tokens.sock", e)->kind == BackendKind::Tokens);
  CHECK(parse_backend("webroot=/var/www/acme", e)->value == "/var/www/acme");
  CHECK(parse_backend("relay=[2001:db8::5]:8080", e)->kind == BackendKind::Relay);
  CHECK(parse_backend("relay=192.0.2.9:80,proxy=v2,connect-timeout=500", e)->kind ==
        BackendKind::Relay);
  CHECK(parse_backend("redirect=https://acme.example.net", e)->kind == BackendKind::Redirect);
  CHECK_FALSE(parse_backend("thumbprint", e));
  CHECK(e ==
        "expected KIND=VALUE (thumbprint, tokens, webroot, relay, redirect, certdir): "
        "'thumbprint'");
  CHECK_FALSE(parse_backend("ftp=x", e));
  CHECK(e == "unknown backend kind 'ftp' (thumbprint, tokens, webroot, relay, redirect, certdir)");
  CHECK_FALSE(parse_backend("thumbprint=abc", e));
  CHECK(e == "thumbprint must be 43 base64url characters (RFC 7638 SHA-256): 'abc'");
  CHECK_FALSE(parse_backend("webroot=var/www", e));
  CHECK(e == "backend webroot needs an absolute path: 'var/www'");
  CHECK_FALSE(parse_backend("relay=host", e));
  CHECK(e == "relay needs HOST:PORT: 'host'");
  CHECK_FALSE(parse_backend("redirect=ftp://x", e));
  CHECK(e == "redirect needs an http:// or https:// URL: 'ftp://x'");
  CHECK_FALSE(parse_backend("webroot=/a b", e));
  CHECK(e == "backend webroot needs a non-empty value without spaces or control characters");
}

TEST_CASE("defaults: valid with one endpoint, marks under the mask", "[config]") {
  Config cfg;
  cfg.protect.push_back(ep("192.0.2.1"));
  CHECK(validate(cfg).empty());
  CHECK(cfg.marks.mask == 0x00f00000u);
  CHECK(cfg.queue.first == 0);
  CHECK(cfg.queue.count == 1);
  CHECK(cfg.chain_prefix == "ACMEGW");
  CHECK(cfg.prefilter);
  CHECK_FALSE(cfg.keep_rules);
  CHECK_FALSE(cfg.metrics_listen);
  CHECK_FALSE(cfg.backend);
  CHECK(cfg.held_bytes_limit(Protocol::Http) == cfg.limits.max_http_head);
  CHECK(cfg.held_bytes_limit(Protocol::Tls) == cfg.limits.max_client_hello);
  CHECK(validate(Config{}) ==
        std::vector<ConfigError>{{"", "protect",
                                  "no protected endpoint: give --protect ADDR[:PORT] or protect "
                                  "= [\"ADDR\"]"}});
  CHECK(validate(Config{}, ConfigUse::RulesRemove).empty());
}

TEST_CASE("the example config in docs/ parses to the documented values", "[config]") {
  std::ifstream in(kDocs / "acmegw.example.toml");
  REQUIRE(in);
  const Config cfg = build_config(&in, "acmegw.example.toml", {});
  REQUIRE(cfg.protect.size() == 4);
  CHECK(to_string(cfg.protect[1]) == "198.51.100.0/28:8080");
  CHECK(cfg.protect[3].protocol == Protocol::Tls);
  CHECK(cfg.backend->kind == BackendKind::Thumbprint);
  // Apart from protect and backend the example spells out the defaults.
  Config defaults;
  CHECK(cfg.queue.first == defaults.queue.first);
  CHECK(cfg.queue.count == defaults.queue.count);
  CHECK(cfg.queue.max_len == defaults.queue.max_len);
  CHECK(cfg.marks.mask == defaults.marks.mask);
  CHECK(cfg.marks.pass == defaults.marks.pass);
  CHECK(cfg.marks.taken == defaults.marks.taken);
  CHECK(cfg.marks.hold == defaults.marks.hold);
  CHECK(cfg.marks.rst == defaults.marks.rst);
  CHECK(cfg.marks.drop == defaults.marks.drop);
  CHECK(cfg.routing.table == defaults.routing.table);
  CHECK(cfg.routing.priority == defaults.routing.priority);
  CHECK(cfg.hold.max_flows == defaults.hold.max_flows);
  CHECK(cfg.hold.max_segments_per_flow == defaults.hold.max_segments_per_flow);
  CHECK(cfg.hold.timeout_ms == defaults.hold.timeout_ms);
  CHECK(cfg.hold.max_total_bytes == defaults.hold.max_total_bytes);
  CHECK(cfg.limits.max_http_head == defaults.limits.max_http_head);
  CHECK(cfg.limits.max_client_hello == defaults.limits.max_client_hello);
  CHECK(cfg.sessions.max == defaults.sessions.max);
  CHECK(cfg.sessions.max_per_source == defaults.sessions.max_per_source);
  CHECK(cfg.sessions.header_timeout_ms == defaults.sessions.header_timeout_ms);
  CHECK(cfg.sessions.idle_timeout_ms == defaults.sessions.idle_timeout_ms);
  CHECK(cfg.sessions.total_timeout_ms == defaults.sessions.total_timeout_ms);
  CHECK(cfg.prefilter == defaults.prefilter);
  CHECK(cfg.keep_rules == defaults.keep_rules);
  CHECK(cfg.log_level == defaults.log_level);
  CHECK(cfg.metrics_listen == defaults.metrics_listen);
  CHECK(cfg.chain_prefix == defaults.chain_prefix);
  CHECK(cfg.origins.at("marks.pass") == "acmegw.example.toml:28");
}

TEST_CASE("TOML: every key sets its field; origins record file:line", "[config]") {
  const Config cfg = from_toml(
      "protect = [\"192.0.2.1\", \"[2001:db8::1]:8080\"]\n"
      "chain_prefix = \"AGW\"\n"
      "prefilter = false\n"
      "keep_rules = true\n"
      "log_level = \"debug\"\n"
      "metrics_listen = \"127.0.0.1:9891\"\n"
      "backend = \"webroot=/var/www\"\n"
      "[queue]\nbalance = \"4:7\"\nmax_len = 100\n"
      "[marks]\nmask = 0xff\npass = \"0x1\"\ntaken = 2\nhold = 3\nrst = 4\n"
      "[routing]\ntos = 0x14\ntable = 100\npriority = 200\n"
      "[hold]\nmax_flows = 10\nmax_segments_per_flow = 4\ntimeout_ms = 500\n"
      "max_total_bytes = 100000\n"
      "[limits]\nmax_http_head = 4096\nmax_client_hello = 2048\n"
      "[sessions]\nmax = 100\nmax_per_source = 5\nheader_timeout_ms = 2000\n"
      "idle_timeout_ms = 3000\ntotal_timeout_ms = 4000\n");
  REQUIRE(cfg.protect.size() == 2);
  CHECK(to_string(cfg.protect[1]) == "[2001:db8::1]:8080");
  CHECK(cfg.chain_prefix == "AGW");
  CHECK_FALSE(cfg.prefilter);
  CHECK(cfg.keep_rules);
  CHECK(cfg.log_level == LogLevel::Debug);
  CHECK(to_string(*cfg.metrics_listen) == "127.0.0.1:9891");
  CHECK(cfg.backend->kind == BackendKind::Webroot);
  CHECK(cfg.queue.first == 4);
  CHECK(cfg.queue.count == 4);
  CHECK(cfg.queue.max_len == 100);
  CHECK(cfg.marks.mask == 0xff);
  CHECK(cfg.marks.pass == 1);
  CHECK(cfg.marks.taken == 2);
  CHECK(cfg.marks.hold == 3);
  CHECK(cfg.marks.rst == 4);
  CHECK(cfg.routing.tos == 0x14);
  CHECK(cfg.routing.table == 100);
  CHECK(cfg.routing.priority == 200);
  CHECK(cfg.hold.max_flows == 10);
  CHECK(cfg.hold.max_segments_per_flow == 4);
  CHECK(cfg.hold.timeout_ms == 500);
  CHECK(cfg.hold.max_total_bytes == 100000);
  CHECK(cfg.limits.max_http_head == 4096);
  CHECK(cfg.limits.max_client_hello == 2048);
  CHECK(cfg.sessions.max == 100);
  CHECK(cfg.sessions.max_per_source == 5);
  CHECK(cfg.sessions.header_timeout_ms == 2000);
  CHECK(cfg.sessions.idle_timeout_ms == 3000);
  CHECK(cfg.sessions.total_timeout_ms == 4000);
  CHECK(cfg.origins.at("sessions.max_per_source") == "t.toml:31");
  CHECK(cfg.origins.at("protect") == "t.toml:1");
  CHECK(cfg.origins.at("marks.taken") == "t.toml:14");
}

TEST_CASE("TOML: each error carries file, line and key, in file order", "[config]") {
  CHECK(errors_of("protect = [\"192.0.2.1\"]\nbogus = 1\n") ==
        std::vector<std::string>{"t.toml:2: bogus: unknown key"});
  CHECK(errors_of("protect = [\"192.0.2.1\"]\n[marks]\nmask = 0xf00000\npas = 1\n") ==
        std::vector<std::string>{"t.toml:4: marks.pas: unknown key"});
  CHECK(errors_of("protect = [\"192.0.2.1\"]\n[queues]\nbalance = \"1\"\n") ==
        std::vector<std::string>{"t.toml:2: queues: unknown section"});
  CHECK(errors_of("protect = \"192.0.2.1\"\nprefilter = \"no\"\n[queue]\nmax_len = \"x\"\n"
                  "balance = 3\n[limits]\nmax_http_head = 1.5\n") ==
        std::vector<std::string>{
            "t.toml:2: prefilter: expected true or false",
            "t.toml:4: queue.max_len: not a non-negative integer: 'x'",
            "t.toml:5: queue.balance: expected a string",
            "t.toml:7: limits.max_http_head: expected an integer",
        });
  CHECK(errors_of("protect = [\"192.0.2.1\", 7]\n") ==
        std::vector<std::string>{"t.toml:1: protect: expected an array of strings"});
  CHECK(errors_of("protect = [\"192.0.2.1/8\"]\n") ==
        std::vector<std::string>{"t.toml:1: protect: bad protected endpoint '192.0.2.1/8': host "
                                 "bits set in '192.0.2.1/8' (did you mean the network "
                                 "address?)"});
  // Semantic errors point at the line of the offending value.
  CHECK(errors_of("protect = [\"192.0.2.1\"]\n[marks]\npass = 0x200000\n") ==
        std::vector<std::string>{"t.toml:3: marks.pass: value 0x00200000 equals marks.taken"});
  CHECK(errors_of("protect = [\"192.0.2.1\"]\n[marks]\ntaken = 0x100000\n") ==
        std::vector<std::string>{"t.toml:3: marks.taken: value 0x00100000 equals marks.pass"});
  // A syntax error stops there: no semantic errors about values that were never read.
  const auto syntax = errors_of("protect = [\"192.0.2.1\"\nx = 1\n");
  REQUIRE(syntax.size() == 1);
  CHECK(syntax[0].starts_with("t.toml:2: toml::parse_array: missing array separator"));
}

TEST_CASE("flags: override the file, --protect replaces the file's list", "[config]") {
  const Config cfg = from_toml("protect = [\"192.0.2.1\", \"192.0.2.2\"]\nprefilter = true\n",
                               {{"--protect", "198.51.100.1"},
                                {"--protect", "tls://198.51.100.1"},
                                {"--no-prefilter", "false"},
                                {"--mark-mask", "0xf0"},
                                {"--mark-pass", "0x10"},
                                {"--mark-taken", "0x20"},
                                {"--mark-hold", "0x30"},
                                {"--mark-rst", "0x40"}});
  REQUIRE(cfg.protect.size() == 2);
  CHECK(to_string(cfg.protect[0]) == "198.51.100.1:80");
  CHECK(to_string(cfg.protect[1]) == "198.51.100.1:443");
  CHECK_FALSE(cfg.prefilter);
  CHECK(cfg.marks.taken == 0x20);
  CHECK(cfg.origins.at("protect") == "--protect");
  CHECK(cfg.origins.at("prefilter") == "--no-prefilter");
  const Config caps = from_toml("protect = [\"192.0.2.1\"]\n[sessions]\nmax = 10\n",
                                {{"--max-sessions", "20"},
                                 {"--max-sessions-per-source", "3"},
                                 {"--session-header-timeout-ms", "1500"},
                                 {"--session-idle-timeout-ms", "2500"},
                                 {"--session-total-timeout-ms", "9000"}});
  CHECK(caps.sessions.max == 20);
  CHECK(caps.sessions.max_per_source == 3);
  CHECK(caps.sessions.header_timeout_ms == 1500);
  CHECK(caps.sessions.idle_timeout_ms == 2500);
  CHECK(caps.sessions.total_timeout_ms == 9000);
  CHECK(caps.origins.at("sessions.max") == "--max-sessions");

  CHECK(errors_of("", {{"--protect", "192.0.2.1"}, {"--route-table", "255"}}, false) ==
        std::vector<std::string>{"--route-table: routing.table: table 255 is reserved (0 "
                                 "unspec, 253 default, 254 main, 255 local)"});
  CHECK(errors_of("", {{"--bogus", "1"}}, false) ==
        std::vector<std::string>{"--bogus: unknown configuration flag",
                                 "protect: no protected "
                                 "endpoint: give --protect ADDR[:PORT] or protect = [\"ADDR\"]"});
  // A bad --protect is reported once, not again as "no protected endpoint".
  CHECK(errors_of("", {{"--protect", "nope"}}, false) ==
        std::vector<std::string>{"--protect: protect: bad protected endpoint 'nope': not an IPv4 "
                                 "or IPv6 address: 'nope'"});
}

TEST_CASE("validate: every rule and its message", "[config]") {
  auto errs = [](auto mutate) {
    Config cfg;
    cfg.protect.push_back(ep("192.0.2.1"));
    mutate(cfg);
    std::vector<std::string> out;
    for (const auto& e : validate(cfg)) {
      out.push_back(e.to_string());
    }
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(errs([](Config& c) { c.protect.push_back(ep("192.0.2.1:80")); }) ==
        V{"protect: endpoint 192.0.2.1:80 is listed twice"});
  CHECK(errs([](Config& c) { c.queue.count = 0; }) == V{"queue.balance: needs at least one queue"});
  CHECK(errs([](Config& c) {
          c.queue.first = 65535;
          c.queue.count = 2;
        }) == V{"queue.balance: queues 65535..65536 exceed queue number 65535"});
  CHECK(errs([](Config& c) { c.queue.max_len = 0; }) == V{"queue.max_len: must be at least 1"});
  CHECK(errs([](Config& c) { c.marks.mask = 0; }) == V{"marks.mask: must not be 0"});
  CHECK(errs([](Config& c) { c.marks.pass = 0x01100000; }) ==
        V{"marks.pass: value 0x01100000 has bits outside marks.mask 0x00f00000"});
  CHECK(errs([](Config& c) { c.marks.rst = 0; }) ==
        V{"marks.rst: value 0x00000000 has no bit under marks.mask 0x00f00000"});
  CHECK(errs([](Config& c) { c.marks.hold = c.marks.taken; }) ==
        V{"marks.hold: value 0x00200000 equals marks.taken"});
  const V bad_tos = [](std::string_view v) {
    return V{"routing.tos: value " + std::string{v} +
             " must be non-zero and within 0x1c (the TOS bits the kernel's route lookup "
             "compares): 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18 or 0x1c"};
  }("0x00000028");
  CHECK(errs([](Config& c) { c.routing.tos = 0x28; }) == bad_tos);  // DSCP AF11: never matched
  CHECK(errs([](Config& c) { c.routing.tos = 0; }).size() == 1);
  CHECK(errs([](Config& c) { c.routing.tos = 0x0e; }).size() == 1);  // an ECN bit
  for (const std::uint32_t tos : {0x04u, 0x08u, 0x10u, 0x14u, 0x18u, 0x1cu}) {
    CHECK(errs([&](Config& c) { c.routing.tos = tos; }).empty());
  }
  CHECK(errs([](Config& c) { c.routing.table = 0; }) ==
        V{"routing.table: table 0 is reserved (0 unspec, 253 default, 254 main, 255 local)"});
  CHECK(errs([](Config& c) { c.routing.priority = 32766; }) ==
        V{"routing.priority: must be 1..32765 (before the main table's rule 32766)"});
  CHECK(errs([](Config& c) { c.chain_prefix = "1ACME"; }) ==
        V{"chain_prefix: must be 1..24 characters [A-Za-z0-9_-] starting with a letter: "
          "'1ACME'"});
  CHECK(errs([](Config& c) { c.chain_prefix = std::string(25, 'A'); }).size() == 1);
  CHECK(errs([](Config& c) { c.chain_prefix = std::string(24, 'A'); }).empty());
  CHECK(errs([](Config& c) { c.chain_prefix = "A B"; }).size() == 1);
  CHECK(errs([](Config& c) { c.hold.max_flows = 0; }) == V{"hold.max_flows: must be at least 1"});
  CHECK(errs([](Config& c) { c.hold.max_segments_per_flow = 0; }) ==
        V{"hold.max_segments_per_flow: must be at least 1"});
  CHECK(errs([](Config& c) { c.hold.timeout_ms = 0; }) == V{"hold.timeout_ms: must be at least 1"});
  CHECK(errs([](Config& c) { c.hold.max_total_bytes = 16383; }) ==
        V{"hold.max_total_bytes: must hold at least one full flow (16384 bytes, the larger "
          "classifier limit)"});
  CHECK(errs([](Config& c) {
          c.limits.max_http_head = acmegw::classifier::kHardMaxHttpHead + 1;
        }) == V{"limits.max_http_head: must be 256..65536, got 65537"});
  CHECK(errs([](Config& c) { c.limits.max_http_head = 255; }) ==
        V{"limits.max_http_head: must be 256..65536, got 255"});
  CHECK(errs([](Config& c) {
          c.limits.max_client_hello = acmegw::classifier::kHardMaxClientHello + 1;
          c.hold.max_total_bytes = 1u << 20;
        }) == V{"limits.max_client_hello: must be 256..65536, got 65537"});
  CHECK(errs([](Config& c) {
          c.sessions.max = 0;
          c.sessions.max_per_source = 0;
        }) == V{"sessions.max: must be at least 1",
                "sessions.max_per_source: must be 1..sessions.max (0), got 0"});
  CHECK(errs([](Config& c) { c.sessions.max_per_source = 4097; }) ==
        V{"sessions.max_per_source: must be 1..sessions.max (4096), got 4097"});
  CHECK(errs([](Config& c) { c.sessions.max_per_source = 0; }).size() == 1);
  CHECK(errs([](Config& c) { c.sessions.idle_timeout_ms = 99; }) ==
        V{"sessions.idle_timeout_ms: must be at least 100, got 99"});
  CHECK(errs([](Config& c) { c.sessions.header_timeout_ms = 60'001; }) ==
        V{"sessions.header_timeout_ms: must be 100..sessions.total_timeout_ms (60000), got "
          "60001"});
  // A relayed connection has only the idle timeout: idle may exceed total.
  CHECK(errs([](Config& c) { c.sessions.idle_timeout_ms = 120'000; }).empty());
  // Several problems: all reported, none hides another.
  CHECK(errs([](Config& c) {
          c.marks.mask = 0x0f;
          c.routing.priority = 0;
        }).size() == 5);
}

TEST_CASE("CLI: add_config_options records flags; finish_config builds the same Config",
          "[config]") {
  CLI::App app{"t"};
  ConfigOptions opts;
  add_config_options(app, opts);
  std::vector<std::string> args = {
      "t",   "--protect",      "192.0.2.1",    "--protect", "[2001:db8::1]:8080", "--queue-balance",
      "2:3", "--no-prefilter", "--keep-rules", "--backend", "relay=192.0.2.9:80", "--log-level",
      "warn"};
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  app.parse(static_cast<int>(argv.size()), argv.data());
  const Config cfg = finish_config(opts);
  REQUIRE(cfg.protect.size() == 2);
  CHECK(cfg.protect[1].port == 8080);
  CHECK(cfg.queue.first == 2);
  CHECK(cfg.queue.count == 2);
  CHECK_FALSE(cfg.prefilter);
  CHECK(cfg.keep_rules);
  CHECK(cfg.backend->kind == BackendKind::Relay);
  CHECK(cfg.log_level == LogLevel::Warn);

  ConfigOptions missing;
  missing.config_file = "/nonexistent/acmegw.toml";
  try {
    (void)finish_config(missing);
    FAIL("accepted a missing file");
  } catch (const ConfigException& e) {
    CHECK(std::string{e.what()} == "/nonexistent/acmegw.toml: cannot open the file");
  }
}

TEST_CASE("docs/configuration.md documents every flag and TOML key", "[config]") {
  std::ifstream in(kDocs / "configuration.md");
  REQUIRE(in);
  const std::string doc{std::istreambuf_iterator<char>(in), {}};
  for (const OptionSpec& s : option_specs()) {
    CAPTURE(s.key);
    CHECK(doc.find("`" + std::string{s.flag}) != std::string::npos);
    CHECK(doc.find("`" + std::string{s.key} + "`") != std::string::npos);
  }
}
