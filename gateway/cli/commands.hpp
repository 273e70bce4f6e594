#pragma once
// Each subcommand of the `acmegw` executable registers itself here; main.cpp only wires them.
// A command's callback throws CommandExit to end the process with a specific status.
#include <CLI/CLI.hpp>

namespace acmegw::cli {

struct CommandExit {
  int code;
};

void add_check_config_command(CLI::App& app);
void add_classify_command(CLI::App& app);
void add_rules_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_status_command(CLI::App& app);
void add_thumbprint_command(CLI::App& app);
void add_token_command(CLI::App& app);

}  // namespace acmegw::cli
