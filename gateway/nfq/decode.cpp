#include "gateway/nfq/decode.hpp"

#include <arpa/inet.h>

#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter/nfnetlink_queue.h>

namespace acmegw::nfq {

std::optional<QueuedPacket> decode_packet(const nlmsghdr* nlh) noexcept {
  // nfq_nlmsg_parse validates each attribute's length against its type (mnl_attr_validate)
  // before we read it.
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr ||
      mnl_attr_get_payload_len(attr[NFQA_PACKET_HDR]) < sizeof(nfqnl_msg_packet_hdr)) {
    return std::nullopt;
  }
  QueuedPacket out;
  const auto* ph =
      static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  out.id = ntohl(ph->packet_id);
  if (attr[NFQA_MARK] != nullptr) {
    out.mark = ntohl(mnl_attr_get_u32(attr[NFQA_MARK]));
  }
  if (attr[NFQA_PAYLOAD] != nullptr) {
    out.has_packet = true;
    out.packet = {static_cast<const std::byte*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD])),
                  mnl_attr_get_payload_len(attr[NFQA_PAYLOAD])};
  }
  return out;
}

}  // namespace acmegw::nfq
