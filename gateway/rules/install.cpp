#include "gateway/rules/install.hpp"

#include <array>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gateway/rules/ruleset.hpp"
#include "gateway/sys/process.hpp"

namespace acmegw::rules {
namespace {

using gateway::Config;
using packet::Family;

constexpr std::array<Family, 2> kFamilies = {Family::V4, Family::V6};

// `ip rule del` runs until our rule is gone; duplicates can only come from manual additions,
// so a small bound keeps a misbehaving `ip` from looping forever.
constexpr int kMaxRuleDeletes = 16;

struct Tools {
  std::string_view label;  // "IPv4"
  std::string save;
  std::string restore;
};

Tools tools(Family f) {
  return f == Family::V4 ? Tools{"IPv4", "iptables-save", "iptables-restore"}
                         : Tools{"IPv6", "ip6tables-save", "ip6tables-restore"};
}

bool tools_present(Family f) {
  const Tools t = tools(f);
  return sys::find_program(t.save) && sys::find_program(t.restore);
}

std::string trimmed(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.remove_suffix(1);
  }
  return std::string{s};
}

// Runs argv; throws RulesError naming the command unless it ran and exited 0.
std::string run_checked(const std::vector<std::string>& argv, std::string_view input = {},
                        std::string_view hint = {}) {
  const auto r = sys::run_process(argv, input);
  if (!r.ok()) {
    throw RulesError(join_argv(argv) + ": " + std::strerror(r.err));
  }
  if (!r.value.exited_ok()) {
    std::string msg = join_argv(argv) + " failed (status " + std::to_string(r.value.status) +
                      "): " + trimmed(r.value.err);
    if (!hint.empty()) {
      msg += "\n" + std::string{hint};
    }
    throw RulesError(msg);
  }
  return r.value.out;
}

// True when `show` ran and printed something: the rule/route exists.
bool present(const std::vector<std::string>& show) {
  const auto r = sys::run_process(show);
  return r.ok() && r.value.exited_ok() && !trimmed(r.value.out).empty();
}

std::string save(Family f, bool counters = false) {
  std::vector<std::string> argv{tools(f).save};
  if (counters) {
    argv.emplace_back("-c");
  }
  return run_checked(argv);
}

void restore(Family f, const std::vector<PlanLine>& plan) {
  const std::vector<std::string> argv{tools(f).restore, "--noflush", "-w"};
  const auto r = sys::run_process(argv, to_text(plan));
  if (!r.ok()) {
    throw RulesError(join_argv(argv) + ": " + std::strerror(r.err));
  }
  if (!r.value.exited_ok()) {
    std::string msg = std::string{tools(f).label} + ": " + join_argv(argv) + " failed (status " +
                      std::to_string(r.value.status) + "): " + trimmed(r.value.err);
    if (const std::string why = explain_restore_error(plan, r.value.err); !why.empty()) {
      msg += "\n" + why;
    }
    throw RulesError(msg);
  }
}

// Deletes the fwmark rule (all copies) and its catch-all local route when present.
void remove_policy_route(const RouteCommands& rc) {
  for (int i = 0; i < kMaxRuleDeletes && present(rc.rule_show); ++i) {
    run_checked(rc.rule_del);
  }
  if (present(rc.route_show)) {
    run_checked(rc.route_del);
  }
}

void remove_family(const Config& cfg, Family f) {
  if (tools_present(f)) {
    const auto plan = plan_remove(cfg.chain_prefix, save(f));
    if (!plan.empty()) {
      restore(f, plan);
    }
  }
  if (!sys::find_program("ip")) {
    return;
  }
  const RouteCommands rc = route_commands(cfg, f);
  remove_policy_route(rc);  // IPv4: what acmegw before 2026-12 installed
  if (f == Family::V4) {
    run_checked(rc.tos_route_flush);
  }
}

// IPv4 delivery: the TOS routes (stale ones of a killed run flushed first) instead of a rule.
void install_tos_routes(const RouteCommands& rc,
                        std::vector<const std::vector<std::string>*>& undo) {
  remove_policy_route(rc);
  run_checked(rc.tos_route_flush);
  undo.push_back(&rc.tos_route_flush);
  for (const auto& add : rc.tos_route_add) {
    run_checked(add);
  }
}

void install_policy_route(const RouteCommands& rc,
                          std::vector<const std::vector<std::string>*>& undo) {
  if (!present(rc.route_show)) {
    run_checked(rc.route_add, {},
                "(IPv6 local routes need the loopback interface up: ip link set lo up)");
    undo.push_back(&rc.route_del);
  }
  if (!present(rc.rule_show)) {
    run_checked(rc.rule_add);
    undo.push_back(&rc.rule_del);
  }
}

void install_family(const Config& cfg, Family f) {
  const RouteCommands rc = route_commands(cfg, f);
  // Undo only what this call added if a later step fails, so a failed install leaves no trace.
  std::vector<const std::vector<std::string>*> undo;
  try {
    if (f == Family::V4) {
      install_tos_routes(rc, undo);
    } else {
      install_policy_route(rc, undo);
    }
    const FamilyRuleset rs = build_ruleset(cfg, f, default_programs(f));
    restore(f, plan_install(rs, cfg.chain_prefix, save(f)));
  } catch (const RulesError&) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      (void)sys::run_process(**it);  // best effort; the original error is what matters
    }
    throw;
  }
}

