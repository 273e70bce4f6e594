#pragma once
// The takeover's hook into `acmegw run`.
#include <memory>

#include "backends/backend.hpp"
#include "gateway/takeover/repair_takeover.hpp"

namespace acmegw::gateway {
struct Config;
}

namespace acmegw::takeover {

// The answering backend named by cfg.backend (`--backend KIND=VALUE`). Throws
// std::runtime_error with the offending value when it is missing, unknown or invalid.
[[nodiscard]] std::unique_ptr<backends::AnsweringBackend> make_backend(const gateway::Config& cfg);

// Checks that takeover can work here (TCP_REPAIR allowed: CAP_NET_ADMIN in this network
// namespace; raw sockets: CAP_NET_RAW), then builds the Takeover for `run`. Throws
// std::runtime_error with a message saying what to fix.
[[nodiscard]] std::unique_ptr<RepairTakeover> make_takeover(const gateway::Config& cfg,
                                                            const TakeoverOptions& opts = {});

}  // namespace acmegw::takeover
