#include "backends/tls_session.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <string>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace acmegw::backends {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kAcmeTls = "acme-tls/1";

// Accepts only acme-tls/1 (RFC 8737 §3); anything else gets the no_application_protocol alert.
int select_acme_tls(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                    unsigned int inlen, void*) {
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int len = in[i];
    if (i + 1 + len > inlen) {
      break;
    }
    if (std::string_view{reinterpret_cast<const char*>(in + i + 1), len} == kAcmeTls) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

struct SslDeleter {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};

// One taken-over tls-alpn-01 connection: OpenSSL on memory BIOs, the socket driven by Asio.
// Every handler runs on the socket's strand; members need no locks.
class TlsSession : public std::enable_shared_from_this<TlsSession> {
 public:
  TlsSession(tcp::socket client, std::shared_ptr<const AlpnCertificate> cert,
             const TlsServerContext& ctx, const TlsSessionConfig& cfg, TlsSessionStats& stats,
             SessionSlot slot)
      : client_(std::move(client)),
        slot_(std::move(slot)),
        timer_(client_.get_executor()),
        cert_(std::move(cert)),
        ctx_(ctx),
        cfg_(cfg),
        stats_(stats),
        start_(Clock::now()) {
    stats_.started.fetch_add(1, std::memory_order_relaxed);
    stats_.active.fetch_add(1, std::memory_order_relaxed);
  }
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Still open only when the io_context is torn down under us: abort, never FIN.
  ~TlsSession() {
    if (client_.is_open()) {
      reset_and_close();
    }
    stats_.active.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    if (!make_ssl()) {
      stats_.handshake_failed.fetch_add(1, std::memory_order_relaxed);
      return abort();
    }
    arm_timer(start_ + std::min(cfg_.handshake_timeout, cfg_.total_timeout));
    read();
  }

 private:
  bool make_ssl() {
    ssl_.reset(SSL_new(static_cast<SSL_CTX*>(ctx_.native())));
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    if (!ssl_ || rbio == nullptr || wbio == nullptr) {
      BIO_free(rbio);
      BIO_free(wbio);
      ERR_clear_error();
      return false;
    }
    SSL_set_bio(ssl_.get(), rbio, wbio);  // ssl_ owns both now
    rbio_ = rbio;
    wbio_ = wbio;
    SSL_set_accept_state(ssl_.get());
    const bool ok = cert_ && SSL_use_certificate(ssl_.get(), cert_->cert.get()) == 1 &&
                    SSL_use_PrivateKey(ssl_.get(), cert_->key.get()) == 1;
    ERR_clear_error();
    return ok;
  }

  void read() {
    client_.async_read_some(asio::buffer(in_), [self = shared_from_this()](
                                                   boost::system::error_code ec, std::size_t n) {
      if (ec == asio::error::operation_aborted || self->done_) {
        return;
      }
      if (ec == asio::error::eof) {
        return self->on_client_eof();
      }
      if (ec) {
        return self->fail();
      }
      if (BIO_write(self->rbio_, self->in_.data(), static_cast<int>(n)) != static_cast<int>(n)) {
        return self->fail();
      }
      self->step();
    });
  }

  // Feeds what arrived through OpenSSL, sends what it produced, reads on.
  void step() {
    if (!handshake_done_) {
      const int r = SSL_do_handshake(ssl_.get());
      if (r == 1) {
        return on_handshake();
      }
      const int err = SSL_get_error(ssl_.get(), r);
      ERR_clear_error();
      if (err != SSL_ERROR_WANT_READ) {  // an alert (e.g. no acme-tls/1) is queued in wbio_
        stats_.handshake_failed.fetch_add(1, std::memory_order_relaxed);
        abort_after_flush_ = true;
        return flush();
      }
      flush();
      return read();
    }
    drain_application_data();
  }

  void on_handshake() {
    handshake_done_ = true;
    const unsigned char* alpn = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl_.get(), &alpn, &len);
    if (alpn == nullptr || std::string_view{reinterpret_cast<const char*>(alpn), len} != kAcmeTls) {
      stats_.handshake_failed.fetch_add(1, std::memory_order_relaxed);
      return abort();
    }
    stats_.handshakes_ok.fetch_add(1, std::memory_order_relaxed);
    stats_.handshake_latency.observe(Clock::now() - start_);
    arm_timer(std::min(Clock::now() + cfg_.close_timeout, start_ + cfg_.total_timeout));
    drain_application_data();
  }

  // After the handshake the CA only closes: any data is discarded. Its close_notify is not
  // answered (the client closes its socket right after sending it, and a reply arriving then
  // would only draw an RST); the FIN that follows ends the session in on_client_eof().
  void drain_application_data() {
    std::array<char, 512> sink{};
    for (;;) {
      const int r = SSL_read(ssl_.get(), sink.data(), static_cast<int>(sink.size()));
      if (r > 0) {
        continue;
      }
      const int err = SSL_get_error(ssl_.get(), r);
      ERR_clear_error();
      if (err == SSL_ERROR_ZERO_RETURN) {
        close_notified_ = true;
        break;
      }
      if (err != SSL_ERROR_WANT_READ) {
        return fail();
      }
      break;
    }
    flush();
    read();
  }

  void flush() {
    if (writing_ || done_) {
      return;
    }
    const auto pending = BIO_ctrl_pending(wbio_);
    if (pending == 0) {
      if (abort_after_flush_) {
        abort();
      }
      return;
    }
    out_.resize(pending);
    const int n = BIO_read(wbio_, out_.data(), static_cast<int>(out_.size()));
    if (n <= 0) {
      return fail();
    }
    out_.resize(static_cast<std::size_t>(n));
    writing_ = true;
    asio::async_write(client_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (ec == asio::error::operation_aborted || self->done_) {
                          return;
                        }
                        if (ec) {
                          return self->fail();
                        }
                        self->flush();
                      });
  }

  void on_client_eof() {
    if (!handshake_done_) {
      stats_.handshake_eof.fetch_add(1, std::memory_order_relaxed);
    } else {
      stats_.client_closed.fetch_add(1, std::memory_order_relaxed);
    }
    // The client's FIN came first: closing now is the passive close (LAST_ACK, no TIME_WAIT).
    finish(false);
  }

  void arm_timer(Clock::time_point deadline) {
    timer_.expires_at(deadline);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec == asio::error::operation_aborted || self->done_) {
        return;
      }
      (self->handshake_done_ ? self->stats_.close_timeout : self->stats_.handshake_timeout)
          .fetch_add(1, std::memory_order_relaxed);
      self->abort();
    });
  }

  // A socket error. After the client's close_notify, a reset is its way of closing.
  void fail() {
    (close_notified_ ? stats_.client_closed : stats_.io_errors)
        .fetch_add(1, std::memory_order_relaxed);
    abort();
  }

  void abort() { finish(true); }

  void finish(bool reset) {
    if (done_) {
      return;
    }
    done_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    if (reset) {
      reset_and_close();
    } else {
      client_.close(ignored);
    }
  }

  // SO_LINGER 0: RST, no TIME_WAIT for production's address:port on the firewall. The explicit
  // close() matters: Asio's destructor-close turns a user-set linger off again.
  void reset_and_close() {
    boost::system::error_code ignored;
    client_.set_option(asio::socket_base::linger(true, 0), ignored);
    client_.close(ignored);
  }

  tcp::socket client_;
  SessionSlot slot_;
  asio::steady_timer timer_;
  std::shared_ptr<const AlpnCertificate> cert_;
  const TlsServerContext& ctx_;
  const TlsSessionConfig& cfg_;
  TlsSessionStats& stats_;
  Clock::time_point start_;
  std::unique_ptr<SSL, SslDeleter> ssl_;
  BIO* rbio_ = nullptr;  // owned by ssl_: bytes from the client
  BIO* wbio_ = nullptr;  // owned by ssl_: bytes for the client
  std::array<char, 4096> in_{};
  std::string out_;
  bool handshake_done_ = false;
  bool writing_ = false;
  bool abort_after_flush_ = false;
  bool close_notified_ = false;  // the client's close_notify arrived
  bool done_ = false;
};

}  // namespace

