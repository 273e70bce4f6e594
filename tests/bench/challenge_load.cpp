// challenge_load: HTTP-01 challenge flows against ADDR:PORT as fast as N concurrent connections
// allow (closed loop), or at a fixed rate (open loop, for background load beside wrk). Each
// flow is one new TCP connection carrying one request shaped like Let's Encrypt's; its latency
// is client-side connect() to the response's last byte (head + Content-Length). The client
// closes first, as ACME servers do. One thread, non-blocking sockets, epoll: python could not
// open thousands of connections per second on the lab box (scripts/bench uses this tool).
//
// Besides that flood (--mode flood, the default) it holds connections open the way slow or
// hostile clients do (scripts/stress, issue 12), --concurrency of them at once for --duration:
//   slowloris  the request line, then one header byte every --trickle-ms; the head never ends
//   hold       the request line, then nothing (never reads, never sends)
//   noread     a complete request, then never reads the answer
// and reports how many were established and when the peer closed (FIN) or reset them, counted
// from when holding began: the proof of the gateway's header and idle timeouts. A request line
// alone is held undecided in the gateway's flow table (--hold-timeout-ms, then production);
// --after-answer first sends one whole keep-alive request and reads its answer, then does the
// above on the taken session: a second request that never ends (slowloris, hold) or nothing
// at all (noread: an idle keep-alive session).
//
// Usage: challenge_load --addr ADDR [--port 80] [--path PATH] [--expect BODY]
//                       [--concurrency 32] [--total 10000] [--rate FLOWS_PER_S --duration S]
//                       [--source ADDR]... [--random-token [--expect-thumbprint THUMB]]
//                       [--expect-status 200 | --any-status]
//                       [--mode flood|slowloris|hold|noread] [--trickle-ms 1000]
//                       [--keep-alive] [--after-answer]
// flood prints one JSON object: flows, ok, failed, seconds, flows_per_s, p50_us, p90_us, p99_us,
// max_us, then the failures by cause (connect_errors, resets, timeouts, bad_answer: wrong status
// or body, bad_body: the expected status with a wrong body, emfile) and
// statuses (count per HTTP status); exit 0 when every flow got the expected status (and BODY,
// if given), else 1. The hold modes print mode, connections, established, connect_failed,
// emfile, peer_closed, peer_reset, closed_after_p50_s, closed_after_max_s, still_open,
// answered, answer_failed (--after-answer), seconds; exit 0 when every connection was established,
// else 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kFlowTimeout{5};      // flood: a flow never answered
constexpr std::chrono::seconds kConnectTimeout{10};  // hold modes: handshake not done
constexpr std::chrono::milliseconds kScanEvery{50};  // how often timeouts are looked for
constexpr std::size_t kTokenLen = 43;                // a base64url SHA-256, as ACME's tokens
constexpr std::string_view kChallengePrefix = "/.well-known/acme-challenge/";
// Slowloris header bytes, cycled: never contains an empty line, so the head never ends.
constexpr std::string_view kTrickle = "X-a: b\r\n";

enum class Mode : std::uint8_t { Flood, Slowloris, Hold, NoRead };

struct Options {
  std::string addr;
  unsigned port = 80;
  std::string path = "/.well-known/acme-challenge/bench_token";
  std::string expect;      // expected body; empty = status only
  std::string thumbprint;  // with --random-token: the body must be TOKEN.THUMBPRINT
  std::vector<std::string> sources;
  bool random_token = false;
  bool keep_alive = false;    // requests without "Connection: close"
  bool after_answer = false;  // hold modes: one keep-alive request answered first
  int expect_status = 200;    // -1: any status
  Mode mode = Mode::Flood;
  unsigned trickle_ms = 1000;
  unsigned concurrency = 32;
  unsigned long total = 10000;  // closed loop: this many flows
  double rate = 0;              // > 0: open loop at this many flows/s for `duration`
  double duration = 10;
  bool duration_given = false;
};

