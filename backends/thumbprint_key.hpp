#pragma once
// RFC 7638 JWK thumbprints of ACME account keys, for `acmegw thumbprint --account-key FILE`
// and the stateless `thumbprint` backend: base64url(SHA-256(canonical JWK)) without padding,
// where the canonical JWK holds only the required members in lexicographic order and no
// whitespace (RFC 7638 §3.2):
//   RSA: {"e":"…","kty":"RSA","n":"…"}       EC: {"crv":"P-256","kty":"EC","x":"…","y":"…"}
#include <optional>
#include <string>
#include <string_view>

namespace acmegw::backends {

// The public members a thumbprint is computed from, base64url without padding.
struct PublicJwk {
  std::string kty;  // "RSA" or "EC"
  std::string n, e;       // RSA: modulus and exponent, big-endian without leading zeros
  std::string crv, x, y;  // EC: "P-256" | "P-384" | "P-521"; coordinates padded to field size
};

// The canonical JSON of `jwk` (RFC 7638 §3.2). Precondition: the members of its kty are set.
[[nodiscard]] std::string canonical_jwk(const PublicJwk& jwk);

// base64url(SHA-256(canonical_jwk(jwk))), 43 characters.
[[nodiscard]] std::string jwk_thumbprint(const PublicJwk& jwk);

// base64url without padding (RFC 4648 §5).
[[nodiscard]] std::string base64url(std::string_view bytes);

// Reads an account key: a PEM private or public key (RSA, EC P-256/P-384/P-521; PKCS#8,
// "RSA PRIVATE KEY" or "EC PRIVATE KEY": certbot, lego, uacme, dehydrated, acme.sh), or a JWK
// JSON object (certbot's accounts/…/private_key.json). Returns nullopt and sets `error` when
// the text is neither, or the key type or curve is unsupported.
[[nodiscard]] std::optional<PublicJwk> read_account_key(std::string_view text, std::string& error);

}  // namespace acmegw::backends
