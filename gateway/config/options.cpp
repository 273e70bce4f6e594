#include "gateway/config/options.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <set>

#include <toml.hpp>

#include "backends/tokens_server.hpp"

namespace acmegw::gateway {
namespace {

template <typename T, typename U>
bool assign(T& dst, const std::optional<U>& v) {
  if (!v) {
    return false;
  }
  dst = *v;
  return true;
}

constexpr std::string_view kEndpointHelp =
    "Protected production endpoint: ADDR, ADDR/PREFIX, ADDR:PORT, [V6]:PORT, [V6/PREFIX]:PORT; "
    "port 80 by default; tls://ADDR (or port 443) inspects TLS ClientHellos. Repeatable";

const std::array<OptionSpec, 34> kSpecs = {{
    {"protect", "--protect", "ADDR", OptionKind::TextList, "", kEndpointHelp,
     [](Config& c, std::string_view v, std::string& e) {
       const auto ep = parse_endpoint(v, e);
       if (ep) {
         c.protect.push_back(*ep);
       }
       return ep.has_value();
     }},
    {"queue.balance", "--queue-balance", "A[:B]", OptionKind::Text, "",
     "NFQUEUE numbers A..B, one worker each (default 0)",
     [](Config& c, std::string_view v, std::string& e) {
       const auto q = parse_queue_balance(v, e);
       if (q) {
         c.queue.first = q->first;
         c.queue.count = q->count;
       }
       return q.has_value();
     }},
    {"queue.max_len", "--queue-maxlen", "N", OptionKind::Integer, "",
     "Packets per queue before the kernel fails open (default 4096)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.queue.max_len, parse_u32(v, e));
     }},
    {"marks.mask", "--mark-mask", "MASK", OptionKind::Integer, "",
     "Bits of the packet/connection mark acmegw owns (default 0x00f00000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.marks.mask, parse_u32(v, e));
     }},
    {"marks.pass", "--mark-pass", "MARK", OptionKind::Integer, "",
     "Mark of production flows (default 0x00100000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.marks.pass, parse_u32(v, e));
     }},
    {"marks.taken", "--mark-taken", "MARK", OptionKind::Integer, "",
     "Mark of taken-over challenge flows (default 0x00200000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.marks.taken, parse_u32(v, e));
     }},
    {"marks.hold", "--mark-hold", "MARK", OptionKind::Integer, "",
     "Connmark of flows with held segments (default 0x00300000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.marks.hold, parse_u32(v, e));
     }},
    {"marks.rst", "--mark-rst", "MARK", OptionKind::Integer, "",
     "Mark of the RST sent to production on takeover (default 0x00400000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.marks.rst, parse_u32(v, e));
     }},
    {"marks.drop", "--mark-drop", "MARK", OptionKind::Integer, "",
     "Mark of flows dropped by --policy drop (default 0x00500000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.marks.drop, parse_u32(v, e));
     }},
    {"routing.tos", "--takeover-tos", "TOS", OptionKind::Integer, "",
     "IPv4 TOS bits that route taken-over packets to the local socket (default 0x0c; one of "
     "0x04..0x1c under mask 0x1c; cleared on other packets toward protected addresses)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.routing.tos, parse_u32(v, e));
     }},
    {"routing.table", "--route-table", "N", OptionKind::Integer, "",
     "IPv6 routing table delivering taken-over flows locally (default 3802)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.routing.table, parse_u32(v, e));
     }},
    {"routing.priority", "--route-priority", "N", OptionKind::Integer, "",
     "Preference of the IPv6 fwmark ip rule (default 3802)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.routing.priority, parse_u32(v, e));
     }},
    {"chain_prefix", "--chain-prefix", "NAME", OptionKind::Text, "",
     "Prefix of acmegw's iptables chains (default ACMEGW)",
     [](Config& c, std::string_view v, std::string&) {
       c.chain_prefix = v;
       return true;
     }},
    {"hold.max_flows", "--max-undecided-flows", "N", OptionKind::Integer, "",
     "Undecided flows held at once; more go to production (default 65536)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.hold.max_flows, parse_u32(v, e));
     }},
    {"hold.max_segments_per_flow", "--max-held-segments", "N", OptionKind::Integer, "",
     "Segments held per undecided flow (default 32)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.hold.max_segments_per_flow, parse_u32(v, e));
     }},
    {"hold.timeout_ms", "--hold-timeout-ms", "MS", OptionKind::Integer, "",
     "An undecided flow goes to production after this long (default 2000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.hold.timeout_ms, parse_u32(v, e));
     }},
    {"hold.max_total_bytes", "--max-held-bytes", "BYTES", OptionKind::Integer, "",
     "Payload bytes held over all flows (default 67108864)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.hold.max_total_bytes, parse_u64(v, e));
     }},
    {"sessions.max", "--max-sessions", "N", OptionKind::Integer, "",
     "Taken-over connections open at once; beyond, challenges go to production (default 4096)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.sessions.max, parse_u32(v, e));
     }},
    {"sessions.max_per_source", "--max-sessions-per-source", "N", OptionKind::Integer, "",
     "Taken-over connections of one client (IPv4 address, IPv6 /64); beyond, its challenges go "
     "to production (default 64)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.sessions.max_per_source, parse_u32(v, e));
     }},
    {"sessions.header_timeout_ms", "--session-header-timeout-ms", "MS", OptionKind::Integer, "",
     "A taken-over request head or TLS handshake must complete within this (default 10000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.sessions.header_timeout_ms, parse_u32(v, e));
     }},
    {"sessions.idle_timeout_ms", "--session-idle-timeout-ms", "MS", OptionKind::Integer, "",
     "A taken-over connection without a byte either way this long is reset (default 30000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.sessions.idle_timeout_ms, parse_u32(v, e));
     }},
    {"sessions.total_timeout_ms", "--session-total-timeout-ms", "MS", OptionKind::Integer, "",
     "An answering session (not a relayed one) ends after this long (default 60000)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.sessions.total_timeout_ms, parse_u32(v, e));
     }},
    {"limits.max_http_head", "--max-http-head", "BYTES", OptionKind::Integer, "",
     "HTTP request head bytes inspected (and held) per flow (default 8192)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.limits.max_http_head, parse_u32(v, e));
     }},
    {"limits.max_client_hello", "--max-client-hello", "BYTES", OptionKind::Integer, "",
     "TLS ClientHello bytes inspected (and held) per flow (default 16384)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.limits.max_client_hello, parse_u32(v, e));
     }},
    {"prefilter", "--no-prefilter", "", OptionKind::Bool, "false",
     "Queue every first data segment instead of passing non-challenges in the kernel (xt_bpf)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.prefilter, parse_bool(v, e));
     }},
    {"keep_rules", "--keep-rules", "", OptionKind::Bool, "true",
     "run: leave the iptables rules and ip rule/route installed on exit",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.keep_rules, parse_bool(v, e));
     }},
    {"log_level", "--log-level", "LEVEL", OptionKind::Text, "",
     "trace, debug, info, warn, error, critical or off (default info)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.log_level, parse_log_level(v, e));
     }},
    {"metrics_listen", "--metrics-listen", "ADDR:PORT", OptionKind::Text, "",
     "Serve Prometheus metrics on ADDR:PORT; \"off\" disables (default off)",
     [](Config& c, std::string_view v, std::string& e) {
       if (v == "off") {
         c.metrics_listen.reset();
         return true;
       }
       const auto l = parse_listen(v, e);
       if (l) {
         c.metrics_listen = *l;
       }
       return l.has_value();
     }},
    {"control_socket", "--control-socket", "PATH[,mode=OCTAL][,owner=U][,group=G]",
     OptionKind::Text, "",
     "run: the control socket `acmegw status` asks; \"off\" disables (default "
     "/run/acmegw/control.sock, mode 0600)",
     [](Config& c, std::string_view v, std::string& e) {
       if (v == "off") {
         c.control_socket.clear();
         return true;
       }
       c.control_socket = std::string{v};
       if (backends::parse_token_socket_spec(v, e)) {
         return true;
       }
       // The same spec as the tokens socket's; its messages start with that backend's name.
       if (e.starts_with("tokens: ")) {
         e.erase(0, 8);
       }
       return false;
     }},
    {"backend", "--backend", "KIND=VALUE", OptionKind::Text, "",
     "Challenge backend: thumbprint=THUMB, tokens=SOCKET, webroot=DIR, "
     "relay=ADDR:PORT[,proxy=v1|v2], redirect=URL",
     [](Config& c, std::string_view v, std::string& e) {
       const auto b = parse_backend(v, e);
       if (b) {
         c.backend = *b;
       }
       return b.has_value();
     }},
    {"tls_backend", "--tls-backend", "KIND=VALUE", OptionKind::Text, "",
     "tls-alpn-01 backend for tls:// endpoints: tokens=SOCKET (built-in responder), "
     "certdir=DIR, relay=ADDR:PORT[,proxy=v1|v2] (default: the responder on --backend's tokens "
     "store)",
     [](Config& c, std::string_view v, std::string& e) {
       const auto b = parse_backend(v, e);
       if (b) {
         c.tls_backend = *b;
       }
       return b.has_value();
     }},
    {"policy", "--policy", "POLICY", OptionKind::Text, "",
     "Non-challenge HTTP flows: pass, redirect-https, reject or drop (default pass; the others "
     "turn the prefilter off and need a backend)",
     [](Config& c, std::string_view v, std::string& e) {
       return assign(c.policy, parse_policy(v, e));
     }},
    {"challenge.allow", "--challenge-allow", "CIDR", OptionKind::TextList, "",
     "Take over challenges only from these sources (default: all). Repeatable",
     [](Config& c, std::string_view v, std::string& e) {
       const auto p = parse_cidr(v, e);
       if (p) {
         c.challenge.allow.push_back(*p);
       }
       return p.has_value();
     }},
    {"challenge.deny", "--challenge-deny", "CIDR", OptionKind::TextList, "",
     "Challenges from these sources go to production (wins over allow). Repeatable",
     [](Config& c, std::string_view v, std::string& e) {
       const auto p = parse_cidr(v, e);
       if (p) {
         c.challenge.deny.push_back(*p);
       }
       return p.has_value();
     }},
}};

