// policy "redirect-https": the Location builder, the request-head checks and the response bytes
// (backends/https_redirect.hpp). Pure; the session side is in http_session_test.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "backends/https_redirect.hpp"

namespace {

using acmegw::backends::format_https_redirect;
using acmegw::backends::https_location;
using acmegw::backends::https_redirect_for;
using acmegw::backends::HttpsRedirect;
using Kind = HttpsRedirect::Kind;

std::string response_for(std::string_view head) {
  std::string out = "stale";
  format_https_redirect(https_redirect_for(head), out);
  return out;
}

}  // namespace

TEST_CASE("https_location: host with the port stripped, path and query kept", "[redirect]") {
  CHECK(https_location("example.org", "/") == "https://example.org/");
  CHECK(https_location("Example.ORG:8080", "/a/b?x=1&y=%20") ==
        "https://example.org/a/b?x=1&y=%20");
  CHECK(https_location(" www.example.org. ", "/x") == "https://www.example.org./x");
  CHECK(https_location("[2001:DB8::1]:80", "/p") == "https://[2001:db8::1]/p");
  CHECK(https_location("[2001:db8::1]", "/") == "https://[2001:db8::1]/");
  CHECK(https_location("192.0.2.7:80", "/") == "https://192.0.2.7/");
}

TEST_CASE("https_location: anything that could inject or redirect elsewhere is refused",
          "[redirect]") {
  using namespace std::string_view_literals;
  for (const std::string_view host :
       {"evil.com\r\nSet-Cookie: a=b"sv, "a b"sv, "user@evil.com"sv, "evil.com/path"sv,
        "evil.com\\x"sv, "exa_mple.org"sv, ""sv, ":80"sv, "[]"sv, "[2001:db8::1"sv, "[evil.com]"sv,
        "example.org:0"sv, "example.org:99999"sv, "example.org:80x"sv, "exa%6dple.org"sv,
        "example.org\0.evil"sv, "\texample.org\n"sv}) {
    CAPTURE(host);
    CHECK_FALSE(https_location(host, "/"));
  }
  CHECK_FALSE(https_location("example.org", ""));            // no path
  CHECK_FALSE(https_location("example.org", "x"));           // not origin-form
  CHECK_FALSE(https_location("example.org", "/a\r\nX: y"));  // control bytes in the path
  CHECK_FALSE(https_location("example.org", "/a b"));
  CHECK_FALSE(https_location("example.org", "/\x80"));
}

TEST_CASE("https_redirect_for: origin-form and absolute-form requests", "[redirect]") {
  auto r = https_redirect_for("GET /shop/cart?id=7 HTTP/1.1\r\nHost: www.example.org:80\r\n\r\n");
  CHECK(r.kind == Kind::MovedPermanently);
  CHECK(r.location == "https://www.example.org/shop/cart?id=7");
  CHECK_FALSE(r.close);
  // HEAD, bare LF line ends, header name case, OWS around the value.
  r = https_redirect_for("HEAD / HTTP/1.1\nhOST:   example.org\t\nAccept: */*\n\n");
  CHECK(r.kind == Kind::MovedPermanently);
  CHECK(r.location == "https://example.org/");
  // Absolute form: the target's authority wins over Host (RFC 9112 §3.2.2).
  r = https_redirect_for("GET http://Example.org:8080/a?b HTTP/1.1\r\nHost: other.org\r\n\r\n");
  CHECK(r.location == "https://example.org/a?b");
  CHECK(https_redirect_for("GET HTTP://example.org HTTP/1.1\r\nHost: x\r\n\r\n").location ==
        "https://example.org/");
  CHECK(https_redirect_for("GET http://example.org?q=1 HTTP/1.0\r\n\r\n").location ==
        "https://example.org/?q=1");
  // HTTP/1.0 with Host is fine; without Host there is nowhere to redirect to.
  CHECK(https_redirect_for("GET /x HTTP/1.0\r\nHost: example.org\r\n\r\n").location ==
        "https://example.org/x");
  r = https_redirect_for("GET /x HTTP/1.0\r\n\r\n");
  CHECK(r.kind == Kind::BadRequest);
  CHECK(r.close);
  // Other methods are redirected too; a body means the connection closes after the 301.
  r = https_redirect_for("POST /form HTTP/1.1\r\nHost: example.org\r\nContent-Length: 3\r\n\r\n");
  CHECK(r.kind == Kind::MovedPermanently);
  CHECK(r.close);
  CHECK_FALSE(https_redirect_for("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").close);
  CHECK(
      https_redirect_for("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").close);
}

