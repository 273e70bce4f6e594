#pragma once
// Prometheus text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/
// exposition_formats/): the metric model, the engine/takeover counters mapped onto it, and the
// renderer. Pure: no I/O, no clocks; runs on the metrics thread, never on the packet path.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/latency.hpp"

namespace acmegw::metrics {

enum class Type : std::uint8_t { Counter, Gauge, Histogram };

struct Label {
  std::string name;
  std::string value;  // escaped by the renderer
};

struct Sample {
  std::vector<Label> labels;
  std::uint64_t value = 0;
};

// Cumulative histogram: count_le[i] observations were <= bounds[i]; `count` is the +Inf bucket.
struct Histogram {
  std::vector<double> bounds;  // strictly increasing upper bounds, in the metric's unit
  std::vector<std::uint64_t> count_le;
  double sum = 0;
  std::uint64_t count = 0;
};

struct Family {
  std::string name;  // full metric name, e.g. "acmegw_packets_total"
  std::string help;
  Type type = Type::Counter;
  std::vector<Sample> samples;  // Counter/Gauge
  Histogram histogram;          // Histogram (one series)
};

// Appends the queue engine's counters as named by nfq::Engine::counters(): scalar "x" becomes
// acmegw_x_total with its help from nfq/stats.hpp; "family.member" becomes one labelled
// family (production_by_cause{cause=...}, production_by_reason{reason=...},
// takeover_failed_by_step{step=...}); "kernel.*" become the kernel queue metrics
// (acmegw_kernel_queue_dropped_total, acmegw_kernel_user_dropped_total,
// acmegw_kernel_queue_waiting gauge).
void add_engine(std::vector<Family>& out, const std::map<std::string, std::uint64_t>& counters);

// Appends the takeover session counters (RepairTakeover::counters()): "session_active" is a
// gauge (acmegw_session_active), every other name x a counter acmegw_x_total.
void add_takeover(std::vector<Family>& out,
                  std::span<const std::pair<std::string, std::uint64_t>> counters);

// Appends `h` as histogram `name` in seconds (buckets made cumulative).
void add_latency(std::vector<Family>& out, std::string name, std::string help,
                 const backends::LatencyHistogram& h);

// Appends acmegw_build_info{version="..."} 1.
void add_build_info(std::vector<Family>& out, std::string_view version);

// Renders the families in order, each with # HELP and # TYPE lines. Label values are escaped
// (\\, \", \n), help text too (\\, \n).
[[nodiscard]] std::string render(std::span<const Family> families);

// The Content-Type of render()'s output.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace acmegw::metrics
