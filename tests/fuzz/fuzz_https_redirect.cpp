// libFuzzer target for policy redirect-https (backends/https_redirect.hpp): the one place where
// bytes a client sent end up in a response header. Invariants, not just absence of crashes:
//   * a 301's Location is "https://" + host + path, visible ASCII only (no CR, LF, space, NUL),
//     the host holds no '@' or '/' (the redirect cannot point anywhere but the named host) and
//     the path starts with '/';
//   * the formatted answer is one response head: the blank line appears exactly once, at the end;
//     a malformed request gets no bytes at all;
//   * https_location() of an accepted host/path pair yields exactly that Location again.
// Each input is tried whole and cut after its first blank line (how the session hands heads over).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "backends/https_redirect.hpp"

namespace {

namespace bk = acmegw::backends;
using Kind = bk::HttpsRedirect::Kind;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

bool visible(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

void check_location(std::string_view loc) {
  constexpr std::string_view kScheme = "https://";
  check(loc.starts_with(kScheme) && visible(loc));
  const std::string_view rest = loc.substr(kScheme.size());
  const auto slash = rest.find('/');
  check(slash != std::string_view::npos && slash > 0);
  const std::string_view host = rest.substr(0, slash);
  check(host.find('@') == std::string_view::npos);
  // The path is everything after the host; https_location() must rebuild the same Location.
  const auto again = bk::https_location(host, rest.substr(slash));
  check(again.has_value() && *again == loc);
}

void check_head(std::string_view head) {
  const bk::HttpsRedirect r = bk::https_redirect_for(head);
  std::string out;
  bk::format_https_redirect(r, out);
  switch (r.kind) {
    case Kind::MovedPermanently:
      check_location(r.location);
      check(out.starts_with("HTTP/1.1 301 "));
      break;
    case Kind::BadRequest:
      check(out.starts_with("HTTP/1.1 400 "));
      break;
    case Kind::Malformed:
      check(out.empty());
      return;
  }
  const auto blank = out.find("\r\n\r\n");
  check(blank != std::string::npos && blank + 4 == out.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in{reinterpret_cast<const char*>(data), size};
  check_head(in);
  if (const auto end = in.find("\r\n\r\n"); end != std::string_view::npos) {
    check_head(in.substr(0, end + 4));
  }
  // The same bytes as a Host value and a path, split at the first NUL (or not at all).
  const auto nul = in.find('\0');
  const std::string_view host = in.substr(0, nul);
  const std::string_view path = nul == std::string_view::npos ? "/" : in.substr(nul + 1);
  if (const auto loc = bk::https_location(host, path)) {
    check_location(*loc);
  }
  return 0;
}
