// The undecided-flow table (gateway/flow/flow_table.hpp): reassembly, retransmissions, gaps,
// bounds, timeouts and every fail-open path. Pure: segments are PacketView values, the clock is a
// parameter.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/flow/flow_table.hpp"

namespace {

using acmegw::classifier::Protocol;
using acmegw::flow::Action;
using acmegw::flow::Cause;
using acmegw::flow::FlowTable;
using acmegw::flow::Limits;
using acmegw::flow::Result;
using acmegw::packet::FlowKey;
using acmegw::packet::PacketView;
namespace tcpflag = acmegw::packet::tcpflag;
using namespace std::chrono_literals;

constexpr std::string_view kChallenge =
    "GET /.well-known/acme-challenge/abc_DEF-1 HTTP/1.1\r\nHost: example.org\r\n\r\n";
constexpr std::string_view kProduction = "GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n";

const acmegw::flow::TimePoint t0{};

FlowKey key(std::uint16_t sport) {
  FlowKey k;
  k.src.bytes = {192, 0, 2, 1};
  k.dst.bytes = {203, 0, 113, 10};
  k.sport = sport;
  k.dport = 80;
  return k;
}

// A client segment carrying `wire[from, to)` of a stream that starts at sequence number `isn`.
struct Seg {
  FlowKey k = key(40000);
  std::uint32_t isn = 1000;
  std::string_view wire;
  std::size_t from = 0;
  std::size_t to = 0;
  std::uint8_t flags = tcpflag::kAck | tcpflag::kPsh;

