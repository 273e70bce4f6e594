#include "gateway/rules/ruleset.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <set>
#include <utility>

#include "gateway/packet/prefilter.hpp"

namespace acmegw::rules {
namespace {

using gateway::Config;
using gateway::Endpoint;
using packet::Family;

// Kernel features per rule kind, named as the modules (and Kconfig symbols) an operator checks.
constexpr std::string_view kNeedsMark = "xt_mark, xt_connmark, xt_comment";
constexpr std::string_view kNeedsTakenReplyDrop = "xt_mark, xt_conntrack, xt_comment";
constexpr std::string_view kNeedsEndpoint = "xt_tcpudp";
constexpr std::string_view kNeedsDrop = "xt_connmark, xt_comment";
constexpr std::string_view kNeedsSynClear = "xt_tcpudp, xt_connmark, xt_conntrack, xt_comment";
constexpr std::string_view kNeedsSynReturn = "xt_tcpudp";
constexpr std::string_view kNeedsFastPath = "xt_tcpudp, xt_connmark";
constexpr std::string_view kNeedsJump = "xt_tcpudp, xt_conntrack, xt_comment";
constexpr std::string_view kNeedsPrefilter =
    "xt_bpf (CONFIG_NETFILTER_XT_MATCH_BPF), xt_mark, xt_comment";
constexpr std::string_view kNeedsQueue =
    "xt_bpf (CONFIG_NETFILTER_XT_MATCH_BPF), xt_NFQUEUE (CONFIG_NETFILTER_XT_TARGET_NFQUEUE)";
constexpr std::string_view kNeedsTlsPrefilter =
    "xt_bpf (CONFIG_NETFILTER_XT_MATCH_BPF), xt_string (CONFIG_NETFILTER_XT_MATCH_STRING), "
    "xt_mark, xt_comment";
// The ALPN protocol id of tls-alpn-01 (RFC 8737 §6.2), as it appears in a ClientHello.
constexpr std::string_view kAcmeTlsAlpn = "acme-tls/1";
constexpr std::string_view kNeedsNotrack = "xt_mark, xt_CT (CONFIG_NETFILTER_XT_TARGET_CT)";
constexpr std::string_view kNeedsTosClear =
    "xt_dscp (CONFIG_NETFILTER_XT_MATCH_DSCP), xt_DSCP (CONFIG_NETFILTER_XT_TARGET_DSCP)";
constexpr std::string_view kNeedsTosSet = "xt_mark, xt_comment, xt_DSCP";
constexpr std::string_view kNeedsLocalGuard =
    "xt_mark, xt_dscp, xt_addrtype (CONFIG_NETFILTER_XT_MATCH_ADDRTYPE), xt_comment";
constexpr std::string_view kNeedsChain = "nf_tables / ip_tables with the table loaded";

std::string hex(std::uint32_t v) {
  std::array<char, 11> buf{};
  std::snprintf(buf.data(), buf.size(), "0x%x", v);
  return buf.data();
}

// "0x100000/0xf00000" as iptables-save prints mark/mask pairs.
std::string masked(std::uint32_t value, std::uint32_t mask) {
  return hex(value) + '/' + hex(mask);
}

std::string comment(std::string_view text) {
  // iptables-save quotes comments containing spaces; ours always contain one.
  return "-m comment --comment \"acmegw: " + std::string{text} + '"';
}

std::string nfqueue_target(const gateway::QueueConfig& q) {
  if (q.count == 1) {
    return "-j NFQUEUE --queue-num " + std::to_string(q.first) + " --queue-bypass";
  }
  return "-j NFQUEUE --queue-balance " + std::to_string(q.first) + ':' +
         std::to_string(q.first + q.count - 1u) + " --queue-bypass";
}

std::string bpf_match(std::string_view bytecode) {
  return "-m bpf --bytecode \"" + std::string{bytecode} + '"';
}

std::string net_of(const Endpoint& e) {
  return gateway::to_string(e.addr) + '/' + std::to_string(e.prefix_len);
}

// Segments toward the endpoint (native nft compares in iptables-nft).
std::string endpoint_match(const Endpoint& e) {
  return "-d " + net_of(e) + " -p tcp -m tcp --dport " + std::to_string(e.port);
}

// "0x0c": a TOS byte as iptables-save and `ip route` print it.
std::string tos_hex(std::uint32_t value) {
  std::array<char, 8> buf{};
  std::snprintf(buf.data(), buf.size(), "0x%02x", value);
  return buf.data();
}

// "0x0c/0x1c": the TOS bits of the IPv4 local route under the mask the FIB compares.
std::string tos_bits(std::uint32_t value) {
  return tos_hex(value) + '/' + tos_hex(gateway::RoutingConfig::kTosMask);
}

// Client-to-server segments on an established connection: never a SYN, never the reply side.
constexpr std::string_view kEstablishedOriginal =
    "-m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL";

std::string chain_name(std::string_view prefix, std::string_view suffix) {
  std::string n{prefix};
  n += '-';
  n += suffix;
  return n;
}

// What an iptables-save document says exists, per table.
struct SaveState {
  std::set<std::pair<std::string, std::string>> chains;                  // (table, chain)
  std::vector<std::tuple<std::string, std::string, std::string>> rules;  // (table, chain, spec)

