#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include "backends/keyauth.hpp"
#include "backends/tokens.hpp"

using namespace std::chrono_literals;
using acmegw::backends::parse_token_command;
using acmegw::backends::TokenCommand;
using acmegw::backends::TokenStore;
using Op = TokenCommand::Op;

namespace {

constexpr std::string_view kThumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";  // RFC 7638
const std::string kKeyauth = "tok-1." + std::string{kThumb};
const TokenStore::Clock::time_point t0{};

}  // namespace

TEST_CASE("keyauth validators", "[backends][tokens]") {
  using namespace acmegw::backends;
  CHECK(is_token("a"));
  CHECK(is_token(std::string(255, 'A')));
  CHECK_FALSE(is_token(std::string(256, 'A')));
  CHECK_FALSE(is_token(""));
  CHECK_FALSE(is_token("a.b"));
  CHECK_FALSE(is_token("a/b"));
  CHECK_FALSE(is_token("a%2f"));
  CHECK(is_thumbprint(kThumb));
  CHECK_FALSE(is_thumbprint(kThumb.substr(1)));
  CHECK(is_key_authorization_for(kKeyauth, "tok-1"));
  CHECK_FALSE(is_key_authorization_for(kKeyauth, "tok-2"));
  CHECK_FALSE(is_key_authorization_for(kKeyauth, "tok"));  // "tok" + "-1.…" is not "tok."
}

TEST_CASE("parse_token_command: valid requests", "[backends][tokens]") {
  // The parsed views point into the line: keep each line alive while its result is used.
  const std::string add_line = "add tok-1 " + kKeyauth;
  auto c = parse_token_command(add_line);
  CHECK(c.op == Op::Add);
  CHECK(c.token == "tok-1");
  CHECK(c.keyauth == kKeyauth);
  CHECK(c.ttl == acmegw::backends::kDefaultTokenTtl);
  CHECK(c.host.empty());

  const std::string add_opts_line = "add tok-1 " + kKeyauth + " host=WWW.Example.com. ttl=60\r";
  c = parse_token_command(add_opts_line);
  CHECK(c.op == Op::Add);
  CHECK(c.ttl == 60s);
  CHECK(c.host == "WWW.Example.com.");  // the store normalizes
  CHECK(acmegw::backends::format_token_command(c) ==
        "add tok-1 " + kKeyauth + " ttl=60 host=WWW.Example.com.");

  c = parse_token_command("remove tok-1");
  CHECK(c.op == Op::Remove);
  CHECK(c.token == "tok-1");
  CHECK(parse_token_command("list").op == Op::List);
}