// Empties the list behind a TextList key, so the command line's list replaces the file's.
void clear_list(Config& c, std::string_view key) {
  if (key == "protect") {
    c.protect.clear();
  } else if (key == "challenge.allow") {
    c.challenge.allow.clear();
  } else if (key == "challenge.deny") {
    c.challenge.deny.clear();
  } else {
    std::abort();  // a TextList option without a list here is a bug (STYLE §15)
  }
}

const OptionSpec* find_by_key(std::string_view key) {
  const auto it =
      std::find_if(kSpecs.begin(), kSpecs.end(), [&](const OptionSpec& s) { return s.key == key; });
  return it == kSpecs.end() ? nullptr : &*it;
}

const OptionSpec* find_by_flag(std::string_view flag) {
  const auto it = std::find_if(kSpecs.begin(), kSpecs.end(),
                               [&](const OptionSpec& s) { return s.flag == flag; });
  return it == kSpecs.end() ? nullptr : &*it;
}

// "[queue]" style sections are the key prefixes before a dot.
bool is_section(std::string_view name) {
  return std::any_of(kSpecs.begin(), kSpecs.end(), [&](const OptionSpec& s) {
    return s.key.size() > name.size() && s.key.starts_with(name) && s.key[name.size()] == '.';
  });
}

std::string_view type_name(OptionKind k) {
  switch (k) {
    case OptionKind::Text:
      return "a string";
    case OptionKind::Integer:
      return "an integer";
    case OptionKind::Bool:
      return "true or false";
    case OptionKind::TextList:
      return "an array of strings";
  }
  std::abort();  // corrupt enum (STYLE §15)
}

