#pragma once
// TLS on a taken-over tls-alpn-01 connection (RFC 8737 §3): the held ClientHello arrives first;
// the session completes the handshake (TLS 1.2 or 1.3) negotiating exactly `acme-tls/1` and
// presenting the identifier's acmeIdentifier certificate, then waits for the CA to close.
// No application data is ever sent.
//
// Closing rules, as for the HTTP session (pitfall 6: a TIME_WAIT socket for production's
// address:port on the firewall black-holes a later forwarded connection from the same client
// port): the session never sends the first FIN; after the handshake it reads until the
// client's close_notify/FIN and then closes (passive close); on the handshake or close
// deadline, a TLS error, or at shutdown it aborts with SO_LINGER 0 (RST, no TIME_WAIT).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include <boost/asio/ip/tcp.hpp>

#include "backends/latency.hpp"
#include "backends/session_slot.hpp"
#include "backends/tls_backend.hpp"

namespace acmegw::backends {

struct TlsSessionConfig {
  std::chrono::milliseconds handshake_timeout{10'000};  // from the takeover to Finished
  std::chrono::milliseconds close_timeout{10'000};      // after Finished until the client closes
  std::chrono::milliseconds total_timeout{60'000};      // from the takeover: never longer
};

// One counter per outcome (STYLE §20); shared by every TLS session, updated from Asio threads.
struct TlsSessionStats {
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> active{0};             // gauge
  std::atomic<std::uint64_t> handshakes_ok{0};      // Finished exchanged, acme-tls/1 chosen
  std::atomic<std::uint64_t> handshake_timeout{0};  // no Finished within handshake_timeout
  std::atomic<std::uint64_t> handshake_failed{0};   // TLS alert/error (no acme-tls/1, bad hello)
  std::atomic<std::uint64_t> handshake_eof{0};      // client closed before Finished
  std::atomic<std::uint64_t> client_closed{0};      // ended by the client after the handshake
  std::atomic<std::uint64_t> close_timeout{0};      // client did not close: aborted (RST)
  std::atomic<std::uint64_t> io_errors{0};          // ended by a socket error (e.g. client RST)
  // From the takeover until the handshake finished.
  LatencyHistogram handshake_latency;
};

// The process's one TLS server context: TLS 1.2 and 1.3, ALPN select that accepts only
// `acme-tls/1` (a client that does not offer it gets the no_application_protocol alert),
// no session tickets or resumption. Built once at startup (throws std::runtime_error naming
// the OpenSSL failure).
class TlsServerContext {
 public:
  TlsServerContext();
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;
  [[nodiscard]] void* native() const noexcept { return ctx_; }  // SSL_CTX*

 private:
  void* ctx_;  // SSL_CTX*; void* keeps <openssl/ssl.h> out of this header
};

// Takes ownership of `client` (an established socket whose executor is a strand) and serves
// the tls-alpn-01 handshake with `cert` until the connection ends. `ctx`, `cfg` and `stats`
// must outlive the socket's io_context; `slot` is held until the session ends.
void start_tls_session(boost::asio::ip::tcp::socket client,
                       std::shared_ptr<const AlpnCertificate> cert, const TlsServerContext& ctx,
                       const TlsSessionConfig& cfg, TlsSessionStats& stats, SessionSlot slot = {});

}  // namespace acmegw::backends
