#include "gateway/flow/recent.hpp"

namespace acmegw::flow {

RecentDecisions::RecentDecisions(std::uint64_t hash_seed) : hash_{hash_seed}, slots_(kSlots) {}

std::size_t RecentDecisions::slot_of(const packet::FlowKey& key) const noexcept {
  return hash_(key) & (kSlots - 1);
}

void RecentDecisions::record(const packet::FlowKey& key, std::uint32_t first_seq, Decided d,
                             TimePoint now) noexcept {
  slots_[slot_of(key)] = Entry{key, first_seq, d, true, now};
}

std::optional<Decided> RecentDecisions::lookup(const packet::FlowKey& key, std::uint32_t seq,
                                               TimePoint now) const noexcept {
  const Entry& e = slots_[slot_of(key)];
  if (!e.used || !(e.key == key) || now - e.at >= kMaxAge ||
      static_cast<std::uint32_t>(seq - e.first_seq) >= kSeqWindow) {
    return std::nullopt;
  }
  return e.decided;
}

}  // namespace acmegw::flow
