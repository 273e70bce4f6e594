// `acmegw thumbprint --account-key FILE`: prints the RFC 7638 JWK thumbprint of an ACME account
// key, the value the stateless backend needs (`--backend thumbprint=THUMB`).
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "backends/thumbprint_key.hpp"
#include "gateway/cli/commands.hpp"

namespace acmegw::cli {
namespace {

constexpr std::streamsize kMaxKeyFile = 1 << 20;  // an account key is a few KiB

int print_thumbprint(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    std::cerr << "acmegw thumbprint: cannot open " << path << '\n';
    return 1;
  }
  std::string text(static_cast<std::size_t>(kMaxKeyFile) + 1, '\0');
  in.read(text.data(), kMaxKeyFile + 1);
  if (in.bad() || in.gcount() > kMaxKeyFile) {
    std::cerr << "acmegw thumbprint: " << path << ": unreadable or larger than 1 MiB\n";
    return 1;
  }
  text.resize(static_cast<std::size_t>(in.gcount()));
  std::string error;
  const auto jwk = backends::read_account_key(text, error);
  if (!jwk) {
    std::cerr << "acmegw thumbprint: " << path << ": " << error << '\n';
    return 1;
  }
  std::cout << backends::jwk_thumbprint(*jwk) << '\n';
  return 0;
}

}  // namespace

void add_thumbprint_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "thumbprint",
      "Print the RFC 7638 thumbprint of an ACME account key (PEM: certbot, lego, uacme,\n"
      "dehydrated, acme.sh; or certbot's private_key.json JWK).\n"
      "Example: acmegw thumbprint --account-key "
      "/etc/letsencrypt/accounts/acme-v02.api.letsencrypt.org/directory/*/private_key.json");
  sub->add_option("--account-key", *path, "Account key file")->required()->option_text("FILE");
  sub->callback([path] { throw CommandExit{print_thumbprint(*path)}; });
}

}  // namespace acmegw::cli
