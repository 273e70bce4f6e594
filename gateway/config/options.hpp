#pragma once
// The configuration surface shared by `acmegw run` and `acmegw rules …`: one table of options
// (TOML key, command line flag, help) drives the TOML loader, the CLI11 registration and the
// docs check, so a flag and its TOML key can never drift apart.
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "gateway/config/config.hpp"

namespace acmegw::gateway {

// How an option's value is written in TOML (flags always give text).
enum class OptionKind : std::uint8_t {
  Text,      // TOML string
  Integer,   // TOML integer (or a string such as "0x00f00000")
  Bool,      // TOML boolean; the flag takes no value and applies `flag_value`
  TextList,  // TOML array of strings; the flag is repeatable and replaces the file's list
};

struct OptionSpec {
  std::string_view key;          // TOML key path, e.g. "marks.pass"
  std::string_view flag;         // command line flag, e.g. "--mark-pass"
  std::string_view placeholder;  // value name in --help ("" for Bool)
  OptionKind kind;
  std::string_view flag_value;  // Bool: what the bare flag sets ("true"/"false")
  std::string_view help;
  // Parses `text` into `cfg`; on failure returns false and sets `error`.
  bool (*apply)(Config& cfg, std::string_view text, std::string& error);
};

// Every configuration option, in documentation order.
[[nodiscard]] std::span<const OptionSpec> option_specs() noexcept;

// What the command line said, in order; turned into a Config by finish_config().
struct ConfigOptions {
  std::string config_file;  // --config FILE; empty = flags and defaults only
  std::vector<std::pair<std::string, std::string>> flags;  // (flag, value) as given
};

// Registers --config and every configuration flag on `app` (a subcommand). Values are only
// recorded into `opts` (which must outlive parsing); nothing is checked until finish_config().
void add_config_options(CLI::App& app, ConfigOptions& opts);

// Builds the effective Config: defaults, then the TOML document `toml` (if not null; `file`
// names it in errors), then `flags` (a list flag such as --protect replaces the file's list),
// then validate(cfg, use). Throws ConfigException listing every error (FILE:LINE or
// flag, key, message).
[[nodiscard]] Config build_config(std::istream* toml, const std::string& file,
                                  std::span<const std::pair<std::string, std::string>> flags,
                                  ConfigUse use = ConfigUse::Run);

// build_config() with opts.config_file opened (if set). Throws ConfigException, also when the
// file cannot be read.
[[nodiscard]] Config finish_config(const ConfigOptions& opts, ConfigUse use = ConfigUse::Run);

}  // namespace acmegw::gateway
