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

// The value of a "ttl=S" field (without "ttl="): 1..kMaxTokenTtl seconds, else nullopt.
std::optional<std::chrono::seconds> parse_ttl(std::string_view v) noexcept {
  std::int64_t s = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
  if (ec != std::errc{} || end != v.data() + v.size() || s < 1 || s > kMaxTokenTtl.count()) {
    return std::nullopt;
  }
  return std::chrono::seconds{s};
}

// Parses the optional "ttl=S" and "host=NAME" fields of an add request.
TokenCommand parse_add_options(TokenCommand c, std::string_view rest) noexcept {
  bool have_ttl = false;
  bool have_host = false;
  for (auto f = next_field(rest); !f.empty(); f = next_field(rest)) {
    if (f.starts_with("ttl=") && !have_ttl) {
      const auto ttl = parse_ttl(f.substr(4));
      if (!ttl) {
        return invalid("invalid ttl: want 1..604800 seconds");
      }
      c.ttl = *ttl;
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

// The characters an identifier may be made of on the wire: DNS names and reverse names
// ([A-Za-z0-9.-]), IPv4 and IPv6 literals (digits, hex, '.', ':'). The rest of the check
// (labels, addresses, wildcards) is parse_alpn_identifier's.
bool is_identifier_text(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxAlpnIdentifierLen) {
    return false;
  }
  for (const char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':';
    if (!ok) {
      return false;
    }
  }
  return true;
}

constexpr std::string_view kBadIdentifier =
    "invalid identifier: want a DNS name, an IP address or a reverse name (in-addr.arpa, "
    "ip6.arpa), at most 254 characters";

// add-alpn IDENTIFIER KEYAUTH|digest=B64URL [ttl=SECONDS]; `rest` follows the verb.
TokenCommand parse_add_alpn(std::string_view rest) noexcept {
  TokenCommand c;
  c.identifier = next_field(rest);
  if (!is_identifier_text(c.identifier)) {
    return invalid(kBadIdentifier);
  }
  const auto auth = next_field(rest);
  if (auth.starts_with("digest=")) {  // '=' is no token character: never a key authorization
    c.digest = auth.substr(7);
    if (!decode_alpn_digest(c.digest)) {
      return invalid(
          "invalid digest: want the 43-character base64url SHA-256 of the key authorization");
    }
  } else {
    const auto dot = auth.find('.');
    const auto token = auth.substr(0, dot);
    if (auth.empty() || dot == std::string_view::npos || !is_token(token) ||
        !is_key_authorization_for(auth, token)) {
      return invalid(
          "invalid key authorization: want TOKEN.THUMBPRINT (token [A-Za-z0-9_-]{1,255}, "
          "thumbprint 43 base64url characters) or digest=B64URL");
    }
    c.keyauth = auth;
  }
  bool have_ttl = false;
  for (auto f = next_field(rest); !f.empty(); f = next_field(rest)) {
    if (!f.starts_with("ttl=") || have_ttl) {
      return invalid("unknown or repeated option (want ttl=SECONDS)");
    }
    const auto ttl = parse_ttl(f.substr(4));
    if (!ttl) {
      return invalid("invalid ttl: want 1..604800 seconds");
    }
    c.ttl = *ttl;
    have_ttl = true;
  }
  c.op = TokenCommand::Op::AddAlpn;
  return c;
}

constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int base64url_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '-') {
    return 62;
  }
  if (c == '_') {
    return 63;
  }
  return -1;
}

}  // namespace

std::optional<AlpnDigest> decode_alpn_digest(std::string_view b64url) noexcept {
  constexpr std::size_t kLen = 43;  // ceil(32 * 8 / 6): 42 full sextets + 4 bits
  if (b64url.size() != kLen) {
    return std::nullopt;
  }
  AlpnDigest out{};
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t n = 0;
  for (const char ch : b64url) {
    const int v = base64url_value(ch);
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n == out.size()) {
        return std::nullopt;  // unreachable for 43 characters; a guard, not an invariant
      }
      out[n++] = static_cast<std::uint8_t>((acc >> bits) & 0xFF);
    }
  }
  // 43 * 6 = 258 bits: 2 bits are left over and must be zero (canonical encoding).
  if (n != out.size() || (acc & ((1U << bits) - 1)) != 0) {
    return std::nullopt;
  }
  return out;
}

