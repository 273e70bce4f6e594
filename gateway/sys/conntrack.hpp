#pragma once
// ctnetlink access (libnetfilter_conntrack), the one place that talks to conntrack.
// Used by the engine (mark a held flow so the in-kernel prefilter skips its later segments) and
// by the takeover (read window scale / SACK / the reply tuple of the flow being taken over).
#include <cstdint>
#include <memory>
#include <optional>

#include "gateway/packet/packet.hpp"
#include "gateway/sys/result.hpp"

namespace acmegw::sys {

struct ConntrackEntry {
  packet::FlowKey reply;            // reply tuple as conntrack stores it (src = real production
                                    // address after DNAT, dst = client or its SNAT address)
  std::uint8_t wscale_orig = 0;     // ATTR_TCP_WSCALE_ORIG (client's shift)
  std::uint8_t wscale_repl = 0;     // ATTR_TCP_WSCALE_REPL (server's shift)
  std::uint8_t flags_orig = 0;      // ATTR_TCP_FLAGS_ORIG (IP_CT_TCP_FLAG_*)
  std::uint8_t flags_repl = 0;      // ATTR_TCP_FLAGS_REPL
  std::uint32_t mark = 0;
};

// One netlink socket per user (not thread-safe); open one per queue worker.
class Conntrack {
 public:
  // Opens a NETLINK_NETFILTER socket. Errors are returned, never thrown.
  static SysResult<std::unique_ptr<Conntrack>> open() noexcept;
  ~Conntrack();
  Conntrack(const Conntrack&) = delete;
  Conntrack& operator=(const Conntrack&) = delete;

  // Looks up the entry whose ORIGINAL tuple is `orig` (TCP). ENOENT when there is none.
  SysResult<ConntrackEntry> get(const packet::FlowKey& orig) noexcept;
  // Replaces the bits of the entry's mark under `mask` with `value`.
  SysResult<bool> set_mark(const packet::FlowKey& orig, std::uint32_t value,
                           std::uint32_t mask) noexcept;

 private:
  struct Handle;
  explicit Conntrack(std::unique_ptr<Handle> h) noexcept;
  std::unique_ptr<Handle> h_;
};

}  // namespace acmegw::sys
