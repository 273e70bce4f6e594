#pragma once
// The built-in tls-alpn-01 responder's certificates (RFC 8737 §3, RFC 8738 §6): self-signed,
// exactly one subjectAltName equal to the identifier (a dNSName, or an iPAddress for an IP
// identifier, whose SNI is its reverse name), and the critical id-pe-acmeIdentifier extension
// (1.3.6.1.5.5.7.1.31) holding a DER OCTET STRING of SHA-256(key authorization).
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "backends/tls_backend.hpp"

namespace acmegw::backends {

// An identifier as the tls-alpn-01 validation names it.
struct AlpnIdentifier {
  // What the CA sends as SNI and the key the stores use: a lower-case DNS name without a
  // trailing dot, or the RFC 8738 reverse name ("4.3.2.1.in-addr.arpa", nibbles + "ip6.arpa").
  std::string sni;
  // Set for an IP identifier: its address bytes (4 or 16), the certificate's iPAddress SAN.
  std::optional<std::string> ip;  // raw bytes, size 4 or 16
};

// Parses an identifier as an ACME client hands it over: a DNS name ("Example.COM." allowed,
// normalized), an IPv4/IPv6 literal, or a reverse name (in-addr.arpa / ip6.arpa, mapped back to
// the address). Returns nullopt for anything else (wildcards, empty labels, bad characters,
// more than 253 characters). Pure: no syscalls.
[[nodiscard]] std::optional<AlpnIdentifier> parse_alpn_identifier(std::string_view text);

// SHA-256(key authorization): what the acmeIdentifier extension carries. Some clients hand
// over the key authorization (certbot, lego), others only its digest (uacme's hook gets it
// base64url-encoded); the stores keep the digest.
using AlpnDigest = std::array<std::uint8_t, 32>;
[[nodiscard]] AlpnDigest keyauth_digest(std::string_view keyauth) noexcept;

// A fresh P-256 key; null if OpenSSL fails.
[[nodiscard]] UniqueEvpPkey generate_p256_key();

// Builds and signs (with `key`, which it also carries) the acmeIdentifier certificate for
// `id` and `digest`, valid from one day ago for 7 days. Returns null and sets `error` when
// OpenSSL fails.
[[nodiscard]] std::shared_ptr<const AlpnCertificate> make_alpn_certificate(const UniqueEvpPkey& key,
                                                                           const AlpnIdentifier& id,
                                                                           const AlpnDigest& digest,
                                                                           std::string& error);

// One P-256 key per process and the certificates built from it, cached per (identifier,
// digest): an ACME server validates from several perspectives at once, and each
// connection then costs a lookup instead of a signature. Bounded (kMaxCached entries; the
// cache is cleared when full). Thread-safe.
class AlpnResponder {
 public:
  static constexpr std::size_t kMaxCached = 4096;

  // Generates the key; throws std::runtime_error if OpenSSL cannot (startup only).
  AlpnResponder();

  // The certificate for `id` (its .sni) and `digest`, built on first use; null only if
  // OpenSSL fails (counted in failures()). Never throws.
  [[nodiscard]] std::shared_ptr<const AlpnCertificate> certificate(
      const AlpnIdentifier& id, const AlpnDigest& digest) noexcept;

  [[nodiscard]] std::uint64_t built() const noexcept;
  [[nodiscard]] std::uint64_t failures() const noexcept;

 private:
  UniqueEvpPkey key_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const AlpnCertificate>>
      cache_;  // sni + digest bytes
  std::uint64_t built_ = 0;
  std::uint64_t failures_ = 0;
};

}  // namespace acmegw::backends