std::string encode_alpn_digest(const AlpnDigest& digest) {
  std::string out;
  out.reserve(43);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const std::uint8_t b : digest) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kBase64Url[(acc >> bits) & 0x3F];
    }
  }
  if (bits > 0) {
    out += kBase64Url[(acc << (6 - bits)) & 0x3F];
  }
  return out;
}

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
  if (verb == "add-alpn") {
    return parse_add_alpn(rest);
  }
  if (verb == "remove-alpn") {
    c.identifier = next_field(rest);
    if (!is_identifier_text(c.identifier)) {
      return invalid(kBadIdentifier);
    }
    c.op = TokenCommand::Op::RemoveAlpn;
    return next_field(rest).empty() ? c : invalid("remove-alpn takes one identifier");
  }
  if (verb != "add" && verb != "remove") {
    return invalid("unknown command (want add, remove, add-alpn, remove-alpn or list)");
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
    case TokenCommand::Op::AddAlpn: {
      std::string s = "add-alpn " + std::string{cmd.identifier} + ' ';
      s += cmd.digest.empty() ? std::string{cmd.keyauth} : "digest=" + std::string{cmd.digest};
      return s + " ttl=" + std::to_string(cmd.ttl.count());
    }
    case TokenCommand::Op::RemoveAlpn:
      return "remove-alpn " + std::string{cmd.identifier};
    case TokenCommand::Op::Invalid:
      break;
  }
  return {};
}

void TokenStore::erase_expired(Clock::time_point now) {
  std::erase_if(entries_, [now](const auto& kv) { return kv.second.expires <= now; });
  std::erase_if(alpn_, [now](const auto& kv) { return kv.second.expires <= now; });
}

std::optional<std::string_view> TokenStore::add_alpn(const AlpnIdentifier& id,
                                                     const AlpnDigest& digest,
                                                     std::chrono::seconds ttl,
                                                     Clock::time_point now) {
  const std::lock_guard lock{mu_};
  if (alpn_.size() >= kMaxAlpnIdentifiers && !alpn_.contains(id.sni)) {
    erase_expired(now);  // O(n), so only when full; find_alpn() ignores expired entries anyway
  }
  if (alpn_.size() >= kMaxAlpnIdentifiers && !alpn_.contains(id.sni)) {
    return "tls-alpn-01 store full (65536 identifiers): remove some or wait for them to expire";
  }
  alpn_.insert_or_assign(id.sni, AlpnEntry{id, digest, now + ttl});
  return std::nullopt;
}

bool TokenStore::remove_alpn(std::string_view sni) {
  const std::lock_guard lock{mu_};
  const auto it = alpn_.find(sni);
  if (it == alpn_.end()) {
    return false;
  }
  alpn_.erase(it);
  return true;
}

std::optional<TokenStore::AlpnLookup> TokenStore::find_alpn(std::string_view sni,
                                                            Clock::time_point now) const {
  const std::lock_guard lock{mu_};
  const auto it = alpn_.find(sni);
  if (it == alpn_.end() || it->second.expires <= now) {
    return std::nullopt;
  }
  return AlpnLookup{it->second.id, it->second.digest};
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
    case TokenCommand::Op::AddAlpn: {
      const auto id = parse_alpn_identifier(c.identifier);
      if (!id) {
        return "error " + std::string{kBadIdentifier} + '\n';
      }
      // Hashed at once: the key authorization itself is never stored nor listed.
      const AlpnDigest digest = c.digest.empty()
                                    ? keyauth_digest(c.keyauth)
                                    : decode_alpn_digest(c.digest).value_or(AlpnDigest{});
      if (const auto err = add_alpn(*id, digest, c.ttl, now)) {
        return "error " + std::string{*err} + '\n';
      }
      return "ok\n";
    }
    case TokenCommand::Op::RemoveAlpn: {
      const auto id = parse_alpn_identifier(c.identifier);
      if (!id) {
        return "error " + std::string{kBadIdentifier} + '\n';
      }
      return remove_alpn(id->sni) ? "ok\n" : "error no such identifier\n";
    }
    case TokenCommand::Op::List: {
      const std::lock_guard lock{mu_};
      erase_expired(now);
      std::string out;
      for (const auto& [token, e] : entries_) {
        const auto left = std::chrono::ceil<std::chrono::seconds>(e.expires - now).count();
        out += "token " + token + ' ' + e.keyauth + " ttl=" + std::to_string(left);
        out += e.host.empty() ? "\n" : " host=" + e.host + '\n';
      }
      for (const auto& [sni, e] : alpn_) {
        const auto left = std::chrono::ceil<std::chrono::seconds>(e.expires - now).count();
        out += "alpn " + sni + ' ' + encode_alpn_digest(e.digest) + " ttl=" + std::to_string(left) +
               '\n';
      }
      return out + "ok " + std::to_string(entries_.size() + alpn_.size()) + '\n';
    }
  }
  return "error internal\n";
}

}  // namespace acmegw::backends
