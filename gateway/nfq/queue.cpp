#include "gateway/nfq/queue.hpp"

#include <arpa/inet.h>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>

#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <spdlog/spdlog.h>

#include "gateway/nfq/decode.hpp"
#include "gateway/nfq/log.hpp"

namespace acmegw::nfq {
namespace {

// Copy a whole segment: the classifier needs the payload, and 0xffff is the largest IP packet
// without GSO (NFQA_CFG_F_GSO packets larger than this arrive truncated and go to production).
constexpr int kCopyRange = 0xffff;
// One datagram holds one packet message (plus attributes) of at most kCopyRange bytes of packet;
// the size of libnetfilter_queue's nf-queue.c example (0xffff + MNL_SOCKET_BUFFER_SIZE / 2).
constexpr std::size_t kRxBytes = 0xffff + 4096;
// Large enough for a burst of full-size packets while the worker is busy in a takeover.
constexpr int kRcvBufBytes = 8 << 20;
// Packets read without blocking after the first one before the batched verdicts are sent.
constexpr int kBurst = 64;
// Datagrams still read from the socket at shutdown (the rest are dropped by the kernel when the
// socket closes; their clients retransmit through --queue-bypass).
constexpr int kShutdownDrain = 4096;

constexpr std::uint16_t kPacketMsg = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;

std::string describe_key(const packet::FlowKey& k) {
  const auto ep = [](const packet::Address& a, std::uint16_t port) {
    const std::string s = gateway::to_string(a);
    return (a.family == packet::Family::V6 ? "[" + s + "]" : s) + ":" + std::to_string(port);
  };
  return ep(k.src, k.sport) + " -> " + ep(k.dst, k.dport);
}

bool in_prefix(const packet::Address& a, const packet::Address& net, unsigned prefix) noexcept {
  if (a.family != net.family) {
    return false;
  }
  const unsigned full = prefix / 8;
  if (std::memcmp(a.bytes.data(), net.bytes.data(), full) != 0) {
    return false;
  }
  const unsigned rest = prefix % 8;
  if (rest == 0) {
    return true;
  }
  const auto m = static_cast<std::uint8_t>(0xff00u >> rest);
  return (a.bytes[full] & m) == (net.bytes[full] & m);
}

}  // namespace

flow::Limits flow_limits(const gateway::Config& cfg) noexcept {
  // The process-wide bounds are shared evenly by the queues (a flow always hashes to the same
  // queue, so each worker's table is independent).
  const std::uint32_t queues = std::max<std::uint32_t>(1, cfg.queue.count);
  flow::Limits l;
  l.max_flows = std::max<std::uint32_t>(1, cfg.hold.max_flows / queues);
  l.max_segments_per_flow = cfg.hold.max_segments_per_flow;
  l.hold_timeout = std::chrono::milliseconds(cfg.hold.timeout_ms);
  l.max_total_bytes = cfg.hold.max_total_bytes / queues;
  l.classifier = cfg.limits;
  return l;
}

Queue::Queue(std::uint16_t num, const gateway::Config& cfg, takeover::Takeover* takeover)
    : num_(num),
      cfg_(cfg),
      takeover_(takeover),
      rx_(kRxBytes),
      verdicts_(sock_, num, stats_),
      flows_(flow_limits(cfg)),
      recent_(std::random_device{}()),
      log_(logger("nfq")),
      flow_log_(logger("flow")),
      tko_log_(logger("takeover")) {
  const std::string q = "queue " + std::to_string(num) + ": ";
  auto s = sys::NetlinkSocket::open(NETLINK_NETFILTER);
  if (!s.ok()) {
    throw std::runtime_error(q + "netlink socket: " + std::strerror(s.err));
  }
  sock_ = std::move(s.value);
  // Each option is best effort (STYLE §23): the queue works without it, a little worse.
  if (const auto r = sock_.set_no_enobufs(true); !r.ok()) {
    log_->warn("nfq: {}NETLINK_NO_ENOBUFS failed: {}", q, std::strerror(r.err));
  }
  if (const auto r = sock_.set_recv_buffer(kRcvBufBytes); !r.ok()) {
    log_->warn("nfq: {}receive buffer {} failed: {}", q, kRcvBufBytes, std::strerror(r.err));
  }
  if (const auto r = sock_.set_recv_timeout(kStopLatency); !r.ok()) {
    // Without it a worker could block forever on an idle queue and never see stop.
    throw std::runtime_error(q + "SO_RCVTIMEO: " + std::strerror(r.err));
  }
  // The HOLD connmark sends a held flow's later segments past the prefilter and its bare
  // FIN/RST to the queue (docs/rules.md), with or without the prefilter.
  auto ct = sys::Conntrack::open();
  if (!ct.ok()) {
    throw std::runtime_error(q + "conntrack netlink socket: " + std::strerror(ct.err));
  }
  conntrack_ = std::move(ct.value);
  bind_queue(cfg.queue.max_len);
}

Queue::~Queue() = default;

void Queue::bind_queue(std::uint32_t max_len) {
  // One config message: bind, copy mode/range, flags and the queue length are applied together,
  // so no packet can arrive in the default (metadata-only) copy mode.
  std::vector<std::byte> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = nfq_nlmsg_put(reinterpret_cast<char*>(buf.data()), NFQNL_MSG_CONFIG, num_);
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = 1;
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, kCopyRange);
  // FAIL_OPEN (Linux >= 3.6): a full queue passes packets instead of dropping them. GSO
  // (>= 3.10): no software segmentation of aggregated packets for our sake.
  const std::uint32_t flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
  nfq_nlmsg_cfg_put_qmaxlen(nlh, max_len);

