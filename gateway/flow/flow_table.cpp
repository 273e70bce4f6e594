#include "gateway/flow/flow_table.hpp"

#include <algorithm>
#include <bit>

namespace acmegw::flow {
namespace {

bool client_ends(const packet::PacketView& pkt) noexcept {
  return (pkt.flags & (packet::tcpflag::kFin | packet::tcpflag::kRst)) != 0;
}

std::size_t held_limit(const classifier::Limits& l, classifier::Protocol p) noexcept {
  return p == classifier::Protocol::Tls ? l.max_client_hello : l.max_http_head;
}

}  // namespace

std::string_view to_string(Cause c) noexcept {
  switch (c) {
    case Cause::None:
      return "none";
    case Cause::Classified:
      return "classified";
    case Cause::ClientEnd:
      return "client_end";
    case Cause::Gap:
      return "gap";
    case Cause::Overlap:
      return "overlap";
    case Cause::Truncated:
      return "truncated";
    case Cause::SegmentLimit:
      return "segment_limit";
    case Cause::ByteLimit:
      return "byte_limit";
    case Cause::Stalled:
      return "stalled";
    case Cause::TotalBytes:
      return "total_bytes";
    case Cause::TableFull:
      return "table_full";
    case Cause::Timeout:
      return "timeout";
    case Cause::HoldMarkFailed:
      return "hold_mark_failed";
    case Cause::Shutdown:
      return "shutdown";
    case Cause::NoTakeover:
      return "no_takeover";
    case Cause::TakeoverFailed:
      return "takeover_failed";
    case Cause::NotServed:
      return "not_served";
  }
  return "unknown";
}

FlowTable::FlowTable(const Limits& limits) : limits_(limits), slots_(limits.max_flows) {
  // Load factor <= 1/2 keeps linear probing short and guarantees an empty bucket.
  const std::size_t buckets = std::bit_ceil(std::max<std::size_t>(16, 2 * slots_.size()));
  index_.assign(buckets, kNone);
  index_mask_ = buckets - 1;
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    slots_[i].next = (i + 1 < slots_.size()) ? i + 1 : kNone;
  }
  free_head_ = slots_.empty() ? kNone : 0;
  release_.reserve(static_cast<std::size_t>(limits.max_segments_per_flow) + 1);
}

std::size_t FlowTable::bucket_of(const packet::FlowKey& key) const noexcept {
  return packet::FlowKeyHash{}(key)&index_mask_;
}

std::uint32_t FlowTable::find(const packet::FlowKey& key) const noexcept {
  for (std::size_t b = bucket_of(key);; b = (b + 1) & index_mask_) {
    const std::uint32_t s = index_[b];
    if (s == kNone || slots_[s].key == key) {
      return s;
    }
  }
}

std::uint32_t FlowTable::insert(const packet::FlowKey& key) noexcept {
  const std::uint32_t s = free_head_;  // caller checked in_use_ < max_flows
  Slot& slot = slots_[s];
  free_head_ = slot.next;
  slot.key = key;
  slot.bytes.clear();
  slot.packets.clear();
  slot.head_retransmitted = false;
  slot.prev = newest_;
  slot.next = kNone;
  if (newest_ != kNone) {
    slots_[newest_].next = s;
  } else {
    oldest_ = s;
  }
  newest_ = s;
  std::size_t b = bucket_of(key);
  while (index_[b] != kNone) {
    b = (b + 1) & index_mask_;
  }
  index_[b] = s;
  ++in_use_;
  return s;
}

void FlowTable::erase(std::uint32_t s) noexcept {
  Slot& slot = slots_[s];
  // Backward-shift deletion: move later members of the probe run into the hole unless their
  // home bucket lies cyclically in (hole, position], so lookups never need tombstones.
  std::size_t hole = bucket_of(slot.key);
  while (index_[hole] != s) {
    hole = (hole + 1) & index_mask_;
  }
  for (std::size_t j = (hole + 1) & index_mask_; index_[j] != kNone; j = (j + 1) & index_mask_) {
    const std::size_t home = bucket_of(slots_[index_[j]].key);
    const bool stays = (hole < j) ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      index_[hole] = index_[j];
      hole = j;
    }
  }
  index_[hole] = kNone;

  (slot.prev != kNone ? slots_[slot.prev].next : oldest_) = slot.next;
  (slot.next != kNone ? slots_[slot.next].prev : newest_) = slot.prev;
  // The bytes stay untouched until the slot is reused: a Result may still view them.
  slot.prev = kNone;
  slot.next = free_head_;
  free_head_ = s;
  --in_use_;
  total_bytes_ -= slot.bytes.size();
}

