#include "gateway/nfq/log.hpp"

#include <mutex>
#include <string>

#include <spdlog/spdlog.h>

namespace acmegw::nfq {

std::shared_ptr<spdlog::logger> logger(std::string_view name) {
  static std::mutex mu;  // get() then register_logger() must not race between threads
  const std::lock_guard lock(mu);
  const std::string n(name);
  if (auto l = spdlog::get(n)) {
    return l;
  }
  auto l = spdlog::default_logger()->clone(n);
  spdlog::register_logger(l);
  return l;
}

}  // namespace acmegw::nfq
