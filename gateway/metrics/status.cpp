#include "gateway/metrics/status.hpp"

#include <fmt/format.h>

namespace acmegw::metrics {
namespace {

using nlohmann::json;

std::uint64_t counter(const std::map<std::string, std::uint64_t>& m, const std::string& name) {
  const auto it = m.find(name);
  return it == m.end() ? 0 : it->second;
}

// The nonzero members of counter family `family` ("family.member" names) as an object.
json family(const std::map<std::string, std::uint64_t>& m, const std::string& name) {
  json out = json::object();
  const std::string prefix = name + '.';
  for (auto it = m.lower_bound(prefix); it != m.end() && it->first.starts_with(prefix); ++it) {
    if (it->second != 0) {
      out[it->first.substr(prefix.size())] = it->second;
    }
  }
  return out;
}

json routes(const std::vector<gateway::RouteConfig>& rs) {
  json out = json::array();
  for (const auto& r : rs) {
    out.push_back({{"hosts", r.hosts}, {"backend", gateway::to_string(r.backend)}});
  }
  return out;
}

// Endpoints, policy and prefilter of `c` (they need a restart); backends and routes of `r`.
json config_part(const gateway::Config& c, const gateway::Config& r) {
  json endpoints = json::array();
  for (const auto& e : c.protect) {
    endpoints.push_back(gateway::to_string(e));
  }
  const auto spec = [](const std::optional<gateway::BackendSpec>& b) {
    return b ? json(gateway::to_string(*b)) : json(nullptr);
  };
  return {{"endpoints", endpoints},
          {"metrics", c.metrics_listen ? gateway::to_string(*c.metrics_listen) : "off"},
          {"backend", spec(r.backend)},
          {"tls_backend", spec(r.tls_backend)},
          {"routes", routes(r.routes)},
          {"tls_routes", routes(r.tls_routes)},
          {"policy", gateway::to_string(c.policy)},
          {"prefilter", c.prefilter}};
}

// "a=1 b=2" from a family object, "" when empty.
std::string members(const json& obj) {
  std::string out;
  for (const auto& [k, v] : obj.items()) {
    out += fmt::format("{}{}={}", out.empty() ? "" : " ", k, v.dump());
  }
  return out;
}

std::string text(const json& j, const char* key, std::string_view fallback = "-") {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return std::string{fallback};
  }
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string joined(const json& j, const char* key, std::string_view none = "none") {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->empty()) {
    return std::string{none};
  }
  std::string out;
  for (const auto& v : *it) {
    out += (out.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

std::string route_lines(const json& j, const char* key, std::string_view label) {
  std::string out;
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array()) {
    return out;
  }
  for (const auto& r : *it) {
    const std::string hosts = joined(r, "hosts", "(default)");
    out += fmt::format("{:<13}{} -> {}\n", label, hosts, text(r, "backend"));
  }
  return out;
}

}  // namespace

json status_json(const StatusInput& in) {
  const auto& e = in.engine;
  std::map<std::string, std::uint64_t> t{in.takeover.begin(), in.takeover.end()};
  json j = {{"version", in.version}, {"pid", in.pid}, {"uptime_seconds", in.uptime.count()}};
  if (in.config != nullptr) {
    j.update(config_part(*in.config, in.routes != nullptr ? *in.routes : *in.config));
  }
  j["flows"] = {{"production", counter(e, "flows_production")},
                {"challenge", counter(e, "flows_challenge")},
                {"redirected", counter(e, "flows_redirected")},
                {"rejected", counter(e, "flows_rejected")},
                {"dropped", counter(e, "flows_dropped")},
                {"production_by_cause", family(e, "production_by_cause")}};
  j["takeovers"] = {{"ok", counter(e, "takeovers_ok")},
                    {"failed", counter(e, "takeovers_failed")},
                    {"failed_by_step", family(e, "takeover_failed_by_step")}};
  j["sessions_open"] = {{"http", counter(t, "session_active")},
                        {"tls", counter(t, "tls_session_active")}};
  j["pending"] = in.pending;
  j["rule_counters"] = in.rule_counters;
  j["last_reload"] = in.last_reload ? json{{"ok", in.last_reload->ok},
                                           {"seconds_ago", in.last_reload->ago.count()}}
                                    : json(nullptr);
  return j;
}

std::string render_status(const json& s) {
  std::string out =
      fmt::format("acmegw {} running (pid {}, up {})\n", text(s, "version"), text(s, "pid"),
                  format_duration(std::chrono::seconds{s.value("uptime_seconds", 0L)}));
  out += fmt::format("{:<13}{}\n", "endpoints:", joined(s, "endpoints"));
  out += fmt::format("{:<13}{}\n", "backend:", text(s, "backend", "none"));
  out += fmt::format("{:<13}{}\n", "tls backend:", text(s, "tls_backend", "none"));
  out += route_lines(s, "routes", "route:");
  out += route_lines(s, "tls_routes", "tls route:");
  const auto prefilter = s.find("prefilter");
  out += fmt::format("{:<13}{}, prefilter {}\n", "policy:", text(s, "policy"),
                     prefilter == s.end() ? "?" : (prefilter->get<bool>() ? "on" : "off"));
  out += fmt::format("{:<13}{}\n", "metrics:", text(s, "metrics"));
  const json flows = s.value("flows", json::object());
  const std::string causes = members(flows.value("production_by_cause", json::object()));
  out += fmt::format(
      "{:<13}production {}{}, challenge {}, redirected {}, rejected {}, dropped {}\n",
      "flows:", text(flows, "production", "0"), causes.empty() ? "" : " (" + causes + ")",
      text(flows, "challenge", "0"), text(flows, "redirected", "0"), text(flows, "rejected", "0"),
      text(flows, "dropped", "0"));
  const json tko = s.value("takeovers", json::object());
  const std::string steps = members(tko.value("failed_by_step", json::object()));
  out += fmt::format("{:<13}ok {}, failed {}{}\n", "takeovers:", text(tko, "ok", "0"),
                     text(tko, "failed", "0"), steps.empty() ? "" : " (" + steps + ")");
  const json sess = s.value("sessions_open", json::object());
  out += fmt::format("{:<13}http {}, tls {}\n", "sessions:", text(sess, "http", "0"),
                     text(sess, "tls", "0"));
  out += fmt::format("{:<13}{}\n", "pending:", joined(s, "pending"));
  const auto reload = s.find("last_reload");
  if (reload == s.end() || reload->is_null()) {
    out += fmt::format("{:<13}none since start\n", "last reload:");
  } else {
    out += fmt::format("{:<13}{} {} ago\n",
                       "last reload:", reload->value("ok", false) ? "ok" : "failed",
                       format_duration(std::chrono::seconds{reload->value("seconds_ago", 0L)}));
  }
  const std::string rules = s.value("rule_counters", std::string{});
  if (!rules.empty()) {
    out += "rule counters:\n";
    for (std::size_t pos = 0; pos < rules.size();) {
      const auto nl = rules.find('\n', pos);
      const auto end = nl == std::string::npos ? rules.size() : nl;
      out += "  " + rules.substr(pos, end - pos) + '\n';
      pos = end + 1;
    }
  }
  return out;
}

std::vector<std::string> pending_names(std::string_view list_response) {
  std::vector<std::string> out;
  while (!list_response.empty()) {
    const auto nl = list_response.find('\n');
    const std::string_view line = list_response.substr(0, nl);
    list_response.remove_prefix(nl == std::string_view::npos ? list_response.size() : nl + 1);
    const auto kind = line.substr(0, line.find(' '));
    if (kind != "token" && kind != "alpn") {
      continue;
    }
    std::string_view name = line.substr(std::min(line.size(), kind.size() + 1));
    name = name.substr(0, name.find(' '));
    if (!name.empty()) {
      out.push_back((kind == "alpn" ? "alpn:" : "") + std::string{name});
    }
  }
  return out;
}

std::string format_duration(std::chrono::seconds d) {
  const long s = d.count() < 0 ? 0 : d.count();
  const long days = s / 86400, hours = s / 3600 % 24, mins = s / 60 % 60, secs = s % 60;
  if (days > 0) {
    return fmt::format("{}d{:02}h{:02}m{:02}s", days, hours, mins, secs);
  }
  if (hours > 0) {
    return fmt::format("{}h{:02}m{:02}s", hours, mins, secs);
  }
  return mins > 0 ? fmt::format("{}m{:02}s", mins, secs) : fmt::format("{}s", secs);
}

}  // namespace acmegw::metrics