Result FlowTable::single(const packet::PacketView& pkt, std::uint32_t id, std::uint32_t mark,
                         Action action, Cause cause) noexcept {
  release_.clear();
  release_.push_back({id, mark});  // within the reserved capacity
  Result r;
  r.action = action;
  r.cause = cause;
  r.packets = release_;
  r.flow = {pkt.key, pkt.seq, pkt.ack, pkt.window, pkt.options, pkt.payload};
  return r;
}

Result FlowTable::decide(std::uint32_t s, Action action, Cause cause,
                         const HeldPacket* extra) noexcept {
  const Slot& slot = slots_[s];
  release_.clear();
  release_.assign(slot.packets.begin(), slot.packets.end());
  if (extra != nullptr) {
    release_.push_back(*extra);
  }
  Result r;
  r.action = action;
  r.cause = cause;
  r.packets = release_;
  r.flow = {slot.key, slot.first_seq, slot.ack, slot.window, slot.options, slot.bytes};
  erase(s);
  return r;
}

Result FlowTable::on_segment(const packet::PacketView& pkt, std::uint32_t packet_id,
                             std::uint32_t mark, classifier::Protocol protocol,
                             TimePoint now) noexcept {
  const HeldPacket hp{packet_id, mark};
  if (const std::uint32_t s = find(pkt.key); s != kNone) {
    return on_held(s, pkt, hp);
  }
  const bool end = client_ends(pkt);
  if (pkt.payload.empty()) {
    return single(pkt, packet_id, mark, end ? Action::Production : Action::Accept,
                  end ? Cause::ClientEnd : Cause::None);
  }
  if (pkt.payload_truncated) {
    return single(pkt, packet_id, mark, Action::Production, Cause::Truncated);
  }
  // The common case: the first segment decides; nothing is copied or stored.
  Result r = single(pkt, packet_id, mark, Action::Production, Cause::Classified);
  r.classification = classifier::classify(pkt.payload, protocol, limits_.classifier, end);
  switch (r.classification.decision) {
    case classifier::Decision::Production:
      r.cause = end ? Cause::ClientEnd : Cause::Classified;
      return r;
    case classifier::Decision::Challenge:
      if (end) {  // a takeover cannot continue a half-closed stream: leave it to production
        r.cause = Cause::ClientEnd;
        return r;
      }
      r.action = Action::Challenge;
      r.cause = Cause::None;
      return r;
    case classifier::Decision::NeedMore:
      break;  // classify() never returns NeedMore with at_end, so the client has not ended
  }
  if (in_use_ >= limits_.max_flows) {
    r.cause = Cause::TableFull;
    return r;
  }
  if (total_bytes_ + pkt.payload.size() > limits_.max_total_bytes) {
    r.cause = Cause::TotalBytes;
    return r;
  }
  if (limits_.max_segments_per_flow == 0) {
    r.cause = Cause::SegmentLimit;
    return r;
  }
  const std::uint32_t s = insert(pkt.key);
  Slot& slot = slots_[s];
  slot.protocol = protocol;
  slot.first_seq = pkt.seq;
  slot.ack = pkt.ack;
  slot.window = pkt.window;
  slot.options = pkt.options;
  slot.deadline = now + limits_.hold_timeout;
  slot.bytes.assign(pkt.payload.begin(), pkt.payload.end());
  slot.packets.push_back(hp);
  total_bytes_ += pkt.payload.size();

  r.action = Action::Hold;
  r.cause = Cause::None;
  r.started_holding = true;
  r.packets = {};
  r.flow.stream = slot.bytes;
  return r;
}

