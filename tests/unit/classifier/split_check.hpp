#pragma once
// Shared by the classifier tests: classify every prefix of a wire vector (each one against a
// guard page) and check the decision appears once, at the expected byte, and never changes.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "classifier/classify.hpp"
#include "guarded_buffer.hpp"

namespace acmegw::test {

struct Expect {
  classifier::Decision decision = classifier::Decision::Production;
  classifier::Reason reason = classifier::Reason::None;
  std::string_view token;  // http-01 token on a challenge
  std::string_view host;   // lower-cased Host (HTTP challenge) or SNI (TLS)
  std::uint16_t port = 0;
  std::optional<std::size_t> decided_at;  // prefix length of the first decision, if asserted
};

inline bool inside(std::string_view view, std::span<const std::byte> buf) {
  if (view.empty()) {
    return true;
  }
  const auto* lo = reinterpret_cast<const char*>(buf.data());
  return view.data() >= lo && view.size() <= buf.size() &&
         static_cast<std::size_t>(view.data() - lo) <= buf.size() - view.size();
}

// Classifies wire[0..cut) for every cut. Before the decision point every answer is NeedMore;
// from it on, every answer carries the same decision, challenge, token and host (the reason
// may only be refined from Method to NotHttp while a method token is arriving, see
// docs/classifier.md). The whole wire with at_end=true must give `e`.
inline void check_every_split(std::string_view wire, classifier::Protocol proto, const Expect& e,
                              const classifier::Limits& limits = {}) {
  using classifier::Decision;
  using classifier::Reason;
  GuardedBuffer buf{wire.size()};
  std::optional<std::size_t> first;
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    const auto in = buf.assign(wire.substr(0, cut));
    const auto c = classifier::classify(in, proto, limits);
    // One CHECK per cut would be slow; collect the failing cut for a readable message.
    std::string why;
    if (!inside(c.token, in) || !inside(c.sni, in) || !inside(c.alpn, in) || c.head_len > cut) {
      why = "view outside the input or head_len > size";
    } else if (!first && c.decision != Decision::NeedMore) {
      first = cut;
    }
    if (why.empty() && first) {
      const bool reason_ok =
          c.reason == e.reason || (c.reason == Reason::Method && e.reason == Reason::NotHttp);
      if (c.decision != e.decision) {
        why = "decision differs from the final one";
      } else if (!reason_ok) {
        why = "reason " + std::string(to_string(c.reason)) +
              " != " + std::string(to_string(e.reason));
      } else if (c.token != e.token || c.host.view() != e.host || c.host_port != e.port) {
        why = "token/host differ: token=" + std::string(c.token) +
              " host=" + std::string(c.host.view());
      }
    }
    if (!why.empty()) {
      CAPTURE(wire.size(), cut);
      FAIL(why);
    }
  }
  CAPTURE(wire.size());
  // Only the end of the stream decides an incomplete one.
  const bool at_end_only = e.reason == Reason::Incomplete || e.reason == Reason::Empty;
  REQUIRE(first.has_value() != at_end_only);
  if (e.decided_at) {
    CHECK(*first == *e.decided_at);
  }
  const auto in = buf.assign(wire);
  const auto end = classifier::classify(in, proto, limits, true);
  CHECK(to_string(end.decision) == to_string(e.decision));
  CHECK(to_string(end.reason) == to_string(e.reason));
  CHECK(end.token == e.token);
  CHECK(end.host.view() == e.host);
  CHECK(end.host_port == e.port);
}

}  // namespace acmegw::test
