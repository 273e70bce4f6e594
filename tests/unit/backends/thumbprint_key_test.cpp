// RFC 7638 thumbprints. Vectors: RFC 7638 §3.1 (the RSA example key), and throw-away test keys
// whose expected thumbprints were computed independently (python3-cryptography + hashlib).
#include <catch2/catch.hpp>

#include <string>

#include "backends/keyauth.hpp"
#include "backends/thumbprint_key.hpp"

using acmegw::backends::base64url;
using acmegw::backends::canonical_jwk;
using acmegw::backends::jwk_thumbprint;
using acmegw::backends::PublicJwk;
using acmegw::backends::read_account_key;

namespace {

// RFC 7638 §3.1.
constexpr const char* kRfcN =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebW"
    "KRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQM"
    "icAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcR"
    "wr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
constexpr const char* kRfcThumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

// The RFC 7638 key as a PEM SubjectPublicKeyInfo.
constexpr const char* kRfcPubPem = R"(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0vx7agoebGcQSuuPiLJX
ZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS
oc/BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ/2W+5JsGY4Hc5n9yBXArwl93lqt
7/RN5w6Cf0h4QyQ5v+65YGjQR0/FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0
zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt+bFTWhAI4vMQFh6WeZu0f
M4lFd2NcRwr3XPksINHaQ+G/xBniIqbw0Ls1jF44+csFCur+kEgU8awapJzKnqDK
gwIDAQAB
-----END PUBLIC KEY-----
)";

// Test-only RSA-1024 key, traditional "RSA PRIVATE KEY" form (dehydrated, older certbot).
constexpr const char* kRsaPem = R"(-----BEGIN RSA PRIVATE KEY-----
MIICWwIBAAKBgQDEJx26d2dio1PkV0wOfbTXuJ3PhGmaBb9oL/QwW12Bt0QK+ylN
YqZ7DGq+CIW7dWtD6B2f6TSr6Y4Khy505jj+UEajksxrLmS69MSYQQXmpq2A0ICV
Eq4OnzhV72N/Ktsa8JAlRVCDAqXhjyCbWU3S30rtqGhoVvOGb9VBqd6hFwIDAQAB
AoGAEjZjjz2o7sKldm0YlbvcP69Xj74GpBNmi0DwllDVZMbkXXSmiBXhyUkE3DIk
YJxtYje6EG/xwQiFdLrKeHYr0l9gPHd90h7EbUgUw7t3S/m0qDH6mdrm3IzjQZsQ
T0o8TW+1DliYP3x8brMgJg8oJcbddCojhoA9iquHfnnIzKECQQDwfxrpWCYOfFMM
GtyWZV26JoFQuInc+xC9hxWSz3pO63879aBnIX5mgmtzt/tyVF16eggefhSZ8aSO
WTFLXR5HAkEA0Mw11hQ9MMwXHJ5MNiyckiIIWWvqf+x7ubu/keKiWUgYvTUVmw5T
YJyovJZ5T4Ln/mgDYkw9nnZWdKQSq9y+sQJAcqlHHWWnj1R7C9Rqw1HE5BGjqeax
5CfXjWUwRfShrard2Kp9NW5ko18e9+cJ/TJ39wLjiBY4oETzXeLse7AD1QJAUqPw
zvmVuoGcyCvzOCHyGniz20i2OMmNstaXnRMZdMLvX7vqAEPsRjnbI0FfZFQIpI3g
gQByBw0JbQMfjLxDEQJAe3dwcKq8FQmKRTF+9WbbaxNVmDQ+eYIpS0TMUcA0xwqV
bF3DtBzJUa6cgq9Yr8FPZ13ffFMpgEvCc/aUzN4Zsg==
-----END RSA PRIVATE KEY-----
)";
constexpr const char* kRsaThumb = "bDKLRRgi3Sc4QeJ6fPDqdbCh0HlmI5_610pzo-q742s";

// The same key as certbot stores it (accounts/…/private_key.json, josepy's JWKRSA).
constexpr const char* kRsaCertbotJson =
    R"({"n": "xCcdundnYqNT5FdMDn2017idz4RpmgW_aC_0MFtdgbdECvspTWKmewxqvgiFu3VrQ-gdn-k0q-mOCocudOY4_lBGo5LMay5kuvTEmEEF5qatgNCAlRKuDp84Ve9jfyrbGvCQJUVQgwKl4Y8gm1lN0t9K7ahoaFbzhm_VQaneoRc", )"
    R"("e": "AQAB", "d": "EjZjjz2o7sKldm0YlbvcP69Xj74GpBNmi0DwllDVZMbkXXSmiBXhyUkE3DIkYJxtYje6EG_xwQiFdLrKeHYr0l9gPHd90h7EbUgUw7t3S_m0qDH6mdrm3IzjQZsQT0o8TW-1DliYP3x8brMgJg8oJcbddCojhoA9iquHfnnIzKE", )"
    R"("p": "8H8a6VgmDnxTDBrclmVduiaBULiJ3PsQvYcVks96Tut_O_WgZyF-ZoJrc7f7clRdenoIHn4UmfGkjlkxS10eRw", )"
    R"("q": "0Mw11hQ9MMwXHJ5MNiyckiIIWWvqf-x7ubu_keKiWUgYvTUVmw5TYJyovJZ5T4Ln_mgDYkw9nnZWdKQSq9y-sQ", )"
    R"("kty": "RSA"})";

