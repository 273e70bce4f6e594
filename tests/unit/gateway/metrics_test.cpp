// The Prometheus endpoint (gateway/metrics/): exposition text byte for byte, the mapping of the
// engine's counter names onto metric families, the HTTP answers, and one real scrape over
// loopback.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gateway/metrics/prometheus.hpp"
#include "gateway/metrics/server.hpp"

namespace {

using acmegw::metrics::Family;
using acmegw::metrics::Type;

}  // namespace

TEST_CASE("metrics: render writes the 0.0.4 text format", "[metrics]") {
  std::vector<Family> f(3);
  f[0].name = "acmegw_packets_total";
  f[0].help = "queued packets\nreceived \\ all";  // newline and backslash are escaped
  f[0].samples = {{{}, 12}};
  f[1].name = "acmegw_production_by_cause_total";
  f[1].help = "by cause";
  f[1].samples = {{{{"cause", "gap"}}, 3}, {{{"cause", "a\"b\\c\nd"}}, 0}};
  f[2].name = "acmegw_answer_seconds";
  f[2].help = "answer time";
  f[2].type = Type::Histogram;
  f[2].histogram = {{0.001, 0.5}, {2, 5}, 0.75, 6};
  CHECK(acmegw::metrics::render(f) ==
        "# HELP acmegw_packets_total queued packets\\nreceived \\\\ all\n"
        "# TYPE acmegw_packets_total counter\n"
        "acmegw_packets_total 12\n"
        "# HELP acmegw_production_by_cause_total by cause\n"
        "# TYPE acmegw_production_by_cause_total counter\n"
        "acmegw_production_by_cause_total{cause=\"gap\"} 3\n"
        "acmegw_production_by_cause_total{cause=\"a\\\"b\\\\c\\nd\"} 0\n"
        "# HELP acmegw_answer_seconds answer time\n"
        "# TYPE acmegw_answer_seconds histogram\n"
        "acmegw_answer_seconds_bucket{le=\"0.001\"} 2\n"
        "acmegw_answer_seconds_bucket{le=\"0.5\"} 5\n"
        "acmegw_answer_seconds_bucket{le=\"+Inf\"} 6\n"
        "acmegw_answer_seconds_sum 0.75\n"
        "acmegw_answer_seconds_count 6\n");
}

TEST_CASE("metrics: engine counter names map onto families", "[metrics]") {
  const std::map<std::string, std::uint64_t> counters = {
      {"packets", 7},
      {"recently_decided", 2},
      {"production_by_cause.gap", 1},
      {"production_by_cause.timeout", 4},
      {"production_by_reason.not_http", 5},
      {"takeover_failed_by_step.bind", 6},
      {"kernel.queue_dropped", 8},
      {"kernel.user_dropped", 9},
      {"kernel.waiting", 10},
  };
  std::vector<Family> f;
  acmegw::metrics::add_engine(f, counters);
  const std::vector<std::pair<std::string, std::uint64_t>> session = {
      {"session_active", 3}, {"session_started", 11}, {"tls_session_active", 2}};
  acmegw::metrics::add_takeover(f, session);
  const std::string text = acmegw::metrics::render(f);
  CAPTURE(text);
  // Help comes from the one counter list (nfq/stats.hpp).
  CHECK(text.find("# HELP acmegw_packets_total queued packets received\n"
                  "# TYPE acmegw_packets_total counter\nacmegw_packets_total 7\n") !=
        std::string::npos);
  CHECK(text.find("\nacmegw_recently_decided_total 2\n") != std::string::npos);
  // One family, two labelled series, one HELP/TYPE.
  CHECK(text.find("# TYPE acmegw_production_by_cause_total counter\n"
                  "acmegw_production_by_cause_total{cause=\"gap\"} 1\n"
                  "acmegw_production_by_cause_total{cause=\"timeout\"} 4\n") != std::string::npos);
  CHECK(text.find("acmegw_production_by_reason_total{reason=\"not_http\"} 5\n") !=
        std::string::npos);
  CHECK(text.find("acmegw_takeover_failed_by_step_total{step=\"bind\"} 6\n") != std::string::npos);
  CHECK(text.find("acmegw_kernel_queue_dropped_total 8\n") != std::string::npos);
  CHECK(text.find("acmegw_kernel_user_dropped_total 9\n") != std::string::npos);
  CHECK(text.find("# TYPE acmegw_kernel_queue_waiting gauge\nacmegw_kernel_queue_waiting 10\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE acmegw_session_active gauge\nacmegw_session_active 3\n") !=
        std::string::npos);
  CHECK(
      text.find("# TYPE acmegw_session_started_total counter\nacmegw_session_started_total 11\n") !=
      std::string::npos);
  CHECK(text.find("# TYPE acmegw_tls_session_active gauge\nacmegw_tls_session_active 2\n") !=
        std::string::npos);
}

