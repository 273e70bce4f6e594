#pragma once
// A libmnl netlink socket (STYLE §12: the only place that calls mnl_socket_*), used by the NFQUEUE
// workers and by the conntrack wrapper. Each owner uses its socket from one thread.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gateway/sys/result.hpp"

struct mnl_socket;
struct nlmsghdr;

namespace acmegw::sys {

class NetlinkSocket {
 public:
  // Opens a socket on `bus` (NETLINK_NETFILTER, ...) and binds it with an automatic port id.
  [[nodiscard]] static SysResult<NetlinkSocket> open(int bus) noexcept;

  NetlinkSocket() noexcept = default;
  NetlinkSocket(NetlinkSocket&&) noexcept = default;
  NetlinkSocket& operator=(NetlinkSocket&&) noexcept = default;

  [[nodiscard]] std::uint32_t portid() const noexcept { return portid_; }
  [[nodiscard]] explicit operator bool() const noexcept { return sock_ != nullptr; }

  // Sends one buffer of netlink messages (one sendto). Returns the bytes sent.
  [[nodiscard]] SysResult<std::size_t> send(std::span<const std::byte> msgs) noexcept;
  // Receives one datagram into `buf`. EAGAIN on timeout (SO_RCVTIMEO) or, with `dont_wait`, when
  // nothing is queued. Returns the bytes received; MSG_TRUNC datagrams fail with EMSGSIZE.
  [[nodiscard]] SysResult<std::size_t> recv(std::span<std::byte> buf, bool dont_wait) noexcept;

  // Socket options, set once at open time by the owner.
  [[nodiscard]] SysResult<bool> set_no_enobufs(bool on) noexcept;  // NETLINK_NO_ENOBUFS
  [[nodiscard]] SysResult<bool> set_ext_ack(bool on) noexcept;     // NETLINK_EXT_ACK
  [[nodiscard]] SysResult<bool> set_recv_timeout(std::chrono::milliseconds t) noexcept;
  // SO_RCVBUFFORCE (needs CAP_NET_ADMIN), falling back to SO_RCVBUF (capped by rmem_max).
  [[nodiscard]] SysResult<bool> set_recv_buffer(int bytes) noexcept;

 private:
  struct Close {
    void operator()(mnl_socket* s) const noexcept;
  };
  std::unique_ptr<mnl_socket, Close> sock_;
  std::uint32_t portid_ = 0;
};

// Called for each data message answering a request (not the ACK, not other requests' answers).
using NetlinkDataFn = void (*)(const nlmsghdr* msg, void* ctx);

// Sends the request `nlh` (in `buf`, NLM_F_ACK set, nlmsg_seq unique) and reads, into `buf`,
// until the kernel's ACK or error for it. Every message is consumed, including the ACK that
// follows a GET's data (DESIGN pitfall 2: stopping at the data leaves the ACK queued and the next
// query reads this one's answer); messages of earlier timed-out requests (other seq) are skipped.
// Returns 0 or the errno (ETIMEDOUT when the socket's receive timeout elapsed).
[[nodiscard]] int netlink_transact(NetlinkSocket& sock, std::span<std::byte> buf,
                                   const nlmsghdr* nlh, NetlinkDataFn on_data = nullptr,
                                   void* ctx = nullptr) noexcept;

// One line of /proc/net/netfilter/nfnetlink_queue (per network namespace).
struct QueueStatus {
  std::uint32_t queue = 0;
  std::uint32_t portid = 0;   // netlink port id of the bound socket
  std::uint32_t waiting = 0;  // packets queued to userspace, not yet verdicted
  std::uint32_t copy_mode = 0;
  std::uint32_t copy_range = 0;
  std::uint64_t queue_dropped = 0;  // dropped (or failed open) because the queue was full
  std::uint64_t user_dropped = 0;   // netlink unicast to the socket failed (rcvbuf full)
  std::uint32_t id_sequence = 0;    // last packet id
};

// Parses the text of /proc/net/netfilter/nfnetlink_queue. Pure; malformed lines are skipped.
[[nodiscard]] std::vector<QueueStatus> parse_queue_status(std::string_view text);
// Reads and parses /proc/net/netfilter/nfnetlink_queue of the current network namespace
// (empty when the module is not loaded yet).
[[nodiscard]] SysResult<std::vector<QueueStatus>> read_queue_status();

}  // namespace acmegw::sys
