#include "gateway/takeover/repair_takeover.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>

#include "gateway/nfq/log.hpp"
#include "gateway/sys/repair.hpp"
#include "gateway/takeover/repair.hpp"

namespace acmegw::takeover {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// An ACME server retries from several perspectives at once: one line per 10 s is enough.
constexpr std::chrono::seconds kRelayWarningInterval{10};

// A host without IPv6 (EAFNOSUPPORT) gets no v6 socket: a v6 takeover then fails at step
// Reset (EBADF) and goes to production; there are no v6 flows to take over anyway.
sys::UniqueFd open_raw(packet::Family family, std::uint32_t mark) {
  auto r = sys::raw_ip_socket(family, mark);
  if (family == packet::Family::V6 && r.err == EAFNOSUPPORT) {
    return {};
  }
  if (!r.ok()) {
    throw std::runtime_error(std::string("takeover: raw socket for the RST to production (") +
                             (family == packet::Family::V4 ? "IPv4" : "IPv6") +
                             ") failed: " + std::strerror(r.err) + " (needs CAP_NET_RAW)");
  }
  return std::move(r.value);
}

tcp::endpoint endpoint_of(const packet::Address& a, std::uint16_t port) {
  if (a.family == packet::Family::V4) {
    asio::ip::address_v4::bytes_type b{};
    std::memcpy(b.data(), a.bytes.data(), b.size());
    return {asio::ip::address_v4(b), port};
  }
  asio::ip::address_v6::bytes_type b{};
  std::memcpy(b.data(), a.bytes.data(), b.size());
  return {asio::ip::address_v6(b), port};
}

}  // namespace

RepairTakeover::RepairTakeover(TakeoverBackend backend, std::uint32_t rst_mark,
                               const TakeoverOptions& opts)
    : backend_(std::move(backend)),
      opts_(opts),
      relay_warning_([log = nfq::logger("backend")](std::string_view m) { log->warn("{}", m); },
                     kRelayWarningInterval),
      source_slots_(SourceSlots::create(opts.max_sessions_per_source)),
      raw_v4_(open_raw(packet::Family::V4, rst_mark)),
      raw_v6_(open_raw(packet::Family::V6, rst_mark)),
      io_(static_cast<int>(opts.threads)),
      work_(asio::make_work_guard(io_)) {
  auto ct = sys::Conntrack::open();
  if (!ct.ok()) {
    throw std::runtime_error(std::string("takeover: ctnetlink socket failed: ") +
                             std::strerror(ct.err));
  }
  ct_ = std::move(ct.value);
  if (opts_.route_tos != 0) {
    auto routes =
        sys::LocalTosRoutes::open(opts_.route_tos, gateway::RoutingConfig::kRouteProtocol);
    if (!routes.ok()) {
      throw std::runtime_error(std::string("takeover: rtnetlink socket failed: ") +
                               std::strerror(routes.err));
    }
    routes_ = std::move(routes.value);
  }
  if (backend_.tls) {
    tls_ctx_ = std::make_unique<backends::TlsServerContext>();
  }
  for (unsigned i = 0; i < std::max(1u, opts.threads); ++i) {
    threads_.emplace_back([this] { io_.run(); });
  }
}

RepairTakeover::~RepairTakeover() {
  work_.reset();
  io_.stop();
  threads_.clear();  // joins; pending sessions die with io_ and abort their sockets
}

TakeoverResult RepairTakeover::lookup(const TakeoverRequest& req,
                                      sys::ConntrackEntry& out) noexcept {
  sys::SysResult<sys::ConntrackEntry> ct;
  {
    const std::lock_guard lock(ct_mutex_);
    ct = ct_->get(req.key);
  }
  if (!ct.ok()) {
    return {TakeoverStep::Conntrack, ct.err};
  }
  // Belt and braces for the engine's RecentDecisions: a segment queued before its flow's verdict
  // can reach us after that verdict was saved to the connmark; never take such a flow over.
  if (const std::uint32_t m = ct.value.mark & opts_.mark_mask;
      m != 0 && (m == opts_.pass_mark || m == opts_.taken_mark || m == opts_.drop_mark)) {
    return {TakeoverStep::Conntrack, EALREADY, m};
  }
  out = ct.value;
  return {};
}

