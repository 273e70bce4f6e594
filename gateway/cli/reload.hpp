#pragma once
// SIGHUP in `acmegw run` (issue 6): re-read the configuration and swap what can change while
// flows are in progress (routes, backends, challenge source allow/deny).
#include <memory>

#include "gateway/config/config.hpp"
#include "gateway/config/options.hpp"
#include "gateway/takeover/repair_takeover.hpp"

namespace acmegw::cli {

// Re-reads the configuration `opts` names and validates it. If valid, makes its routes and
// backends (backends with an unchanged KIND=VALUE are kept, not rebuilt) and source lists
// current for later requests and takeovers of `tko`; connections in progress are untouched.
// Otherwise keeps everything and logs every error. Settings other than routes/backends/
// challenge sources that differ from `running` are logged as needing a restart. Never throws;
// returns the new configuration when its routes are in effect (what `acmegw status` then
// reports as backends and routes), nullptr otherwise.
std::shared_ptr<const gateway::Config> reload(const gateway::ConfigOptions& opts,
                                              const gateway::Config& running,
                                              takeover::RepairTakeover* tko) noexcept;

}  // namespace acmegw::cli
