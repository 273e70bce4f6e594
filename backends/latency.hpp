#pragma once
// A fixed-bucket latency histogram updated from several threads without locks (relaxed atomics:
// a scrape may see a bucket and the count a moment apart, which Prometheus tolerates).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace acmegw::backends {

class LatencyHistogram {
 public:
  // Upper bounds in microseconds: a challenge answer takes ~1 ms when all is well.
  static constexpr std::array<std::uint64_t, 12> kBoundsUs = {
      100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 50'000, 100'000, 250'000, 1'000'000};

  // Counts one observation of `d` (negative durations count as 0).
  void observe(std::chrono::steady_clock::duration d) noexcept {
    const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
    std::size_t i = 0;
    while (i < kBoundsUs.size() && us > kBoundsUs[i]) {
      ++i;
    }
    buckets_[i].fetch_add(1, std::memory_order_relaxed);  // i == size(): above every bound
    sum_us_.fetch_add(us, std::memory_order_relaxed);
  }

  // Observations in bucket i alone (not cumulative); i == kBoundsUs.size() is the overflow.
  [[nodiscard]] std::uint64_t bucket(std::size_t i) const noexcept {
    return buckets_[i].load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t sum_us() const noexcept {
    return sum_us_.load(std::memory_order_relaxed);
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBoundsUs.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_us_{0};
};

}  // namespace acmegw::backends
