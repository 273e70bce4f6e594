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

// Names under /proc/sys/net/ipv4/conf/ ("all", "default", interfaces) whose src_valid_mark is 1
// ("all" first: it makes every interface's effective value 1, as the kernel ORs them).
//
// Why this is fatal (measured on 6.18 in a netns; DESIGN.md pitfall 7 is broader than it says):
// acmegw's `ip rule fwmark TAKEN` makes fib4_has_custom_rules() true, so every forwarded packet
// gets the full fib_validate_source() check even with rp_filter=0; with src_valid_mark=1 that
// reverse lookup carries the TAKEN mark, hits `local 0.0.0.0/0` in our table, and the client's
// address is rejected as a local (martian) source. Taken-over packets are dropped for
// rp_filter 0, 1 and 2 alike.
[[nodiscard]] SysResult<std::vector<std::string>> src_valid_mark_enabled();

// What the caller is about to do, to decide which checks apply.
struct CheckNeeds {
  bool ipv4 = true;     // iptables-restore/-save needed
  bool ipv6 = false;    // ip6tables-restore/-save needed
  bool routing = true;  // `ip` needed, and src_valid_mark must be 0 (TAKEN policy route)
};

// Runs the checks for `needs`; returns one message per problem (empty = ready):
// missing CAP_NET_ADMIN, a missing tool, src_valid_mark=1.
[[nodiscard]] std::vector<std::string> startup_checks(const CheckNeeds& needs);

}  // namespace acmegw::sys
