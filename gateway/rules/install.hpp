#pragma once
// Applies the pure plans of gateway/rules/ruleset.hpp to the running system through
// iptables-save / iptables-restore --noflush (and the ip6tables pair) and `ip`. Control plane
// only: called by `acmegw run` at start and stop and by `acmegw rules …`; errors are thrown
// (STYLE §11), each naming the command and what the kernel said.
#include <stdexcept>
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/sys/checks.hpp"

namespace acmegw::rules {

class RulesError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Startup checks that `install_rules(cfg)` needs (tools of the families cfg protects, `ip`,
// CAP_NET_ADMIN).
[[nodiscard]] sys::CheckNeeds install_needs(const gateway::Config& cfg);

// Makes acmegw's ruleset for cfg current, per family: policy route first (idempotent), then one
// atomic iptables-restore --noflush that re-declares (flushes) and refills our chains and adds the
// jumps that are missing. A family cfg does not protect gets its acmegw rules removed (if its
// tools exist). Re-running is idempotent. Throws RulesError; a rule the kernel rejects is named
// with the kernel modules it needs.
void install_rules(const gateway::Config& cfg);

// Removes exactly what install_rules() can have added under cfg.chain_prefix / cfg.routing /
// cfg.marks, for both families (a family whose tools are missing is skipped): jumps, chains,
// the ip rule and the local route. Nothing else is touched; absent pieces are fine. Throws
// RulesError.
void remove_rules(const gateway::Config& cfg);

// `acmegw rules print`: the ruleset for cfg exactly as iptables-save shows it, per family, plus the
// ip rule/route commands. With `counters`, instead the live packet/byte counters of acmegw's
// installed rules (reads iptables-save -c; needs CAP_NET_ADMIN). Throws RulesError.
[[nodiscard]] std::string print_rules(const gateway::Config& cfg, bool counters);

}  // namespace acmegw::rules
