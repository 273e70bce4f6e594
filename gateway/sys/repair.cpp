#include "gateway/sys/repair.hpp"

#include <array>
#include <cstring>

#include <netinet/in.h>
#include <netinet/tcp.h>

namespace acmegw::sys {
namespace {

SysResult<bool> set_opt(const UniqueFd& fd, int level, int name, const void* val,
                        socklen_t len) noexcept {
  if (::setsockopt(fd.get(), level, name, val, len) != 0) {
    return {false, errno};
  }
  return {true, 0};
}

SysResult<bool> set_int(const UniqueFd& fd, int level, int name, int val) noexcept {
  return set_opt(fd, level, name, &val, sizeof(val));
}

int domain_of(packet::Family family) noexcept {
  return family == packet::Family::V4 ? AF_INET : AF_INET6;
}

}  // namespace

SockAddr make_sockaddr(const packet::Address& addr, std::uint16_t port) noexcept {
  SockAddr out;
  if (addr.family == packet::Family::V4) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    std::memcpy(&sin.sin_addr, addr.bytes.data(), 4);
    std::memcpy(&out.storage, &sin, sizeof(sin));
    out.len = sizeof(sin);
  } else {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    std::memcpy(&sin6.sin6_addr, addr.bytes.data(), 16);
    std::memcpy(&out.storage, &sin6, sizeof(sin6));
    out.len = sizeof(sin6);
  }
  return out;
}

SysResult<UniqueFd> tcp_socket(packet::Family family) noexcept {
  const int fd =
      ::socket(domain_of(family), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    return {UniqueFd{}, errno};
  }
  return {UniqueFd{fd}, 0};
}

SysResult<bool> set_reuseaddr(const UniqueFd& fd) noexcept {
  return set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
}

SysResult<bool> set_transparent(const UniqueFd& fd, packet::Family family) noexcept {
  if (family == packet::Family::V4) {
    return set_int(fd, SOL_IP, IP_TRANSPARENT, 1);
  }
  if (auto r = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1); !r.ok()) {
    return r;
  }
  return set_int(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, 1);
}

SysResult<bool> set_tcp_repair(const UniqueFd& fd, int mode) noexcept {
  return set_int(fd, IPPROTO_TCP, TCP_REPAIR, mode);
}

SysResult<bool> set_queue_seq(const UniqueFd& fd, RepairQueue q, std::uint32_t seq) noexcept {
  const int queue = q == RepairQueue::Recv ? TCP_RECV_QUEUE : TCP_SEND_QUEUE;
  if (auto r = set_int(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue); !r.ok()) {
    return r;
  }
  return set_opt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, sizeof(seq));
}

SysResult<bool> set_maxseg(const UniqueFd& fd, std::uint16_t mss) noexcept {
  return set_int(fd, IPPROTO_TCP, TCP_MAXSEG, mss);
}

SysResult<bool> bind(const UniqueFd& fd, const SockAddr& addr) noexcept {
  if (::bind(fd.get(), addr.get(), addr.len) != 0) {
    return {false, errno};
  }
  return {true, 0};
}

SysResult<bool> connect(const UniqueFd& fd, const SockAddr& addr) noexcept {
  if (::connect(fd.get(), addr.get(), addr.len) != 0) {
    return {false, errno};
  }
  return {true, 0};
}

SysResult<bool> set_repair_options(const UniqueFd& fd, const RepairOptions& o) noexcept {
  std::array<tcp_repair_opt, 4> opts{};
  std::size_t n = 0;
  opts[n++] = {TCPOPT_MAXSEG, o.mss};
  if (o.wscale) {
    // tcp_repair_options_est(): snd_wscale = low 16 bits, rcv_wscale = high 16 bits.
    opts[n++] = {TCPOPT_WINDOW, static_cast<std::uint32_t>(o.snd_wscale) |
                                    (static_cast<std::uint32_t>(o.rcv_wscale) << 16)};
  }
  if (o.sack) {
    opts[n++] = {TCPOPT_SACK_PERMITTED, 0};
  }
  if (o.timestamps) {
    opts[n++] = {TCPOPT_TIMESTAMP, 0};
  }
  return set_opt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts.data(),
                 static_cast<socklen_t>(n * sizeof(tcp_repair_opt)));
}

SysResult<bool> set_tcp_timestamp(const UniqueFd& fd, std::uint32_t ts) noexcept {
  return set_opt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &ts, sizeof(ts));
}

SysResult<RepairWindow> get_repair_window(const UniqueFd& fd) noexcept {
  tcp_repair_window w{};
  socklen_t len = sizeof(w);
  if (::getsockopt(fd.get(), IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &len) != 0) {
    return {{}, errno};
  }
  return {{w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd, w.rcv_wup}, 0};
}

SysResult<bool> set_repair_window(const UniqueFd& fd, const RepairWindow& w) noexcept {
  const tcp_repair_window kw{w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd, w.rcv_wup};
  return set_opt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &kw, sizeof(kw));
}

SysResult<UniqueFd> raw_ip_socket(packet::Family family, std::uint32_t mark) noexcept {
  const int raw = ::socket(domain_of(family), SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw < 0) {
    return {UniqueFd{}, errno};
  }
  UniqueFd fd{raw};
  if (auto r = set_opt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)); !r.ok()) {
    return {UniqueFd{}, r.err};
  }
  return {std::move(fd), 0};
}

SysResult<bool> send_packet(const UniqueFd& fd, std::span<const std::byte> pkt,
                            const SockAddr& dst) noexcept {
  const ssize_t n = ::sendto(fd.get(), pkt.data(), pkt.size(), 0, dst.get(), dst.len);
  if (n < 0) {
    return {false, errno};
  }
  if (static_cast<std::size_t>(n) != pkt.size()) {
    return {false, EMSGSIZE};
  }
  return {true, 0};
}

SysResult<bool> probe_tcp_repair(packet::Family family) noexcept {
  auto s = tcp_socket(family);
  if (!s.ok()) {
    return {false, s.err};
  }
  return set_tcp_repair(s.value, TCP_REPAIR_ON);
}

}  // namespace acmegw::sys
