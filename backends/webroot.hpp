#pragma once
// The `webroot DIR` backend (DESIGN.md §3): answers with the file
// DIR/.well-known/acme-challenge/TOKEN, the layout written by certbot --webroot -w DIR,
// lego --http.webroot DIR, acme.sh -w DIR and dehydrated (WELLKNOWN=DIR/.well-known/acme-challenge).
// Files are opened beneath DIR only (openat2 RESOLVE_BENEATH: symlinks inside DIR work, none
// may leave it), must be regular files of at most kMaxWebrootFile bytes, and are served as
// they are (like nginx would), text/plain.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "backends/backend.hpp"
#include "backends/sys_file.hpp"

namespace acmegw::backends {

// A key authorization is ≤ 255 + 1 + 43 bytes; anything far larger is not one.
inline constexpr std::size_t kMaxWebrootFile = 4096;

class WebrootBackend final : public AnsweringBackend {
 public:
  // Opens `dir` (which must exist; its .well-known/acme-challenge/ may appear later) and checks
  // that openat2 works here. Returns nullptr and sets `error` otherwise.
  [[nodiscard]] static std::unique_ptr<WebrootBackend> create(const std::string& dir,
                                                              std::string& error);

  // KeyAuthorization with the file's bytes; NotFound when the file is missing, not a regular
  // file, or outside DIR (symlink escape); Unavailable when it is too large or unreadable.
  [[nodiscard]] Answer answer(const ChallengeRequest& req) noexcept override;
  [[nodiscard]] std::string_view name() const noexcept override { return "webroot"; }

 private:
  explicit WebrootBackend(sys::UniqueFd dir) noexcept : dir_(std::move(dir)) {}
  sys::UniqueFd dir_;  // O_PATH handle: a renamed or replaced DIR path does not matter
};

}  // namespace acmegw::backends
