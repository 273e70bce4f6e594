#pragma once
// File syscalls of the webroot backend and the token socket, wrapped as gateway/sys does
// (STYLE §12): each returns SysResult with errno saved at once. backends/ must not link
// gateway/, so they live here; SysResult and UniqueFd come from the header-only
// gateway/sys/result.hpp.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <sys/socket.h>
#include <sys/stat.h>

#include "gateway/sys/result.hpp"

namespace acmegw::backends::sys {

using acmegw::sys::SysResult;
using acmegw::sys::UniqueFd;

// Opens directory `path` as an O_PATH handle (no read permission needed on it; it is only
// ever used as the anchor of open_beneath).
[[nodiscard]] SysResult<UniqueFd> open_dir(const char* path) noexcept;

// Opens `relative` read-only beneath `dirfd` with openat2(2) (Linux >= 5.6):
// RESOLVE_BENEATH (no "..", absolute path or symlink may leave the directory: EXDEV) and
// RESOLVE_NO_MAGICLINKS (no /proc/self/fd jumps: ELOOP). O_NONBLOCK so that a FIFO planted
// in the webroot cannot block the caller; O_NOCTTY for device nodes. ENOSYS on older kernels.
[[nodiscard]] SysResult<UniqueFd> open_beneath(int dirfd, const char* relative) noexcept;

// fstat(2).
[[nodiscard]] SysResult<struct ::stat> fstat(int fd) noexcept;

// lstat(2) (the socket path itself, not what a symlink points to).
[[nodiscard]] SysResult<struct ::stat> lstat(const char* path) noexcept;

// unlink(2).
[[nodiscard]] SysResult<int> unlink(const char* path) noexcept;

// chmod(2).
[[nodiscard]] SysResult<int> chmod(const char* path, ::mode_t mode) noexcept;

// lchown(2); -1 keeps the owner or group as it is.
[[nodiscard]] SysResult<int> lchown(const char* path, ::uid_t uid, ::gid_t gid) noexcept;

// The uid of user `name` (getpwnam_r); err ENOENT when there is no such user.
[[nodiscard]] SysResult<::uid_t> user_id(const char* name) noexcept;

// The gid of group `name` (getgrnam_r); err ENOENT when there is no such group.
[[nodiscard]] SysResult<::gid_t> group_id(const char* name) noexcept;

// Reads until `buf` is full or end of file (retrying EINTR); value = bytes read.
[[nodiscard]] SysResult<std::size_t> read_full(int fd, std::span<std::byte> buf) noexcept;

// The socket's cookie (getsockopt SO_COOKIE, Linux >= 4.13): the kernel's unique id of it,
// kept by its TIME_WAIT successor.
[[nodiscard]] SysResult<std::uint64_t> socket_cookie(int fd) noexcept;

// Removes the TCP socket with this local and remote address:port (same family) and `cookie`,
// in any state including TIME_WAIT, as `ss -K` does: SOCK_DESTROY over NETLINK_SOCK_DIAG
// (tcp_abort() in the kernel). The cookie is required: without one the kernel's lookup falls
// back to a listener on the local address:port and would destroy that. Needs
// CONFIG_INET_DIAG_DESTROY (else EOPNOTSUPP) and CAP_NET_ADMIN (EPERM); ENOENT when no such
// socket exists.
[[nodiscard]] SysResult<int> destroy_tcp_socket(const ::sockaddr* local, const ::sockaddr* remote,
                                                std::uint64_t cookie) noexcept;

// A TCP socket as one inet_diag dump reports it.
struct TcpSocketEntry {
  ::sockaddr_storage local{};
  ::sockaddr_storage remote{};
  std::uint64_t cookie = 0;
  std::uint8_t state = 0;   // TCP_ESTABLISHED, TCP_FIN_WAIT1, ... (netinet/tcp.h)
  std::uint32_t inode = 0;  // 0: no process holds it (an orphan, or a TIME_WAIT)
};

// Every TCP socket of `family` (AF_INET, AF_INET6) except listeners, TIME_WAIT included, from
// one NETLINK_SOCK_DIAG dump. Startup/cleanup only: it allocates.
[[nodiscard]] SysResult<std::vector<TcpSocketEntry>> list_tcp_sockets(int family) noexcept;

}  // namespace acmegw::backends::sys