// Test-only P-256 key, "EC PRIVATE KEY" form (openssl ecparam -genkey; uacme's default type).
constexpr const char* kP256Pem = R"(-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIMI9pDByWn37wcf3dITuUwowfuythyZbNfCt8qvJQH2ioAoGCCqGSM49
AwEHoUQDQgAEaDpGSeXR/acqLqJqtlqQvxqH0Mo02KbsNGnGbUSmUknBWD/lIcbs
9Yhl5NajkdDdMAQqr2QjKCX262WR8sP7Mw==
-----END EC PRIVATE KEY-----
)";
constexpr const char* kP256Thumb = "eTo8vYeEtIHr_S5r6bpI_GW_QwL6v1JXSOKu8yQ7ug8";

// Test-only P-384 key, PKCS#8 form (lego's default).
constexpr const char* kP384Pem = R"(-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDC1q7s2BspymD5RMnF3
Eu2RxaExEune87IYOkZ9StwowL7n2KgRBlRVqJg+uzM2OPmhZANiAATLndQPO+Yo
xeHEiwigCLKHTmuj34xgoDoeE9LFWC2oUByv7Kfin7Fg+nO8f18xWHGFv0JbmD1S
QPOORc9g3VflG0qttC59ja8e1t2Ci49cK6j8X59DzGl2cnxwnIywkrI=
-----END PRIVATE KEY-----
)";
constexpr const char* kP384Thumb = "6SZ91SlXugIO_N8aERY6CQDYqcg3N0Fn7kyoPpSi5LA";

std::string thumb_of(const char* text) {
  std::string error;
  const auto jwk = read_account_key(text, error);
  INFO(error);
  REQUIRE(jwk);
  return jwk_thumbprint(*jwk);
}

}  // namespace

TEST_CASE("jwk_thumbprint: RFC 7638 §3.1 example", "[backends][thumbprint]") {
  PublicJwk jwk;
  jwk.kty = "RSA";
  jwk.n = kRfcN;
  jwk.e = "AQAB";
  CHECK(canonical_jwk(jwk) == std::string{R"({"e":"AQAB","kty":"RSA","n":")"} + kRfcN + "\"}");
  CHECK(jwk_thumbprint(jwk) == kRfcThumb);
}

TEST_CASE("read_account_key: every key format gives the independent thumbprint",
          "[backends][thumbprint]") {
  CHECK(thumb_of(kRfcPubPem) == kRfcThumb);     // PEM public key of the RFC example
  CHECK(thumb_of(kRsaPem) == kRsaThumb);        // RSA PRIVATE KEY
  CHECK(thumb_of(kRsaCertbotJson) == kRsaThumb);  // certbot's JWK of the same key
  CHECK(thumb_of(kP256Pem) == kP256Thumb);      // EC PRIVATE KEY, P-256
  CHECK(thumb_of(kP384Pem) == kP384Thumb);      // PKCS#8, P-384
  CHECK(acmegw::backends::is_thumbprint(thumb_of(kP256Pem)));
}

TEST_CASE("read_account_key: EC coordinates keep their leading zero bytes", "[backends][thumbprint]") {
  std::string error;
  const auto jwk = read_account_key(kP384Pem, error);
  REQUIRE(jwk);
  CHECK(jwk->crv == "P-384");
  CHECK(jwk->x.size() == 64);  // 48 bytes → 64 base64url characters, whatever the value
  CHECK(jwk->y.size() == 64);
}

TEST_CASE("read_account_key: unusable input is refused with a message", "[backends][thumbprint]") {
  const char* bad[] = {
      "",
      "not a key",
      "[1, 2]",
      R"({"kty": "RSA", "n": "abc"})",                       // no e
      R"({"kty": "RSA", "n": 5, "e": "AQAB"})",              // n not a string
      R"({"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"})",  // unsupported curve
      R"({"kty": "oct", "k": "AAAA"})",                      // symmetric key
      R"({"kty": "RSA", "n": "a+b/", "e": "AQAB"})",         // not base64url
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
  };
  for (const char* text : bad) {
    CAPTURE(text);
    std::string error;
    CHECK_FALSE(read_account_key(text, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("base64url: RFC 4648 §10 vectors without padding", "[backends][thumbprint]") {
  CHECK(base64url("") == "");
  CHECK(base64url("f") == "Zg");
  CHECK(base64url("fo") == "Zm8");
  CHECK(base64url("foo") == "Zm9v");
  CHECK(base64url("foob") == "Zm9vYg");
  CHECK(base64url("fooba") == "Zm9vYmE");
  CHECK(base64url("foobar") == "Zm9vYmFy");
  CHECK(base64url("\xfb\xff") == "-_8");  // the two url-safe characters
}
