#include <catch2/catch.hpp>

#include <optional>
#include <string_view>

#include "backends/routes.hpp"

using acmegw::backends::is_host_name;
using acmegw::backends::normalize_host;
using acmegw::backends::RouteTable;

TEST_CASE("RouteTable: exact, longest wildcard, default", "[backends][routes]") {
  RouteTable t;
  REQUIRE_FALSE(t.add("www.example.com", 1));
  REQUIRE_FALSE(t.add("*.example.com", 2));
  REQUIRE_FALSE(t.add("*.eu.example.com", 3));
  REQUIRE_FALSE(t.add("192.0.2.7", 4));
  REQUIRE_FALSE(t.add("2001:db8::7", 5));
  struct Case {
    std::string_view host;
    std::optional<std::size_t> backend;
  };
  const Case cases[] = {
      {"www.example.com", 1},        // exact beats the wildcard
      {"www.example.com.", 1},       // one trailing dot is the same name
      {"api.example.com", 2},        // wildcard, one label
      {"a.b.example.com", 2},        // wildcard, several labels (nginx semantics)
      {"x.eu.example.com", 3},       // longest wildcard wins
      {"eu.example.com", 2},         // "*.eu.example.com" needs a label before "eu"
      {"example.com", std::nullopt},  // "*.example.com" does not match the bare name
      {"badexample.com", std::nullopt},  // suffix match is on a label boundary
      {"192.0.2.7", 4},
      {"2001:db8::7", 5},
      {"", std::nullopt},
      {".example.com", std::nullopt},  // empty first label
      {"other.test", std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.host);
    CHECK(t.match(c.host) == c.backend);
  }
  SECTION("the default catches the rest") {
    REQUIRE_FALSE(t.add("*", 9));
    CHECK(t.match("other.test") == 9U);
    CHECK(t.match("example.com") == 9U);
    CHECK(t.match("") == 9U);
    CHECK(t.match("www.example.com") == 1U);
  }
}

TEST_CASE("RouteTable: patterns are case-insensitive and validated", "[backends][routes]") {
  RouteTable t;
  CHECK(t.empty());
  REQUIRE_FALSE(t.add("WWW.Example.COM.", 1));
  CHECK(t.match("www.example.com") == 1U);
  CHECK(t.add("www.example.com", 2).has_value());  // duplicate after normalization
  CHECK(t.add("*", 3) == std::nullopt);
  CHECK(t.add("*", 4).has_value());  // second default
  for (const char* bad : {"", "*.", "**.example.com", "a..b", "exa mple.com", "a/b", "x.*.com",
                          "example.com:80"}) {
    CAPTURE(bad);
    const auto err = t.add(bad, 5);
    REQUIRE(err.has_value());
    CHECK(err->find("route:") == 0);
  }
}

TEST_CASE("is_host_name and normalize_host", "[backends][routes]") {
  CHECK(is_host_name("a"));
  CHECK(is_host_name("Example.COM"));
  CHECK(is_host_name("xn--bcher-kva.example"));
  CHECK(is_host_name("::1"));
  CHECK_FALSE(is_host_name(""));
  CHECK_FALSE(is_host_name("example.com."));  // normalize first
  CHECK_FALSE(is_host_name(".example.com"));
  CHECK_FALSE(is_host_name("a\nb"));
  CHECK_FALSE(is_host_name(std::string(254, 'a')));
  CHECK(is_host_name(std::string(253, 'a')));
  CHECK(normalize_host("Example.COM.") == "example.com");
  CHECK(normalize_host("") == "");
}
