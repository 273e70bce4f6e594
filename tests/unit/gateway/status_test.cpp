// `acmegw status`: the document the control socket answers and its text rendering (pure).
#include <catch2/catch.hpp>

#include "gateway/cli/control.hpp"
#include "gateway/config/options.hpp"
#include "gateway/metrics/status.hpp"

using acmegw::metrics::format_duration;
using acmegw::metrics::pending_names;
using acmegw::metrics::render_status;
using acmegw::metrics::status_json;
using acmegw::metrics::StatusInput;

namespace {

acmegw::gateway::Config config() {
  acmegw::gateway::Config c;
  std::string error;
  c.protect.push_back(*acmegw::gateway::parse_endpoint("203.0.113.10", error));
  c.backend =
      acmegw::gateway::BackendSpec{acmegw::gateway::BackendKind::Tokens, "/run/acmegw/tokens.sock"};
  acmegw::gateway::RouteConfig r;
  r.hosts = {"*.example.com"};
  r.backend = {acmegw::gateway::BackendKind::Webroot, "/srv/acme"};
  c.routes.push_back(r);
  return c;
}

}  // namespace

TEST_CASE("status: the document names what the issue lists", "[status]") {
  const auto cfg = config();
  StatusInput in;
  in.version = "9.9.9";
  in.pid = 42;
  in.uptime = std::chrono::seconds{3725};
  in.config = &cfg;
  in.engine = {{"flows_production", 7},
               {"flows_challenge", 3},
               {"production_by_cause.not_challenge", 6},
               {"production_by_cause.limit", 1},
               {"production_by_cause.zero", 0},
               {"takeovers_ok", 2},
               {"takeovers_failed", 1},
               {"takeover_failed_by_step.repair", 1}};
  in.takeover = {{"session_active", 4}, {"tls_session_active", 1}};
  in.rule_counters = "ACMEGW-PRE 10 packets\n";
  in.pending = {"tok1", "alpn:www.example.com"};
  in.last_reload = acmegw::metrics::ReloadResult{false, std::chrono::seconds{5}};

  const auto j = status_json(in);
  CHECK(j["version"] == "9.9.9");
  CHECK(j["pid"] == 42);
  CHECK(j["uptime_seconds"] == 3725);
  CHECK(j["endpoints"] == nlohmann::json::array({"203.0.113.10:80"}));
  CHECK(j["backend"] == "tokens=/run/acmegw/tokens.sock");
  CHECK(j["tls_backend"].is_null());
  CHECK(j["routes"][0]["hosts"][0] == "*.example.com");
  CHECK(j["policy"] == "pass");
  CHECK(j["prefilter"] == true);
  CHECK(j["flows"]["production"] == 7);
  CHECK(j["flows"]["production_by_cause"] ==
        nlohmann::json({{"not_challenge", 6}, {"limit", 1}}));  // zero members left out
  CHECK(j["takeovers"]["failed_by_step"]["repair"] == 1);
  CHECK(j["sessions_open"]["http"] == 4);
  CHECK(j["sessions_open"]["tls"] == 1);
  CHECK(j["pending"].size() == 2);
  CHECK(j["last_reload"]["ok"] == false);

  const std::string text = render_status(j);
  CAPTURE(text);
  CHECK(text.starts_with("acmegw 9.9.9 running (pid 42, up 1h02m05s)\n"));
  CHECK(text.find("endpoints:   203.0.113.10:80\n") != std::string::npos);
  CHECK(text.find("route:       *.example.com -> webroot=/srv/acme\n") != std::string::npos);
  CHECK(text.find("policy:      pass, prefilter on\n") != std::string::npos);
  CHECK(text.find("production 7 (limit=1 not_challenge=6)") != std::string::npos);
  CHECK(text.find("takeovers:   ok 2, failed 1 (repair=1)\n") != std::string::npos);
  CHECK(text.find("sessions:    http 4, tls 1\n") != std::string::npos);
  CHECK(text.find("pending:     tok1, alpn:www.example.com\n") != std::string::npos);
  CHECK(text.find("last reload: failed 5s ago\n") != std::string::npos);
  CHECK(text.find("rule counters:\n  ACMEGW-PRE 10 packets\n") != std::string::npos);
}

TEST_CASE("status: backends and routes come from the last reload", "[status]") {
  const auto cfg = config();
  auto reloaded = cfg;
  reloaded.backend = acmegw::gateway::BackendSpec{acmegw::gateway::BackendKind::Webroot, "/srv"};
  reloaded.routes.clear();
  reloaded.policy = acmegw::gateway::Policy::Drop;  // needs a restart: not what runs
  StatusInput in;
  in.config = &cfg;
  in.routes = &reloaded;
  const auto j = status_json(in);
  CHECK(j["backend"] == "webroot=/srv");
  CHECK(j["routes"].empty());
  CHECK(j["policy"] == "pass");
  CHECK(j["last_reload"].is_null());
}

TEST_CASE("status: rendering tolerates a sparse document", "[status]") {
  const std::string text = render_status(nlohmann::json::object());
  CHECK(text.starts_with("acmegw - running"));
  CHECK(text.find("last reload: none since start") != std::string::npos);
  CHECK(text.find("pending:     none") != std::string::npos);
}

TEST_CASE("status: pending names never carry key authorizations", "[status]") {
  const auto names = pending_names(
      "token abc KEYAUTH.abc ttl=60 host=a.example\n"
      "alpn www.example.com DIGESTDIGEST ttl=30\n"
      "ok 2\n");
  CHECK(names == std::vector<std::string>{"abc", "alpn:www.example.com"});
  CHECK(pending_names("ok 0\n").empty());
  CHECK(pending_names("").empty());
}

TEST_CASE("status: durations", "[status]") {
  CHECK(format_duration(std::chrono::seconds{0}) == "0s");
  CHECK(format_duration(std::chrono::seconds{65}) == "1m05s");
  CHECK(format_duration(std::chrono::seconds{90061}) == "1d01h01m01s");
  CHECK(format_duration(std::chrono::seconds{-3}) == "0s");
}

TEST_CASE("control: only `status` is answered", "[status]") {
  const acmegw::cli::ControlServer::Status status = [] { return std::string{"{}"}; };
  CHECK(acmegw::cli::control_answer("status", status) == "{}\n");
  CHECK(acmegw::cli::control_answer("list", status).starts_with("error "));
}
