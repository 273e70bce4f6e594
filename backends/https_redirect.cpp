#include "backends/https_redirect.hpp"

#include <algorithm>

#include "classifier/classify.hpp"

namespace acmegw::backends {
namespace {

using Kind = HttpsRedirect::Kind;

// RFC 9110 tchar: method and field-name characters.
bool is_tchar(char c) noexcept {
  const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  return alnum || std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

// What a request target may contain: visible ASCII, no space (RFC 9112 §3.2). This is also the
// guarantee that the Location header cannot carry CR, LF or a space.
bool is_visible(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

// RFC 9110 field-value: no control bytes except HTAB (obs-text allowed).
bool is_field_value(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lx = static_cast<char>(x >= 'A' && x <= 'Z' ? x + ('a' - 'A') : x);
           return lx == y;  // b is lower-case
         });
}

// Takes the next line off `rest` (LF or CRLF ended; the terminator dropped). nullopt when a CR
// stands anywhere but before the LF (RFC 9112 §2.2: a bare CR is invalid).
std::optional<std::string_view> next_line(std::string_view& rest) noexcept {
  const std::size_t lf = rest.find('\n');
  std::string_view line = rest.substr(0, lf);
  rest.remove_prefix(lf == std::string_view::npos ? rest.size() : lf + 1);
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.find('\r') != std::string_view::npos) {
    return std::nullopt;
  }
  return line;
}

struct RequestHead {
  std::string_view target;
  bool http11 = false;
  std::optional<std::string_view> host;  // the Host value, trimmed
  bool two_hosts = false;
  bool body = false;
};

// Request line and header fields of `head`; nullopt when it is not an HTTP/1.x request head.
std::optional<RequestHead> parse_head(std::string_view head) {
  RequestHead r;
  const auto line = next_line(head);
  if (!line) {
    return std::nullopt;
  }
  const std::size_t sp1 = line->find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line->find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view method = line->substr(0, sp1);
  r.target = line->substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line->substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_tchar) || r.target.empty() ||
      !is_visible(r.target) || (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return std::nullopt;
  }
  r.http11 = version == "HTTP/1.1";
  for (;;) {
    const auto field = next_line(head);
    if (!field) {
      return std::nullopt;
    }
    if (field->empty()) {
      return r;  // the blank line ending the head
    }
    const std::size_t colon = field->find(':');
    const std::string_view name = field->substr(0, colon);
    if (colon == std::string_view::npos || name.empty() ||
        !std::all_of(name.begin(), name.end(), is_tchar)) {
      return std::nullopt;  // also obs-fold (a line starting with whitespace)
    }
    const std::string_view value = trim(field->substr(colon + 1));
    if (!is_field_value(value)) {
      return std::nullopt;
    }
    if (iequals(name, "host")) {
      r.two_hosts = r.host.has_value();
      r.host = value;
    } else if (iequals(name, "content-length")) {
      r.body = r.body || value != "0";
    } else if (iequals(name, "transfer-encoding")) {
      r.body = true;
    }
  }
}

bool starts_with_nocase(std::string_view s, std::string_view lower_prefix) noexcept {
  return s.size() >= lower_prefix.size() && iequals(s.substr(0, lower_prefix.size()), lower_prefix);
}

// Location for an absolute-form target "http://AUTHORITY[/PATH][?QUERY]" (https:// too).
std::optional<std::string> absolute_location(std::string_view target) {
  const std::size_t scheme = starts_with_nocase(target, "http://")    ? 7
                             : starts_with_nocase(target, "https://") ? 8
                                                                      : 0;
  if (scheme == 0) {
    return std::nullopt;
  }
  const std::string_view rest = target.substr(scheme);
  const std::size_t end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, end);
  const std::string_view tail = end == std::string_view::npos ? "" : rest.substr(end);
  std::string path = tail.starts_with('/') ? "" : "/";
  path.append(tail);
  return https_location(authority, path);
}

}  // namespace

std::optional<std::string> https_location(std::string_view host, std::string_view path) {
  host = trim(host);
  classifier::HostName name;
  std::uint16_t port = 0;
  if (!classifier::parse_host(host, name, port) || !path.starts_with('/') || !is_visible(path)) {
    return std::nullopt;
  }
  const std::string_view n = name.view();
  const bool v6 = host.starts_with('[');
  // The classifier also accepts '_' (it routes on such names); a redirect target is a DNS name.
  if (!v6 && n.find('_') != std::string_view::npos) {
    return std::nullopt;
  }
  std::string out = "https://";
  out.append(v6 ? "[" : "").append(n).append(v6 ? "]" : "").append(path);
  return out;
}

HttpsRedirect https_redirect_for(std::string_view head) {
  HttpsRedirect out;
  const auto req = parse_head(head);
  if (!req) {
    return out;  // Malformed
  }
  out.kind = Kind::BadRequest;
  out.close = true;
  std::optional<std::string> location;
  if (req->target.starts_with('/')) {
    if (!req->host || req->two_hosts) {
      return out;  // HTTP/1.0 without Host (or any request with two): nowhere to send it
    }
    location = https_location(*req->host, req->target);
  } else if (!req->two_hosts && (req->http11 ? req->host.has_value() : true)) {
    location = absolute_location(req->target);  // the target's authority wins (RFC 9112 §3.2.2)
  }
  if (!location) {
    return out;
  }
  out.kind = Kind::MovedPermanently;
  out.location = std::move(*location);
  out.close = req->body;
  return out;
}

void format_https_redirect(const HttpsRedirect& r, std::string& out) {
  out.clear();
  switch (r.kind) {
    case Kind::MovedPermanently:
      out.append("HTTP/1.1 301 Moved Permanently\r\nLocation: ").append(r.location);
      out.append("\r\nContent-Length: 0\r\n");
      if (r.close) {
        out.append("Connection: close\r\n");
      }
      out.append("\r\n");
      return;
    case Kind::BadRequest:
      out.append("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    case Kind::Malformed:
      return;
  }
}

}  // namespace acmegw::backends
