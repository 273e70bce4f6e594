#include "gateway/takeover/make_takeover.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

#include "backends/certdir.hpp"
#include "backends/redirect.hpp"
#include "backends/relay.hpp"
#include "backends/routing.hpp"
#include "backends/thumbprint.hpp"
#include "backends/tokens_server.hpp"
#include "backends/webroot.hpp"
#include "gateway/config/config.hpp"
#include "gateway/nfq/log.hpp"
#include "gateway/sys/repair.hpp"

namespace acmegw::takeover {

namespace {

// The answering backend for `spec`, or null with `error` set. dry_run: a tokens backend is only
// parsed (building it would bind its socket); null with an empty error then.
std::shared_ptr<backends::AnsweringBackend> make_answering(const gateway::BackendSpec& spec,
                                                           bool dry_run, std::string& error) {
  switch (spec.kind) {
    case gateway::BackendKind::Thumbprint:
      return backends::ThumbprintBackend::create(spec.value, error);
    case gateway::BackendKind::Webroot:
      return backends::WebrootBackend::create(spec.value, error);
    case gateway::BackendKind::Redirect:
      return backends::RedirectBackend::create(spec.value, error);
    case gateway::BackendKind::Tokens: {
      // VALUE: PATH[,mode=OCTAL][,owner=USER][,group=GROUP] (docs/backends.md)
      const auto opt = backends::parse_token_socket_spec(spec.value, error);
      if (!opt || dry_run) {
        return nullptr;
      }
      return backends::TokensBackend::create(*opt, error);
    }
    case gateway::BackendKind::Relay:
      error =
          "relay takes whole connections before their Host is known: it can only be the "
          "one backend (--backend), not a route";
      return nullptr;
    case gateway::BackendKind::Certdir:
      error = "certdir serves tls-alpn-01 only: use it in --tls-backend or a [[tls_route]]";
      return nullptr;
  }
  std::abort();  // corrupt enum (STYLE §15)
}

// The tls-alpn-01 answering backend for `spec` (tokens: the built-in responder on a new tokens
// store; certdir), or null with `error` set. dry_run: as make_answering.
std::shared_ptr<backends::TlsAnsweringBackend> make_tls_answering(const gateway::BackendSpec& spec,
                                                                  bool dry_run,
                                                                  std::string& error) {
  switch (spec.kind) {
    case gateway::BackendKind::Tokens: {
      const auto any = make_answering(spec, dry_run, error);
      return std::dynamic_pointer_cast<backends::TlsAnsweringBackend>(any);
    }
    case gateway::BackendKind::Certdir: {
      auto warn = [log = nfq::logger("backend")](const std::string& m) { log->warn("{}", m); };
      auto b = backends::CertdirBackend::create(spec.value, std::move(warn), error);
      if (dry_run || b == nullptr) {
        return nullptr;
      }
      return std::shared_ptr<backends::TlsAnsweringBackend>(std::move(b));
    }
    case gateway::BackendKind::Thumbprint:
    case gateway::BackendKind::Webroot:
    case gateway::BackendKind::Redirect:
    case gateway::BackendKind::Relay:
      error = "cannot answer tls-alpn-01";  // validate() refuses these kinds
      return nullptr;
  }
  std::abort();  // corrupt enum (STYLE §15)
}

std::string join(const std::vector<gateway::ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += (out.empty() ? "" : "\n") + e.to_string();
  }
  return out;
}

}  // namespace

