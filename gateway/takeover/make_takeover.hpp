#pragma once
// The takeover's hook into `acmegw run`.
#include <memory>

#include "gateway/takeover/repair_takeover.hpp"

namespace acmegw::gateway {
struct Config;
}

namespace acmegw::takeover {

// The backend named by cfg.backend (`--backend KIND=VALUE`); `relay=ADDR:PORT` takes a
// numeric address ("192.0.2.7:80", "[2001:db8::7]:80"). Throws std::runtime_error with the
// offending value when it is missing or invalid.
[[nodiscard]] TakeoverBackend make_backend(const gateway::Config& cfg);

// Checks that takeover can work here (TCP_REPAIR allowed: CAP_NET_ADMIN in this network
// namespace; raw sockets: CAP_NET_RAW), then builds the Takeover for `run`. Throws
// std::runtime_error with a message saying what to fix.
[[nodiscard]] std::unique_ptr<RepairTakeover> make_takeover(const gateway::Config& cfg,
                                                            const TakeoverOptions& opts = {});

}  // namespace acmegw::takeover
