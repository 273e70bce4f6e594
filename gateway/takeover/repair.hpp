#pragma once
// The TCP_REPAIR recipe (DESIGN.md §2 "Takeover"), one wrapper call per step, in the order
// proven on Linux 6.18. Each failure names its step (TakeoverStep) and errno (STYLE §14).
//
//   client                         firewall                            production
//     |---- SYN, SYN/ACK, ACK (forwarded; conntrack learns wscale, SACK) ----|
//     |-- seq=S ack=A [request] -->| held in NFQUEUE
//                                  | restore_established(): a socket bound to production's
//                                  |   address:port, connected to the client, snd_nxt=A,
//                                  |   rcv_nxt=S, options/TSval/window as the client knows them
//                                  |-- RST seq=S (untracked, SO_MARK RST) -->| socket freed
//     |                            | NF_REPEAT + TAKEN: the held segment reaches the socket
//     |<-- ACK S+len, response from seq A --|
//
// Steps, with the pitfalls they avoid:
//   Socket, ReuseAddr (before RepairOn: after it, a second takeover of the same production
//   address:port fails with EADDRINUSE), RepairOn, Transparent (bind a non-local address),
//   Bind (production as the delivered packets name it), SendSeq = A, RecvSeq = S,
//   MaxSeg (before Connect, else the send MSS stays at 524), Connect (no SYN in repair mode),
//   Options (MSS, wscale, SACK, timestamps), Timestamp (even value: bit 0 switches >= 6.7
//   kernels to microsecond TSval), Window (snd_wl1 = S, snd_wnd, rcv_wup = S), RepairOff
//   (-1: no window probe).
#include "gateway/sys/result.hpp"
#include "gateway/takeover/snapshot.hpp"
#include "gateway/takeover/takeover.hpp"

namespace acmegw::takeover {

// Builds an established socket from `s` into `out` (left empty on failure, closed without a
// packet). Precondition: every packet of the flow is held, so nothing reaches the socket
// before it is complete.
[[nodiscard]] TakeoverResult restore_established(const FlowSnapshot& s,
                                                 sys::UniqueFd& out) noexcept;

// Closes a socket that restore_established() made without sending the client anything
// (repair mode on again, so no FIN or RST): the flow goes back to production intact.
void close_silently(sys::UniqueFd& fd) noexcept;

// Step Reset: sends the spoofed RST (seq S) from the client's address to production on `raw`
// (a sys::raw_ip_socket of the flow's family carrying the RST mark).
[[nodiscard]] TakeoverResult reset_production(const sys::UniqueFd& raw,
                                              const FlowSnapshot& s) noexcept;

}  // namespace acmegw::takeover