Result FlowTable::on_held(std::uint32_t s, const packet::PacketView& pkt, HeldPacket hp) noexcept {
  Slot& slot = slots_[s];
  const bool end = client_ends(pkt);
  const std::size_t len = pkt.payload.size();
  if (len == 0) {
    if (end) {
      return decide(s, Action::Production, Cause::ClientEnd, &hp);
    }
    return single(pkt, hp.id, hp.mark, Action::Accept, Cause::None);
  }
  if (pkt.payload_truncated) {
    return decide(s, Action::Production, Cause::Truncated, &hp);
  }
  // Offsets are modulo 2^32 (the sequence space wraps); "before S" shows as negative.
  const std::uint32_t offset = pkt.seq - slot.first_seq;
  const std::size_t held = slot.bytes.size();
  std::span<const std::byte> fresh = pkt.payload;  // bytes beyond what is held
  if (offset != held) {
    if (static_cast<std::int32_t>(offset) < 0) {
      return decide(s, Action::Production, Cause::Overlap, &hp);
    }
    if (offset > held) {
      return decide(s, Action::Production, Cause::Gap, &hp);
    }
    // A retransmission: the client's RTO fires while we hold its unacknowledged bytes, and the
    // kernel coalesces them, so it need not match a held segment's boundaries. Identical bytes
    // are redundant (every original is delivered); a retransmission that also carries new bytes
    // is held like any segment and extends the stream. Different bytes for the same sequence
    // numbers are ambiguous: production.
    const std::size_t common = std::min(len, held - offset);
    if (!std::equal(pkt.payload.begin(), pkt.payload.begin() + static_cast<std::ptrdiff_t>(common),
                    slot.bytes.begin() + offset)) {
      return decide(s, Action::Production, Cause::Overlap, &hp);
    }
    if (common == len) {
      if (end) {
        return decide(s, Action::Production, Cause::ClientEnd, &hp);
      }
      // An RTO retransmits the head; the sender is then in loss recovery with cwnd 1 and sends
      // nothing new until we let an ACK through, so waiting longer cannot help. A tail loss
      // probe (Linux tcp_schedule_loss_probe) retransmits the *last* segment and leaves cwnd
      // alone: keep waiting. With one held segment the two look alike, so the head's second
      // retransmission decides.
      if (offset == 0 && (slot.packets.size() > 1 || slot.head_retransmitted)) {
        return decide(s, Action::Production, Cause::Stalled, &hp);
      }
      slot.head_retransmitted = slot.head_retransmitted || offset == 0;
      return single(pkt, hp.id, hp.mark, Action::Drop, Cause::None);
    }
    fresh = pkt.payload.subspan(common);
  }
  if (slot.packets.size() >= limits_.max_segments_per_flow) {
    return decide(s, Action::Production, Cause::SegmentLimit, &hp);
  }
  if (held + fresh.size() > held_limit(limits_.classifier, slot.protocol)) {
    return decide(s, Action::Production, Cause::ByteLimit, &hp);
  }
  if (total_bytes_ + fresh.size() > limits_.max_total_bytes) {
    return decide(s, Action::Production, Cause::TotalBytes, &hp);
  }
  slot.bytes.insert(slot.bytes.end(), fresh.begin(), fresh.end());
  slot.packets.push_back(hp);
  slot.ack = pkt.ack;
  slot.window = pkt.window;
  slot.options = pkt.options;
  total_bytes_ += fresh.size();

  const classifier::Classification c =
      classifier::classify(slot.bytes, slot.protocol, limits_.classifier, end);
  Result r;
  switch (c.decision) {
    case classifier::Decision::Production:
      r = decide(s, Action::Production, end ? Cause::ClientEnd : Cause::Classified, nullptr);
      break;
    case classifier::Decision::Challenge:
      r = end ? decide(s, Action::Production, Cause::ClientEnd, nullptr)
              : decide(s, Action::Challenge, Cause::None, nullptr);
      break;
    case classifier::Decision::NeedMore:
      r.action = Action::Hold;
      r.flow = {slot.key, slot.first_seq, slot.ack, slot.window, slot.options, slot.bytes};
      break;
  }
  r.classification = c;  // views slot.bytes, which erase() leaves intact
  return r;
}

std::optional<Result> FlowTable::pop_expired(TimePoint now) noexcept {
  if (oldest_ == kNone || slots_[oldest_].deadline > now) {
    return std::nullopt;
  }
  return decide(oldest_, Action::Production, Cause::Timeout, nullptr);
}

std::optional<Result> FlowTable::evict(const packet::FlowKey& key, Cause cause) noexcept {
  const std::uint32_t s = find(key);
  if (s == kNone) {
    return std::nullopt;
  }
  return decide(s, Action::Production, cause, nullptr);
}

std::optional<Result> FlowTable::drain() noexcept {
  if (oldest_ == kNone) {
    return std::nullopt;
  }
  return decide(oldest_, Action::Production, Cause::Shutdown, nullptr);
}

}  // namespace acmegw::flow
