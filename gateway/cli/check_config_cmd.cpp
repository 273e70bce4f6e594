// `acmegw check-config FILE`: validate a configuration file without touching the system.
#include <iostream>
#include <memory>
#include <vector>

#include "gateway/cli/commands.hpp"
#include "gateway/cli/startup.hpp"
#include "gateway/config/options.hpp"
#include "gateway/takeover/make_takeover.hpp"

namespace acmegw::cli {
namespace {

// Parses and validates, then builds every backend in dry-run mode (webroot directory exists,
// thumbprint well-formed, tokens socket spec parses; nothing is bound or started). Prints every
// error as "acmegw: config: FILE:LINE: key: message"; on success the effective configuration.
int check_config(const gateway::ConfigOptions& opts) {
  gateway::Config cfg;
  std::vector<gateway::ConfigError> errors;
  try {
    cfg = gateway::finish_config(opts);
    (void)takeover::make_routes(cfg, nullptr, true, errors);
    (void)takeover::make_tls_routes(cfg, nullptr, nullptr, nullptr, true, errors);
  } catch (const gateway::ConfigException& e) {
    errors = e.errors();
  }
  for (const auto& e : errors) {
    std::cerr << "acmegw: config: " << e.to_string() << '\n';
  }
  if (!errors.empty()) {
    std::cerr << "acmegw: " << opts.config_file << ": " << errors.size() << " error(s)\n";
    return kExitFailure;
  }
  std::cout << gateway::describe(cfg) << "\n" << opts.config_file << ": configuration OK\n";
  return 0;
}

}  // namespace

void add_check_config_command(CLI::App& app) {
  auto opts = std::make_shared<gateway::ConfigOptions>();
  CLI::App* sub = app.add_subcommand(
      "check-config",
      "Validate a configuration file (and the command line flags given with it) without "
      "touching the system: every error as FILE:LINE: key: message; exit 0 valid, 1 not.\n"
      "Example: acmegw check-config /etc/acmegw/acmegw.toml");
  gateway::add_config_options(*sub, *opts);
  sub->add_option("file", opts->config_file, "TOML configuration file")->required();
  sub->callback([opts] { throw CommandExit{check_config(*opts)}; });
}

}  // namespace acmegw::cli