// Reads one TOML document onto `cfg`. Errors are collected with their line so they can be
// reported in file order (toml11 tables are unordered).
class TomlReader {
 public:
  TomlReader(Config& cfg, std::vector<std::pair<std::uint32_t, ConfigError>>& errors)
      : cfg_(cfg), errors_(errors) {}

  void read_table(const toml::value& table, const std::string& prefix) {
    for (const auto& [name, value] : table.as_table()) {
      const std::string key = prefix.empty() ? name : prefix + '.' + name;
      if (key == "route" || key == "tls_route") {
        read_routes(value, key);
        continue;
      }
      if (value.is_table()) {
        if (is_section(key)) {
          read_table(value, key);
        } else {
          fail(value, key, "unknown section");
        }
        continue;
      }
      const OptionSpec* spec = find_by_key(key);
      if (spec == nullptr) {
        fail(value, key, "unknown key");
        continue;
      }
      read_value(*spec, value, key);
    }
  }

 private:
  void read_value(const OptionSpec& spec, const toml::value& value, const std::string& key) {
    std::vector<std::string> texts;
    if (spec.kind == OptionKind::TextList && value.is_array()) {
      for (const auto& item : value.as_array()) {
        if (!item.is_string()) {
          fail(item, key, "expected an array of strings");
          return;
        }
        texts.push_back(item.as_string().str);
      }
    } else if (value.is_string() && spec.kind != OptionKind::Bool) {
      texts.push_back(value.as_string().str);
    } else if (value.is_integer() && spec.kind == OptionKind::Integer) {
      texts.push_back(std::to_string(value.as_integer()));
    } else if (value.is_boolean() && spec.kind == OptionKind::Bool) {
      texts.emplace_back(value.as_boolean() ? "true" : "false");
    } else {
      fail(value, key, "expected " + std::string{type_name(spec.kind)});
      return;
    }
    for (const auto& t : texts) {
      std::string error;
      if (!spec.apply(cfg_, t, error)) {
        fail(value, key, error);
        return;
      }
    }
    cfg_.origins[key] = where(value);
  }

