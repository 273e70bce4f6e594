#pragma once
// The Takeover the engine calls (takeover.hpp), built from the TCP_REPAIR recipe (repair.hpp)
// and the HTTP session on its own Boost.Asio thread pool (backends/http_session.hpp).
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "backends/backend.hpp"
#include "backends/http_session.hpp"
#include "gateway/sys/conntrack.hpp"
#include "gateway/takeover/snapshot.hpp"
#include "gateway/takeover/takeover.hpp"

namespace acmegw::takeover {

inline constexpr std::size_t kStepCount = static_cast<std::size_t>(TakeoverStep::Handoff) + 1;

struct TakeoverOptions {
  MssPolicy mss;
  unsigned threads = 2;  // Asio threads serving taken-over connections (not the queue workers)
  backends::SessionConfig session;
};

class RepairTakeover final : public Takeover {
 public:
  // Opens the raw RST sockets (v4, v6) with `rst_mark` and starts the Asio threads. Throws
  // std::runtime_error naming the failed call (startup only, STYLE §11).
  RepairTakeover(std::unique_ptr<backends::AnsweringBackend> backend, std::uint32_t rst_mark,
                 const TakeoverOptions& opts);
  // Stops the Asio threads; connections still open are aborted (RST, never FIN).
  ~RepairTakeover() override;
  RepairTakeover(const RepairTakeover&) = delete;
  RepairTakeover& operator=(const RepairTakeover&) = delete;

  // Conntrack lookup, restore_established(), hand the socket to Asio, RST production. Any
  // failure leaves the client's connection to production intact and is counted by step.
  TakeoverResult take(const TakeoverRequest& req) noexcept override;

  // (name, value) of every counter: takeovers ok, failures per step, session outcomes.
  [[nodiscard]] std::vector<std::pair<std::string, std::uint64_t>> counters() const;

 private:
  TakeoverResult count(TakeoverResult r) noexcept;

  std::unique_ptr<backends::AnsweringBackend> backend_;
  TakeoverOptions opts_;
  backends::SessionStats session_stats_;
  std::atomic<std::uint64_t> ok_{0};
  std::array<std::atomic<std::uint64_t>, kStepCount> failed_{};

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
