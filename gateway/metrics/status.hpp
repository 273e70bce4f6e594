#pragma once
// `acmegw status` (docs/operations.md "Status"): what the running gateway reports over its
// control socket, as JSON, and the text a human reads. Pure: the caller collects the inputs
// (counters, rule counters, pending tokens); no I/O, no clocks.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/config/config.hpp"

namespace acmegw::metrics {

struct ReloadResult {
  bool ok = false;
  std::chrono::seconds ago{0};
};

struct StatusInput {
  std::string_view version;
  long pid = 0;
  std::chrono::seconds uptime{0};
  const gateway::Config* config = nullptr;      // the configuration `run` started with
  const gateway::Config* routes = nullptr;      // backends and routes in force: the last reload's
                                                // configuration, or null for config's
  std::map<std::string, std::uint64_t> engine;  // nfq::Engine::counters()
  std::vector<std::pair<std::string, std::uint64_t>> takeover;  // RepairTakeover::counters()
  std::string rule_counters;                // rules::print_rules(cfg, true), or why it is missing
  std::vector<std::string> pending;         // pending_names() of each tokens socket
  std::optional<ReloadResult> last_reload;  // nullopt: no SIGHUP since start
};

// The status document (schema in docs/operations.md "Status"). Counter families
// ("production_by_cause.X", "takeover_failed_by_step.X") become objects of their nonzero members.
[[nodiscard]] nlohmann::json status_json(const StatusInput& in);

// The human-readable rendering of status_json()'s document; tolerates missing members (an
// older or newer gateway), so it never throws on a well-formed object.
[[nodiscard]] std::string render_status(const nlohmann::json& status);

// The names in a token socket's `list` answer (tokens.hpp): "TOKEN" for token lines,
// "alpn:IDENTIFIER" for tls-alpn-01 entries. The key authorizations and digests are dropped:
// a status reader never sees them.
[[nodiscard]] std::vector<std::string> pending_names(std::string_view list_response);

// "1d02h03m04s", "3m04s", "5s".
[[nodiscard]] std::string format_duration(std::chrono::seconds d);

}  // namespace acmegw::metrics
