// `acmegw rules install|remove|print`: the control-plane half of `run`, for operators who manage
// the ruleset themselves (or want to look at it). Takes exactly the configuration flags of `run`.
#include <iostream>
#include <memory>
#include <string>

#include "gateway/cli/commands.hpp"
#include "gateway/config/options.hpp"
#include "gateway/rules/install.hpp"
#include "gateway/sys/checks.hpp"

namespace acmegw::cli {
namespace {

// Exit statuses beyond 0/1: a configuration error is the operator's to fix, not a system failure.
constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;

enum class Action : std::uint8_t { Install, Remove, Print };

struct RulesOptions {
  gateway::ConfigOptions config;
  bool counters = false;
};

gateway::Config load(const RulesOptions& opts, bool need_endpoints) {
  try {
    return gateway::finish_config(opts.config, need_endpoints);
  } catch (const gateway::ConfigException& e) {
    for (const auto& err : e.errors()) {
      std::cerr << "acmegw: config: " << err.to_string() << '\n';
    }
    throw CommandExit{kExitConfig};
  }
}

void check(const sys::CheckNeeds& needs) {
  const auto problems = sys::startup_checks(needs);
  for (const auto& p : problems) {
    std::cerr << "acmegw: " << p << '\n';
  }
  if (!problems.empty()) {
    throw CommandExit{kExitFailure};
  }
}

void execute(Action action, const RulesOptions& opts) {
  // remove and the counters need only the names, marks and routing of what is installed.
  const bool need_endpoints =
      action == Action::Install || (action == Action::Print && !opts.counters);
  const gateway::Config cfg = load(opts, need_endpoints);
  try {
    switch (action) {
      case Action::Install:
        check(rules::install_needs(cfg));
        rules::install_rules(cfg);
        std::cout << "acmegw: rules installed (chains " << cfg.chain_prefix << "-*, ip rule pref "
                  << cfg.routing.priority << ", table " << cfg.routing.table << ")\n";
        break;
      case Action::Remove:
        check(sys::CheckNeeds{false, false, false});  // privileges only; missing tools = nothing
        rules::remove_rules(cfg);
        std::cout << "acmegw: rules removed\n";
        break;
      case Action::Print:
        if (opts.counters) {
          check(sys::CheckNeeds{false, false, false});
        }
        std::cout << rules::print_rules(cfg, opts.counters);
        break;
    }
  } catch (const rules::RulesError& e) {
    std::cerr << "acmegw: rules: " << e.what() << '\n';
    throw CommandExit{kExitFailure};
  }
}

void add_action(CLI::App& rules, Action action, const std::string& name,
                const std::string& description) {
  auto opts = std::make_shared<RulesOptions>();
  CLI::App* sub = rules.add_subcommand(name, description);
  gateway::add_config_options(*sub, opts->config);
  if (action == Action::Print) {
    sub->add_flag("--counters", opts->counters,
                  "Show the live packet/byte counters of the installed rules (prefilter passes "
                  "vs queued segments) instead of the generated ruleset");
  }
  sub->callback([action, opts] { execute(action, *opts); });
}

}  // namespace

void add_rules_command(CLI::App& app) {
  CLI::App* rules = app.add_subcommand(
      "rules",
      "Manage acmegw's iptables/ip6tables rules and policy route without running the engine.\n"
      "Example: acmegw rules install --protect 203.0.113.10 --queue-balance 0:3");
  rules->require_subcommand(1);
  add_action(*rules, Action::Install, "install",
             "Install or replace the ruleset (idempotent; atomic per family)");
  add_action(*rules, Action::Remove, "remove",
             "Remove exactly what install added (chains, jumps, ip rule, local route)");
  add_action(*rules, Action::Print, "print",
             "Print the ruleset as iptables-save shows it, or its live counters");
}

}  // namespace acmegw::cli