  PacketView view() const {
    PacketView v;
    v.key = k;
    v.seq = isn + static_cast<std::uint32_t>(from);
    v.ack = 5555;
    v.window = 502;
    v.flags = flags;
    v.payload = {reinterpret_cast<const std::byte*>(wire.data()) + from, to - from};
    return v;
  }
};

std::vector<std::uint32_t> ids(const Result& r) {
  std::vector<std::uint32_t> out;
  for (const auto& p : r.packets) {
    out.push_back(p.id);
  }
  return out;
}

std::string text(std::span<const std::byte> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

Result offer(FlowTable& t, const Seg& s, std::uint32_t id, acmegw::flow::TimePoint now = t0,
             std::uint32_t mark = 0) {
  return t.on_segment(s.view(), id, mark, Protocol::Http, now);
}

}  // namespace

TEST_CASE("flow table: a complete first segment decides without entering the table", "[flow]") {
  FlowTable t{Limits{}};
  const Result c = offer(t, {.wire = kChallenge, .to = kChallenge.size()}, 7, t0, 0xabc);
  CHECK(c.action == Action::Challenge);
  REQUIRE(ids(c) == std::vector<std::uint32_t>{7});
  CHECK(c.packets[0].mark == 0xabc);
  CHECK(text(c.flow.stream) == kChallenge);
  CHECK(c.flow.first_seq == 1000);
  CHECK(c.flow.ack == 5555);
  CHECK(c.classification.token == "abc_DEF-1");
  CHECK(t.size() == 0);

  const Result p = offer(t, {.k = key(2), .wire = kProduction, .to = kProduction.size()}, 8);
  CHECK(p.action == Action::Production);
  CHECK(p.cause == Cause::Classified);
  CHECK(ids(p) == std::vector<std::uint32_t>{8});
  CHECK(t.size() == 0);
}

TEST_CASE("flow table: the decision does not depend on where the stream is split",
          "[flow][split]") {
  struct Case {
    std::string_view wire;
    Action final_action;
  };
  for (const Case c :
       {Case{kChallenge, Action::Challenge}, Case{kProduction, Action::Production}}) {
    for (std::size_t cut = 1; cut < c.wire.size(); ++cut) {
      CAPTURE(c.wire, cut);
      FlowTable t{Limits{}};
      const Result first = offer(t, {.wire = c.wire, .to = cut}, 1);
      if (first.action != Action::Hold) {
        // Only a production request may be decided early (by its request line).
        REQUIRE(c.final_action == Action::Production);
        CHECK(first.action == Action::Production);
        CHECK(ids(first) == std::vector<std::uint32_t>{1});
        continue;
      }
      CHECK(first.started_holding);
      CHECK(first.packets.empty());
      CHECK(t.size() == 1);
      const Result second = offer(t, {.wire = c.wire, .from = cut, .to = c.wire.size()}, 2);
      CHECK(second.action == c.final_action);
      CHECK_FALSE(second.started_holding);
      CHECK(ids(second) == std::vector<std::uint32_t>{1, 2});
      CHECK(text(second.flow.stream) == c.wire);
      CHECK(second.flow.first_seq == 1000);
      CHECK(t.size() == 0);
      CHECK(t.held_bytes() == 0);
      if (c.final_action == Action::Challenge) {
        CHECK(second.classification.token == "abc_DEF-1");
      }
    }
  }
}

TEST_CASE("flow table: one-byte segments are reassembled in order", "[flow][split]") {
  Limits l;
  l.max_segments_per_flow = 256;
  FlowTable t{l};
  Result r;
  std::uint32_t id = 0;
  for (std::size_t i = 0; i < kChallenge.size(); ++i) {
    r = offer(t, {.wire = kChallenge, .from = i, .to = i + 1}, ++id);
    if (r.action != Action::Hold) {
      break;
    }
  }
  REQUIRE(r.action == Action::Challenge);
  REQUIRE(r.packets.size() == kChallenge.size());
  for (std::size_t i = 0; i < r.packets.size(); ++i) {
    CHECK(r.packets[i].id == i + 1);
  }
  CHECK(text(r.flow.stream) == kChallenge);
}

TEST_CASE("flow table: sequence numbers wrap around 2^32", "[flow]") {
  FlowTable t{Limits{}};
  const std::uint32_t isn = 0xfffffff0u;  // the wrap falls inside the first 20 bytes
  REQUIRE(offer(t, {.isn = isn, .wire = kChallenge, .to = 20}, 1).action == Action::Hold);
  const Result r =
      offer(t, {.isn = isn, .wire = kChallenge, .from = 20, .to = kChallenge.size()}, 2);
  CHECK(r.action == Action::Challenge);
  CHECK(r.flow.first_seq == isn);
  CHECK(text(r.flow.stream) == kChallenge);
}

TEST_CASE("flow table: retransmissions, overlaps and gaps", "[flow]") {
  FlowTable t{Limits{}};
  const Seg head{.wire = kChallenge, .to = 20};
  REQUIRE(offer(t, head, 1).action == Action::Hold);

  SECTION("an exact retransmission of a later held segment is dropped (tail loss probe)") {
    REQUIRE(offer(t, {.wire = kChallenge, .from = 20, .to = 30}, 2).action == Action::Hold);
    const Result dup = offer(t, {.wire = kChallenge, .from = 20, .to = 30}, 3);
    CHECK(dup.action == Action::Drop);
    CHECK(ids(dup) == std::vector<std::uint32_t>{3});
    CHECK(t.size() == 1);
    const Result r = offer(t, {.wire = kChallenge, .from = 30, .to = kChallenge.size()}, 4);
    CHECK(r.action == Action::Challenge);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2, 4});
  }
  SECTION("a retransmission of the head (RTO: the client is stalled) goes to production") {
    REQUIRE(offer(t, {.wire = kChallenge, .from = 20, .to = 30}, 2).action == Action::Hold);
    const Result r = offer(t, {.wire = kChallenge, .to = 30}, 3);  // coalesced, as Linux does
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::Stalled);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2, 3});
    CHECK(t.size() == 0);
  }
  SECTION("with one held segment, the head's first retransmission may be a loss probe") {
    const Result probe = offer(t, head, 2);
    CHECK(probe.action == Action::Drop);
    CHECK(t.size() == 1);
    const Result rto = offer(t, head, 3);
    CHECK(rto.action == Action::Production);
    CHECK(rto.cause == Cause::Stalled);
    CHECK(ids(rto) == std::vector<std::uint32_t>{1, 3});
  }
  SECTION("a loss probe does not stop the flow from completing") {
    REQUIRE(offer(t, head, 2).action == Action::Drop);
    const Result r = offer(t, {.wire = kChallenge, .from = 20, .to = kChallenge.size()}, 3);
    CHECK(r.action == Action::Challenge);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 3});
  }
  SECTION("a retransmission with FIN ends the flow to production") {
    Seg fin = head;
    fin.flags |= tcpflag::kFin;
    const Result r = offer(t, fin, 2);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::ClientEnd);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2});
  }
  SECTION("a coalesced retransmission of several held segments is dropped") {
    REQUIRE(offer(t, {.wire = kChallenge, .from = 20, .to = 30}, 2).action == Action::Hold);
    const Result dup = offer(t, {.wire = kChallenge, .from = 5, .to = 30}, 3);
    CHECK(dup.action == Action::Drop);
    CHECK(ids(dup) == std::vector<std::uint32_t>{3});
    const Result r = offer(t, {.wire = kChallenge, .from = 30, .to = kChallenge.size()}, 4);
    CHECK(r.action == Action::Challenge);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2, 4});
    CHECK(text(r.flow.stream) == kChallenge);
  }
  SECTION("a retransmission that also carries new bytes is held and extends the stream") {
    const Result grow = offer(t, {.wire = kChallenge, .from = 10, .to = 30}, 2);
    CHECK(grow.action == Action::Hold);
    CHECK(text(grow.flow.stream) == kChallenge.substr(0, 30));
    CHECK(t.held_bytes() == 30);
    const Result r = offer(t, {.wire = kChallenge, .from = 30, .to = kChallenge.size()}, 3);
    CHECK(r.action == Action::Challenge);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2, 3});
    CHECK(text(r.flow.stream) == kChallenge);
  }
  SECTION("different bytes at held offsets go to production, in order") {
    const std::string other = "GET /.well-known/ACME-challenge/abc_DEF-1 HTTP/1.1\r\n\r\n";
    const Result r = offer(t, {.wire = other, .from = 10, .to = 30}, 2);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::Overlap);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2});
    CHECK(t.size() == 0);
    CHECK(t.held_bytes() == 0);
  }
  SECTION("bytes before the first held byte go to production") {
    const Result r = offer(t, {.isn = 990, .wire = kChallenge, .to = 5}, 2);  // seq 990 < S
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::Overlap);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2});
  }
  SECTION("a gap (a segment passed the queue elsewhere) goes to production") {
    const Result r = offer(t, {.wire = kChallenge, .from = 25, .to = kChallenge.size()}, 2);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::Gap);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2});
    CHECK(text(r.flow.stream) == kChallenge.substr(0, 20));  // only the contiguous part
  }
}

