#pragma once
// What a taken-over tls-alpn-01 connection (RFC 8737) is given to, the sibling of backend.hpp
// for port 443. The gateway decides from the whole ClientHello *before* the takeover: it asks
// the backend for the identifier's certificate on the queue worker, and a backend that has none
// (no pending identifier, no file) sends the flow to production untouched — production may
// answer its own `acme-tls/1` (Caddy, certmagic).
//
// Two shapes, as for HTTP:
//  * an answering backend (the built-in responder on the tokens store, certdir) hands out the
//    certificate + key that the TLS session (tls_session.hpp) presents;
//  * a relaying backend (relay) receives the whole connection, held bytes first.
#include <memory>
#include <string_view>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace acmegw::backends {

struct X509Deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using UniqueX509 = std::unique_ptr<X509, X509Deleter>;
using UniqueEvpPkey = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// The acmeIdentifier certificate of one identifier and its private key. Immutable once built;
// shared between the cache and the sessions presenting it.
struct AlpnCertificate {
  UniqueX509 cert;
  UniqueEvpPkey key;
};

class TlsAnsweringBackend {
 public:
  virtual ~TlsAnsweringBackend() = default;
  // The certificate to present for tls-alpn-01 on `identifier` (the ClientHello's SNI,
  // lower-cased; an RFC 8738 reverse name such as "4.3.2.1.in-addr.arpa" for IP identifiers),
  // or null when this backend does not serve it now (the flow then goes to production).
  // Called on the queue workers, possibly concurrently, for every acme-tls/1 ClientHello, so a
  // miss must be cheap (a flood of unknown identifiers costs a lookup each). Never throws.
  [[nodiscard]] virtual std::shared_ptr<const AlpnCertificate> certificate(
      std::string_view identifier) noexcept = 0;
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
};

}  // namespace acmegw::backends
