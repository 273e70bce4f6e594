#include "backends/tokens_server.hpp"

#include <cerrno>
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
  Session(local::socket socket, TokenStore& store, std::chrono::milliseconds timeout)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), store_(store),
        timeout_(timeout) {}

  void start() {
    timer_.expires_after(timeout_);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {  // deadline passed: drop the slow client
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
    asio::async_read_until(socket_, in_, '\n',
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                             self->on_read(ec, n);
                           });
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
      reply_ = store_.execute(line, TokenStore::Clock::now());
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
  TokenStore& store_;
  std::chrono::milliseconds timeout_;
  std::string reply_;
};

}  // namespace

TokenServer::TokenServer(asio::io_context& io, TokenStore& store) noexcept
    : io_(io), store_(store), acceptor_(io) {}

TokenServer::~TokenServer() { stop(); }

std::optional<std::string> TokenServer::start(const TokenServerOptions& opt) {
  opt_ = opt;
  const char* path = opt_.path.c_str();
  const auto fail = [&](std::string_view what, int err) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return "token socket " + opt_.path + ": " + std::string{what} + ": " + std::strerror(err);
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
  (void)sys::unlink(opt_.path.c_str());
}

void TokenServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, local::socket s) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (!ec) {
      std::make_shared<Session>(std::move(s), store_, opt_.client_timeout)->start();
    }
    // Other accept errors (EMFILE, ECONNABORTED) concern one client; keep serving.
    accept();
  });
}

std::unique_ptr<TokensBackend> TokensBackend::create(const TokenServerOptions& opt,
                                                     std::string& error) {
  std::unique_ptr<TokensBackend> b{new TokensBackend};
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

std::optional<std::string> token_request(const std::string& path, std::string_view line,
                                         std::chrono::milliseconds timeout, std::string& error) {
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
  error = "token socket " + path + ": " +
          (result == asio::error::eof ? std::string{"closed without an answer"} : result.message());
  return std::nullopt;
}

}  // namespace acmegw::backends
