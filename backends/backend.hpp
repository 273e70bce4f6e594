#pragma once
// What a taken-over challenge connection is given to (DESIGN.md §3). Two shapes:
//  * an answering backend (thumbprint, tokens, webroot, redirect) computes the response to one
//    http-01 request; the HTTP session on the taken-over socket writes it;
//  * a relaying backend (relay) receives the whole connection, held bytes first.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace acmegw::backends {

// One parsed challenge request. Views are valid during the call only.
struct ChallengeRequest {
  std::string_view method;  // "GET" or "HEAD"
  std::string_view token;   // [A-Za-z0-9_-]{1,255}
  std::string_view host;    // lower-cased Host name without port; may be empty
  std::string_view target;  // the full request target as received
};

struct Answer {
  enum class Kind : std::uint8_t {
    KeyAuthorization,  // 200 text/plain, body = key authorization
    NotFound,          // unknown token: 404 (or relay to production if the route says on-miss)
    Redirect,          // 302 to `location`
    Unavailable,       // backend failure: 503, counted and logged
  };
  Kind kind = Kind::NotFound;
  std::string body;      // KeyAuthorization: the body
  std::string location;  // Redirect: absolute URL
  // NotFound only: relay the connection, from this request on, to production instead of
  // answering 404 (no route for the Host, or the route's on-miss = production).
  bool to_production = false;
};

class AnsweringBackend {
 public:
  virtual ~AnsweringBackend() = default;
  // Never throws; called on the Asio threads, possibly concurrently.
  [[nodiscard]] virtual Answer answer(const ChallengeRequest& req) noexcept = 0;
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
};

}  // namespace acmegw::backends
