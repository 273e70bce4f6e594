#include "backends/tokens_server.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <new>

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "backends/sys_file.hpp"

namespace acmegw::backends {
namespace {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

// One client connection: read one line (bounded, with a deadline), answer, close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(local::socket socket, std::shared_ptr<const TokenServer::Handler> handler,
          std::chrono::milliseconds timeout, std::shared_ptr<std::atomic<unsigned>> open)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        handler_(std::move(handler)),
        timeout_(timeout),
        open_(std::move(open)) {
    open_->fetch_add(1, std::memory_order_relaxed);
  }
  ~Session() { open_->fetch_sub(1, std::memory_order_relaxed); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() {
    timer_.expires_after(timeout_);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {  // deadline passed: drop the slow client
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
    asio::async_read_until(socket_, in_, '\n',
                           [self = shared_from_this()](boost::system::error_code ec,
                                                       std::size_t n) { self->on_read(ec, n); });
  }

 private:
  void on_read(boost::system::error_code ec, std::size_t n) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (ec == asio::error::not_found) {  // streambuf limit: longer than kMaxRequestLine
      reply_ = "error request too long\n";
    } else if (ec) {  // eof before "\n", reset, or closed by the deadline: nothing to answer
      return finish();
    } else {
      const auto data = in_.data();
      const std::string line{asio::buffers_begin(data), asio::buffers_begin(data) + (n - 1)};
      reply_ = (*handler_)(line);
    }
    asio::async_write(socket_, asio::buffer(reply_),
                      [self = shared_from_this()](boost::system::error_code ec2, std::size_t) {
                        if (ec2) {
                          return self->finish();
                        }
                        // Closing with unread input would reset the connection and the client
                        // would lose the reply (AF_UNIX): signal EOF, then drain until the
                        // client closes (bounded by the deadline).
                        boost::system::error_code ignored;
                        self->socket_.shutdown(local::socket::shutdown_send, ignored);
                        self->drain();
                      });
  }

  void drain() {
    in_.consume(in_.size());
    socket_.async_read_some(in_.prepare(kMaxRequestLine),
                            [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                              if (ec) {
                                return self->finish();
                              }
                              self->drain();
                            });
  }

  void finish() {
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.shutdown(local::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  local::socket socket_;
  asio::steady_timer timer_;
  asio::streambuf in_{kMaxRequestLine};
  std::shared_ptr<const TokenServer::Handler> handler_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<std::atomic<unsigned>> open_;  // the server's count; sessions may outlive it
  std::string reply_;
};

}  // namespace

std::optional<TokenServerOptions> parse_token_socket_spec(std::string_view spec,
                                                          std::string& error) {
  TokenServerOptions opt;
  const auto comma = spec.find(',');
  opt.path = std::string{spec.substr(0, comma)};
  if (!opt.path.starts_with('/')) {
    error = "tokens: the socket path must be absolute: " + opt.path;
    return std::nullopt;
  }
  std::string_view rest = comma == std::string_view::npos ? "" : spec.substr(comma + 1);
  while (!rest.empty()) {
    const auto next = rest.find(',');
    const auto item = rest.substr(0, next);
    rest = next == std::string_view::npos ? "" : rest.substr(next + 1);
    const auto eq = item.find('=');
    const auto key = item.substr(0, eq);
    const std::string value{eq == std::string_view::npos ? "" : item.substr(eq + 1)};
    unsigned long number = 0;
    const auto [end, ec] =
        std::from_chars(value.data(), value.data() + value.size(), number, key == "mode" ? 8 : 10);
    const bool numeric = !value.empty() && ec == std::errc{} && end == value.data() + value.size();
    if (key == "mode") {
      if (!numeric || number > 0777) {
        error = "tokens: mode must be octal, at most 0777: " + value;
        return std::nullopt;
      }
      opt.mode = static_cast<::mode_t>(number);
    } else if (key == "owner" && !value.empty()) {
      const auto uid = numeric ? sys::SysResult<::uid_t>{static_cast<::uid_t>(number), 0}
                               : sys::user_id(value.c_str());
      if (!uid.ok()) {
        error = "tokens: no such user: " + value;
        return std::nullopt;
      }
      opt.owner = uid.value;
    } else if (key == "group" && !value.empty()) {
      const auto gid = numeric ? sys::SysResult<::gid_t>{static_cast<::gid_t>(number), 0}
                               : sys::group_id(value.c_str());
      if (!gid.ok()) {
        error = "tokens: no such group: " + value;
        return std::nullopt;
      }
      opt.group = gid.value;
    } else {
      error = "tokens: unknown option '" + std::string{item} +
              "' (want PATH[,mode=OCTAL][,owner=USER][,group=GROUP])";
      return std::nullopt;
    }
  }
  return opt;
}

TokenServer::TokenServer(asio::io_context& io, TokenStore& store)
    : TokenServer(io, [&store](const std::string& line) {
        return store.execute(line, TokenStore::Clock::now());
      }) {}

TokenServer::TokenServer(asio::io_context& io, Handler handler)
    : handler_(std::make_shared<const Handler>(std::move(handler))), acceptor_(io), retry_(io) {}

TokenServer::~TokenServer() {
  stop();
}

std::optional<std::string> TokenServer::start(const TokenServerOptions& opt) {
  opt_ = opt;
  const char* path = opt_.path.c_str();
  const auto fail = [&](std::string_view what, int err) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return std::string{opt_.label} + " " + opt_.path + ": " + std::string{what} + ": " +
           std::strerror(err);
  };
  // A socket file left by a previous run is replaced; anything else at the path is an error.
  if (const auto st = sys::lstat(path); st.ok()) {
    if (!S_ISSOCK(st.value.st_mode)) {
      return fail("exists and is not a socket", EEXIST);
    }
    if (const auto r = sys::unlink(path); !r.ok()) {
      return fail("cannot remove the stale socket", r.err);
    }
  }
  boost::system::error_code ec;
  acceptor_.open(local{}, ec);
  if (!ec) {
    acceptor_.bind(local::endpoint{opt_.path}, ec);
  }
  if (ec) {
    return fail("bind", ec.value());
  }
  if (const auto r = sys::chmod(path, opt_.mode); !r.ok()) {
    return fail("chmod", r.err);
  }
  if (opt_.owner != static_cast<::uid_t>(-1) || opt_.group != static_cast<::gid_t>(-1)) {
    if (const auto r = sys::lchown(path, opt_.owner, opt_.group); !r.ok()) {
      return fail("chown", r.err);
    }
  }
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail("listen", ec.value());
  }
  accept();
  return std::nullopt;
}