TEST_CASE("metrics: HTTP answers", "[metrics]") {
  const acmegw::metrics::Server::Collect body = [] { return std::string{"x 1\n"}; };
  using acmegw::metrics::respond;
  CHECK(respond("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", body) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Content-Length: 4\r\nConnection: close\r\n\r\nx 1\n");
  CHECK(respond("GET /metrics?name[]=x HTTP/1.1\r\n\r\n", body).starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(respond("HEAD /metrics HTTP/1.1\r\n\r\n", body).ends_with("Connection: close\r\n\r\n"));
  CHECK(respond("GET /other HTTP/1.1\r\n\r\n", body).starts_with("HTTP/1.1 404 Not Found\r\n"));
  CHECK(respond("POST /metrics HTTP/1.1\r\n\r\n", body).starts_with("HTTP/1.1 405 "));
  CHECK(respond("garbage\r\n\r\n", body).starts_with("HTTP/1.1 400 "));
}

TEST_CASE("metrics: a scrape over loopback", "[metrics]") {
  acmegw::gateway::ListenAddress addr;
  addr.addr.bytes = {127, 0, 0, 1};
  addr.port = 0;  // any free port
  int scrapes = 0;
  const acmegw::metrics::Server server{
      addr, [&] { return "acmegw_up " + std::to_string(++scrapes) + "\n"; }};
  REQUIRE(server.port() != 0);

  const auto fetch = [&](std::string_view request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(server.port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
    std::string got;
    char buf[512];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
      got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return got;
  };
  CHECK(fetch("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ends_with("\r\n\r\nacmegw_up 1\n"));
  CHECK(fetch("GET /metrics HTTP/1.0\r\n\r\n").ends_with("\r\n\r\nacmegw_up 2\n"));
  CHECK(fetch(std::string(acmegw::metrics::Server::kMaxRequestHead + 10, 'A')).empty());  // bounded
}

TEST_CASE("metrics: a latency histogram in seconds, cumulative", "[metrics]") {
  using namespace std::chrono_literals;
  acmegw::backends::LatencyHistogram h;
  h.observe(80us);   // <= 100 us
  h.observe(100us);  // <= 100 us (bounds are inclusive)
  h.observe(900us);  // <= 1 ms
  h.observe(3s);     // above every bound
  h.observe(-1ms);   // clock oddity: counted as 0
  std::vector<Family> f;
  acmegw::metrics::add_latency(f, "acmegw_x_seconds", "x", h);
  const std::string text = acmegw::metrics::render(f);
  CAPTURE(text);
  CHECK(text.find("acmegw_x_seconds_bucket{le=\"0.0001\"} 3\n"
                  "acmegw_x_seconds_bucket{le=\"0.00025\"} 3\n"
                  "acmegw_x_seconds_bucket{le=\"0.0005\"} 3\n"
                  "acmegw_x_seconds_bucket{le=\"0.001\"} 4\n") != std::string::npos);
  CHECK(text.find("acmegw_x_seconds_bucket{le=\"1\"} 4\n"
                  "acmegw_x_seconds_bucket{le=\"+Inf\"} 5\n"
                  "acmegw_x_seconds_sum 3.00108\n"
                  "acmegw_x_seconds_count 5\n") != std::string::npos);
}
