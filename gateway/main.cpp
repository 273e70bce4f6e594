#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "gateway/cli/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "acmegw: transparent interception gateway for ACME validation traffic.\n"
      "Routes /.well-known/acme-challenge/ flows by path to a validation backend;\n"
      "every other flow goes to production untouched.\n\n"
      "Example: acmegw run --protect 203.0.113.10 --backend thumbprint=THUMB",
      "acmegw"};
  app.set_version_flag("-V,--version", "acmegw " ACMEGW_VERSION);
  app.require_subcommand(1);
  acmegw::cli::add_run_command(app);
  acmegw::cli::add_status_command(app);
  acmegw::cli::add_rules_command(app);
  acmegw::cli::add_classify_command(app);
  acmegw::cli::add_token_command(app);
  acmegw::cli::add_thumbprint_command(app);
  acmegw::cli::add_check_config_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const acmegw::cli::CommandExit& e) {
    return e.code;
  } catch (const std::exception& e) {
    std::cerr << "acmegw: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
