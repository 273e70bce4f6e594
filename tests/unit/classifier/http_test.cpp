// http-01 request classification: real request shapes and edge cases, each classified at every
// split point against a guard page (STYLE §25a). The rules are in docs/classifier.md.
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "classifier/classify.hpp"
#include "split_check.hpp"
#include "tests/unit/classifier/http_vectors.hpp"

namespace {

using namespace std::string_view_literals;
using acmegw::classifier::Decision;
using acmegw::classifier::Limits;
using acmegw::classifier::Protocol;
using acmegw::classifier::Reason;
using acmegw::test::check_every_split;
using acmegw::test::Expect;

using acmegw::test::kChrome;
using acmegw::test::kLetsEncrypt;
using acmegw::test::kLetsEncryptToken;
constexpr std::string_view kToken = kLetsEncryptToken;
constexpr std::string_view kPrefix = "/.well-known/acme-challenge/";

std::string challenge_line(std::string_view method, std::string_view target_tail,
                           std::string_view rest) {
  return std::string(method) + " " + std::string(kPrefix) + std::string(target_tail) +
         std::string(rest);
}

const std::string kLongToken(255, 'a');  // the longest token accepted

struct Case {
  const char* name;
  std::string wire;
  Expect expect;
};

Expect challenge(std::string_view token, std::string_view host, std::uint16_t port = 0) {
  return {Decision::Challenge, Reason::None, token, host, port, {}};
}
Expect production(Reason r, std::optional<std::size_t> at = {}) {
  return {Decision::Production, r, {}, {}, 0, at};
}

}  // namespace

TEST_CASE("classify http: real challenge requests", "[classifier][http]") {
  const Case cases[] = {
      {"Let's Encrypt", std::string(kLetsEncrypt), challenge(kToken, "example.com")},
      {"Pebble (Host name:80, Go client)",
       challenge_line("GET", "tok_EN-1",
                      " HTTP/1.1\r\nHost: example.com:80\r\n"
                      "User-Agent: Go-http-client/1.1\r\n"
                      "Accept-Encoding: gzip\r\n\r\n"),
       challenge("tok_EN-1", "example.com", 80)},
      {"curl, upper-case Host",
       challenge_line("GET", "abc",
                      " HTTP/1.1\r\nHost: WWW.Example.COM\r\n"
                      "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"),
       challenge("abc", "www.example.com")},
      {"Firefox opening a challenge URL",
       challenge_line("GET", "abc",
                      " HTTP/1.1\r\nHost: example.net\r\n"
                      "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:126.0) "
                      "Gecko/20100101 Firefox/126.0\r\n"
                      "Accept: text/html,application/xhtml+xml\r\n"
                      "Accept-Language: en-US,en;q=0.5\r\n"
                      "Accept-Encoding: gzip, deflate, br, zstd\r\n"
                      "Connection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n"
                      "Priority: u=0, i\r\n\r\n"),
       challenge("abc", "example.net")},
      {"HEAD", challenge_line("HEAD", "abc", " HTTP/1.1\r\nHost: a.example\r\n\r\n"),
       challenge("abc", "a.example")},
      {"HTTP/1.0 without Host", challenge_line("GET", "abc", " HTTP/1.0\r\n\r\n"),
       challenge("abc", "")},
      {"query string ignored",
       challenge_line("GET", "abc?x=1&y=%2F", " HTTP/1.1\r\nHost: h\r\n\r\n"),
       challenge("abc", "h")},
      {"bare LF line ends", challenge_line("GET", "abc", " HTTP/1.1\nHost: h\nAccept: */*\n\n"),
       challenge("abc", "h")},
      {"mixed CRLF and LF", challenge_line("GET", "abc", " HTTP/1.1\r\nHost: h\n\r\n"),
       challenge("abc", "h")},
      {"Host with OWS and tab",
       challenge_line("GET", "abc", " HTTP/1.1\r\nhOsT:\t h:8080 \r\n\r\n"),
       challenge("abc", "h", 8080)},
      {"Host [v6]:port",
       challenge_line("GET", "abc", " HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n"),
       challenge("abc", "2001:db8::1", 8080)},
      {"Host [v6]", challenge_line("GET", "abc", " HTTP/1.1\r\nHost: [::1]\r\n\r\n"),
       challenge("abc", "::1")},
      {"absolute-form wins over Host",
       "GET http://Example.ORG:8080/.well-known/acme-challenge/abc HTTP/1.1\r\n"
       "Host: other.example\r\n\r\n",
       challenge("abc", "example.org", 8080)},
      {"absolute-form, upper-case scheme, v6, no Host",
       "GET HTTP://[2001:db8::2]/.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n",
       challenge("abc", "2001:db8::2")},
      {"empty header value",
       challenge_line("GET", "abc", " HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n"),
       challenge("abc", "h")},
      {"obs-text in another header",
       challenge_line("GET", "abc", " HTTP/1.1\r\nHost: h\r\nX-Latin1: caf\xe9\r\n\r\n"),
       challenge("abc", "h")},
      {"255-char token", challenge_line("GET", kLongToken, " HTTP/1.1\r\nHost: h\r\n\r\n"),
       challenge(kLongToken, "h")},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      Expect e = c.expect;
      e.decided_at = c.wire.size();  // a challenge needs the end of the head
      check_every_split(c.wire, Protocol::Http, e);
    }
  }
}