TEST_CASE("https_redirect_for: bad Host or target is 400, non-HTTP is Malformed", "[redirect]") {
  for (const char* head : {
           "GET / HTTP/1.1\r\n\r\n",                                  // 1.1 without Host
           "GET / HTTP/1.1\r\nHost: a.org\r\nHost: b.org\r\n\r\n",    // two Hosts
           "GET / HTTP/1.1\r\nHost: user@evil.com\r\n\r\n",           // userinfo
           "GET / HTTP/1.1\r\nHost: evil.com/x\r\n\r\n",              // a path in Host
           "GET / HTTP/1.1\r\nHost: evil.com x\r\n\r\n",              // a space
           "GET / HTTP/1.1\r\nHost: \r\n\r\n",                        // empty
           "OPTIONS * HTTP/1.1\r\nHost: a.org\r\n\r\n",               // asterisk-form
           "CONNECT a.org:443 HTTP/1.1\r\nHost: a.org\r\n\r\n",       // authority-form
           "GET ftp://a.org/ HTTP/1.1\r\nHost: a.org\r\n\r\n",        // other scheme
           "GET http://user@a.org/ HTTP/1.1\r\nHost: a.org\r\n\r\n",  // userinfo in target
           "GET http://a.org/ HTTP/1.1\r\n\r\n",                      // 1.1 absolute, no Host
       }) {
    CAPTURE(head);
    const auto r = https_redirect_for(head);
    CHECK(r.kind == Kind::BadRequest);
    CHECK(r.location.empty());
  }
  for (const char* head : {
           "\x16\x03\x01\x02\x00\x01\r\n\r\n",                  // TLS
           "SSH-2.0-OpenSSH_9.2\r\n\r\n",                       // no target, no version
           "GET / HTTP/2.0\r\nHost: a.org\r\n\r\n",             // version
           "GET  / HTTP/1.1\r\nHost: a.org\r\n\r\n",            // two spaces
           "GET / HTTP/1.1\r\nHost: a.org\r\n folded\r\n\r\n",  // obs-fold
           "GET / HTTP/1.1\r\nHost: a\rb.org\r\n\r\n",          // bare CR
           "GET / HTTP/1.1\r\nBad Name: x\r\nHost: a.org\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a.org\r\nX: a\x01\r\n\r\n",  // control byte in a value
           "GET /\x7f HTTP/1.1\r\nHost: a.org\r\n\r\n",
       }) {
    CAPTURE(head);
    CHECK(https_redirect_for(head).kind == Kind::Malformed);
  }
}

TEST_CASE("format_https_redirect: the exact response bytes", "[redirect]") {
  CHECK(response_for("GET /a?b=c HTTP/1.1\r\nHost: example.org:80\r\n\r\n") ==
        "HTTP/1.1 301 Moved Permanently\r\n"
        "Location: https://example.org/a?b=c\r\n"
        "Content-Length: 0\r\n"
        "\r\n");
  CHECK(response_for("POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 1\r\n\r\n") ==
        "HTTP/1.1 301 Moved Permanently\r\n"
        "Location: https://example.org/\r\n"
        "Content-Length: 0\r\n"
        "Connection: close\r\n"
        "\r\n");
  CHECK(response_for("GET / HTTP/1.0\r\n\r\n") ==
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  CHECK(response_for("garbage\r\n\r\n").empty());  // Malformed: reset, nothing written
}
