#pragma once
// The `tokens` backend (DESIGN.md §3) and the unix socket through which
// `acmegw token add/remove/list` (and so the ACME client hooks) feed its TokenStore. Protocol:
// tokens.hpp. Access control is the socket file's mode, owner and group; the socket is
// chmod/chown'ed between bind() and listen(), so no client can connect while it is more permissive.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "backends/alpn_cert.hpp"
#include "backends/backend.hpp"
#include "backends/tls_backend.hpp"
#include "backends/tokens.hpp"

namespace acmegw::backends {

inline constexpr std::string_view kDefaultTokenSocket = "/run/acmegw/tokens.sock";

struct TokenServerOptions {
  std::string path{kDefaultTokenSocket};
  ::mode_t mode = 0600;
  ::uid_t owner = static_cast<::uid_t>(-1);        // -1: the process's
  ::gid_t group = static_cast<::gid_t>(-1);        // -1: the process's
  std::chrono::milliseconds client_timeout{5000};  // a client must send its line within this
  // Connections served at once; more wait in the listen backlog until one ends. Bounds the
  // fds a local peer can take from the sessions (the socket is the owner's only, by default).
  unsigned max_clients = 256;
  std::string_view label = "token socket";  // names the socket in errors
};

// Parses the value of `--backend tokens=SPEC`: "PATH[,mode=OCTAL][,owner=USER][,group=GROUP]"
// (PATH absolute; mode 0600 by default, at most 0777; USER/GROUP a name or a number, looked up
// in the user database). Returns nullopt and sets `error` naming the bad part.
[[nodiscard]] std::optional<TokenServerOptions> parse_token_socket_spec(std::string_view spec,
                                                                        std::string& error);

// One request line per connection, one response, close. The token socket's protocol is
// TokenStore::execute(); the gateway's control socket (gateway/cli/control.hpp) passes its own
// handler.
class TokenServer {
 public:
  // Answers one request line (without "\n"); runs on `io`'s threads.
  using Handler = std::function<std::string(const std::string& line)>;

  // Sessions run on `io`'s threads and may outlive the server: `store` must outlive them all
  // (until io.run() has returned). TokensBackend below packages this correctly.
  TokenServer(boost::asio::io_context& io, TokenStore& store);
  // The same for `handler`: it is kept by the server and by every session.
  TokenServer(boost::asio::io_context& io, Handler handler);
  ~TokenServer();  // stop()
  TokenServer(const TokenServer&) = delete;
  TokenServer& operator=(const TokenServer&) = delete;

  // Creates the socket at opt.path (replacing a stale socket file there, refusing any other
  // kind of file), applies mode/owner/group, listens and starts accepting. Returns an error
  // message, or nullopt on success.
  [[nodiscard]] std::optional<std::string> start(const TokenServerOptions& opt);
  // Stops accepting and removes the socket file. Sessions in progress finish.
  void stop() noexcept;

 private:
  void accept();
  void accept_later();  // after kAcceptRetry, once below max_clients
  static constexpr std::chrono::milliseconds kAcceptRetry{100};

  std::shared_ptr<const Handler> handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  boost::asio::steady_timer retry_;  // accept back-off after a failed accept
  TokenServerOptions opt_;
  std::shared_ptr<std::atomic<unsigned>> open_ = std::make_shared<std::atomic<unsigned>>(0);
};

// The `tokens` backend as `acmegw run` uses it: owns the store and serves the socket on a
// thread of its own, so token traffic never competes with challenge sessions. It answers
// http-01 (AnsweringBackend) and, as the built-in responder, tls-alpn-01 (TlsAnsweringBackend)
// with the certificates of its AlpnResponder (one P-256 key per process).
class TokensBackend final : public AnsweringBackend, public TlsAnsweringBackend {
 public:
  // Starts the socket server and generates the responder's key; nullptr and `error` set when
  // it cannot (see TokenServer::start, AlpnResponder).
  [[nodiscard]] static std::unique_ptr<TokensBackend> create(const TokenServerOptions& opt,
                                                             std::string& error);
  ~TokensBackend() override;  // stops the server, removes the socket file, joins the thread
  TokensBackend(const TokensBackend&) = delete;
  TokensBackend& operator=(const TokensBackend&) = delete;

  // KeyAuthorization when the store has the token (unexpired, and for this Host if it was
  // added with one); NotFound otherwise.
  [[nodiscard]] Answer answer(const ChallengeRequest& req) noexcept override;
  // The acmeIdentifier certificate for `identifier` (the SNI, lower case) when the store holds
  // an unexpired add-alpn entry for it; null otherwise (a hash lookup) or if OpenSSL fails.
  [[nodiscard]] std::shared_ptr<const AlpnCertificate> certificate(
      std::string_view identifier) noexcept override;
  [[nodiscard]] std::string_view name() const noexcept override { return "tokens"; }
  [[nodiscard]] TokenStore& store() noexcept { return store_; }
  [[nodiscard]] const AlpnResponder& responder() const noexcept { return responder_; }

 private:
  TokensBackend() = default;
  boost::asio::io_context io_;
  TokenStore store_;
  AlpnResponder responder_;
  TokenServer server_{io_, store_};
  std::thread thread_;
};

// Client side: sends one request line (without "\n") to the server at `path` and returns its
// whole response, or nullopt with `error` set (cannot connect, timeout, no response) and, if
// given, `*err` the errno value (ENOENT, ECONNREFUSED: nobody serves `path`; ETIMEDOUT).
[[nodiscard]] std::optional<std::string> token_request(const std::string& path,
                                                       std::string_view line,
                                                       std::chrono::milliseconds timeout,
                                                       std::string& error, int* err = nullptr);

}  // namespace acmegw::backends
