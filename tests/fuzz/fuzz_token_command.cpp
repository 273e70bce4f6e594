// libFuzzer target for the token socket's request parser (backends/tokens.hpp): invariants, not
// just absence of crashes.
//   * Invalid exactly when an error message is set;
//   * every view of a valid command lies inside the input;
//   * a valid command satisfies the validators (token, TOKEN.THUMBPRINT, ttl range, host;
//     add-alpn: an identifier and exactly one of key authorization / decodable digest);
//   * format_token_command() of a valid command parses back to the same command;
//   * TokenStore::execute() answers every input with "\n"-terminated lines ending in "ok…" or
//     "error …".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "backends/keyauth.hpp"
#include "backends/routes.hpp"
#include "backends/tokens.hpp"

namespace {

namespace bk = acmegw::backends;
using Op = bk::TokenCommand::Op;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line{reinterpret_cast<const char*>(data), size};
  const bk::TokenCommand c = bk::parse_token_command(line);
  check((c.op == Op::Invalid) == !c.error.empty());
  if (c.op != Op::Invalid) {
    check(inside(c.token, line) && inside(c.keyauth, line) && inside(c.host, line) &&
          inside(c.identifier, line) && inside(c.digest, line));
    if (c.op == Op::AddAlpn) {
      check(!c.identifier.empty() && c.keyauth.empty() != c.digest.empty());
      check(c.digest.empty() || bk::decode_alpn_digest(c.digest).has_value());
    }
    if (c.op != Op::List && c.op != Op::AddAlpn && c.op != Op::RemoveAlpn) {
      check(bk::is_token(c.token));
    }
    if (c.op == Op::Add) {
      check(bk::is_key_authorization_for(c.keyauth, c.token));
      check(c.ttl.count() >= 1 && c.ttl <= bk::kMaxTokenTtl);
      const auto host = c.host.ends_with('.') ? c.host.substr(0, c.host.size() - 1) : c.host;
      check(c.host.empty() || bk::is_host_name(host));
    }
    const std::string again = bk::format_token_command(c);
    const bk::TokenCommand r = bk::parse_token_command(again);
    check(r.op == c.op && r.token == c.token && r.keyauth == c.keyauth && r.host == c.host &&
          r.identifier == c.identifier && r.digest == c.digest &&
          ((c.op != Op::Add && c.op != Op::AddAlpn) || r.ttl == c.ttl));
  }
  bk::TokenStore store;
  const std::string out = store.execute(line, bk::TokenStore::Clock::time_point{});
  check(!out.empty() && out.back() == '\n');
  const auto last = std::string_view{out}.substr(out.rfind('\n', out.size() - 2) + 1);
  check(last.starts_with("ok") || last.starts_with("error "));
  return 0;
}
