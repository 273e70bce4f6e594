#pragma once
// rtnetlink for the IPv4 local routes that deliver taken-over packets (docs/takeover.md
// "Delivery"): `rules install` adds one per protected network with `ip`; a takeover whose
// production address lies outside them (post-DNAT) adds one for that address here, before the
// held segment is released. Every such route has protocol kRouteProtocol of RoutingConfig, so
// `rules remove` flushes them all.
#include <cstdint>
#include <vector>

#include "gateway/packet/packet.hpp"
#include "gateway/sys/netlink.hpp"
#include "gateway/sys/result.hpp"

namespace acmegw::sys {

class LocalTosRoutes {
 public:
  // Opens a NETLINK_ROUTE socket for routes carrying `tos` and `protocol`.
  [[nodiscard]] static SysResult<LocalTosRoutes> open(std::uint8_t tos,
                                                      std::uint8_t protocol) noexcept;

  // `ip route add local ADDR/32 tos T proto P dev lo table local`; an identical route already
  // there is success. IPv4 only (EAFNOSUPPORT otherwise). Not thread-safe.
  [[nodiscard]] SysResult<bool> add(const packet::Address& addr) noexcept;

 private:
  NetlinkSocket sock_;
  std::vector<std::byte> buf_;
  unsigned loopback_ = 0;
  std::uint8_t tos_ = 0;
  std::uint8_t protocol_ = 0;
  std::uint32_t seq_ = 0;
};

}  // namespace acmegw::sys
