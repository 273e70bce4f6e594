#include "gateway/takeover/make_takeover.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

#include "backends/redirect.hpp"
#include "backends/thumbprint.hpp"
#include "backends/tokens_server.hpp"
#include "backends/webroot.hpp"
#include "gateway/config/config.hpp"
#include "gateway/sys/repair.hpp"

namespace acmegw::takeover {

std::unique_ptr<backends::AnsweringBackend> make_backend(const gateway::Config& cfg) {
  if (!cfg.backend) {
    throw std::runtime_error("no backend: give --backend KIND=VALUE (e.g. thumbprint=THUMB)");
  }
  const auto& spec = *cfg.backend;
  std::string error;
  std::unique_ptr<backends::AnsweringBackend> b;
  switch (spec.kind) {
    case gateway::BackendKind::Thumbprint:
      b = backends::ThumbprintBackend::create(spec.value, error);
      break;
    case gateway::BackendKind::Webroot:
      b = backends::WebrootBackend::create(spec.value, error);
      break;
    case gateway::BackendKind::Redirect:
      b = backends::RedirectBackend::create(spec.value, error);
      break;
    case gateway::BackendKind::Tokens: {
      backends::TokenServerOptions opt;  // mode 0600, owned by the gateway's user
      opt.path = spec.value;
      b = backends::TokensBackend::create(opt, error);
      break;
    }
    case gateway::BackendKind::Relay:
      // TODO(takeover): issue 6 wires the relay into `run`.
      error = "not available in `run` yet";
      break;
  }
  if (!b) {
    throw std::runtime_error("--backend " + std::string(gateway::to_string(spec.kind)) + "=" +
                             spec.value + ": " + error);
  }
  return b;
}

std::unique_ptr<RepairTakeover> make_takeover(const gateway::Config& cfg,
                                              const TakeoverOptions& opts) {
  auto backend = make_backend(cfg);
  if (auto r = sys::probe_tcp_repair(packet::Family::V4); !r.ok()) {
    throw std::runtime_error(
        std::string("takeover: TCP_REPAIR is not allowed here (") + std::strerror(r.err) +
        "): acmegw needs CAP_NET_ADMIN in the firewall's network namespace "
        "(systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)");
  }
  TakeoverOptions o = opts;
  o.session.limits = cfg.limits;
  return std::make_unique<RepairTakeover>(std::move(backend), cfg.marks.rst, o);
}

}  // namespace acmegw::takeover
