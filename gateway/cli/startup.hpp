#pragma once
// What `run` and `rules` share before they touch the system: loading the configuration and the
// startup checks, with one way of reporting failures on stderr and one set of exit statuses.
#include "gateway/config/config.hpp"
#include "gateway/config/options.hpp"
#include "gateway/sys/checks.hpp"

namespace acmegw::cli {

// Exit statuses beyond 0: a configuration error is the operator's to fix, not a system failure.
inline constexpr int kExitFailure = 1;  // the system is not ready, or an operation failed
inline constexpr int kExitConfig = 2;   // the configuration is invalid

// gateway::finish_config(); on a ConfigException prints every error ("acmegw: config: FILE:LINE:
// key: message") to stderr and throws CommandExit{kExitConfig}.
[[nodiscard]] gateway::Config load_config(const gateway::ConfigOptions& opts,
                                          gateway::ConfigUse use = gateway::ConfigUse::Run);

// sys::startup_checks(needs); prints each problem ("acmegw: ...") to stderr and throws
// CommandExit{kExitFailure} when there is any.
void require_ready(const sys::CheckNeeds& needs);

}  // namespace acmegw::cli
