#pragma once
// The `thumbprint THUMB` backend (DESIGN.md §3, stateless mode): answers every well-formed
// challenge token with the key authorization `TOKEN.THUMB` (RFC 8555 §8.1). One account key,
// nothing to store: whoever can make the ACME server validate already knows the token.
#include <memory>
#include <string>
#include <string_view>

#include "backends/backend.hpp"

namespace acmegw::backends {

class ThumbprintBackend final : public AnsweringBackend {
 public:
  // `thumbprint` must be a SHA-256 JWK thumbprint: exactly 43 base64url characters (RFC 7638,
  // `acmegw thumbprint --account-key FILE` prints it). Returns nullptr and sets `error`
  // (naming the value's problem) otherwise.
  [[nodiscard]] static std::unique_ptr<ThumbprintBackend> create(std::string_view thumbprint,
                                                                 std::string& error);

  // KeyAuthorization `TOKEN.THUMB` for a token of [A-Za-z0-9_-]{1,255}; NotFound otherwise.
  [[nodiscard]] Answer answer(const ChallengeRequest& req) noexcept override;
  [[nodiscard]] std::string_view name() const noexcept override { return "thumbprint"; }

 private:
  explicit ThumbprintBackend(std::string_view thumbprint) : thumbprint_(thumbprint) {}
  std::string thumbprint_;
};

}  // namespace acmegw::backends