TakeoverResult RepairTakeover::route_to_local(const packet::Address& dst) noexcept {
  if (dst.family != packet::Family::V4 || !routes_ ||
      std::any_of(opts_.routed_v4.begin(), opts_.routed_v4.end(),
                  [&](const gateway::Cidr& c) { return c.contains(dst); })) {
    return {};
  }
  const std::lock_guard lock(route_mutex_);
  if (std::find(routed_extra_.begin(), routed_extra_.end(), dst) != routed_extra_.end()) {
    return {};
  }
  if (const auto r = routes_->add(dst); !r.ok()) {
    return {TakeoverStep::Route, r.err};
  }
  routed_extra_.push_back(dst);
  return {};
}

TakeoverResult RepairTakeover::choose(
    const TakeoverRequest& req, backends::TlsChoice& tls,
    std::shared_ptr<const backends::TlsRouteSet>& tls_set) noexcept {
  const bool is_tls =
      req.classification != nullptr && req.classification->protocol == classifier::Protocol::Tls;
  if (!is_tls) {
    // Policy takeovers are answered by the HTTP session without a backend's help.
    const bool ok = backend_.serves_http || req.purpose != TakeoverPurpose::Challenge;
    return ok ? TakeoverResult{} : TakeoverResult{TakeoverStep::NotServed, 0};
  }
  if (backend_.tls == nullptr) {
    return {TakeoverStep::NotServed, 0};
  }
  tls_set = backend_.tls->current();
  tls = tls_set->choose(req.classification->host.view());
  return tls.served() ? TakeoverResult{} : TakeoverResult{TakeoverStep::NotServed, 0};
}

TakeoverResult RepairTakeover::take(const TakeoverRequest& req) noexcept {
  const auto open = session_stats_.active.load(std::memory_order_relaxed) +
                    tls_stats_.active.load(std::memory_order_relaxed);
  if (open >= opts_.max_sessions) {
    return {TakeoverStep::SessionCap, EBUSY};  // checked first: costs no syscall
  }
  backends::TlsChoice tls;
  std::shared_ptr<const backends::TlsRouteSet> tls_set;
  if (auto r = choose(req, tls, tls_set); !r.ok()) {
    return r;
  }
  if (req.purpose == TakeoverPurpose::Challenge) {
    std::shared_ptr<const gateway::ChallengeSources> sources;
    {
      const std::lock_guard lock(sources_mutex_);
      sources = sources_;
    }
    if (!sources->admits(req.key.src)) {
      return {TakeoverStep::SourceDenied, 0};
    }
  }
  // Held by the session; given back by any return below, when the takeover fails.
  backends::SessionSlot slot = source_slots_->acquire(req.key.src);
  if (!slot) {
    return {TakeoverStep::SourceCap, EBUSY};
  }
  sys::ConntrackEntry ct;
  if (auto r = lookup(req, ct); !r.ok()) {
    return r;
  }
  const FlowSnapshot snap = make_snapshot(req, ct, opts_.mss);
  if (auto r = route_to_local(snap.tuple.dst); !r.ok()) {
    return r;
  }

  sys::UniqueFd fd;
  if (auto r = restore_established(snap, fd); !r.ok()) {
    return r;
  }
  // Give the socket to Asio before the RST: up to the RST every failure leaves production's
  // side intact, so the flow can still go there.
  const auto v4 = snap.tuple.dst.family == packet::Family::V4;
  tcp::socket sock(asio::make_strand(io_));
  boost::system::error_code ec;
  sock.assign(v4 ? tcp::v4() : tcp::v6(), fd.get(), ec);
  if (ec) {
    close_silently(fd);
    return {TakeoverStep::Handoff, ec.value()};
  }
  (void)fd.release();  // owned by sock now
  if (auto r = takeover::reset_production(v4 ? raw_v4_ : raw_v6_, snap); !r.ok()) {
    sys::UniqueFd back{sock.release(ec)};
    close_silently(back);
    return r;
  }
  if (req.purpose == TakeoverPurpose::Reject) {
    // SO_LINGER 0: close() sends the client a RST and leaves no TIME_WAIT (pitfall 6). The held
    // segments, delivered after the TAKEN verdict, find no socket and get a RST too.
    sock.set_option(asio::socket_base::linger(true, 0), ec);
    sock.close(ec);
    return {};
  }
  if (tls.cert) {
    backends::start_tls_session(std::move(sock), std::move(tls.cert), *tls_ctx_, opts_.tls_session,
                                tls_stats_, std::move(slot));
  } else if (tls.relay != nullptr) {
    // The session copies the spec: tls_set may be replaced by a reload while it runs.
    backends::start_relay_session(std::move(sock), *tls.relay, opts_.session, session_stats_,
                                  &relay_warning_, std::move(slot));
  } else if (backend_.answering) {
    backends::start_http_session(std::move(sock), endpoint_of(snap.tuple.dst, snap.tuple.dport),
                                 *backend_.answering, opts_.session, session_stats_,
                                 std::move(slot));
  } else {
    backends::start_relay_session(std::move(sock), backend_.relay, opts_.session, session_stats_,
                                  &relay_warning_, std::move(slot));
  }
  return {};
}

