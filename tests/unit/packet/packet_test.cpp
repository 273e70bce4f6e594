// packet::parse() over wire fixtures written field by field, every truncation of them against a
// guard page, malformed headers, and FlowKeyHash.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "gateway/packet/packet.hpp"
#include "guarded_buffer.hpp"
#include "packet/segment_builder.hpp"

namespace {

using acmegw::packet::Address;
using acmegw::packet::Family;
using acmegw::packet::FlowKey;
using acmegw::packet::FlowKeyHash;
using acmegw::packet::parse;
using acmegw::packet::ParseError;
using acmegw::test::GuardedBuffer;
using acmegw::test::Segment;
namespace tcpflag = acmegw::packet::tcpflag;

std::vector<std::byte> bytes(std::initializer_list<int> wire, std::string_view tail = {}) {
  std::vector<std::byte> out;
  for (const int b : wire) {
    out.push_back(std::byte(static_cast<std::uint8_t>(b)));
  }
  for (const char c : tail) {
    out.push_back(std::byte(static_cast<std::uint8_t>(c)));
  }
  return out;
}

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  Address r;
  r.family = Family::V4;
  r.bytes = {a, b, c, d};
  return r;
}

Address v6(std::uint16_t last) {  // 2001:db8::last
  Address r;
  r.family = Family::V6;
  r.bytes = {0x20, 0x01, 0x0d, 0xb8};
  r.bytes[14] = static_cast<std::uint8_t>(last >> 8);
  r.bytes[15] = static_cast<std::uint8_t>(last & 0xff);
  return r;
}