  const std::string q = "queue " + std::to_string(num_) + ": ";
  if (const auto r = sock_.send({buf.data(), nlh->nlmsg_len}); !r.ok()) {
    throw std::runtime_error(q + "bind request: " + std::strerror(r.err));
  }
  // The kernel answers at once; a few receive timeouts are plenty.
  for (int timeouts = 0; timeouts < 20;) {
    const auto r = sock_.recv(rx_, false);
    if (!r.ok()) {
      if (r.err == EAGAIN) {
        ++timeouts;
        continue;
      }
      if (r.err == EINTR) {
        continue;
      }
      throw std::runtime_error(q + "bind reply: " + std::strerror(r.err));
    }
    const auto* msg = reinterpret_cast<const nlmsghdr*>(rx_.data());
    int len = static_cast<int>(r.value);
    for (; mnl_nlmsg_ok(msg, len); msg = mnl_nlmsg_next(msg, &len)) {
      if (msg->nlmsg_type == kPacketMsg) {
        // Rules kept from an earlier run may queue packets the moment we are bound.
        on_packet(msg);
        continue;
      }
      if (msg->nlmsg_type != NLMSG_ERROR || msg->nlmsg_seq != 1) {
        continue;
      }
      const int err = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(msg))->error;
      verdicts_.flush();
      if (err == 0) {
        return;
      }
      // nfqnl_recv_config: EPERM when the queue belongs to another socket (or without
      // CAP_NET_ADMIN); tell the two apart from the kernel's queue list.
      if (err == EPERM || err == EBUSY) {
        const auto st = sys::read_queue_status();
        for (const sys::QueueStatus& s : st.value) {
          if (s.queue == num_) {
            throw std::runtime_error(
                q + "already bound by another process (netlink port " + std::to_string(s.portid) +
                "); is another acmegw or NFQUEUE user running in this network namespace?");
          }
        }
        throw std::runtime_error(q + "bind: " + std::strerror(err) +
                                 " (acmegw needs CAP_NET_ADMIN)");
      }
      throw std::runtime_error(q + "bind: " + std::strerror(err));
    }
  }
  throw std::runtime_error(q + "bind: no reply from the kernel");
}

void Queue::run(std::stop_token stop) noexcept {
  log_->debug("nfq: queue {}: worker running", num_);
  while (!stop.stop_requested()) {
    // Block (up to kStopLatency) for the first datagram, then drain a burst without blocking so
    // its verdicts go out in one sendto.
    for (int n = 0; n < kBurst; ++n) {
      const auto r = sock_.recv(rx_, n > 0);
      now_ = std::chrono::steady_clock::now();
      if (r.ok()) {
        handle_datagram({rx_.data(), r.value});
        continue;
      }
      if (r.err == EAGAIN || r.err == EWOULDBLOCK || r.err == EINTR) {
        break;
      }
      if (r.err == ENOBUFS) {  // the kernel could not deliver some packets; FAIL_OPEN passed them
        stats_.enobufs.inc();
        if (enobufs_warn_.allow(now_)) {
          log_->warn(
              "nfq: queue {}: receive buffer overrun (ENOBUFS, {} so far): the kernel "
              "passed those packets to production (fail-open)",
              num_, stats_.enobufs.get());
        }
      } else {
        stats_.recv_errors.inc();
        if (recv_warn_.allow(now_)) {
          log_->warn("nfq: queue {}: recv failed: {} ({} so far)", num_, std::strerror(r.err),
                     stats_.recv_errors.get());
        }
      }
      break;
    }
    expire();
    verdicts_.flush();
  }
  // Shutdown: pass what is still queued in the socket, then every held flow, to production.
  // Bounded: with --keep-rules, packets keep arriving until the socket closes.
  for (int n = 0; n < kShutdownDrain; ++n) {
    const auto r = sock_.recv(rx_, true);
    if (!r.ok()) {
      if (r.err == EINTR || r.err == ENOBUFS) {
        continue;
      }
      break;
    }
    handle_datagram({rx_.data(), r.value});
  }
  while (const auto r = flows_.drain()) {
    release(*r, cfg_.marks.pass);
  }
  verdicts_.flush();
  log_->debug("nfq: queue {}: worker stopped", num_);
}