  [[nodiscard]] bool has_chain(std::string_view table, std::string_view chain) const {
    return chains.contains({std::string{table}, std::string{chain}});
  }
  [[nodiscard]] std::size_t count_rule(std::string_view table, std::string_view chain,
                                       std::string_view spec) const {
    return static_cast<std::size_t>(std::count_if(rules.begin(), rules.end(), [&](const auto& r) {
      return std::get<0>(r) == table && std::get<1>(r) == chain && std::get<2>(r) == spec;
    }));
  }
  // Specs of the rules in `chain` that are acmegw jumps to `target` (is_our_jump), in order.
  [[nodiscard]] std::vector<std::string> our_jumps(std::string_view table, std::string_view chain,
                                                   std::string_view target) const {
    std::vector<std::string> out;
    for (const auto& [t, c, spec] : rules) {
      if (t == table && c == chain && is_our_jump(spec, target)) {
        out.push_back(spec);
      }
    }
    return out;
  }
};

SaveState parse_save(std::string_view text) {
  SaveState st;
  std::string table;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.starts_with('[')) {  // "[pkts:bytes] -A …" from iptables-save -c
      const auto close = line.find("] ");
      line = close == std::string_view::npos ? std::string_view{} : line.substr(close + 2);
    }
    if (line.starts_with('*')) {
      table = line.substr(1);
    } else if (line.starts_with(':')) {
      st.chains.emplace(table, std::string{line.substr(1, line.find(' ') - 1)});
    } else if (line.starts_with("-A ")) {
      const std::string_view rest = line.substr(3);
      const auto sp = rest.find(' ');
      if (sp != std::string_view::npos) {
        st.rules.emplace_back(table, std::string{rest.substr(0, sp)},
                              std::string{rest.substr(sp + 1)});
      }
    }
  }
  return st;
}

// "-D HOOK SPEC" for every acmegw jump to c in its hook whose spec `keep` does not list (one
// kept copy per listed spec; duplicates and older forms are deleted).
void append_jump_deletions(std::vector<PlanLine>& out, const SaveState& st, std::string_view table,
                           const ChainName& c, const std::vector<std::string>& keep = {}) {
  std::vector<std::string> kept;
  for (const std::string& spec : st.our_jumps(table, c.hook, c.name)) {
    const bool wanted = std::find(keep.begin(), keep.end(), spec) != keep.end();
    if (wanted && std::find(kept.begin(), kept.end(), spec) == kept.end()) {
      kept.push_back(spec);
    } else {
      out.push_back({"-D " + std::string{c.hook} + ' ' + spec, kNeedsChain});
    }
  }
}

// Lines that unhook and delete the chains of `table` in `stale` that exist in `st`: jumps first,
// then every flush (a chain may jump to another), then the deletions.
void append_removal(std::vector<PlanLine>& out, const SaveState& st, std::string_view table,
                    const std::vector<ChainName>& stale) {
  std::vector<const ChainName*> present;
  for (const auto& c : stale) {
    if (c.table == table && st.has_chain(table, c.name)) {
      present.push_back(&c);
    }
  }
  for (const ChainName* c : present) {
    if (!c->hook.empty()) {
      append_jump_deletions(out, st, table, *c);
    }
  }
  for (const ChainName* c : present) {
    out.push_back({"-F " + c->name, kNeedsChain});
  }
  for (const ChainName* c : present) {
    out.push_back({"-X " + c->name, kNeedsChain});
  }
}