TlsServerContext::TlsServerContext() : ctx_(SSL_CTX_new(TLS_server_method())) {
  auto* ctx = static_cast<SSL_CTX*>(ctx_);
  const bool ok = ctx != nullptr && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
                  SSL_CTX_set_num_tickets(ctx, 0) == 1;
  if (!ok) {
    std::array<char, 256> buf{};
    ERR_error_string_n(ERR_get_error(), buf.data(), buf.size());
    ERR_clear_error();
    SSL_CTX_free(ctx);
    throw std::runtime_error(std::string{"tls-alpn-01: cannot create the TLS context: "} +
                             buf.data());
  }
  // One handshake per connection, never resumed: no tickets, no session cache.
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_alpn_select_cb(ctx, select_acme_tls, nullptr);
}

TlsServerContext::~TlsServerContext() {
  SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

void start_tls_session(tcp::socket client, std::shared_ptr<const AlpnCertificate> cert,
                       const TlsServerContext& ctx, const TlsSessionConfig& cfg,
                       TlsSessionStats& stats, SessionSlot slot) {
  const auto ex = client.get_executor();
  auto s = std::make_shared<TlsSession>(std::move(client), std::move(cert), ctx, cfg, stats,
                                        std::move(slot));
  asio::dispatch(ex, [s = std::move(s)] { s->start(); });
}

}  // namespace acmegw::backends
