#include "gateway/sys/local_route.hpp"

#include <cerrno>
#include <chrono>
#include <ctime>

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

namespace acmegw::sys {

SysResult<LocalTosRoutes> LocalTosRoutes::open(std::uint8_t tos, std::uint8_t protocol) noexcept {
  LocalTosRoutes out;
  out.loopback_ = ::if_nametoindex("lo");
  if (out.loopback_ == 0) {
    return {{}, errno};
  }
  auto sock = NetlinkSocket::open(NETLINK_ROUTE);
  if (!sock.ok()) {
    return {{}, sock.err};
  }
  out.sock_ = std::move(sock.value);
  if (const auto r = out.sock_.set_recv_timeout(std::chrono::milliseconds{500}); !r.ok()) {
    return {{}, r.err};
  }
  out.buf_.resize(MNL_SOCKET_BUFFER_SIZE);
  out.tos_ = tos;
  out.protocol_ = protocol;
  out.seq_ = static_cast<std::uint32_t>(std::time(nullptr));
  return {std::move(out), 0};
}

SysResult<bool> LocalTosRoutes::add(const packet::Address& addr) noexcept {
  if (addr.family != packet::Family::V4) {
    return {false, EAFNOSUPPORT};
  }
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data());
  nlh->nlmsg_type = RTM_NEWROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  nlh->nlmsg_seq = ++seq_;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = 32;
  rtm->rtm_tos = tos_;
  rtm->rtm_table = RT_TABLE_LOCAL;
  rtm->rtm_protocol = protocol_;
  rtm->rtm_scope = RT_SCOPE_HOST;
  rtm->rtm_type = RTN_LOCAL;
  mnl_attr_put(nlh, RTA_DST, 4, addr.bytes.data());
  mnl_attr_put_u32(nlh, RTA_OIF, loopback_);
  const int err = netlink_transact(sock_, buf_, nlh);
  if (err != 0 && err != EEXIST) {
    return {false, err};
  }
  return {true, 0};
}

}  // namespace acmegw::sys
