// The tls-alpn-01 session over real loopback TCP: an OpenSSL client against start_tls_session,
// TLS 1.3 and 1.2, the ALPN rule, and every way a session ends, each counted once.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include "backends/alpn_cert.hpp"
#include "backends/tls_session.hpp"

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace bk = acmegw::backends;

namespace {

// A listener on 127.0.0.1 handing every accepted socket to start_tls_session, on its own thread.
struct Server {
  explicit Server(bk::TlsSessionConfig c) : cfg(c) {
    std::string error;
    cert = bk::make_alpn_certificate(key, *bk::parse_alpn_identifier("a.example"),
                                     bk::keyauth_digest("tok.thumb"), error);
    REQUIRE(cert);
    acceptor.open(asio::ip::tcp::v4());
    acceptor.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor.listen();
    accept();
    thread = std::thread{[this] { io.run(); }};
  }
  ~Server() {
    asio::post(io, [this] { acceptor.close(); });
    work.reset();
    thread.join();
  }
  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) {
        return;
      }
      bk::start_tls_session(std::move(s), cert, ctx, cfg, stats);
      accept();
    });
  }
  [[nodiscard]] std::uint16_t port() const { return acceptor.local_endpoint().port(); }

  bk::TlsSessionConfig cfg;
  bk::TlsServerContext ctx;
  bk::TlsSessionStats stats;
  bk::UniqueEvpPkey key = bk::generate_p256_key();
  std::shared_ptr<const bk::AlpnCertificate> cert;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  asio::ip::tcp::acceptor acceptor{io};
  std::thread thread;
};

// Polls `pred` until it holds or a deadline generous for a loaded 2-core machine passes.
bool eventually(const std::function<bool()>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  timeval tv{30, 0};  // a broken session must fail the test, not hang it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

struct Client {
  Client(std::uint16_t port, std::vector<std::string> alpn, int max_version = 0)
      : ctx(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free), fd(connect_to(port)) {
    if (max_version != 0) {
      SSL_CTX_set_max_proto_version(ctx.get(), max_version);
    }
    ssl.reset(SSL_new(ctx.get()));
    SSL_set_fd(ssl.get(), fd);
    SSL_set_tlsext_host_name(ssl.get(), "a.example");
    std::string wire;
    for (const auto& p : alpn) {
      wire += static_cast<char>(p.size());
      wire += p;
    }
    SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  ~Client() {
    ssl.reset();
    ::close(fd);
  }
  bool handshake() { return SSL_connect(ssl.get()) == 1; }
  [[nodiscard]] std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl.get(), &p, &n);
    return p == nullptr ? "" : std::string(reinterpret_cast<const char*>(p), n);
  }
  // What the server does next: 0 = orderly close (FIN), -1 = reset or error.
  [[nodiscard]] ssize_t wait_for_close() const {
    char c = 0;
    return ::recv(fd, &c, 1, 0);
  }

  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx;
  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  std::unique_ptr<SSL, SslFree> ssl;
  int fd;
};

}  // namespace

TEST_CASE("tls session: acme-tls/1 over TLS 1.3 and 1.2, then the client closes",
          "[backends][tls]") {
  Server srv{{}};
  for (const int version : {0, TLS1_2_VERSION}) {
    CAPTURE(version);
    const auto ok_before = srv.stats.handshakes_ok.load();
    const auto closed_before = srv.stats.client_closed.load();
    {
      Client c{srv.port(), {"acme-tls/1"}, version};
      REQUIRE(c.handshake());
      CHECK(SSL_version(c.ssl.get()) == (version == 0 ? TLS1_3_VERSION : TLS1_2_VERSION));
      CHECK(c.alpn() == "acme-tls/1");
      X509* peer = SSL_get1_peer_certificate(c.ssl.get());
      REQUIRE(peer != nullptr);
      CHECK(X509_cmp(peer, srv.cert->cert.get()) == 0);
      X509_free(peer);
      CHECK(SSL_shutdown(c.ssl.get()) >= 0);  // close_notify, then the FIN
    }
    CHECK(eventually([&] { return srv.stats.client_closed.load() == closed_before + 1; }));
    CHECK(srv.stats.handshakes_ok.load() == ok_before + 1);
  }
  CHECK(srv.stats.started.load() == 2);
  CHECK(eventually([&] { return srv.stats.active.load() == 0; }));
  CHECK(srv.stats.handshake_failed.load() == 0);
  CHECK(srv.stats.io_errors.load() == 0);
}

TEST_CASE("tls session: a client without acme-tls/1 gets a failed handshake", "[backends][tls]") {
  Server srv{{}};
  Client c{srv.port(), {"h2", "http/1.1"}};
  CHECK_FALSE(c.handshake());
  CHECK(eventually([&] { return srv.stats.handshake_failed.load() == 1; }));
  CHECK(srv.stats.handshakes_ok.load() == 0);
}

TEST_CASE("tls session: handshake and close deadlines abort the connection", "[backends][tls]") {
  Server srv{{std::chrono::milliseconds{200}, std::chrono::milliseconds{200}}};
  {
    Client silent{srv.port(), {"acme-tls/1"}};
    CHECK(silent.wait_for_close() <= 0);  // nothing sent: reset at the handshake deadline
    CHECK(eventually([&] { return srv.stats.handshake_timeout.load() == 1; }));
  }
  {
    Client idle{srv.port(), {"acme-tls/1"}};
    REQUIRE(idle.handshake());
    CHECK(idle.wait_for_close() <= 0);  // never closes: reset at the close deadline
    CHECK(eventually([&] { return srv.stats.close_timeout.load() == 1; }));
  }
  CHECK(srv.stats.handshakes_ok.load() == 1);
  CHECK(srv.stats.client_closed.load() == 0);
}

TEST_CASE("tls session: a client that leaves mid-handshake is counted as eof", "[backends][tls]") {
  Server srv{{}};
  {
    const int fd = connect_to(srv.port());
    ::shutdown(fd, SHUT_WR);
    char c = 0;
    CHECK(::recv(fd, &c, 1, 0) <= 0);
    ::close(fd);
  }
  CHECK(eventually([&] { return srv.stats.handshake_eof.load() == 1; }));
}
