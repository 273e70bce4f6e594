#pragma once
// The takeover's hook into `acmegw run`.
#include <memory>
#include <vector>

#include "backends/routing.hpp"
#include "backends/tls_routing.hpp"
#include "gateway/config/config.hpp"
#include "gateway/takeover/repair_takeover.hpp"

namespace acmegw::takeover {

// The backend named by cfg.backend (`--backend KIND=VALUE`); `relay=ADDR:PORT[,options]` takes
// a numeric address ("192.0.2.7:80", "[2001:db8::7]:80,proxy=v2"). Throws std::runtime_error with
// the offending value when it is missing or invalid.
[[nodiscard]] TakeoverBackend make_backend(const gateway::Config& cfg);

// The Host routes of `cfg`: `--backend`/`backend` is the default route, then the [[route]]
// tables. Backends whose KIND=VALUE appears in `previous` are shared with it, not rebuilt (a
// reload keeps a tokens socket and its tokens). Returns null and appends to `errors` (origin
// and key of the backend) when a backend cannot be built. dry_run (check-config): builds nothing
// with side effects (tokens sockets are only parsed) and always returns null.
[[nodiscard]] std::shared_ptr<const backends::RouteSet> make_routes(
    const gateway::Config& cfg, const backends::RouteSet* previous, bool dry_run,
    std::vector<gateway::ConfigError>& errors);

// The SNI routes of `cfg` for tls-alpn-01: cfg.default_tls_backend() is the default route,
// then the [[tls_route]] tables. An answering backend whose KIND=VALUE is already built in
// `http` (this run's Host routes, e.g. one tokens socket serving both challenge types),
// `previous_http` or `previous` is shared, not rebuilt. Returns null with nothing appended
// when no TLS route is configured; null and errors appended when a backend cannot be built.
// dry_run: as make_routes.
[[nodiscard]] std::shared_ptr<const backends::TlsRouteSet> make_tls_routes(
    const gateway::Config& cfg, const backends::RouteSet* http,
    const backends::RouteSet* previous_http, const backends::TlsRouteSet* previous, bool dry_run,
    std::vector<gateway::ConfigError>& errors);

// Checks that takeover can work here (TCP_REPAIR allowed: CAP_NET_ADMIN in this network
// namespace; raw sockets: CAP_NET_RAW), then builds the Takeover for `run`. Throws
// std::runtime_error with a message saying what to fix.
[[nodiscard]] std::unique_ptr<RepairTakeover> make_takeover(const gateway::Config& cfg,
                                                            const TakeoverOptions& opts = {});

}  // namespace acmegw::takeover
