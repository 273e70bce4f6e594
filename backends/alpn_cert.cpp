#include "backends/alpn_cert.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <stdexcept>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

namespace acmegw::backends {
namespace {

constexpr std::string_view kIn4Arpa = ".in-addr.arpa";
constexpr std::string_view kIp6Arpa = ".ip6.arpa";
// id-pe-acmeIdentifier (RFC 8737 §6.1).
constexpr const char* kAcmeIdentifierOid = "1.3.6.1.5.5.7.1.31";
constexpr long kValidBefore = 24L * 3600;   // notBefore: a day ago (clock skew)
constexpr long kValidFor = 7L * 24 * 3600;  // notAfter: a week from now

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const noexcept { Free(p); }
};
using UniqueAsn1Object = std::unique_ptr<ASN1_OBJECT, Deleter<ASN1_OBJECT, ASN1_OBJECT_free>>;
using UniqueOctets =
    std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>>;
using UniqueExtension =
    std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using UniqueGeneralNames =
    std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;
using UniqueBignum = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;

bool is_ldh(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

// A lower-cased DNS name of LDH labels (1..63, no leading/trailing '-'), at most 253 characters.
bool is_dns_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t dot = std::min(name.find('.', start), name.size());
    const std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
        !std::all_of(label.begin(), label.end(), is_ldh)) {
      return false;
    }
    start = dot + 1;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out{s};
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c | 0x20);
    }
  }
  return out;
}

constexpr char kHex[] = "0123456789abcdef";

// RFC 8738 §6: "4.3.2.1.in-addr.arpa", or 32 nibbles + "ip6.arpa".
std::string reverse_name(const std::string& ip) {
  std::string out;
  if (ip.size() == 4) {
    for (auto it = ip.rbegin(); it != ip.rend(); ++it) {
      out += std::to_string(static_cast<unsigned char>(*it)) + '.';
    }
    out += kIn4Arpa.substr(1);
  } else {
    for (auto it = ip.rbegin(); it != ip.rend(); ++it) {
      const auto b = static_cast<unsigned char>(*it);
      out += kHex[b & 0xf];
      out += '.';
      out += kHex[b >> 4];
      out += '.';
    }
    out += kIp6Arpa.substr(1);
  }
  return out;
}

std::optional<std::string> parse_literal(const std::string& text) {
  std::array<unsigned char, 16> buf{};
  if (::inet_pton(AF_INET, text.c_str(), buf.data()) == 1) {
    return std::string(reinterpret_cast<const char*>(buf.data()), 4);
  }
  if (::inet_pton(AF_INET6, text.c_str(), buf.data()) == 1) {
    return std::string(reinterpret_cast<const char*>(buf.data()), 16);
  }
  return std::nullopt;
}

// The address a reverse name stands for, when it is a complete one.
std::optional<std::string> parse_reverse(std::string_view name) {
  if (name.ends_with(kIn4Arpa)) {
    const std::string_view labels = name.substr(0, name.size() - kIn4Arpa.size());
    std::string ip;
    std::size_t start = 0;
    while (start <= labels.size() && ip.size() < 5) {
      const std::size_t dot = std::min(labels.find('.', start), labels.size());
      const std::string_view l = labels.substr(start, dot - start);
      if (l.empty() || l.size() > 3 || (l.size() > 1 && l[0] == '0') ||
          !std::all_of(l.begin(), l.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
      }
      const int v = std::stoi(std::string{l});
      if (v > 255) {
        return std::nullopt;
      }
      ip.insert(ip.begin(), static_cast<char>(v));
      start = dot + 1;
    }
    return ip.size() == 4 ? std::optional{ip} : std::nullopt;
  }
  if (name.ends_with(kIp6Arpa)) {
    const std::string_view nibbles = name.substr(0, name.size() - kIp6Arpa.size());
    if (nibbles.size() != 63) {  // 32 nibbles and 31 dots
      return std::nullopt;
    }
    std::string ip(16, '\0');
    for (std::size_t i = 0; i < 32; ++i) {
      const char c = nibbles[2 * i];
      if ((i < 31 && nibbles[2 * i + 1] != '.')) {
        return std::nullopt;
      }
      const char* at = std::char_traits<char>::find(kHex, 16, c);
      if (at == nullptr) {
        return std::nullopt;
      }
      const auto v = static_cast<unsigned char>(at - kHex);
      auto& byte = ip[15 - i / 2];
      byte = static_cast<char>(static_cast<unsigned char>(byte) | (i % 2 == 0 ? v : v << 4));
    }
    return ip;
  }
  return std::nullopt;
}

std::string openssl_error(std::string_view what) {
  std::array<char, 256> buf{};
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) {
    return std::string{what} + " failed";
  }
  ERR_error_string_n(e, buf.data(), buf.size());
  return std::string{what} + ": " + buf.data();
}

