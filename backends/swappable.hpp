#pragma once
// A shared, immutable value that a reload replaces while readers keep the one they started with
// (route sets: SIGHUP swaps them under running sessions).
#include <memory>
#include <mutex>
#include <utility>

namespace acmegw::backends {

template <typename T>
class Swappable {
 public:
  explicit Swappable(std::shared_ptr<const T> value) : value_(std::move(value)) {}

  // The current value (never null if constructed with one).
  [[nodiscard]] std::shared_ptr<const T> current() const {
    const std::lock_guard lock(mutex_);
    return value_;
  }
  // Makes `value` current for every later reader (thread-safe).
  void replace(std::shared_ptr<const T> value) {
    const std::lock_guard lock(mutex_);
    value_.swap(value);
    // the old value (now in `value`) is released outside the lock: its backends may join threads
  }

 private:
  mutable std::mutex mutex_;  // held only to copy or swap the pointer
  std::shared_ptr<const T> value_;
};

}  // namespace acmegw::backends
