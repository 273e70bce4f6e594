// `acmegw run`: bind the queues, install the rules, process packets until SIGINT/SIGTERM, then
// remove the rules (unless --keep-rules) and pass everything still held to production.
#include <csignal>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "gateway/cli/commands.hpp"
#include "gateway/cli/reload.hpp"
#include "gateway/cli/startup.hpp"
#include "gateway/metrics/prometheus.hpp"
#include "gateway/metrics/server.hpp"
#include "gateway/nfq/engine.hpp"
#include "gateway/nfq/log.hpp"
#include "gateway/rules/install.hpp"
#include "gateway/sys/checks.hpp"
#include "gateway/sys/signals.hpp"
#include "gateway/takeover/make_takeover.hpp"

namespace acmegw::cli {
namespace {

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
  }
  return metrics::render(families);
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
      cfg.backend || !cfg.routes.empty() ? takeover::make_takeover(cfg) : nullptr;
  takeover::Takeover* const takeover = tko.get();

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
      (void)reload(opts.config, cfg, tko.get());
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