// The distinct "ADDR/LEN" networks of the endpoints of `family` that `keep` accepts, in config
// order.
template <class Keep>
std::vector<std::string> distinct_nets(const Config& cfg, Family family, Keep keep) {
  std::vector<std::string> nets;
  for (const Endpoint& e : cfg.protect) {
    if (e.addr.family != family || !keep(e)) {
      continue;
    }
    std::string n = net_of(e);
    if (std::find(nets.begin(), nets.end(), n) == nets.end()) {
      nets.push_back(std::move(n));
    }
  }
  return nets;
}

// protected_nets() without the networks that lie inside another one.
std::vector<std::string> outermost_nets(const Config& cfg, Family family) {
  return distinct_nets(cfg, family, [&](const Endpoint& e) {
    return std::none_of(cfg.protect.begin(), cfg.protect.end(), [&](const Endpoint& o) {
      return o.prefix_len < e.prefix_len && gateway::Cidr{o.addr, o.prefix_len}.contains(e.addr);
    });
  });
}

// A hooked chain holding one rule.
Chain one_rule_chain(const ChainName& name, std::string spec, std::string_view needs) {
  return Chain{name.table, name.name, name.hook, {{std::move(spec), needs}}, {}};
}

// The jumps of c in its hook (none when it has no hook).
std::vector<std::string> hook_jumps(const Chain& c) {
  if (c.hook.empty()) {
    return {};
  }
  return c.jumps.empty() ? std::vector<std::string>{jump_spec(c.name)} : c.jumps;
}

}  // namespace

BpfPrograms default_programs(Family family) {
  return BpfPrograms{packet::to_xt_bytecode(packet::build_payload_probe(family)),
                     packet::to_xt_bytecode(packet::build_prefilter(family)),
                     packet::to_xt_bytecode(packet::build_tls_prefilter(family))};
}

std::vector<ChainName> owned_chains(std::string_view prefix) {
  return {
      {"mangle", chain_name(prefix, "PRE"), "PREROUTING"},
      {"mangle", chain_name(prefix, "FLOW"), ""},
      {"mangle", chain_name(prefix, "HTTP"), ""},
      {"mangle", chain_name(prefix, "TLS"), ""},
      {"raw", chain_name(prefix, "OUT"), "OUTPUT"},
      {"filter", chain_name(prefix, "FWD"), "FORWARD"},
      {"mangle", chain_name(prefix, "IN"), "INPUT"},
  };
}

std::vector<std::string> protected_nets(const Config& cfg, Family family) {
  return distinct_nets(cfg, family, [](const Endpoint&) { return true; });
}

bool has_family(const Config& cfg, Family family) noexcept {
  return std::any_of(cfg.protect.begin(), cfg.protect.end(),
                     [&](const Endpoint& e) { return e.addr.family == family; });
}

std::string jump_spec(std::string_view chain) {
  return "-j " + std::string{chain};
}

bool is_our_jump(std::string_view spec, std::string_view chain) {
  const std::string target = jump_spec(chain);
  if (!spec.ends_with(target)) {
    return false;
  }
  spec.remove_suffix(target.size());
  // "": the match-less jump; "-d NET ": PFX-PRE's per-network jumps; before 2026-12 the jumps
  // carried `-m comment --comment acmegw` (an xt match per packet in iptables-nft).
  if (spec.empty() || spec == "-m comment --comment acmegw ") {
    return true;
  }
  return spec.starts_with("-d ") && spec.size() > 4 && spec.find(' ', 3) == spec.size() - 1;
}

