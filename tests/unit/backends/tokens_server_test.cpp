// The token socket over a real unix socket: TokenServer on an io_context thread, the client
// side as `acmegw token` uses it.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <openssl/x509v3.h>

#include "backends/tokens_server.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using acmegw::backends::Answer;
using acmegw::backends::ChallengeRequest;
using acmegw::backends::token_request;
using acmegw::backends::TokensBackend;
using acmegw::backends::TokenServer;
using acmegw::backends::TokenServerOptions;
using acmegw::backends::TokenStore;
using acmegw::test::TempDir;

namespace {

const std::string kKeyauth = "tok-1.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

// A server on its own io_context thread, stopped and joined at scope exit.
struct Running {
  explicit Running(TokenServerOptions opt) {
    const auto err = server.start(opt);
    INFO(err.value_or(""));
    REQUIRE_FALSE(err);
    thread = std::thread{[this] { io.run(); }};
  }
  ~Running() {
    boost::asio::post(io, [this] { server.stop(); });
    work.reset();
    thread.join();
  }
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  TokenStore store;
  TokenServer server{io, store};
  std::thread thread;
};

// A raw client connection to the socket at `path` (a client that never sends its line).
int connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  path.copy(sa.sun_path, sizeof sa.sun_path - 1);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  return fd;
}

std::string request(const std::string& path, std::string_view line) {
  std::string error;
  const auto r = token_request(path, line, 2000ms, error);
  INFO(error);
  REQUIRE(r);
  return *r;
}

}  // namespace

