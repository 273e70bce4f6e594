// Config: [[route]] tables, policy, challenge source allow/deny (issue 6), with file:line:key.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/config/options.hpp"

namespace {

using namespace acmegw::gateway;
using acmegw::packet::Family;

const std::string kThumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
const std::string kHead = "protect = [\"192.0.2.10\"]\n";  // line 1

Config parse(const std::string& text,
             const std::vector<std::pair<std::string, std::string>>& flags = {}) {
  std::istringstream in(kHead + text);
  return build_config(&in, "r.toml", flags);
}

std::vector<std::string> errors_of(const std::string& text) {
  try {
    (void)parse(text);
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

}  // namespace

TEST_CASE("[[route]] tables parse in file order with hosts, backend and on-miss", "[config]") {
  const Config cfg = parse("backend = \"thumbprint=" + kThumb +
                           "\"\n"
                           "[[route]]\n"
                           "hosts = [\"a.example\", \"*.b.example\"]\n"
                           "backend = \"webroot=/srv/www\"\n"
                           "on-miss = \"production\"\n"
                           "[[route]]\n"
                           "hosts = [\"c.example\"]\n"
                           "backend = \"redirect=https://v.example\"\n");
  REQUIRE(cfg.routes.size() == 2);
  CHECK(cfg.routes[0].hosts == std::vector<std::string>{"a.example", "*.b.example"});
  CHECK(cfg.routes[0].backend == BackendSpec{BackendKind::Webroot, "/srv/www"});
  CHECK(cfg.routes[0].on_miss == OnMiss::Production);
  CHECK(cfg.routes[1].on_miss == OnMiss::NotFound);
  CHECK(cfg.routes[1].backend == BackendSpec{BackendKind::Redirect, "https://v.example"});
  CHECK(cfg.backend == BackendSpec{BackendKind::Thumbprint, kThumb});
}

TEST_CASE("route errors name file, line and route key", "[config]") {
  const auto errors = errors_of(
      "[[route]]\n"                              // 2
      "hosts = [\"a.example\", \"bad host\"]\n"  // 3
      "backend = \"thumbprint=short\"\n"         // 4
      "on-miss = \"maybe\"\n"                    // 5
      "colour = 1\n"                             // 6
      "[[route]]\n"                              // 7
      "hosts = [\"a.example\"]\n");              // 8
  const auto has = [&](const std::string& prefix, const std::string& text) {
    for (const auto& e : errors) {
      if (e.starts_with(prefix) && e.find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  CHECK(has("r.toml:4: route[1].backend: ", "thumbprint must be 43"));
  CHECK(has("r.toml:5: route[1].on-miss: ", "unknown on-miss 'maybe' (404, production)"));
  CHECK(has("r.toml:6: route[1].colour: ", "unknown key (hosts, backend, on-miss)"));
  CHECK(has("r.toml:", "route[1].hosts: invalid host pattern 'bad host'"));
  CHECK(has("r.toml:", "route[2].backend: missing"));
}

TEST_CASE("duplicate patterns and a second default route are refused", "[config]") {
  const auto e1 = errors_of(
      "[[route]]\nhosts = [\"A.example\"]\nbackend = \"thumbprint=" + kThumb +
      "\"\n[[route]]\nhosts = [\"a.example\"]\nbackend = \"thumbprint=" + kThumb + "\"\n");
  REQUIRE(e1.size() == 1);
  CHECK(e1[0].find("route[2].hosts: duplicate pattern for 'a.example'") != std::string::npos);
  const auto e2 = errors_of("backend = \"thumbprint=" + kThumb +
                            "\"\n[[route]]\nbackend = \"thumbprint=" + kThumb + "\"\n");
  REQUIRE(e2.size() == 1);
  CHECK(e2[0].find("route[1].hosts: a second default route (no hosts) besides backend") !=
        std::string::npos);
}

TEST_CASE("policy parses; the prefilter defaults off for any policy but pass", "[config]") {
  CHECK(parse("policy = \"pass\"\n").policy == Policy::Pass);
  CHECK(parse("policy = \"pass\"\n").prefilter);
  std::string error;
  CHECK(parse_policy("redirect-https", error) == Policy::RedirectHttps);
  CHECK(parse_policy("reject", error) == Policy::Reject);
  CHECK(parse_policy("drop", error) == Policy::Drop);
  CHECK_FALSE(parse_policy("block", error));
  CHECK(error == "unknown policy 'block' (pass, redirect-https, reject, drop)");
  const std::string backend = "backend = \"thumbprint=" + kThumb + "\"\n";
  for (const char* p : {"redirect-https", "reject", "drop"}) {
    CAPTURE(p);
    const Config cfg = parse(backend + "policy = \"" + p + "\"\n");
    CHECK_FALSE(cfg.prefilter);  // not set: off, and describe() says why
    CHECK(describe(cfg).find("prefilter=off (default for policy " + std::string{p} + ")") !=
          std::string::npos);
    CHECK_FALSE(parse(backend + "policy = \"" + p + "\"\nprefilter = false\n").prefilter);
    // The flags do the same.
    CHECK_FALSE(parse(backend, {{"--policy", p}}).prefilter);
  }
}

TEST_CASE("policy: explicit prefilter, missing backend, relay are errors with FILE:LINE: key",
          "[config]") {
  const std::string backend = "backend = \"thumbprint=" + kThumb + "\"\n";  // line 2
  CHECK(errors_of(backend + "policy = \"drop\"\nprefilter = true\n") ==
        std::vector<std::string>{
            "r.toml:4: prefilter: prefilter = true cannot be combined with policy 'drop': the "
            "prefilter passes non-challenge flows in the kernel (leave prefilter unset or "
            "false)"});
  CHECK(errors_of("policy = \"reject\"\n") ==
        std::vector<std::string>{
            "r.toml:2: policy: policy 'reject' needs a backend (--backend / backend): acmegw "
            "carries it out with the takeover that serves challenges"});
  const auto relay = errors_of("backend = \"relay=192.0.2.9:80\"\npolicy = \"redirect-https\"\n");
  REQUIRE(relay.size() == 1);
  CHECK(
      relay[0].starts_with("r.toml:3: policy: policy \"redirect-https\" needs an answering "
                           "backend"));
  // The rules commands build the same ruleset without carrying the policy out: no backend
  // needed there, and still an endpoint.
  for (const char* p : {"reject", "drop", "redirect-https"}) {
    std::istringstream in(kHead + "policy = \"" + p + "\"\n");
    CHECK(build_config(&in, "r.toml", {}, ConfigUse::Rules).policy != Policy::Pass);
  }
  std::istringstream none("policy = \"drop\"\n");
  CHECK_THROWS_AS(build_config(&none, "r.toml", {}, ConfigUse::Rules), ConfigException);
  // reject and drop need no answers: a relay backend is fine for them.
  CHECK(parse("backend = \"relay=192.0.2.9:80\"\npolicy = \"drop\"\n").policy == Policy::Drop);
  // The flag form of the prefilter conflict names the flag... there is only --no-prefilter, so
  // the file's explicit `prefilter = true` loses to it.
  CHECK_FALSE(
      parse(backend + "policy = \"drop\"\nprefilter = true\n", {{"--no-prefilter", "false"}})
          .prefilter);
}

TEST_CASE("marks.drop: under the mask, distinct, checked for policy drop or when set", "[config]") {
  const std::string backend = "backend = \"thumbprint=" + kThumb + "\"\n";
  CHECK(parse(backend + "policy = \"drop\"\n").marks.drop == 0x00500000);
  CHECK(parse(backend + "policy = \"drop\"\n[marks]\ndrop = 0x00600000\n").marks.drop ==
        0x00600000);
  CHECK(parse(backend, {{"--mark-drop", "0x00700000"}}).marks.drop == 0x00700000);
  CHECK(errors_of(backend + "policy = \"drop\"\n[marks]\ndrop = 0x00100000\n") ==
        std::vector<std::string>{"r.toml:5: marks.drop: value 0x00100000 equals marks.pass"});
  CHECK(errors_of(backend + "[marks]\ndrop = 0x01000000\n") ==
        std::vector<std::string>{
            "r.toml:4: marks.drop: value 0x01000000 has no bit under marks.mask 0x00f00000"});
  // A custom mask from before the DROP mark existed stays valid without policy drop...
  const std::string custom =
      "[marks]\nmask = 0xf0\npass = 0x10\ntaken = 0x20\nhold = 0x30\n"
      "rst = 0x40\n";
  CHECK(parse(custom).marks.mask == 0xf0);
  // ...and policy drop asks for a DROP mark under it.
  CHECK(errors_of(backend + "policy = \"drop\"\n" + custom) ==
        std::vector<std::string>{
            "marks.drop: value 0x00500000 has no bit under marks.mask 0x000000f0"});
  CHECK(parse(backend + "policy = \"drop\"\n" + custom + "drop = 0x50\n").marks.drop == 0x50);
}

TEST_CASE("challenge allow/deny: CIDRs, deny wins, empty allow admits all", "[config]") {
  const Config cfg = parse(
      "[challenge]\nallow = [\"198.51.100.0/24\", \"2001:db8::/32\"]\n"
      "deny = [\"198.51.100.7\"]\n");
  std::string error;
  const auto addr = [&](const char* text) { return parse_cidr(text, error)->addr; };
  CHECK(cfg.challenge.admits(addr("198.51.100.2")));
  CHECK_FALSE(cfg.challenge.admits(addr("198.51.100.7")));  // denied host inside allowed net
  CHECK_FALSE(cfg.challenge.admits(addr("198.51.101.2")));  // outside every allow
  CHECK(cfg.challenge.admits(addr("2001:db8:1::2")));
  CHECK_FALSE(cfg.challenge.admits(addr("2001:db9::2")));
  CHECK(ChallengeSources{}.admits(addr("203.0.113.1")));
  const Cidr any4 = *parse_cidr("0.0.0.0/0", error);
  CHECK(any4.contains(addr("203.0.113.1")));
  CHECK_FALSE(any4.contains(addr("::1")));  // families differ
  CHECK(parse_cidr("198.51.100.0/25", error)->contains(addr("198.51.100.127")));
  CHECK_FALSE(parse_cidr("198.51.100.0/25", error)->contains(addr("198.51.100.128")));
  CHECK_FALSE(parse_cidr("198.51.100.1/24", error));
  CHECK(error.find("host bits set") != std::string::npos);
  // The flag replaces the file's list.
  const Config f = parse("[challenge]\ndeny = [\"198.51.100.0/24\"]\n",
                         {{"--challenge-deny", "203.0.113.0/24"}});
  REQUIRE(f.challenge.deny.size() == 1);
  CHECK(to_string(f.challenge.deny[0]) == "203.0.113.0/24");
}

TEST_CASE("tls_backend and [[tls_route]]: parsed, defaulted to backend's tokens store",
          "[config]") {
  const Config cfg = parse(
      "tls_backend = \"certdir=/var/lib/dehydrated/alpn-certs\"\n"
      "[[tls_route]]\n"
      "hosts = [\"*.lab.example\"]\n"
      "backend = \"relay=192.0.2.50:443,proxy=v2\"\n");
  CHECK(cfg.tls_backend == BackendSpec{BackendKind::Certdir, "/var/lib/dehydrated/alpn-certs"});
  REQUIRE(cfg.tls_routes.size() == 1);
  CHECK(cfg.tls_routes[0].hosts == std::vector<std::string>{"*.lab.example"});
  CHECK(cfg.tls_routes[0].backend.kind == BackendKind::Relay);
  CHECK(cfg.default_tls_backend() == cfg.tls_backend);
  CHECK(cfg.has_backend());
  CHECK(cfg.origins.at("tls_route") == "r.toml:3");

  // --backend tokens=… alone also answers tls-alpn-01 (the built-in responder).
  const Config tokens = parse("", {{"--backend", "tokens=/run/acmegw/tokens.sock"}});
  CHECK(tokens.default_tls_backend() ==
        BackendSpec{BackendKind::Tokens, "/run/acmegw/tokens.sock"});
  // Any other HTTP backend does not.
  const Config thumb = parse("backend = \"thumbprint=" + kThumb + "\"\n");
  CHECK_FALSE(thumb.default_tls_backend().has_value());
  // The flag sets it too.
  const Config flag = parse("", {{"--tls-backend", "relay=[2001:db8::5]:443"}});
  CHECK(flag.tls_backend->kind == BackendKind::Relay);
  CHECK(flag.has_backend());
}

TEST_CASE("tls backends: kinds that cannot answer are refused with their key", "[config]") {
  const auto has = [](const std::vector<std::string>& errors, const std::string& prefix,
                      const std::string& text) {
    for (const auto& e : errors) {
      if (e.starts_with(prefix) && e.find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  const auto e1 = errors_of("tls_backend = \"thumbprint=" + kThumb + "\"\n");  // 2
  CHECK(has(e1, "r.toml:2: tls_backend: ", "thumbprint cannot answer tls-alpn-01"));
  const auto e2 = errors_of("backend = \"certdir=/srv/alpn\"\n");  // 2
  CHECK(has(e2, "r.toml:2: backend: ", "certdir serves tls-alpn-01 certificates only"));
  const auto e3 = errors_of(
      "[[tls_route]]\n"                     // 2
      "hosts = [\"a.example\"]\n"           // 3
      "backend = \"webroot=/srv/www\"\n"    // 4
      "on-miss = \"production\"\n"          // 5
      "[[tls_route]]\n"                     // 6
      "hosts = [\"a.example\"]\n"           // 7
      "backend = \"certdir=relative\"\n");  // 8
  CHECK(has(e3, "r.toml:", "tls_route[1].backend: webroot cannot answer tls-alpn-01"));
  CHECK(has(e3, "r.toml:5: tls_route[1].on-miss: ", "unknown key (hosts, backend)"));
  CHECK(has(e3, "r.toml:8: tls_route[2].backend: ", "needs an absolute path"));
  const auto e4 =
      errors_of("tls_backend = \"certdir=/a\"\n[[tls_route]]\nbackend = \"certdir=/b\"\n");
  CHECK(has(e4, "r.toml:",
            "tls_route[1].hosts: a second default route (no hosts) besides "
            "tls_backend/--tls-backend"));
}