FamilyRuleset build_ruleset(const Config& cfg, Family family, const BpfPrograms& programs) {
  FamilyRuleset rs;
  rs.family = family;
  if (!has_family(cfg, family)) {
    return rs;
  }
  const gateway::Marks& m = cfg.marks;
  const std::string pass = masked(m.pass, m.mask);
  const std::string taken = masked(m.taken, m.mask);
  const bool drop_policy = cfg.uses_drop_mark();
  const std::string drop = masked(m.drop, m.mask);
  const std::string save =
      "-j CONNMARK --save-mark --nfmask " + hex(m.mask) + " --ctmask " + hex(m.mask);
  const std::string queue = nfqueue_target(cfg.queue);
  const std::vector<ChainName> names = owned_chains(cfg.chain_prefix);
  const ChainName& pre_name = names[0];
  const ChainName& flow_name = names[1];
  const ChainName& http_name = names[2];
  const ChainName& tls_name = names[3];
  const ChainName& out_name = names[4];
  const ChainName& fwd_name = names[5];
  const ChainName& in_name = names[6];
  const bool v4 = family == Family::V4;

  // Every packet of the hook passes here: native nft matches only (address, port), no comment
  // (an xt match in iptables-nft), so traffic to other destinations costs one compare per
  // endpoint. Goto: an undecided flow's packet leaves FLOW straight back to PREROUTING instead
  // of running into the next (overlapping) endpoint's rule.
  // The hook's jumps carry the destination (one native compare): traffic to other destinations,
  // and the reply direction of every flow, never enters PFX-PRE (a jump and a return cost more
  // than the compare; docs/performance.md). Only networks not inside another one: a packet must
  // not enter PFX-PRE twice.
  Chain pre{pre_name.table, pre_name.name, pre_name.hook, {}, {}};
  for (const std::string& net : outermost_nets(cfg, family)) {
    pre.jumps.push_back("-d " + net + ' ' + jump_spec(pre.name));
  }
  if (v4) {
    // A packet carrying the local route's TOS bits would be delivered to this host instead of
    // production: clear them, on every packet toward a protected address (any port or
    // protocol), before anything else sets them. One xt match per such packet: iptables-nft
    // has no native TOS compare (docs/takeover.md "Delivery").
    for (const std::string& net : protected_nets(cfg, family)) {
      pre.rules.push_back({"-d " + net + " -m tos --tos " + tos_bits(cfg.routing.tos) +
                               " -j TOS --set-tos " + tos_bits(0),
                           kNeedsTosClear});
    }
  }
  for (const Endpoint& e : cfg.protect) {
    if (e.addr.family == family) {
      pre.rules.push_back({endpoint_match(e) + " -g " + flow_name.name, kNeedsEndpoint});
    }
  }
  rs.chains.push_back(std::move(pre));

  Chain flow{flow_name.table, flow_name.name, flow_name.hook, {}, {}};
  flow.rules = {
      // The fast path, first: every later packet of a production flow ends here after native
      // compares and one xt match. No comment on purpose (it would be a second xt match per
      // packet). Not for a SYN (rule 2 may have to clear the decision). A NF_REPEATed PASS
      // verdict only meets it once its flow's connmark is PASS already: nothing left to save.
      {"-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m connmark --mark " + pass + " -j RETURN",
       kNeedsFastPath},
      // A client SYN starts a new flow even when conntrack still holds an entry for the tuple:
      // after acmegw's RST (reply direction) the entry lingers in CLOSE and the kernel resyncs
      // it to the new handshake instead of replacing it (nf_conntrack_proto_tcp.c, IGNORE
      // case), so without this the new flow would inherit TAKEN (routed to a closed local
      // socket) or PASS (a challenge on it would reach production). The native flags compare
      // comes first, so other packets never call the xt matches.
      {"-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connmark ! --mark " + masked(0, m.mask) +
           " -m conntrack --ctdir ORIGINAL " + comment("new connection on a decided tuple") +
           " -j CONNMARK --set-xmark " + masked(0, m.mask),
       kNeedsSynClear},
      // Nothing else to do for a SYN: its flow is undecided (rule 2 made sure) and has no data.
      // No comment: every new connection meets this rule.
      {"-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j RETURN", kNeedsSynReturn},
      {"-m mark --mark " + pass + ' ' + comment("save production verdict") + ' ' + save,
       kNeedsMark},
      {"-m mark --mark " + pass + ' ' + comment("production verdict saved") + " -j RETURN",
       kNeedsMark},
      {"-m mark --mark " + taken + ' ' + comment("save takeover verdict") + ' ' + save, kNeedsMark},
  };
  if (drop_policy) {
    // After the SYN rule (a client's new connection on the tuple clears the stale decision)
    // and after the production fast path (production flows never pay for this one).
    flow.rules.push_back(
        {"-m mark --mark " + drop + ' ' + comment("save drop verdict") + ' ' + save, kNeedsMark});
    flow.rules.push_back(
        {"-m connmark --mark " + drop + ' ' + comment("dropped flow (policy drop)") + " -j DROP",
         kNeedsDrop});
  }
  flow.rules.insert(
      flow.rules.end(),
      {
          // Only flows with a decision or HOLD have anything to restore: one xt match for the
          // others instead of the restore target (and its comment).
          {"-m connmark ! --mark " + masked(0, m.mask) + ' ' + comment("restore flow decision") +
               " -j CONNMARK --restore-mark --nfmask " + hex(m.mask) + " --ctmask " + hex(m.mask),
           kNeedsMark},
          // Only if a client inside a protected prefix talks from a protected port: production's
          // packets of a taken flow then come through here, and restore-mark above would route
          // them to local.
          {"-m mark --mark " + taken + " -m conntrack --ctdir REPLY " +
               comment("drop production side of taken flow") + " -j DROP",
           kNeedsTakenReplyDrop},
      });
  if (v4) {
    flow.rules.push_back({"-m mark --mark " + taken + ' ' + comment("taken flow, local route TOS") +
                              " -j TOS --set-tos " + tos_bits(cfg.routing.tos),
                          kNeedsTosSet});
  }
  flow.rules.push_back(
      {"-m mark --mark " + taken + ' ' + comment("taken flow, routed to local") + " -j ACCEPT",
       kNeedsMark});
  bool any_http = false;
  bool any_tls = false;
  for (const Endpoint& e : cfg.protect) {
    if (e.addr.family != family) {
      continue;
    }
    const bool http = e.protocol == classifier::Protocol::Http;
    (http ? any_http : any_tls) = true;
    flow.rules.push_back({endpoint_match(e) + ' ' + std::string{kEstablishedOriginal} + ' ' +
                              comment(http ? "protected http endpoint" : "protected tls endpoint") +
                              " -j " + (http ? http_name : tls_name).name,
                          kNeedsJump});
  }
  rs.chains.push_back(std::move(flow));

  // PFX-HTTP / PFX-TLS: the protocol's prefilter (when on), then the queue.
  const auto undecided = [&](const ChainName& name, std::string_view protocol,
                             std::string prefilter_match, std::string_view needs) {
    Chain c{name.table, name.name, name.hook, {}, {}};
    if (cfg.prefilter) {
      c.rules = {
          {"-m mark --mark " + masked(0, m.mask) + ' ' + prefilter_match + ' ' +
               comment("prefilter, not a challenge") + " -j MARK --set-xmark " + pass,
           needs},
          {"-m mark --mark " + pass + ' ' + comment("save prefilter verdict") + ' ' + save,
           kNeedsMark},
          {"-m mark --mark " + pass + ' ' + comment("prefilter passed, fast path") + " -j RETURN",
           kNeedsMark},
      };
    }
    c.rules.push_back({bpf_match(programs.payload_probe) + ' ' +
                           comment("queue " + std::string{protocol} + " data of undecided flow") +
                           ' ' + queue,
                       kNeedsQueue});
    // The rule above queues payload only: a held flow's bare FIN or RST would overtake its held
    // bytes to production (which then ignores the RST, or sees the FIN first). Queued, it ends
    // the flow in order (production_by_cause.client_end).
    c.rules.push_back({"-p tcp -m mark --mark " + masked(m.hold, m.mask) +
                           " -m tcp ! --tcp-flags FIN,RST NONE " +
                           comment("queue end of held " + std::string{protocol} + " flow") + ' ' +
                           queue,
                       kNeedsQueue});
    rs.chains.push_back(std::move(c));
  };
  if (any_http) {
    undecided(http_name, "http", bpf_match(programs.prefilter), kNeedsPrefilter);
  }
  if (any_tls) {
    // The bpf program first: xt_string only runs on segments that can be ruled out whole.
    undecided(tls_name, "tls",
              bpf_match(programs.tls_prefilter) + " -m string ! --string \"" +
                  std::string{kAcmeTlsAlpn} + "\" --algo bm",
              kNeedsTlsPrefilter);
  }

  rs.chains.push_back(one_rule_chain(out_name,
                                     "-m mark --mark " + masked(m.rst, m.mask) + ' ' +
                                         comment("untracked reset to production") +
                                         " -j CT --notrack",
                                     kNeedsNotrack));
  // No FORWARD rule for taken flows: every forwarded packet of every flow, both directions, would
  // pay a jump and an xt match for it (docs/performance.md), and the takeover resets production's
  // side before it answers (a takeover whose RST cannot be sent goes to production instead), so
  // production has nothing left to send. Policy drop keeps its FORWARD rule: not the default.
  if (drop_policy) {
    rs.chains.push_back(one_rule_chain(
        fwd_name,
        "-m connmark --mark " + drop + ' ' + comment("dropped flow, never forwarded") + " -j DROP",
        kNeedsDrop));
  }
  if (v4) {
    // Defence in depth: only taken packets may arrive through acmegw's TOS routes (a takeover
    // adds one for a post-DNAT address, whose other packets PFX-PRE never saw). Only locally
    // delivered packets meet this, never forwarded ones.
    rs.chains.push_back(
        one_rule_chain(in_name,
                       "-m mark ! --mark " + taken + " -m tos --tos " + tos_bits(cfg.routing.tos) +
                           " -m addrtype ! --dst-type LOCAL " +
                           comment("not taken, yet delivered by a takeover route") + " -j DROP",
                       kNeedsLocalGuard));
  }
  return rs;
}

