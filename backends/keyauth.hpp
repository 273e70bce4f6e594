#pragma once
// ACME http-01 names (RFC 8555 §8.1, §8.3): the token and the key authorization
// `TOKEN.THUMBPRINT`, where THUMBPRINT is base64url(SHA-256(JWK)) without padding (RFC 7638).
// Pure: no syscalls, no allocation.
#include <cstddef>
#include <string_view>

namespace acmegw::backends {

inline constexpr std::size_t kMaxTokenLen = 255;  // the classifier's bound, DESIGN.md §2
inline constexpr std::size_t kThumbprintLen = 43;  // base64url of 32 bytes, no padding

// True for one base64url character [A-Za-z0-9_-] (RFC 4648 §5).
[[nodiscard]] constexpr bool is_base64url_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// True when `s` is 1..max_len base64url characters.
[[nodiscard]] constexpr bool is_base64url(std::string_view s, std::size_t max_len) noexcept {
  if (s.empty() || s.size() > max_len) {
    return false;
  }
  for (const char c : s) {
    if (!is_base64url_char(c)) {
      return false;
    }
  }
  return true;
}

// True when `s` is a challenge token as acmegw accepts it: [A-Za-z0-9_-]{1,255}.
[[nodiscard]] constexpr bool is_token(std::string_view s) noexcept {
  return is_base64url(s, kMaxTokenLen);
}

// True when `s` is a SHA-256 JWK thumbprint: exactly 43 base64url characters.
[[nodiscard]] constexpr bool is_thumbprint(std::string_view s) noexcept {
  return s.size() == kThumbprintLen && is_base64url(s, kThumbprintLen);
}

// True when `keyauth` is exactly `token` + "." + a thumbprint.
[[nodiscard]] constexpr bool is_key_authorization_for(std::string_view keyauth,
                                                      std::string_view token) noexcept {
  return keyauth.size() == token.size() + 1 + kThumbprintLen && keyauth.starts_with(token) &&
         keyauth[token.size()] == '.' && is_thumbprint(keyauth.substr(token.size() + 1));
}

}  // namespace acmegw::backends
