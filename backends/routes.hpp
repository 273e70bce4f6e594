#pragma once
// Host → backend routing (DESIGN.md §3): exact names, `*.suffix` wildcards, and a default.
// Pure: no syscalls; match() does not allocate.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace acmegw::backends {

// True when `host` is a plausible Host value without port: 1..253 characters of
// [A-Za-z0-9._:-], no empty label, no trailing dot; with a ':' only an IPv6 literal's characters
// ("192.0.2.1" and "2001:db8::1" pass, "example.com:80" does not).
[[nodiscard]] bool is_host_name(std::string_view host) noexcept;

// Lower-cases `host` and strips one trailing dot ("Example.COM." → "example.com").
[[nodiscard]] std::string normalize_host(std::string_view host);

class RouteTable {
 public:
  // Adds a route to backend number `backend`. `pattern` is an exact name ("www.example.com"),
  // a wildcard ("*.example.com": any name with one or more labels before ".example.com", not
  // "example.com" itself, as nginx's server_name), or "*" for the default. Case-insensitive.
  // Returns an error message (pattern invalid or already routed), or nullopt on success.
  [[nodiscard]] std::optional<std::string> add(std::string_view pattern, std::size_t backend);

  // Backend for `host` (lower-case, no port; one trailing dot ignored): the exact route, else
  // the longest matching wildcard, else the default; nullopt when nothing matches.
  [[nodiscard]] std::optional<std::size_t> match(std::string_view host) const noexcept;

  [[nodiscard]] bool empty() const noexcept {
    return exact_.empty() && wildcard_.empty() && !default_;
  }

 private:
  using Entry = std::pair<std::string, std::size_t>;  // name (or suffix after "*."), backend
  static std::optional<std::size_t> find(const std::vector<Entry>& v, std::string_view name) noexcept;
  static std::optional<std::string> insert(std::vector<Entry>& v, std::string name, std::size_t backend);

  std::vector<Entry> exact_;     // sorted by name
  std::vector<Entry> wildcard_;  // sorted by suffix, without the leading "*."
  std::optional<std::size_t> default_;
};

}  // namespace acmegw::backends