std::string render_save(const FamilyRuleset& rs) {
  std::string out;
  for (const std::string_view table : kTables) {
    std::string body;
    std::string decls;
    std::string jumps;
    for (const Chain& c : rs.chains) {
      if (c.table != table) {
        continue;
      }
      decls += ':' + c.name + " - [0:0]\n";
      for (const std::string& j : hook_jumps(c)) {
        jumps += "-A " + std::string{c.hook} + ' ' + j + '\n';
      }
      for (const Rule& r : c.rules) {
        body += "-A " + c.name + ' ' + r.spec + '\n';
      }
    }
    if (!decls.empty()) {
      out += '*' + std::string{table} + '\n' + decls + jumps + body + "COMMIT\n";
    }
  }
  return out;
}

std::vector<PlanLine> plan_install(const FamilyRuleset& rs, std::string_view prefix,
                                   std::string_view current) {
  const SaveState st = parse_save(current);
  std::vector<ChainName> stale;
  for (ChainName& c : owned_chains(prefix)) {
    const bool used = std::any_of(rs.chains.begin(), rs.chains.end(),
                                  [&](const Chain& ch) { return ch.name == c.name; });
    if (!used) {
      stale.push_back(std::move(c));
    }
  }
  std::vector<PlanLine> out;
  for (const std::string_view table : kTables) {
    const std::size_t start = out.size();
    for (const Chain& c : rs.chains) {
      if (c.table == table) {
        out.push_back({':' + c.name + " - [0:0]", kNeedsChain});  // declares, or flushes
      }
    }
    for (const Chain& c : rs.chains) {
      if (c.table != table || c.hook.empty()) {
        continue;
      }
      const std::vector<std::string> want = hook_jumps(c);
      append_jump_deletions(out, st, table, ChainName{c.table, c.name, c.hook}, want);
      // Inserted at 1 in reverse, so they end up first in the hook, in `want` order.
      for (auto j = want.rbegin(); j != want.rend(); ++j) {
        if (st.count_rule(table, c.hook, *j) == 0) {
          out.push_back({"-I " + std::string{c.hook} + " 1 " + *j, kNeedsChain});
        }
      }
    }
    for (const Chain& c : rs.chains) {
      if (c.table == table) {
        for (const Rule& r : c.rules) {
          out.push_back({"-A " + c.name + ' ' + r.spec, r.needs});
        }
      }
    }
    append_removal(out, st, table, stale);
    if (out.size() != start) {
      out.insert(out.begin() + static_cast<std::ptrdiff_t>(start),
                 PlanLine{'*' + std::string{table}, kNeedsChain});
      out.push_back({"COMMIT", ""});
    }
  }
  return out;
}

