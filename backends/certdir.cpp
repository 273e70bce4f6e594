#include "backends/certdir.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <new>
#include <span>

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "backends/alpn_cert.hpp"

namespace acmegw::backends {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using UniqueBio = std::unique_ptr<BIO, BioDeleter>;

bool is_stem_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

// Reads the whole (already size-checked) regular file `fd`; nullopt when unreadable or when it
// grew past the cap after fstat.
std::optional<std::string> read_capped(int fd) {
  std::string body(kMaxCertdirFile + 1, '\0');  // one spare byte detects growth
  const auto r = sys::read_full(fd, std::as_writable_bytes(std::span{body.data(), body.size()}));
  if (!r.ok() || r.value > kMaxCertdirFile) {
    return std::nullopt;
  }
  body.resize(r.value);
  return body;
}

UniqueBio mem_bio(const std::string& pem) noexcept {
  return UniqueBio{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))};
}

}  // namespace

std::optional<std::string> certdir_file_stem(std::string_view identifier) {
  if (identifier.empty() || identifier.size() > 253 || identifier.front() == '.') {
    return std::nullopt;
  }
  for (const char c : identifier) {
    if (!is_stem_char(c)) {
      return std::nullopt;
    }
  }
  if (!identifier.ends_with(".in-addr.arpa") && !identifier.ends_with(".ip6.arpa")) {
    return std::string{identifier};
  }
  // dehydrated names the files after the identifier's value, for an IP the literal.
  const auto id = parse_alpn_identifier(identifier);
  if (!id || !id->ip) {
    return std::string{identifier};  // e.g. "arpa" zones themselves: a DNS name
  }
  std::array<char, INET6_ADDRSTRLEN> text{};
  const int family = id->ip->size() == 4 ? AF_INET : AF_INET6;
  if (::inet_ntop(family, id->ip->data(), text.data(), text.size()) == nullptr) {
    return std::nullopt;
  }
  return std::string{text.data()};
}

std::unique_ptr<CertdirBackend> CertdirBackend::create(const std::string& dir, WarnSink warn,
                                                       std::string& error) {
  auto d = sys::open_dir(dir.c_str());
  if (!d.ok()) {
    error = "certdir: cannot open directory " + dir + ": " + std::strerror(d.err);
    return nullptr;
  }
  if (auto probe = sys::open_beneath(d.value.get(), "."); probe.err == ENOSYS) {
    error = "certdir: openat2(2) is not available (Linux >= 5.6 needed)";
    return nullptr;
  }
  return std::unique_ptr<CertdirBackend>(new CertdirBackend(std::move(d.value), std::move(warn)));
}

CertdirBackend::Loaded CertdirBackend::open_file(const std::string& name) {
  Loaded out;
  auto f = sys::open_beneath(dir_.get(), name.c_str());
  if (!f.ok()) {
    // ENOENT/ENOTDIR: not written (yet); EXDEV/ELOOP: a symlink out of DIR, refused as absent.
    const bool absent = f.err == ENOENT || f.err == ENOTDIR || f.err == EXDEV || f.err == ELOOP;
    if (!absent) {
      out.status = Load::Bad;
      warn("certdir: cannot open " + name + ": " + std::strerror(f.err));
    }
    return out;
  }
  const auto st = sys::fstat(f.value.get());
  if (!st.ok() || !S_ISREG(st.value.st_mode) ||
      st.value.st_size > static_cast<::off_t>(kMaxCertdirFile)) {
    out.status = Load::Bad;
    warn("certdir: " + name + " is not a regular file of at most 65536 bytes");
    return out;
  }
  out.status = Load::Ok;
  out.fd = std::move(f.value);
  out.id = FileId{st.value.st_dev, st.value.st_ino, st.value.st_size,
                  static_cast<std::int64_t>(st.value.st_mtim.tv_sec) * 1'000'000'000 +
                      st.value.st_mtim.tv_nsec};
  return out;
}

void CertdirBackend::warn(const std::string& what) {
  bad_files_.fetch_add(1, std::memory_order_relaxed);
  const std::lock_guard lock{mu_};
  const auto now = std::chrono::steady_clock::now();
  if (last_warn_ != std::chrono::steady_clock::time_point{} && now - last_warn_ < kWarnInterval) {
    ++suppressed_;
    return;
  }
  last_warn_ = now;
  if (warn_) {
    warn_(suppressed_ == 0
              ? what
              : what + " (" + std::to_string(suppressed_) + " similar warnings suppressed)");
  }
  suppressed_ = 0;
}

std::shared_ptr<const AlpnCertificate> CertdirBackend::certificate(
    std::string_view identifier) noexcept {
  try {
    const auto stem = certdir_file_stem(identifier);
    if (!stem) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    Loaded crt = open_file(*stem + ".crt.pem");
    if (crt.status != Load::Ok) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    Loaded key = open_file(*stem + ".key.pem");
    if (key.status != Load::Ok) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    {
      const std::lock_guard lock{mu_};
      if (const auto it = cache_.find(*stem);
          it != cache_.end() && it->second.crt == crt.id && it->second.key == key.id) {
        return it->second.pair;
      }
    }
    const auto crt_pem = read_capped(crt.fd.get());
    const auto key_pem = read_capped(key.fd.get());
    if (!crt_pem || !key_pem) {
      warn("certdir: cannot read " + *stem + ".crt.pem/.key.pem");
      return nullptr;
    }
    const UniqueBio crt_bio = mem_bio(*crt_pem);
    const UniqueBio key_bio = mem_bio(*key_pem);
    if (!crt_bio || !key_bio) {
      return nullptr;
    }
    UniqueX509 cert{PEM_read_bio_X509(crt_bio.get(), nullptr, nullptr, nullptr)};
    // No passphrase callback input: an encrypted key fails instead of prompting.
    UniqueEvpPkey pkey{
        PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, const_cast<char*>(""))};
    if (!cert || !pkey) {
      ERR_clear_error();  // the queue is per thread: a later handshake must not see these
      warn("certdir: " + *stem +
           (cert ? ".key.pem holds no PEM private key" : ".crt.pem holds no PEM certificate"));
      return nullptr;
    }
    if (X509_check_private_key(cert.get(), pkey.get()) != 1) {
      ERR_clear_error();
      warn("certdir: " + *stem + ".key.pem does not match " + *stem + ".crt.pem");
      return nullptr;
    }
    auto pair = std::make_shared<AlpnCertificate>();
    pair->cert = std::move(cert);
    pair->key = std::move(pkey);
    std::shared_ptr<const AlpnCertificate> shared = std::move(pair);
    const std::lock_guard lock{mu_};
    if (cache_.size() >= kMaxCertdirCached) {
      cache_.clear();
    }
    cache_.insert_or_assign(*stem, Cached{crt.id, key.id, shared});
    return shared;
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

}  // namespace acmegw::backends