  // `[[route]]`: an array of tables with hosts, backend, on-miss; `[[tls_route]]` the same
  // without on-miss (docs/configuration.md).
  void read_routes(const toml::value& value, const std::string& table) {
    const bool tls = table == "tls_route";
    std::vector<RouteConfig>& routes = tls ? cfg_.tls_routes : cfg_.routes;
    const std::string expected = "expected [[" + table + "]] tables";
    if (!value.is_array()) {
      fail(value, table, expected);
      return;
    }
    for (const auto& t : value.as_array()) {
      const std::string key = table + "[" + std::to_string(routes.size() + 1) + "]";
      if (!t.is_table()) {
        fail(t, table, expected);
        continue;
      }
      RouteConfig r;
      r.where = where(t);
      bool has_backend = false;
      for (const auto& [name, v] : t.as_table()) {
        const std::string k = key + '.' + name;
        std::string error;
        if (name == "hosts") {
          if (!v.is_array()) {
            fail(v, k, "expected an array of strings");
            continue;
          }
          for (const auto& h : v.as_array()) {
            if (!h.is_string()) {
              fail(h, k, "expected an array of strings");
              break;
            }
            r.hosts.push_back(h.as_string().str);
          }
          if (r.hosts.empty()) {
            fail(v, k, "empty list: leave hosts out for the default route");
          }
        } else if (name == "backend") {
          has_backend = true;
          if (!v.is_string()) {
            fail(v, k, "expected a string KIND=VALUE");
          } else if (const auto b = parse_backend(v.as_string().str, error)) {
            r.backend = *b;
          } else {
            fail(v, k, error);
          }
        } else if (name == "on-miss" && !tls) {
          if (!v.is_string()) {
            fail(v, k, "expected \"404\" or \"production\"");
          } else if (const auto m = parse_on_miss(v.as_string().str, error)) {
            r.on_miss = *m;
          } else {
            fail(v, k, error);
          }
        } else {
          fail(v, k,
               tls ? "unknown key (hosts, backend)" : "unknown key (hosts, backend, on-miss)");
        }
      }
      if (!has_backend) {
        fail(t, key + ".backend", "missing: every route needs backend = \"KIND=VALUE\"");
      }
      routes.push_back(std::move(r));
    }
    cfg_.origins[table] = where(value);
  }

  static std::string where(const toml::value& v) {
    const auto loc = v.location();
    return loc.file_name() + ':' + std::to_string(loc.line());
  }

  void fail(const toml::value& v, const std::string& key, std::string message) {
    errors_.emplace_back(v.location().line(), ConfigError{where(v), key, std::move(message)});
  }

  Config& cfg_;
  std::vector<std::pair<std::uint32_t, ConfigError>>& errors_;
};

// toml11's syntax errors are multi-line ("[error] toml::parse_…: what\n --> file\n 3 | …");
// keep them whole, minus the "[error] " tag, since the underlined excerpt helps the operator.
std::string syntax_message(std::string_view what) {
  constexpr std::string_view kTag = "[error] ";
  if (what.starts_with(kTag)) {
    what.remove_prefix(kTag.size());
  }
  return std::string{what};
}

}  // namespace

