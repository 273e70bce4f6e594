#pragma once
// Flows decided moments ago, so that their segments still in the queue get the same verdict.
//
// The race (docs/architecture.md): segments of one flow sent back to back are all queued before
// the first one's verdict has saved the connmark, so they carry connmark 0 and arrive after the
// flow left the flow table. Without this they would look like a new flow starting mid-stream: a
// pipelined challenge-looking request of a PASS flow could be taken over, and a held mid-stream
// segment would set HOLD over PASS.
//
// Pure and bounded: a direct-mapped array of kSlots entries allocated once; recording overwrites
// whatever occupied the slot (a collision only loses the protection of an older entry, which then
// falls back on the takeover's own conntrack-mark check). An entry matches a segment only if it
// is younger than kMaxAge and the segment lies less than kSeqWindow past the flow's first byte, so
// a later connection reusing the 4-tuple (new ISN) is not mistaken for the old one.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "gateway/packet/packet.hpp"

namespace acmegw::flow {

enum class Decided : std::uint8_t {
  Pass,   // sent to production (PASS mark)
  Taken,  // taken over (TAKEN mark): the repaired socket takes the rest of the bytes
  Drop,   // dropped by policy "drop" (DROP mark): the ruleset drops the rest in the kernel
};

class RecentDecisions {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  static constexpr std::size_t kSlots = 4096;  // power of two
  // Queued segments wait at most a receive burst plus a few takeovers (~ms); generous.
  static constexpr std::chrono::milliseconds kMaxAge{1000};
  // Linux ISNs for one 4-tuple advance by ~2^24 per second (secure_tcp_seq: ns >> 6), so 2^20
  // past the first byte excludes a reconnect more than ~64 ms later; a queued burst is far less.
  static constexpr std::uint32_t kSeqWindow = 1u << 20;

  // Allocates the slots once. Flow keys are chosen by remote peers: seed the hash per process so
  // nobody can aim collisions at another flow's slot.
  explicit RecentDecisions(std::uint64_t hash_seed = 0);

  // Records that flow `key`, whose decided stream began at sequence number `first_seq`, was
  // decided `d` at `now`.
  void record(const packet::FlowKey& key, std::uint32_t first_seq, Decided d,
              TimePoint now) noexcept;

  // The decision recorded for `key` if a segment starting at `seq` belongs to that flow (recorded
  // less than kMaxAge before `now`, seq - first_seq < kSeqWindow modulo 2^32); nullopt otherwise.
  [[nodiscard]] std::optional<Decided> lookup(const packet::FlowKey& key, std::uint32_t seq,
                                              TimePoint now) const noexcept;

 private:
  struct Entry {
    packet::FlowKey key;
    std::uint32_t first_seq = 0;
    Decided decided = Decided::Pass;
    bool used = false;
    TimePoint at{};
  };
  static_assert((kSlots & (kSlots - 1)) == 0);

  [[nodiscard]] std::size_t slot_of(const packet::FlowKey& key) const noexcept;

  packet::FlowKeyHash hash_;
  std::vector<Entry> slots_;
};

}  // namespace acmegw::flow
