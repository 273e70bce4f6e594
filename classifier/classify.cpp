// Entry point: runs the protocol parser over the inspectable part of the prefix and maps its
// verdict to what the gateway does (STYLE §5, §6).
#include "classifier/classify.hpp"

#include <algorithm>

#include "classifier/http.hpp"
#include "classifier/tls.hpp"

namespace acmegw::classifier {

Classification classify(std::span<const std::byte> prefix, Protocol protocol, const Limits& limits,
                        bool at_end) noexcept {
  // Limits are validated at config time; clamping keeps a bad value from widening the bound.
  const std::size_t limit = protocol == Protocol::Http
                                ? std::min(limits.max_http_head, kHardMaxHttpHead)
                                : std::min(limits.max_client_hello, kHardMaxClientHello);
  const auto inspected = prefix.first(std::min(prefix.size(), limit));
  Classification c =
      protocol == Protocol::Http ? classify_http(inspected) : classify_tls(inspected, limit);
  switch (c.verdict) {
    case Verdict::Match:
      c.decision = Decision::Challenge;
      break;
    case Verdict::NoMatch:
    case Verdict::Invalid:
      c.decision = Decision::Production;
      break;
    case Verdict::NeedMore:
      if (c.reason == Reason::LimitReached || prefix.size() >= limit) {
        c.decision = Decision::Production;
        c.reason = Reason::LimitReached;
      } else if (at_end) {
        c.decision = Decision::Production;
        c.reason = prefix.empty() ? Reason::Empty : Reason::Incomplete;
      }
      break;
  }
  return c;
}

std::string_view to_string(Decision d) noexcept {
  switch (d) {
    case Decision::NeedMore:
      return "need_more";
    case Decision::Challenge:
      return "challenge";
    case Decision::Production:
      return "production";
  }
  return "invalid";
}

std::string_view to_string(Reason r) noexcept {
  switch (r) {
    case Reason::None:
      return "none";
    case Reason::Empty:
      return "empty";
    case Reason::NotHttp:
      return "not_http";
    case Reason::Method:
      return "method";
    case Reason::Path:
      return "path";
    case Reason::Token:
      return "token";
    case Reason::Version:
      return "version";
    case Reason::MalformedHead:
      return "malformed_head";
    case Reason::LimitReached:
      return "limit_reached";
    case Reason::Incomplete:
      return "incomplete";
    case Reason::NotTls:
      return "not_tls";
    case Reason::NotClientHello:
      return "not_client_hello";
    case Reason::MalformedTls:
      return "malformed_tls";
    case Reason::NoAlpn:
      return "no_alpn";
    case Reason::AlpnOther:
      return "alpn_other";
    case Reason::NoSni:
      return "no_sni";
  }
  return "invalid";
}

std::string_view to_string(ChallengeType c) noexcept {
  switch (c) {
    case ChallengeType::None:
      return "none";
    case ChallengeType::Http01:
      return "http-01";
    case ChallengeType::TlsAlpn01:
      return "tls-alpn-01";
  }
  return "invalid";
}

std::string_view to_string(Protocol p) noexcept {
  switch (p) {
    case Protocol::Http:
      return "http";
    case Protocol::Tls:
      return "tls";
  }
  return "invalid";
}

}  // namespace acmegw::classifier
