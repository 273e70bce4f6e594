// The relay backend: its VALUE parser, the PROXY protocol encoder (field by field, per
// proxy-protocol.txt §2.1/§2.2), the rate-limited warning, and the relay session over loopback
// (PROXY header first, 502 for a refusing target, 504 for a silent one).
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "backends/http_session.hpp"
#include "backends/relay.hpp"

using namespace acmegw::backends;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using namespace std::string_view_literals;
using namespace std::string_literals;

namespace {

tcp::endpoint ep(const char* addr, std::uint16_t port) {
  return {asio::ip::make_address(addr), port};
}

std::string header(ProxyProtocol v, const tcp::endpoint& c, const tcp::endpoint& s) {
  ProxyHeaderBuffer buf{};
  const std::size_t n = encode_proxy_header(v, c, s, buf);
  REQUIRE(n <= buf.size());
  return {reinterpret_cast<const char*>(buf.data()), n};
}

}  // namespace

TEST_CASE("parse_relay_spec: target and options", "[backends][relay]") {
  std::string err;
  auto s = parse_relay_spec("192.0.2.7:80", err);
  REQUIRE(s);
  CHECK(s->target == ep("192.0.2.7", 80));
  CHECK(s->proxy == ProxyProtocol::None);
  CHECK(s->connect_timeout == 3000ms);
  CHECK(to_string(*s) == "192.0.2.7:80");

  s = parse_relay_spec("[2001:db8::7]:8080,connect-timeout=250,proxy=v2", err);
  REQUIRE(s);
  CHECK(s->target == ep("2001:db8::7", 8080));
  CHECK(s->proxy == ProxyProtocol::V2);
  CHECK(s->connect_timeout == 250ms);
  CHECK(to_string(*s) == "[2001:db8::7]:8080,proxy=v2,connect-timeout=250");

  s = parse_relay_spec("10.0.0.1:80,proxy=v1", err);
  REQUIRE(s);
  CHECK(s->proxy == ProxyProtocol::V1);
  CHECK(to_string(*s) == "10.0.0.1:80,proxy=v1");
}

