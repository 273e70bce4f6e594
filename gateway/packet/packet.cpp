#include "gateway/packet/packet.hpp"

#include <algorithm>
#include <cstring>

namespace acmegw::packet {
namespace {

constexpr std::size_t kIpv4MinHeader = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kTcpMinHeader = 20;
constexpr std::uint8_t kProtoTcp = 6;

// TCP option kinds and their only valid lengths (RFC 9293 §3.1, RFC 7323, RFC 2018).
constexpr std::uint8_t kOptEol = 0;
constexpr std::uint8_t kOptNop = 1;
constexpr std::uint8_t kOptMss = 2;
constexpr std::uint8_t kOptWscale = 3;
constexpr std::uint8_t kOptSackPermitted = 4;
constexpr std::uint8_t kOptTimestamps = 8;
constexpr std::uint8_t kLenMss = 4;
constexpr std::uint8_t kLenWscale = 3;
constexpr std::uint8_t kLenSackPermitted = 2;
constexpr std::uint8_t kLenTimestamps = 10;

// Callers check `off + width <= b.size()` first; these only assemble big-endian values.
std::uint8_t u8(std::span<const std::byte> b, std::size_t off) noexcept {
  return std::to_integer<std::uint8_t>(b[off]);
}
std::uint16_t be16(std::span<const std::byte> b, std::size_t off) noexcept {
  return static_cast<std::uint16_t>((u8(b, off) << 8) | u8(b, off + 1));
}
std::uint32_t be32(std::span<const std::byte> b, std::size_t off) noexcept {
  return (std::uint32_t{be16(b, off)} << 16) | be16(b, off + 2);
}

Address address(Family family, std::span<const std::byte> raw) noexcept {
  Address a;
  a.family = family;
  std::memcpy(a.bytes.data(), raw.data(), raw.size());
  return a;
}

ParseResult fail(ParseError e) noexcept {
  return ParseResult{std::nullopt, e};
}

// Walks the option bytes the way the kernel's tcp_parse_options() does: an option with a bad
// length ends the walk (what was found so far is kept); a known kind with an unexpected length
// is skipped, not believed.
TcpOptions parse_options(std::span<const std::byte> opts) noexcept {
  TcpOptions out;
  std::size_t i = 0;
  while (i < opts.size()) {
    const std::uint8_t kind = u8(opts, i);
    if (kind == kOptEol) {
      break;
    }
    if (kind == kOptNop) {
      ++i;
      continue;
    }
    if (opts.size() - i < 2) {
      break;
    }
    const std::uint8_t len = u8(opts, i + 1);
    if (len < 2 || len > opts.size() - i) {
      break;
    }
    if (kind == kOptMss && len == kLenMss) {
      out.mss = be16(opts, i + 2);
    } else if (kind == kOptWscale && len == kLenWscale) {
      out.wscale = u8(opts, i + 2);  // raw: the kernel clamps to 14, conntrack reports its own
    } else if (kind == kOptSackPermitted && len == kLenSackPermitted) {
      out.sack_permitted = true;
    } else if (kind == kOptTimestamps && len == kLenTimestamps) {
      out.has_timestamps = true;
      out.ts_val = be32(opts, i + 2);
      out.ts_ecr = be32(opts, i + 6);
    }
    i += len;
  }
  return out;
}

// Parses the TCP header in `l4`, which holds the IP payload as captured, of which the IP header
// claims `ip_payload_len` bytes. Fills everything but the addresses in `v`.
ParseResult parse_tcp(std::span<const std::byte> l4, std::size_t ip_payload_len,
                      PacketView v) noexcept {
  if (ip_payload_len < kTcpMinHeader) {
    return fail(ParseError::BadHeaderLen);
  }
  if (l4.size() < kTcpMinHeader) {
    return fail(ParseError::Truncated);
  }
  const std::size_t doff = (std::size_t{u8(l4, 12)} >> 4) * 4;
  if (doff < kTcpMinHeader || doff > ip_payload_len) {
    return fail(ParseError::BadHeaderLen);
  }
  if (doff > l4.size()) {
    return fail(ParseError::Truncated);
  }
  v.key.sport = be16(l4, 0);
  v.key.dport = be16(l4, 2);
  v.seq = be32(l4, 4);
  v.ack = be32(l4, 8);
  v.flags = u8(l4, 13);
  v.window = be16(l4, 14);
  v.tcp_header_len = static_cast<std::uint8_t>(doff);
  v.options = parse_options(l4.subspan(kTcpMinHeader, doff - kTcpMinHeader));
  // Ethernet padding beyond the IP length is not payload; a short capture is flagged.
  const std::size_t captured = std::min(l4.size(), ip_payload_len);
  v.payload = l4.subspan(doff, captured - doff);
  v.payload_truncated = l4.size() < ip_payload_len;
  return ParseResult{v, ParseError::None};
}

ParseResult parse_v4(std::span<const std::byte> pkt) noexcept {
  if (pkt.size() < kIpv4MinHeader) {
    return fail(ParseError::Truncated);
  }
  const std::size_t ihl = (std::size_t{u8(pkt, 0)} & 0x0fU) * 4;
  const std::size_t total = be16(pkt, 2);
  if (ihl < kIpv4MinHeader || total < ihl) {
    return fail(ParseError::BadHeaderLen);
  }
  if (pkt.size() < ihl) {
    return fail(ParseError::Truncated);
  }
  if ((be16(pkt, 6) & 0x3fffU) != 0) {  // MF or fragment offset; DF is fine
    return fail(ParseError::Fragment);
  }
  if (u8(pkt, 9) != kProtoTcp) {
    return fail(ParseError::NotTcp);
  }
  PacketView v;
  v.key.src = address(Family::V4, pkt.subspan(12, 4));
  v.key.dst = address(Family::V4, pkt.subspan(16, 4));
  v.ip_header_len = static_cast<std::uint8_t>(ihl);
  return parse_tcp(pkt.subspan(ihl), total - ihl, v);
}

ParseResult parse_v6(std::span<const std::byte> pkt) noexcept {
  if (pkt.size() < kIpv6Header) {
    return fail(ParseError::Truncated);
  }
  // Any extension header (hop-by-hop, routing, fragment, ...) counts as NotTcp: walking them is
  // not worth it for first segments of HTTP flows, and such packets go to production.
  if (u8(pkt, 6) != kProtoTcp) {
    return fail(ParseError::NotTcp);
  }
  PacketView v;
  v.key.src = address(Family::V6, pkt.subspan(8, 16));
  v.key.dst = address(Family::V6, pkt.subspan(24, 16));
  v.ip_header_len = static_cast<std::uint8_t>(kIpv6Header);
  return parse_tcp(pkt.subspan(kIpv6Header), be16(pkt, 4), v);
}

// 64-bit multiply-xorshift mixer (the MurmurHash3/SplitMix64 finalizer constants).
constexpr std::uint64_t mix(std::uint64_t h) noexcept {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

std::uint64_t load64(const std::uint8_t* p) noexcept {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

}  // namespace

ParseResult parse(std::span<const std::byte> pkt) noexcept {
  if (pkt.empty()) {
    return fail(ParseError::Truncated);
  }
  switch (u8(pkt, 0) >> 4) {
    case 4:
      return parse_v4(pkt);
    case 6:
      return parse_v6(pkt);
    default:
      return fail(ParseError::NotIp);
  }
}

std::size_t FlowKeyHash::operator()(const FlowKey& k) const noexcept {
  // Each word goes through the mixer before the next is folded in, so words cannot cancel out
  // (a plain xor of src and dst would hash both directions and all src==dst keys alike).
  std::uint64_t h = mix(seed ^ ((std::uint64_t{k.sport} << 32) | (std::uint64_t{k.dport} << 16) |
                                static_cast<std::uint64_t>(k.src.family)));
  for (const Address* a : {&k.src, &k.dst}) {
    h = mix(h ^ load64(a->bytes.data()));
    h = mix(h ^ load64(a->bytes.data() + 8));
  }
  return static_cast<std::size_t>(h);
}

}  // namespace acmegw::packet
