// Pure parts of the queue engine: packet message decoding (netlink bytes written field by field),
// the kernel's queue status file, and mark arithmetic.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <array>
#include <cstring>
#include <string_view>
#include <vector>

#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter/nfnetlink_queue.h>

#include "gateway/nfq/decode.hpp"
#include "gateway/nfq/verdict.hpp"
#include "gateway/sys/netlink.hpp"

namespace {

using acmegw::nfq::decode_packet;

// An NFQNL_MSG_PACKET as the kernel sends it (nfqnl_build_packet_message), with the attributes
// a test asks for.
struct PacketMsg {
  std::array<char, 512> buf{};
  nlmsghdr* nlh = nullptr;

  explicit PacketMsg(std::uint16_t queue) {
    nlh = nfq_nlmsg_put(buf.data(), NFQNL_MSG_PACKET, queue);  // nlmsghdr + nfgenmsg
  }
  PacketMsg& header(std::uint32_t id) {
    nfqnl_msg_packet_hdr ph{};
    ph.packet_id = htonl(id);        // packet_id, network order
    ph.hw_protocol = htons(0x0800);  // ETH_P_IP
    ph.hook = 0;                     // NF_INET_PRE_ROUTING
    mnl_attr_put(nlh, NFQA_PACKET_HDR, sizeof ph, &ph);
    return *this;
  }
  PacketMsg& mark(std::uint32_t m) {
    mnl_attr_put_u32(nlh, NFQA_MARK, htonl(m));  // skb->mark, network order
    return *this;
  }
  PacketMsg& payload(std::string_view bytes) {
    mnl_attr_put(nlh, NFQA_PAYLOAD, bytes.size(), bytes.data());
    return *this;
  }
};

}  // namespace

TEST_CASE("nfq decode: id, mark and packet bytes", "[nfq]") {
  PacketMsg m{3};
  m.header(0x01020304).mark(0x00100abc).payload("\x45\x00 packet bytes");
  const auto q = decode_packet(m.nlh);
  REQUIRE(q);
  CHECK(q->id == 0x01020304);
  CHECK(q->mark == 0x00100abc);
  REQUIRE(q->has_packet);
  CHECK(std::string_view(reinterpret_cast<const char*>(q->packet.data()), q->packet.size()) ==
        "\x45\x00 packet bytes");
  // The span views the message itself: no copy.
  CHECK(reinterpret_cast<const char*>(q->packet.data()) > m.buf.data());
  CHECK(reinterpret_cast<const char*>(q->packet.data()) < m.buf.data() + m.nlh->nlmsg_len);
}

TEST_CASE("nfq decode: absent mark is zero, absent payload is flagged", "[nfq]") {
  PacketMsg m{0};
  m.header(7);
  const auto q = decode_packet(m.nlh);
  REQUIRE(q);
  CHECK(q->id == 7);
  CHECK(q->mark == 0);
  CHECK_FALSE(q->has_packet);
  CHECK(q->packet.empty());
}

TEST_CASE("nfq decode: no packet header or a short one means nothing to verdict", "[nfq]") {
  PacketMsg none{0};
  none.mark(1).payload("x");
  CHECK_FALSE(decode_packet(none.nlh));

  PacketMsg shorty{0};
  const std::uint16_t two = 2;
  mnl_attr_put(shorty.nlh, NFQA_PACKET_HDR, sizeof two, &two);
  CHECK_FALSE(decode_packet(shorty.nlh));
}

TEST_CASE("queue status: the kernel's /proc format", "[nfq]") {
  // Two queues as net/netfilter/nfnetlink_queue.c prints them, plus a malformed line.
  constexpr std::string_view text =
      "    0  22211     3 2 65535     5     7      123  1\n"
      "garbage\n"
      "    1 4294967295     0 2 65535 18446744073709551615     0        9  1\n";
  const auto st = acmegw::sys::parse_queue_status(text);
  REQUIRE(st.size() == 2);
  CHECK(st[0].queue == 0);
  CHECK(st[0].portid == 22211);
  CHECK(st[0].waiting == 3);
  CHECK(st[0].copy_mode == 2);
  CHECK(st[0].copy_range == 65535);
  CHECK(st[0].queue_dropped == 5);
  CHECK(st[0].user_dropped == 7);
  CHECK(st[0].id_sequence == 123);
  CHECK(st[1].queue == 1);
  CHECK(st[1].portid == 4294967295u);
  CHECK(st[1].queue_dropped == 18446744073709551615ull);
  CHECK(acmegw::sys::parse_queue_status("").empty());
}

TEST_CASE("marks: only the bits under the mask are replaced", "[nfq]") {
  using acmegw::nfq::with_mark;
  CHECK(with_mark(0x0000'0000, 0x0010'0000, 0x00f0'0000) == 0x0010'0000);
  CHECK(with_mark(0xff0f'ffff, 0x0010'0000, 0x00f0'0000) == 0xff1f'ffff);  // others' bits kept
  CHECK(with_mark(0x0030'0001, 0x0020'0000, 0x00f0'0000) == 0x0020'0001);  // HOLD -> TAKEN
  CHECK(with_mark(0, 0xffff'ffff, 0x00f0'0000) == 0x00f0'0000);  // value clipped to the mask
}