TEST_CASE("flow table: client FIN/RST and empty segments", "[flow]") {
  FlowTable t{Limits{}};
  REQUIRE(offer(t, {.wire = kChallenge, .to = 20}, 1).action == Action::Hold);

  SECTION("an empty ACK is accepted without deciding the flow") {
    const Result r = offer(t, {.wire = kChallenge, .from = 20, .to = 20}, 2);
    CHECK(r.action == Action::Accept);
    CHECK(ids(r) == std::vector<std::uint32_t>{2});
    CHECK(t.size() == 1);
  }
  SECTION("an empty FIN releases the held segments to production") {
    const Result r = offer(
        t, {.wire = kChallenge, .from = 20, .to = 20, .flags = tcpflag::kFin | tcpflag::kAck}, 2);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::ClientEnd);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2});
    CHECK(t.size() == 0);
  }
  SECTION("a completing segment with FIN is not taken over") {
    const Result r = offer(t,
                           {.wire = kChallenge,
                            .from = 20,
                            .to = kChallenge.size(),
                            .flags = tcpflag::kFin | tcpflag::kAck | tcpflag::kPsh},
                           2);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::ClientEnd);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2});
  }
  SECTION("an RST of an unknown flow is passed") {
    const Result r =
        offer(t, {.k = key(9), .wire = kChallenge, .from = 0, .to = 0, .flags = tcpflag::kRst}, 3);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::ClientEnd);
    CHECK(ids(r) == std::vector<std::uint32_t>{3});
    CHECK(t.size() == 1);
  }
}

TEST_CASE("flow table: bounds send the flow to production", "[flow][bounds]") {
  SECTION("segments per flow") {
    Limits l;
    l.max_segments_per_flow = 2;
    FlowTable t{l};
    REQUIRE(offer(t, {.wire = kChallenge, .to = 5}, 1).action == Action::Hold);
    REQUIRE(offer(t, {.wire = kChallenge, .from = 5, .to = 10}, 2).action == Action::Hold);
    const Result r = offer(t, {.wire = kChallenge, .from = 10, .to = kChallenge.size()}, 3);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::SegmentLimit);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2, 3});
  }
  SECTION("bytes per flow (the classifier limit)") {
    Limits l;
    l.classifier.max_http_head = 40;
    FlowTable t{l};
    REQUIRE(offer(t, {.wire = kChallenge, .to = 30}, 1).action == Action::Hold);
    const Result r = offer(t, {.wire = kChallenge, .from = 30, .to = 50}, 2);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::ByteLimit);
    CHECK(ids(r) == std::vector<std::uint32_t>{1, 2});
  }
  SECTION("total held bytes") {
    Limits l;
    l.max_total_bytes = 30;
    FlowTable t{l};
    REQUIRE(offer(t, {.k = key(1), .wire = kChallenge, .to = 20}, 1).action == Action::Hold);
    const Result other = offer(t, {.k = key(2), .wire = kChallenge, .to = 20}, 2);
    CHECK(other.action == Action::Production);
    CHECK(other.cause == Cause::TotalBytes);
    CHECK(ids(other) == std::vector<std::uint32_t>{2});
    const Result grow = offer(t, {.k = key(1), .wire = kChallenge, .from = 20, .to = 31}, 3);
    CHECK(grow.cause == Cause::TotalBytes);
    CHECK(ids(grow) == std::vector<std::uint32_t>{1, 3});
    CHECK(t.held_bytes() == 0);
  }
  SECTION("undecided flows") {
    Limits l;
    l.max_flows = 1;
    FlowTable t{l};
    REQUIRE(offer(t, {.k = key(1), .wire = kChallenge, .to = 20}, 1).action == Action::Hold);
    const Result r = offer(t, {.k = key(2), .wire = kChallenge, .to = 20}, 2);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::TableFull);
    CHECK(ids(r) == std::vector<std::uint32_t>{2});
    // The held flow is unaffected and still completes.
    CHECK(offer(t, {.k = key(1), .wire = kChallenge, .from = 20, .to = kChallenge.size()}, 3)
              .action == Action::Challenge);
  }
  SECTION("truncated capture") {
    FlowTable t{Limits{}};
    PacketView v = Seg{.wire = kChallenge, .to = 20}.view();
    v.payload_truncated = true;
    const Result r = t.on_segment(v, 1, 0, Protocol::Http, t0);
    CHECK(r.action == Action::Production);
    CHECK(r.cause == Cause::Truncated);
  }
}

