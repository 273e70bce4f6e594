#pragma once
// Test helper: holds bytes so the last one sits right before a PROT_NONE page, so any read past
// the end faults at once, without ASan (picohttpparser's test trick, STYLE §25a).
//
//   acmegw::test::GuardedBuffer buf{wire.size()};
//   for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
//     const auto view = buf.assign(wire.substr(0, cut));  // view ends at the guard page
//     ...
//   }
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include <sys/mman.h>
#include <unistd.h>

namespace acmegw::test {

class GuardedBuffer {
 public:
  // Maps room for up to `capacity` bytes followed by one inaccessible page.
  explicit GuardedBuffer(std::size_t capacity) {
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    data_pages_ = (capacity + page - 1) / page * page;
    map_len_ = data_pages_ + page;
    void* p = ::mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      throw std::system_error(errno, std::generic_category(), "GuardedBuffer: mmap");
    }
    base_ = static_cast<std::byte*>(p);
    if (::mprotect(base_ + data_pages_, page, PROT_NONE) != 0) {
      const int err = errno;
      ::munmap(base_, map_len_);
      throw std::system_error(err, std::generic_category(), "GuardedBuffer: mprotect");
    }
    view_ = {base_ + data_pages_, 0};
  }
  explicit GuardedBuffer(std::span<const std::byte> bytes) : GuardedBuffer(bytes.size()) {
    assign(bytes);
  }
  explicit GuardedBuffer(std::string_view bytes) : GuardedBuffer(bytes.size()) { assign(bytes); }

  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  ~GuardedBuffer() { ::munmap(base_, map_len_); }

  // Copies `bytes` (at most the capacity) to end right at the guard page and returns a view of
  // them; the view stays valid until the next assign() or destruction.
  std::span<const std::byte> assign(std::span<const std::byte> bytes) {
    if (bytes.size() > data_pages_) {
      throw std::length_error("GuardedBuffer: more bytes than capacity");
    }
    std::byte* dst = base_ + (data_pages_ - bytes.size());
    if (!bytes.empty()) {
      std::memcpy(dst, bytes.data(), bytes.size());
    }
    view_ = {dst, bytes.size()};
    return view_;
  }
  std::span<const std::byte> assign(std::string_view bytes) {
    return assign(std::as_bytes(std::span{bytes.data(), bytes.size()}));
  }

  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return view_; }
  [[nodiscard]] std::string_view str() const noexcept {
    return {reinterpret_cast<const char*>(view_.data()), view_.size()};
  }

 private:
  std::byte* base_ = nullptr;
  std::size_t data_pages_ = 0;
  std::size_t map_len_ = 0;
  std::span<const std::byte> view_;
};

}  // namespace acmegw::test