void Queue::handle_datagram(std::span<const std::byte> data) noexcept {
  // Walk every message ourselves instead of mnl_cb_run(): it stops at the first NLMSG_ERROR,
  // and a packet after it would never get its verdict.
  const auto* msg = reinterpret_cast<const nlmsghdr*>(data.data());
  int len = static_cast<int>(data.size());
  for (; mnl_nlmsg_ok(msg, len); msg = mnl_nlmsg_next(msg, &len)) {
    if (msg->nlmsg_type == kPacketMsg) {
      on_packet(msg);
    } else if (msg->nlmsg_type == NLMSG_ERROR) {
      const int err = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(msg))->error;
      if (err != 0) {  // e.g. ENOENT: a verdict for an id the kernel no longer holds
        stats_.verdict_errors.inc();
        if (verdict_warn_.allow(now_)) {
          log_->warn("nfq: queue {}: verdict rejected: {} ({} so far)", num_, std::strerror(err),
                     stats_.verdict_errors.get());
        }
      }
    }
  }
}

void Queue::on_packet(const nlmsghdr* nlh) noexcept {
  stats_.packets.inc();
  const std::optional<QueuedPacket> q = decode_packet(nlh);
  if (!q) {
    stats_.undecodable.inc();  // no packet id: there is nothing we could verdict
    return;
  }
  const gateway::Marks& m = cfg_.marks;
  PendingVerdict pending{verdicts_, q->id, with_mark(q->mark, m.pass, m.mask)};

  // Loop guard: our verdict marks are saved to the connmark before the queue rule, so a packet
  // carrying one must never be queued again. If the ruleset is wrong, end the loop here (a
  // dropped flow stays dropped).
  const std::uint32_t ours = q->mark & m.mask;
  const bool dropped = cfg_.uses_drop_mark() && ours == m.drop;
  if (ours == m.pass || ours == m.taken || dropped) {
    stats_.requeued_marked.inc();
    verdicts_.put(q->id, dropped ? NF_DROP : NF_ACCEPT, std::nullopt);
    pending.done();
    return;
  }
  if (!q->has_packet) {
    stats_.parse_errors.inc();
    return;  // pending: PASS
  }
  const packet::ParseResult parsed = packet::parse(q->packet);
  if (!parsed.view) {
    stats_.parse_errors.inc();
    return;  // pending: PASS
  }
  const packet::PacketView& pkt = *parsed.view;
  // A segment queued before its flow's verdict (connmark still 0 then) gets that verdict again,
  // not a second decision as if a new flow started mid-stream (flow/recent.hpp).
  if (const auto d = recent_.lookup(pkt.key, pkt.seq, now_)) {
    stats_.recently_decided.inc();
    verdicts_.put(q->id, NF_REPEAT, with_mark(q->mark, mark_of(*d), m.mask));
    pending.done();
    return;
  }
  const flow::Result r = flows_.on_segment(pkt, q->id, q->mark, protocol_of(pkt.key), now_);
  pending.done();  // the table now owns the verdict (Hold) or returned it in r.packets
  apply(r, q->id);
}

void Queue::apply(const flow::Result& r, std::uint32_t offered_id) noexcept {
  const bool debug = flow_log_->should_log(spdlog::level::debug);
  switch (r.action) {
    case flow::Action::Hold:
      stats_.segments_held.inc();
      if (debug) {
        flow_log_->debug("flow: {} hold ({} bytes so far)", describe_key(r.flow.key),
                         r.flow.stream.size());
      }
      if (!r.started_holding) {
        return;
      }
      stats_.flows_held.inc();
      // Later segments must come to the queue rather than be judged by the in-kernel
      // prefilter, which can only judge a first segment; a bare FIN/RST must follow the bytes.
      if (const auto mr = conntrack_->set_mark(r.flow.key, cfg_.marks.hold, cfg_.marks.mask);
          !mr.ok()) {
        stats_.hold_mark_errors.inc();
        flow_log_->debug("flow: {} HOLD connmark failed: {}", describe_key(r.flow.key),
                         std::strerror(mr.err));
        if (auto ev = flows_.evict(r.flow.key, flow::Cause::HoldMarkFailed)) {
          release(*ev, cfg_.marks.pass);
        }
      }
      return;
    case flow::Action::Accept:
      stats_.unmarked_accepted.inc();
      verdicts_.put(offered_id, NF_ACCEPT, std::nullopt);
      return;
    case flow::Action::Drop:
      stats_.duplicates_dropped.inc();
      verdicts_.put(offered_id, NF_DROP, std::nullopt);
      return;
    case flow::Action::Production:
      if (policy_applies(r)) {
        return apply_policy(r);
      }
      release(r, cfg_.marks.pass);
      return;
    case flow::Action::Challenge:
      take(r);
      return;
  }
}

