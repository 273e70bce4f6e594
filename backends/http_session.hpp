#pragma once
// HTTP/1.x on a taken-over connection (DESIGN.md §2 "Takeover", step 7). The session reads the
// client's requests (the held first request arrives first), classifies each request head with
// classifier::classify(), answers challenges from an AnsweringBackend (GET and HEAD,
// keep-alive, pipelining) and, at the first request that is not a challenge, relays the rest of
// the connection byte for byte to production over a new connection from the gateway.
//
// Closing rules (pitfall 6: a TIME_WAIT socket for production's address:port on the firewall
// black-holes a later forwarded connection from the same client port):
//  * the session never sends the first FIN: it closes only after the client's FIN (passive
//    close: LAST_ACK, no TIME_WAIT);
//  * on the idle deadline, after production ended a relayed connection, or at shutdown it
//    aborts with SO_LINGER 0 (RST, no TIME_WAIT).
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "backends/backend.hpp"
#include "backends/latency.hpp"
#include "backends/relay.hpp"
#include "backends/session_slot.hpp"
#include "classifier/classify.hpp"

namespace acmegw::backends {

struct SessionConfig {
  classifier::Limits limits;                       // request head bound (max_http_head)
  std::chrono::milliseconds idle_timeout{30'000};  // no byte from either side this long: abort
  std::chrono::milliseconds drain_timeout{2'000};  // production closed a relay: abort after
  // A request head must be whole this long after it began (the takeover for the first one, its
  // first byte for a keep-alive one): a slowloris client is reset (header_timeout counter).
  std::chrono::milliseconds header_timeout{10'000};
  // A session ends (RST) this long after the takeover unless it became a relay to production
  // or to a relay target, which only the idle and drain timeouts bound (total_timeout counter).
  std::chrono::milliseconds total_timeout{60'000};
  // policy "redirect-https": a request that is not a challenge is answered 301 to https
  // (backends/https_redirect.hpp) instead of relaying the connection to production; non-HTTP
  // bytes or a malformed/oversized head reset the connection. Production never sees a byte.
  bool redirect_https = false;
};

// One counter per outcome (STYLE §20); shared by every session, updated from Asio threads.
struct SessionStats {
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> active{0};            // gauge
  std::atomic<std::uint64_t> answered_keyauth{0};  // 200 with a key authorization
  std::atomic<std::uint64_t> answered_not_found{0};
  std::atomic<std::uint64_t> answered_redirect{0};
  std::atomic<std::uint64_t> answered_unavailable{0};
  // Answers to requests that asked for the connection to end (wants_close()): the session then
  // waits up to drain_timeout for the client's FIN (client_closed), else resets (idle_aborted).
  std::atomic<std::uint64_t> answered_close{0};
  std::atomic<std::uint64_t> relayed{0};  // connections switched to production
  // Refused or unreachable (the relay backend answers 502), did not accept in time (504).
  std::atomic<std::uint64_t> relay_connect_failed{0};
  std::atomic<std::uint64_t> relay_connect_timeout{0};
  std::atomic<std::uint64_t> head_too_large{0};  // challenge head without end within bound
  // redirect_https: 301 answers, 400 answers (no usable Host/target), and connections reset
  // because their bytes were not an HTTP/1.x request head (or too long a one).
  std::atomic<std::uint64_t> answered_redirect_https{0};
  std::atomic<std::uint64_t> bad_request{0};
  std::atomic<std::uint64_t> malformed_reset{0};
  std::atomic<std::uint64_t> client_closed{0};   // ended by the client's FIN
  std::atomic<std::uint64_t> idle_aborted{0};    // ended by the idle/drain deadline
  std::atomic<std::uint64_t> header_timeout{0};  // a request head did not complete in time
  std::atomic<std::uint64_t> total_timeout{0};   // the session outlived total_timeout
  std::atomic<std::uint64_t> io_errors{0};       // ended by a socket error (e.g. client RST)
  // Production closed first, we passed its FIN on, and SOCK_DESTROY of the resulting TIME_WAIT
  // failed (kernel without CONFIG_INET_DIAG_DESTROY): the client's next connection from that
  // port may be black-holed until it expires (DESIGN pitfall 6).
  std::atomic<std::uint64_t> timewait_left{0};
  // Answered requests: from the request's first byte in the session (the takeover, for the
  // first request) until its response was written to the socket.
  LatencyHistogram answer_latency;
};

// Takes ownership of `client` (an established socket whose executor is a strand) and serves it
// until it ends; non-challenge requests are relayed to `production` (the post-DNAT address), or
// answered 301 with cfg.redirect_https.
// `backend`, `cfg` and `stats` must outlive the socket's io_context; `slot` is held until the
// session ends.
void start_http_session(boost::asio::ip::tcp::socket client,
                        const boost::asio::ip::tcp::endpoint& production, AnsweringBackend& backend,
                        const SessionConfig& cfg, SessionStats& stats, SessionSlot slot = {});

// The `relay HOST:PORT` backend (DESIGN.md §3): relays the whole taken-over connection, bytes
// as received (the held request first), to `relay.target` (e.g. certbot --standalone on a
// validation host), preceded by a PROXY protocol header if `relay.proxy` says so, with the same
// closing rules and deadline as an HTTP session. A target that refuses or does not accept
// within relay.connect_timeout gets the client a 502 / 504 with "Connection: close" and one
// (rate-limited) warning to `warn` (may be null); with relay.tls the client is reset instead.
// `relay` is copied; `warn` must outlive the socket's io_context; `slot` is held until the
// session ends.
void start_relay_session(boost::asio::ip::tcp::socket client, const RelaySpec& relay,
                         const SessionConfig& cfg, SessionStats& stats,
                         RateLimitedWarning* warn = nullptr, SessionSlot slot = {});

// ---- Pure helpers (tests/unit/backends/http_session_test.cpp).

// Offset just past the blank line ending the request head ("\r\n\r\n" or bare "\n\n", and the
// mixed forms), or nullopt when `bytes` holds no complete head.
[[nodiscard]] std::optional<std::size_t> find_head_end(std::span<const std::byte> bytes) noexcept;

// The method and request target of a head the classifier already called a challenge:
// "GET"/"HEAD" and the bytes between the first and second space of the request line.
struct RequestLine {
  std::string_view method;
  std::string_view target;
};
[[nodiscard]] RequestLine split_request_line(std::string_view head) noexcept;

// Whether the client asked for the connection to end after this request (RFC 9112 §9.3, §9.6):
// a `close` option in a Connection field, or HTTP/1.0 without `keep-alive`. `head` is a whole
// request head (find_head_end()); a field it cannot read counts as absent.
[[nodiscard]] bool wants_close(std::string_view head) noexcept;

// Writes the HTTP/1.1 response for `a` into `out` (replacing its contents). Always carries
// Content-Length, so keep-alive clients know where it ends; `head`: headers only; `close`:
// also "Connection: close" (the session then ends the connection, wants_close()).
void format_response(const Answer& a, bool head, bool close, std::string& out);

}  // namespace acmegw::backends
