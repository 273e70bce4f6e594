#include "gateway/takeover/snapshot.hpp"

#include <algorithm>

namespace acmegw::takeover {
namespace {

constexpr std::uint8_t kProtoTcp = 6;
constexpr std::size_t kTcpHeaderLen = 20;

// Big-endian writers over a fixed span: every offset below is a compile-time header offset.
void put16(std::span<std::byte> out, std::size_t at, std::uint16_t v) noexcept {
  out[at] = std::byte(v >> 8);
  out[at + 1] = std::byte(v & 0xff);
}
void put32(std::span<std::byte> out, std::size_t at, std::uint32_t v) noexcept {
  put16(out, at, static_cast<std::uint16_t>(v >> 16));
  put16(out, at + 2, static_cast<std::uint16_t>(v & 0xffff));
}

// One's-complement sum of 16-bit big-endian words (RFC 1071), not yet folded.
std::uint32_t sum16(std::span<const std::byte> data, std::uint32_t acc = 0) noexcept {
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2) {
    acc += (std::to_integer<std::uint32_t>(data[i]) << 8) |
           std::to_integer<std::uint32_t>(data[i + 1]);
  }
  if (i < data.size()) {
    acc += std::to_integer<std::uint32_t>(data[i]) << 8;
  }
  return acc;
}

std::uint16_t fold(std::uint32_t acc) noexcept {
  while (acc >> 16) {
    acc = (acc & 0xffff) + (acc >> 16);
  }
  return static_cast<std::uint16_t>(~acc & 0xffff);
}

std::span<const std::byte> addr_bytes(const packet::Address& a) noexcept {
  return std::as_bytes(std::span{a.bytes}).first(a.family == packet::Family::V4 ? 4 : 16);
}

}  // namespace

FlowSnapshot make_snapshot(const TakeoverRequest& req, const sys::ConntrackEntry& ct,
                           const MssPolicy& mss) noexcept {
  FlowSnapshot s;
  s.tuple.src = ct.reply.dst;
  s.tuple.sport = ct.reply.dport;
  s.tuple.dst = ct.reply.src;
  s.tuple.dport = ct.reply.sport;
  s.rcv_nxt = req.client_next;
  s.snd_nxt = req.server_next;
  s.options.mss = req.key.src.family == packet::Family::V4 ? mss.v4 : mss.v6;
  s.options.wscale = (ct.flags_orig & kCtFlagWindowScale) && (ct.flags_repl & kCtFlagWindowScale);
  if (s.options.wscale) {
    // RFC 7323 §2.3: shifts above 14 are treated as 14.
    s.options.snd_wscale = std::min<std::uint8_t>(ct.wscale_orig, 14);
    s.options.rcv_wscale = std::min<std::uint8_t>(ct.wscale_repl, 14);
  }
  s.options.sack = (ct.flags_orig & kCtFlagSackPerm) && (ct.flags_repl & kCtFlagSackPerm);
  s.options.timestamps = req.options.has_timestamps;
  if (s.options.timestamps) {
    s.ts_next = (req.options.ts_ecr + 1) & ~std::uint32_t{1};
  }
  s.snd_wnd = static_cast<std::uint32_t>(req.window) << s.options.snd_wscale;
  return s;
}

std::size_t build_rst(const packet::FlowKey& key, std::uint32_t seq,
                      std::span<std::byte, kMaxRstLen> out) noexcept {
  std::fill(out.begin(), out.end(), std::byte{0});
  const bool v4 = key.src.family == packet::Family::V4;
  const std::size_t ip_len = v4 ? 20 : 40;
  const std::size_t total = ip_len + kTcpHeaderLen;
  const auto src = addr_bytes(key.src);
  const auto dst = addr_bytes(key.dst);
  if (v4) {
    out[0] = std::byte{0x45};                             // version 4 | IHL 5
    put16(out, 2, static_cast<std::uint16_t>(total));     // total length
    put16(out, 6, 0x4000);                                // DF, fragment offset 0
    out[8] = std::byte{64};                               // TTL
    out[9] = std::byte{kProtoTcp};                        // protocol
    std::copy(src.begin(), src.end(), out.begin() + 12);  // source
    std::copy(dst.begin(), dst.end(), out.begin() + 16);  // destination
    put16(out, 10, fold(sum16(out.first(20))));           // header checksum
  } else {
    out[0] = std::byte{0x60};                                  // version 6, class 0, flow 0
    put16(out, 4, static_cast<std::uint16_t>(kTcpHeaderLen));  // payload length
    out[6] = std::byte{kProtoTcp};                             // next header
    out[7] = std::byte{64};                                    // hop limit
    std::copy(src.begin(), src.end(), out.begin() + 8);        // source
    std::copy(dst.begin(), dst.end(), out.begin() + 24);       // destination
  }
  const auto tcp = out.subspan(ip_len, kTcpHeaderLen);
  put16(tcp, 0, key.sport);                    // source port
  put16(tcp, 2, key.dport);                    // destination port
  put32(tcp, 4, seq);                          // sequence number
  tcp[12] = std::byte{5 << 4};                 // data offset 5 words, no options
  tcp[13] = std::byte{packet::tcpflag::kRst};  // flags: RST only (RFC 9293 §3.10.7.4)
  // Pseudo-header (RFC 9293 §3.1 / RFC 8200 §8.1): addresses, protocol, TCP length.
  std::uint32_t acc = sum16(src, sum16(dst));
  acc += kProtoTcp + kTcpHeaderLen;
  put16(tcp, 16, fold(sum16(tcp, acc)));  // checksum
  return total;
}

}  // namespace acmegw::takeover
