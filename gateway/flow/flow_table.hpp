#pragma once
// The table of undecided flows: client segments held in NFQUEUE until the classifier can decide
// the flow (DESIGN.md §2 "need more bytes"). Pure: no syscalls, no logging, no clock (the caller
// passes `now`), no exceptions. The table never issues verdicts itself; it tells the caller which
// queued packets to verdict and how, and owns the duty to verdict a held packet until it hands
// the packet back in a Result.
//
// A flow enters the table only when its first payload segment is a valid but incomplete start
// (classifier NeedMore), and leaves it the moment it is decided. Decided production flows leave
// no state here: the PASS mark moves them to the kernel fast path.
//
// Stream model (offsets relative to S = seq of the first payload segment seen):
//
//      S                                       S + held
//      |<- seg 0 ->|<---- seg 1 ---->|<- seg 2 ->|         next expected offset = held
//   in order  (offset == held) ...................... append, classify the whole prefix
//   retransmission from offset 0, no new bytes ....... Production (Stalled: RTO, cwnd is 1;
//                                                      with one held segment: the second time)
//   retransmission within (0, held), same bytes ...... Drop (the held originals are delivered)
//   retransmission from < held past held, same bytes . hold it, append only the new bytes
//   different bytes for held offsets, or before S .... Production (Overlap, fail open)
//   offset > held (gap: a segment passed elsewhere) .. Production (Gap, fail open)
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "classifier/classify.hpp"
#include "gateway/packet/packet.hpp"

namespace acmegw::flow {

using TimePoint = std::chrono::steady_clock::time_point;

// Bounds; every one of them, when hit, sends the flow to production (fail open).
struct Limits {
  std::uint32_t max_flows = 65536;               // undecided flows held at once
  std::uint32_t max_segments_per_flow = 32;      // queued packets held per flow
  std::chrono::milliseconds hold_timeout{2000};  // from the flow's first held segment
  std::uint64_t max_total_bytes = 64u << 20;     // payload bytes held over all flows
  classifier::Limits classifier;                 // also bounds the bytes held per flow
};

// What the caller does with the packet it just offered (and with the flow's held packets).
enum class Action : std::uint8_t {
  Hold,        // the segment is now held; the table owns its verdict
  Production,  // verdict every packet in Result::packets with PASS, in order
  Challenge,   // take the flow over, then verdict Result::packets with TAKEN (PASS on failure)
  Drop,        // retransmission of held bytes only: drop it (the held originals are delivered)
  Accept,      // no payload on an undecided flow: accept it unmarked, the flow stays undecided
};

// Why a flow went to production (None for Hold/Challenge/Drop/Accept).
enum class Cause : std::uint8_t {
  None,
  Classified,      // the classifier said production (see Result::classification.reason)
  ClientEnd,       // FIN or RST from the client before a decision
  Gap,             // a later segment than expected: an earlier one bypassed the queue
  Overlap,         // bytes that differ from held bytes at the same offsets, or before S
  Truncated,       // the queue delivered a partial packet (capture shorter than the packet)
  SegmentLimit,    // Limits::max_segments_per_flow
  ByteLimit,       // more bytes than the classifier limit of the flow's protocol
  Stalled,         // the client retransmits its first held bytes: it waits for an ACK first
  TotalBytes,      // Limits::max_total_bytes
  TableFull,       // Limits::max_flows
  Timeout,         // Limits::hold_timeout (from pop_expired)
  HoldMarkFailed,  // the caller could not mark the flow HOLD (from evict)
  Shutdown,        // the process stops (from drain)
  // Set by the caller for a Challenge it could not take over:
  NoTakeover,      // no takeover/backend configured
  TakeoverFailed,  // the takeover failed at some step
  NotServed,       // no backend answers this challenge (e.g. an unregistered tls-alpn-01 name)
};
inline constexpr std::size_t kCauseCount = static_cast<std::size_t>(Cause::NotServed) + 1;

// Stable lower-case name of a cause, for counters and logs.
[[nodiscard]] std::string_view to_string(Cause c) noexcept;

// One queued packet whose verdict the caller owes.
struct HeldPacket {
  std::uint32_t id = 0;    // NFQUEUE packet id
  std::uint32_t mark = 0;  // skb mark as queued: the verdict replaces only the bits under the mask
};

// The flow as the client sent it so far (what a takeover needs).
struct FlowSnapshot {
  packet::FlowKey key;
  std::uint32_t first_seq = 0;        // S: seq of the first payload byte
  std::uint32_t ack = 0;              // A: ack number of the newest held segment
  std::uint16_t window = 0;           // raw window of the newest held segment
  packet::TcpOptions options;         // of the newest held segment
  std::span<const std::byte> stream;  // contiguous client bytes from S
};

// Everything in a Result views memory owned by the table or by the offered packet; it stays
// valid until the next non-const call on the table, and while the offered packet lives.
struct Result {
  Action action = Action::Hold;
  Cause cause = Cause::None;
  bool started_holding = false;         // the flow just entered the table (mark its connmark HOLD)
  std::span<const HeldPacket> packets;  // Production/Challenge: held packets in stream order,
                                        // the offered one last
  classifier::Classification classification;  // of `flow.stream` when it was classified
  FlowSnapshot flow;
};

class FlowTable {
 public:
  // Allocates the index and the slot array (no per-flow buffers yet: those grow on first use
  // and are kept for reuse, so a steady state allocates nothing).
  explicit FlowTable(const Limits& limits);