std::shared_ptr<const backends::RouteSet> make_routes(const gateway::Config& cfg,
                                                      const backends::RouteSet* previous,
                                                      bool dry_run,
                                                      std::vector<gateway::ConfigError>& errors) {
  auto set = std::make_shared<backends::RouteSet>();
  const auto add_target = [&](const gateway::BackendSpec& spec, gateway::OnMiss on_miss,
                              const std::string& where, const std::string& key) {
    const std::string text = gateway::to_string(spec);
    std::shared_ptr<backends::AnsweringBackend> b =
        previous != nullptr ? previous->backend_for(text) : nullptr;
    if (b == nullptr) {
      b = set->backend_for(text);  // two routes, one backend (one tokens socket)
    }
    std::string error;
    if (b == nullptr) {
      b = make_answering(spec, dry_run, error);
    }
    if (!error.empty()) {
      errors.push_back(gateway::ConfigError{where, key, text + ": " + error});
    }
    set->targets.push_back({std::move(b), text, on_miss == gateway::OnMiss::Production});
    return set->targets.size() - 1;
  };
  if (cfg.backend) {
    const auto it = cfg.origins.find("backend");
    const auto i = add_target(*cfg.backend, gateway::OnMiss::NotFound,
                              it == cfg.origins.end() ? "" : it->second, "backend");
    (void)set->table.add("*", i);
  }
  for (std::size_t r = 0; r < cfg.routes.size(); ++r) {
    const auto& route = cfg.routes[r];
    const auto i = add_target(route.backend, route.on_miss, route.where,
                              "route[" + std::to_string(r + 1) + "].backend");
    if (route.hosts.empty()) {
      (void)set->table.add("*", i);  // validate() refused a second default
    }
    for (const auto& h : route.hosts) {
      (void)set->table.add(h, i);  // validate() checked every pattern
    }
  }
  if (!errors.empty() || dry_run) {
    return nullptr;
  }
  return set;
}

std::shared_ptr<const backends::TlsRouteSet> make_tls_routes(
    const gateway::Config& cfg, const backends::RouteSet* http,
    const backends::RouteSet* previous_http, const backends::TlsRouteSet* previous, bool dry_run,
    std::vector<gateway::ConfigError>& errors) {
  const auto fallback = cfg.default_tls_backend();
  if (!fallback && cfg.tls_routes.empty()) {
    return nullptr;
  }
  auto set = std::make_shared<backends::TlsRouteSet>();
  const auto shared =
      [&](const std::string& text) -> std::shared_ptr<backends::TlsAnsweringBackend> {
    for (const auto* s : {http, previous_http}) {
      if (s != nullptr) {
        if (auto b =
                std::dynamic_pointer_cast<backends::TlsAnsweringBackend>(s->backend_for(text))) {
          return b;
        }
      }
    }
    for (const auto* s : {static_cast<const backends::TlsRouteSet*>(set.get()), previous}) {
      if (s != nullptr) {
        if (auto b = s->backend_for(text)) {
          return b;
        }
      }
    }
    return nullptr;
  };
  const std::size_t before = errors.size();
  const auto add_target = [&](const gateway::BackendSpec& spec, const std::string& where,
                              const std::string& key) {
    backends::TlsRouteTarget t;
    t.spec = gateway::to_string(spec);
    std::string error;
    if (spec.kind == gateway::BackendKind::Relay) {
      if (const auto r = backends::parse_relay_spec(spec.value, error)) {
        t.relay = *r;
        t.relay.tls = true;
      }
    } else {
      t.answering = shared(t.spec);
      if (t.answering == nullptr) {
        t.answering = make_tls_answering(spec, dry_run, error);
      }
    }
    if (!error.empty()) {
      errors.push_back(gateway::ConfigError{where, key, t.spec + ": " + error});
    }
    set->targets.push_back(std::move(t));
    return set->targets.size() - 1;
  };
  if (fallback) {
    const auto it = cfg.origins.find(cfg.tls_backend ? "tls_backend" : "backend");
    const auto i = add_target(*fallback, it == cfg.origins.end() ? "" : it->second,
                              cfg.tls_backend ? "tls_backend" : "backend");
    (void)set->table.add("*", i);
  }
  for (std::size_t r = 0; r < cfg.tls_routes.size(); ++r) {
    const auto& route = cfg.tls_routes[r];
    const auto i =
        add_target(route.backend, route.where, "tls_route[" + std::to_string(r + 1) + "].backend");
    if (route.hosts.empty()) {
      (void)set->table.add("*", i);  // validate() refused a second default
    }
    for (const auto& h : route.hosts) {
      (void)set->table.add(h, i);  // validate() checked every pattern
    }
  }
  if (errors.size() != before || dry_run) {
    return nullptr;
  }
  return set;
}

