#include "gateway/sys/conntrack.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include "gateway/sys/netlink.hpp"

namespace acmegw::sys {
namespace {

struct NfctDelete {
  void operator()(nf_conntrack* ct) const noexcept { nfct_destroy(ct); }
};
using NfctPtr = std::unique_ptr<nf_conntrack, NfctDelete>;

// A lost reply must not stall a queue worker for long.
constexpr std::chrono::milliseconds kReplyTimeout{500};

// Sets the ORIGINAL tuple of `ct` from the queued flow key (TCP, addresses in network order).
void set_orig_tuple(nf_conntrack* ct, const packet::FlowKey& k) noexcept {
  if (k.src.family == packet::Family::V4) {
    nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
    std::uint32_t src = 0;
    std::uint32_t dst = 0;
    std::memcpy(&src, k.src.bytes.data(), 4);
    std::memcpy(&dst, k.dst.bytes.data(), 4);
    nfct_set_attr_u32(ct, ATTR_IPV4_SRC, src);
    nfct_set_attr_u32(ct, ATTR_IPV4_DST, dst);
  } else {
    nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET6);
    nfct_set_attr(ct, ATTR_IPV6_SRC, k.src.bytes.data());
    nfct_set_attr(ct, ATTR_IPV6_DST, k.dst.bytes.data());
  }
  nfct_set_attr_u8(ct, ATTR_L4PROTO, IPPROTO_TCP);
  nfct_set_attr_u16(ct, ATTR_PORT_SRC, htons(k.sport));
  nfct_set_attr_u16(ct, ATTR_PORT_DST, htons(k.dport));
}

// Reads the REPLY tuple of a parsed entry into a FlowKey (src = the replying server).
packet::FlowKey reply_tuple(const nf_conntrack* ct) noexcept {
  packet::FlowKey k;
  if (nfct_get_attr_u8(ct, ATTR_L3PROTO) == AF_INET) {
    k.src.family = k.dst.family = packet::Family::V4;
    const std::uint32_t src = nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC);
    const std::uint32_t dst = nfct_get_attr_u32(ct, ATTR_REPL_IPV4_DST);
    std::memcpy(k.src.bytes.data(), &src, 4);
    std::memcpy(k.dst.bytes.data(), &dst, 4);
  } else {
    k.src.family = k.dst.family = packet::Family::V6;
    std::memcpy(k.src.bytes.data(), nfct_get_attr(ct, ATTR_REPL_IPV6_SRC), 16);
    std::memcpy(k.dst.bytes.data(), nfct_get_attr(ct, ATTR_REPL_IPV6_DST), 16);
  }
  k.sport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
  k.dport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST));
  return k;
}

}  // namespace

struct Conntrack::Handle {
  NetlinkSocket sock;
  std::vector<std::byte> buf = std::vector<std::byte>(MNL_SOCKET_BUFFER_SIZE);
  NfctPtr query{nfct_new()};
  NfctPtr reply{nfct_new()};
  NfctPtr blank{nfct_new()};  // nfct_copy(x, blank, OVERRIDE) resets x without allocating
  std::uint32_t seq = static_cast<std::uint32_t>(std::time(nullptr));

  // Builds a ctnetlink request for `orig` in `buf` (the query object is reset first).
  nlmsghdr* start(std::uint16_t type, std::uint16_t flags, const packet::FlowKey& orig) noexcept {
    nfct_copy(query.get(), blank.get(), NFCT_CP_OVERRIDE);
    set_orig_tuple(query.get(), orig);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = static_cast<std::uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | type);
    nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    nlh->nlmsg_seq = ++seq;
    auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfh->nfgen_family = orig.src.family == packet::Family::V4 ? AF_INET : AF_INET6;
    nfh->version = NFNETLINK_V0;
    nfh->res_id = 0;
    return nlh;
  }

  // One request/answer round trip (netlink_transact); `got` is set when an entry was parsed
  // into `reply`.
  int transact(const nlmsghdr* nlh, bool& got) noexcept {
    got = false;
    struct Sink {
      Handle* h;
      bool* got;
    } sink{this, &got};
    return netlink_transact(
        sock, buf, nlh,
        [](const nlmsghdr* msg, void* ctx) {
          auto* k = static_cast<Sink*>(ctx);
          nfct_copy(k->h->reply.get(), k->h->blank.get(), NFCT_CP_OVERRIDE);
          if (nfct_nlmsg_parse(msg, k->h->reply.get()) >= 0) {
            *k->got = true;
          }
        },
        &sink);
  }
};

Conntrack::Conntrack(std::unique_ptr<Handle> h) noexcept : h_(std::move(h)) {}
Conntrack::~Conntrack() = default;

SysResult<std::unique_ptr<Conntrack>> Conntrack::open() noexcept {
  auto h = std::make_unique<Handle>();
  if (!h->query || !h->reply || !h->blank) {
    return {nullptr, ENOMEM};
  }
  auto sock = NetlinkSocket::open(NETLINK_NETFILTER);
  if (!sock.ok()) {
    return {nullptr, sock.err};
  }
  h->sock = std::move(sock.value);
  if (const auto r = h->sock.set_recv_timeout(kReplyTimeout); !r.ok()) {
    return {nullptr, r.err};
  }
  return {std::unique_ptr<Conntrack>(new Conntrack(std::move(h))), 0};
}

SysResult<ConntrackEntry> Conntrack::get(const packet::FlowKey& orig) noexcept {
  nlmsghdr* nlh = h_->start(IPCTNL_MSG_CT_GET, 0, orig);
  if (nfct_nlmsg_build(nlh, h_->query.get()) < 0) {
    return {{}, EINVAL};
  }
  bool got = false;
  if (const int err = h_->transact(nlh, got); err != 0) {
    return {{}, err};
  }
  if (!got) {
    return {{}, ENOENT};
  }
  const nf_conntrack* ct = h_->reply.get();
  ConntrackEntry e;
  e.reply = reply_tuple(ct);
  e.wscale_orig = nfct_get_attr_u8(ct, ATTR_TCP_WSCALE_ORIG);
  e.wscale_repl = nfct_get_attr_u8(ct, ATTR_TCP_WSCALE_REPL);
  e.flags_orig = nfct_get_attr_u8(ct, ATTR_TCP_FLAGS_ORIG);
  e.flags_repl = nfct_get_attr_u8(ct, ATTR_TCP_FLAGS_REPL);
  e.mark = nfct_get_attr_u32(ct, ATTR_MARK);
  return {e, 0};
}

SysResult<bool> Conntrack::set_mark(const packet::FlowKey& orig, std::uint32_t value,
                                    std::uint32_t mask) noexcept {
  // An update is IPCTNL_MSG_CT_NEW without NLM_F_CREATE: ENOENT if the entry is gone. The kernel
  // computes (mark & ~CTA_MARK_MASK) ^ CTA_MARK (ctnetlink_change_mark), so bits outside the mask
  // are kept; libnetfilter_conntrack has no attribute for the mask, it is appended by hand.
  nlmsghdr* nlh = h_->start(IPCTNL_MSG_CT_NEW, 0, orig);
  nfct_set_attr_u32(h_->query.get(), ATTR_MARK, value & mask);
  if (nfct_nlmsg_build(nlh, h_->query.get()) < 0) {
    return {false, EINVAL};
  }
  mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(mask));
  bool got = false;
  if (const int err = h_->transact(nlh, got); err != 0) {
    return {false, err};
  }
  return {true, 0};
}

}  // namespace acmegw::sys
