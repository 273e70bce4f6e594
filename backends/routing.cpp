#include "backends/routing.hpp"

#include <utility>

namespace acmegw::backends {

const RouteTarget* RouteSet::find(std::string_view host) const noexcept {
  const auto i = table.match(host);
  return i && *i < targets.size() ? &targets[*i] : nullptr;
}

std::shared_ptr<AnsweringBackend> RouteSet::backend_for(std::string_view spec) const {
  for (const auto& t : targets) {
    if (t.spec == spec) {
      return t.backend;
    }
  }
  return nullptr;
}

RoutingBackend::RoutingBackend(std::shared_ptr<const RouteSet> routes)
    : routes_(std::move(routes)) {}

Answer RoutingBackend::answer(const ChallengeRequest& req) noexcept {
  const auto routes = current();  // keeps the route's backend alive during the call
  const RouteTarget* t = routes->find(req.host);
  if (t == nullptr) {
    Answer a;
    a.to_production = true;
    return a;
  }
  Answer a = t->backend->answer(req);
  a.to_production = a.kind == Answer::Kind::NotFound && t->miss_to_production;
  return a;
}

}  // namespace acmegw::backends