TEST_CASE("parse_token_command: invalid requests carry a clear message", "[backends][tokens]") {
  struct Case {
    std::string line;
    std::string_view message_part;
  };
  const Case cases[] = {
      {"", "unknown command"},
      {"ADD tok-1 " + kKeyauth, "unknown command"},
      {"add tok.1 " + kKeyauth, "invalid token"},
      {"add " + std::string(256, 'a') + " x", "invalid token"},
      {"add tok-1", "invalid key authorization"},
      {"add tok-1 tok-2." + std::string{kThumb}, "for this token"},
      {"add tok-1 tok-1.short", "43 characters"},
      {"add tok-1 " + kKeyauth + " ttl=0", "invalid ttl"},
      {"add tok-1 " + kKeyauth + " ttl=604801", "invalid ttl"},
      {"add tok-1 " + kKeyauth + " ttl=5x", "invalid ttl"},
      {"add tok-1 " + kKeyauth + " host=a/b", "invalid host"},
      {"add tok-1 " + kKeyauth + " host=", "invalid host"},
      {"add tok-1 " + kKeyauth + " ttl=5 ttl=6", "repeated option"},
      {"add tok-1 " + kKeyauth + " color=red", "unknown"},
      {"remove", "invalid token"},
      {"remove a b", "one token"},
      {"list all", "no arguments"},
      {"add x " + std::string(1100, 'a'), "too long"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    const auto r = parse_token_command(c.line);
    CHECK(r.op == Op::Invalid);
    CHECK(std::string_view{r.error}.find(c.message_part) != std::string_view::npos);
  }
}

TEST_CASE("TokenStore: ttl, host binding, replace, remove", "[backends][tokens]") {
  TokenStore s;
  REQUIRE_FALSE(s.add("tok-1", kKeyauth, "", 10s, t0));
  CHECK(s.find("tok-1", "any.example", t0 + 9s) == kKeyauth);
  CHECK_FALSE(s.find("tok-1", "any.example", t0 + 10s));  // expired exactly at ttl
  CHECK_FALSE(s.find("tok-2", "", t0));

  REQUIRE_FALSE(s.add("tok-1", kKeyauth, "WWW.Example.com.", 10s, t0));  // replaces, host-bound
  CHECK(s.find("tok-1", "www.example.com", t0) == kKeyauth);
  CHECK_FALSE(s.find("tok-1", "other.example.com", t0));
  CHECK(s.remove("tok-1"));
  CHECK_FALSE(s.remove("tok-1"));
  CHECK_FALSE(s.find("tok-1", "www.example.com", t0));
}

TEST_CASE("TokenStore::execute: the wire responses", "[backends][tokens]") {
  TokenStore s;
  CHECK(s.execute("list", t0) == "ok 0\n");
  CHECK(s.execute("add tok-1 " + kKeyauth + " ttl=30 host=www.example.com", t0) == "ok\n");
  CHECK(s.execute("list", t0 + 1500ms) ==
        "token tok-1 " + kKeyauth + " ttl=29 host=www.example.com\nok 1\n");
  CHECK(s.execute("list", t0 + 30s) == "ok 0\n");  // expired entries are purged
  CHECK(s.execute("remove tok-1", t0) == "error no such token\n");
  CHECK(s.execute("bogus", t0) ==
        "error unknown command (want add, remove, add-alpn, remove-alpn or list)\n");
}

TEST_CASE("TokenStore: bounded", "[backends][tokens]") {
  TokenStore s;
  const std::string thumb{kThumb};
  for (std::size_t i = 0; i < acmegw::backends::kMaxTokens; ++i) {
    std::string tok = "t";  // not "t" + to_string(i): GCC 12 -O3 -Wrestrict false positive
    tok += std::to_string(i);
    REQUIRE_FALSE(s.add(tok, tok + "." + thumb, "", 10s, t0));
  }
  const auto err = s.add("one-more", "one-more." + thumb, "", 10s, t0);
  REQUIRE(err);
  CHECK(err->find("full") != std::string_view::npos);
  CHECK_FALSE(s.add("t0", "t0." + thumb, "", 10s, t0));  // replacing is still allowed
  CHECK_FALSE(s.add("one-more", "one-more." + thumb, "", 10s, t0 + 11s));  // after expiry
}

TEST_CASE("alpn digests: base64url codec, one spelling per digest", "[backends][tokens]") {
  using acmegw::backends::decode_alpn_digest;
  using acmegw::backends::encode_alpn_digest;
  const auto d = acmegw::backends::keyauth_digest(kKeyauth);
  const std::string text = encode_alpn_digest(d);
  CHECK(text.size() == 43);
  CHECK(decode_alpn_digest(text) == d);
  // SHA-256("abc"), as `openssl dgst -sha256 -binary | base64url` prints it.
  CHECK(encode_alpn_digest(acmegw::backends::keyauth_digest("abc")) ==
        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
  CHECK_FALSE(decode_alpn_digest(text.substr(0, 42)));
  CHECK_FALSE(decode_alpn_digest(text + "A"));
  CHECK_FALSE(decode_alpn_digest(text.substr(0, 42) + "="));
  CHECK_FALSE(decode_alpn_digest("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa1"));  // low bits set
}

TEST_CASE("TokenStore: add-alpn / remove-alpn / list over the wire", "[backends][tokens]") {
  TokenStore s;
  const std::string digest =
      acmegw::backends::encode_alpn_digest(acmegw::backends::keyauth_digest(kKeyauth));
  CHECK(s.execute("add-alpn WWW.Example.com. " + kKeyauth + " ttl=30", t0) == "ok\n");
  CHECK(s.execute("add-alpn 192.0.2.7 digest=" + digest, t0) == "ok\n");
  const auto www = s.find_alpn("www.example.com", t0 + 1s);
  REQUIRE(www);
  CHECK(www->digest == acmegw::backends::keyauth_digest(kKeyauth));
  CHECK_FALSE(www->id.ip);
  const auto ip = s.find_alpn("7.2.0.192.in-addr.arpa", t0);
  REQUIRE(ip);
  CHECK(ip->id.ip == std::string("\xc0\x00\x02\x07", 4));
  CHECK_FALSE(s.find_alpn("other.example.com", t0));
  CHECK_FALSE(s.find_alpn("www.example.com", t0 + 30s));  // expired exactly at ttl
  // Never the key authorization itself: only its digest is kept and listed.
  const std::string list = s.execute("list", t0 + 1500ms);
  CHECK(list.find("alpn www.example.com " + digest + " ttl=29\n") != std::string::npos);
  CHECK(list.find("alpn 7.2.0.192.in-addr.arpa " + digest + " ttl=3599\n") != std::string::npos);
  CHECK(list.find(kKeyauth) == std::string::npos);
  CHECK(list.ends_with("ok 2\n"));
  CHECK(s.execute("remove-alpn www.example.com", t0) == "ok\n");
  CHECK(s.execute("remove-alpn www.example.com", t0) == "error no such identifier\n");
  CHECK_FALSE(s.find_alpn("www.example.com", t0));
  // Bad input: a clear error each, nothing stored.
  CHECK(
      s.execute("add-alpn *.example.com " + kKeyauth, t0).starts_with("error invalid identifier"));
  CHECK(s.execute("add-alpn a.example nodot", t0).starts_with("error invalid key authorization"));
  CHECK(s.execute("add-alpn a.example digest=short", t0).starts_with("error invalid digest"));
  CHECK(
      s.execute("add-alpn a.example " + kKeyauth + " ttl=0", t0).starts_with("error invalid ttl"));
  CHECK(s.execute("add-alpn a.example " + kKeyauth + " host=x", t0).starts_with("error unknown"));
  CHECK(s.execute("remove-alpn a b", t0).starts_with("error remove-alpn takes one"));
  CHECK_FALSE(s.find_alpn("a.example", t0));
}

TEST_CASE("parse/format_token_command: add-alpn round trip", "[backends][tokens]") {
  const std::string line = "add-alpn www.example.com " + kKeyauth + " ttl=600";
  const TokenCommand c = parse_token_command(line);
  REQUIRE(c.op == Op::AddAlpn);
  CHECK(c.identifier == "www.example.com");
  CHECK(c.keyauth == kKeyauth);
  CHECK(c.ttl == 600s);
  CHECK(acmegw::backends::format_token_command(c) == line);
  const TokenCommand r = parse_token_command("remove-alpn www.example.com");
  REQUIRE(r.op == Op::RemoveAlpn);
  CHECK(acmegw::backends::format_token_command(r) == "remove-alpn www.example.com");
}
