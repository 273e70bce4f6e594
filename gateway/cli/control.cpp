#include "gateway/cli/control.hpp"

#include <stdexcept>

#include <boost/asio/post.hpp>

namespace acmegw::cli {

std::string control_answer(const std::string& line, const ControlServer::Status& status) {
  if (line == "status") {
    return status() + '\n';
  }
  return "error unknown request (want: status)\n";
}

ControlServer::ControlServer(const std::string& spec, Status status)
    : server_(io_, [status = std::move(status)](const std::string& line) {
        return control_answer(line, status);
      }) {
  std::string error;
  auto opt = backends::parse_token_socket_spec(spec, error);
  if (!opt) {
    throw std::runtime_error("control socket: " + error);
  }
  opt->label = "control socket";
  if (auto err = server_.start(*opt)) {
    throw std::runtime_error(*err);
  }
  path_ = opt->path;
  thread_ = std::thread{[this] { io_.run(); }};
}

ControlServer::~ControlServer() {
  boost::asio::post(io_, [this] { server_.stop(); });
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace acmegw::cli
