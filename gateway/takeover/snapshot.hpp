#pragma once
// Pure half of the takeover: what the repaired socket must look like (FlowSnapshot), computed
// from the held segment and the conntrack entry, and the bytes of the spoofed RST to production.
// No syscalls, no allocation; tested without root (tests/unit/gateway/takeover_test.cpp).
#include <cstddef>
#include <cstdint>
#include <span>

#include "gateway/packet/packet.hpp"
#include "gateway/sys/conntrack.hpp"
#include "gateway/sys/repair.hpp"
#include "gateway/takeover/takeover.hpp"

namespace acmegw::takeover {

// conntrack keeps no client MSS (it is only in the SYN, which is never queued), so the
// repaired socket gets a fixed clamp; the kernel lowers it further to the route's PMTU.
// Defaults leave room for PPPoE/tunnels on the client's path (docs/takeover.md).
struct MssPolicy {
  std::uint16_t v4 = 1360;
  std::uint16_t v6 = 1220;
};

// Everything restore_established() needs, with the addresses as the *socket* sees the flow.
struct FlowSnapshot {
  // Client -> production after NAT (conntrack's reply tuple reversed): the socket binds
  // tuple.dst:dport (production as the delivered packets name it: the post-DNAT address) and
  // connects to tuple.src:sport; the RST to production travels along this same tuple.
  packet::FlowKey tuple;
  std::uint32_t rcv_nxt = 0;  // S: first byte the client sent and production never acked
  std::uint32_t snd_nxt = 0;  // A: next byte production would have sent
  sys::RepairOptions options;
  std::uint32_t ts_next = 0;  // TCP_TIMESTAMP value when options.timestamps
  std::uint32_t snd_wnd = 0;  // client's receive window in bytes (scaled)
};

// IP_CT_TCP_FLAG_* (linux/netfilter/nf_conntrack_tcp.h), as ConntrackEntry::flags_* carry them.
inline constexpr std::uint8_t kCtFlagWindowScale = 0x01;
inline constexpr std::uint8_t kCtFlagSackPerm = 0x02;

// Builds the snapshot. Window scaling and SACK are on only when conntrack saw both sides offer
// them; timestamps follow the held segment. TSval continues at TSecr, rounded up to even
// (kernels >= 6.7 read bit 0 of TCP_TIMESTAMP as "microsecond clock").
[[nodiscard]] FlowSnapshot make_snapshot(const TakeoverRequest& req, const sys::ConntrackEntry& ct,
                                         const MssPolicy& mss = {}) noexcept;

inline constexpr std::size_t kMaxRstLen = 60;  // IPv6 (40) + TCP (20) headers

// Writes an IPv4 or IPv6 TCP segment with only RST set, from key.src:sport to key.dst:dport,
// sequence `seq`, both checksums filled, into `out`. Returns the packet length (40 or 60).
[[nodiscard]] std::size_t build_rst(const packet::FlowKey& key, std::uint32_t seq,
                                    std::span<std::byte, kMaxRstLen> out) noexcept;

}  // namespace acmegw::takeover
