#include "gateway/nfq/verdict.hpp"

#include <cerrno>

#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>

namespace acmegw::nfq {
namespace {

// One verdict message: nlmsghdr 16 + nfgenmsg 4 + NFQA_VERDICT_HDR 12 + NFQA_MARK 8 = 40 bytes.
constexpr std::size_t kMaxVerdictMsg = 64;
// 16 KiB carry ~400 verdicts: a whole held flow plus a receive burst in one sendto.
constexpr std::size_t kBatchBytes = 16 * 1024;
constexpr int kSendAttempts = 3;

}  // namespace

VerdictBatch::VerdictBatch(sys::NetlinkSocket& sock, std::uint16_t queue, Stats& stats)
    : sock_(sock), queue_(queue), stats_(stats), buf_(kBatchBytes) {}

void VerdictBatch::put(std::uint32_t packet_id, std::uint32_t verdict,
                       std::optional<std::uint32_t> mark) noexcept {
  if (buf_.size() - used_ < kMaxVerdictMsg) {
    flush();
  }
  nlmsghdr* nlh =
      nfq_nlmsg_put(reinterpret_cast<char*>(buf_.data() + used_), NFQNL_MSG_VERDICT, queue_);
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(packet_id), static_cast<int>(verdict));
  if (mark) {
    nfq_nlmsg_verdict_put_mark(nlh, *mark);
  }
  used_ += MNL_ALIGN(nlh->nlmsg_len);
  ++pending_;
}

void VerdictBatch::flush() noexcept {
  if (used_ == 0) {
    return;
  }
  // A netlink send to the kernel is processed synchronously; it fails only under memory
  // pressure. Retry briefly: a verdict that is never sent leaves its packet queued until the
  // socket closes (then the kernel drops it).
  for (int attempt = 0; attempt < kSendAttempts; ++attempt) {
    const auto r = sock_.send({buf_.data(), used_});
    if (r.ok()) {
      stats_.verdicts.inc(pending_);
      stats_.verdict_batches.inc();
      used_ = 0;
      pending_ = 0;
      return;
    }
    if (r.err != EINTR && r.err != ENOBUFS && r.err != ENOMEM && r.err != EAGAIN) {
      break;
    }
  }
  stats_.verdict_send_errors.inc();
  used_ = 0;
  pending_ = 0;
}

PendingVerdict::~PendingVerdict() {
  if (batch_ != nullptr) {
    batch_->put(id_, NF_REPEAT, pass_mark_);
  }
}

}  // namespace acmegw::nfq
