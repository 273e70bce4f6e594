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
constexpr std::string_view kNeedsTlsQueue =
    "xt_tcpudp, xt_conntrack, xt_bpf (CONFIG_NETFILTER_XT_MATCH_BPF), xt_NFQUEUE "
    "(CONFIG_NETFILTER_XT_TARGET_NFQUEUE)";
constexpr std::string_view kNeedsNotrack = "xt_mark, xt_CT (CONFIG_NETFILTER_XT_TARGET_CT)";
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

// Segments toward the endpoint (native nft compares in iptables-nft).
std::string endpoint_match(const Endpoint& e) {
  return "-d " + gateway::to_string(e.addr) + '/' + std::to_string(e.prefix_len) +
         " -p tcp -m tcp --dport " + std::to_string(e.port);
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

// Before 2026-12 the jumps carried `-m comment --comment acmegw`; in iptables-nft a comment is
// an xt match, called for every packet the hook sees. Install replaces such a jump, remove
// deletes it.
std::string legacy_jump_spec(std::string_view chain) {
  return "-m comment --comment acmegw -j " + std::string{chain};
}

// "-D HOOK SPEC" for every rule in c's hook whose spec is one of `specs` (duplicates too).
void append_jump_deletions(std::vector<PlanLine>& out, const SaveState& st, std::string_view table,
                           const ChainName& c, std::initializer_list<std::string> specs) {
  for (const std::string& spec : specs) {
    for (std::size_t i = st.count_rule(table, c.hook, spec); i > 0; --i) {
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
      append_jump_deletions(out, st, table, *c, {jump_spec(c->name), legacy_jump_spec(c->name)});
    }
  }
  for (const ChainName* c : present) {
    out.push_back({"-F " + c->name, kNeedsChain});
  }
  for (const ChainName* c : present) {
    out.push_back({"-X " + c->name, kNeedsChain});
  }
}

}  // namespace

BpfPrograms default_programs(Family family) {
  return BpfPrograms{packet::to_xt_bytecode(packet::build_payload_probe(family)),
                     packet::to_xt_bytecode(packet::build_prefilter(family))};
}

std::vector<ChainName> owned_chains(std::string_view prefix) {
  return {
      {"mangle", chain_name(prefix, "PRE"), "PREROUTING"},
      {"mangle", chain_name(prefix, "FLOW"), ""},
      {"mangle", chain_name(prefix, "HTTP"), ""},
      {"raw", chain_name(prefix, "OUT"), "OUTPUT"},
      {"filter", chain_name(prefix, "FWD"), "FORWARD"},
  };
}

bool has_family(const Config& cfg, Family family) noexcept {
  return std::any_of(cfg.protect.begin(), cfg.protect.end(),
                     [&](const Endpoint& e) { return e.addr.family == family; });
}

std::string jump_spec(std::string_view chain) {
  return "-j " + std::string{chain};
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

  // Every packet of the hook passes here: native nft matches only (address, port), no comment
  // (an xt match in iptables-nft), so traffic to other destinations costs one compare per
  // endpoint. Goto: an undecided flow's packet leaves FLOW straight back to PREROUTING instead
  // of running into the next (overlapping) endpoint's rule.
  Chain pre{pre_name.table, pre_name.name, pre_name.hook, {}};
  for (const Endpoint& e : cfg.protect) {
    if (e.addr.family == family) {
      pre.rules.push_back({endpoint_match(e) + " -g " + flow_name.name, kNeedsEndpoint});
    }
  }
  rs.chains.push_back(std::move(pre));

  Chain flow{flow_name.table, flow_name.name, flow_name.hook, {}};
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
          {"-m mark --mark " + taken + ' ' + comment("taken flow, routed to local") + " -j ACCEPT",
           kNeedsMark},
      });
  bool any_http = false;
  for (const Endpoint& e : cfg.protect) {
    if (e.addr.family != family) {
      continue;
    }
    const std::string established = endpoint_match(e) + ' ' + std::string{kEstablishedOriginal};
    if (e.protocol == classifier::Protocol::Http) {
      any_http = true;
      flow.rules.push_back(
          {established + ' ' + comment("protected http endpoint") + " -j " + http_name.name,
           kNeedsJump});
    } else {
      flow.rules.push_back({established + ' ' + bpf_match(programs.payload_probe) + ' ' +
                                comment("queue tls data of undecided flow") + ' ' + queue,
                            kNeedsTlsQueue});
    }
  }
  rs.chains.push_back(std::move(flow));

  if (any_http) {
    Chain http{http_name.table, http_name.name, http_name.hook, {}};
    if (cfg.prefilter) {
      http.rules = {
          {"-m mark --mark " + masked(0, m.mask) + ' ' + bpf_match(programs.prefilter) + ' ' +
               comment("prefilter, not a challenge") + " -j MARK --set-xmark " + pass,
           kNeedsPrefilter},
          {"-m mark --mark " + pass + ' ' + comment("save prefilter verdict") + ' ' + save,
           kNeedsMark},
          {"-m mark --mark " + pass + ' ' + comment("prefilter passed, fast path") + " -j RETURN",
           kNeedsMark},
      };
    }
    http.rules.push_back({bpf_match(programs.payload_probe) + ' ' +
                              comment("queue http data of undecided flow") + ' ' + queue,
                          kNeedsQueue});
    rs.chains.push_back(std::move(http));
  }

  rs.chains.push_back(Chain{names[3].table,
                            names[3].name,
                            names[3].hook,
                            {{"-m mark --mark " + masked(m.rst, m.mask) + ' ' +
                                  comment("untracked reset to production") + " -j CT --notrack",
                              kNeedsNotrack}}});
  // No FORWARD rule for taken flows: every forwarded packet of every flow, both directions, would
  // pay a jump and an xt match for it (docs/performance.md), and the takeover resets production's
  // side before it answers (a takeover whose RST cannot be sent goes to production instead), so
  // production has nothing left to send. Policy drop keeps its FORWARD rule: not the default.
  if (drop_policy) {
    rs.chains.push_back(Chain{names[4].table,
                              names[4].name,
                              names[4].hook,
                              {{"-m connmark --mark " + drop + ' ' +
                                    comment("dropped flow, never forwarded") + " -j DROP",
                                kNeedsDrop}}});
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
      if (!c.hook.empty()) {
        jumps += "-A " + std::string{c.hook} + ' ' + jump_spec(c.name) + '\n';
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
      append_jump_deletions(out, st, table, ChainName{c.table, c.name, c.hook},
                            {legacy_jump_spec(c.name)});
      if (st.count_rule(table, c.hook, jump_spec(c.name)) == 0) {
        out.push_back({"-I " + std::string{c.hook} + " 1 " + jump_spec(c.name), kNeedsChain});
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
  // `show` filters differently from add/del: by type and the exact prefix.
  return RouteCommands{
      rule("show"),
      rule("add"),
      rule("del"),
      {"ip", fam, "route", "show", "table", table, "type", "local", "exact", any, "dev", "lo"},
      route("add"),
      route("del")};
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
