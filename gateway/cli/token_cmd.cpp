// `acmegw token add|remove|list`: feeds the `tokens` backend of a running `acmegw run` through
// its unix socket (protocol: backends/tokens.hpp). Used by the ACME client hooks in
// scripts/hooks/. Exit status: 0 done, 1 refused by the server or server unreachable,
// 2 invalid arguments (checked here with the server's own validator, so hooks fail early with
// the same message).
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "backends/tokens.hpp"
#include "backends/tokens_server.hpp"
#include "gateway/cli/commands.hpp"

namespace acmegw::cli {
namespace {

namespace bk = acmegw::backends;

struct TokenOptions {
  std::string socket{bk::kDefaultTokenSocket};
  std::string token;
  std::string keyauth;
  std::string host;
  long ttl = bk::kDefaultTokenTtl.count();
};

// Validates `cmd`, sends it, prints what the server answered; returns the exit status.
int run_token_command(const TokenOptions& o, bk::TokenCommand cmd) {
  const std::string line = bk::format_token_command(cmd);
  if (const auto check = bk::parse_token_command(line); check.op == bk::TokenCommand::Op::Invalid) {
    std::cerr << "acmegw token: " << check.error << '\n';
    return 2;
  }
  std::string error;
  const auto response = bk::token_request(o.socket, line, std::chrono::seconds{5}, error);
  if (!response) {
    std::cerr << "acmegw token: " << error << " (is `acmegw run` with a tokens backend running? "
              << "--socket or ACMEGW_TOKEN_SOCKET selects the socket)\n";
    return 1;
  }
  // The last line is "ok[ N]" or "error MESSAGE"; "token …" lines before it are list entries.
  std::string_view rest = *response;
  int status = 1;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    const auto l = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (l.starts_with("token ")) {
      std::cout << l.substr(6) << '\n';
    } else if (l == "ok" || l.starts_with("ok ")) {
      status = 0;
    } else if (l.starts_with("error ")) {
      std::cerr << "acmegw token: " << l.substr(6) << '\n';
    }
  }
  return status;
}

}  // namespace

void add_token_command(CLI::App& app) {
  auto o = std::make_shared<TokenOptions>();
  CLI::App* tok = app.add_subcommand(
      "token",
      "Add, remove or list challenge tokens of the running gateway's tokens backend.\n"
      "Example: acmegw token add \"$CERTBOT_TOKEN\" \"$CERTBOT_VALIDATION\" --ttl 600");
  tok->require_subcommand(1);
  tok->add_option("--socket", o->socket,
                  "The gateway's token socket (default /run/acmegw/tokens.sock)")
      ->envname("ACMEGW_TOKEN_SOCKET")
      ->option_text("PATH")
      ->capture_default_str();

  CLI::App* add = tok->add_subcommand("add", "Serve KEYAUTH for TOKEN until it expires or is removed");
  add->add_option("TOKEN", o->token, "Challenge token, [A-Za-z0-9_-]{1,255}")->required();
  add->add_option("KEYAUTH", o->keyauth, "Key authorization: TOKEN.THUMBPRINT")->required();
  add->add_option("--ttl", o->ttl, "Seconds until the token expires (1..604800)")
      ->option_text("SECONDS")
      ->capture_default_str();
  add->add_option("--host", o->host, "Answer only for this Host (default: any)")->option_text("NAME");
  add->callback([o] {
    bk::TokenCommand c;
    c.op = bk::TokenCommand::Op::Add;
    c.token = o->token;
    c.keyauth = o->keyauth;
    c.host = o->host;
    c.ttl = std::chrono::seconds{o->ttl};
    throw CommandExit{run_token_command(*o, c)};
  });

  CLI::App* remove = tok->add_subcommand("remove", "Stop serving TOKEN");
  remove->add_option("TOKEN", o->token, "Challenge token")->required();
  remove->callback([o] {
    bk::TokenCommand c;
    c.op = bk::TokenCommand::Op::Remove;
    c.token = o->token;
    throw CommandExit{run_token_command(*o, c)};
  });

  CLI::App* list = tok->add_subcommand(
      "list", "Print the tokens being served: TOKEN KEYAUTH ttl=SECONDS [host=NAME]");
  list->callback([o] {
    bk::TokenCommand c;
    c.op = bk::TokenCommand::Op::List;
    throw CommandExit{run_token_command(*o, c)};
  });
}

}  // namespace acmegw::cli
