#include "gateway/takeover/make_takeover.hpp"

#include <charconv>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include "backends/redirect.hpp"
#include "backends/thumbprint.hpp"
#include "backends/tokens_server.hpp"
#include "backends/webroot.hpp"
#include "gateway/config/config.hpp"
#include "gateway/sys/repair.hpp"

namespace acmegw::takeover {

namespace {

// "ADDR:PORT" / "[V6]:PORT" with a numeric address; nullopt when it is not one.
std::optional<boost::asio::ip::tcp::endpoint> parse_relay(std::string_view v) {
  const auto colon = v.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  const auto p = v.substr(colon + 1);
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  boost::system::error_code bad;
  const auto addr = boost::asio::ip::make_address(std::string(host), bad);
  if (ec != std::errc{} || end != p.data() + p.size() || port == 0 || port > 65535 || bad) {
    return std::nullopt;
  }
  return boost::asio::ip::tcp::endpoint(addr, static_cast<std::uint16_t>(port));
}

}  // namespace

TakeoverBackend make_backend(const gateway::Config& cfg) {
  if (!cfg.backend) {
    throw std::runtime_error("no backend: give --backend KIND=VALUE (e.g. thumbprint=THUMB)");
  }
  const auto& spec = *cfg.backend;
  std::string error;
  TakeoverBackend b;
  switch (spec.kind) {
    case gateway::BackendKind::Thumbprint:
      b.answering = backends::ThumbprintBackend::create(spec.value, error);
      break;
    case gateway::BackendKind::Webroot:
      b.answering = backends::WebrootBackend::create(spec.value, error);
      break;
    case gateway::BackendKind::Redirect:
      b.answering = backends::RedirectBackend::create(spec.value, error);
      break;
    case gateway::BackendKind::Tokens:
      // VALUE: PATH[,mode=OCTAL][,owner=USER][,group=GROUP] (docs/backends.md)
      if (const auto opt = backends::parse_token_socket_spec(spec.value, error)) {
        b.answering = backends::TokensBackend::create(*opt, error);
      }
      break;
    case gateway::BackendKind::Relay:
      if (const auto ep = parse_relay(spec.value)) {
        b.relay = *ep;
        return b;
      }
      error = "relay needs a numeric ADDR:PORT or [V6]:PORT";
      break;
  }
  if (!b.answering) {
    throw std::runtime_error("--backend " + std::string(gateway::to_string(spec.kind)) + "=" +
                             spec.value + ": " + error);
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
  return std::make_unique<RepairTakeover>(std::move(backend), cfg.marks.rst, o);
}

}  // namespace acmegw::takeover