std::string_view text(std::span<const std::byte> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

struct Expected {
  FlowKey key{};
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint16_t window = 0;
  std::uint8_t flags = 0;
  std::uint8_t ip_header_len = 0;
  std::uint8_t tcp_header_len = 0;
  std::optional<std::uint16_t> mss{};
  std::optional<std::uint8_t> wscale{};
  bool sack_permitted = false;
  bool has_timestamps = false;
  std::uint32_t ts_val = 0;
  std::uint32_t ts_ecr = 0;
  std::string_view payload{};
  std::size_t ip_total = 0;  // bytes the IP header accounts for (the rest of `wire` is padding)
};

struct Fixture {
  const char* description;
  std::vector<std::byte> wire;
  Expected expect;
};

std::vector<Fixture> fixtures() {
  std::vector<Fixture> f;
  f.push_back({
      "IPv4 SYN: Router Alert IP option, Linux SYN options (MSS, SACK-permitted, TS, wscale)",
      bytes({
          0x46, 0x00,              // version 4 | IHL 6 (24 bytes) | DSCP/ECN
          0x00, 0x40,              // total length 64 = 24 IP + 40 TCP
          0xbe, 0xef,              // identification
          0x40, 0x00,              // flags DF | fragment offset 0
          0x40, 0x06,              // TTL 64 | protocol TCP
          0x00, 0x00,              // header checksum (not checked)
          0xc0, 0x00, 0x02, 0x01,  // source 192.0.2.1
          0xc6, 0x33, 0x64, 0x07,  // destination 198.51.100.7
          0x94, 0x04, 0x00, 0x00,  // IP option: Router Alert (RFC 2113)
          0x9c, 0x40,              // source port 40000
          0x00, 0x50,              // destination port 80
          0x01, 0x02, 0x03, 0x04,  // sequence number
          0x00, 0x00, 0x00, 0x00,  // acknowledgment number
          0xa0, 0x02,              // data offset 10 (40 bytes) | SYN
          0xfa, 0xf0,              // window 64240
          0x00, 0x00, 0x00, 0x00,  // checksum | urgent pointer
          0x02, 0x04, 0x05, 0xb4,  // MSS 1460
          0x04, 0x02,              // SACK permitted
          0x08, 0x0a,              // timestamps:
          0x11, 0x22, 0x33, 0x44,  //   TSval
          0x00, 0x00, 0x00, 0x00,  //   TSecr
          0x01,                    // NOP
          0x03, 0x03, 0x07,        // window scale 7
      }),
      {.key = {v4(192, 0, 2, 1), v4(198, 51, 100, 7), 40000, 80},
       .seq = 0x01020304,
       .window = 64240,
       .flags = tcpflag::kSyn,
       .ip_header_len = 24,
       .tcp_header_len = 40,
       .mss = 1460,
       .wscale = 7,
       .sack_permitted = true,
       .has_timestamps = true,
       .ts_val = 0x11223344,
       .ip_total = 64},
  });
  f.push_back({
      "IPv4 data: NOP NOP TS, request payload, 2 bytes of link-layer padding after the IP length",
      bytes(
          {
              0x45, 0x00,              // version 4 | IHL 5 | DSCP/ECN
              0x00, 0x44,              // total length 68 = 20 IP + 32 TCP + 16 payload
              0x00, 0x01,              // identification
              0x00, 0x00,              // no flags | fragment offset 0
              0x40, 0x06,              // TTL 64 | protocol TCP
              0x00, 0x00,              // header checksum
              0xc0, 0x00, 0x02, 0x01,  // source 192.0.2.1
              0xc6, 0x33, 0x64, 0x07,  // destination 198.51.100.7
              0x9c, 0x40,              // source port 40000
              0x00, 0x50,              // destination port 80
              0x01, 0x02, 0x03, 0x05,  // sequence number
              0xa0, 0xb0, 0xc0, 0xd0,  // acknowledgment number
              0x80, 0x18,              // data offset 8 (32 bytes) | ACK PSH
              0x01, 0xf6,              // window 502
              0x00, 0x00, 0x00, 0x00,  // checksum | urgent pointer
              0x01, 0x01,              // NOP NOP
              0x08, 0x0a,              // timestamps:
              0x11, 0x22, 0x33, 0x45,  //   TSval
              0x55, 0x66, 0x77, 0x88,  //   TSecr
          },
          "GET / HTTP/1.1\r\n"  // payload (16 bytes)
          "\xee\xee"),          // padding: not payload
      {.key = {v4(192, 0, 2, 1), v4(198, 51, 100, 7), 40000, 80},
       .seq = 0x01020305,
       .ack = 0xa0b0c0d0,
       .window = 502,
       .flags = tcpflag::kAck | tcpflag::kPsh,
       .ip_header_len = 20,
       .tcp_header_len = 32,
       .has_timestamps = true,
       .ts_val = 0x11223345,
       .ts_ecr = 0x55667788,
       .payload = "GET / HTTP/1.1\r\n",
       .ip_total = 68},
  });
  f.push_back({
      "IPv6 data: no options",
      bytes(
          {
              0x60, 0x00, 0x00, 0x00,  // version 6 | traffic class | flow label
              0x00, 0x1b,              // payload length 27 = 20 TCP + 7
              0x06, 0x40,              // next header TCP | hop limit 64
              0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01,  // 2001:db8::1
              0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x80,  // 2001:db8::80
              0xc3, 0x50,              // source port 50000
              0x00, 0x50,              // destination port 80
              0xff, 0xff, 0xff, 0xff,  // sequence number
              0x00, 0x00, 0x00, 0x01,  // acknowledgment number
              0x50, 0x18,              // data offset 5 | ACK PSH
              0x00, 0x40,              // window 64
              0x00, 0x00, 0x00, 0x00,  // checksum | urgent pointer
          },
          "HEAD /x"),  // payload
      {.key = {v6(1), v6(0x80), 50000, 80},
       .seq = 0xffffffff,
       .ack = 1,
       .window = 64,
       .flags = tcpflag::kAck | tcpflag::kPsh,
       .ip_header_len = 40,
       .tcp_header_len = 20,
       .payload = "HEAD /x",
       .ip_total = 67},
  });
  f.push_back({
      "IPv4: bad TCP options: MSS of length 3 skipped, SACK-permitted kept, length 0 ends the walk",
      bytes(
          {
              0x45, 0x00,              // version 4 | IHL 5 | DSCP/ECN
              0x00, 0x31,              // total length 49 = 20 IP + 28 TCP + 1 payload
              0x00, 0x00,              // identification
              0x40, 0x00,              // flags DF | fragment offset 0
              0x40, 0x06,              // TTL 64 | protocol TCP
              0x00, 0x00,              // header checksum
              0xc0, 0x00, 0x02, 0x01,  // source 192.0.2.1
              0xc6, 0x33, 0x64, 0x07,  // destination 198.51.100.7
              0x9c, 0x40,              // source port 40000
              0x00, 0x50,              // destination port 80
              0x00, 0x00, 0x00, 0x01,  // sequence number
              0x00, 0x00, 0x00, 0x02,  // acknowledgment number
              0x70, 0x10,              // data offset 7 (28 bytes) | ACK
              0x00, 0x10,              // window 16
              0x00, 0x00, 0x00, 0x00,  // checksum | urgent pointer
              0x02, 0x03, 0x05,        // MSS with length 3: skipped, not believed
              0x04, 0x02,              // SACK permitted
              0x08, 0x00,              // timestamps with length 0: ends the walk
              0x08,                    // (never read as an option)
          },
          "Z"),  // payload
      {.key = {v4(192, 0, 2, 1), v4(198, 51, 100, 7), 40000, 80},
       .seq = 1,
       .ack = 2,
       .window = 16,
       .flags = tcpflag::kAck,
       .ip_header_len = 20,
       .tcp_header_len = 28,
       .sack_permitted = true,
       .payload = "Z",
       .ip_total = 49},
  });
  return f;
}

}  // namespace

