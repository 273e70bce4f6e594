#include "gateway/takeover/source_slots.hpp"

#include <algorithm>

namespace acmegw::takeover {

namespace {
constexpr std::size_t kV6PrefixBytes = 8;  // a /64: what a single site is given
}

std::shared_ptr<SourceSlots> SourceSlots::create(std::uint32_t max_per_source) {
  return std::shared_ptr<SourceSlots>(new SourceSlots(max_per_source));
}

SourceSlots::Key SourceSlots::key_of(const packet::Address& src) noexcept {
  Key k{};
  const bool v4 = src.family == packet::Family::V4;
  k[0] = v4 ? 4 : 6;
  const std::size_t n = v4 ? 4 : kV6PrefixBytes;
  std::copy_n(src.bytes.begin(), n, k.begin() + 1);
  return k;
}

std::size_t SourceSlots::KeyHash::operator()(const Key& k) const noexcept {
  // FNV-1a. The keys are client addresses, but the table holds at most --max-sessions
  // entries, so a collision flood costs at most that many comparisons per session start.
  std::uint64_t h = 1469598103934665603ULL;
  for (const std::uint8_t b : k) {
    h = (h ^ b) * 1099511628211ULL;
  }
  return static_cast<std::size_t>(h);
}

backends::SessionSlot SourceSlots::acquire(const packet::Address& src) {
  const Key k = key_of(src);
  {
    const std::lock_guard lock(mutex_);
    std::uint32_t& n = open_[k];
    if (n >= max_) {
      return {};
    }
    ++n;
  }
  // The pointer is only a non-null tag; the deleter gives the place back.
  return backends::SessionSlot(static_cast<void*>(this),
                               [self = shared_from_this(), k](void*) { self->release(k); });
}

void SourceSlots::release(const Key& k) noexcept {
  const std::lock_guard lock(mutex_);
  const auto it = open_.find(k);
  if (it != open_.end() && --it->second == 0) {
    open_.erase(it);
  }
}

std::size_t SourceSlots::clients() const {
  const std::lock_guard lock(mutex_);
  return open_.size();
}

}  // namespace acmegw::takeover
