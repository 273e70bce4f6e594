// alpn_load: tls-alpn-01 validations against ADDR:443 as fast as N concurrent clients allow
// (closed loop). Each flow is what a CA does: a new TCP connection, a full TLS handshake (no
// resumption) offering ALPN `acme-tls/1` with SNI = NAME, a check of the certificate it got,
// close_notify and close (the client closes first). Latency: connect() to the finished
// handshake. With --alpn other the same loop measures plain TLS handshakes (the production
// baseline: nginx answering `http/1.1`).
//
// The check: with --keyauth K the certificate must carry the acmeIdentifier extension with
// SHA-256(K) (RFC 8737 §3) and name NAME; a flow without it counts as failed.
//
// Usage: alpn_load --addr ADDR --sni NAME [--port 443] [--keyauth K] [--alpn acme-tls/1]
//                  [--concurrency 8] [--total 5000]
// Prints one JSON object: flows, ok, failed, seconds, flows_per_s, p50_us, p90_us, p99_us,
// max_us; exit 0 when every flow passed, else 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string addr;
  unsigned port = 443;
  std::string sni;
  std::string keyauth;  // empty: no certificate check beyond the handshake
  std::string alpn = "acme-tls/1";
  unsigned concurrency = 8;
  unsigned long total = 5000;
};

// DER of the acmeIdentifier extension's value for `keyauth`: OCTET STRING(SHA-256(keyauth)).
std::string expected_extension(const std::string& keyauth) {
  unsigned char d[32];
  unsigned int n = 0;
  EVP_Digest(keyauth.data(), keyauth.size(), d, &n, EVP_sha256(), nullptr);
  return std::string("\x04\x20", 2) + std::string(reinterpret_cast<char*>(d), 32);
}

bool certificate_ok(SSL* ssl, const Options& o, const std::string& want) {
  X509* x = SSL_get0_peer_certificate(ssl);
  if (x == nullptr) {
    return false;
  }
  if (o.keyauth.empty()) {
    return true;
  }
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  const int at = X509_get_ext_by_OBJ(x, oid, -1);
  ASN1_OBJECT_free(oid);
  if (at < 0) {
    return false;
  }
  const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(X509_get_ext(x, at));
  const std::string got(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                        static_cast<std::size_t>(ASN1_STRING_length(v)));
  return got == want && X509_check_host(x, o.sni.c_str(), o.sni.size(), 0, nullptr) == 1;
}

// One flow; its latency in µs, or a negative value when it failed.
double one_flow(SSL_CTX* ctx, const Options& o, const sockaddr_storage& sa, socklen_t len,
                const std::string& want) {
  const int fd = ::socket(sa.ss_family, SOCK_STREAM, 0);
  if (fd < 0) {
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const auto t0 = Clock::now();
  double us = -1;
  SSL* ssl = nullptr;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), len) == 0 &&
      (ssl = SSL_new(ctx)) != nullptr) {
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, o.sni.c_str());
    if (SSL_connect(ssl) == 1) {
      const auto t1 = Clock::now();
      const unsigned char* p = nullptr;
      unsigned int n = 0;
      SSL_get0_alpn_selected(ssl, &p, &n);
      const bool alpn_ok = std::string(reinterpret_cast<const char*>(p), p ? n : 0) == o.alpn;
      if (alpn_ok && certificate_ok(ssl, o, want)) {
        us = std::chrono::duration<double, std::micro>(t1 - t0).count();
      }
      SSL_shutdown(ssl);  // close_notify, then close: the client closes first, as a CA does
    }
    SSL_free(ssl);
  }
  ::close(fd);
  return us;
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) {
    return 0;
  }
  const auto k = static_cast<std::size_t>(p / 100 * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

int usage() {
  std::fprintf(stderr,
               "usage: alpn_load --addr ADDR --sni NAME [--port 443] [--keyauth K] "
               "[--alpn acme-tls/1] [--concurrency 8] [--total 5000]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const std::string v = argv[i + 1];
    if (k == "--addr") {
      o.addr = v;
    } else if (k == "--port") {
      o.port = static_cast<unsigned>(std::stoul(v));
    } else if (k == "--sni") {
      o.sni = v;
    } else if (k == "--keyauth") {
      o.keyauth = v;
    } else if (k == "--alpn") {
      o.alpn = v;
    } else if (k == "--concurrency") {
      o.concurrency = static_cast<unsigned>(std::stoul(v));
    } else if (k == "--total") {
      o.total = std::stoul(v);
    } else {
      return usage();
    }
  }
  if (o.addr.empty() || o.sni.empty() || argc % 2 == 0 || o.concurrency == 0) {
    return usage();
  }
  sockaddr_storage sa{};
  socklen_t len = 0;
  if (auto* s4 = reinterpret_cast<sockaddr_in*>(&sa);
      ::inet_pton(AF_INET, o.addr.c_str(), &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<std::uint16_t>(o.port));
    len = sizeof *s4;
  } else if (auto* s6 = reinterpret_cast<sockaddr_in6*>(&sa);
             ::inet_pton(AF_INET6, o.addr.c_str(), &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<std::uint16_t>(o.port));
    len = sizeof *s6;
  } else {
    return usage();
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every handshake a full one
  std::string wire(1, static_cast<char>(o.alpn.size()));
  wire += o.alpn;
  SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned>(wire.size()));
  const std::string want = o.keyauth.empty() ? "" : expected_extension(o.keyauth);

  std::atomic<unsigned long> next{0};
  std::mutex mu;
  std::vector<double> lat;
  unsigned long failed = 0;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < o.concurrency; ++t) {
    threads.emplace_back([&] {
      std::vector<double> mine;
      unsigned long bad = 0;
      while (next.fetch_add(1) < o.total) {
        const double us = one_flow(ctx, o, sa, len, want);
        if (us < 0) {
          ++bad;
        } else {
          mine.push_back(us);
        }
      }
      const std::lock_guard lock{mu};
      lat.insert(lat.end(), mine.begin(), mine.end());
      failed += bad;
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  SSL_CTX_free(ctx);
  const std::size_t ok = lat.size();
  std::printf(
      "{\"flows\": %lu, \"ok\": %zu, \"failed\": %lu, \"seconds\": %.3f, \"flows_per_s\": %.1f, "
      "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n",
      o.total, ok, failed, seconds, static_cast<double>(ok) / seconds, pct(lat, 50), pct(lat, 90),
      pct(lat, 99), lat.empty() ? 0.0 : *std::max_element(lat.begin(), lat.end()));
  return failed == 0 ? 0 : 1;
}
