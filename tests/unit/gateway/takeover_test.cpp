// Pure half of the takeover (gateway/takeover/snapshot.hpp): the snapshot the repaired socket
// is built from, and the RST bytes. Expected packets were computed independently (python
// struct + RFC 1071 checksum) and are written field by field.
#include <array>
#include <cstddef>
#include <string>

#include <catch2/catch.hpp>

#include "gateway/packet/packet.hpp"
#include "gateway/takeover/snapshot.hpp"

using namespace acmegw;

namespace {

packet::Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  packet::Address x;
  x.bytes[0] = a;
  x.bytes[1] = b;
  x.bytes[2] = c;
  x.bytes[3] = d;
  return x;
}

packet::Address v6(std::initializer_list<std::uint8_t> bytes) {
  packet::Address x;
  x.family = packet::Family::V6;
  std::size_t i = 0;
  for (const auto b : bytes) {
    x.bytes[i++] = b;
  }
  return x;
}

std::string hex(std::span<const std::byte> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const auto x : b) {
    out += kDigits[std::to_integer<unsigned>(x) >> 4];
    out += kDigits[std::to_integer<unsigned>(x) & 15];
  }
  return out;
}

}  // namespace

TEST_CASE("build_rst: IPv4 bytes and checksums", "[takeover]") {
  packet::FlowKey k;
  k.src = v4(192, 0, 2, 1);
  k.dst = v4(198, 51, 100, 80);
  k.sport = 40000;
  k.dport = 80;
  std::array<std::byte, takeover::kMaxRstLen> out{};
  const auto n = takeover::build_rst(k, 0x01020304, out);
  REQUIRE(n == 40);
  CHECK(hex(std::span{out}.first(n)) ==
        std::string("4500002800004000") +  // v4 IHL 5 | tos | len 40 | id 0 | DF
            "40064e4b" +                   // ttl 64 | tcp | header checksum
            "c0000201c6336450" +           // 192.0.2.1 -> 198.51.100.80
            "9c400050" +                   // 40000 -> 80
            "0102030400000000" +           // seq | ack 0
            "5004000022c50000");           // offset 5 | RST | window 0 | checksum | urg
  // The parser sees exactly the segment we meant.
  const auto p = packet::parse(std::span{out}.first(n));
  REQUIRE(p.view);
  CHECK(p.view->key == k);
  CHECK(p.view->seq == 0x01020304);
  CHECK(p.view->flags == packet::tcpflag::kRst);
  CHECK(p.view->payload.empty());
}

TEST_CASE("build_rst: IPv6 bytes and checksum", "[takeover]") {
  packet::FlowKey k;
  k.src = v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  k.dst = v6({0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80});
  k.sport = 40000;
  k.dport = 80;
  std::array<std::byte, takeover::kMaxRstLen> out{};
  const auto n = takeover::build_rst(k, 0xfffffff0, out);
  REQUIRE(n == 60);
  CHECK(hex(std::span{out}.first(n)) ==
        std::string("60000000") +                 // version 6, class 0, flow 0
            "00140640" +                          // payload 20 | tcp | hop limit 64
            "20010db8000000000000000000000001" +  // 2001:db8::1
            "20010db8000100000000000000000080" +  // 2001:db8:1::80
            "9c400050fffffff000000000" +          // ports | seq | ack
            "50040000b76b0000");                  // offset | RST | window | checksum | urg
}

TEST_CASE("make_snapshot: addresses come from the conntrack reply tuple", "[takeover]") {
  takeover::TakeoverRequest req;
  req.key.src = v4(192, 0, 2, 1);
  req.key.dst = v4(203, 0, 113, 10);  // public address, DNAT'd on the firewall
  req.key.sport = 40000;
  req.key.dport = 80;
  req.client_next = 1000;
  req.server_next = 2000;
  req.window = 502;
  req.options.has_timestamps = true;
  req.options.ts_val = 77;
  req.options.ts_ecr = 12345;  // odd: rounded up to even

  sys::ConntrackEntry ct;
  ct.reply.src = v4(10, 0, 0, 80);  // production's private address
  ct.reply.sport = 8080;
  ct.reply.dst = v4(192, 0, 2, 1);
  ct.reply.dport = 40000;
  ct.wscale_orig = 7;
  ct.wscale_repl = 9;
  ct.flags_orig = takeover::kCtFlagWindowScale | takeover::kCtFlagSackPerm;
  ct.flags_repl = takeover::kCtFlagWindowScale | takeover::kCtFlagSackPerm;

  const auto s = takeover::make_snapshot(req, ct);
  CHECK(s.tuple.src == ct.reply.dst);
  CHECK(s.tuple.sport == 40000);
  CHECK(s.tuple.dst == ct.reply.src);
  CHECK(s.tuple.dport == 8080);
  CHECK(s.rcv_nxt == 1000);
  CHECK(s.snd_nxt == 2000);
  CHECK(s.options.mss == 1360);
  CHECK(s.options.wscale);
  CHECK(s.options.snd_wscale == 7);
  CHECK(s.options.rcv_wscale == 9);
  CHECK(s.options.sack);
  CHECK(s.options.timestamps);
  CHECK(s.ts_next == 12346);
  CHECK(s.snd_wnd == 502u << 7);

  SECTION("even TSecr is kept") {
    req.options.ts_ecr = 12346;
    CHECK(takeover::make_snapshot(req, ct).ts_next == 12346);
  }
  SECTION("one side without window scaling or SACK turns both off") {
    ct.flags_repl = 0;
    const auto t = takeover::make_snapshot(req, ct);
    CHECK_FALSE(t.options.wscale);
    CHECK_FALSE(t.options.sack);
    CHECK(t.snd_wnd == 502);
  }
  SECTION("no timestamps on the segment: none on the socket") {
    req.options.has_timestamps = false;
    CHECK_FALSE(takeover::make_snapshot(req, ct).options.timestamps);
  }
  SECTION("IPv6 uses the v6 MSS and shifts are capped at 14") {
    req.key.src.family = packet::Family::V6;
    ct.wscale_orig = 15;
    const auto t = takeover::make_snapshot(req, ct, {1400, 1200});
    CHECK(t.options.mss == 1200);
    CHECK(t.options.snd_wscale == 14);
  }
}