std::span<const OptionSpec> option_specs() noexcept {
  return kSpecs;
}

void add_config_options(CLI::App& app, ConfigOptions& opts) {
  constexpr std::string_view kGroup = "Configuration (flags override the --config file)";
  app.add_option("-c,--config", opts.config_file, "TOML configuration file")
      ->type_name("FILE")
      ->group(std::string{kGroup});
  for (const OptionSpec& spec : kSpecs) {
    const std::string flag{spec.flag};
    CLI::Option* opt = nullptr;
    if (spec.kind == OptionKind::Bool) {
      opt = app.add_flag_callback(
          flag,
          [&opts, flag, v = std::string{spec.flag_value}] { opts.flags.emplace_back(flag, v); },
          std::string{spec.help});
    } else if (spec.kind == OptionKind::TextList) {
      opt = app.add_option_function<std::vector<std::string>>(
                   flag,
                   [&opts, flag](const std::vector<std::string>& values) {
                     for (const auto& v : values) {
                       opts.flags.emplace_back(flag, v);
                     }
                   },
                   std::string{spec.help})
                ->allow_extra_args(false);  // one value per occurrence: `--protect A --protect B`
    } else {
      opt = app.add_option_function<std::string>(
                   flag, [&opts, flag](const std::string& v) { opts.flags.emplace_back(flag, v); },
                   std::string{spec.help})
                ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
    opt->type_name(std::string{spec.placeholder});
    opt->group(std::string{kGroup});
  }
}

Config build_config(std::istream* toml_in, const std::string& file,
                    std::span<const std::pair<std::string, std::string>> flags, ConfigUse use) {
  Config cfg;
  std::vector<ConfigError> errors;
  bool syntax_error = false;  // then nothing of the file applied: semantic errors would mislead
  if (toml_in != nullptr) {
    std::vector<std::pair<std::uint32_t, ConfigError>> located;
    try {
      const toml::value doc = toml::parse(*toml_in, file);
      TomlReader{cfg, located}.read_table(doc, "");
    } catch (const toml::syntax_error& e) {
      syntax_error = true;
      located.emplace_back(e.location().line(),
                           ConfigError{file + ':' + std::to_string(e.location().line()), "",
                                       syntax_message(e.what())});
    }
    std::stable_sort(located.begin(), located.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [line, e] : located) {
      errors.push_back(std::move(e));
    }
  }

  std::set<std::string_view> replaced_lists;
  for (const auto& [flag, value] : flags) {
    const OptionSpec* spec = find_by_flag(flag);
    if (spec == nullptr) {
      errors.push_back(ConfigError{flag, "", "unknown configuration flag"});
      continue;
    }
    if (spec->kind == OptionKind::TextList && replaced_lists.insert(spec->key).second) {
      clear_list(cfg, spec->key);
    }
    std::string error;
    if (!spec->apply(cfg, value, error)) {
      errors.push_back(ConfigError{flag, std::string{spec->key}, error});
      continue;
    }
    cfg.origins[std::string{spec->key}] = flag;
  }

  apply_policy_defaults(cfg);
  // Semantic checks of keys whose value did not even parse would only repeat the parse error
  // (e.g. "no protected endpoint" after a bad --protect).
  const auto parse_errors_end = static_cast<std::ptrdiff_t>(errors.size());
  for (ConfigError& e : syntax_error ? std::vector<ConfigError>{} : validate(cfg, use)) {
    const bool unparsed = std::any_of(errors.begin(), errors.begin() + parse_errors_end,
                                      [&](const ConfigError& p) { return p.key == e.key; });
    if (!unparsed) {
      errors.push_back(std::move(e));
    }
  }
  if (!errors.empty()) {
    throw ConfigException(std::move(errors));
  }
  return cfg;
}

Config finish_config(const ConfigOptions& opts, ConfigUse use) {
  if (opts.config_file.empty()) {
    return build_config(nullptr, "", opts.flags, use);
  }
  std::ifstream in(opts.config_file, std::ios::binary);
  if (!in) {
    throw ConfigException({ConfigError{opts.config_file, "", "cannot open the file"}});
  }
  return build_config(&in, opts.config_file, opts.flags, use);
}

}  // namespace acmegw::gateway
