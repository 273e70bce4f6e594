// `acmegw rules install|remove|print`: the control-plane half of `run`, for operators who manage
// the ruleset themselves (or want to look at it). Takes exactly the configuration flags of `run`.
#include <iostream>
#include <memory>
#include <string>

#include "gateway/cli/commands.hpp"
#include "gateway/cli/startup.hpp"
#include "gateway/rules/install.hpp"

namespace acmegw::cli {
namespace {

enum class Action : std::uint8_t { Install, Remove, Print };

struct RulesOptions {
  gateway::ConfigOptions config;
  bool counters = false;
};

void execute(Action action, const RulesOptions& opts) {
  // remove and the counters need only the names, marks and routing of what is installed.
  const bool whole_ruleset =
      action == Action::Install || (action == Action::Print && !opts.counters);
  const gateway::Config cfg = load_config(
      opts.config, whole_ruleset ? gateway::ConfigUse::Rules : gateway::ConfigUse::RulesRemove);
  try {
    switch (action) {
      case Action::Install:
        require_ready(rules::install_needs(cfg));
        rules::install_rules(cfg);
        std::cout << "acmegw: rules installed (chains " << cfg.chain_prefix << "-*, ip rule pref "
                  << cfg.routing.priority << ", table " << cfg.routing.table << ")\n";
        break;
      case Action::Remove:
        // Privileges only: with tools missing there is nothing installed to remove.
        require_ready(sys::CheckNeeds{false, false, false});
        rules::remove_rules(cfg);
        std::cout << "acmegw: rules removed\n";
        break;
      case Action::Print:
        if (opts.counters) {
          require_ready(sys::CheckNeeds{false, false, false});
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