TEST_CASE("TokenServer: add, list, remove over the socket", "[backends][tokens]") {
  TempDir d;
  TokenServerOptions opt;
  opt.path = (d.path() / "tokens.sock").string();
  Running r{opt};

  struct stat st {};
  REQUIRE(::lstat(opt.path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);

  CHECK(request(opt.path, "add tok-1 " + kKeyauth + " ttl=60") == "ok\n");
  CHECK(r.store.find("tok-1", "any", TokenStore::Clock::now()) == kKeyauth);
  CHECK(request(opt.path, "list") == "token tok-1 " + kKeyauth + " ttl=60\nok 1\n");
  CHECK(request(opt.path, "add tok-2 " + kKeyauth) ==
        "error invalid key authorization: want TOKEN.THUMBPRINT for this token\n");
  CHECK(request(opt.path, "remove tok-1") == "ok\n");
  CHECK(request(opt.path, "list") == "ok 0\n");
  CHECK(request(opt.path, std::string(2000, 'a')) == "error request too long\n");
}

TEST_CASE("TokenServer: mode, stale socket, refusal to clobber", "[backends][tokens]") {
  TempDir d;
  TokenServerOptions opt;
  opt.path = (d.path() / "tokens.sock").string();
  opt.mode = 0660;
  {
    Running r{opt};
    struct stat st {};
    REQUIRE(::lstat(opt.path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0660);
  }
  CHECK_FALSE(std::filesystem::exists(opt.path));  // stop() removes it

  // A socket file left by a killed process is replaced.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    opt.path.copy(sa.sun_path, sizeof sa.sun_path - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    ::close(fd);
  }
  {
    Running r{opt};
    CHECK(request(opt.path, "list") == "ok 0\n");
  }

  // Any other file is left alone.
  d.write("tokens.sock", "precious");
  boost::asio::io_context io;
  TokenStore store;
  TokenServer s{io, store};
  const auto err = s.start(opt);
  REQUIRE(err);
  CHECK(err->find("is not a socket") != std::string::npos);
}

TEST_CASE("TokenServer: a silent client is dropped at the deadline", "[backends][tokens]") {
  TempDir d;
  TokenServerOptions opt;
  opt.path = (d.path() / "tokens.sock").string();
  opt.client_timeout = 100ms;
  Running r{opt};

  const int fd = connect_unix(opt.path);
  char c = 0;
  const auto start = std::chrono::steady_clock::now();
  CHECK(::read(fd, &c, 1) == 0);  // EOF: the server closed us
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  ::close(fd);
  CHECK(request(opt.path, "list") == "ok 0\n");  // and still serves others
}

TEST_CASE("TokenServer: at max_clients the next client waits in the backlog, then is served",
          "[backends][tokens]") {
  TempDir d;
  TokenServerOptions opt;
  opt.path = (d.path() / "tokens.sock").string();
  opt.max_clients = 2;
  opt.client_timeout = 10s;  // the silent clients hold their places for the whole test
  Running r{opt};
  const int silent1 = connect_unix(opt.path);
  const int silent2 = connect_unix(opt.path);
  std::this_thread::sleep_for(300ms);  // both accepted: the server is at its cap

  const auto start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration waited{};
  std::string answer;
  std::thread third([&] {
    answer = request(opt.path, "list");
    waited = std::chrono::steady_clock::now() - start;
  });
  std::this_thread::sleep_for(500ms);
  ::close(silent1);  // a place frees: the waiting client is accepted and answered
  third.join();
  ::close(silent2);
  CHECK(answer == "ok 0\n");
  CHECK(waited >= 500ms);  // it was not served while the two held the server
}

TEST_CASE("token_request: no server is a clear error", "[backends][tokens]") {
  TempDir d;
  std::string error;
  CHECK_FALSE(token_request((d.path() / "none.sock").string(), "list", 500ms, error));
  CHECK(error.find("none.sock") != std::string::npos);
}

TEST_CASE("TokensBackend: a token added over the socket is answered", "[backends][tokens]") {
  TempDir d;
  TokenServerOptions opt;
  opt.path = (d.path() / "tokens.sock").string();
  std::string error;
  auto b = TokensBackend::create(opt, error);
  INFO(error);
  REQUIRE(b);
  CHECK(b->name() == "tokens");
  const ChallengeRequest req{"GET", "tok-1", "www.example.com",
                             "/.well-known/acme-challenge/tok-1"};
  CHECK(b->answer(req).kind == Answer::Kind::NotFound);

  CHECK(request(opt.path, "add tok-1 " + kKeyauth + " host=WWW.example.com") == "ok\n");
  const Answer hit = b->answer(req);
  CHECK(hit.kind == Answer::Kind::KeyAuthorization);
  CHECK(hit.body == kKeyauth);
  CHECK(b->answer(ChallengeRequest{"HEAD", "tok-1", "other.example.com", "/"}).kind ==
        Answer::Kind::NotFound);  // bound to its host

  CHECK(request(opt.path, "remove tok-1") == "ok\n");
  CHECK(b->answer(req).kind == Answer::Kind::NotFound);

  b.reset();
  CHECK_FALSE(std::filesystem::exists(opt.path));
  std::string err2;
  CHECK_FALSE(
      TokensBackend::create(TokenServerOptions{(d.path() / "no/such/dir.sock").string()}, err2));
  CHECK(err2.find("bind") != std::string::npos);
}

TEST_CASE("parse_token_socket_spec: path and socket file options", "[backends][tokens]") {
  using acmegw::backends::parse_token_socket_spec;
  std::string error;
  auto o = parse_token_socket_spec("/run/acmegw/tokens.sock", error);
  REQUIRE(o);
  CHECK(o->path == "/run/acmegw/tokens.sock");
  CHECK(o->mode == 0600);
  CHECK(o->owner == static_cast<uid_t>(-1));
  CHECK(o->group == static_cast<gid_t>(-1));

  o = parse_token_socket_spec("/s.sock,mode=0660,owner=root,group=0", error);
  REQUIRE(o);
  CHECK(o->path == "/s.sock");
  CHECK(o->mode == 0660);
  CHECK(o->owner == 0U);  // "root" looked up
  CHECK(o->group == 0U);  // numeric

  struct Case {
    const char* spec;
    const char* message_part;
  };
  const Case bad[] = {
      {"relative.sock", "absolute"},
      {"/s.sock,mode=0999", "octal"},
      {"/s.sock,mode=01777", "at most 0777"},
      {"/s.sock,mode=", "octal"},
      {"/s.sock,owner=no-such-user-acmegw", "no such user"},
      {"/s.sock,group=no-such-group-acmegw", "no such group"},
      {"/s.sock,color=red", "unknown option"},
      {"/s.sock,owner=", "unknown option"},
  };
  for (const auto& c : bad) {
    CAPTURE(c.spec);
    error.clear();
    CHECK_FALSE(parse_token_socket_spec(c.spec, error));
    CHECK(error.find(c.message_part) != std::string::npos);
  }
}

TEST_CASE("TokenServer: owner and group are applied to the socket file", "[backends][tokens]") {
  if (::geteuid() != 0) {
    SUCCEED("chown to another user needs root");
    return;
  }
  TempDir d;
  TokenServerOptions opt;
  opt.path = (d.path() / "tokens.sock").string();
  opt.owner = 65534;  // nobody
  opt.group = 65534;  // nogroup
  opt.mode = 0660;
  Running r{opt};
  struct stat st {};
  REQUIRE(::lstat(opt.path.c_str(), &st) == 0);
  CHECK(st.st_uid == 65534U);
  CHECK(st.st_gid == 65534U);
  CHECK((st.st_mode & 07777) == 0660);
}

TEST_CASE("TokensBackend: tls-alpn-01 certificates for registered identifiers only",
          "[backends][tokens]") {
  TempDir d;
  TokenServerOptions opt;
  opt.path = (d.path() / "tokens.sock").string();
  std::string error;
  auto b = TokensBackend::create(opt, error);
  INFO(error);
  REQUIRE(b);
  CHECK(b->certificate("www.example.com") == nullptr);
  CHECK(request(opt.path, "add-alpn www.example.com " + kKeyauth) == "ok\n");
  const auto cert = b->certificate("www.example.com");
  REQUIRE(cert);
  CHECK(X509_check_host(cert->cert.get(), "www.example.com", 0, 0, nullptr) == 1);
  CHECK(b->certificate("www.example.com") == cert);  // cached
  CHECK(b->certificate("other.example.com") == nullptr);
  CHECK(request(opt.path, "remove-alpn www.example.com") == "ok\n");
  CHECK(b->certificate("www.example.com") == nullptr);
  CHECK(b->responder().built() == 1);
}
