#include "backends/thumbprint_key.hpp"

#include <array>
#include <cstdint>
#include <memory>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "backends/keyauth.hpp"

namespace acmegw::backends {
namespace {

struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct BnFree {
  void operator()(BIGNUM* b) const noexcept { BN_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// Refuses encrypted PEM instead of letting OpenSSL prompt on the terminal.
int no_password(char*, int, int, void*) { return 0; }

PkeyPtr read_pem(std::string_view text) {
  BioPtr bio{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
  if (!bio) {
    return nullptr;
  }
  if (PkeyPtr k{PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr)}) {
    return k;
  }
  bio.reset(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  return bio ? PkeyPtr{PEM_read_bio_PUBKEY(bio.get(), nullptr, no_password, nullptr)} : nullptr;
}

// base64url of big-endian `name`, `pad` bytes wide (0: minimal, as RFC 7518 §6.3.1 wants for
// RSA; EC coordinates are full width, §6.2.1.2). Empty when the parameter is missing.
std::string bn_param(const EVP_PKEY* k, const char* name, int pad) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &raw) != 1) {
    return {};
  }
  const BnPtr bn{raw};
  const int len = pad > 0 ? pad : BN_num_bytes(bn.get());
  std::string bytes(static_cast<std::size_t>(len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(bytes.data());
  if ((pad > 0 ? BN_bn2binpad(bn.get(), out, pad) : BN_bn2bin(bn.get(), out)) != len) {
    return {};
  }
  return base64url(bytes);
}

std::optional<PublicJwk> jwk_from_pkey(const EVP_PKEY* k, std::string& error) {
  PublicJwk jwk;
  if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
    jwk.kty = "RSA";
    jwk.n = bn_param(k, OSSL_PKEY_PARAM_RSA_N, 0);
    jwk.e = bn_param(k, OSSL_PKEY_PARAM_RSA_E, 0);
    if (jwk.n.empty() || jwk.e.empty()) {
      error = "account key: cannot read the RSA modulus and exponent";
      return std::nullopt;
    }
    return jwk;
  }
  if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC) {
    error = "account key: unsupported key type (want RSA or EC)";
    return std::nullopt;
  }
  std::array<char, 64> group{};
  std::size_t group_len = 0;
  if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(),
                                     &group_len) != 1) {
    error = "account key: cannot read the EC curve";
    return std::nullopt;
  }
  struct Curve {
    std::string_view openssl, jose;
    int bytes;
  };
  constexpr std::array<Curve, 3> kCurves{{
      {"prime256v1", "P-256", 32}, {"secp384r1", "P-384", 48}, {"secp521r1", "P-521", 66}}};
  const std::string_view name{group.data(), group_len};
  for (const auto& c : kCurves) {
    if (c.openssl == name) {
      jwk.kty = "EC";
      jwk.crv = c.jose;
      jwk.x = bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, c.bytes);
      jwk.y = bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, c.bytes);
      if (jwk.x.empty() || jwk.y.empty()) {
        error = "account key: cannot read the EC public point";
        return std::nullopt;
      }
      return jwk;
    }
  }
  error = "account key: unsupported EC curve " + std::string{name} + " (want P-256, P-384, P-521)";
  return std::nullopt;
}

std::optional<PublicJwk> jwk_from_json(std::string_view text, std::string& error) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    error = "account key: not a PEM key and not a JSON object";
    return std::nullopt;
  }
  // Member `name` when it is a string, else empty (j.value() would throw on a non-string).
  const auto str = [&j](const char* name) -> std::string {
    const auto it = j.find(name);
    return (it != j.end() && it->is_string()) ? it->get<std::string>() : std::string{};
  };
  // Member `name` when it is a base64url string, else empty.
  const auto member = [&str](const char* name) -> std::string {
    std::string s = str(name);
    return is_base64url(s, 4096) ? s : std::string{};
  };
  PublicJwk jwk;
  jwk.kty = str("kty");
  if (jwk.kty == "RSA") {
    jwk.n = member("n");
    jwk.e = member("e");
    if (!jwk.n.empty() && !jwk.e.empty()) {
      return jwk;
    }
  } else if (jwk.kty == "EC") {
    jwk.crv = str("crv");
    jwk.x = member("x");
    jwk.y = member("y");
    if ((jwk.crv == "P-256" || jwk.crv == "P-384" || jwk.crv == "P-521") && !jwk.x.empty() &&
        !jwk.y.empty()) {
      return jwk;
    }
  }
  error = "account key: JWK needs kty RSA with n and e, or kty EC with crv (P-256, P-384, "
          "P-521), x and y";
  return std::nullopt;
}

}  // namespace

std::string base64url(std::string_view bytes) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) {
    out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3F]);
  }
  return out;
}

std::string canonical_jwk(const PublicJwk& jwk) {
  if (jwk.kty == "RSA") {
    return R"({"e":")" + jwk.e + R"(","kty":"RSA","n":")" + jwk.n + R"("})";
  }
  return R"({"crv":")" + jwk.crv + R"(","kty":"EC","x":")" + jwk.x + R"(","y":")" + jwk.y +
         R"("})";
}

std::string jwk_thumbprint(const PublicJwk& jwk) {
  const std::string json = canonical_jwk(jwk);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (EVP_Digest(json.data(), json.size(), md.data(), &md_len, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  return base64url({reinterpret_cast<const char*>(md.data()), md_len});
}

std::optional<PublicJwk> read_account_key(std::string_view text, std::string& error) {
  if (text.find("-----BEGIN ") != std::string_view::npos) {
    const PkeyPtr k = read_pem(text);
    if (!k) {
      error = "account key: cannot parse the PEM key (encrypted keys are not supported)";
      return std::nullopt;
    }
    return jwk_from_pkey(k.get(), error);
  }
  return jwk_from_json(text, error);
}

}  // namespace acmegw::backends
