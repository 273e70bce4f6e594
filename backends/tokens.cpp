#include "backends/tokens.hpp"

#include <charconv>

#include "backends/keyauth.hpp"
#include "backends/routes.hpp"

namespace acmegw::backends {
namespace {

// Splits off the next space-separated field of `rest`; empty when none is left.
std::string_view next_field(std::string_view& rest) noexcept {
  const auto start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  const auto end = rest.find(' ');
  const auto field = rest.substr(0, end);
  rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  return field;
}

TokenCommand invalid(std::string_view why) noexcept {
  TokenCommand c;
  c.error = why;
  return c;
}

// Parses the optional "ttl=S" and "host=NAME" fields of an add request.
TokenCommand parse_add_options(TokenCommand c, std::string_view rest) noexcept {
  bool have_ttl = false;
  bool have_host = false;
  for (auto f = next_field(rest); !f.empty(); f = next_field(rest)) {
    if (f.starts_with("ttl=") && !have_ttl) {
      const auto v = f.substr(4);
      std::int64_t s = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
      if (ec != std::errc{} || end != v.data() + v.size() || s < 1 || s > kMaxTokenTtl.count()) {
        return invalid("invalid ttl: want 1..604800 seconds");
      }
      c.ttl = std::chrono::seconds{s};
      have_ttl = true;
    } else if (f.starts_with("host=") && !have_host) {
      c.host = f.substr(5);
      const auto name = c.host.ends_with('.') ? c.host.substr(0, c.host.size() - 1) : c.host;
      if (!is_host_name(name)) {
        return invalid("invalid host: want a DNS name or IP address without port");
      }
      have_host = true;
    } else {
      return invalid("unknown or repeated option (want ttl=SECONDS, host=NAME)");
    }
  }
  return c;
}

}  // namespace

TokenCommand parse_token_command(std::string_view line) noexcept {
  if (line.size() >= kMaxRequestLine) {
    return invalid("request too long");
  }
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  std::string_view rest = line;
  const auto verb = next_field(rest);
  TokenCommand c;
  if (verb == "list") {
    c.op = TokenCommand::Op::List;
    return next_field(rest).empty() ? c : invalid("list takes no arguments");
  }
  if (verb != "add" && verb != "remove") {
    return invalid("unknown command (want add, remove or list)");
  }
  c.token = next_field(rest);
  if (!is_token(c.token)) {
    return invalid("invalid token: want 1 to 255 characters of [A-Za-z0-9_-]");
  }
  if (verb == "remove") {
    c.op = TokenCommand::Op::Remove;
    return next_field(rest).empty() ? c : invalid("remove takes one token");
  }
  c.op = TokenCommand::Op::Add;
  c.keyauth = next_field(rest);
  if (!c.keyauth.starts_with(c.token) || c.keyauth.size() <= c.token.size() ||
      c.keyauth[c.token.size()] != '.') {
    return invalid("invalid key authorization: want TOKEN.THUMBPRINT for this token");
  }
  if (!is_key_authorization_for(c.keyauth, c.token)) {
    return invalid(
        "invalid key authorization: the thumbprint must be 43 characters of [A-Za-z0-9_-]");
  }
  return parse_add_options(c, rest);
}

std::string format_token_command(const TokenCommand& cmd) {
  switch (cmd.op) {
    case TokenCommand::Op::List:
      return "list";
    case TokenCommand::Op::Remove:
      return "remove " + std::string{cmd.token};
    case TokenCommand::Op::Add: {
      std::string s = "add " + std::string{cmd.token} + ' ' + std::string{cmd.keyauth} +
                      " ttl=" + std::to_string(cmd.ttl.count());
      if (!cmd.host.empty()) {
        s += " host=" + std::string{cmd.host};
      }
      return s;
    }
    case TokenCommand::Op::Invalid:
      break;
  }
  return {};
}

void TokenStore::erase_expired(Clock::time_point now) {
  std::erase_if(entries_, [now](const auto& kv) { return kv.second.expires <= now; });
}

std::optional<std::string_view> TokenStore::add(std::string_view token, std::string_view keyauth,
                                                std::string_view host, std::chrono::seconds ttl,
                                                Clock::time_point now) {
  std::string h = normalize_host(host);
  const std::lock_guard lock{mu_};
  std::string key{token};
  if (entries_.size() >= kMaxTokens && !entries_.contains(key)) {
    erase_expired(now);  // O(n), so only when full; find() ignores expired entries anyway
  }
  if (entries_.size() >= kMaxTokens && !entries_.contains(key)) {
    return "token store full (65536 tokens): remove some or wait for them to expire";
  }
  entries_.insert_or_assign(std::move(key), Entry{std::string{keyauth}, std::move(h), now + ttl});
  return std::nullopt;
}

bool TokenStore::remove(std::string_view token) {
  const std::lock_guard lock{mu_};
  return entries_.erase(std::string{token}) > 0;
}

std::optional<std::string> TokenStore::find(std::string_view token, std::string_view host,
                                            Clock::time_point now) const {
  const std::lock_guard lock{mu_};
  const auto it = entries_.find(std::string{token});
  if (it == entries_.end() || it->second.expires <= now ||
      (!it->second.host.empty() && it->second.host != host)) {
    return std::nullopt;
  }
  return it->second.keyauth;
}

std::string TokenStore::execute(std::string_view line, Clock::time_point now) {
  const TokenCommand c = parse_token_command(line);
  switch (c.op) {
    case TokenCommand::Op::Invalid:
      return "error " + std::string{c.error} + '\n';
    case TokenCommand::Op::Add:
      if (const auto err = add(c.token, c.keyauth, c.host, c.ttl, now)) {
        return "error " + std::string{*err} + '\n';
      }
      return "ok\n";
    case TokenCommand::Op::Remove:
      return remove(c.token) ? "ok\n" : "error no such token\n";
    case TokenCommand::Op::List: {
      const std::lock_guard lock{mu_};
      erase_expired(now);
      std::string out;
      for (const auto& [token, e] : entries_) {
        const auto left = std::chrono::ceil<std::chrono::seconds>(e.expires - now).count();
        out += "token " + token + ' ' + e.keyauth + " ttl=" + std::to_string(left);
        out += e.host.empty() ? "\n" : " host=" + e.host + '\n';
      }
      return out + "ok " + std::to_string(entries_.size()) + '\n';
    }
  }
  return "error internal\n";
}

}  // namespace acmegw::backends
