// challenge_load: HTTP-01 challenge flows against ADDR:PORT as fast as N concurrent connections
// allow (closed loop), or at a fixed rate (open loop, for background load beside wrk). Each
// flow is one new TCP connection carrying one request shaped like Let's Encrypt's; its latency
// is client-side connect() to the response's last byte (head + Content-Length). The client
// closes first, as ACME servers do. One thread, non-blocking sockets, epoll: python could not
// open thousands of connections per second on the lab box (scripts/bench uses this tool).
//
// Usage: challenge_load --addr ADDR [--port 80] [--path PATH] [--expect BODY]
//                       [--concurrency 32] [--total 10000] [--rate FLOWS_PER_S --duration S]
// Prints one JSON object: flows, ok, failed, seconds, flows_per_s, p50_us, p90_us, p99_us,
// max_us; exit 0 when every flow got status 200 (and BODY, if given), else 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kFlowTimeout{5};

struct Options {
  std::string addr;
  unsigned port = 80;
  std::string path = "/.well-known/acme-challenge/bench_token";
  std::string expect;  // expected body; empty = status only
  unsigned concurrency = 32;
  unsigned long total = 10000;  // closed loop: this many flows
  double rate = 0;              // > 0: open loop at this many flows/s for `duration`
  double duration = 10;
};

// One flow in progress. Responses are small (a key authorization is <= 128 bytes), so one
// fixed buffer holds all of it; a larger one is a failure.
struct Flow {
  int fd = -1;
  Clock::time_point start;
  bool connected = false;
  std::size_t got = 0;
  char buf[1024];
};

struct Totals {
  unsigned long started = 0, ok = 0, failed = 0;
  std::vector<double> lat_us;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "challenge_load: %s\nusage: challenge_load --addr ADDR [--port 80] [--path PATH] "
               "[--expect BODY] [--concurrency 32] [--total 10000] [--rate R --duration S]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) {
      usage("missing value");
    }
    const char* v = argv[++i];
    if (a == "--addr") {
      o.addr = v;
    } else if (a == "--port") {
      o.port = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
    } else if (a == "--path") {
      o.path = v;
    } else if (a == "--expect") {
      o.expect = v;
    } else if (a == "--concurrency") {
      o.concurrency = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
    } else if (a == "--total") {
      o.total = std::strtoul(v, nullptr, 10);
    } else if (a == "--rate") {
      o.rate = std::strtod(v, nullptr);
    } else if (a == "--duration") {
      o.duration = std::strtod(v, nullptr);
    } else {
      usage("unknown option");
    }
  }
  if (o.addr.empty() || o.port == 0 || o.port > 65535 || o.concurrency == 0) {
    usage("need --addr, a port and a concurrency > 0");
  }
  return o;
}

// The response is complete: head, then Content-Length bytes. Returns 1 complete and as
// expected, -1 complete or impossible but wrong, 0 need more.
int judge(const Flow& f, const Options& o) {
  const std::string_view r(f.buf, f.got);
  const auto end = r.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return f.got == sizeof f.buf ? -1 : 0;
  }
  std::size_t len = 0;
  const auto cl = r.substr(0, end).find("\r\nContent-Length: ");
  if (cl != std::string_view::npos) {
    const char* p = r.data() + cl + 18;
    std::from_chars(p, r.data() + end, len);
  }
  if (r.size() < end + 4 + len) {
    return f.got == sizeof f.buf ? -1 : 0;
  }
  const bool ok =
      r.starts_with("HTTP/1.1 200 ") && (o.expect.empty() || r.substr(end + 4, len) == o.expect);
  return ok ? 1 : -1;
}