TEST_CASE("parse_relay_spec: bad values name the offending part", "[backends][relay]") {
  struct Case {
    std::string_view value;
    std::string_view named;
  };
  const Case cases[] = {
      {"val.example:80", "val.example:80"},  // names are not resolved
      {"192.0.2.7", "192.0.2.7"},
      {"192.0.2.7:0", "192.0.2.7:0"},
      {"192.0.2.7:65536", "192.0.2.7:65536"},
      {"2001:db8::7:80", "2001:db8::7:80"},  // v6 needs brackets
      {"192.0.2.7:80,proxy=v3", "proxy=v3"},
      {"192.0.2.7:80,proxy=v1,proxy=v2", "proxy=v2"},
      {"192.0.2.7:80,connect-timeout=0", "connect-timeout=0"},
      {"192.0.2.7:80,connect-timeout=60001", "connect-timeout=60001"},
      {"192.0.2.7:80,connect-timeout=1s", "connect-timeout=1s"},
      {"192.0.2.7:80,tls=on", "tls=on"},
      {"192.0.2.7:80,", "\"\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.value);
    std::string err;
    CHECK_FALSE(parse_relay_spec(c.value, err));
    CHECK(err.find(c.named) != std::string::npos);
  }
}

TEST_CASE("PROXY v1: text line per family", "[backends][relay][proxy]") {
  CHECK(header(ProxyProtocol::V1, ep("198.51.100.22", 35646), ep("192.0.2.80", 80)) ==
        "PROXY TCP4 198.51.100.22 192.0.2.80 35646 80\r\n");
  CHECK(header(ProxyProtocol::V1, ep("2001:db8::1", 1), ep("2001:db8:0:1::80", 65535)) ==
        "PROXY TCP6 2001:db8::1 2001:db8:0:1::80 1 65535\r\n");
  // The longest line fits the buffer (spec bound: 107 bytes).
  const auto longest =
      header(ProxyProtocol::V1, ep("1111:2222:3333:4444:5555:6666:7777:8888", 65535),
             ep("1111:2222:3333:4444:5555:6666:7777:8888", 65535));
  CHECK(longest.size() == 104);
  CHECK(header(ProxyProtocol::V1, ep("198.51.100.22", 1), ep("2001:db8::1", 80)) ==
        "PROXY UNKNOWN\r\n");
  CHECK(header(ProxyProtocol::None, ep("198.51.100.22", 1), ep("192.0.2.80", 80)).empty());
}

TEST_CASE("PROXY v2: binary header, field by field", "[backends][relay][proxy]") {
  const auto sig = "\r\n\r\n\0\r\nQUIT\n"s;  // 12-byte signature
  REQUIRE(sig.size() == 12);

  const auto v4 = header(ProxyProtocol::V2, ep("198.51.100.22", 0x8b3e), ep("192.0.2.80", 80));
  const auto want4 = std::string(sig) +
                     "\x21"s              // version 2 | command PROXY
                     "\x11"s              // AF_INET | STREAM
                     "\x00\x0c"s          // 12 address bytes follow
                     "\xc6\x33\x64\x16"s  // src 198.51.100.22
                     "\xc0\x00\x02\x50"s  // dst 192.0.2.80
                     "\x8b\x3e"s          // src port 35646
                     "\x00\x50"s;         // dst port 80
  CHECK(v4 == want4);
  CHECK(v4.size() == 28);

  const auto v6 = header(ProxyProtocol::V2, ep("2001:db8::1", 443), ep("2001:db8::80", 80));
  const auto want6 = std::string(sig) +
                     "\x21"s                                        // v2 | PROXY
                     "\x21"s                                        // AF_INET6 | STREAM
                     "\x00\x24"s                                    // 36 bytes
                     "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"s  // src
                     "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x80"s  // dst
                     "\x01\xbb"s                                    // src port 443
                     "\x00\x50"s;                                   // dst port 80
  CHECK(v6 == want6);
  CHECK(v6.size() == 52);

  // Mixed families: PROXY with AF_UNSPEC and no address block.
  CHECK(header(ProxyProtocol::V2, ep("198.51.100.22", 1), ep("2001:db8::1", 80)) ==
        std::string(sig) + "\x21\x00\x00\x00"s);
}

TEST_CASE("RateLimitedWarning: one line per interval, suppressed ones counted",
          "[backends][relay]") {
  std::vector<std::string> lines;
  RateLimitedWarning w([&](std::string_view m) { lines.emplace_back(m); }, 150ms);
  w.warn("down");
  w.warn("down");
  w.warn("down");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "down");
  std::this_thread::sleep_for(200ms);
  w.warn("down");
  REQUIRE(lines.size() == 2);
  CHECK(lines[1] == "down (2 more since the last report)");
}

namespace {

// A relay session on loopback: `client` talks to the session, which relays to `spec.target`.
struct RelayLab {
  asio::io_context io;
  asio::io_context tio;  // the test's own blocking sockets
  tcp::acceptor front{tio, {asio::ip::address_v4::loopback(), 0}};
  tcp::socket client{tio};
  SessionConfig cfg;
  SessionStats stats;
  RelaySpec spec;
  std::vector<std::string> warnings;
  std::mutex mu;
  RateLimitedWarning warn{[this](std::string_view m) {
                            const std::lock_guard l(mu);
                            warnings.emplace_back(m);
                          },
                          10s};
  std::thread t;

  void start(RelaySpec s) {
    spec = s;
    cfg.drain_timeout = 300ms;
    client.connect(front.local_endpoint());
    tcp::socket served{asio::make_strand(io)};
    auto accepted = front.accept();
    served.assign(tcp::v4(), accepted.release());
    start_relay_session(std::move(served), spec, cfg, stats, &warn);
    t = std::thread([this] { io.run(); });
  }
  ~RelayLab() {
    if (t.joinable()) {
      t.join();  // the session ends when the client closes; io.run() then returns
    }
  }

