#pragma once
// The `certdir=DIR` tls-alpn-01 backend: serves the acmeIdentifier certificate and key that
// the ACME client wrote itself, in dehydrated's ALPNCERTDIR layout (dehydrated 0.7.0,
// generate_alpn_certificate(): DIR/IDENT.crt.pem + DIR/IDENT.key.pem, IDENT being the
// identifier's value as the CA names it: a DNS name, or for an IP identifier its literal).
// Same file rules as the webroot backend (webroot.hpp): opened beneath DIR only (openat2
// RESOLVE_BENEATH: symlinks inside DIR work, none may leave it), O_NONBLOCK, regular files of
// at most kMaxCertdirFile bytes. The certificate is presented as it is: its SAN and
// acmeIdentifier extension are the client's business.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <sys/stat.h>

#include "backends/sys_file.hpp"
#include "backends/tls_backend.hpp"

namespace acmegw::backends {

// A PEM certificate or key is a few KiB (RSA-4096 ~3.3 KiB); anything far larger is not one.
inline constexpr std::size_t kMaxCertdirFile = 64 * 1024;
// Bound on the parsed-file cache (cleared when full).
inline constexpr std::size_t kMaxCertdirCached = 1024;

// The file name stem dehydrated writes for `identifier` in the TlsAnsweringBackend form (the
// SNI: lower-case DNS name, or an RFC 8738 reverse name): the DNS name itself, or the IP
// literal (inet_ntop form) for a reverse name. nullopt when the identifier cannot name a file
// of DIR (empty, '/', leading '.', characters outside [a-z0-9.-], over 253 characters).
[[nodiscard]] std::optional<std::string> certdir_file_stem(std::string_view identifier);

class CertdirBackend final : public TlsAnsweringBackend {
 public:
  // Receives a warning line ("certdir: …"); called at most once per kWarnInterval (the lines
  // in between are counted and the count is reported with the next one). May be empty.
  using WarnSink = std::function<void(const std::string&)>;
  static constexpr std::chrono::seconds kWarnInterval{10};

  // Opens `dir` (which must exist) and checks that openat2 works here. Returns nullptr and
  // sets `error` otherwise.
  [[nodiscard]] static std::unique_ptr<CertdirBackend> create(const std::string& dir, WarnSink warn,
                                                              std::string& error);

  // The certificate and key of DIR/IDENT.crt.pem + DIR/IDENT.key.pem. Null, cheaply, when
  // either file is missing or escapes DIR; null, counted in bad_files() and warned about, when
  // a file is not a regular file, too large, unreadable, not PEM, or the key does not match the
  // certificate. Files are parsed again only when their (inode, mtime, size) change.
  [[nodiscard]] std::shared_ptr<const AlpnCertificate> certificate(
      std::string_view identifier) noexcept override;
  [[nodiscard]] std::string_view name() const noexcept override { return "certdir"; }

  [[nodiscard]] std::uint64_t bad_files() const noexcept { return bad_files_.load(); }
  [[nodiscard]] std::uint64_t misses() const noexcept { return misses_.load(); }

 private:
  struct FileId {
    ::dev_t dev = 0;
    ::ino_t ino = 0;
    ::off_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const FileId&) const = default;
  };
  struct Cached {
    FileId crt;
    FileId key;
    std::shared_ptr<const AlpnCertificate> pair;
  };
  enum class Load : std::uint8_t { Ok, Missing, Bad };
  struct Loaded {
    Load status = Load::Missing;
    sys::UniqueFd fd;
    FileId id;
  };

  CertdirBackend(sys::UniqueFd dir, WarnSink warn) noexcept
      : dir_(std::move(dir)), warn_(std::move(warn)) {}
  Loaded open_file(const std::string& name);
  void warn(const std::string& what);

  sys::UniqueFd dir_;  // O_PATH handle
  WarnSink warn_;
  std::atomic<std::uint64_t> bad_files_{0};
  std::atomic<std::uint64_t> misses_{0};
  std::mutex mu_;  // cache_ and the warning limiter
  std::unordered_map<std::string, Cached> cache_;
  std::chrono::steady_clock::time_point last_warn_{};
  std::uint64_t suppressed_ = 0;
};

}  // namespace acmegw::backends