// Our lines of an `iptables-save -c` document as "PKTS BYTES -A CHAIN SPEC" rows, in ruleset
// order (each jump, then its chain's rules) rather than iptables-save's alphabetical order.
std::string counter_rows(const Config& cfg, std::string_view saved) {
  const std::vector<ChainName> owned = owned_chains(cfg.chain_prefix);
  std::vector<std::string> jump_rows(owned.size());
  std::vector<std::string> chain_rows(owned.size());
  while (!saved.empty()) {
    const auto nl = saved.find('\n');
    const std::string_view line = saved.substr(0, nl);
    saved = nl == std::string_view::npos ? std::string_view{} : saved.substr(nl + 1);
    // "[PKTS:BYTES] -A CHAIN SPEC"
    const auto colon = line.find(':');
    const auto close = line.find("] -A ");
    if (!line.starts_with('[') || colon == std::string_view::npos ||
        close == std::string_view::npos || colon > close) {
      continue;
    }
    const std::string_view rule = line.substr(close + 5);
    const std::string_view chain = rule.substr(0, rule.find(' '));
    for (std::size_t i = 0; i < owned.size(); ++i) {
      const ChainName& c = owned[i];
      std::string* sink = nullptr;
      if (chain == c.name) {
        sink = &chain_rows[i];
      } else if (!c.hook.empty() && chain == c.hook && rule.size() > chain.size() &&
                 is_our_jump(rule.substr(chain.size() + 1), c.name)) {
        sink = &jump_rows[i];
      } else {
        continue;
      }
      std::array<char, 64> counts{};
      const std::string pkts{line.substr(1, colon - 1)};
      const std::string bytes{line.substr(colon + 1, close - colon - 1)};
      std::snprintf(counts.data(), counts.size(), "%12s %14s  ", pkts.c_str(), bytes.c_str());
      *sink += counts.data();
      *sink += "-A ";
      *sink += rule;
      *sink += '\n';
    }
  }
  std::string out;
  for (std::size_t i = 0; i < owned.size(); ++i) {
    out += jump_rows[i] + chain_rows[i];
  }
  return out;
}

}  // namespace

sys::CheckNeeds install_needs(const Config& cfg) {
  return sys::CheckNeeds{has_family(cfg, Family::V4), has_family(cfg, Family::V6), true};
}

void install_rules(const Config& cfg) {
  for (const Family f : kFamilies) {
    if (has_family(cfg, f)) {
      install_family(cfg, f);
    } else {
      remove_family(cfg, f);
    }
  }
}

void remove_rules(const Config& cfg) {
  for (const Family f : kFamilies) {
    remove_family(cfg, f);
  }
}

std::string print_rules(const Config& cfg, bool counters) {
  std::string out;
  for (const Family f : kFamilies) {
    const Tools t = tools(f);
    if (counters) {
      if (!tools_present(f)) {
        continue;
      }
      const std::string rows = counter_rows(cfg, save(f, true));
      out += "# " + std::string{t.label} + ": " +
             (rows.empty() ? std::string{"no acmegw rules installed\n"}
                           : std::string{"     packets          bytes  rule\n"} + rows);
      continue;
    }
    if (!has_family(cfg, f)) {
      continue;
    }
    const RouteCommands rc = route_commands(cfg, f);
    out += "# acmegw ruleset, " + std::string{t.label} + " (" + t.save + " form; " + t.restore +
           " --noflush input)\n";
    out += render_save(build_ruleset(cfg, f, default_programs(f)));
    if (f == Family::V4) {
      out += "# local delivery of taken-over flows: TOS routes, no ip rule\n";
      for (const auto& add : rc.tos_route_add) {
        out += "# " + join_argv(add) + '\n';
      }
    } else {
      out += "# policy routing for taken-over flows\n# " + join_argv(rc.rule_add) + "\n# " +
             join_argv(rc.route_add) + '\n';
    }
  }
  return out;
}

}  // namespace acmegw::rules
