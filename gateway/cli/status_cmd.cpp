// `acmegw status [--json]`: asks the running gateway over its control socket (cli/control.hpp)
// and prints what it answers. Exit status, like `systemctl status`: 0 running, 3 not running
// (no socket, or nobody listening on it), 1 any other failure (no permission, bad answer).
#include <cerrno>
#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include "backends/tokens_server.hpp"
#include "gateway/cli/commands.hpp"
#include "gateway/cli/startup.hpp"
#include "gateway/metrics/status.hpp"

namespace acmegw::cli {
namespace {

inline constexpr int kExitNotRunning = 3;

struct StatusOptions {
  std::string socket{"/run/acmegw/control.sock"};
  bool json = false;
};

int status(const StatusOptions& o) {
  std::string error;
  int err = 0;
  const auto response =
      backends::token_request(o.socket, "status", std::chrono::seconds{10}, error, &err);
  if (!response) {
    if (err == ENOENT || err == ECONNREFUSED) {
      std::cout << "acmegw: not running (nothing serves " << o.socket << ")\n";
      return kExitNotRunning;
    }
    std::cerr << "acmegw status: " << error << '\n';
    return kExitFailure;
  }
  const auto doc = nlohmann::json::parse(*response, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    std::cerr << "acmegw status: unexpected answer: " << response->substr(0, 200) << '\n';
    return kExitFailure;
  }
  std::cout << (o.json ? doc.dump(2) + '\n' : metrics::render_status(doc));
  return 0;
}

}  // namespace

void add_status_command(CLI::App& app) {
  auto o = std::make_shared<StatusOptions>();
  CLI::App* sub = app.add_subcommand(
      "status",
      "Show the running gateway's state: version, uptime, endpoints, backends and routes, "
      "policy, rule counters, flows by cause, takeovers by step, open sessions, pending token "
      "names, last reload. Exit status 0 running, 3 not running.\n"
      "Example: acmegw status --json");
  sub->add_option("--socket", o->socket, "The gateway's control socket (run --control-socket)")
      ->envname("ACMEGW_CONTROL_SOCKET")
      ->option_text("PATH")
      ->capture_default_str();
  sub->add_flag("--json", o->json, "Print the JSON document the gateway answered");
  sub->callback([o] { throw CommandExit{status(*o)}; });
}

}  // namespace acmegw::cli
