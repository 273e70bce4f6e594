#include "gateway/cli/reload.hpp"

#include <exception>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "backends/routing.hpp"
#include "gateway/takeover/make_takeover.hpp"

namespace acmegw::cli {
namespace {

// Names of the settings that only a restart applies (queues, rules, marks, ...), when changed.
std::string restart_only_changes(const gateway::Config& a, const gateway::Config& b) {
  std::string out;
  const auto check = [&](bool same, const char* name) {
    if (!same) {
      out += (out.empty() ? "" : ", ") + std::string{name};
    }
  };
  check(a.protect == b.protect, "protect");
  check(a.queue.first == b.queue.first && a.queue.count == b.queue.count &&
            a.queue.max_len == b.queue.max_len,
        "queue");
  check(a.marks.mask == b.marks.mask && a.marks.pass == b.marks.pass &&
            a.marks.taken == b.marks.taken && a.marks.hold == b.marks.hold &&
            a.marks.rst == b.marks.rst && a.marks.drop == b.marks.drop,
        "marks");
  check(a.routing.tos == b.routing.tos && a.routing.table == b.routing.table &&
            a.routing.priority == b.routing.priority,
        "routing");
  check(a.chain_prefix == b.chain_prefix, "chain_prefix");
  check(a.prefilter == b.prefilter, "prefilter");
  check(a.policy == b.policy, "policy");
  check(a.hold.max_flows == b.hold.max_flows &&
            a.hold.max_segments_per_flow == b.hold.max_segments_per_flow &&
            a.hold.timeout_ms == b.hold.timeout_ms &&
            a.hold.max_total_bytes == b.hold.max_total_bytes,
        "hold");
  check(a.limits.max_http_head == b.limits.max_http_head &&
            a.limits.max_client_hello == b.limits.max_client_hello,
        "limits");
  check(a.log_level == b.log_level, "log_level");
  check(a.metrics_listen == b.metrics_listen, "metrics_listen");
  check(a.control_socket == b.control_socket, "control_socket");
  return out;
}

}  // namespace

std::shared_ptr<const gateway::Config> reload(const gateway::ConfigOptions& opts,
                                              const gateway::Config& running,
                                              takeover::RepairTakeover* tko) noexcept {
  const auto log = spdlog::default_logger();
  try {
    gateway::Config next;
    try {
      next = gateway::finish_config(opts);
    } catch (const gateway::ConfigException& e) {
      for (const auto& err : e.errors()) {
        log->error("reload: config: {}", err.to_string());
      }
      log->error("reload: {} error(s); the running configuration stays", e.errors().size());
      return nullptr;
    }
    auto* routing =
        tko != nullptr ? dynamic_cast<backends::RoutingBackend*>(tko->answering()) : nullptr;
    auto* tls_routing = tko != nullptr ? tko->tls_routing() : nullptr;
    if (routing == nullptr && tls_routing == nullptr) {
      log->error(
          "reload: started without routes (no backend, or a relay-only backend): routes "
          "and backends need a restart; the running configuration stays");
      return nullptr;
    }
    std::vector<gateway::ConfigError> errors;
    std::shared_ptr<const backends::RouteSet> routes;
    if (routing != nullptr) {
      routes = takeover::make_routes(next, routing->current().get(), false, errors);
    }
    std::shared_ptr<const backends::TlsRouteSet> tls;
    if (tls_routing != nullptr && errors.empty()) {
      tls = takeover::make_tls_routes(next, routes.get(),
                                      routing != nullptr ? routing->current().get() : nullptr,
                                      tls_routing->current().get(), false, errors);
      if (tls == nullptr) {
        tls = std::make_shared<const backends::TlsRouteSet>();  // no TLS route any more
      }
    }
    if (!errors.empty() || (routing != nullptr && routes == nullptr)) {
      for (const auto& err : errors) {
        log->error("reload: backend: {}", err.to_string());
      }
      log->error("reload: {} error(s); the running configuration stays", errors.size());
      return nullptr;
    }
    const std::size_t n = routes ? routes->targets.size() : 0;
    const std::size_t n_tls = tls ? tls->targets.size() : 0;
    if (routing != nullptr) {
      routing->replace(std::move(routes));
    }
    if (tls_routing != nullptr) {
      tls_routing->replace(std::move(tls));
    } else if (next.default_tls_backend() || !next.tls_routes.empty()) {
      log->warn("reload: TLS routes were added; they need a restart (not applied)");
    }
    tko->set_sources(next.challenge);
    log->info(
        "reload: {} route(s), {} TLS route(s) and the challenge source lists are in "
        "effect; connections in progress keep their answers",
        n, n_tls);
    if (const auto changed = restart_only_changes(running, next); !changed.empty()) {
      log->warn("reload: changed settings that need a restart (not applied): {}", changed);
    }
    return std::make_shared<const gateway::Config>(std::move(next));
  } catch (const std::exception& e) {
    log->error("reload: failed: {}; the running configuration stays", e.what());
    return nullptr;
  }
}

}  // namespace acmegw::cli
