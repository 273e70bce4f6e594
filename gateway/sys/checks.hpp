#pragma once
// Startup checks: everything that would make the ruleset or a takeover fail in a confusing way
// later is reported up front, one clear message per problem. Kernel support for the xt
// extensions is not probed here; installing the rules is the probe (gateway/rules/install.cpp
// maps a rejected rule to the modules it needs).
#include <string>
#include <vector>

#include "gateway/sys/result.hpp"

namespace acmegw::sys {

// Whether CAP_NET_ADMIN is in this process's effective set (capget(2)).
[[nodiscard]] SysResult<bool> has_net_admin() noexcept;

// What the caller is about to do, to decide which checks apply.
struct CheckNeeds {
  bool ipv4 = true;     // iptables-restore/-save needed
  bool ipv6 = false;    // ip6tables-restore/-save needed
  bool routing = true;  // `ip` needed (local routes, the IPv6 rule)
};

// Runs the checks for `needs`; returns one message per problem (empty = ready):
// missing CAP_NET_ADMIN, a missing tool.
[[nodiscard]] std::vector<std::string> startup_checks(const CheckNeeds& needs);

}  // namespace acmegw::sys
