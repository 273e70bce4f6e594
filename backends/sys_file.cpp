#include "backends/sys_file.hpp"

#include <array>
#include <cerrno>

#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace acmegw::backends::sys {

SysResult<UniqueFd> open_dir(const char* path) noexcept {
  const int fd = ::open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return {UniqueFd{}, errno};
  }
  return {UniqueFd{fd}, 0};
}

SysResult<UniqueFd> open_beneath(int dirfd, const char* relative) noexcept {
  ::open_how how{};
  how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  // glibc 2.36 has no openat2() wrapper.
  const long fd = ::syscall(SYS_openat2, dirfd, relative, &how, sizeof how);
  if (fd < 0) {
    return {UniqueFd{}, errno};
  }
  return {UniqueFd{static_cast<int>(fd)}, 0};
}

SysResult<struct ::stat> fstat(int fd) noexcept {
  struct ::stat st{};
  if (::fstat(fd, &st) != 0) {
    return {st, errno};
  }
  return {st, 0};
}

SysResult<struct ::stat> lstat(const char* path) noexcept {
  struct ::stat st{};
  if (::lstat(path, &st) != 0) {
    return {st, errno};
  }
  return {st, 0};
}

SysResult<int> unlink(const char* path) noexcept {
  const int r = ::unlink(path);
  return {r, r != 0 ? errno : 0};
}

SysResult<int> chmod(const char* path, ::mode_t mode) noexcept {
  const int r = ::chmod(path, mode);
  return {r, r != 0 ? errno : 0};
}

SysResult<int> lchown(const char* path, ::uid_t uid, ::gid_t gid) noexcept {
  const int r = ::lchown(path, uid, gid);
  return {r, r != 0 ? errno : 0};
}

SysResult<::uid_t> user_id(const char* name) noexcept {
  ::passwd pw{};
  ::passwd* found = nullptr;
  std::array<char, 4096> buf{};
  const int r = ::getpwnam_r(name, &pw, buf.data(), buf.size(), &found);
  if (r != 0 || found == nullptr) {
    return {0, r != 0 ? r : ENOENT};
  }
  return {pw.pw_uid, 0};
}

SysResult<::gid_t> group_id(const char* name) noexcept {
  ::group gr{};
  ::group* found = nullptr;
  std::array<char, 4096> buf{};
  const int r = ::getgrnam_r(name, &gr, buf.data(), buf.size(), &found);
  if (r != 0 || found == nullptr) {
    return {0, r != 0 ? r : ENOENT};
  }
  return {gr.gr_gid, 0};
}

SysResult<std::size_t> read_full(int fd, std::span<std::byte> buf) noexcept {
  std::size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return {got, errno};
    }
    if (n == 0) {
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  return {got, 0};
}

}  // namespace acmegw::backends::sys
