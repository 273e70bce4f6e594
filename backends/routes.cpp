#include "backends/routes.hpp"

#include <algorithm>

namespace acmegw::backends {
namespace {

constexpr std::size_t kMaxHostName = 253;  // RFC 1035 presentation form without trailing dot

char to_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view strip_trailing_dot(std::string_view s) noexcept {
  return (s.size() > 1 && s.back() == '.') ? s.substr(0, s.size() - 1) : s;
}

}  // namespace

bool is_host_name(std::string_view host) noexcept {
  if (host.empty() || host.size() > kMaxHostName) {
    return false;
  }
  // A ':' only appears in an IPv6 literal, so "name:port" is refused.
  const bool v6 = host.find(':') != std::string_view::npos;
  char prev = '.';  // a leading dot is an empty label
  for (const char c : host) {
    if (v6 && !((c >= '0' && c <= '9') || (to_lower(c) >= 'a' && to_lower(c) <= 'f') || c == ':' ||
                c == '.')) {
      return false;
    }
    const char l = to_lower(c);
    const bool ok = (l >= 'a' && l <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                    c == ':' || c == '.';
    if (!ok || (c == '.' && prev == '.')) {
      return false;
    }
    prev = c;
  }
  return prev != '.';
}

std::string normalize_host(std::string_view host) {
  host = strip_trailing_dot(host);
  std::string out(host.size(), '\0');
  std::transform(host.begin(), host.end(), out.begin(), to_lower);
  return out;
}

std::optional<std::size_t> RouteTable::find(const std::vector<Entry>& v,
                                            std::string_view name) noexcept {
  const auto it = std::lower_bound(v.begin(), v.end(), name,
                                   [](const Entry& e, std::string_view n) { return e.first < n; });
  if (it != v.end() && it->first == name) {
    return it->second;
  }
  return std::nullopt;
}

std::optional<std::string> RouteTable::insert(std::vector<Entry>& v, std::string name,
                                              std::size_t backend) {
  const auto it = std::lower_bound(v.begin(), v.end(), name,
                                   [](const Entry& e, const std::string& n) { return e.first < n; });
  if (it != v.end() && it->first == name) {
    return "route: duplicate pattern for '" + name + "'";
  }
  v.insert(it, Entry{std::move(name), backend});
  return std::nullopt;
}

std::optional<std::string> RouteTable::add(std::string_view pattern, std::size_t backend) {
  if (pattern == "*") {
    if (default_) {
      return std::string{"route: duplicate default route '*'"};
    }
    default_ = backend;
    return std::nullopt;
  }
  const bool wildcard = pattern.starts_with("*.");
  std::string name = normalize_host(wildcard ? pattern.substr(2) : pattern);
  if (!is_host_name(name)) {
    return "route: invalid host pattern '" + std::string{pattern} +
           "' (want name, *.suffix or *; characters a-z 0-9 . - _ :)";
  }
  return insert(wildcard ? wildcard_ : exact_, std::move(name), backend);
}

std::optional<std::size_t> RouteTable::match(std::string_view host) const noexcept {
  host = strip_trailing_dot(host);
  if (host.empty() || host.front() == '.') {  // no Host, or an empty first label: no name to match
    return default_;
  }
  if (const auto b = find(exact_, host)) {
    return b;
  }
  // Try the suffixes after each dot from the left: the first hit is the longest wildcard.
  for (std::size_t dot = host.find('.'); dot != std::string_view::npos;
       dot = host.find('.', dot + 1)) {
    if (const auto b = find(wildcard_, host.substr(dot + 1))) {
      return b;
    }
  }
  return default_;
}

}  // namespace acmegw::backends
