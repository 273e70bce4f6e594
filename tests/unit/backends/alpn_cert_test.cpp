// The built-in tls-alpn-01 responder's certificates (RFC 8737 §3, RFC 8738 §6): identifier
// parsing, the digest, and the certificate's bytes as a CA checks them.
#include <catch2/catch.hpp>

#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "backends/alpn_cert.hpp"

namespace {

using acmegw::backends::AlpnDigest;
using acmegw::backends::AlpnIdentifier;
using acmegw::backends::AlpnResponder;
using acmegw::backends::keyauth_digest;
using acmegw::backends::parse_alpn_identifier;

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 0xf];
  }
  return out;
}

// The subjectAltName entries as "DNS:name" / "IP:hex".
std::vector<std::string> sans(X509* x) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      out.push_back("DNS:" +
                    std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                                ASN1_STRING_length(gn->d.dNSName)));
    } else if (gn->type == GEN_IPADD) {
      out.push_back(
          "IP:" + hex(ASN1_STRING_get0_data(gn->d.iPAddress), ASN1_STRING_length(gn->d.iPAddress)));
    } else {
      out.push_back("other");
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace

TEST_CASE("parse_alpn_identifier: names, literals, reverse names", "[backends][alpn]") {
  const auto sni = [](std::string_view t) {
    const auto id = parse_alpn_identifier(t);
    return id ? id->sni : std::string{"<none>"};
  };
  CHECK(sni("Example.COM.") == "example.com");
  CHECK(sni("a-b.c0.example") == "a-b.c0.example");
  CHECK(sni("localhost") == "localhost");
  CHECK(sni("192.0.2.7") == "7.2.0.192.in-addr.arpa");
  CHECK(sni("2001:db8::1") ==
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  const auto v4 = parse_alpn_identifier("7.2.0.192.IN-ADDR.ARPA");
  REQUIRE(v4);
  CHECK(v4->sni == "7.2.0.192.in-addr.arpa");
  CHECK(v4->ip == std::string("\xc0\x00\x02\x07", 4));
  const auto v6 = parse_alpn_identifier(
      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  REQUIRE(v6);
  CHECK(v6->ip == std::string("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16));
  CHECK_FALSE(parse_alpn_identifier("www.example.com")->ip);
  for (const std::string_view bad : std::vector<std::string_view>{
           "", "*.example.com", "a..b", ".a", "-a.example", "a-.example", "a_b.example", "a b",
           "1.2.3.4.5", "256.1.1.1", "1.2.3.in-addr.arpa", "01.2.3.4.in-addr.arpa",
           "999.2.3.4.in-addr.arpa", "0.1.ip6.arpa", "2001:db8::g", "example.com..",
           std::string_view{"a\0b", 3}}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_alpn_identifier(bad));
  }
  CHECK_FALSE(parse_alpn_identifier(std::string(64, 'a') + ".example"));
  CHECK(parse_alpn_identifier(std::string(63, 'a') + ".example"));
  std::string long_name;
  while (long_name.size() < 254) {
    long_name += "abcdefghi.";
  }
  CHECK_FALSE(parse_alpn_identifier(long_name.substr(0, 254) + "x"));
}

TEST_CASE("keyauth_digest: SHA-256", "[backends][alpn]") {
  const AlpnDigest d = keyauth_digest("abc");
  CHECK(hex(d.data(), d.size()) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("make_alpn_certificate: one SAN, critical acmeIdentifier = 04 20 || digest",
          "[backends][alpn]") {
  const auto key = acmegw::backends::generate_p256_key();
  REQUIRE(key);
  const AlpnDigest digest = keyauth_digest("token.thumbprint");
  for (const auto& [ident, want_san] : std::vector<std::pair<std::string, std::string>>{
           {"www.example.com", "DNS:www.example.com"},
           {"192.0.2.7", "IP:c0000207"},
           {"2001:db8::1", "IP:20010db8000000000000000000000001"}}) {
    CAPTURE(ident);
    const auto id = parse_alpn_identifier(ident);
    REQUIRE(id);
    std::string error;
    const auto cert = acmegw::backends::make_alpn_certificate(key, *id, digest, error);
    INFO(error);
    REQUIRE(cert);
    X509* x = cert->cert.get();
    CHECK(sans(x) == std::vector<std::string>{want_san});
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    const int at = X509_get_ext_by_OBJ(x, oid, -1);
    ASN1_OBJECT_free(oid);
    REQUIRE(at >= 0);
    X509_EXTENSION* ext = X509_get_ext(x, at);
    CHECK(X509_EXTENSION_get_critical(ext) == 1);
    const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(ext);
    CHECK(hex(ASN1_STRING_get0_data(value), ASN1_STRING_length(value)) ==
          "0420" + hex(digest.data(), digest.size()));
    CHECK(X509_get_ext_count(x) == 2);  // nothing else
    CHECK(X509_verify(x, X509_get0_pubkey(x)) == 1);
    CHECK(X509_check_private_key(x, cert->key.get()) == 1);
    CHECK(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
    CHECK(X509_cmp_current_time(X509_get0_notAfter(x)) > 0);
  }
}

TEST_CASE("AlpnResponder: one certificate per identifier and digest, cached", "[backends][alpn]") {
  AlpnResponder r;
  const auto a = parse_alpn_identifier("a.example");
  const auto b = parse_alpn_identifier("b.example");
  const auto a1 = r.certificate(*a, keyauth_digest("1"));
  REQUIRE(a1);
  CHECK(r.certificate(*a, keyauth_digest("1")) == a1);
  const auto a2 = r.certificate(*a, keyauth_digest("2"));
  REQUIRE(a2);
  CHECK(a2 != a1);
  const auto b1 = r.certificate(*b, keyauth_digest("1"));
  CHECK(sans(b1->cert.get()) == std::vector<std::string>{"DNS:b.example"});
  CHECK(r.built() == 3);
  CHECK(r.failures() == 0);
  // One key for all of them.
  CHECK(EVP_PKEY_eq(a1->key.get(), b1->key.get()) == 1);
}
