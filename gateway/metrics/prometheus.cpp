#include "gateway/metrics/prometheus.hpp"

#include <array>

#include <fmt/format.h>

#include "gateway/nfq/stats.hpp"

namespace acmegw::metrics {
namespace {

struct Help {
  std::string_view name;
  std::string_view help;
};

// The engine's scalar counters and their help text: the one list in nfq/stats.hpp.
constexpr std::array kEngineHelp = {
#define ACMEGW_METRICS_HELP(name, help) Help{#name, help},
    ACMEGW_NFQ_COUNTERS(ACMEGW_METRICS_HELP)
#undef ACMEGW_METRICS_HELP
};

struct LabelledFamily {
  std::string_view prefix;  // before the '.' in the engine's name
  std::string_view label;
  std::string_view help;
};

constexpr std::array kEngineFamilies = {
    LabelledFamily{"production_by_cause", "cause", "flows decided for production, by cause"},
    LabelledFamily{"production_by_reason", "reason",
                   "flows the classifier sent to production, by classifier reason"},
    LabelledFamily{"takeover_failed_by_step", "step",
                   "takeovers that failed (flow sent to production), by failed step"},
};

struct Kernel {
  std::string_view engine_name;
  std::string_view metric;
  Type type;
  std::string_view help;
};

constexpr std::array kKernel = {
    Kernel{"kernel.queue_dropped", "acmegw_kernel_queue_dropped_total", Type::Counter,
           "packets the kernel could not queue (queue full: passed by fail-open)"},
    Kernel{"kernel.user_dropped", "acmegw_kernel_user_dropped_total", Type::Counter,
           "packets the kernel failed to deliver to acmegw (socket buffer full)"},
    Kernel{"kernel.waiting", "acmegw_kernel_queue_waiting", Type::Gauge,
           "packets waiting in the kernel queues for a verdict"},
};

std::string_view help_of(std::string_view name) {
  for (const Help& h : kEngineHelp) {
    if (h.name == name) {
      return h.help;
    }
  }
  return "acmegw engine counter";
}

// The family called `name`, appended (empty) when not yet in `out`.
Family& family(std::vector<Family>& out, std::string name, std::string_view help, Type type) {
  for (Family& f : out) {
    if (f.name == name) {
      return f;
    }
  }
  Family& f = out.emplace_back();
  f.name = std::move(name);
  f.help = help;
  f.type = type;
  return f;
}

std::string_view type_name(Type t) {
  switch (t) {
    case Type::Counter:
      return "counter";
    case Type::Gauge:
      return "gauge";
    case Type::Histogram:
      return "histogram";
  }
  std::abort();  // corrupt enum (STYLE §15)
}

void escape(std::string& out, std::string_view s, bool quote) {
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void series(std::string& out, std::string_view name, std::span<const Label> labels,
            std::string_view extra_label, std::string_view extra_value) {
  out += name;
  if (labels.empty() && extra_label.empty()) {
    return;
  }
  out += '{';
  bool first = true;
  const auto one = [&](std::string_view n, std::string_view v) {
    out += first ? "" : ",";
    first = false;
    out += n;
    out += "=\"";
    escape(out, v, true);
    out += '"';
  };
  for (const Label& l : labels) {
    one(l.name, l.value);
  }
  if (!extra_label.empty()) {
    one(extra_label, extra_value);
  }
  out += '}';
}

}  // namespace

void add_engine(std::vector<Family>& out, const std::map<std::string, std::uint64_t>& counters) {
  for (const auto& [name, value] : counters) {
    const auto dot = name.find('.');
    if (dot == std::string::npos) {
      family(out, "acmegw_" + name + "_total", help_of(name), Type::Counter)
          .samples.push_back({{}, value});
      continue;
    }
    const std::string_view prefix = std::string_view{name}.substr(0, dot);
    const std::string_view member = std::string_view{name}.substr(dot + 1);
    bool done = false;
    for (const Kernel& k : kKernel) {
      if (k.engine_name == name) {
        family(out, std::string{k.metric}, k.help, k.type).samples.push_back({{}, value});
        done = true;
      }
    }
    for (const LabelledFamily& lf : kEngineFamilies) {
      if (!done && lf.prefix == prefix) {
        family(out, "acmegw_" + std::string{prefix} + "_total", lf.help, Type::Counter)
            .samples.push_back({{{std::string{lf.label}, std::string{member}}}, value});
        done = true;
      }
    }
    if (!done) {  // a family added to stats.hpp without a label name here: still exported
      family(out, "acmegw_" + std::string{prefix} + "_total", "acmegw engine counter",
             Type::Counter)
          .samples.push_back({{{"member", std::string{member}}}, value});
    }
  }
}

void add_takeover(std::vector<Family>& out,
                  std::span<const std::pair<std::string, std::uint64_t>> counters) {
  for (const auto& [name, value] : counters) {
    if (name.ends_with("_active")) {  // session_active, tls_session_active
      family(out, "acmegw_" + name, "taken-over connections open now: " + name, Type::Gauge)
          .samples.push_back({{}, value});
      continue;
    }
    family(out, "acmegw_" + name + "_total", "taken-over connections: " + name, Type::Counter)
        .samples.push_back({{}, value});
  }
}

void add_latency(std::vector<Family>& out, std::string name, std::string help,
                 const backends::LatencyHistogram& h) {
  Family& f = family(out, std::move(name), help, Type::Histogram);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < backends::LatencyHistogram::kBoundsUs.size(); ++i) {
    cumulative += h.bucket(i);
    f.histogram.bounds.push_back(static_cast<double>(backends::LatencyHistogram::kBoundsUs[i]) /
                                 1e6);
    f.histogram.count_le.push_back(cumulative);
  }
  f.histogram.count = cumulative + h.bucket(backends::LatencyHistogram::kBoundsUs.size());
  f.histogram.sum = static_cast<double>(h.sum_us()) / 1e6;
}

void add_build_info(std::vector<Family>& out, std::string_view version) {
  family(out, "acmegw_build_info", "acmegw version (always 1)", Type::Gauge)
      .samples.push_back({{{"version", std::string{version}}}, 1});
}

std::string render(std::span<const Family> families) {
  std::string out;
  for (const Family& f : families) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    escape(out, f.help, false);
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += type_name(f.type);
    out += '\n';
    if (f.type != Type::Histogram) {
      for (const Sample& s : f.samples) {
        series(out, f.name, s.labels, {}, {});
        out += fmt::format(" {}\n", s.value);
      }
      continue;
    }
    const Histogram& h = f.histogram;
    const std::string bucket = f.name + "_bucket";
    for (std::size_t i = 0; i < h.bounds.size() && i < h.count_le.size(); ++i) {
      series(out, bucket, {}, "le", fmt::format("{}", h.bounds[i]));
      out += fmt::format(" {}\n", h.count_le[i]);
    }
    series(out, bucket, {}, "le", "+Inf");
    out += fmt::format(" {}\n{}_sum {}\n{}_count {}\n", h.count, f.name, h.sum, f.name, h.count);
  }
  return out;
}

}  // namespace acmegw::metrics
