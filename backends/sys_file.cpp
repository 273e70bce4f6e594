#include "backends/sys_file.hpp"

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
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
  struct ::stat st {};
  if (::fstat(fd, &st) != 0) {
    return {st, errno};
  }
  return {st, 0};
}

SysResult<struct ::stat> lstat(const char* path) noexcept {
  struct ::stat st {};
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

SysResult<std::uint64_t> socket_cookie(int fd) noexcept {
  std::uint64_t cookie = 0;
  ::socklen_t len = sizeof cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) {
    return {0, errno};
  }
  return {cookie, 0};
}

namespace {

struct DiagRequest {
  ::nlmsghdr nlh;
  ::inet_diag_req_v2 req;
};

// A NETLINK_SOCK_DIAG request about the TCP sockets of `family` in `states`.
DiagRequest diag_request(std::uint16_t type, std::uint16_t flags, int family,
                         std::uint32_t states) noexcept {
  DiagRequest msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = type;
  msg.nlh.nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | flags);
  msg.req.sdiag_family = static_cast<std::uint8_t>(family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = states;
  return msg;
}

// Sends `msg` to the kernel on a new NETLINK_SOCK_DIAG socket, returned for the answer.
SysResult<UniqueFd> send_diag(const DiagRequest& msg) noexcept {
  UniqueFd fd{::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (!fd) {
    return {UniqueFd{}, errno};
  }
  ::sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd.get(), &msg, sizeof msg, 0, reinterpret_cast<const ::sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return {UniqueFd{}, errno};
  }
  return {std::move(fd), 0};
}

// The address of one side of an inet_diag_sockid (ports and addresses in network order).
::sockaddr_storage sockaddr_of(int family, const std::uint32_t* addr, std::uint16_t port) {
  ::sockaddr_storage ss{};
  if (family == AF_INET) {
    auto* s4 = reinterpret_cast<::sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = port;
    std::memcpy(&s4->sin_addr, addr, sizeof s4->sin_addr);
  } else {
    auto* s6 = reinterpret_cast<::sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = port;
    std::memcpy(&s6->sin6_addr, addr, sizeof s6->sin6_addr);
  }
  return ss;
}

// One receive of the dump: appends its sockets; true once NLMSG_DONE arrived.
SysResult<bool> read_dump_part(int fd, int family, std::vector<TcpSocketEntry>& out) {
  alignas(::nlmsghdr) std::array<std::byte, 32 * 1024> buf{};
  ssize_t n = 0;
  do {
    n = ::recv(fd, buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return {false, errno};
  }
  auto* h = reinterpret_cast<::nlmsghdr*>(buf.data());
  for (auto left = static_cast<unsigned>(n); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    if (h->nlmsg_type == NLMSG_DONE) {
      return {true, 0};
    }
    if (h->nlmsg_type == NLMSG_ERROR) {
      const auto* e = static_cast<const ::nlmsgerr*>(NLMSG_DATA(h));
      return {false, e->error != 0 ? -e->error : EPROTO};
    }
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(::inet_diag_msg))) {
      return {false, EPROTO};
    }
    const auto* m = static_cast<const ::inet_diag_msg*>(NLMSG_DATA(h));
    TcpSocketEntry e;
    e.local = sockaddr_of(family, m->id.idiag_src, m->id.idiag_sport);
    e.remote = sockaddr_of(family, m->id.idiag_dst, m->id.idiag_dport);
    e.cookie = m->id.idiag_cookie[0] | (std::uint64_t{m->id.idiag_cookie[1]} << 32u);
    e.state = m->idiag_state;
    e.inode = m->idiag_inode;
    out.push_back(e);
  }
  return {false, 0};
}

}  // namespace

SysResult<int> destroy_tcp_socket(const ::sockaddr* local, const ::sockaddr* remote,
                                  std::uint64_t cookie) noexcept {
  DiagRequest msg = diag_request(SOCK_DESTROY, NLM_F_ACK, local->sa_family, ~0u);
  ::inet_diag_sockid& id = msg.req.id;
  id.idiag_cookie[0] = static_cast<std::uint32_t>(cookie);
  id.idiag_cookie[1] = static_cast<std::uint32_t>(cookie >> 32u);
  // idiag_src/sport are the socket's own side (the kernel looks it up as an arriving packet).
  if (local->sa_family == AF_INET && remote->sa_family == AF_INET) {
    ::sockaddr_in l{};
    ::sockaddr_in r{};
    std::memcpy(&l, local, sizeof l);
    std::memcpy(&r, remote, sizeof r);
    id.idiag_sport = l.sin_port;
    id.idiag_dport = r.sin_port;
    std::memcpy(id.idiag_src, &l.sin_addr, sizeof l.sin_addr);
    std::memcpy(id.idiag_dst, &r.sin_addr, sizeof r.sin_addr);
  } else if (local->sa_family == AF_INET6 && remote->sa_family == AF_INET6) {
    ::sockaddr_in6 l{};
    ::sockaddr_in6 r{};
    std::memcpy(&l, local, sizeof l);
    std::memcpy(&r, remote, sizeof r);
    id.idiag_sport = l.sin6_port;
    id.idiag_dport = r.sin6_port;
    std::memcpy(id.idiag_src, &l.sin6_addr, sizeof l.sin6_addr);
    std::memcpy(id.idiag_dst, &r.sin6_addr, sizeof r.sin6_addr);
  } else {
    return {-1, EAFNOSUPPORT};
  }
  const auto sent = send_diag(msg);
  if (!sent.ok()) {
    return {-1, sent.err};
  }
  const UniqueFd& fd = sent.value;
  // The ack: an NLMSG_ERROR carrying 0 or the negative errno (the request is echoed after it).
  struct Ack {
    ::nlmsghdr nlh;
    ::nlmsgerr err;
  };
  alignas(::nlmsghdr) std::array<std::byte, 512> buf{};
  ssize_t n = 0;
  do {
    n = ::recv(fd.get(), buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return {-1, errno};
  }
  Ack ack{};
  if (static_cast<std::size_t>(n) < sizeof ack) {
    return {-1, EPROTO};
  }
  std::memcpy(&ack, buf.data(), sizeof ack);
  if (ack.nlh.nlmsg_type != NLMSG_ERROR) {
    return {-1, EPROTO};
  }
  return {ack.err.error == 0 ? 0 : -1, -ack.err.error};
}

SysResult<std::vector<TcpSocketEntry>> list_tcp_sockets(int family) noexcept {
  constexpr unsigned kListen = 10;  // TCP_LISTEN
  const auto sent =
      send_diag(diag_request(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, family, ~(1u << kListen)));
  if (!sent.ok()) {
    return {{}, sent.err};
  }
  const UniqueFd& fd = sent.value;
  try {
    std::vector<TcpSocketEntry> out;
    for (;;) {
      const auto part = read_dump_part(fd.get(), family, out);
      if (!part.ok()) {
        return {{}, part.err};
      }
      if (part.value) {
        return {std::move(out), 0};
      }
    }
  } catch (const std::bad_alloc&) {
    return {{}, ENOMEM};
  }
}

}  // namespace acmegw::backends::sys