void Queue::repeat_all(const flow::Result& r, std::uint32_t value) noexcept {
  for (const flow::HeldPacket& p : r.packets) {
    verdicts_.put(p.id, NF_REPEAT, with_mark(p.mark, value, cfg_.marks.mask));
  }
  recent_.record(r.flow.key, r.flow.first_seq, decided_of(value), now_);
}

std::uint32_t Queue::mark_of(flow::Decided d) const noexcept {
  switch (d) {
    case flow::Decided::Pass:
      return cfg_.marks.pass;
    case flow::Decided::Taken:
      return cfg_.marks.taken;
    case flow::Decided::Drop:
      return cfg_.marks.drop;
  }
  std::abort();  // corrupt enum (STYLE §15)
}

flow::Decided Queue::decided_of(std::uint32_t value) const noexcept {
  if (value == cfg_.marks.taken) {
    return flow::Decided::Taken;
  }
  return cfg_.uses_drop_mark() && value == cfg_.marks.drop ? flow::Decided::Drop
                                                           : flow::Decided::Pass;
}

void Queue::release(const flow::Result& r, std::uint32_t value, flow::Cause cause) noexcept {
  repeat_all(r, value);
  if (value != cfg_.marks.pass) {
    return;
  }
  stats_.flows_production.inc();
  stats_.production_by_cause[static_cast<std::size_t>(cause)].inc();
  if (cause == flow::Cause::Classified) {
    stats_.production_by_reason[static_cast<std::size_t>(r.classification.reason)].inc();
  }
  if (flow_log_->should_log(spdlog::level::debug)) {
    flow_log_->debug(
        "flow: {} production ({}{}{}), {} packet(s), {} byte(s)", describe_key(r.flow.key),
        flow::to_string(cause), cause == flow::Cause::Classified ? ": " : "",
        cause == flow::Cause::Classified ? classifier::to_string(r.classification.reason)
                                         : std::string_view{},
        r.packets.size(), r.flow.stream.size());
  }
}

void Queue::take(const flow::Result& r) noexcept {
  stats_.flows_challenge.inc();
  if (takeover_ == nullptr) {
    stats_.challenge_passed_no_backend.inc();
    static std::once_flag once;
    std::call_once(once, [&] {
      tko_log_->info(
          "takeover: challenge flow {} sent to production: no takeover configured "
          "(logged once; see counter challenge_passed_no_backend)",
          describe_key(r.flow.key));
    });
    release(r, cfg_.marks.pass, flow::Cause::NoTakeover);
    return;
  }
  const takeover::TakeoverResult t = takeover_->take(request_of(r));
  const bool tls = r.classification.challenge == classifier::ChallengeType::TlsAlpn01;
  if (t.ok()) {
    stats_.takeovers_ok.inc();
    tko_log_->info("takeover: {} taken over ({} {} {})", describe_key(r.flow.key),
                   classifier::to_string(r.classification.challenge), tls ? "identifier" : "token",
                   tls                                    ? r.classification.host.view()
                   : r.classification.token.size() <= 128 ? r.classification.token
                                                          : "(long)");
    release(r, cfg_.marks.taken);
    return;
  }
  if (t.failed_step == takeover::TakeoverStep::NotServed) {
    // Not ours to answer (an identifier nobody registered): production may answer it itself.
    if (flow_log_->should_log(spdlog::level::debug)) {
      flow_log_->debug("flow: {} {} for {} not served here: production", describe_key(r.flow.key),
                       classifier::to_string(r.classification.challenge),
                       tls ? r.classification.host.view() : std::string_view{"http-01"});
    }
    release(r, cfg_.marks.pass, flow::Cause::NotServed);
    return;
  }
  takeover_failed(r, t);
}

