#pragma once
// The queue engine's counters (STYLE §20): every outcome increments exactly one named counter,
// declared once in the lists below. Each queue worker owns one Stats and is its only writer;
// readers (the periodic dump, later the Prometheus endpoint) read relaxed atomics and sum the
// workers by name, so the hot path never contends.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "classifier/classify.hpp"
#include "gateway/flow/flow_table.hpp"
#include "gateway/takeover/takeover.hpp"

namespace acmegw::nfq {

// X(name, help): scalar counters. Per-cause / per-reason / per-step families follow in Stats.
#define ACMEGW_NFQ_COUNTERS(X)                                                                 \
  X(packets, "queued packets received")                                                        \
  X(undecodable, "netlink messages without a packet id (nothing to verdict)")                  \
  X(parse_errors, "packets that are not IPv4/IPv6+TCP as expected (passed)")                   \
  X(requeued_marked, "packets already carrying a verdict mark seen again (loop guard)")        \
  X(recently_decided, "segments queued before their flow's verdict: that verdict repeated")    \
  X(already_decided, "challenges whose connmark already held a verdict (takeover refused)")    \
  X(flows_production, "flows decided for production")                                          \
  X(flows_challenge, "flows classified as a challenge")                                        \
  X(flows_held, "flows that entered the hold table")                                           \
  X(segments_held, "segments held while a flow was undecided")                                 \
  X(duplicates_dropped, "exact retransmissions of held segments dropped")                      \
  X(unmarked_accepted, "payload-less segments of held flows accepted without a decision")      \
  X(hold_mark_errors, "HOLD connmark updates that failed (flow sent to production)")           \
  X(takeovers_ok, "challenge flows taken over")                                                \
  X(takeovers_failed, "takeovers that failed (flow sent to production)")                       \
  X(challenge_passed_no_backend, "challenge flows sent to production: no takeover configured") \
  X(flows_redirected, "non-challenge flows taken over for policy redirect-https")              \
  X(flows_rejected, "non-challenge flows taken over and reset (policy reject)")                \
  X(flows_dropped, "non-challenge flows dropped in the kernel (policy drop)")                  \
  X(verdicts, "verdicts sent")                                                                 \
  X(verdict_batches, "sendmsg calls carrying verdicts")                                        \
  X(verdict_send_errors, "verdict batches the kernel refused to take")                         \
  X(verdict_errors, "netlink errors reported for verdicts")                                    \
  X(enobufs, "receive overruns reported by the socket (fail-open passes those packets)")       \
  X(recv_errors, "other receive errors")

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept {
    // Single writer: a load + store is enough and avoids a locked RMW on the hot path.
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

inline constexpr std::size_t kReasonCount = static_cast<std::size_t>(classifier::Reason::NoSni) + 1;
inline constexpr std::size_t kStepCount =
    static_cast<std::size_t>(takeover::TakeoverStep::Handoff) + 1;

struct Stats {
#define ACMEGW_NFQ_DECLARE(name, help) Counter name;
  ACMEGW_NFQ_COUNTERS(ACMEGW_NFQ_DECLARE)
#undef ACMEGW_NFQ_DECLARE
  std::array<Counter, flow::kCauseCount> production_by_cause;  // flow::Cause
  std::array<Counter, kReasonCount> production_by_reason;      // classifier reason (Classified)
  std::array<Counter, kStepCount> takeover_failed_by_step;     // takeover::TakeoverStep

  // Calls f(name, value) for every counter, families as "family.member" names.
  template <typename F>
  void visit(F&& f) const {
#define ACMEGW_NFQ_VISIT(name, help) f(std::string_view{#name}, name.get());
    ACMEGW_NFQ_COUNTERS(ACMEGW_NFQ_VISIT)
#undef ACMEGW_NFQ_VISIT
    std::string n;  // dump/export time only, never on the packet path
    for (std::size_t i = 0; i < production_by_cause.size(); ++i) {
      n = "production_by_cause.";
      n += flow::to_string(static_cast<flow::Cause>(i));
      f(std::string_view{n}, production_by_cause[i].get());
    }
    for (std::size_t i = 0; i < production_by_reason.size(); ++i) {
      n = "production_by_reason.";
      n += classifier::to_string(static_cast<classifier::Reason>(i));
      f(std::string_view{n}, production_by_reason[i].get());
    }
    for (std::size_t i = 0; i < takeover_failed_by_step.size(); ++i) {
      n = "takeover_failed_by_step.";
      n += takeover::to_string(static_cast<takeover::TakeoverStep>(i));
      f(std::string_view{n}, takeover_failed_by_step[i].get());
    }
  }
};

}  // namespace acmegw::nfq
