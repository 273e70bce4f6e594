#include "backends/thumbprint.hpp"

#include "backends/keyauth.hpp"

namespace acmegw::backends {

std::unique_ptr<ThumbprintBackend> ThumbprintBackend::create(std::string_view thumbprint,
                                                             std::string& error) {
  if (thumbprint.size() != kThumbprintLen) {
    error = "thumbprint must be " + std::to_string(kThumbprintLen) +
            " base64url characters (SHA-256, no padding), got " + std::to_string(thumbprint.size());
    return nullptr;
  }
  if (!is_thumbprint(thumbprint)) {
    error = "thumbprint has a character outside [A-Za-z0-9_-]";
    return nullptr;
  }
  return std::unique_ptr<ThumbprintBackend>(new ThumbprintBackend(thumbprint));
}

Answer ThumbprintBackend::answer(const ChallengeRequest& req) noexcept {
  Answer a;
  if (!is_token(req.token)) {
    return a;  // NotFound: the classifier's token rule and ours are the same; belt and braces
  }
  a.kind = Answer::Kind::KeyAuthorization;
  a.body.reserve(req.token.size() + 1 + thumbprint_.size());
  a.body.append(req.token).append(1, '.').append(thumbprint_);
  return a;
}

}  // namespace acmegw::backends