takeover::TakeoverRequest Queue::request_of(const flow::Result& r) noexcept {
  // Send what is batched first: other flows' packets should not wait for this takeover.
  verdicts_.flush();
  takeover::TakeoverRequest req;
  req.key = r.flow.key;
  req.client_next = r.flow.first_seq;
  req.server_next = r.flow.ack;
  req.window = r.flow.window;
  req.options = r.flow.options;
  req.client_bytes = r.flow.stream;
  req.classification = &r.classification;
  return req;
}

void Queue::takeover_failed(const flow::Result& r, const takeover::TakeoverResult& t) noexcept {
  if (t.failed_step == takeover::TakeoverStep::Conntrack && t.err == EALREADY) {
    // Decided already (see RepairTakeover::take): repeat that verdict; PASS would overwrite a
    // TAKEN connmark and hand production's replies back to the client.
    stats_.already_decided.inc();
    tko_log_->debug("takeover: {} refused: its connmark already holds verdict mark {:#x}",
                    describe_key(r.flow.key), t.decided_mark);
    repeat_all(r, t.decided_mark);
    return;
  }
  stats_.takeovers_failed.inc();
  stats_.takeover_failed_by_step[static_cast<std::size_t>(t.failed_step)].inc();
  if (takeover_warn_.allow(now_)) {
    tko_log_->warn(
        "takeover: {} failed at {}: {}; flow sent to production ({} more since the "
        "last report, at most one per {} s; takeover_failed_by_step counts all)",
        describe_key(r.flow.key), takeover::to_string(t.failed_step), std::strerror(t.err),
        takeover_warn_.suppressed, kLogInterval.count());
    takeover_warn_.suppressed = 0;
  }
  release(r, cfg_.marks.pass, flow::Cause::TakeoverFailed);
}

bool Queue::policy_applies(const flow::Result& r) const noexcept {
  // Only a classifier verdict on an HTTP endpoint: every fail-open cause (limits, timeouts,
  // client end, ...) and every TLS flow still goes to production (docs/configuration.md).
  const auto reason = r.classification.reason;
  return cfg_.policy != gateway::Policy::Pass && r.cause == flow::Cause::Classified &&
         r.classification.protocol == classifier::Protocol::Http &&
         reason != classifier::Reason::LimitReached && reason != classifier::Reason::Incomplete;
}

void Queue::apply_policy(const flow::Result& r) noexcept {
  if (takeover_ == nullptr) {  // validate() demands a backend; fail open all the same
    release(r, cfg_.marks.pass, flow::Cause::NoTakeover);
    return;
  }
  takeover::TakeoverRequest req = request_of(r);
  takeover::TakeoverResult t;
  std::uint32_t mark = cfg_.marks.taken;
  Counter* outcome = &stats_.flows_redirected;
  switch (cfg_.policy) {
    case gateway::Policy::RedirectHttps:
      req.purpose = takeover::TakeoverPurpose::RedirectHttps;
      t = takeover_->take(req);
      break;
    case gateway::Policy::Reject:
      req.purpose = takeover::TakeoverPurpose::Reject;
      t = takeover_->take(req);
      outcome = &stats_.flows_rejected;
      break;
    case gateway::Policy::Drop:
      t = takeover_->reset_production(req);
      mark = cfg_.marks.drop;
      outcome = &stats_.flows_dropped;
      break;
    case gateway::Policy::Pass:
      std::abort();  // policy_applies() said no (STYLE §15)
  }
  if (!t.ok()) {
    takeover_failed(r, t);
    return;
  }
  outcome->inc();
  if (flow_log_->should_log(spdlog::level::debug)) {
    flow_log_->debug("flow: {} policy {} ({}), {} packet(s), {} byte(s)", describe_key(r.flow.key),
                     gateway::to_string(cfg_.policy),
                     classifier::to_string(r.classification.reason), r.packets.size(),
                     r.flow.stream.size());
  }
  repeat_all(r, mark);
}

bool Queue::RateLimit::allow(std::chrono::steady_clock::time_point now) noexcept {
  if (last != std::chrono::steady_clock::time_point{} && now - last < kLogInterval) {
    ++suppressed;
    return false;
  }
  last = now;
  return true;
}

void Queue::expire() noexcept {
  while (const auto r = flows_.pop_expired(now_)) {
    release(*r, cfg_.marks.pass);
  }
}

classifier::Protocol Queue::protocol_of(const packet::FlowKey& key) const noexcept {
  for (const gateway::Endpoint& e : cfg_.protect) {
    if (e.port == key.dport && in_prefix(key.dst, e.addr, e.prefix_len)) {
      return e.protocol;
    }
  }
  return classifier::Protocol::Http;  // the ruleset queues protected endpoints only
}

}  // namespace acmegw::nfq