// The subjectAltName: exactly the identifier (RFC 8737 §3).
UniqueExtension make_san(const AlpnIdentifier& id) {
  UniqueGeneralNames names{GENERAL_NAMES_new()};
  if (!names) {
    return nullptr;
  }
  GENERAL_NAME* gn = GENERAL_NAME_new();
  if (gn == nullptr) {
    return nullptr;
  }
  if (id.ip) {
    ASN1_OCTET_STRING* ip = ASN1_OCTET_STRING_new();
    if (ip == nullptr ||
        ASN1_OCTET_STRING_set(ip, reinterpret_cast<const unsigned char*>(id.ip->data()),
                              static_cast<int>(id.ip->size())) != 1) {
      ASN1_OCTET_STRING_free(ip);
      GENERAL_NAME_free(gn);
      return nullptr;
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns == nullptr ||
        ASN1_STRING_set(dns, id.sni.data(), static_cast<int>(id.sni.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      GENERAL_NAME_free(gn);
      return nullptr;
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
  }
  if (sk_GENERAL_NAME_push(names.get(), gn) == 0) {
    GENERAL_NAME_free(gn);
    return nullptr;
  }
  return UniqueExtension{X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get())};
}

// The critical acmeIdentifier extension: extnValue = DER OCTET STRING of the digest.
UniqueExtension make_acme_identifier(const AlpnDigest& digest) {
  std::array<unsigned char, 2 + 32> der{0x04, 0x20};
  std::copy(digest.begin(), digest.end(), der.begin() + 2);
  const UniqueAsn1Object oid{OBJ_txt2obj(kAcmeIdentifierOid, 1)};
  const UniqueOctets value{ASN1_OCTET_STRING_new()};
  if (!oid || !value || ASN1_OCTET_STRING_set(value.get(), der.data(), der.size()) != 1) {
    return nullptr;
  }
  return UniqueExtension{X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, value.get())};
}

bool set_serial(X509* x) {
  std::array<unsigned char, 16> raw{};
  if (RAND_bytes(raw.data(), raw.size()) != 1) {
    return false;
  }
  raw[0] &= 0x7f;  // positive
  raw[0] |= 0x01;  // and 16 bytes long
  const UniqueBignum bn{BN_bin2bn(raw.data(), raw.size(), nullptr)};
  return bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)) != nullptr;
}

}  // namespace

std::optional<AlpnIdentifier> parse_alpn_identifier(std::string_view text) {
  if (text.empty() || text.size() > 254) {
    return std::nullopt;
  }
  const std::string s{text};
  if (s.find(':') != std::string::npos ||
      (s.find_first_not_of("0123456789.") == std::string::npos)) {
    const auto ip = parse_literal(s);
    if (!ip) {
      return std::nullopt;
    }
    return AlpnIdentifier{reverse_name(*ip), ip};
  }
  std::string name = lower(text);
  if (name.back() == '.') {
    name.pop_back();
  }
  if (!is_dns_name(name)) {
    return std::nullopt;
  }
  if (name.ends_with(kIn4Arpa) || name.ends_with(kIp6Arpa)) {
    auto ip = parse_reverse(name);
    if (!ip) {
      return std::nullopt;
    }
    return AlpnIdentifier{std::move(name), std::move(ip)};
  }
  return AlpnIdentifier{std::move(name), std::nullopt};
}