TEST_CASE("parse: fixtures, field by field", "[packet]") {
  for (const auto& [description, wire, fx] : fixtures()) {
    CAPTURE(description);
    GuardedBuffer buf{std::span<const std::byte>{wire}};
    const auto r = parse(buf.bytes());
    REQUIRE(r.error == ParseError::None);
    REQUIRE(r.view);
    const auto& v = *r.view;
    CHECK(v.key == fx.key);
    CHECK(v.seq == fx.seq);
    CHECK(v.ack == fx.ack);
    CHECK(v.window == fx.window);
    CHECK(v.flags == fx.flags);
    CHECK(v.ip_header_len == fx.ip_header_len);
    CHECK(v.tcp_header_len == fx.tcp_header_len);
    CHECK(v.options.mss == fx.mss);
    CHECK(v.options.wscale == fx.wscale);
    CHECK(v.options.sack_permitted == fx.sack_permitted);
    CHECK(v.options.has_timestamps == fx.has_timestamps);
    CHECK(v.options.ts_val == fx.ts_val);
    CHECK(v.options.ts_ecr == fx.ts_ecr);
    CHECK(text(v.payload) == fx.payload);
    CHECK_FALSE(v.payload_truncated);
  }
}

TEST_CASE("parse: every truncation stays inside the capture and flags a short payload",
          "[packet]") {
  for (const auto& [description, wire, fx] : fixtures()) {
    const std::size_t headers = fx.ip_header_len + fx.tcp_header_len;
    GuardedBuffer buf{wire.size()};
    for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
      CAPTURE(description, cut);
      const auto in = buf.assign(std::span{wire}.first(cut));  // ends at a PROT_NONE page
      const auto r = parse(in);
      if (cut < headers) {
        CHECK_FALSE(r.view);
        CHECK(r.error == ParseError::Truncated);
        continue;
      }
      REQUIRE(r.view);
      const auto& p = r.view->payload;
      CHECK(text(p) == fx.payload.substr(0, std::min(cut, fx.ip_total) - headers));
      CHECK(p.data() == in.data() + headers);  // a view of the input, not a copy
      CHECK(r.view->payload_truncated == (cut < fx.ip_total));
    }
  }
}