TakeoverBackend make_backend(const gateway::Config& cfg) {
  if (!cfg.has_backend()) {
    throw std::runtime_error("no backend: give --backend KIND=VALUE (e.g. thumbprint=THUMB)");
  }
  TakeoverBackend b;
  std::vector<gateway::ConfigError> errors;
  std::shared_ptr<const backends::RouteSet> routes;
  if (cfg.backend && cfg.backend->kind == gateway::BackendKind::Relay && cfg.routes.empty()) {
    // VALUE: ADDR:PORT[,proxy=v1|v2][,connect-timeout=MS] (docs/backends.md)
    std::string error;
    const auto r = backends::parse_relay_spec(cfg.backend->value, error);
    if (!r) {
      throw std::runtime_error("--backend " + gateway::to_string(*cfg.backend) + ": " + error);
    }
    b.relay = *r;
    b.serves_http = true;
  } else if (cfg.backend || !cfg.routes.empty()) {
    routes = make_routes(cfg, nullptr, false, errors);
    if (!routes) {
      throw std::runtime_error(join(errors));
    }
    b.serves_http = true;
  }
  if (auto tls = make_tls_routes(cfg, routes.get(), nullptr, nullptr, false, errors)) {
    b.tls = std::make_shared<backends::TlsRouting>(std::move(tls));
  } else if (!errors.empty()) {
    throw std::runtime_error(join(errors));
  }
  if (routes) {
    b.answering = std::make_unique<backends::RoutingBackend>(std::move(routes));
  }
  return b;
}

std::unique_ptr<RepairTakeover> make_takeover(const gateway::Config& cfg,
                                              const TakeoverOptions& opts) {
  auto backend = make_backend(cfg);
  if (auto r = sys::probe_tcp_repair(packet::Family::V4); !r.ok()) {
    throw std::runtime_error(std::string("takeover: TCP_REPAIR is not allowed here (") +
                             std::strerror(r.err) +
                             "): acmegw needs CAP_NET_ADMIN in the firewall's network namespace "
                             "(systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)");
  }
  TakeoverOptions o = opts;
  o.session.limits = cfg.limits;
  const gateway::SessionLimits& sl = cfg.sessions;
  o.max_sessions = sl.max;
  o.max_sessions_per_source = sl.max_per_source;
  o.session.header_timeout = std::chrono::milliseconds{sl.header_timeout_ms};
  o.session.idle_timeout = std::chrono::milliseconds{sl.idle_timeout_ms};
  o.session.total_timeout = std::chrono::milliseconds{sl.total_timeout_ms};
  o.tls_session.handshake_timeout = o.session.header_timeout;
  o.tls_session.close_timeout = o.session.idle_timeout;
  o.tls_session.total_timeout = o.session.total_timeout;
  o.mark_mask = cfg.marks.mask;
  o.pass_mark = cfg.marks.pass;
  o.taken_mark = cfg.marks.taken;
  o.drop_mark = cfg.uses_drop_mark() ? cfg.marks.drop : 0;  // 0 = unused
  o.session.redirect_https = cfg.policy == gateway::Policy::RedirectHttps;
  o.route_tos = static_cast<std::uint8_t>(cfg.routing.tos);
  for (const gateway::Endpoint& e : cfg.protect) {
    if (e.addr.family == packet::Family::V4) {
      o.routed_v4.push_back(gateway::Cidr{e.addr, e.prefix_len});
    }
  }
  auto tko = std::make_unique<RepairTakeover>(std::move(backend), cfg.marks.rst, o);
  tko->set_sources(cfg.challenge);
  return tko;
}

}  // namespace acmegw::takeover
