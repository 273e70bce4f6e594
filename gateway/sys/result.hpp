#pragma once
// Result of a syscall wrapper: the value, or the errno saved right after the failing call
// (STYLE §12). No wrapper throws.
#include <cerrno>
#include <utility>

#include <unistd.h>

namespace acmegw::sys {

template <typename T>
struct SysResult {
  T value{};
  int err = 0;  // 0 on success, else the saved errno
  [[nodiscard]] bool ok() const noexcept { return err == 0; }
};

// An owned file descriptor; closes on destruction.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset(std::exchange(o.fd_, -1));
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace acmegw::sys