// One flow in progress. Responses are small (a key authorization is <= 128 bytes), so one
// fixed buffer holds all of it; a larger one is a failure.
struct Flow {
  int fd = -1;
  Clock::time_point start;        // socket() time
  Clock::time_point established;  // handshake done
  Clock::time_point held_since;   // hold modes: holding began (closed_after counts from here)
  Clock::time_point next_byte;    // slowloris: when the next header byte is due
  bool connected = false;
  bool holding = false;        // hold modes: past the answer of --after-answer's first request
  std::uint32_t trickled = 0;  // slowloris: header bytes sent
  std::size_t got = 0;
  std::array<char, kTokenLen> token{};
  char buf[1024];
};

struct Totals {
  unsigned long started = 0, ok = 0, failed = 0;
  unsigned long connect_errors = 0, resets = 0, timeouts = 0, bad_answer = 0, bad_body = 0;
  unsigned long emfile = 0;
  unsigned long established = 0, peer_closed = 0, peer_reset = 0, answered = 0, answer_failed = 0;
  std::map<int, unsigned long> statuses;
  std::vector<double> lat_us;
  std::vector<double> closed_after_s;  // hold modes
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "challenge_load: %s\nusage: challenge_load --addr ADDR [--port 80] [--path PATH] "
               "[--expect BODY] [--concurrency 32] [--total 10000] [--rate R --duration S] "
               "[--source ADDR]... [--random-token [--expect-thumbprint THUMB]] "
               "[--expect-status 200 | --any-status] [--mode flood|slowloris|hold|noread] "
               "[--trickle-ms 1000] [--keep-alive] [--after-answer]\n",
               why);
  std::exit(2);
}

unsigned long number(const char* v, const char* what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long n = std::strtoul(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0') {
    usage(what);
  }
  return n;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--random-token") {
      o.random_token = true;
      continue;
    }
    if (a == "--any-status") {
      o.expect_status = -1;
      continue;
    }
    if (a == "--keep-alive") {
      o.keep_alive = true;
      continue;
    }
    if (a == "--after-answer") {
      o.after_answer = true;
      continue;
    }
    if (i + 1 >= argc) {
      usage("missing value");
    }
    const char* v = argv[++i];
    if (a == "--addr") {
      o.addr = v;
    } else if (a == "--port") {
      o.port = static_cast<unsigned>(number(v, "bad --port"));
    } else if (a == "--path") {
      o.path = v;
    } else if (a == "--expect") {
      o.expect = v;
    } else if (a == "--expect-thumbprint") {
      o.thumbprint = v;
    } else if (a == "--expect-status") {
      o.expect_status = static_cast<int>(number(v, "bad --expect-status"));
    } else if (a == "--source") {
      o.sources.emplace_back(v);
    } else if (a == "--mode") {
      const std::string_view m = v;
      o.mode = m == "flood"       ? Mode::Flood
               : m == "slowloris" ? Mode::Slowloris
               : m == "hold"      ? Mode::Hold
               : m == "noread"    ? Mode::NoRead
                                  : (usage("--mode: flood, slowloris, hold or noread"), Mode{});
    } else if (a == "--trickle-ms") {
      o.trickle_ms = static_cast<unsigned>(number(v, "bad --trickle-ms"));
    } else if (a == "--concurrency") {
      o.concurrency = static_cast<unsigned>(number(v, "bad --concurrency"));
    } else if (a == "--total") {
      o.total = number(v, "bad --total");
    } else if (a == "--rate") {
      o.rate = std::strtod(v, nullptr);
    } else if (a == "--duration") {
      o.duration = std::strtod(v, nullptr);
      o.duration_given = true;
    } else {
      usage("unknown option");
    }
  }
  if (o.addr.empty() || o.port == 0 || o.port > 65535 || o.concurrency == 0) {
    usage("need --addr, a port and a concurrency > 0");
  }
  if (!o.thumbprint.empty() && !o.random_token) {
    usage("--expect-thumbprint needs --random-token");
  }
  if (o.expect_status != -1 && (o.expect_status < 100 || o.expect_status > 999)) {
    usage("--expect-status: 100..999");
  }
  if (o.after_answer && o.mode == Mode::Flood) {
    usage("--after-answer is for --mode slowloris, hold and noread");
  }
  if (o.mode == Mode::Slowloris && o.trickle_ms == 0) {
    usage("--trickle-ms must be > 0");
  }
  return o;
}