TakeoverResult RepairTakeover::reset_production(const TakeoverRequest& req) noexcept {
  sys::ConntrackEntry ct;
  if (auto r = lookup(req, ct); !r.ok()) {
    return r;
  }
  const FlowSnapshot snap = make_snapshot(req, ct, opts_.mss);
  const auto v4 = snap.tuple.dst.family == packet::Family::V4;
  return takeover::reset_production(v4 ? raw_v4_ : raw_v6_, snap);
}

void RepairTakeover::set_sources(gateway::ChallengeSources sources) {
  auto next = std::make_shared<const gateway::ChallengeSources>(std::move(sources));
  const std::lock_guard lock(sources_mutex_);
  sources_.swap(next);
}

std::vector<std::pair<std::string, std::uint64_t>> RepairTakeover::counters() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  const auto& s = session_stats_;
  out.emplace_back("session_started", s.started.load());
  out.emplace_back("session_active", s.active.load());
  out.emplace_back("session_answered_keyauth", s.answered_keyauth.load());
  out.emplace_back("session_answered_not_found", s.answered_not_found.load());
  out.emplace_back("session_answered_redirect", s.answered_redirect.load());
  out.emplace_back("session_answered_unavailable", s.answered_unavailable.load());
  out.emplace_back("session_answered_close", s.answered_close.load());
  out.emplace_back("session_relayed", s.relayed.load());
  out.emplace_back("session_relay_connect_failed", s.relay_connect_failed.load());
  out.emplace_back("session_relay_connect_timeout", s.relay_connect_timeout.load());
  out.emplace_back("session_head_too_large", s.head_too_large.load());
  out.emplace_back("session_answered_redirect_https", s.answered_redirect_https.load());
  out.emplace_back("session_bad_request", s.bad_request.load());
  out.emplace_back("session_malformed_reset", s.malformed_reset.load());
  out.emplace_back("session_client_closed", s.client_closed.load());
  out.emplace_back("session_idle_aborted", s.idle_aborted.load());
  out.emplace_back("session_header_timeout", s.header_timeout.load());
  out.emplace_back("session_total_timeout", s.total_timeout.load());
  out.emplace_back("session_clients", source_slots_->clients());
  out.emplace_back("session_io_errors", s.io_errors.load());
  out.emplace_back("session_timewait_left", s.timewait_left.load());
  const auto& t = tls_stats_;
  out.emplace_back("tls_session_started", t.started.load());
  out.emplace_back("tls_session_active", t.active.load());
  out.emplace_back("tls_handshakes_ok", t.handshakes_ok.load());
  out.emplace_back("tls_handshake_timeout", t.handshake_timeout.load());
  out.emplace_back("tls_handshake_failed", t.handshake_failed.load());
  out.emplace_back("tls_handshake_eof", t.handshake_eof.load());
  out.emplace_back("tls_session_client_closed", t.client_closed.load());
  out.emplace_back("tls_session_close_timeout", t.close_timeout.load());
  out.emplace_back("tls_session_io_errors", t.io_errors.load());
  return out;
}

}  // namespace acmegw::takeover
