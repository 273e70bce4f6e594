#pragma once
// Test helper: a TCP segment described field by field, serialized as it goes on the wire from
// the IP header on (what NFQUEUE delivers and xt_bpf sees). Checksums stay zero: nothing under
// test reads them.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gateway/packet/packet.hpp"

namespace acmegw::test {

struct Segment {
  packet::Family family = packet::Family::V4;
  std::array<std::uint8_t, 16> src{192, 0, 2, 1};  // v4 uses the first 4 bytes
  std::array<std::uint8_t, 16> dst{198, 51, 100, 7};
  std::uint16_t sport = 40000;
  std::uint16_t dport = 80;
  std::uint32_t seq = 0x01020304;
  std::uint32_t ack = 0xa0b0c0d0;
  std::uint8_t flags = packet::tcpflag::kAck | packet::tcpflag::kPsh;
  std::uint16_t window = 502;
  std::vector<std::uint8_t> ip_options;   // v4 only; a multiple of 4, at most 40 bytes
  std::vector<std::uint8_t> tcp_options;  // a multiple of 4, at most 40 bytes
  std::string payload;
  std::uint16_t frag = 0x4000;       // v4 flags + fragment offset: DF only
  std::uint8_t protocol = 6;         // v4 protocol, or v6 next header after the fixed header
  std::vector<std::uint8_t> v6_ext;  // v6: bytes between the fixed header and TCP (protocol
                                     // must then name the first extension header)
};

inline void put16(std::vector<std::byte>& out, std::uint16_t v) {
  out.push_back(std::byte(v >> 8));
  out.push_back(std::byte(v & 0xff));
}
inline void put32(std::vector<std::byte>& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v & 0xffff));
}
inline void put(std::vector<std::byte>& out, const auto& bytes) {
  for (const auto b : bytes) {
    out.push_back(std::byte(static_cast<std::uint8_t>(b)));
  }
}

// Serializes `s`: IP header (+ options or extension header), TCP header (+ options), payload.
inline std::vector<std::byte> build(const Segment& s) {
  const std::size_t tcp_len = 20 + s.tcp_options.size();
  std::vector<std::byte> out;
  if (s.family == packet::Family::V4) {
    const std::size_t ihl = 20 + s.ip_options.size();
    out.push_back(std::byte(0x40 | (ihl / 4)));                                // version 4 | IHL
    out.push_back(std::byte{0});                                               // DSCP | ECN
    put16(out, static_cast<std::uint16_t>(ihl + tcp_len + s.payload.size()));  // total length
    put16(out, 0x1234);                                                        // identification
    put16(out, s.frag);                                                        // flags | offset
    out.push_back(std::byte{64});                                              // TTL
    out.push_back(std::byte{s.protocol});                                      // protocol
    put16(out, 0);                                                             // header checksum
    put(out, std::span{s.src}.first(4));                                       // source address
    put(out, std::span{s.dst}.first(4));                                       // destination
    put(out, s.ip_options);                                                    // options
  } else {
    put32(out, 0x60000000);  // version 6 | traffic class | flow label
    put16(out, static_cast<std::uint16_t>(s.v6_ext.size() + tcp_len +
                                          s.payload.size()));  // payload length
    out.push_back(std::byte{s.protocol});                      // next header
    out.push_back(std::byte{64});                              // hop limit
    put(out, s.src);                                           // source address
    put(out, s.dst);                                           // destination address
    put(out, s.v6_ext);                                        // extension headers
  }
  put16(out, s.sport);                                                      // source port
  put16(out, s.dport);                                                      // destination port
  put32(out, s.seq);                                                        // sequence number
  put32(out, s.ack);                                                        // acknowledgment number
  out.push_back(std::byte(static_cast<std::uint8_t>((tcp_len / 4) << 4)));  // data offset | rsvd
  out.push_back(std::byte{s.flags});                                        // flags
  put16(out, s.window);                                                     // window
  put16(out, 0);                                                            // checksum
  put16(out, 0);                                                            // urgent pointer
  put(out, s.tcp_options);                                                  // options
  put(out, s.payload);                                                      // payload
  return out;
}

}  // namespace acmegw::test
