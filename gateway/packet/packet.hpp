#pragma once
// IPv4/IPv6 + TCP header parsing of a queued packet. Pure: no syscalls, no allocation.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace acmegw::packet {

enum class Family : std::uint8_t { V4, V6 };

// An IP address in network byte order; v4 uses the first 4 bytes, the rest are zero.
struct Address {
  Family family = Family::V4;
  std::array<std::uint8_t, 16> bytes{};
  friend bool operator==(const Address&, const Address&) = default;
};

// Client-to-server direction of a TCP flow, as seen on the wire.
struct FlowKey {
  Address src;
  Address dst;
  std::uint16_t sport = 0;  // host byte order
  std::uint16_t dport = 0;  // host byte order
  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

// Hash for flow tables. Flow keys are chosen by remote peers, so a table that must resist
// collision flooding seeds this with a per-process random value (the default 0 is deterministic).
struct FlowKeyHash {
  std::uint64_t seed = 0;
  std::size_t operator()(const FlowKey& k) const noexcept;
};

namespace tcpflag {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
}  // namespace tcpflag

// TCP options of interest; absent options keep their defaults.
struct TcpOptions {
  std::optional<std::uint16_t> mss;
  std::optional<std::uint8_t> wscale;
  bool sack_permitted = false;
  bool has_timestamps = false;
  std::uint32_t ts_val = 0;
  std::uint32_t ts_ecr = 0;
};

struct PacketView {
  FlowKey key;
  std::uint32_t seq = 0;  // host byte order
  std::uint32_t ack = 0;
  std::uint16_t window = 0;  // raw (unscaled) window field
  std::uint8_t flags = 0;    // tcpflag bits
  std::uint8_t ip_header_len = 0;
  std::uint8_t tcp_header_len = 0;
  TcpOptions options;
  std::span<const std::byte> payload;  // views the input buffer
  bool payload_truncated = false;      // capture shorter than the IP length says
};

enum class ParseError : std::uint8_t {
  None,
  Truncated,     // shorter than the headers claim
  NotIp,         // version nibble is neither 4 nor 6
  NotTcp,        // protocol / next header is not TCP (v6 extension headers count as NotTcp)
  Fragment,      // IPv4 fragment (offset or MF set)
  BadHeaderLen,  // IHL < 5, data offset < 5, or lengths inconsistent
};

struct ParseResult {
  std::optional<PacketView> view;
  ParseError error = ParseError::None;
};

// Parses a packet starting at the IP header (as NFQUEUE delivers it). The view's payload and
// all fields are valid while `pkt` lives. Never reads outside `pkt`. Payload length comes from
// the IP total/payload length, clipped to what was captured.
[[nodiscard]] ParseResult parse(std::span<const std::byte> pkt) noexcept;

}  // namespace acmegw::packet
