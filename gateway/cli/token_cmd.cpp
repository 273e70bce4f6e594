// `acmegw token add|remove|add-alpn|remove-alpn|list`: feeds the `tokens` backend of a running
// `acmegw run` through its unix socket (protocol: backends/tokens.hpp). Used by the ACME client
// hooks in scripts/hooks/. Exit status: 0 done, 1 refused by the server or server unreachable, 2
// invalid arguments (checked here with the server's own validator, so hooks fail early with the
// same message).
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "backends/alpn_cert.hpp"
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
  std::string identifier;  // add-alpn, remove-alpn
  std::string digest;      // add-alpn --digest
  long ttl = bk::kDefaultTokenTtl.count();
};

// Validates `cmd`, sends it, prints what the server answered; returns the exit status.
int run_token_command(const TokenOptions& o, bk::TokenCommand cmd) {
  const std::string line = bk::format_token_command(cmd);
  if (const auto check = bk::parse_token_command(line); check.op == bk::TokenCommand::Op::Invalid) {
    std::cerr << "acmegw token: " << check.error << '\n';
    return 2;
  }
  // The server's full identifier check, here too, so that a hook fails early and clearly.
  if (!cmd.identifier.empty() && !bk::parse_alpn_identifier(cmd.identifier)) {
    std::cerr << "acmegw token: invalid identifier '" << cmd.identifier
              << "': want a DNS name (no wildcard), an IP address or a reverse name\n";
    return 2;
  }
  std::string error;
  const auto response = bk::token_request(o.socket, line, std::chrono::seconds{5}, error);
  if (!response) {
    std::cerr << "acmegw token: " << error << " (is `acmegw run` with a tokens backend running? "
              << "--socket or ACMEGW_TOKEN_SOCKET selects the socket)\n";
    return 1;
  }
  // The last line is "ok[ N]" or "error MESSAGE"; "token …" and "alpn …" lines before it are
  // list entries (token lines are printed without their prefix, as before tls-alpn-01).
  std::string_view rest = *response;
  int status = 1;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    const auto l = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (l.starts_with("token ")) {
      std::cout << l.substr(6) << '\n';
    } else if (l.starts_with("alpn ")) {
      std::cout << l << '\n';
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
      "Add, remove or list challenge tokens (http-01) and identifiers (tls-alpn-01) of the "
      "running gateway's tokens backend.\n"
      "Example: acmegw token add \"$CERTBOT_TOKEN\" \"$CERTBOT_VALIDATION\" --ttl 600");
  tok->require_subcommand(1);
  tok->add_option("--socket", o->socket,
                  "The gateway's token socket (default /run/acmegw/tokens.sock)")
      ->envname("ACMEGW_TOKEN_SOCKET")
      ->option_text("PATH")
      ->capture_default_str();

  CLI::App* add =
      tok->add_subcommand("add", "Serve KEYAUTH for TOKEN until it expires or is removed");
  add->add_option("TOKEN", o->token, "Challenge token, [A-Za-z0-9_-]{1,255}")->required();
  add->add_option("KEYAUTH", o->keyauth, "Key authorization: TOKEN.THUMBPRINT")->required();
  add->add_option("--ttl", o->ttl, "Seconds until the token expires (1..604800)")
      ->option_text("SECONDS")
      ->capture_default_str();
  add->add_option("--host", o->host, "Answer only for this Host (default: any)")
      ->option_text("NAME");
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

  CLI::App* add_alpn = tok->add_subcommand(
      "add-alpn",
      "Answer tls-alpn-01 for IDENTIFIER with the built-in responder until it expires or is "
      "removed.\nExample: acmegw token add-alpn www.example.com \"$KEYAUTH\" --ttl 600");
  add_alpn
      ->add_option("IDENTIFIER", o->identifier,
                   "DNS name, IP address or reverse name (in-addr.arpa, ip6.arpa)")
      ->required();
  auto* keyauth_opt =
      add_alpn->add_option("KEYAUTH", o->keyauth, "Key authorization: TOKEN.THUMBPRINT");
  auto* digest_opt = add_alpn
                         ->add_option("--digest", o->digest,
                                      "base64url(SHA-256(key authorization)) instead of KEYAUTH "
                                      "(what uacme passes its hook); write --digest=VALUE")
                         ->option_text("B64URL");
  keyauth_opt->excludes(digest_opt);
  add_alpn->add_option("--ttl", o->ttl, "Seconds until the entry expires (1..604800)")
      ->option_text("SECONDS")
      ->capture_default_str();
  add_alpn->callback([o] {
    if (o->keyauth.empty() == o->digest.empty()) {
      std::cerr << "acmegw token add-alpn: give either KEYAUTH or --digest\n";
      throw CommandExit{2};
    }
    bk::TokenCommand c;
    c.op = bk::TokenCommand::Op::AddAlpn;
    c.identifier = o->identifier;
    c.keyauth = o->keyauth;
    c.digest = o->digest;
    c.ttl = std::chrono::seconds{o->ttl};
    throw CommandExit{run_token_command(*o, c)};
  });

  CLI::App* remove_alpn =
      tok->add_subcommand("remove-alpn", "Stop answering tls-alpn-01 for IDENTIFIER");
  remove_alpn->add_option("IDENTIFIER", o->identifier, "As given to add-alpn")->required();
  remove_alpn->callback([o] {
    bk::TokenCommand c;
    c.op = bk::TokenCommand::Op::RemoveAlpn;
    c.identifier = o->identifier;
    throw CommandExit{run_token_command(*o, c)};
  });

  CLI::App* list = tok->add_subcommand(
      "list",
      "Print what is being served: TOKEN KEYAUTH ttl=SECONDS [host=NAME] per http-01 token, "
      "alpn IDENTIFIER DIGEST ttl=SECONDS per tls-alpn-01 identifier");
  list->callback([o] {
    bk::TokenCommand c;
    c.op = bk::TokenCommand::Op::List;
    throw CommandExit{run_token_command(*o, c)};
  });
}

}  // namespace acmegw::cli
