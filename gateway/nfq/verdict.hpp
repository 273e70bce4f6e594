#pragma once
// Verdicts for one NFQUEUE: batched into one buffer and sent with one sendto (STYLE §13, DESIGN
// §2 "Verdicts are batched"), and PendingVerdict, the RAII guard that makes sure every queued
// packet gets exactly one verdict on every path.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "gateway/nfq/stats.hpp"
#include "gateway/sys/netlink.hpp"

namespace acmegw::nfq {

// `mark` with the bits under `mask` replaced by `value` (Suricata semantics: other users of the
// mark keep their bits).
[[nodiscard]] constexpr std::uint32_t with_mark(std::uint32_t mark, std::uint32_t value,
                                                std::uint32_t mask) noexcept {
  return (mark & ~mask) | (value & mask);
}

class VerdictBatch {
 public:
  // `sock` is the queue's bound socket; both must outlive the batch.
  VerdictBatch(sys::NetlinkSocket& sock, std::uint16_t queue, Stats& stats);

  // Appends one NFQNL_MSG_VERDICT (NF_ACCEPT/NF_DROP/NF_REPEAT, with the full skb mark to set, or
  // nullopt to leave it). Sends the batch first when the buffer is full, so it never fails.
  void put(std::uint32_t packet_id, std::uint32_t verdict,
           std::optional<std::uint32_t> mark) noexcept;
  // Sends every appended verdict in one sendto. Errors are counted, and the kernel's per-message
  // errors arrive later on the receive path as NLMSG_ERROR.
  void flush() noexcept;
  [[nodiscard]] bool empty() const noexcept { return used_ == 0; }

 private:
  sys::NetlinkSocket& sock_;
  std::uint16_t queue_;
  Stats& stats_;
  std::vector<std::byte> buf_;
  std::size_t used_ = 0;
  std::uint64_t pending_ = 0;  // verdicts in buf_
};

// The verdict owed for one queued packet. Unless done() is called first, the destructor issues
// the fail-open verdict: NF_REPEAT with the PASS mark, so the flow goes to production.
class PendingVerdict {
 public:
  PendingVerdict(VerdictBatch& batch, std::uint32_t packet_id, std::uint32_t pass_mark) noexcept
      : batch_(&batch), id_(packet_id), pass_mark_(pass_mark) {}
  PendingVerdict(PendingVerdict&& o) noexcept
      : batch_(std::exchange(o.batch_, nullptr)), id_(o.id_), pass_mark_(o.pass_mark_) {}
  PendingVerdict(const PendingVerdict&) = delete;
  PendingVerdict& operator=(const PendingVerdict&) = delete;
  PendingVerdict& operator=(PendingVerdict&&) = delete;
  ~PendingVerdict();

  // The verdict was issued, or its duty handed over (to the flow table).
  void done() noexcept { batch_ = nullptr; }

 private:
  VerdictBatch* batch_;
  std::uint32_t id_;
  std::uint32_t pass_mark_;  // the packet's full mark with PASS under the mask
};

}  // namespace acmegw::nfq