std::vector<PlanLine> plan_remove(std::string_view prefix, std::string_view current) {
  const SaveState st = parse_save(current);
  const std::vector<ChainName> all = owned_chains(prefix);
  std::vector<PlanLine> out;
  for (const std::string_view table : kTables) {
    std::vector<PlanLine> lines;
    append_removal(lines, st, table, all);
    if (!lines.empty()) {
      out.push_back({'*' + std::string{table}, kNeedsChain});
      out.insert(out.end(), lines.begin(), lines.end());
      out.push_back({"COMMIT", ""});
    }
  }
  return out;
}

std::string explain_restore_error(const std::vector<PlanLine>& plan, std::string_view stderr_text) {
  // iptables-nft: "line 10: RULE_APPEND failed (…)" or "Error occurred at line: 2";
  // legacy: "iptables-restore: line 2 failed".
  for (std::size_t at = stderr_text.find("line"); at != std::string_view::npos;
       at = stderr_text.find("line", at + 1)) {
    std::size_t i = at + 4;
    if (i < stderr_text.size() && stderr_text[i] == ':') {
      ++i;
    }
    if (i >= stderr_text.size() || stderr_text[i] != ' ') {
      continue;
    }
    std::size_t n = 0;
    const char* end = stderr_text.data() + stderr_text.size();
    if (std::from_chars(stderr_text.data() + i + 1, end, n).ec != std::errc{} || n == 0 ||
        n > plan.size()) {
      continue;
    }
    const PlanLine& line = plan[n - 1];
    if (line.text == "COMMIT") {
      return "the kernel rejected the table committed at input line " + std::to_string(n) +
             "; acmegw's rules need xt_mark, xt_connmark, xt_conntrack, xt_comment, xt_tcpudp, "
             "xt_bpf, xt_NFQUEUE and xt_CT";
    }
    if (line.needs.empty()) {
      return {};
    }
    return "rule `" + line.text + "` (input line " + std::to_string(n) +
           ") was rejected; it needs: " + std::string{line.needs};
  }
  return {};
}

