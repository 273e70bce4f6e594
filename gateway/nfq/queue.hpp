#pragma once
// One NFQUEUE worker (DESIGN.md §2): its own netlink socket, one preallocated receive buffer, its
// own flow table and conntrack socket, verdicts batched per receive burst. Every queued packet
// gets exactly one verdict on every path (PendingVerdict), including held flows at shutdown.
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <stop_token>
#include <vector>

#include <spdlog/logger.h>

#include "gateway/config/config.hpp"
#include "gateway/flow/flow_table.hpp"
#include "gateway/flow/recent.hpp"
#include "gateway/nfq/stats.hpp"
#include "gateway/nfq/verdict.hpp"
#include "gateway/sys/conntrack.hpp"
#include "gateway/sys/netlink.hpp"
#include "gateway/takeover/takeover.hpp"

struct nlmsghdr;

namespace acmegw::nfq {

// The flow table bounds of one queue worker: cfg.hold split evenly over cfg.queue.count.
[[nodiscard]] flow::Limits flow_limits(const gateway::Config& cfg) noexcept;

class Queue {
 public:
  // Opens the sockets and binds queue `num` with copy range 0xffff, FAIL_OPEN, GSO and
  // cfg.queue.max_len. `takeover` may be null (challenges then go to production) and must
  // outlive the queue. Startup only: throws std::runtime_error naming the queue and the cause
  // (e.g. the queue is already bound by another process).
  Queue(std::uint16_t num, const gateway::Config& cfg, takeover::Takeover* takeover);
  ~Queue();
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // Receives and verdicts packets until `stop` is requested (seen within kStopLatency), then
  // verdicts what it still holds (PASS) and returns. Call from one thread only.
  void run(std::stop_token stop) noexcept;

  [[nodiscard]] std::uint16_t number() const noexcept { return num_; }
  [[nodiscard]] const Stats& stats() const noexcept { return stats_; }

  // SO_RCVTIMEO: how often an idle worker checks for stop and expires held flows.
  static constexpr std::chrono::milliseconds kStopLatency{100};

 private:
  void bind_queue(std::uint32_t max_len);
  void handle_datagram(std::span<const std::byte> data) noexcept;
  void on_packet(const nlmsghdr* nlh) noexcept;
  void apply(const flow::Result& r, std::uint32_t offered_id) noexcept;
  // Verdicts r.packets with NF_REPEAT and `value` (PASS or TAKEN) under the mask and remembers
  // the decision in recent_, counting nothing.
  void repeat_all(const flow::Result& r, std::uint32_t value) noexcept;
  // repeat_all(); for PASS, also counts the flow as production by `cause` (r.cause unless
  // overridden).
  void release(const flow::Result& r, std::uint32_t value, flow::Cause cause) noexcept;
  void release(const flow::Result& r, std::uint32_t value) noexcept { release(r, value, r.cause); }
  void take(const flow::Result& r) noexcept;
  // Flushes the batch (the takeover may take a while) and describes the decided flow `r`.
  [[nodiscard]] takeover::TakeoverRequest request_of(const flow::Result& r) noexcept;
  // Counts a failed take()/reset_production() and verdicts the flow: the mark its connmark
  // already holds (EALREADY), else production (fail-open).
  void takeover_failed(const flow::Result& r, const takeover::TakeoverResult& t) noexcept;
  // True when cfg.policy (not pass) decides the production flow `r`: a classifier verdict on
  // an HTTP endpoint, not a fail-open cause.
  [[nodiscard]] bool policy_applies(const flow::Result& r) const noexcept;
  // Carries out cfg.policy for `r` (redirect-https/reject: take over; drop: RST production and
  // the DROP verdict mark); on failure the flow goes to production.
  void apply_policy(const flow::Result& r) noexcept;
  [[nodiscard]] std::uint32_t mark_of(flow::Decided d) const noexcept;
  [[nodiscard]] flow::Decided decided_of(std::uint32_t value) const noexcept;
  void expire() noexcept;
  [[nodiscard]] classifier::Protocol protocol_of(const packet::FlowKey& key) const noexcept;

  std::uint16_t num_;
  const gateway::Config& cfg_;
  takeover::Takeover* takeover_;
  Stats stats_;
  sys::NetlinkSocket sock_;
  std::unique_ptr<sys::Conntrack> conntrack_;  // never null: sets the HOLD connmark
  std::vector<std::byte> rx_;                  // one receive buffer, allocated once
  VerdictBatch verdicts_;
  flow::FlowTable flows_;
  // Flows this worker decided within the last second (segments queued before their verdict).
  flow::RecentDecisions recent_;
  std::shared_ptr<spdlog::logger> log_;       // "nfq"
  std::shared_ptr<spdlog::logger> flow_log_;  // "flow"
  std::shared_ptr<spdlog::logger> tko_log_;   // "takeover"
  // Lets a repeated warning through at most once per kLogInterval (STYLE §20).
  struct RateLimit {
    std::chrono::steady_clock::time_point last{};
    std::uint64_t suppressed = 0;  // refused since the last one let through
    bool allow(std::chrono::steady_clock::time_point now) noexcept;
  };
  static constexpr std::chrono::seconds kLogInterval{10};

  std::chrono::steady_clock::time_point now_;
  RateLimit recv_warn_;
  RateLimit enobufs_warn_;
  RateLimit verdict_warn_;
  // A flood of challenges at a session cap fails every takeover (counted by step).
  RateLimit takeover_warn_;
};

}  // namespace acmegw::nfq
