#include "gateway/sys/signals.hpp"

#include <cerrno>
#include <csignal>
#include <ctime>

#include <pthread.h>

namespace acmegw::sys {
namespace {

sigset_t make_set(std::initializer_list<int> signals) noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (const int s : signals) {
    sigaddset(&set, s);
  }
  return set;
}

}  // namespace

SysResult<bool> block_signals(std::initializer_list<int> signals) noexcept {
  const sigset_t set = make_set(signals);
  if (const int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    return {false, err};  // pthread_* return the error instead of setting errno
  }
  return {true, 0};
}

SysResult<int> wait_signal(std::initializer_list<int> signals,
                           std::chrono::milliseconds timeout) noexcept {
  const sigset_t set = make_set(signals);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
  const int s = sigtimedwait(&set, nullptr, &ts);
  if (s < 0) {
    if (errno == EAGAIN) {
      return {0, 0};
    }
    return {0, errno};
  }
  return {s, 0};
}

}  // namespace acmegw::sys
