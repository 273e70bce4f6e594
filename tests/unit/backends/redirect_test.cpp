#include <catch2/catch.hpp>

#include <string>

#include "backends/redirect.hpp"

using acmegw::backends::Answer;
using acmegw::backends::ChallengeRequest;
using acmegw::backends::RedirectBackend;

TEST_CASE("RedirectBackend: URL + challenge path", "[backends][redirect]") {
  struct Case {
    const char* url;
    const char* location;
  };
  const Case cases[] = {
      {"http://val.example.net", "http://val.example.net/.well-known/acme-challenge/tok_EN-1"},
      {"http://val.example.net/", "http://val.example.net/.well-known/acme-challenge/tok_EN-1"},
      {"https://[2001:db8::5]:8443/acme",
       "https://[2001:db8::5]:8443/acme/.well-known/acme-challenge/tok_EN-1"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.url);
    std::string error;
    const auto b = RedirectBackend::create(c.url, error);
    REQUIRE(b);
    // The query in the target is dropped: the Location is built from the token only.
    const ChallengeRequest req{"GET", "tok_EN-1", "www.example.com",
                               "/.well-known/acme-challenge/tok_EN-1?x=%0d%0aSet-Cookie:1"};
    const Answer a = b->answer(req);
    CHECK(a.kind == Answer::Kind::Redirect);
    CHECK(a.location == c.location);
    CHECK(a.body.empty());
  }
}

TEST_CASE("RedirectBackend: unusable URLs are refused", "[backends][redirect]") {
  for (const char* bad : {"", "val.example.net", "ftp://val", "http://", "http:///path",
                          "http://val/x?y=1", "http://val/#frag", "http://user@val/",
                          "http://val/a b", "http://val/\r\nX: 1"}) {
    CAPTURE(bad);
    std::string error;
    CHECK_FALSE(RedirectBackend::create(bad, error));
    CHECK(error.find("redirect:") == 0);
  }
}
