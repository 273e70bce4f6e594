#include "backends/webroot.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <new>

#include "backends/keyauth.hpp"

namespace acmegw::backends {
namespace {

constexpr std::string_view kChallengeDir = ".well-known/acme-challenge/";

Answer kind(Answer::Kind k) { return Answer{k, {}, {}}; }

}  // namespace

std::unique_ptr<WebrootBackend> WebrootBackend::create(const std::string& dir, std::string& error) {
  auto d = sys::open_dir(dir.c_str());
  if (!d.ok()) {
    error = "webroot: cannot open directory " + dir + ": " + std::strerror(d.err);
    return nullptr;
  }
  // Probe openat2 once so that an old kernel fails at startup, not at the first challenge.
  if (auto probe = sys::open_beneath(d.value.get(), "."); probe.err == ENOSYS) {
    error = "webroot: openat2(2) is not available (Linux >= 5.6 needed)";
    return nullptr;
  }
  return std::unique_ptr<WebrootBackend>(new WebrootBackend(std::move(d.value)));
}

Answer WebrootBackend::answer(const ChallengeRequest& req) noexcept {
  // The classifier admits only [A-Za-z0-9_-] tokens; checked again because it becomes a path.
  if (!is_token(req.token)) {
    return kind(Answer::Kind::NotFound);
  }
  std::array<char, kChallengeDir.size() + kMaxTokenLen + 1> path{};
  std::memcpy(path.data(), kChallengeDir.data(), kChallengeDir.size());
  std::memcpy(path.data() + kChallengeDir.size(), req.token.data(), req.token.size());

  auto f = sys::open_beneath(dir_.get(), path.data());
  if (!f.ok()) {
    // ENOENT/ENOTDIR: no such challenge; EXDEV/ELOOP: a symlink out of DIR, refused as absent.
    const bool absent = f.err == ENOENT || f.err == ENOTDIR || f.err == EXDEV || f.err == ELOOP;
    return kind(absent ? Answer::Kind::NotFound : Answer::Kind::Unavailable);
  }
  const auto st = sys::fstat(f.value.get());
  if (!st.ok()) {
    return kind(Answer::Kind::Unavailable);
  }
  if (!S_ISREG(st.value.st_mode)) {
    return kind(Answer::Kind::NotFound);
  }
  if (st.value.st_size > static_cast<off_t>(kMaxWebrootFile)) {
    return kind(Answer::Kind::Unavailable);
  }
  try {
    // One spare byte detects a file that grew past the cap after fstat.
    std::string body(kMaxWebrootFile + 1, '\0');
    const auto r = sys::read_full(f.value.get(),
                                  std::as_writable_bytes(std::span{body.data(), body.size()}));
    if (!r.ok() || r.value > kMaxWebrootFile) {
      return kind(Answer::Kind::Unavailable);
    }
    body.resize(r.value);
    return Answer{Answer::Kind::KeyAuthorization, std::move(body), {}};
  } catch (const std::bad_alloc&) {
    return kind(Answer::Kind::Unavailable);
  }
}

}  // namespace acmegw::backends
