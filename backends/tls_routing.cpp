#include "backends/tls_routing.hpp"

#include <utility>

namespace acmegw::backends {

const TlsRouteTarget* TlsRouteSet::find(std::string_view sni) const noexcept {
  const auto i = table.match(sni);
  return i && *i < targets.size() ? &targets[*i] : nullptr;
}

TlsChoice TlsRouteSet::choose(std::string_view sni) const noexcept {
  TlsChoice c;
  const TlsRouteTarget* t = find(sni);
  if (t == nullptr) {
    return c;
  }
  if (t->answering) {
    c.cert = t->answering->certificate(sni);
  } else {
    c.relay = &t->relay;
  }
  return c;
}

std::shared_ptr<TlsAnsweringBackend> TlsRouteSet::backend_for(std::string_view spec) const {
  for (const auto& t : targets) {
    if (t.spec == spec) {
      return t.answering;
    }
  }
  return nullptr;
}

}  // namespace acmegw::backends
