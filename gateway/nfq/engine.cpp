#include "gateway/nfq/engine.hpp"

#include <cstring>
#include <mutex>

#include "gateway/nfq/log.hpp"
#include "gateway/sys/netlink.hpp"

namespace acmegw::nfq {

Engine::Engine(const gateway::Config& cfg, takeover::Takeover* takeover) {
  queues_.reserve(cfg.queue.count);
  for (std::uint32_t i = 0; i < cfg.queue.count; ++i) {
    queues_.push_back(
        std::make_unique<Queue>(static_cast<std::uint16_t>(cfg.queue.first + i), cfg, takeover));
  }
}

Engine::~Engine() {
  stop();
}

void Engine::start() {
  threads_.reserve(queues_.size());
  for (const auto& q : queues_) {
    threads_.emplace_back([q = q.get()](std::stop_token st) { q->run(st); });
  }
}

void Engine::stop() noexcept {
  for (auto& t : threads_) {
    t.request_stop();  // all first, so the workers wind down in parallel
  }
  threads_.clear();  // joins
}

std::map<std::string, std::uint64_t> Engine::counters() const {
  std::map<std::string, std::uint64_t> out;
  for (const auto& q : queues_) {
    q->stats().visit([&](std::string_view name, std::uint64_t v) { out[std::string(name)] += v; });
  }
  const auto st = sys::read_queue_status();
  if (!st.ok()) {
    // The file is mode 0440 root: a gateway running as its own user (the packaged unit) has
    // no kernel.* counters. Said once, not on every scrape.
    static std::once_flag said;
    std::call_once(said, [err = st.err] {
      logger("nfq")->info("stats: kernel queue counters unavailable ({}: {}); kernel.* omitted",
                          "/proc/net/netfilter/nfnetlink_queue", std::strerror(err));
    });
  }
  for (const sys::QueueStatus& s : st.value) {
    for (const auto& q : queues_) {
      if (q->number() == s.queue) {
        out["kernel.queue_dropped"] += s.queue_dropped;
        out["kernel.user_dropped"] += s.user_dropped;
        out["kernel.waiting"] += s.waiting;
      }
    }
  }
  return out;
}

std::string format_counters(const std::map<std::string, std::uint64_t>& counters) {
  std::string out;
  for (const auto& [name, v] : counters) {
    if (v == 0) {
      continue;
    }
    if (!out.empty()) {
      out += ' ';
    }
    out += name;
    out += '=';
    out += std::to_string(v);
  }
  return out.empty() ? "(all zero)" : out;
}

}  // namespace acmegw::nfq