TEST_CASE("classify http: production decided as early as the bytes allow", "[classifier][http]") {
  const std::size_t p = 4 + kPrefix.size();  // "GET " + prefix
  const Case cases[] = {
      {"Chrome GET /", std::string(kChrome), production(Reason::Path, 6)},
      {"POST", challenge_line("POST", "abc", " HTTP/1.1\r\nHost: h\r\n\r\n"),
       production(Reason::Method, 1)},
      {"PUT (shares no byte)", "PUT / HTTP/1.1\r\n\r\n", production(Reason::Method, 1)},
      {"GETX", "GETX / HTTP/1.1\r\n\r\n", production(Reason::Method, 4)},
      {"HEAT", "HEAT / HTTP/1.1\r\n\r\n", production(Reason::Method, 4)},
      {"lower-case method", challenge_line("get", "abc", " HTTP/1.1\r\nHost: h\r\n\r\n"),
       production(Reason::Method, 1)},
      {"GET /index", "GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n", production(Reason::Path, 6)},
      {"prefix without slash", "GET /.well-known/acme-challenge HTTP/1.1\r\nHost: h\r\n\r\n",
       production(Reason::Path, p)},
      {"prefix without token", challenge_line("GET", "", " HTTP/1.1\r\nHost: h\r\n\r\n"),
       production(Reason::Token, p + 1)},
      {"prefix without token, with query", challenge_line("GET", "?x", " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 1)},
      {"prefix as a substring", "GET /x/.well-known/acme-challenge/abc HTTP/1.1\r\nHost: h\r\n\r\n",
       production(Reason::Path, 6)},
      {"double slash", "GET //.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n",
       production(Reason::Path, 6)},
      {"nested prefix",
       challenge_line("GET", ".well-known/acme-challenge/abc", " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 1)},
      {"other case in the prefix", "GET /.Well-Known/acme-challenge/abc HTTP/1.1\r\n\r\n",
       production(Reason::Path, 7)},
      {"dot-dot in the token", challenge_line("GET", "../../etc/passwd", " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 1)},
      {"dot in the token", challenge_line("GET", "ab.c", " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 3)},
      {"%2e in the token", challenge_line("GET", "%2e%2e", " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 1)},
      {"slash after the token", challenge_line("GET", "abc/", " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 4)},
      {"256-char token", challenge_line("GET", std::string(256, 'a'), " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 256)},
      {"fragment", challenge_line("GET", "abc#x", " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 4)},
      {"control byte in the query", challenge_line("GET", "abc?a\x01", " HTTP/1.1\r\n\r\n"),
       production(Reason::Path, p + 6)},
      {"double space", "GET  /.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n",
       production(Reason::Path, 5)},
      {"asterisk-form", "GET * HTTP/1.1\r\n\r\n", production(Reason::Path, 5)},
      {"https absolute-form", "GET https://h/.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n",
       production(Reason::Path, 9)},
      {"userinfo in absolute-form",
       "GET http://u@h/.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n",
       production(Reason::Path, 13)},
      {"absolute-form bad port",
       "GET http://h:99999/.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n",
       production(Reason::Path, 19)},
      {"HTTP/0.9", challenge_line("GET", "abc", "\r\n"), production(Reason::Version, p + 4)},
      {"HTTP/1.2", challenge_line("GET", "abc", " HTTP/1.2\r\nHost: h\r\n\r\n"),
       production(Reason::Version, p + 12)},
      {"HTTP/2.0", challenge_line("GET", "abc", " HTTP/2.0\r\nHost: h\r\n\r\n"),
       production(Reason::Version, p + 10)},
      {"lower-case version", challenge_line("GET", "abc", " http/1.1\r\nHost: h\r\n\r\n"),
       production(Reason::Version, p + 5)},
      {"bare CR after the version", challenge_line("GET", "abc", " HTTP/1.1\rHost: h\r\n\r\n"),
       production(Reason::Version, p + 14)},
      {"HTTP/2 prior-knowledge preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
       production(Reason::NotHttp, 1)},
      {"TLS on port 80", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"sv),
       production(Reason::NotHttp, 1)},
      {"SSH", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", production(Reason::NotHttp, 1)},
      {"unregistered method with a dash", "VERSION-CONTROL / HTTP/1.1\r\n\r\n",
       production(Reason::Method, 1)},
      {"NUL first", std::string("\0GET / HTTP/1.1\r\n\r\n"sv), production(Reason::NotHttp, 1)},
      {"leading empty line", "\r\nGET /.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n",
       production(Reason::NotHttp, 1)},
      {"GET then CRLF", "GET\r\n", production(Reason::NotHttp, 4)},
      {"NUL in the token", challenge_line("GET", std::string("ab\0c"sv), " HTTP/1.1\r\n\r\n"),
       production(Reason::Token, p + 3)},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      check_every_split(c.wire, Protocol::Http, c.expect);
    }
  }
}

TEST_CASE("classify http: header section rules", "[classifier][http]") {
  const std::string line = challenge_line("GET", "abc", " HTTP/1.1\r\n");
  const std::size_t l = line.size();
  const Case cases[] = {
      {"HTTP/1.1 without Host", line + "Accept: */*\r\n\r\n",
       production(Reason::MalformedHead, l + 15)},
      {"duplicate Host", line + "Host: a\r\nHost: a\r\n\r\n",
       production(Reason::MalformedHead, l + 18)},
      {"duplicate Host, other case", line + "Host: a\r\nHOST: b\r\n\r\n",
       production(Reason::MalformedHead, l + 18)},
      {"empty Host", line + "Host:\r\n\r\n", production(Reason::MalformedHead, l + 7)},
      {"Host with a space inside", line + "Host: exa mple\r\n\r\n",
       production(Reason::MalformedHead, l + 16)},
      {"Host with userinfo", line + "Host: u@h\r\n\r\n", production(Reason::MalformedHead, l + 11)},
      {"Host port 0", line + "Host: h:0\r\n\r\n", production(Reason::MalformedHead, l + 11)},
      {"Host port too big", line + "Host: h:65536\r\n\r\n",
       production(Reason::MalformedHead, l + 15)},
      {"Host empty port", line + "Host: h:\r\n\r\n", production(Reason::MalformedHead, l + 10)},
      {"Host unclosed bracket", line + "Host: [::1\r\n\r\n",
       production(Reason::MalformedHead, l + 12)},
      {"Host name over 255 bytes", line + "Host: " + std::string(256, 'a') + "\r\n\r\n",
       production(Reason::MalformedHead, l + 264)},
      {"obs-fold", line + "Host: h\r\nX: a\r\n b\r\n\r\n",
       production(Reason::MalformedHead, l + 16)},
      {"space before colon", line + "Host : h\r\n\r\n", production(Reason::MalformedHead, l + 5)},
      {"empty field name", line + ": h\r\n\r\n", production(Reason::MalformedHead, l + 1)},
      {"NUL in a value", line + std::string("Host: h\r\nX: a\0b\r\n\r\n"sv),
       production(Reason::MalformedHead, l + 14)},
      {"bare CR in a value", line + "Host: h\r\nX: a\rb\r\n\r\n",
       production(Reason::MalformedHead, l + 15)},
      {"CR without LF at the end", line + "Host: h\r\n\rX",
       production(Reason::MalformedHead, l + 11)},
      {"head never ends", line + "Host: h\r\n", production(Reason::Incomplete)},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      check_every_split(c.wire, Protocol::Http, c.expect);
    }
  }
}

TEST_CASE("classify http: bounds", "[classifier][http]") {
  SECTION("a head larger than the default 8 KiB goes to production at the limit") {
    const std::string wire = challenge_line("GET", "abc", " HTTP/1.1\r\nHost: h\r\nX-Big: ") +
                             std::string(9000, 'x') + "\r\n\r\n";
    check_every_split(wire, Protocol::Http, production(Reason::LimitReached, 8 * 1024));
  }
  SECTION("a head that ends exactly at the limit is still decided") {
    Limits lim;
    lim.max_http_head = kLetsEncrypt.size();
    check_every_split(kLetsEncrypt, Protocol::Http, challenge(kToken, "example.com"), lim);
    lim.max_http_head = kLetsEncrypt.size() - 1;
    check_every_split(kLetsEncrypt, Protocol::Http,
                      production(Reason::LimitReached, kLetsEncrypt.size() - 1), lim);
  }
  SECTION("limits above the hard maximum are clamped") {
    Limits lim;
    lim.max_http_head = 1 << 30;
    const std::string wire = challenge_line("GET", "abc", " HTTP/1.1\r\nX: ") +
                             std::string(acmegw::classifier::kHardMaxHttpHead, 'x');
    const auto c = acmegw::classifier::classify(std::as_bytes(std::span{wire.data(), wire.size()}),
                                                Protocol::Http, lim);
    CHECK(c.decision == Decision::Production);
    CHECK(c.reason == Reason::LimitReached);
  }
  SECTION("empty stream") {
    check_every_split("", Protocol::Http, production(Reason::Empty));
  }
}

TEST_CASE("classify http: views point into the caller's buffer", "[classifier][http]") {
  acmegw::test::GuardedBuffer buf{kLetsEncrypt};
  const auto c = acmegw::classifier::classify(buf.bytes(), Protocol::Http);
  REQUIRE(c.decision == Decision::Challenge);
  CHECK(c.token.data() == buf.str().data() + 4 + kPrefix.size());
  CHECK(c.head_len == kLetsEncrypt.size());
  CHECK(to_string(c.challenge) == "http-01");
}
