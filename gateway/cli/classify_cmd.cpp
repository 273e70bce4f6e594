// `acmegw classify`: the classifier's black-box interface. Reads the first bytes of a flow on
// stdin and prints the decision the gateway would make if no more bytes came.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "classifier/classify.hpp"
#include "gateway/cli/commands.hpp"

namespace acmegw::cli {
namespace {

namespace cls = acmegw::classifier;

struct ClassifyOptions {
  bool tls = false;
  bool json = false;
  std::size_t limit = 0;  // 0: the protocol's default from cls::Limits
};

// Peer-controlled bytes made safe for a terminal, a log or JSON: printable ASCII stays, every
// other byte (and the backslash) becomes \xNN, so nothing can inject lines or escapes.
std::string escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += ch;
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

// ALPN protocol names from the extension body the classifier validated (RFC 7301 wire format).
// The view is empty when the list straddled a record boundary; a challenge still implies
// exactly ["acme-tls/1"].
std::vector<std::string> alpn_names(const cls::Classification& c) {
  std::vector<std::string> names;
  if (c.alpn.empty() && c.challenge == cls::ChallengeType::TlsAlpn01) {
    names.emplace_back("acme-tls/1");
  }
  for (std::string_view rest = c.alpn; !rest.empty();) {
    const std::size_t len = static_cast<unsigned char>(rest[0]);
    if (len + 1 > rest.size()) {
      break;
    }
    names.push_back(escape(rest.substr(1, len)));
    rest.remove_prefix(len + 1);
  }
  return names;
}

// "http"/"tls", or "unknown" when the bytes are not that protocol at all.
std::string_view protocol_name(const cls::Classification& c) {
  switch (c.reason) {
    case cls::Reason::NotHttp:
    case cls::Reason::NotTls:
    case cls::Reason::Empty:
      return "unknown";
    default:
      return cls::to_string(c.protocol);
  }
}

int classify_stdin(const ClassifyOptions& o) {
  cls::Limits limits;
  if (o.limit != 0) {
    (o.tls ? limits.max_client_hello : limits.max_http_head) = o.limit;
  }
  // Bytes past the limit cannot change the answer, so that is all we read.
  std::vector<char> buf(o.tls ? limits.max_client_hello : limits.max_http_head);
  std::size_t n = 0;
  while (n < buf.size()) {
    const std::size_t got = std::fread(buf.data() + n, 1, buf.size() - n, stdin);
    if (got == 0) {
      break;
    }
    n += got;
  }
  if (std::ferror(stdin)) {
    std::cerr << "acmegw classify: cannot read stdin\n";
    return 1;
  }
  const auto c = cls::classify(std::as_bytes(std::span{buf.data(), n}),
                               o.tls ? cls::Protocol::Tls : cls::Protocol::Http, limits,
                               /*at_end=*/true);
  const bool challenge = c.decision == cls::Decision::Challenge;
  const std::string host = escape(c.host.view());
  const std::string sni = escape(c.sni.empty() ? c.host.view() : c.sni);
  const auto alpn = alpn_names(c);

  if (o.json) {
    nlohmann::json j;
    j["decision"] = cls::to_string(c.decision);
    j["protocol"] = protocol_name(c);
    j["challenge"] = challenge ? nlohmann::json(cls::to_string(c.challenge)) : nullptr;
    j["reason"] = challenge ? nullptr : nlohmann::json(cls::to_string(c.reason));
    j["token"] = c.token.empty() ? nullptr : nlohmann::json(escape(c.token));
    j["host"] = host.empty() ? nullptr : nlohmann::json(host);
    j["port"] = c.host_port == 0 ? nullptr : nlohmann::json(c.host_port);
    j["sni"] = o.tls && !sni.empty() ? nlohmann::json(sni) : nullptr;
    j["alpn"] = alpn;
    j["head_len"] = c.head_len;
    j["bytes"] = n;
    std::cout << j.dump() << '\n';
    return 0;
  }
  std::string line{cls::to_string(c.decision)};
  if (challenge) {
    line += ' ';
    line += cls::to_string(c.challenge);
  } else {
    line += " reason=";
    line += cls::to_string(c.reason);
  }
  line += " protocol=";
  line += protocol_name(c);
  if (!c.token.empty()) {
    line += " token=" + escape(c.token);
  }
  if (!o.tls && !host.empty()) {
    line += " host=" + host;
  }
  if (c.host_port != 0) {
    line += " port=" + std::to_string(c.host_port);
  }
  if (o.tls && !sni.empty()) {
    line += " sni=" + sni;
  }
  for (std::size_t i = 0; i < alpn.size(); ++i) {
    line += (i == 0 ? " alpn=" : ",") + alpn[i];
  }
  std::cout << line << '\n';
  return 0;
}

}  // namespace

void add_classify_command(CLI::App& app) {
  auto opts = std::make_shared<ClassifyOptions>();
  CLI::App* sub = app.add_subcommand(
      "classify",
      "Classify the first bytes of a flow read on stdin, as if the flow ended there.\n"
      "Example: printf 'GET /.well-known/acme-challenge/abc HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | "
      "acmegw classify --json");
  sub->add_flag("--tls", opts->tls, "Parse a TLS ClientHello (TLS port) instead of HTTP");
  sub->add_flag("--json", opts->json, "Print one JSON object instead of a line");
  sub->add_option("--limit", opts->limit,
                  "Inspection limit in bytes (default 8192 for HTTP, 16384 for TLS; at most 65536)")
      ->option_text("BYTES")
      ->check(
          CLI::Range(std::size_t{1}, std::min(cls::kHardMaxHttpHead, cls::kHardMaxClientHello)));
  sub->callback([opts] { throw CommandExit{classify_stdin(*opts)}; });
}

}  // namespace acmegw::cli
