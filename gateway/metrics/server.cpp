#include "gateway/metrics/server.hpp"

#include <cstring>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "gateway/metrics/prometheus.hpp"

namespace acmegw::metrics {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

asio::ip::address to_asio(const packet::Address& a) {
  if (a.family == packet::Family::V4) {
    asio::ip::address_v4::bytes_type b{};
    std::memcpy(b.data(), a.bytes.data(), b.size());
    return asio::ip::address_v4(b);
  }
  asio::ip::address_v6::bytes_type b{};
  std::memcpy(b.data(), a.bytes.data(), b.size());
  return asio::ip::address_v6(b);
}

std::string response(std::string_view status, std::string_view type, std::string_view body,
                     bool head_only) {
  std::string out = fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", status,
      type, body.size());
  if (!head_only) {
    out += body;
  }
  return out;
}

// One scrape: read the head (bounded), answer, close. The deadline covers the whole exchange.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket sock, const Server::Collect& collect)
      : sock_(std::move(sock)),
        collect_(collect),
        in_(Server::kMaxRequestHead),
        deadline_(sock_.get_executor()) {}

  void start() {
    deadline_.expires_after(Server::kDeadline);
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) {
        boost::system::error_code ignored;
        self->sock_.close(ignored);  // the pending read or write completes with an error
      }
    });
    asio::async_read_until(sock_, in_, "\r\n\r\n",
                           [self = shared_from_this()](boost::system::error_code ec,
                                                       std::size_t n) { self->on_head(ec, n); });
  }

 private:
  void on_head(boost::system::error_code ec, std::size_t n) {
    if (ec) {  // eof, too long (not_found from a full streambuf), deadline: nothing to answer
      deadline_.cancel();
      return;
    }
    const std::string_view head{static_cast<const char*>(in_.data().data()), n};
    out_ = respond(head, collect_);
    asio::async_write(sock_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code, std::size_t) {
                        boost::system::error_code ignored;
                        self->sock_.shutdown(tcp::socket::shutdown_both, ignored);
                        self->deadline_.cancel();
                      });
  }

  tcp::socket sock_;
  const Server::Collect& collect_;
  asio::streambuf in_;
  std::string out_;
  asio::steady_timer deadline_;
};

}  // namespace

std::string respond(std::string_view head, const Server::Collect& body) {
  const auto line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return response("400 Bad Request", "text/plain", "bad request\n", false);
  }
  const std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));  // Prometheus may add query parameters
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return response("405 Method Not Allowed", "text/plain", "only GET\n", false);
  }
  if (target != "/metrics" && target != "/") {
    return response("404 Not Found", "text/plain", "try /metrics\n", head_only);
  }
  return response("200 OK", kContentType, body(), head_only);
}

Server::Server(const gateway::ListenAddress& addr, Collect collect) : collect_(std::move(collect)) {
  const tcp::endpoint ep{to_asio(addr.addr), addr.port};
  boost::system::error_code ec;
  acceptor_.open(ep.protocol(), ec);
  if (!ec) {
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor_.bind(ep, ec);
  }
  if (!ec) {
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    throw std::runtime_error("metrics: cannot listen on " + gateway::to_string(addr) + ": " +
                             ec.message());
  }
  port_ = acceptor_.local_endpoint().port();
  accept();
  thread_ = std::jthread([this] { io_.run(); });
}

Server::~Server() {
  io_.stop();
  thread_ = {};  // joins before the acceptor and io_context go away
}

void Server::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (!ec) {
      std::make_shared<Connection>(std::move(sock), collect_)->start();
      accept();
      return;
    }
    // A failed accept (e.g. EMFILE) must not end the endpoint, nor spin.
    retry_.expires_after(std::chrono::milliseconds(100));
    retry_.async_wait([this](boost::system::error_code tec) {
      if (!tec) {
        accept();
      }
    });
  });
}

}  // namespace acmegw::metrics
