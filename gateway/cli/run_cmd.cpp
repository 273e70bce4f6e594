// `acmegw run`: bind the queues, install the rules, process packets until SIGINT/SIGTERM, then
// remove the rules (unless --keep-rules) and pass everything still held to production.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "gateway/cli/commands.hpp"
#include "gateway/cli/control.hpp"
#include "gateway/cli/reload.hpp"
#include "gateway/cli/startup.hpp"
#include "gateway/metrics/prometheus.hpp"
#include "gateway/metrics/server.hpp"
#include "gateway/metrics/status.hpp"
#include "gateway/nfq/engine.hpp"
#include "gateway/nfq/log.hpp"
#include "gateway/rules/install.hpp"
#include "gateway/sys/checks.hpp"
#include "gateway/sys/process.hpp"
#include "gateway/sys/signals.hpp"
#include "gateway/takeover/leftovers.hpp"
#include "gateway/takeover/make_takeover.hpp"

namespace acmegw::cli {
namespace {

// Sockets besides the sessions: queues, conntrack, rtnetlink, raw RST sockets, the token and
// control sockets and their clients (256 each), metrics, logs.
constexpr std::uint64_t kFixedFds = 1024;

spdlog::level::level_enum to_spdlog(gateway::LogLevel l) noexcept {
  switch (l) {
    case gateway::LogLevel::Trace:
      return spdlog::level::trace;
    case gateway::LogLevel::Debug:
      return spdlog::level::debug;
    case gateway::LogLevel::Info:
      return spdlog::level::info;
    case gateway::LogLevel::Warn:
      return spdlog::level::warn;
    case gateway::LogLevel::Error:
      return spdlog::level::err;
    case gateway::LogLevel::Critical:
      return spdlog::level::critical;
    case gateway::LogLevel::Off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

// Logs go to stderr (journald adds its own timestamps; keep ours for plain terminals).
void setup_logging(gateway::LogLevel level) {
  auto def = spdlog::stderr_color_mt("acmegw");
  def->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  def->set_level(to_spdlog(level));
  def->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(def);
  for (const char* name : {"nfq", "flow", "takeover", "rules"}) {
    (void)nfq::logger(name);  // created before the workers start (STYLE §21)
  }
}

// One line with the takeover's own counters (sessions on the Asio threads), nonzero ones only.
void log_takeover_counters(const takeover::RepairTakeover* tko) {
  if (tko == nullptr) {
    return;
  }
  std::string line;
  for (const auto& [name, value] : tko->counters()) {
    if (value != 0) {
      line += fmt::format("{}{}={}", line.empty() ? "" : " ", name, value);
    }
  }
  nfq::logger("takeover")->info("stats: {}", line.empty() ? "all zero" : line);
}

struct RunOptions {
  gateway::ConfigOptions config;
  unsigned stats_interval_s = 0;
};

// The Prometheus exposition of everything run counts (docs/operations.md "Metrics").
std::string scrape(const nfq::Engine& engine, const takeover::RepairTakeover* tko) {
  std::vector<metrics::Family> families;
  metrics::add_build_info(families, ACMEGW_VERSION);
  metrics::add_engine(families, engine.counters());
  if (tko != nullptr) {
    metrics::add_takeover(families, tko->counters());
    metrics::add_latency(families, "acmegw_challenge_answer_seconds",
                         "time from a challenge request's first byte in the session (the "
                         "takeover) until its answer was written",
                         tko->answer_latency());
    metrics::add_latency(families, "acmegw_tls_alpn_handshake_seconds",
                         "time from a tls-alpn-01 takeover until its handshake finished",
                         tko->handshake_latency());
  }
  return metrics::render(families);
}

// What `acmegw status` reports that only the run loop knows; shared with the control thread.
struct RunState {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point started = Clock::now();
  std::mutex mutex;
  std::optional<std::pair<bool, Clock::time_point>> reload;  // result and time of the last one
  std::shared_ptr<const gateway::Config> routes;  // the last applied reload's; null: the start's

  void reloaded(std::shared_ptr<const gateway::Config> next) {
    const std::scoped_lock lock{mutex};
    reload.emplace(next != nullptr, Clock::now());
    if (next != nullptr) {
      routes = std::move(next);
    }
  }
};

// The socket paths of every tokens backend the configuration names (default and routes).
std::vector<std::string> token_sockets(const gateway::Config& cfg) {
  std::vector<const gateway::BackendSpec*> specs;
  for (const auto* b : {&cfg.backend, &cfg.tls_backend}) {
    if (*b) {
      specs.push_back(&**b);
    }
  }
  for (const auto* routes : {&cfg.routes, &cfg.tls_routes}) {
    for (const auto& r : *routes) {
      specs.push_back(&r.backend);
    }
  }
  std::vector<std::string> out;
  for (const auto* b : specs) {
    std::string error;
    const auto opt = b->kind == gateway::BackendKind::Tokens
                         ? backends::parse_token_socket_spec(b->value, error)
                         : std::nullopt;
    if (opt && std::find(out.begin(), out.end(), opt->path) == out.end()) {
      out.push_back(opt->path);
    }
  }
  return out;
}

// False when the control socket is the default one and its directory (the unit's
// RuntimeDirectory, /run/acmegw) does not exist, e.g. a gateway started by hand: then it runs
// without one rather than not at all. A socket the configuration names must work.
bool control_socket_wanted(const gateway::Config& cfg) {
  if (cfg.control_socket.empty() || cfg.origins.contains("control_socket")) {
    return true;
  }
  std::error_code ec;
  return std::filesystem::is_directory(std::filesystem::path{cfg.control_socket}.parent_path(), ec);
}

// The control socket's status document (docs/operations.md "Status"), on the control thread.
std::string status_document(const gateway::Config& cfg, const nfq::Engine& engine,
                            const takeover::RepairTakeover* tko, RunState& state) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  const auto now = RunState::Clock::now();
  metrics::StatusInput in;
  in.version = ACMEGW_VERSION;
  in.pid = static_cast<long>(::getpid());
  in.uptime = duration_cast<seconds>(now - state.started);
  in.config = &cfg;
  in.engine = engine.counters();
  if (tko != nullptr) {
    in.takeover = tko->counters();
  }
  try {
    in.rule_counters = rules::print_rules(cfg, true);
  } catch (const rules::RulesError& e) {
    in.rule_counters = std::string{"unavailable: "} + e.what();
  }
  std::shared_ptr<const gateway::Config> routes;  // kept alive until the document is built
  {
    const std::scoped_lock lock{state.mutex};
    if (state.reload) {
      in.last_reload = metrics::ReloadResult{state.reload->first,
                                             duration_cast<seconds>(now - state.reload->second)};
    }
    routes = state.routes;
  }
  in.routes = routes.get();
  // Names only: the token socket's list carries key authorizations, which status never shows.
  for (const auto& path : token_sockets(routes != nullptr ? *routes : cfg)) {
    std::string error;
    if (const auto list = backends::token_request(path, "list", seconds{2}, error)) {
      const auto names = metrics::pending_names(*list);
      in.pending.insert(in.pending.end(), names.begin(), names.end());
    }
  }
  return metrics::status_json(in).dump();
}

// Every session holds a socket; at EMFILE a takeover fails at step socket (fail-open), so the
// soft limit is raised to cover --max-sessions plus the fixed sockets, or the shortfall said.
void check_fd_limit(std::uint32_t max_sessions) {
  const std::uint64_t wanted = std::uint64_t{max_sessions} + kFixedFds;
  const auto lim = sys::raise_fd_limit(wanted);
  if (lim.value < wanted) {
    nfq::logger("takeover")
        ->warn(
            "run: open-file limit {} is below --max-sessions {} + {}: beyond it takeovers fail "
            "at step socket and go to production (systemd: LimitNOFILE={})",
            lim.value, max_sessions, kFixedFds, wanted);
  }
}

int run(const RunOptions& opts) {
  const gateway::Config cfg = load_config(opts.config);
  require_ready(rules::install_needs(cfg));
  setup_logging(cfg.log_level);
  const auto log = nfq::logger("nfq");
  log->info("run: acmegw {} starting, effective configuration:\n{}", ACMEGW_VERSION,
            gateway::describe(cfg));

  // Blocked before any thread starts, so only sigtimedwait below ever takes them.
  if (const auto r = sys::block_signals({SIGINT, SIGTERM, SIGHUP, SIGUSR1}); !r.ok()) {
    throw std::runtime_error(std::string("run: blocking signals: ") + std::strerror(r.err));
  }

  // Without --backend, challenge flows go to production (counter challenge_passed_no_backend).
  // Declared before the engine, so the engine's workers stop before the takeover goes away.
  const std::unique_ptr<takeover::RepairTakeover> tko =
      cfg.has_backend() ? takeover::make_takeover(cfg) : nullptr;
  takeover::Takeover* const takeover = tko.get();
  if (tko) {
    check_fd_limit(cfg.sessions.max);
    const auto left = takeover::destroy_leftover_sockets(cfg.protect);
    if (left.destroyed > 0 || left.failed > 0) {
      nfq::logger("takeover")
          ->warn("takeover: {} socket(s) a previous acmegw left on protected endpoints destroyed{}",
                 left.destroyed,
                 left.failed > 0
                     ? fmt::format(", {} could not be ({})", left.failed, std::strerror(left.err))
                     : std::string{});
    }
  }

  // Bind the queues before the rules exist: the queue rule then never sees a missing listener
  // (which --queue-bypass would turn into a silent pass).
  nfq::Engine engine(cfg, takeover);
  engine.start();
  // Declared after the engine and the takeover: stops scraping them before they go away.
  std::unique_ptr<metrics::Server> metrics_server;
  if (cfg.metrics_listen) {
    metrics_server = std::make_unique<metrics::Server>(
        *cfg.metrics_listen, [&engine, t = tko.get()] { return scrape(engine, t); });
    log->info("run: metrics on http://{}/metrics", gateway::to_string(*cfg.metrics_listen));
  }
  RunState state;
  // After the engine and the takeover, like the metrics server.
  std::unique_ptr<ControlServer> control;
  if (!control_socket_wanted(cfg)) {
    log->info("run: no control socket ({} does not exist; --control-socket PATH sets one)",
              std::filesystem::path{cfg.control_socket}.parent_path().string());
  } else if (!cfg.control_socket.empty()) {
    control = std::make_unique<ControlServer>(
        cfg.control_socket,
        [&cfg, &engine, t = tko.get(), &state] { return status_document(cfg, engine, t, state); });
    log->info("run: control socket {} (acmegw status)", control->path());
  }
  log->info("run: {} queue(s) {}..{} bound, prefilter {}", cfg.queue.count, cfg.queue.first,
            cfg.queue.first + cfg.queue.count - 1, cfg.prefilter ? "on" : "off");
  const auto rules_log = nfq::logger("rules");
  try {
    rules::install_rules(cfg);
  } catch (const rules::RulesError& e) {
    rules_log->error("rules: install failed: {}", e.what());
    return kExitFailure;  // ~Engine passes what the queues hold to production
  }
  rules_log->info("rules: installed (chains {}-*)", cfg.chain_prefix);

  const auto interval = opts.stats_interval_s > 0
                            ? std::chrono::milliseconds(opts.stats_interval_s * 1000ull)
                            : std::chrono::milliseconds(3600 * 1000);
  for (;;) {
    const auto s = sys::wait_signal({SIGINT, SIGTERM, SIGHUP, SIGUSR1}, interval);
    if (!s.ok()) {
      if (s.err == EINTR) {
        continue;
      }
      log->error("run: waiting for signals failed: {}; stopping", std::strerror(s.err));
      break;
    }
    if (s.value == SIGINT || s.value == SIGTERM) {
      log->info("run: {} received, stopping", strsignal(s.value));
      break;
    }
    if (s.value == SIGHUP) {
      log->info("run: SIGHUP: reloading routes, backends and challenge sources");
      state.reloaded(reload(opts.config, cfg, tko.get()));
      continue;
    }
    if (s.value == SIGUSR1 || opts.stats_interval_s > 0) {
      log->info("stats: {}", nfq::format_counters(engine.counters()));
      log_takeover_counters(tko.get());
    }
  }

  // Rules first, so no new packet is queued while the workers wind down; then the workers pass
  // whatever is still queued or held to production.
  int status = 0;
  if (cfg.keep_rules) {
    rules_log->info(
        "rules: kept (--keep-rules); --queue-bypass passes traffic while no acmegw runs");
  } else {
    try {
      rules::remove_rules(cfg);
      rules_log->info("rules: removed");
    } catch (const rules::RulesError& e) {
      rules_log->error("rules: remove failed: {}", e.what());
      status = kExitFailure;  // the traffic still passes (--queue-bypass), but say so
    }
  }
  engine.stop();
  log->info("stats: final: {}", nfq::format_counters(engine.counters()));
  log_takeover_counters(tko.get());
  spdlog::default_logger()->flush();
  return status;
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* sub =
      app.add_subcommand("run",
                         "Install the rules and process the queue until SIGINT/SIGTERM.\n"
                         "Example: acmegw run --protect 203.0.113.10 --backend thumbprint=THUMB");
  gateway::add_config_options(*sub, opts->config);
  sub->add_option("--stats-interval", opts->stats_interval_s,
                  "Log the counters every SECONDS (0 = only on SIGUSR1 and at exit)")
      ->option_text("SECONDS");
  sub->callback([opts] { throw CommandExit{run(*opts)}; });
}

}  // namespace acmegw::cli
