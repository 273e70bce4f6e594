#pragma once
// `policy = "redirect-https"` (docs/configuration.md "Policy"): the answer to a request that is
// not a challenge, on a connection acmegw took over, is `301 Moved Permanently` to
// https://HOST/PATH — the port-80 behaviour the ACME community recommends, without production
// ever seeing the plain-HTTP request.
//
// Pure: no syscalls, no logging. The Location header is built only from a Host that parses as a
// host name ([A-Za-z0-9.-], or an IPv6 literal in brackets; the port is dropped) and a request
// target of visible ASCII, so nothing the client sent can inject a header or a line break, nor
// point the redirect at another host (`@`, `/` or spaces in Host: 400).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace acmegw::backends {

struct HttpsRedirect {
  enum class Kind : std::uint8_t {
    MovedPermanently,  // 301 to `location`
    BadRequest,        // HTTP/1.x, but no usable Host or target: 400, then close
    Malformed,         // not an HTTP/1.x request head: reset the connection
  };
  Kind kind = Kind::Malformed;
  std::string location;  // MovedPermanently: "https://HOST/PATH"
  // The request announced a body (Content-Length other than 0, Transfer-Encoding): its bytes
  // would be read as the next request, so the answer says "Connection: close" and the session
  // waits for the client's FIN.
  bool close = false;
};

// The answer to one complete request head `head` (request line up to and including the blank
// line, as find_head_end() cut it). HOST comes from an absolute-form target's authority, else
// from the one Host header; PATH is the origin-form target as received (query included), or the
// path and query of an absolute-form target ("/" when it has none).
[[nodiscard]] HttpsRedirect https_redirect_for(std::string_view head);

// "https://HOST" + path for Host value `host` (trimmed; `name`, `name:port`, `[v6]`,
// `[v6]:port`) and `path` (must start with '/' and be visible ASCII), or nullopt when either is
// unusable.
[[nodiscard]] std::optional<std::string> https_location(std::string_view host,
                                                        std::string_view path);

// Writes the HTTP/1.1 response for `r` into `out` (replacing its contents): 301 with Location
// and Content-Length 0 (plus "Connection: close" when r.close), or 400 with "Connection: close".
// A Malformed request gets no response (the caller resets); `out` is left empty then.
void format_https_redirect(const HttpsRedirect& r, std::string& out);

}  // namespace acmegw::backends