AlpnDigest keyauth_digest(std::string_view keyauth) noexcept {
  AlpnDigest d{};
  unsigned int len = 0;
  (void)EVP_Digest(keyauth.data(), keyauth.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

UniqueEvpPkey generate_p256_key() {
  return UniqueEvpPkey{EVP_EC_gen("P-256")};
}

std::shared_ptr<const AlpnCertificate> make_alpn_certificate(const UniqueEvpPkey& key,
                                                             const AlpnIdentifier& id,
                                                             const AlpnDigest& digest,
                                                             std::string& error) {
  UniqueX509 x{X509_new()};
  if (!x || key == nullptr) {
    error = openssl_error("X509_new");
    return nullptr;
  }
  X509_NAME* subject = X509_get_subject_name(x.get());
  const std::string cn = id.sni.substr(0, 64);  // ub-common-name
  const bool ok = X509_set_version(x.get(), X509_VERSION_3) == 1 && set_serial(x.get()) &&
                  X509_gmtime_adj(X509_getm_notBefore(x.get()), -kValidBefore) != nullptr &&
                  X509_gmtime_adj(X509_getm_notAfter(x.get()), kValidFor) != nullptr &&
                  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                                             -1, 0) == 1 &&
                  X509_set_issuer_name(x.get(), subject) == 1 &&
                  X509_set_pubkey(x.get(), key.get()) == 1;
  if (!ok) {
    error = openssl_error("certificate fields");
    return nullptr;
  }
  for (const UniqueExtension& ext : {make_san(id), make_acme_identifier(digest)}) {
    if (!ext || X509_add_ext(x.get(), ext.get(), -1) != 1) {
      error = openssl_error("certificate extensions");
      return nullptr;
    }
  }
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) {
    error = openssl_error("X509_sign");
    return nullptr;
  }
  if (EVP_PKEY_up_ref(key.get()) != 1) {
    error = openssl_error("EVP_PKEY_up_ref");
    return nullptr;
  }
  auto cert = std::make_shared<AlpnCertificate>();
  cert->cert = std::move(x);
  cert->key = UniqueEvpPkey{key.get()};
  return cert;
}

AlpnResponder::AlpnResponder() : key_(generate_p256_key()) {
  if (!key_) {
    throw std::runtime_error(openssl_error("tls-alpn-01 responder: P-256 key generation"));
  }
}

std::shared_ptr<const AlpnCertificate> AlpnResponder::certificate(
    const AlpnIdentifier& id, const AlpnDigest& digest) noexcept {
  try {
    std::string key = id.sni;
    key += '\0';
    key.append(reinterpret_cast<const char*>(digest.data()), digest.size());
    {
      const std::lock_guard lock{mu_};
      if (const auto it = cache_.find(key); it != cache_.end()) {
        return it->second;
      }
    }
    // Signed outside the lock: a signature costs ~50 µs, lookups of other identifiers go on.
    std::string error;
    auto cert = make_alpn_certificate(key_, id, digest, error);
    const std::lock_guard lock{mu_};
    if (!cert) {
      ++failures_;
      return nullptr;
    }
    if (cache_.size() >= kMaxCached) {
      cache_.clear();
    }
    const auto [it, inserted] = cache_.emplace(std::move(key), std::move(cert));
    built_ += inserted ? 1 : 0;
    return it->second;  // the first of two concurrent builds wins; both are valid
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

std::uint64_t AlpnResponder::built() const noexcept {
  const std::lock_guard lock{mu_};
  return built_;
}

std::uint64_t AlpnResponder::failures() const noexcept {
  const std::lock_guard lock{mu_};
  return failures_;
}

}  // namespace acmegw::backends