void TokenServer::stop() noexcept {
  if (!acceptor_.is_open()) {
    return;
  }
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  retry_.cancel();
  (void)sys::unlink(opt_.path.c_str());
}

void TokenServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, local::socket s) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (!ec) {
      std::make_shared<Session>(std::move(s), handler_, opt_.client_timeout, open_)->start();
    }
    // At max_clients the next clients wait in the listen backlog (their own timeout bounds
    // that) instead of costing an fd each; EMFILE/ENFILE/ENOBUFS would fail again at once.
    if (ec || open_->load(std::memory_order_relaxed) >= opt_.max_clients) {
      return accept_later();
    }
    accept();
  });
}

void TokenServer::accept_later() {
  retry_.expires_after(kAcceptRetry);
  retry_.async_wait([this](boost::system::error_code wec) {
    if (wec || !acceptor_.is_open()) {
      return;
    }
    if (open_->load(std::memory_order_relaxed) >= opt_.max_clients) {
      return accept_later();
    }
    accept();
  });
}

std::unique_ptr<TokensBackend> TokensBackend::create(const TokenServerOptions& opt,
                                                     std::string& error) {
  std::unique_ptr<TokensBackend> b;
  try {
    b.reset(new TokensBackend);  // AlpnResponder's key generation may throw (startup only)
  } catch (const std::exception& e) {
    error = std::string{"tokens: cannot create the tls-alpn-01 responder: "} + e.what();
    return nullptr;
  }
  if (auto err = b->server_.start(opt)) {
    error = std::move(*err);
    return nullptr;
  }
  // Runs until the acceptor is closed in the destructor and the last session ends.
  b->thread_ = std::thread{[io = &b->io_] { io->run(); }};
  return b;
}

TokensBackend::~TokensBackend() {
  asio::post(io_, [this] { server_.stop(); });
  if (thread_.joinable()) {
    thread_.join();
  }
}

Answer TokensBackend::answer(const ChallengeRequest& req) noexcept {
  try {
    if (auto keyauth = store_.find(req.token, req.host, TokenStore::Clock::now())) {
      return Answer{Answer::Kind::KeyAuthorization, std::move(*keyauth), {}};
    }
    return Answer{Answer::Kind::NotFound, {}, {}};
  } catch (const std::bad_alloc&) {
    return Answer{Answer::Kind::Unavailable, {}, {}};
  }
}

std::shared_ptr<const AlpnCertificate> TokensBackend::certificate(
    std::string_view identifier) noexcept {
  try {
    const auto found = store_.find_alpn(identifier, TokenStore::Clock::now());
    if (!found) {
      return nullptr;
    }
    return responder_.certificate(found->id, found->digest);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

std::optional<std::string> token_request(const std::string& path, std::string_view line,
                                         std::chrono::milliseconds timeout, std::string& error,
                                         int* err) {
  asio::io_context io;
  local::socket s{io};
  const std::string request = std::string{line} + '\n';
  std::string response;
  boost::system::error_code result = asio::error::timed_out;
  s.async_connect(local::endpoint{path}, [&](boost::system::error_code ec) {
    if (ec) {
      result = ec;
      return;
    }
    asio::async_write(s, asio::buffer(request), [&](boost::system::error_code wec, std::size_t) {
      if (wec) {
        result = wec;
        return;
      }
      asio::async_read(s, asio::dynamic_buffer(response),
                       [&](boost::system::error_code rec, std::size_t) { result = rec; });
    });
  });
  io.run_for(timeout);
  if (result == asio::error::eof && !response.empty()) {  // the server closes after answering
    return response;
  }
  if (err != nullptr) {
    *err = result == asio::error::eof ? ECONNRESET : result.value();
  }
  error = "socket " + path + ": " +
          (result == asio::error::eof ? std::string{"closed without an answer"} : result.message());
  return std::nullopt;
}

}  // namespace acmegw::backends
