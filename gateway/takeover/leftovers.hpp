#pragma once
// Sockets a killed acmegw left on protected endpoints (docs/takeover.md "Restarts"). At exit
// the kernel closes the process's taken-over connections: those become orphans (FIN_WAIT1
// retransmitting an answer to a client long gone) or TIME_WAITs on production's address:port,
// where early demux black-holes the client's next connection from that port (DESIGN pitfall
// 6). No process holds them any more (inode 0), so the next start destroys them.
#include <cstddef>
#include <vector>

#include "gateway/config/config.hpp"

namespace acmegw::takeover {

struct LeftoverSockets {
  std::size_t destroyed = 0;
  std::size_t failed = 0;  // SOCK_DESTROY refused (errno in err)
  int err = 0;             // the dump or the last refusal
};

// Destroys (SOCK_DESTROY: an RST to the client) every TCP socket held by no process, in a
// closing state, whose local address:port is one of `protect`. Startup only.
[[nodiscard]] LeftoverSockets destroy_leftover_sockets(
    const std::vector<gateway::Endpoint>& protect) noexcept;

}  // namespace acmegw::takeover
