#pragma once
// The Takeover the engine calls (takeover.hpp), built from the TCP_REPAIR recipe (repair.hpp)
// and the HTTP session on its own Boost.Asio thread pool (backends/http_session.hpp).
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "backends/backend.hpp"
#include "backends/http_session.hpp"
#include "backends/relay.hpp"
#include "backends/tls_routing.hpp"
#include "backends/tls_session.hpp"
#include "gateway/config/config.hpp"
#include "gateway/sys/conntrack.hpp"
#include "gateway/sys/local_route.hpp"
#include "gateway/takeover/snapshot.hpp"
#include "gateway/takeover/source_slots.hpp"
#include "gateway/takeover/takeover.hpp"

namespace acmegw::takeover {

// What a taken-over connection is given to. http-01 (when serves_http): an answering backend
// (thumbprint, tokens, webroot, redirect), or, when `answering` is null, a relay target that
// receives the whole connection. tls-alpn-01: the SNI routes in `tls` (null: none; such
// hellos go to production before any syscall).
struct TakeoverBackend {
  std::unique_ptr<backends::AnsweringBackend> answering;
  backends::RelaySpec relay;
  bool serves_http = false;
  std::shared_ptr<backends::TlsRouting> tls;
};

struct TakeoverOptions {
  MssPolicy mss;
  unsigned threads = 2;  // Asio threads serving taken-over connections (not the queue workers)
  // Open sessions at most (each holds ~25 KiB of buffers plus socket memory), and per client
  // (source_slots.hpp); beyond, take() fails at step SessionCap / SourceCap and the flow goes
  // to production.
  std::uint64_t max_sessions = 4096;
  std::uint32_t max_sessions_per_source = 64;
  // The engine's verdict marks: take() and reset_production() refuse a flow whose connmark
  // already carries one.
  std::uint32_t mark_mask = 0;
  std::uint32_t pass_mark = 0;
  std::uint32_t taken_mark = 0;
  std::uint32_t drop_mark = 0;  // policy drop only; 0 = none
  backends::SessionConfig session;
  backends::TlsSessionConfig tls_session;
  // IPv4 local delivery (docs/takeover.md "Delivery"): the TOS bits of the local routes (0 =
  // none: no route is ever added) and the protected networks `rules install` routed already.
  std::uint8_t route_tos = 0;
  std::vector<gateway::Cidr> routed_v4;
};

class RepairTakeover final : public Takeover {
 public:
  // Opens the raw RST sockets (v4, v6) with `rst_mark` and starts the Asio threads. Throws
  // std::runtime_error naming the failed call (startup only, STYLE §11).
  RepairTakeover(TakeoverBackend backend, std::uint32_t rst_mark, const TakeoverOptions& opts);
  // Stops the Asio threads; connections still open are aborted (RST, never FIN).
  ~RepairTakeover() override;
  RepairTakeover(const RepairTakeover&) = delete;
  RepairTakeover& operator=(const RepairTakeover&) = delete;

  // Conntrack lookup, restore_established(), hand the socket to Asio, RST production. Any
  // failure leaves the client's connection to production intact and names its step (the
  // engine counts outcomes by step).
  TakeoverResult take(const TakeoverRequest& req) noexcept override;
  // Conntrack lookup and the spoofed RST to production only (policy "drop").
  TakeoverResult reset_production(const TakeoverRequest& req) noexcept override;

  // Which clients may have their challenges taken over (issue 6); others fail at step
  // SourceDenied and go to production. Thread-safe; applies to the next take().
  void set_sources(gateway::ChallengeSources sources);

  // The answering backend (null for a relay-only takeover); `run` reloads routes through it.
  [[nodiscard]] backends::AnsweringBackend* answering() const noexcept {
    return backend_.answering.get();
  }
  // The tls-alpn-01 routes (null when none are configured); `run` reloads them through it.
  [[nodiscard]] backends::TlsRouting* tls_routing() const noexcept { return backend_.tls.get(); }

  // (name, value) of the session counters (outcomes on the Asio threads).
  [[nodiscard]] std::vector<std::pair<std::string, std::uint64_t>> counters() const;
  // Answer time of the requests the sessions answered (metrics histogram).
  [[nodiscard]] const backends::LatencyHistogram& answer_latency() const noexcept {
    return session_stats_.answer_latency;
  }
  // Handshake time of the tls-alpn-01 sessions (metrics histogram).
  [[nodiscard]] const backends::LatencyHistogram& handshake_latency() const noexcept {
    return tls_stats_.handshake_latency;
  }

 private:
  TakeoverBackend backend_;
  TakeoverOptions opts_;
  backends::SessionStats session_stats_;
  backends::TlsSessionStats tls_stats_;
  std::unique_ptr<backends::TlsServerContext> tls_ctx_;  // built when backend_.tls is set
  std::mutex sources_mutex_;  // guards sources_ (copied under it once per take())
  std::shared_ptr<const gateway::ChallengeSources> sources_ =
      std::make_shared<const gateway::ChallengeSources>();
  backends::RateLimitedWarning relay_warning_;  // the relay target is down (logger "backend")
  std::shared_ptr<SourceSlots> source_slots_;

  // The flow's conntrack entry (step Conntrack), refused with EALREADY when its connmark
  // already carries one of the engine's verdict marks.
  [[nodiscard]] TakeoverResult lookup(const TakeoverRequest& req,
                                      sys::ConntrackEntry& out) noexcept;
  // Whether the flow is served at all, decided before any syscall: an http-01 challenge needs
  // an http backend; a tls-alpn-01 hello needs a TLS route for its SNI whose backend holds the
  // identifier now (`tls` gets the certificate or relay, `tls_set` keeps the relay alive).
  [[nodiscard]] TakeoverResult choose(
      const TakeoverRequest& req, backends::TlsChoice& tls,
      std::shared_ptr<const backends::TlsRouteSet>& tls_set) noexcept;

  // The local route delivering a taken flow's packets to `dst` (IPv4), added on the first
  // takeover toward an address outside opts_.routed_v4 (production behind a DNAT).
  [[nodiscard]] TakeoverResult route_to_local(const packet::Address& dst) noexcept;

  std::mutex route_mutex_;  // guards routes_ and routed_extra_
  std::optional<sys::LocalTosRoutes> routes_;
  std::vector<packet::Address> routed_extra_;

  // One netlink socket shared by the queue workers: takeovers are rare and the lock covers
  // one request/answer round trip.
  std::mutex ct_mutex_;
  std::unique_ptr<sys::Conntrack> ct_;
  sys::UniqueFd raw_v4_;
  sys::UniqueFd raw_v6_;

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::jthread> threads_;
};

}  // namespace acmegw::takeover