// A numeric address and port as a sockaddr; false if `addr` is not an address literal.
bool to_sockaddr(const std::string& addr, unsigned port, sockaddr_storage& ss, socklen_t& len) {
  ss = sockaddr_storage{};
  if (auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      ::inet_pton(AF_INET, addr.c_str(), &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *s4;
    return true;
  }
  if (auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      ::inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *s6;
    return true;
  }
  return false;
}

// splitmix64: tokens need to differ, not to be secret.
std::uint64_t next_random(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void random_token(std::array<char, kTokenLen>& out, std::uint64_t& state) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::uint64_t bits = 0;
  int left = 0;
  for (char& c : out) {
    if (left < 6) {
      bits = next_random(state);
      left = 64;
    }
    c = kAlphabet[bits & 63];
    bits >>= 6;
    left -= 6;
  }
}

// The response is complete: head, then Content-Length bytes (or, without Content-Length, the
// peer's EOF). Returns 1 complete and as expected, -1 complete or impossible but wrong, 0 need
// more, -2 the expected status with the wrong body. `status` gets the response's status code
// once the head is complete.
int judge(const Flow& f, const Options& o, bool eof, int& status) {
  const std::string_view r(f.buf, f.got);
  const auto end = r.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return f.got == sizeof f.buf || eof ? -1 : 0;
  }
  status = 0;
  if (r.size() >= 12 && r.starts_with("HTTP/1.") && r[8] == ' ') {
    std::from_chars(r.data() + 9, r.data() + 12, status);
  }
  std::size_t len = 0;
  const auto cl = r.substr(0, end).find("\r\nContent-Length: ");
  if (cl != std::string_view::npos) {
    const char* p = r.data() + cl + 18;
    std::from_chars(p, r.data() + end, len);
  } else if (eof) {
    len = r.size() - end - 4;  // body until EOF
  } else {
    return f.got == sizeof f.buf ? -1 : 0;
  }
  if (r.size() < end + 4 + len) {
    return f.got == sizeof f.buf || eof ? -1 : 0;
  }
  if (o.expect_status == -1) {
    return status != 0 ? 1 : -1;
  }
  if (status != o.expect_status) {
    return -1;
  }
  const std::string_view body = r.substr(end + 4, len);
  if (!o.expect.empty() && body != o.expect) {
    return -2;
  }
  if (!o.thumbprint.empty() &&
      (body.size() != kTokenLen + 1 + o.thumbprint.size() ||
       body.substr(0, kTokenLen) != std::string_view(f.token.data(), kTokenLen) ||
       body[kTokenLen] != '.' || body.substr(kTokenLen + 1) != o.thumbprint)) {
    return -2;
  }
  return 1;
}

