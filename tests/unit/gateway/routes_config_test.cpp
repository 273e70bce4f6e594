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
  const Config cfg = parse("backend = \"thumbprint=" + kThumb + "\"\n"
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
  const auto errors = errors_of("[[route]]\n"                          // 2
                                "hosts = [\"a.example\", \"bad host\"]\n"  // 3
                                "backend = \"thumbprint=short\"\n"     // 4
                                "on-miss = \"maybe\"\n"                // 5
                                "colour = 1\n"                         // 6
                                "[[route]]\n"                          // 7
                                "hosts = [\"a.example\"]\n");          // 8
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
  const auto e1 = errors_of("[[route]]\nhosts = [\"A.example\"]\nbackend = \"thumbprint=" + kThumb +
                            "\"\n[[route]]\nhosts = [\"a.example\"]\nbackend = \"thumbprint=" +
                            kThumb + "\"\n");
  REQUIRE(e1.size() == 1);
  CHECK(e1[0].find("route[2].hosts: duplicate pattern for 'a.example'") != std::string::npos);
  const auto e2 = errors_of("backend = \"thumbprint=" + kThumb +
                            "\"\n[[route]]\nbackend = \"thumbprint=" + kThumb + "\"\n");
  REQUIRE(e2.size() == 1);
  CHECK(e2[0].find("route[1].hosts: a second default route (no hosts) besides backend") !=
        std::string::npos);
}

TEST_CASE("policy parses; anything but pass is refused with the reasons", "[config]") {
  CHECK(parse("policy = \"pass\"\n").policy == Policy::Pass);
  std::string error;
  CHECK(parse_policy("redirect-https", error) == Policy::RedirectHttps);
  CHECK(parse_policy("reject", error) == Policy::Reject);
  CHECK(parse_policy("drop", error) == Policy::Drop);
  CHECK_FALSE(parse_policy("block", error));
  CHECK(error == "unknown policy 'block' (pass, redirect-https, reject, drop)");
  const auto e = errors_of("policy = \"drop\"\n");
  REQUIRE(e.size() == 2);
  CHECK(e[0] == "r.toml:2: policy: policy 'drop' is not implemented in this build yet (only "
                "\"pass\")");
  CHECK(e[1].starts_with("r.toml:2: policy: policy 'drop' needs prefilter = false"));
}

TEST_CASE("challenge allow/deny: CIDRs, deny wins, empty allow admits all", "[config]") {
  const Config cfg = parse("[challenge]\nallow = [\"198.51.100.0/24\", \"2001:db8::/32\"]\n"
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