TEST_CASE("parse: malformed and unsupported packets", "[packet]") {
  struct Case {
    const char* description;
    Segment seg;
    void (*mutate)(std::vector<std::byte>&);
    ParseError expected;
  };
  const auto none = [](std::vector<std::byte>&) {};
  Segment v6seg;
  v6seg.family = Family::V6;
  v6seg.payload = "GET /";
  Segment v6ext = v6seg;
  v6ext.protocol = 60;                      // destination options header follows
  v6ext.v6_ext = {6, 0, 1, 4, 0, 0, 0, 0};  // next header TCP | length 0 | PadN(4)
  Segment udp;
  udp.protocol = 17;
  Segment more_fragments;
  more_fragments.frag = 0x2000;  // MF
  Segment later_fragment;
  later_fragment.frag = 0x0001;  // offset 8 bytes
  const Case cases[] = {
      {"version 5", {}, [](auto& w) { w[0] = std::byte{0x55}; }, ParseError::NotIp},
      {"IHL 4", {}, [](auto& w) { w[0] = std::byte{0x44}; }, ParseError::BadHeaderLen},
      {"total length below IHL",
       {},
       [](auto& w) { w[3] = std::byte{19}; },
       ParseError::BadHeaderLen},
      {"total length leaves 10 bytes for TCP",
       {},
       [](auto& w) { w[3] = std::byte{30}; },
       ParseError::BadHeaderLen},
      {"TCP data offset 4", {}, [](auto& w) { w[32] = std::byte{0x40}; }, ParseError::BadHeaderLen},
      {"TCP data offset beyond the IP length",
       {},
       [](auto& w) { w[32] = std::byte{0xf0}; },
       ParseError::BadHeaderLen},
      {"IPv4 UDP", udp, none, ParseError::NotTcp},
      {"IPv4 first fragment (MF)", more_fragments, none, ParseError::Fragment},
      {"IPv4 later fragment", later_fragment, none, ParseError::Fragment},
      {"IPv6 destination options before TCP", v6ext, none, ParseError::NotTcp},
      {"IPv6 TCP header cut by the payload length", v6seg, [](auto& w) { w[5] = std::byte{19}; },
       ParseError::BadHeaderLen},
  };
  for (const Case& c : cases) {
    CAPTURE(c.description);
    auto wire = acmegw::test::build(c.seg);
    c.mutate(wire);
    GuardedBuffer buf{std::span<const std::byte>{wire}};
    const auto r = parse(buf.bytes());
    CHECK_FALSE(r.view);
    CHECK(r.error == c.expected);
  }
  CHECK(parse({}).error == ParseError::Truncated);
}

TEST_CASE("FlowKeyHash: equal keys agree, any field change and the direction change it",
          "[packet]") {
  const FlowKey base{v4(192, 0, 2, 1), v4(198, 51, 100, 7), 40000, 80};
  std::vector<FlowKey> keys{base};
  auto k = base;
  k.sport = 40001;
  keys.push_back(k);
  k = base;
  k.dport = 81;
  keys.push_back(k);
  k = base;
  k.src.bytes[3] = 2;
  keys.push_back(k);
  k = base;
  k.dst.bytes[0] = 199;
  keys.push_back(k);
  keys.push_back({base.dst, base.src, base.dport, base.sport});  // reverse direction
  keys.push_back({v6(1), v6(0x80), 40000, 80});

  const FlowKeyHash h;
  std::unordered_set<std::size_t> seen;
  for (const auto& key : keys) {
    seen.insert(h(key));
  }
  CHECK(seen.size() == keys.size());
  CHECK(h(base) == FlowKeyHash{}(FlowKey{base}));
  CHECK(FlowKeyHash{1}(base) != h(base));  // the seed takes part
}
