#pragma once
// The control socket of `acmegw run` (`--control-socket`, default /run/acmegw/control.sock):
// `acmegw status` sends "status" and gets one JSON document (metrics/status.hpp). Same
// server and access control as the tokens backend's socket (backends/tokens_server.hpp: mode
// 0600 and the process's owner unless the spec says otherwise); its own thread, so a status
// request never competes with challenge sessions.
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "backends/tokens_server.hpp"

namespace acmegw::cli {

class ControlServer {
 public:
  // Produces the status document's text; runs on the control thread.
  using Status = std::function<std::string()>;

  // Startup only: throws std::runtime_error when the socket cannot be served (spec already
  // validated by the configuration).
  ControlServer(const std::string& spec, Status status);
  ~ControlServer();  // stops the server, removes the socket file, joins the thread
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  boost::asio::io_context io_;
  backends::TokenServer server_;
  std::string path_;
  std::thread thread_;
};

// The answer to one control request line: the status document and "\n" for "status",
// "error unknown request\n" otherwise.
[[nodiscard]] std::string control_answer(const std::string& line,
                                         const ControlServer::Status& status);

}  // namespace acmegw::cli
