// The HTTP session of a taken-over connection: pure helpers, then the real session over
// loopback TCP (no root: an accepted socket stands in for the repaired one, a loopback
// listener for production).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "backends/http_session.hpp"
#include "backends/thumbprint.hpp"

using namespace acmegw::backends;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kThumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span{s});
}

std::string response_200(std::string_view body, bool head = false) {
  std::string r = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n";
  if (!head) {
    r += body;
  }
  return r;
}

// Whether /proc/net/tcp (this network namespace, IPv4) lists a TIME_WAIT socket on local `port`.
bool time_wait_on(unsigned short port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (local.ends_with(want) && state == "06") {  // TCP_TIME_WAIT
      return true;
    }
  }
  return false;
}

// A session on loopback: `client` talks to a session served by two Asio threads; `prod` is a
// listener standing in for production.
struct Lab {
  std::unique_ptr<asio::io_context> io_owner = std::make_unique<asio::io_context>();
  asio::io_context& io = *io_owner;
  asio::io_context tio;  // the test's own blocking sockets
  tcp::acceptor front{tio, {asio::ip::address_v4::loopback(), 0}};
  tcp::acceptor prod{tio, {asio::ip::address_v4::loopback(), 0}};
  tcp::socket client{tio};
  std::unique_ptr<ThumbprintBackend> backend;
  SessionConfig cfg;
  acmegw::backends::RelaySpec relay{prod.local_endpoint()};
  SessionStats stats;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread t1, t2;

  explicit Lab(std::chrono::milliseconds idle = 5s, bool relay_only = false,
               bool redirect_https = false, const std::function<void(SessionConfig&)>& tune = {}) {
    std::string err;
    backend = ThumbprintBackend::create(kThumb, err);
    cfg.idle_timeout = idle;
    cfg.redirect_https = redirect_https;
    cfg.drain_timeout = 300ms;
    if (tune) {
      tune(cfg);
    }
    client.connect(front.local_endpoint());
    tcp::socket served{asio::make_strand(io)};
    auto accepted = front.accept();
    served.assign(tcp::v4(), accepted.release());
    if (relay_only) {
      start_relay_session(std::move(served), relay, cfg, stats);
    } else {
      start_http_session(std::move(served), prod.local_endpoint(), *backend, cfg, stats);
    }
    t1 = std::thread([this] { io.run(); });
    t2 = std::thread([this] { io.run(); });
  }
  ~Lab() { shutdown(); }

  // Stops and destroys the session's io_context, as ~RepairTakeover does at exit.
  void shutdown() {
    if (!io_owner) {
      return;
    }
    work.reset();
    io.stop();
    t1.join();
    t2.join();
    io_owner.reset();
  }

  void send(std::string_view s) { asio::write(client, asio::buffer(s)); }
  // Reads exactly n bytes.
  std::string read(std::size_t n) {
    std::string s(n, '\0');
    asio::read(client, asio::buffer(s));
    return s;
  }
  // The error the next read gives (eof = the session closed, connection_reset = abort),
  // waiting up to `wait`; would_block when nothing came.
  boost::system::error_code next_read_error(std::chrono::milliseconds wait) {
    const auto until = std::chrono::steady_clock::now() + wait;
    client.non_blocking(true);
    char c = 0;
    boost::system::error_code ec;
    while (std::chrono::steady_clock::now() < until) {
      client.read_some(asio::buffer(&c, 1), ec);
      if (ec != asio::error::would_block) {
        return ec;
      }
      std::this_thread::sleep_for(10ms);
    }
    return ec;
  }
};

}  // namespace

