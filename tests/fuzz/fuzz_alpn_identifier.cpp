// libFuzzer target for what an SNI (client bytes) reaches in the tls-alpn-01 backends:
// parse_alpn_identifier, certdir_file_stem and the certificate built for the identifier.
//   * a parsed identifier is canonical: lower case, parses again to itself;
//   * ip is set exactly for reverse names, with 4 or 16 bytes that map back to the same name;
//   * a certdir file stem never leaves DIR (no '/', no leading '.');
//   * the certificate builds and names exactly the identifier.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <openssl/x509v3.h>

#include "backends/alpn_cert.hpp"
#include "backends/certdir.hpp"

namespace {

namespace bk = acmegw::backends;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

const bk::UniqueEvpPkey& key() {
  static const bk::UniqueEvpPkey k = bk::generate_p256_key();
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text{reinterpret_cast<const char*>(data), size};
  if (const auto stem = bk::certdir_file_stem(text)) {
    check(!stem->empty() && stem->front() != '.' && stem->find('/') == std::string::npos);
  }
  const auto id = bk::parse_alpn_identifier(text);
  if (!id) {
    return 0;
  }
  for (const char c : id->sni) {
    check(!(c >= 'A' && c <= 'Z'));
  }
  const auto again = bk::parse_alpn_identifier(id->sni);
  check(again && again->sni == id->sni && again->ip == id->ip);
  const bool reverse = id->sni.ends_with(".in-addr.arpa") || id->sni.ends_with(".ip6.arpa");
  check(id->ip.has_value() == reverse);
  check(!id->ip || id->ip->size() == 4 || id->ip->size() == 16);
  std::string error;
  const auto cert = bk::make_alpn_certificate(key(), *id, bk::keyauth_digest(text), error);
  check(cert != nullptr);
  if (!id->ip) {
    check(X509_check_host(cert->cert.get(), id->sni.data(), id->sni.size(),
                          X509_CHECK_FLAG_NO_WILDCARDS, nullptr) == 1);
  } else {
    check(X509_check_ip(cert->cert.get(), reinterpret_cast<const unsigned char*>(id->ip->data()),
                        id->ip->size(), 0) == 1);
  }
  return 0;
}
