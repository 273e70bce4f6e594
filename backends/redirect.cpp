#include "backends/redirect.hpp"

#include <new>

namespace acmegw::backends {
namespace {

constexpr std::string_view kChallengePath = "/.well-known/acme-challenge/";

// RFC 3986 characters that may appear in an authority or path as we accept them: unreserved,
// sub-delims, ':', '@' is refused (user info), '%' for escapes, '[' ']' for IPv6 literals.
bool is_url_char(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view{"-._~!$&'()*+,;=:%[]/"}.find(c) != std::string_view::npos;
}

}  // namespace

std::unique_ptr<RedirectBackend> RedirectBackend::create(std::string_view url,
                                                         std::string& error) {
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    error = "redirect: URL must start with http:// or https://";
    return nullptr;
  }
  for (const char c : rest) {
    if (!is_url_char(c)) {
      error = "redirect: URL has a character not allowed here (query, fragment, user info, "
              "space or control byte)";
      return nullptr;
    }
  }
  if (rest.empty() || rest.front() == '/') {
    error = "redirect: URL has no host";
    return nullptr;
  }
  if (url.ends_with('/')) {
    url.remove_suffix(1);
  }
  return std::unique_ptr<RedirectBackend>(new RedirectBackend(std::string{url}));
}

Answer RedirectBackend::answer(const ChallengeRequest& req) noexcept {
  // Built from the validated token, not the raw target: nothing the client sent beyond
  // [A-Za-z0-9_-] reaches the Location header, and a query is dropped like everywhere else.
  try {
    std::string location;
    location.reserve(base_.size() + kChallengePath.size() + req.token.size());
    location.append(base_).append(kChallengePath).append(req.token);
    return Answer{Answer::Kind::Redirect, {}, std::move(location)};
  } catch (const std::bad_alloc&) {
    return Answer{Answer::Kind::Unavailable, {}, {}};
  }
}

}  // namespace acmegw::backends
