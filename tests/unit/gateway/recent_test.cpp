// Flows decided moments ago (gateway/flow/recent.hpp): the engine's answer to segments queued
// before their flow's verdict. Pure: the clock is a parameter.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>

#include "gateway/flow/flow_table.hpp"
#include "gateway/flow/recent.hpp"

namespace {

using acmegw::flow::Decided;
using acmegw::flow::RecentDecisions;
using acmegw::packet::FlowKey;
using namespace std::chrono_literals;

const RecentDecisions::TimePoint t0{};
constexpr std::uint64_t kSeed = 0x5eed;

FlowKey key(std::uint16_t sport) {
  FlowKey k;
  k.src.bytes = {192, 0, 2, 1};
  k.dst.bytes = {203, 0, 113, 10};
  k.sport = sport;
  k.dport = 80;
  return k;
}

}  // namespace

TEST_CASE("recent: nothing recorded, nothing found", "[flow][recent]") {
  const RecentDecisions r{kSeed};
  CHECK_FALSE(r.lookup(key(40000), 1000, t0));
  CHECK_FALSE(r.lookup(FlowKey{}, 0, t0));  // an all-zero key must not match an unused slot
}

TEST_CASE("recent: the decision is repeated for the flow's later segments", "[flow][recent]") {
  RecentDecisions r{kSeed};
  r.record(key(40000), 1000, Decided::Pass, t0);
  r.record(key(40001), 7000, Decided::Taken, t0);
  CHECK(r.lookup(key(40000), 1000, t0) == Decided::Pass);               // the first segment again
  CHECK(r.lookup(key(40000), 1000 + 1448, t0 + 5ms) == Decided::Pass);  // pipelined, queued
  CHECK(r.lookup(key(40001), 7000 + 80, t0 + 5ms) == Decided::Taken);
  CHECK_FALSE(r.lookup(key(40002), 1000, t0));  // another flow
  r.record(key(40003), 9000, Decided::Drop, t0);  // policy drop: DROP again for queued segments
  CHECK(r.lookup(key(40003), 9000 + 100, t0 + 5ms) == Decided::Drop);
}

TEST_CASE("recent: bounded by age and by sequence window", "[flow][recent]") {
  RecentDecisions r{kSeed};
  r.record(key(40000), 1000, Decided::Pass, t0);
  CHECK(r.lookup(key(40000), 1000, t0 + RecentDecisions::kMaxAge - 1ms) == Decided::Pass);
  CHECK_FALSE(r.lookup(key(40000), 1000, t0 + RecentDecisions::kMaxAge));

  CHECK(r.lookup(key(40000), 1000 + RecentDecisions::kSeqWindow - 1, t0) == Decided::Pass);
  CHECK_FALSE(r.lookup(key(40000), 1000 + RecentDecisions::kSeqWindow, t0));  // new ISN
  CHECK_FALSE(r.lookup(key(40000), 999, t0));  // before the first byte: not this stream
}

TEST_CASE("recent: the sequence window wraps at 2^32", "[flow][recent]") {
  RecentDecisions r{kSeed};
  r.record(key(40000), 0xfffffff0u, Decided::Taken, t0);
  CHECK(r.lookup(key(40000), 0x00000010u, t0) == Decided::Taken);  // 0x20 past the first byte
  CHECK_FALSE(r.lookup(key(40000), 0xffffffe0u, t0));
}

TEST_CASE("recent: v4 and v6 keys with the same bytes are different flows", "[flow][recent]") {
  RecentDecisions r{kSeed};
  FlowKey v6 = key(40000);
  v6.src.family = acmegw::packet::Family::V6;
  v6.dst.family = acmegw::packet::Family::V6;
  r.record(v6, 1000, Decided::Taken, t0);
  CHECK_FALSE(r.lookup(key(40000), 1000, t0));
  CHECK(r.lookup(v6, 1000, t0) == Decided::Taken);
}

TEST_CASE("recent: a newer decision replaces what held the slot", "[flow][recent]") {
  RecentDecisions r{kSeed};
  r.record(key(40000), 1000, Decided::Pass, t0);
  r.record(key(40000), 1000, Decided::Taken, t0 + 1ms);  // the same flow, decided again
  CHECK(r.lookup(key(40000), 1000, t0 + 1ms) == Decided::Taken);

  // Two flows hashing to one slot: the later one evicts the earlier (bounded memory).
  const acmegw::packet::FlowKeyHash h{kSeed};
  const std::size_t slot = h(key(40000)) % RecentDecisions::kSlots;
  std::uint16_t other = 40001;
  while (other != 0 && h(key(other)) % RecentDecisions::kSlots != slot) {
    ++other;
  }
  REQUIRE(other != 0);  // 25k ports over 4096 slots: a collision exists
  r.record(key(other), 5000, Decided::Pass, t0 + 2ms);
  CHECK(r.lookup(key(other), 5000, t0 + 2ms) == Decided::Pass);
  CHECK_FALSE(r.lookup(key(40000), 1000, t0 + 2ms));
}

TEST_CASE("recent: closes the race a fresh flow table would lose", "[flow][recent]") {
  // A production request and a pipelined challenge request queued back to back: the first
  // segment decides PASS; the second, seen alone, classifies as a challenge mid-stream.
  using acmegw::flow::Action;
  using acmegw::packet::PacketView;
  constexpr std::string_view first = "GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n";
  constexpr std::string_view second =
      "GET /.well-known/acme-challenge/abc_DEF-1 HTTP/1.1\r\nHost: example.org\r\n\r\n";
  const auto view = [](std::string_view wire, std::uint32_t seq) {
    PacketView v;
    v.key = key(40000);
    v.seq = seq;
    v.ack = 5555;
    v.window = 502;
    v.flags = acmegw::packet::tcpflag::kAck | acmegw::packet::tcpflag::kPsh;
    v.payload = {reinterpret_cast<const std::byte*>(wire.data()), wire.size()};
    return v;
  };
  acmegw::flow::FlowTable table{acmegw::flow::Limits{}};
  RecentDecisions recent{kSeed};

  const auto r1 = table.on_segment(view(first, 1000), 1, 0, acmegw::classifier::Protocol::Http, t0);
  REQUIRE(r1.action == Action::Production);
  recent.record(r1.flow.key, r1.flow.first_seq, Decided::Pass, t0);

  const auto seq2 = static_cast<std::uint32_t>(1000 + first.size());
  const auto r2 =
      table.on_segment(view(second, seq2), 2, 0, acmegw::classifier::Protocol::Http, t0 + 1ms);
  CHECK(r2.action == Action::Challenge);  // what the engine would do without RecentDecisions
  CHECK(recent.lookup(key(40000), seq2, t0 + 1ms) == Decided::Pass);  // what it does now
}
