#pragma once
// The boundary between the queue engine and the challenge takeover (DESIGN.md §2 "Takeover").
// The engine calls Takeover::take() synchronously from its queue worker while every segment of the
// flow is still held in NFQUEUE, and only then issues verdicts: TAKEN on success, PASS (production)
// on failure. The held segments are then delivered by the kernel to the repaired socket.
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "classifier/classify.hpp"
#include "gateway/packet/packet.hpp"

namespace acmegw::gateway {
struct Config;
}

namespace acmegw::takeover {

// Why a flow is taken over: a challenge, or a non-challenge HTTP flow under policy
// "redirect-https" / "reject" (docs/configuration.md "Policy"). Policy takeovers skip the
// challenge source lists (challenge.allow/deny are about who may be answered a challenge).
enum class TakeoverPurpose : std::uint8_t {
  Challenge,      // answered by the backend (HTTP session)
  RedirectHttps,  // the HTTP session answers 301 to https (SessionConfig::redirect_https)
  Reject,         // the repaired socket is reset at once (RST to the client, no TIME_WAIT)
};

struct TakeoverRequest {
  packet::FlowKey key;                      // client -> server as queued (pre-DNAT destination)
  std::uint32_t client_next = 0;            // S: sequence number of the flow's first payload byte
  std::uint32_t server_next = 0;            // A: ack number carried by the client's segments
  std::uint16_t window = 0;                 // raw window field of the newest held segment
  packet::TcpOptions options;               // of the newest held segment (timestamps)
  std::span<const std::byte> client_bytes;  // held payload in stream order; valid during take()
  const classifier::Classification* classification = nullptr;  // views client_bytes
  TakeoverPurpose purpose = TakeoverPurpose::Challenge;
};

enum class TakeoverStep : std::uint8_t {
  None,
  Conntrack,
  Route,  // IPv4: the local TOS route for a post-DNAT production address (rtnetlink)
  Socket,
  ReuseAddr,
  Transparent,
  RepairOn,
  Bind,
  SendSeq,
  RecvSeq,
  MaxSeg,
  Connect,
  Options,
  Timestamp,
  Window,
  RepairOff,
  Reset,
  SourceDenied,  // refused before any syscall: the client is not admitted (challenge.allow/deny)
  // Refused before any syscall: no backend answers this challenge (a tls-alpn-01 identifier
  // nobody registered, no TLS route for the SNI, no http backend). Not a failure: production
  // may answer it itself (docs/backends.md).
  NotServed,
  // Refused before any syscall at a cap (--max-sessions, --max-sessions-per-source): fail-open.
  SessionCap,
  SourceCap,
  Handoff,  // keep last: counter arrays are sized by it (nfq/stats.hpp)
};

// Stable lower-case step name for counters and logs ("repair_on", "window", ...).
[[nodiscard]] std::string_view to_string(TakeoverStep s) noexcept;

struct TakeoverResult {
  TakeoverStep failed_step = TakeoverStep::None;  // None on success
  int err = 0;                                    // errno of the failed step
  // Set when the Conntrack step refused with EALREADY: the entry's mark under the verdict mask
  // already held PASS or TAKEN (a segment queued before its flow's verdict). The caller repeats
  // that verdict mark instead of sending the flow to production.
  std::uint32_t decided_mark = 0;
  [[nodiscard]] bool ok() const noexcept { return failed_step == TakeoverStep::None; }
};

class Takeover {
 public:
  virtual ~Takeover() = default;
  // Precondition: every segment of req.key is held in NFQUEUE. Never throws; on failure the
  // caller sends the flow to production. Thread-safe: called from several queue workers.
  virtual TakeoverResult take(const TakeoverRequest& req) noexcept = 0;
  // Policy "drop": only the takeover's conntrack lookup and step Reset (the untracked spoofed
  // RST that frees production's socket), no local socket; the caller then verdicts the held
  // segments with the DROP mark. Same preconditions, errors and EALREADY rule as take().
  virtual TakeoverResult reset_production(const TakeoverRequest& req) noexcept = 0;
};

}  // namespace acmegw::takeover
