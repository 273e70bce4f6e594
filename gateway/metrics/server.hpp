#pragma once
// The Prometheus endpoint (`--metrics-listen ADDR:PORT`): a minimal HTTP/1.1 server on its own
// Boost.Asio thread, answering `GET /metrics` (and `GET /`) with a fresh rendering. One request
// per connection, bounded request head and a deadline per connection, so a stuck scraper costs
// one socket for at most kDeadline. Never touches the packet path: collect() runs on this thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "gateway/config/config.hpp"

namespace acmegw::metrics {

class Server {
 public:
  // Returns the exposition text (metrics::render()); called once per scrape on the server thread.
  using Collect = std::function<std::string()>;

  static constexpr std::size_t kMaxRequestHead = 8192;
  static constexpr std::chrono::seconds kDeadline{10};

  // Binds and listens on `addr` (port 0: any free port, see port()) and starts the thread.
  // Startup only: throws std::runtime_error naming the address when it cannot listen.
  Server(const gateway::ListenAddress& addr, Collect collect);
  // Stops the thread; open connections are closed.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port actually bound.
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

 private:
  void accept();

  Collect collect_;
  boost::asio::io_context io_{1};
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  boost::asio::steady_timer retry_{io_};  // after a failed accept (EMFILE): no busy loop
  std::uint16_t port_ = 0;
  std::jthread thread_;
};

// The HTTP response to the request head `head` (up to and including the blank line):
// 200 with `body()` for GET/HEAD of /metrics or /, 404 for another path, 405 otherwise.
// Always `Connection: close` with Content-Length. Pure apart from calling body().
[[nodiscard]] std::string respond(std::string_view head, const Server::Collect& body);

}  // namespace acmegw::metrics