double pct(std::vector<double>& xs, double p) {
  if (xs.empty()) {
    return 0;
  }
  const auto k = static_cast<std::size_t>(p / 100 * static_cast<double>(xs.size() - 1) + 0.5);
  std::nth_element(xs.begin(), xs.begin() + static_cast<long>(k), xs.end());
  return xs[k];
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  sockaddr_storage ss{};
  socklen_t ss_len = 0;
  if (auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      ::inet_pton(AF_INET, o.addr.c_str(), &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<std::uint16_t>(o.port));
    ss_len = sizeof *s4;
  } else if (auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
             ::inet_pton(AF_INET6, o.addr.c_str(), &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<std::uint16_t>(o.port));
    ss_len = sizeof *s6;
  } else {
    usage("--addr must be a numeric address");
  }
  const std::string req = "GET " + o.path +
                          " HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: Mozilla/5.0 "
                          "(compatible; Let's Encrypt validation server; "
                          "+https://www.letsencrypt.org)\r\nAccept: */*\r\n"
                          "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n";

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    std::perror("epoll_create1");
    return 2;
  }
  std::vector<Flow> flows(o.concurrency);
  std::vector<unsigned> idle;  // free slots
  for (unsigned i = 0; i < o.concurrency; ++i) {
    idle.push_back(o.concurrency - 1 - i);
  }
  Totals t;
  t.lat_us.reserve(o.rate > 0 ? static_cast<std::size_t>(o.rate * o.duration) + 16 : o.total);
  const auto t0 = Clock::now();
  const auto until =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  const bool open_loop = o.rate > 0;

  auto finish = [&](unsigned i, bool ok) {
    Flow& f = flows[i];
    ::close(f.fd);  // our FIN first, as an ACME server's client does
    f.fd = -1;
    if (ok) {
      ++t.ok;
      t.lat_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - f.start).count());
    } else {
      ++t.failed;
    }
    idle.push_back(i);
  };
  auto start_flow = [&]() {
    const unsigned i = idle.back();
    idle.pop_back();
    Flow& f = flows[i];
    f = Flow{};
    f.start = Clock::now();
    ++t.started;
    f.fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f.fd < 0) {
      ++t.failed;
      idle.push_back(i);
      return;
    }
    const int one = 1;
    ::setsockopt(f.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(f.fd, reinterpret_cast<const sockaddr*>(&ss), ss_len) < 0 &&
        errno != EINPROGRESS) {
      return finish(i, false);
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u32 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, f.fd, &ev);
  };

  std::vector<epoll_event> events(o.concurrency);
  for (;;) {
    const auto now = Clock::now();
    if (open_loop) {
      const auto due = static_cast<unsigned long>(
          std::chrono::duration<double>(std::min(now, until) - t0).count() * o.rate);
      while (t.started < due && !idle.empty()) {
        start_flow();
      }
      if (now >= until && idle.size() == flows.size()) {
        break;
      }
    } else {
      while (t.started < o.total && !idle.empty()) {
        start_flow();
      }
      if (t.started >= o.total && idle.size() == flows.size()) {
        break;
      }
    }
    // A flow the gateway never answers must not stall the run.
    for (unsigned i = 0; i < flows.size(); ++i) {
      if (flows[i].fd >= 0 && now - flows[i].start > kFlowTimeout) {
        finish(i, false);
      }
    }
    const int n =
        ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), open_loop ? 1 : 100);
    for (int k = 0; k < n; ++k) {
      const unsigned i = events[static_cast<std::size_t>(k)].data.u32;
      Flow& f = flows[i];
      if (f.fd < 0) {
        continue;
      }
      if (!f.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(f.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          finish(i, false);
          continue;
        }
        f.connected = true;
        // The request is far below the send buffer: one write.
        if (::send(f.fd, req.data(), req.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(req.size())) {
          finish(i, false);
          continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, f.fd, &ev);
        continue;
      }
      const ssize_t r = ::recv(f.fd, f.buf + f.got, sizeof f.buf - f.got, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        continue;
      }
      if (r <= 0) {
        finish(i, false);
        continue;
      }
      f.got += static_cast<std::size_t>(r);
      if (const int j = judge(f, o); j != 0) {
        finish(i, j > 0);
      }
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const unsigned long flows_done = t.ok + t.failed;
  std::printf(
      "{\"flows\": %lu, \"ok\": %lu, \"failed\": %lu, \"seconds\": %.3f, \"flows_per_s\": %.1f, "
      "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n",
      flows_done, t.ok, t.failed, secs, static_cast<double>(flows_done) / secs, pct(t.lat_us, 50),
      pct(t.lat_us, 90), pct(t.lat_us, 99), pct(t.lat_us, 100));
  ::close(ep);
  return t.failed == 0 ? 0 : 1;
}