  // Everything the client receives until the session closes.
  std::string read_all() {
    std::string got;
    boost::system::error_code ec;
    char buf[512];
    while (!ec) {
      const std::size_t n = client.read_some(asio::buffer(buf), ec);
      got.append(buf, n);
    }
    return got;
  }
};

constexpr std::string_view kReq =
    "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: example.test\r\n\r\n";

}  // namespace

TEST_CASE("relay session: the PROXY header precedes the client's bytes", "[backends][relay]") {
  for (const auto v : {ProxyProtocol::V1, ProxyProtocol::V2}) {
    CAPTURE(static_cast<int>(v));
    RelayLab lab;
    tcp::acceptor target{lab.tio, {asio::ip::address_v4::loopback(), 0}};
    lab.start({target.local_endpoint(), v});
    asio::write(lab.client, asio::buffer(kReq));
    auto up = target.accept();
    // What the session sees: the client's address and the address the client connected to.
    const std::string want =
        header(v, lab.client.local_endpoint(), lab.client.remote_endpoint()) + std::string(kReq);
    std::string got(want.size(), '\0');
    asio::read(up, asio::buffer(got));
    CHECK(got == want);
    asio::write(up, asio::buffer("ok"sv));
    std::string two(2, '\0');
    asio::read(lab.client, asio::buffer(two));
    CHECK(two == "ok");
    lab.client.shutdown(tcp::socket::shutdown_send);
    up.shutdown(tcp::socket::shutdown_send);
    CHECK(lab.read_all().empty());
    lab.client.close();
  }
}

TEST_CASE("relay session: a refusing target gets the client a 502 and one warning",
          "[backends][relay]") {
  RelayLab lab;
  tcp::socket reserved{lab.tio};  // bound, not listening: connects are refused
  reserved.open(tcp::v4());
  reserved.bind({asio::ip::address_v4::loopback(), 0});
  lab.start({reserved.local_endpoint(), ProxyProtocol::V2});
  asio::write(lab.client, asio::buffer(kReq));
  std::string got(200, '\0');
  got.resize(asio::read(lab.client, asio::buffer(got), asio::transfer_at_least(1)));
  // Content-Length is what follows the blank line.
  const std::string body = "acmegw: the validation host refused or is down\n";
  CHECK(got == "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  lab.client.shutdown(tcp::socket::shutdown_send);  // the session closes after our FIN
  CHECK(lab.read_all().empty());
  lab.client.close();
  lab.t.join();
  CHECK(lab.stats.relay_connect_failed == 1);
  CHECK(lab.stats.client_closed == 1);
  REQUIRE(lab.warnings.size() == 1);
  CHECK(lab.warnings[0].find("relay: validation host 127.0.0.1:") == 0);
}

TEST_CASE("relay session: a silent target gets the client a 504 after connect-timeout",
          "[backends][relay]") {
  RelayLab lab;
  // A listener whose accept queue is full drops further SYNs: the connect hangs. Backlog 0
  // holds one connection (the kernel's check is `queued > backlog`).
  tcp::acceptor full{lab.tio};
  full.open(tcp::v4());
  full.bind({asio::ip::address_v4::loopback(), 0});
  full.listen(0);
  tcp::socket filler{lab.tio};
  filler.connect(full.local_endpoint());
  const auto t0 = std::chrono::steady_clock::now();
  lab.start({full.local_endpoint(), ProxyProtocol::None, 200ms});
  asio::write(lab.client, asio::buffer(kReq));
  std::string got(200, '\0');
  got.resize(asio::read(lab.client, asio::buffer(got), asio::transfer_at_least(1)));
  const auto waited = std::chrono::steady_clock::now() - t0;
  const std::string body = "acmegw: the validation host did not answer in time\n";
  CHECK(got == "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  CHECK(waited >= 200ms);
  CHECK(waited < 1500ms);
  // No FIN from the client: the session aborts after drain_timeout (RST, never a FIN first).
  lab.client.non_blocking(false);
  boost::system::error_code ec;
  char c = 0;
  lab.client.read_some(asio::buffer(&c, 1), ec);
  CHECK(ec == asio::error::connection_reset);
  lab.t.join();
  CHECK(lab.stats.relay_connect_timeout == 1);
  CHECK(lab.stats.idle_aborted == 1);
}
