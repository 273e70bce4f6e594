#pragma once
// The queue engine: one Queue worker thread per NFQUEUE number of cfg.queue (--queue-balance).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/nfq/queue.hpp"
#include "gateway/takeover/takeover.hpp"

namespace acmegw::nfq {

class Engine {
 public:
  // Opens and binds every queue (no thread runs yet). `cfg` and `takeover` (may be null) must
  // outlive the engine. Startup only: throws std::runtime_error naming the queue that failed.
  Engine(const gateway::Config& cfg, takeover::Takeover* takeover);
  // Stops and joins the workers (see stop()).
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts one worker thread per queue.
  void start();
  // Asks every worker to stop and joins them; each passes what it still holds to production.
  // Returns within about Queue::kStopLatency plus one takeover.
  void stop() noexcept;

  // Every counter summed over the queues, by name, plus the kernel's per-queue figures from
  // /proc/net/netfilter/nfnetlink_queue ("kernel.queue_dropped", "kernel.user_dropped",
  // "kernel.waiting"). Not for the packet path (allocates).
  [[nodiscard]] std::map<std::string, std::uint64_t> counters() const;

 private:
  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<std::jthread> threads_;
};

// "name=value ..." of the non-zero counters, for the periodic log line.
[[nodiscard]] std::string format_counters(const std::map<std::string, std::uint64_t>& counters);

}  // namespace acmegw::nfq