std::string to_text(const std::vector<PlanLine>& plan) {
  std::string out;
  for (const PlanLine& l : plan) {
    out += l.text;
    out += '\n';
  }
  return out;
}

RouteCommands route_commands(const Config& cfg, Family family) {
  const std::string fam = family == Family::V4 ? "-4" : "-6";
  const std::string any = family == Family::V4 ? "0.0.0.0/0" : "::/0";
  const std::string table = std::to_string(cfg.routing.table);
  const std::string pref = std::to_string(cfg.routing.priority);
  const std::string mark = masked(cfg.marks.taken, cfg.marks.mask);
  auto rule = [&](std::string verb) {
    return std::vector<std::string>{"ip", fam,      "rule", std::move(verb), "pref",
                                    pref, "fwmark", mark,   "lookup",        table};
  };
  auto route = [&](std::string verb) {
    return std::vector<std::string>{"ip", fam,   "route", std::move(verb), "local",
                                    any,  "dev", "lo",    "table",         table};
  };
  const std::string proto = std::to_string(gateway::RoutingConfig::kRouteProtocol);
  RouteCommands rc{
      rule("show"),
      rule("add"),
      rule("del"),
      // `show` filters differently from add/del: by type and the exact prefix.
      {"ip", fam, "route", "show", "table", table, "type", "local", "exact", any, "dev", "lo"},
      route("add"),
      route("del"),
      {},
      {"ip", "-4", "route", "flush", "table", "local", "proto", proto}};
  if (family == Family::V4) {
    for (const std::string& net : protected_nets(cfg, family)) {
      rc.tos_route_add.push_back({"ip", "-4", "route", "add", "local", net, "tos",
                                  tos_hex(cfg.routing.tos), "proto", proto, "dev", "lo", "table",
                                  "local"});
    }
  }
  return rc;
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) {
      out += ' ';
    }
    out += a;
  }
  return out;
}

}  // namespace acmegw::rules
