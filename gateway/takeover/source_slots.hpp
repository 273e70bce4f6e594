#pragma once
// Per-client cap on open taken-over connections (docs/configuration.md "Sessions"): one client
// (an IPv4 address, an IPv6 /64, what one attacker holds at least) may hold at most N sessions,
// so that it cannot take every place under --max-sessions from the CAs.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "backends/session_slot.hpp"
#include "gateway/packet/packet.hpp"

namespace acmegw::takeover {

class SourceSlots : public std::enable_shared_from_this<SourceSlots> {
 public:
  // The table never holds more entries than sessions are open (each entry holds >= 1 slot),
  // and those are bounded by --max-sessions.
  static std::shared_ptr<SourceSlots> create(std::uint32_t max_per_source);

  // A slot for one session of `src`; empty when `src` holds max_per_source already. The slot
  // returns its place when the last copy of it is destroyed (any thread).
  [[nodiscard]] backends::SessionSlot acquire(const packet::Address& src);

  // Distinct clients holding a slot now.
  [[nodiscard]] std::size_t clients() const;

  // IPv4: the address; IPv6: its /64 (family byte first, so the two never collide).
  using Key = std::array<std::uint8_t, 17>;
  [[nodiscard]] static Key key_of(const packet::Address& src) noexcept;

 private:
  explicit SourceSlots(std::uint32_t max_per_source) : max_(max_per_source) {}
  void release(const Key& k) noexcept;

  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };
  const std::uint32_t max_;
  mutable std::mutex mutex_;  // acquire/release happen once per session, not per packet
  std::unordered_map<Key, std::uint32_t, KeyHash> open_;
};

}  // namespace acmegw::takeover
