#pragma once
// Subsystem loggers (STYLE §21): "nfq", "flow", "takeover", ... All share the default logger's
// sinks, pattern and level, so configuring the default logger once configures them all.
#include <memory>
#include <string_view>

#include <spdlog/logger.h>

namespace acmegw::nfq {

// Returns the logger `name`, creating it as a clone of spdlog's default logger on first use.
// Thread-safe; create them at startup so the hot path only reads the shared_ptr it holds.
[[nodiscard]] std::shared_ptr<spdlog::logger> logger(std::string_view name);

}  // namespace acmegw::nfq