TEST_CASE("flow table: hold timeout, eviction and drain", "[flow][timeout]") {
  Limits l;
  l.hold_timeout = 2000ms;
  FlowTable t{l};
  REQUIRE(offer(t, {.k = key(1), .wire = kChallenge, .to = 10}, 1, t0).action == Action::Hold);
  REQUIRE(offer(t, {.k = key(2), .wire = kChallenge, .to = 10}, 2, t0 + 500ms).action ==
          Action::Hold);
  REQUIRE(
      offer(t, {.k = key(1), .wire = kChallenge, .from = 10, .to = 20}, 3, t0 + 1900ms).action ==
      Action::Hold);

  CHECK_FALSE(t.pop_expired(t0 + 1999ms));
  const auto first = t.pop_expired(t0 + 2000ms);  // the deadline runs from the first segment
  REQUIRE(first);
  CHECK(first->action == Action::Production);
  CHECK(first->cause == Cause::Timeout);
  CHECK(ids(*first) == std::vector<std::uint32_t>{1, 3});
  CHECK(text(first->flow.stream) == kChallenge.substr(0, 20));
  CHECK_FALSE(t.pop_expired(t0 + 2000ms));

  SECTION("evict") {
    CHECK_FALSE(t.evict(key(1), Cause::HoldMarkFailed));
    const auto e = t.evict(key(2), Cause::HoldMarkFailed);
    REQUIRE(e);
    CHECK(e->cause == Cause::HoldMarkFailed);
    CHECK(ids(*e) == std::vector<std::uint32_t>{2});
  }
  SECTION("drain") {
    const auto d = t.drain();
    REQUIRE(d);
    CHECK(d->cause == Cause::Shutdown);
    CHECK(ids(*d) == std::vector<std::uint32_t>{2});
    CHECK_FALSE(t.drain());
  }
  CHECK(t.size() == 0);
  CHECK(t.held_bytes() == 0);
}

TEST_CASE("flow table: many interleaved flows keep their own streams", "[flow][index]") {
  // Exercises the open-addressing index: insertions and deletions in an order unrelated to the
  // hash, with the table full.
  constexpr std::uint16_t kFlows = 500;
  Limits l;
  l.max_flows = kFlows;
  FlowTable t{l};
  for (std::uint16_t i = 0; i < kFlows; ++i) {
    REQUIRE(offer(t, {.k = key(i), .isn = i * 7919u, .wire = kChallenge, .to = 17}, i).action ==
            Action::Hold);
  }
  CHECK(t.size() == kFlows);
  for (std::uint16_t n = 0; n < kFlows; ++n) {
    const std::uint16_t i = static_cast<std::uint16_t>((n * 263u) % kFlows);  // 263 is coprime
    CAPTURE(i);
    const Result r = offer(
        t, {.k = key(i), .isn = i * 7919u, .wire = kChallenge, .from = 17, .to = kChallenge.size()},
        1000u + i);
    REQUIRE(r.action == Action::Challenge);
    CHECK(r.flow.key == key(i));
    CHECK(ids(r) == std::vector<std::uint32_t>{i, 1000u + i});
    CHECK(text(r.flow.stream) == kChallenge);
  }
  CHECK(t.size() == 0);
  // Slots are reused after a full cycle.
  CHECK(offer(t, {.k = key(7), .wire = kChallenge, .to = 17}, 1).action == Action::Hold);
}
