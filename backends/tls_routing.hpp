#pragma once
// SNI-routed tls-alpn-01 targets (`tls_backend` + `[[tls_route]]`), the sibling of routing.hpp:
// an immutable TlsRouteSet picks a target for a ClientHello's SNI, and TlsRouting lets
// `acmegw run` swap the set on SIGHUP without disturbing connections in progress.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/relay.hpp"
#include "backends/routes.hpp"
#include "backends/swappable.hpp"
#include "backends/tls_backend.hpp"

namespace acmegw::backends {

// One TLS route's target: an answering backend, or (answering null) a relay target that
// receives the whole connection.
struct TlsRouteTarget {
  std::shared_ptr<TlsAnsweringBackend> answering;
  RelaySpec relay;
  std::string spec;  // "KIND=VALUE", for logs and reuse on reload
};

// What the takeover does with one acme-tls/1 ClientHello.
struct TlsChoice {
  std::shared_ptr<const AlpnCertificate> cert;  // answer with this certificate, or
  const RelaySpec* relay = nullptr;             // relay (valid while the set lives)
  [[nodiscard]] bool served() const noexcept { return cert != nullptr || relay != nullptr; }
};

struct TlsRouteSet {
  RouteTable table;
  std::vector<TlsRouteTarget> targets;
  // The target for `sni` (lower-case), or null when no route matches.
  [[nodiscard]] const TlsRouteTarget* find(std::string_view sni) const noexcept;
  // The answer for `sni`: the route's certificate (null when its backend does not serve the
  // identifier now) or its relay. Never throws; a miss costs a table and a store lookup.
  [[nodiscard]] TlsChoice choose(std::string_view sni) const noexcept;
  // The answering backend already built for `spec` in this set, or null (reload reuse).
  [[nodiscard]] std::shared_ptr<TlsAnsweringBackend> backend_for(std::string_view spec) const;
};

// The current TLS route set; hold a current() while using a TlsChoice's relay pointer.
using TlsRouting = Swappable<TlsRouteSet>;

}  // namespace acmegw::backends