double pct(std::vector<double>& xs, double p) {
  if (xs.empty()) {
    return 0;
  }
  const auto k = static_cast<std::size_t>(p / 100 * static_cast<double>(xs.size() - 1) + 0.5);
  std::nth_element(xs.begin(), xs.begin() + static_cast<long>(k), xs.end());
  return xs[k];
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// As many descriptors as the hard limit allows: 10,000 held connections need them.
void raise_nofile() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      std::perror("challenge_load: setrlimit(RLIMIT_NOFILE)");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  raise_nofile();
  sockaddr_storage ss{};
  socklen_t ss_len = 0;
  if (!to_sockaddr(o.addr, o.port, ss, ss_len)) {
    usage("--addr must be a numeric address");
  }
  struct Source {
    sockaddr_storage sa;
    socklen_t len;
  };
  std::vector<Source> sources;
  for (const auto& s : o.sources) {
    Source src{};
    if (!to_sockaddr(s, 0, src.sa, src.len) || src.sa.ss_family != ss.ss_family) {
      usage("--source must be a numeric address of --addr's family");
    }
    sources.push_back(src);
  }
  const bool hold_mode = o.mode != Mode::Flood;
  std::string path = o.path;
  std::size_t token_at = std::string::npos;  // offset of the random token in `req`
  if (o.random_token) {
    path = std::string(kChallengePrefix) + std::string(kTokenLen, 'A');
  }
  const std::string line = "GET " + path + " HTTP/1.1\r\n";
  if (o.random_token) {
    token_at = 4 + kChallengePrefix.size();
  }
  std::string req = line +
                    "Host: bench.example\r\nUser-Agent: Mozilla/5.0 "
                    "(compatible; Let's Encrypt validation server; "
                    "+https://www.letsencrypt.org)\r\nAccept: */*\r\n"
                    "Accept-Encoding: gzip\r\n" +
                    (o.keep_alive || o.after_answer ? "" : "Connection: close\r\n") + "\r\n";
  // slowloris and hold send only the request line (--after-answer: after a whole request and
  // its answer); noread and flood the whole request.
  const std::size_t line_len =
      o.mode == Mode::Slowloris || o.mode == Mode::Hold ? line.size() : req.size();
  std::uint64_t rng = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()) ^
                      (static_cast<std::uint64_t>(::getpid()) << 32);

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    std::perror("epoll_create1");
    return 2;
  }
  // Hold modes: --concurrency connections, each started once (--rate paces the opening).
  const unsigned long flows_wanted = hold_mode ? o.concurrency : o.total;
  std::vector<Flow> flows(o.concurrency);
  std::vector<unsigned> idle;  // free slots
  idle.reserve(o.concurrency);
  for (unsigned i = 0; i < o.concurrency; ++i) {
    idle.push_back(o.concurrency - 1 - i);
  }
  Totals t;
  t.lat_us.reserve(!hold_mode && o.rate > 0 ? static_cast<std::size_t>(o.rate * o.duration) + 16
                                            : (hold_mode ? 0 : o.total));
  t.closed_after_s.reserve(hold_mode ? o.concurrency : 0);
  const auto t0 = Clock::now();
  const auto until =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  const bool open_loop = !hold_mode && o.rate > 0;
  std::size_t next_source = 0;
  bool out_of_fds = false;  // hold modes stop opening at EMFILE/ENFILE
  unsigned connecting = 0;  // hold modes: handshakes in flight (bounded, so SYNs are not lost)
  constexpr unsigned kMaxConnecting = 512;

  auto release = [&](unsigned i) {
    Flow& f = flows[i];
    if (f.fd >= 0) {
      ::close(f.fd);  // our FIN first, as an ACME server's client does
    }
    if (!f.connected && f.fd >= 0 && hold_mode) {
      --connecting;
    }
    f.fd = -1;
    idle.push_back(i);
  };
  auto finish = [&](unsigned i, bool ok, unsigned long* cause = nullptr) {
    if (ok) {
      ++t.ok;
      t.lat_us.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - flows[i].start).count());
    } else {
      ++t.failed;
      if (cause != nullptr) {
        ++*cause;
      }
    }
    release(i);
  };
  // Hold modes: the peer ended an established connection (FIN or RST).
  auto peer_ended = [&](unsigned i, bool reset) {
    ++(reset ? t.peer_reset : t.peer_closed);
    t.closed_after_s.push_back(seconds_between(flows[i].held_since, Clock::now()));
    release(i);
  };
  auto start_flow = [&]() {
    const unsigned i = idle.back();
    idle.pop_back();
    Flow& f = flows[i];
    f.fd = -1;
    f.connected = false;
    f.holding = false;
    f.trickled = 0;
    f.got = 0;
    f.start = Clock::now();
    ++t.started;
    f.fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f.fd < 0) {
      const bool fds = errno == EMFILE || errno == ENFILE;
      if (fds) {
        ++t.emfile;
        out_of_fds = hold_mode;
      }
      ++t.failed;
      if (!fds) {
        ++t.connect_errors;
      }
      idle.push_back(i);
      return;
    }
    if (hold_mode) {
      ++connecting;  // until established or released
    }
    if (o.random_token) {
      random_token(f.token, rng);
    }
    const int one = 1;
    ::setsockopt(f.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!sources.empty()) {
      const Source& src = sources[next_source++ % sources.size()];
      // The port is chosen at connect() from the whole 4-tuple: without this, bind() would
      // give each source at most one connection per local port, to any destination.
      ::setsockopt(f.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      if (::bind(f.fd, reinterpret_cast<const sockaddr*>(&src.sa), src.len) < 0) {
        std::perror("challenge_load: bind --source");
        return finish(i, false, &t.connect_errors);
      }
    }
    if (::connect(f.fd, reinterpret_cast<const sockaddr*>(&ss), ss_len) < 0 &&
        errno != EINPROGRESS) {
      return finish(i, false, &t.connect_errors);
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u32 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, f.fd, &ev) < 0) {
      return finish(i, false, &t.connect_errors);
    }
  };
  // Sends the first `len` bytes of flow i's request (the whole request, or its request line).
  auto send_request = [&](unsigned i, std::size_t len) -> bool {
    Flow& f = flows[i];
    if (token_at != std::string::npos) {
      std::memcpy(req.data() + token_at, f.token.data(), kTokenLen);
    }
    // Far below the send buffer of a fresh connection: one write.
    const ssize_t n = ::send(f.fd, req.data(), len, MSG_NOSIGNAL);
    return n == static_cast<ssize_t>(len);
  };
  // Hold modes: from now on flow i only holds (slowloris: trickles); a FIN shows as RDHUP, a
  // RST as ERR/HUP, with any data left unread.
  auto start_holding = [&](unsigned i) -> bool {
    Flow& f = flows[i];
    if (!send_request(i, line_len)) {
      return false;
    }
    f.holding = true;
    f.held_since = Clock::now();
    f.next_byte = f.held_since + std::chrono::milliseconds(o.trickle_ms);
    epoll_event ev{};
    ev.data.u32 = i;
    ev.events = EPOLLRDHUP;
    ::epoll_ctl(ep, EPOLL_CTL_MOD, f.fd, &ev);
    return true;
  };

  std::vector<epoll_event> events(std::min<unsigned>(o.concurrency, 4096));
  auto last_scan = t0;
  for (;;) {
    const auto now = Clock::now();
    if (hold_mode) {
      if (now >= until) {
        break;
      }
      const unsigned long due =
          o.rate > 0 ? static_cast<unsigned long>(seconds_between(t0, now) * o.rate) : flows_wanted;
      while (!out_of_fds && t.started < std::min(due, flows_wanted) && !idle.empty() &&
             connecting < kMaxConnecting) {
        start_flow();
      }
    } else if (open_loop) {
      const auto due =
          static_cast<unsigned long>(seconds_between(t0, std::min(now, until)) * o.rate);
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
    // A flow the gateway never answers (a handshake never done) must not stall the run; the
    // slowloris bytes due (to within kScanEvery).
    if (now - last_scan >= kScanEvery) {
      last_scan = now;
      for (unsigned i = 0; i < flows.size(); ++i) {
        Flow& f = flows[i];
        if (f.fd < 0) {
          continue;
        }
        if (!hold_mode) {
          if (now - f.start > kFlowTimeout) {
            finish(i, false, &t.timeouts);
          }
          continue;
        }
        if (!f.holding) {
          if (now - f.start > kConnectTimeout) {
            if (f.connected) {  // --after-answer: no answer
              ++t.answer_failed;
              release(i);
            } else {
              finish(i, false, &t.connect_errors);
            }
          }
          continue;
        }
        if (o.mode == Mode::Slowloris && now >= f.next_byte) {
          const char c = kTrickle[f.trickled % kTrickle.size()];
          const ssize_t n = ::send(f.fd, &c, 1, MSG_NOSIGNAL);
          if (n == 1) {
            ++f.trickled;
          } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            peer_ended(i, errno == ECONNRESET || errno == EPIPE);
            continue;
          }
          f.next_byte = now + std::chrono::milliseconds(o.trickle_ms);
        }
      }
    }
    const int timeout_ms = open_loop ? 1 : hold_mode ? 20 : 100;
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) {
      std::perror("epoll_wait");
      return 2;
    }
    for (int k = 0; k < n; ++k) {
      const epoll_event& e = events[static_cast<std::size_t>(k)];
      const unsigned i = e.data.u32;
      Flow& f = flows[i];
      if (f.fd < 0) {
        continue;
      }
      if (!f.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(f.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (e.events & (EPOLLERR | EPOLLHUP)) != 0) {
          finish(i, false, err == ECONNRESET ? &t.resets : &t.connect_errors);
          continue;
        }
        if ((e.events & EPOLLOUT) == 0) {
          continue;
        }
        f.connected = true;
        f.established = Clock::now();
        if (hold_mode) {
          --connecting;
          ++t.established;
          if (!o.after_answer) {
            if (!start_holding(i)) {
              finish(i, false, &t.resets);
            }
            continue;
          }
        }
        if (!send_request(i, req.size())) {
          finish(i, false, &t.resets);
          continue;
        }
        epoll_event ev{};
        ev.data.u32 = i;
        ev.events = EPOLLIN;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, f.fd, &ev);
        continue;
      }
      if (hold_mode && f.holding) {
        if ((e.events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(f.fd, SOL_SOCKET, SO_ERROR, &err, &len);
          peer_ended(i, err != 0 || (e.events & EPOLLERR) != 0);
        }
        continue;
      }
      const ssize_t r = ::recv(f.fd, f.buf + f.got, sizeof f.buf - f.got, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        continue;
      }
      if (r < 0) {
        if (hold_mode) {
          ++t.answer_failed;
          release(i);
        } else {
          finish(i, false, errno == ECONNRESET ? &t.resets : &t.connect_errors);
        }
        continue;
      }
      f.got += static_cast<std::size_t>(r);
      int status = 0;
      if (const int j = judge(f, o, r == 0, status); j != 0) {
        if (hold_mode) {  // --after-answer: the first request's answer
          if (j > 0 && r > 0 && start_holding(i)) {
            ++t.answered;
          } else {
            ++t.answer_failed;
            release(i);
          }
          continue;
        }
        if (status != 0) {
          ++t.statuses[status];
        }
        finish(i, j > 0, j == -2 ? &t.bad_body : status != 0 ? &t.bad_answer : &t.resets);
        if (j == -2) {
          ++t.bad_answer;  // bad_answer counts every wrong answer, bad_body those of them
        }
      } else if (r == 0) {  // unreachable: judge() decides at EOF
        finish(i, false, &t.resets);
      }
    }
  }
  const double secs = seconds_between(t0, Clock::now());
  if (hold_mode) {
    unsigned long still_open = 0;
    for (unsigned i = 0; i < flows.size(); ++i) {
      if (flows[i].fd >= 0) {
        still_open += flows[i].holding ? 1 : 0;
        if (!flows[i].connected) {
          ++t.connect_errors;  // still in its handshake at the end
        }
        release(i);
      }
    }
    static constexpr const char* kModeName[] = {"flood", "slowloris", "hold", "noread"};
    std::printf(
        "{\"mode\": \"%s\", \"connections\": %lu, \"established\": %lu, \"connect_failed\": %lu, "
        "\"emfile\": %lu, \"peer_closed\": %lu, \"peer_reset\": %lu, \"closed_after_p50_s\": "
        "%.3f, \"closed_after_max_s\": %.3f, \"still_open\": %lu, \"answered\": %lu, "
        "\"answer_failed\": %lu, \"seconds\": %.3f}\n",
        kModeName[static_cast<int>(o.mode)], flows_wanted, t.established, t.connect_errors,
        t.emfile, t.peer_closed, t.peer_reset, pct(t.closed_after_s, 50),
        pct(t.closed_after_s, 100), still_open, t.answered, t.answer_failed, secs);
    ::close(ep);
    return t.established == flows_wanted ? 0 : 1;
  }
  const unsigned long flows_done = t.ok + t.failed;
  std::string statuses;
  for (const auto& [code, count] : t.statuses) {
    statuses +=
        (statuses.empty() ? "\"" : ", \"") + std::to_string(code) + "\": " + std::to_string(count);
  }
  std::printf(
      "{\"flows\": %lu, \"ok\": %lu, \"failed\": %lu, \"seconds\": %.3f, \"flows_per_s\": %.1f, "
      "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, "
      "\"connect_errors\": %lu, \"resets\": %lu, \"timeouts\": %lu, \"bad_answer\": %lu, "
      "\"bad_body\": %lu, \"emfile\": %lu, \"statuses\": {%s}}\n",
      flows_done, t.ok, t.failed, secs, static_cast<double>(flows_done) / secs, pct(t.lat_us, 50),
      pct(t.lat_us, 90), pct(t.lat_us, 99), pct(t.lat_us, 100), t.connect_errors, t.resets,
      t.timeouts, t.bad_answer, t.bad_body, t.emfile, statuses.c_str());
  ::close(ep);
  return t.failed == 0 ? 0 : 1;
}