  // Offers one queued client segment of a protected flow. `protocol` is the protected endpoint's
  // protocol. Returns what to do with it; see Action. Never throws.
  [[nodiscard]] Result on_segment(const packet::PacketView& pkt, std::uint32_t packet_id,
                                  std::uint32_t mark, classifier::Protocol protocol,
                                  TimePoint now) noexcept;

  // Removes the oldest flow whose hold time is over at `now`: a Production(Timeout) result, or
  // nullopt when none is due. Call repeatedly until nullopt.
  [[nodiscard]] std::optional<Result> pop_expired(TimePoint now) noexcept;

  // Removes the flow `key` (if held) as Production(cause).
  [[nodiscard]] std::optional<Result> evict(const packet::FlowKey& key, Cause cause) noexcept;

  // Removes any one flow as Production(Shutdown); nullopt when empty. For shutdown.
  [[nodiscard]] std::optional<Result> drain() noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return in_use_; }
  [[nodiscard]] std::uint64_t held_bytes() const noexcept { return total_bytes_; }

 private:
  static constexpr std::uint32_t kNone = UINT32_MAX;

  struct Slot {
    packet::FlowKey key;
    classifier::Protocol protocol = classifier::Protocol::Http;
    std::uint32_t first_seq = 0;
    std::uint32_t ack = 0;
    std::uint16_t window = 0;
    packet::TcpOptions options;
    TimePoint deadline;
    std::vector<std::byte> bytes;     // capacity kept across reuse
    std::vector<HeldPacket> packets;  // in arrival order; capacity kept across reuse
    bool head_retransmitted = false;  // the first held bytes were retransmitted once
    std::uint32_t prev = kNone;       // age list (in use) / free list (next only)
    std::uint32_t next = kNone;
  };

  [[nodiscard]] std::uint32_t find(const packet::FlowKey& key) const noexcept;
  [[nodiscard]] std::uint32_t insert(const packet::FlowKey& key) noexcept;
  void erase(std::uint32_t slot) noexcept;
  [[nodiscard]] Result single(const packet::PacketView& pkt, std::uint32_t id, std::uint32_t mark,
                              Action action, Cause cause) noexcept;
  [[nodiscard]] Result decide(std::uint32_t slot, Action action, Cause cause,
                              const HeldPacket* extra) noexcept;
  [[nodiscard]] Result on_held(std::uint32_t slot, const packet::PacketView& pkt,
                               HeldPacket hp) noexcept;
  [[nodiscard]] std::size_t bucket_of(const packet::FlowKey& key) const noexcept;

  Limits limits_;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> index_;  // open addressing, linear probing, slot numbers
  std::size_t index_mask_ = 0;
  std::uint32_t free_head_ = kNone;
  std::uint32_t oldest_ = kNone;  // age list: deadlines are in insertion order
  std::uint32_t newest_ = kNone;
  std::size_t in_use_ = 0;
  std::uint64_t total_bytes_ = 0;
  std::vector<HeldPacket> release_;  // backs Result::packets; reserved for a full flow + 1
};

}  // namespace acmegw::flow
