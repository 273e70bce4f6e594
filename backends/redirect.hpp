#pragma once
// The `redirect URL` backend (DESIGN.md §3): answers every challenge with a 302 to
// URL + "/.well-known/acme-challenge/TOKEN", for a central validation service. ACME servers
// follow up to 10 redirects to ports 80/443 (RFC 8555 §8.3; Let's Encrypt's documented limit).
#include <memory>
#include <string>
#include <string_view>

#include "backends/backend.hpp"

namespace acmegw::backends {

class RedirectBackend final : public AnsweringBackend {
 public:
  // `url`: "http://" or "https://", a non-empty authority, an optional path prefix; no query,
  // fragment, user info, whitespace or control bytes (the Location header is built from it).
  // One trailing "/" is dropped. Returns nullptr and sets `error` when the URL is unusable.
  [[nodiscard]] static std::unique_ptr<RedirectBackend> create(std::string_view url,
                                                               std::string& error);

  [[nodiscard]] Answer answer(const ChallengeRequest& req) noexcept override;
  [[nodiscard]] std::string_view name() const noexcept override { return "redirect"; }
  [[nodiscard]] const std::string& base() const noexcept { return base_; }

 private:
  explicit RedirectBackend(std::string base) : base_(std::move(base)) {}
  std::string base_;  // validated URL without a trailing "/"
};

}  // namespace acmegw::backends
