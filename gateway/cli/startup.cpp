#include "gateway/cli/startup.hpp"

#include <iostream>

#include "gateway/cli/commands.hpp"

namespace acmegw::cli {

gateway::Config load_config(const gateway::ConfigOptions& opts, gateway::ConfigUse use) {
  try {
    return gateway::finish_config(opts, use);
  } catch (const gateway::ConfigException& e) {
    for (const auto& err : e.errors()) {
      std::cerr << "acmegw: config: " << err.to_string() << '\n';
    }
    throw CommandExit{kExitConfig};
  }
}

void require_ready(const sys::CheckNeeds& needs) {
  const auto problems = sys::startup_checks(needs);
  for (const auto& p : problems) {
    std::cerr << "acmegw: " << p << '\n';
  }
  if (!problems.empty()) {
    throw CommandExit{kExitFailure};
  }
}

}  // namespace acmegw::cli
