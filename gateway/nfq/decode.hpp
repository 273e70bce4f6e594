#pragma once
// Decoding of one NFQNL_MSG_PACKET netlink message into what the engine needs. Pure: no
// syscalls, no allocation; the result views the message.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

struct nlmsghdr;

namespace acmegw::nfq {

struct QueuedPacket {
  std::uint32_t id = 0;               // NFQA_PACKET_HDR packet_id: what the verdict names
  std::uint32_t mark = 0;             // NFQA_MARK (0 when absent: the kernel omits a zero mark)
  std::span<const std::byte> packet;  // NFQA_PAYLOAD from the IP header on; empty when absent
  bool has_packet = false;            // NFQA_PAYLOAD present (copy mode delivered bytes)
};

// Decodes `nlh` (an NFQNL_MSG_PACKET whose nlmsg_len the caller has checked with
// mnl_nlmsg_ok). Returns nullopt when it carries no valid packet id (nothing can be verdicted).
// The spans view `nlh` and are valid while it lives.
[[nodiscard]] std::optional<QueuedPacket> decode_packet(const nlmsghdr* nlh) noexcept;

}  // namespace acmegw::nfq