TEST_CASE("find_head_end: CRLF, bare LF, incomplete", "[backends][session]") {
  CHECK(find_head_end(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\nX")) == 27u);
  CHECK(find_head_end(bytes("GET / HTTP/1.1\nHost: a\n\nX")) == 24u);
  CHECK(find_head_end(bytes("GET / HTTP/1.1\r\nHost: a\n\r\n")) == 26u);
  CHECK_FALSE(find_head_end(bytes("GET / HTTP/1.1\r\nHost: a\r\n")));
  CHECK_FALSE(find_head_end(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r")));
  CHECK_FALSE(find_head_end(bytes("")));
}

TEST_CASE("split_request_line", "[backends][session]") {
  const auto r = split_request_line("HEAD /.well-known/acme-challenge/x?y HTTP/1.1\r\n\r\n");
  CHECK(r.method == "HEAD");
  CHECK(r.target == "/.well-known/acme-challenge/x?y");
  CHECK(split_request_line("GET /a\r\n").target == "/a");
  CHECK(split_request_line("GET").method.empty());
}

TEST_CASE("format_response: every answer kind, GET and HEAD", "[backends][session]") {
  std::string out;
  Answer a;
  a.kind = Answer::Kind::KeyAuthorization;
  a.body = "tok.thumb";
  format_response(a, false, false, out);
  CHECK(out == response_200("tok.thumb"));
  format_response(a, true, false, out);
  CHECK(out == response_200("tok.thumb", true));
  a = {};
  format_response(a, false, false, out);
  CHECK(out ==
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot "
        "found\n");
  a.kind = Answer::Kind::Redirect;
  a.location = "https://v.example/.well-known/acme-challenge/t";
  format_response(a, false, false, out);
  CHECK(out ==
        "HTTP/1.1 302 Found\r\nLocation: https://v.example/.well-known/acme-challenge/t\r\n"
        "Content-Length: 0\r\n\r\n");
  a.kind = Answer::Kind::Unavailable;
  format_response(a, true, false, out);
  CHECK(
      out ==
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n");
}

TEST_CASE("session: keep-alive and pipelined challenges, passive close", "[backends][session]") {
  Lab lab;
  const std::string body = "tok1." + std::string(kThumb);
  lab.send("GET /.well-known/acme-challenge/tok1 HTTP/1.1\r\nHost: a.example\r\n\r\n");
  CHECK(lab.read(response_200(body).size()) == response_200(body));
  // Two requests in one write, the second split from its end: both answered in order.
  lab.send(
      "HEAD /.well-known/acme-challenge/tok2 HTTP/1.1\r\nHost: a\r\n\r\n"
      "GET /.well-known/acme-challenge/tok3 HTTP/1.1\r\nHo");
  lab.send("st: a\r\n\r\n");
  const std::string b2 = "tok2." + std::string(kThumb);
  const std::string b3 = "tok3." + std::string(kThumb);
  const std::string want = response_200(b2, true) + response_200(b3);
  CHECK(lab.read(want.size()) == want);
  // Never the first to close: nothing more comes while the client stays.
  CHECK(lab.next_read_error(300ms) == asio::error::would_block);
  lab.client.shutdown(tcp::socket::shutdown_send);
  CHECK(lab.next_read_error(2s) == asio::error::eof);
  CHECK(lab.stats.answered_keyauth == 3);
  CHECK(lab.stats.client_closed == 1);
}

TEST_CASE("session: a non-challenge request is relayed to production byte for byte",
          "[backends][session]") {
  Lab lab;
  const std::string body = "tok." + std::string(kThumb);
  lab.send("GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(lab.read(response_200(body).size()) == response_200(body));

  const std::string second = "GET /index.html HTTP/1.1\r\nHost: a\r\nX-Case: KeEp\r\n\r\n";
  lab.send(second);
  auto p = lab.prod.accept();
  std::string got(second.size(), '\0');
  asio::read(p, asio::buffer(got));
  CHECK(got == second);
  const std::string page = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  asio::write(p, asio::buffer(page));
  CHECK(lab.read(page.size()) == page);
  // The client closes: production sees EOF, then closes; the session closes after the client.
  lab.client.shutdown(tcp::socket::shutdown_send);
  char c = 0;
  boost::system::error_code ec;
  p.read_some(asio::buffer(&c, 1), ec);
  CHECK(ec == asio::error::eof);
  p.close();
  CHECK(lab.next_read_error(2s) == asio::error::eof);
  CHECK(lab.stats.relayed == 1);
}

TEST_CASE("session: production closing first is passed on as FIN, the TIME_WAIT destroyed",
          "[backends][session]") {
  Lab lab;
  lab.send("GET / HTTP/1.0\r\n\r\n");
  auto p = lab.prod.accept();
  std::string got(18, '\0');
  asio::read(p, asio::buffer(got));
  // HTTP/1.0 without Content-Length (certbot --standalone): the body ends at the close.
  asio::write(p, asio::buffer(std::string_view("HTTP/1.0 200 OK\r\n\r\nbye")));
  p.close();
  CHECK(lab.read(22) == "HTTP/1.0 200 OK\r\n\r\nbye");
  CHECK(lab.next_read_error(2s) == asio::error::eof);
  lab.client.close();  // after our FIN: the session's socket goes to TIME_WAIT
  for (int i = 0; i < 100 && lab.stats.client_closed == 0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(lab.stats.client_closed == 1);
  CHECK(lab.stats.idle_aborted == 0);
  if (::geteuid() == 0) {  // SOCK_DESTROY needs CAP_NET_ADMIN
    CHECK(lab.stats.timewait_left == 0);
    CHECK_FALSE(time_wait_on(lab.front.local_endpoint().port()));
  }
}

TEST_CASE("session: an idle client is aborted with RST at the deadline", "[backends][session]") {
  Lab lab{200ms};
  lab.send("GET /.well-known/acme-challenge/t HTTP/1.1\r\n");  // head never completed
  CHECK(lab.next_read_error(2s) == asio::error::connection_reset);
  CHECK(lab.stats.idle_aborted == 1);
  CHECK(lab.stats.answered_keyauth == 0);
}

// The timeouts below are 10x apart at least (header/total vs idle), so a loaded machine can
// delay the reset but not make the wrong deadline fire first.
namespace {
SessionConfig& short_head_and_total(SessionConfig& c, std::chrono::milliseconds total) {
  c.header_timeout = 300ms;
  c.total_timeout = total;
  return c;
}
}  // namespace

TEST_CASE("session: a slowloris head is reset at the header timeout though bytes keep coming",
          "[backends][session]") {
  Lab lab{10s, false, false, [](SessionConfig& c) { short_head_and_total(c, 60s); }};
  lab.send("GET /.well-known/acme-challenge/t HTTP/1.1\r\n");
  // One header byte every 50 ms keeps the idle deadline away; the head never completes.
  boost::system::error_code ec;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!ec && std::chrono::steady_clock::now() < until) {
    asio::write(lab.client, asio::buffer("X", 1), ec);
    std::this_thread::sleep_for(50ms);
  }
  CHECK((ec == asio::error::connection_reset || ec == asio::error::broken_pipe));
  CHECK(std::chrono::steady_clock::now() < until);
  CHECK(lab.stats.header_timeout == 1);
  CHECK(lab.stats.idle_aborted == 0);
}

TEST_CASE(
    "session: between keep-alive requests only the idle timeout holds; each head has the "
    "header timeout",
    "[backends][session]") {
  Lab lab{10s, false, false, [](SessionConfig& c) { short_head_and_total(c, 60s); }};
  const std::string body = "t." + std::string(kThumb);
  lab.send("GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(lab.read(response_200(body).size()) == response_200(body));
  CHECK(lab.next_read_error(1s) == asio::error::would_block);    // idle, 3x the header timeout
  lab.send("GET /.well-known/acme-challenge/t HTTP/1.1\r\nHo");  // then nothing
  CHECK(lab.next_read_error(5s) == asio::error::connection_reset);
  CHECK(lab.stats.header_timeout == 1);
  CHECK(lab.stats.idle_aborted == 0);
}

TEST_CASE("session: an answering session ends at the total timeout however busy",
          "[backends][session]") {
  Lab lab{10s, false, false, [](SessionConfig& c) { short_head_and_total(c, 500ms); }};
  const std::string req = "GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string want = response_200("t." + std::string(kThumb));
  boost::system::error_code ec;
  std::string got(want.size(), '\0');
  const auto until = std::chrono::steady_clock::now() + 8s;
  std::uint64_t answered = 0;
  while (!ec && std::chrono::steady_clock::now() < until) {
    asio::write(lab.client, asio::buffer(req), ec);
    if (!ec) {
      asio::read(lab.client, asio::buffer(got), ec);
    }
    answered += !ec && got == want;
    std::this_thread::sleep_for(20ms);
  }
  CHECK(ec);  // reset (or EOF/EPIPE after it), long before `until`
  CHECK(std::chrono::steady_clock::now() < until);
  CHECK(answered >= 1);
  CHECK(lab.stats.total_timeout == 1);
  CHECK(lab.stats.idle_aborted == 0);
}

TEST_CASE("session: a connection relayed to production has no header or total timeout",
          "[backends][session]") {
  Lab lab{10s, false, false, [](SessionConfig& c) { short_head_and_total(c, 300ms); }};
  const std::string req = "GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n";
  lab.send(req);
  tcp::socket prod = lab.prod.accept();
  std::string got(req.size(), '\0');
  asio::read(prod, asio::buffer(got));
  CHECK(got == req);
  std::this_thread::sleep_for(1s);  // past both the header and the total timeout
  lab.send("more");
  std::string more(4, '\0');
  asio::read(prod, asio::buffer(more));
  CHECK(more == "more");
  CHECK(lab.stats.total_timeout == 0);
  CHECK(lab.stats.header_timeout == 0);
}

TEST_CASE("session: an io_context torn down under an open session aborts it with RST",
          "[backends][session]") {
  Lab lab;
  const std::string body = "t." + std::string(kThumb);
  lab.send("GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: a\r\n\r\n");
  CHECK(lab.read(response_200(body).size()) == response_200(body));
  lab.shutdown();
  CHECK(lab.next_read_error(2s) == asio::error::connection_reset);
  CHECK(lab.stats.active == 0);
}

TEST_CASE("relay session: the whole connection goes to the target, challenges included",
          "[backends][session]") {
  Lab lab{5s, true};
  const std::string req = "GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: a\r\n\r\n";
  lab.send(req);
  auto p = lab.prod.accept();
  std::string got(req.size(), '\0');
  asio::read(p, asio::buffer(got));
  CHECK(got == req);
  const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  asio::write(p, asio::buffer(answer));
  CHECK(lab.read(answer.size()) == answer);
  CHECK(lab.stats.answered_keyauth == 0);
  CHECK(lab.stats.relayed == 1);
}

// ---- policy "redirect-https" (backends/https_redirect.hpp): production never sees a byte.

TEST_CASE("redirect-https session: 301 keep-alive, HEAD, challenge on the same connection",
          "[backends][session][redirect]") {
  Lab lab(5s, false, true);
  const std::string moved =
      "HTTP/1.1 301 Moved Permanently\r\nLocation: https://www.example.org/a?b=1\r\n"
      "Content-Length: 0\r\n\r\n";
  lab.send("GET /a?b=1 HTTP/1.1\r\nHost: www.example.org:80\r\n\r\n");
  CHECK(lab.read(moved.size()) == moved);
  lab.send("HEAD /a?b=1 HTTP/1.1\r\nHost: www.example.org\r\n\r\n");
  CHECK(lab.read(moved.size()) == moved);
  // A challenge on the redirected connection is still answered by the backend.
  const std::string keyauth = "tok." + std::string{kThumb};
  lab.send("GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: www.example.org\r\n\r\n");
  CHECK(lab.read(response_200(keyauth).size()) == response_200(keyauth));
  // Pipelined, split at an odd place.
  lab.send("GET / HTTP/1.1\r\nHost: a.org\r\n\r\nGET /x HTTP/1.1\r\nHo");
  lab.send("st: b.org\r\n\r\n");
  const std::string a =
      "HTTP/1.1 301 Moved Permanently\r\nLocation: https://a.org/\r\n"
      "Content-Length: 0\r\n\r\n";
  const std::string b =
      "HTTP/1.1 301 Moved Permanently\r\nLocation: https://b.org/x\r\n"
      "Content-Length: 0\r\n\r\n";
  CHECK(lab.read(a.size() + b.size()) == a + b);
  lab.client.shutdown(tcp::socket::shutdown_send);
  // The session closes only after the client's FIN (passive close: no TIME_WAIT on our side).
  CHECK(lab.next_read_error(2s) == asio::error::eof);
  CHECK(lab.stats.answered_redirect_https == 4);
  CHECK(lab.stats.answered_keyauth == 1);
  CHECK(lab.stats.relayed == 0);
  lab.prod.non_blocking(true);
  boost::system::error_code ec;
  (void)lab.prod.accept(ec);
  CHECK(ec == asio::error::would_block);  // production was never connected to
}

TEST_CASE("redirect-https session: no usable Host is 400 with Connection: close",
          "[backends][session][redirect]") {
  Lab lab(5s, false, true);
  lab.send("GET / HTTP/1.0\r\n\r\n");
  const std::string bad =
      "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  CHECK(lab.read(bad.size()) == bad);
  // Nothing more is answered; the session waits for the client's FIN (drain deadline: RST).
  lab.send("GET / HTTP/1.1\r\nHost: a.org\r\n\r\n");
  CHECK(lab.next_read_error(1s) == asio::error::connection_reset);
  CHECK(lab.stats.bad_request == 1);
  CHECK(lab.stats.answered_redirect_https == 0);
}

TEST_CASE("redirect-https session: non-HTTP bytes and oversized heads are reset",
          "[backends][session][redirect]") {
  {
    Lab lab(5s, false, true);
    lab.send("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    CHECK(lab.next_read_error(2s) == asio::error::connection_reset);
    CHECK(lab.stats.malformed_reset == 1);
  }
  {
    Lab lab(5s, false, true);
    lab.send("GET /" + std::string(9000, 'a'));  // beyond max_http_head (8192), no head end
    CHECK(lab.next_read_error(2s) == asio::error::connection_reset);
    CHECK(lab.stats.malformed_reset == 1);
  }
  {
    Lab lab(5s, false, true);
    lab.send("GET / HTTP/1.1\r\nHost: evil.com\r\n folded\r\n\r\n");
    CHECK(lab.next_read_error(2s) == asio::error::connection_reset);
    CHECK(lab.stats.malformed_reset == 1);
  }
  {
    Lab lab(5s, false, true);
    lab.send("GET / HTTP/1.1\r\nHost: evil.com\r\nX-Injected: a\r\n\r\n");
    lab.send("GET / HTTP/1.1\r\nHost: a@evil.com\r\n\r\n");  // the second one: 400
    const std::string moved =
        "HTTP/1.1 301 Moved Permanently\r\nLocation: https://evil.com/"
        "\r\nContent-Length: 0\r\n\r\n";
    const std::string bad =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    CHECK(lab.read(moved.size() + bad.size()) == moved + bad);
  }
}

TEST_CASE("format_response: close adds Connection: close", "[backends][session]") {
  std::string out;
  Answer a;
  a.kind = Answer::Kind::KeyAuthorization;
  a.body = "tok.thumb";
  format_response(a, false, true, out);
  CHECK(out ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        "Content-Length: 9\r\n\r\ntok.thumb");
}

TEST_CASE("wants_close: Connection options and HTTP/1.0 (RFC 9112 9.3)", "[backends][session]") {
  const std::string_view get = "GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: a\r\n";
  const auto head = [&](std::string_view fields, std::string_view line = {}) {
    return std::string{line.empty() ? get : line} + std::string{fields} + "\r\n";
  };
  CHECK_FALSE(wants_close(head("")));
  CHECK(wants_close(head("Connection: close\r\n")));  // every Boulder request
  CHECK(wants_close(head("connection:CLOSE\r\n")));
  CHECK(wants_close(head("Connection: keep-alive, Close\r\n")));
  CHECK(wants_close(head("Connection: te\r\nConnection:  close \r\n")));
  CHECK_FALSE(wants_close(head("Connection: closed\r\n")));
  CHECK_FALSE(wants_close(head("X-Connection: close\r\n")));
  CHECK_FALSE(wants_close(head("Connection: keep-alive\r\n")));
  const std::string_view v10 = "GET /.well-known/acme-challenge/t HTTP/1.0\r\n";
  CHECK(wants_close(head("", v10)));
  CHECK_FALSE(wants_close(head("Connection: Keep-Alive\r\n", v10)));
  CHECK(wants_close(head("Connection: keep-alive, close\r\n", v10)));
  // bare LF line ends
  CHECK(wants_close("GET /x HTTP/1.1\nConnection: close\n\n"));
  CHECK(wants_close("GET /x HTTP/1.0\n\n"));
}
