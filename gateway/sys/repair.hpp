#pragma once
// Syscall wrappers for the TCP_REPAIR takeover (DESIGN.md §2 "Takeover"): the repaired TCP
// socket and the raw socket that sends the spoofed RST to production. Every wrapper saves errno
// at once and returns it in SysResult (STYLE §12); none throws or logs.
#include <cstdint>
#include <span>

#include <sys/socket.h>

#include "gateway/packet/packet.hpp"
#include "gateway/sys/result.hpp"

namespace acmegw::sys {

// A socket address built from a packet::Address and a port (host byte order).
struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  [[nodiscard]] const sockaddr* get() const noexcept {
    return reinterpret_cast<const sockaddr*>(&storage);
  }
};
[[nodiscard]] SockAddr make_sockaddr(const packet::Address& addr, std::uint16_t port) noexcept;

// Which repair queue TCP_QUEUE_SEQ applies to.
enum class RepairQueue : std::uint8_t { Recv, Send };

// TCP_REPAIR_OPTIONS values, as the kernel's tcp_repair_options_est() reads them.
struct RepairOptions {
  std::uint16_t mss = 0;        // TCPOPT_MAXSEG
  bool wscale = false;          // both sides negotiated window scaling
  std::uint8_t snd_wscale = 0;  // peer's (client's) shift: scales windows it sends us
  std::uint8_t rcv_wscale = 0;  // our (production's) shift: scales windows we advertise
  bool sack = false;            // both sides sent SACK-permitted
  bool timestamps = false;      // the client's segments carry timestamps
};

// struct tcp_repair_window, field for field (Linux >= 4.8).
struct RepairWindow {
  std::uint32_t snd_wl1 = 0;
  std::uint32_t snd_wnd = 0;
  std::uint32_t max_window = 0;
  std::uint32_t rcv_wnd = 0;
  std::uint32_t rcv_wup = 0;
};

// socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP).
[[nodiscard]] SysResult<UniqueFd> tcp_socket(packet::Family family) noexcept;
// SO_REUSEADDR = 1.
[[nodiscard]] SysResult<bool> set_reuseaddr(const UniqueFd& fd) noexcept;
// IP_TRANSPARENT (v4) or IPV6_V6ONLY + IPV6_TRANSPARENT (v6): bind a non-local address.
[[nodiscard]] SysResult<bool> set_transparent(const UniqueFd& fd, packet::Family family) noexcept;
// TCP_REPAIR: 1 on, 0 off with window probe, -1 off without window probe. EPERM without
// CAP_NET_ADMIN in the socket's network namespace.
[[nodiscard]] SysResult<bool> set_tcp_repair(const UniqueFd& fd, int mode) noexcept;
// TCP_REPAIR_QUEUE = q, then TCP_QUEUE_SEQ = seq. Repair mode, before connect().
[[nodiscard]] SysResult<bool> set_queue_seq(const UniqueFd& fd, RepairQueue q,
                                            std::uint32_t seq) noexcept;
// TCP_MAXSEG (the user MSS clamp). Before connect(), or the send MSS stays at 524.
[[nodiscard]] SysResult<bool> set_maxseg(const UniqueFd& fd, std::uint16_t mss) noexcept;
[[nodiscard]] SysResult<bool> bind(const UniqueFd& fd, const SockAddr& addr) noexcept;
// In repair mode connect() sends nothing and returns 0 (EINPROGRESS is tolerated by callers).
[[nodiscard]] SysResult<bool> connect(const UniqueFd& fd, const SockAddr& addr) noexcept;
// TCP_REPAIR_OPTIONS with one tcp_repair_opt per enabled option. After connect().
[[nodiscard]] SysResult<bool> set_repair_options(const UniqueFd& fd,
                                                 const RepairOptions& o) noexcept;
// TCP_TIMESTAMP: the next TSval this socket sends is `ts` (the offset to the local clock is
// kept). Keep `ts` even: on Linux >= 6.7 bit 0 selects microsecond timestamps.
[[nodiscard]] SysResult<bool> set_tcp_timestamp(const UniqueFd& fd, std::uint32_t ts) noexcept;
// getsockopt / setsockopt TCP_REPAIR_WINDOW. Repair mode, after connect().
[[nodiscard]] SysResult<RepairWindow> get_repair_window(const UniqueFd& fd) noexcept;
[[nodiscard]] SysResult<bool> set_repair_window(const UniqueFd& fd, const RepairWindow& w) noexcept;

// A raw socket that sends complete IP packets (IPPROTO_RAW: IP_HDRINCL / IPV6_HDRINCL implied)
// with SO_MARK = mark, so the ruleset's raw OUTPUT rule can leave them untracked.
[[nodiscard]] SysResult<UniqueFd> raw_ip_socket(packet::Family family, std::uint32_t mark) noexcept;
// sendto() of one complete IP packet to `dst` (the port must be 0 for raw sockets).
[[nodiscard]] SysResult<bool> send_packet(const UniqueFd& fd, std::span<const std::byte> pkt,
                                          const SockAddr& dst) noexcept;

// Whether TCP_REPAIR can be switched on here: opens a throw-away TCP socket and sets it.
// err: EPERM without CAP_NET_ADMIN, ENOPROTOOPT on kernels before 3.5 (no TCP_REPAIR).
[[nodiscard]] SysResult<bool> probe_tcp_repair(packet::Family family) noexcept;

}  // namespace acmegw::sys
