#include "gateway/sys/netlink.hpp"

#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>
#include <string_view>

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>

namespace acmegw::sys {

void NetlinkSocket::Close::operator()(mnl_socket* s) const noexcept {
  mnl_socket_close(s);
}

SysResult<NetlinkSocket> NetlinkSocket::open(int bus) noexcept {
  NetlinkSocket out;
  out.sock_.reset(mnl_socket_open(bus));
  if (!out.sock_) {
    return {{}, errno};
  }
  if (mnl_socket_bind(out.sock_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return {{}, errno};
  }
  out.portid_ = mnl_socket_get_portid(out.sock_.get());
  return {std::move(out), 0};
}

SysResult<std::size_t> NetlinkSocket::send(std::span<const std::byte> msgs) noexcept {
  const ssize_t n = mnl_socket_sendto(sock_.get(), msgs.data(), msgs.size());
  if (n < 0) {
    return {0, errno};
  }
  return {static_cast<std::size_t>(n), 0};
}

SysResult<std::size_t> NetlinkSocket::recv(std::span<std::byte> buf, bool dont_wait) noexcept {
  // recv() rather than mnl_socket_recvfrom(): we need MSG_DONTWAIT to drain a burst before
  // sending the batched verdicts, and the kernel is the only peer of a bound netlink socket.
  const ssize_t n = ::recv(mnl_socket_get_fd(sock_.get()), buf.data(), buf.size(),
                           MSG_TRUNC | (dont_wait ? MSG_DONTWAIT : 0));
  if (n < 0) {
    return {0, errno};
  }
  if (static_cast<std::size_t>(n) > buf.size()) {
    return {0, EMSGSIZE};
  }
  return {static_cast<std::size_t>(n), 0};
}

int netlink_transact(NetlinkSocket& sock, std::span<std::byte> buf, const nlmsghdr* nlh,
                     NetlinkDataFn on_data, void* ctx) noexcept {
  const std::uint32_t want = nlh->nlmsg_seq;
  const auto sent = sock.send({reinterpret_cast<const std::byte*>(nlh), nlh->nlmsg_len});
  if (!sent.ok()) {
    return sent.err;
  }
  for (;;) {
    const auto r = sock.recv(buf, false);
    if (!r.ok()) {
      if (r.err == EINTR) {
        continue;
      }
      return r.err == EAGAIN ? ETIMEDOUT : r.err;
    }
    const auto* msg = reinterpret_cast<const nlmsghdr*>(buf.data());
    int len = static_cast<int>(r.value);
    for (; mnl_nlmsg_ok(msg, len); msg = mnl_nlmsg_next(msg, &len)) {
      if (msg->nlmsg_seq != want) {
        continue;
      }
      if (msg->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(msg));
        return -e->error;  // 0: the ACK
      }
      if (msg->nlmsg_type == NLMSG_DONE) {
        return 0;
      }
      if (on_data != nullptr) {
        on_data(msg, ctx);
      }
    }
  }
}

SysResult<bool> NetlinkSocket::set_no_enobufs(bool on) noexcept {
  const int v = on ? 1 : 0;
  if (::setsockopt(mnl_socket_get_fd(sock_.get()), SOL_NETLINK, NETLINK_NO_ENOBUFS, &v, sizeof v) <
      0) {
    return {false, errno};
  }
  return {true, 0};
}

SysResult<bool> NetlinkSocket::set_ext_ack(bool on) noexcept {
  const int v = on ? 1 : 0;
  if (::setsockopt(mnl_socket_get_fd(sock_.get()), SOL_NETLINK, NETLINK_EXT_ACK, &v, sizeof v) <
      0) {
    return {false, errno};
  }
  return {true, 0};
}

SysResult<bool> NetlinkSocket::set_recv_timeout(std::chrono::milliseconds t) noexcept {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  if (::setsockopt(mnl_socket_get_fd(sock_.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    return {false, errno};
  }
  return {true, 0};
}

SysResult<bool> NetlinkSocket::set_recv_buffer(int bytes) noexcept {
  const int fd = mnl_socket_get_fd(sock_.get());
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0) {
    return {true, 0};
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) < 0) {
    return {false, errno};
  }
  return {true, 0};
}

std::vector<QueueStatus> parse_queue_status(std::string_view text) {
  // Kernel format (net/netfilter/nfnetlink_queue.c, seq_show): "%5u %6u %5u %1u %5u %5u %5u %8u
  // %2d": queue, portid, queue_total, copy_mode, copy_range, queue_dropped, user_dropped,
  // id_sequence, 1.
  std::vector<QueueStatus> out;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    std::uint64_t f[8] = {};
    std::size_t n = 0;
    while (n < 8) {
      const std::size_t start = line.find_first_not_of(' ');
      if (start == std::string_view::npos) {
        break;
      }
      line.remove_prefix(start);
      const auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), f[n]);
      if (ec != std::errc{}) {
        break;
      }
      line.remove_prefix(static_cast<std::size_t>(ptr - line.data()));
      ++n;
    }
    if (n < 8) {
      continue;
    }
    out.push_back({static_cast<std::uint32_t>(f[0]), static_cast<std::uint32_t>(f[1]),
                   static_cast<std::uint32_t>(f[2]), static_cast<std::uint32_t>(f[3]),
                   static_cast<std::uint32_t>(f[4]), f[5], f[6], static_cast<std::uint32_t>(f[7])});
  }
  return out;
}

SysResult<std::vector<QueueStatus>> read_queue_status() {
  std::ifstream in("/proc/net/netfilter/nfnetlink_queue");
  if (!in) {
    return {{}, errno != 0 ? errno : ENOENT};
  }
  std::ostringstream text;
  text << in.rdbuf();
  return {parse_queue_status(text.str()), 0};
}

}  // namespace acmegw::sys
