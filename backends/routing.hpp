#pragma once
// Host-routed challenge answers (issue 6 "Routes and policy"): an AnsweringBackend that picks
// the route for each request's Host from an immutable RouteSet, and lets `acmegw run` swap the
// set on SIGHUP without disturbing requests in progress.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/routes.hpp"
#include "backends/swappable.hpp"

namespace acmegw::backends {

// One route's target. Backends are shared so a reload can keep the ones whose spec did not
// change (a tokens backend keeps its socket and its tokens).
struct RouteTarget {
  std::shared_ptr<AnsweringBackend> backend;  // never null
  std::string spec;                           // "KIND=VALUE", for logs and reuse on reload
  bool miss_to_production = false;            // on-miss = production
};

// An immutable routing snapshot: `table` maps a Host to an index into `targets`.
struct RouteSet {
  RouteTable table;
  std::vector<RouteTarget> targets;
  // The target for `host` (lower-case, no port), or null when no route matches.
  [[nodiscard]] const RouteTarget* find(std::string_view host) const noexcept;
  // The backend already built for `spec` in this set, or null (reload reuse).
  [[nodiscard]] std::shared_ptr<AnsweringBackend> backend_for(std::string_view spec) const;
};

class RoutingBackend final : public AnsweringBackend {
 public:
  explicit RoutingBackend(std::shared_ptr<const RouteSet> routes);

  // Answers from the route for req.host, read once per request: a request keeps the set it
  // started with even if replace() runs meanwhile. No route for the host, or a miss on a route
  // with on-miss = production: NotFound with to_production set (the session relays the
  // connection to production).
  [[nodiscard]] Answer answer(const ChallengeRequest& req) noexcept override;
  [[nodiscard]] std::string_view name() const noexcept override { return "routes"; }

  // The current set (never null).
  [[nodiscard]] std::shared_ptr<const RouteSet> current() const { return routes_.current(); }
  // Makes `routes` current for every later request (thread-safe).
  void replace(std::shared_ptr<const RouteSet> routes) { routes_.replace(std::move(routes)); }

 private:
  Swappable<RouteSet> routes_;
};

}  // namespace acmegw::backends
