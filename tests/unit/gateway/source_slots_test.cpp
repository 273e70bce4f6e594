#include "gateway/takeover/source_slots.hpp"

#include <vector>

#include <catch2/catch.hpp>

namespace {

using acmegw::backends::SessionSlot;
using acmegw::packet::Address;
using acmegw::packet::Family;
using acmegw::takeover::SourceSlots;

Address v4(std::uint8_t last) {
  Address a;
  a.family = Family::V4;
  a.bytes = {10, 0, 0, last};
  return a;
}

Address v6(std::uint8_t subnet, std::uint8_t host) {
  Address a;
  a.family = Family::V6;
  a.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, subnet, 0, 0, 0, 0, 0, 0, 0, host};
  return a;
}

}  // namespace

TEST_CASE("source slots: at most N per client, given back when the last copy goes",
          "[takeover][slots]") {
  auto slots = SourceSlots::create(2);
  SessionSlot a = slots->acquire(v4(1));
  SessionSlot b = slots->acquire(v4(1));
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(slots->acquire(v4(1)));  // the third of one client
  CHECK(slots->acquire(v4(2)));        // another client is not affected (released at once)
  CHECK(slots->clients() == 1);
  SessionSlot copy = a;  // a session may hold several copies (handlers in flight)
  a.reset();
  CHECK_FALSE(slots->acquire(v4(1)));
  copy.reset();
  SessionSlot c = slots->acquire(v4(1));
  CHECK(c);
  b.reset();
  c.reset();
  CHECK(slots->clients() == 0);  // no entry outlives its sessions
}

TEST_CASE("source slots: an IPv6 client is its /64; families never share a slot",
          "[takeover][slots]") {
  auto slots = SourceSlots::create(1);
  SessionSlot a = slots->acquire(v6(1, 1));
  REQUIRE(a);
  CHECK_FALSE(slots->acquire(v6(1, 2)));  // same /64, other host
  CHECK(slots->acquire(v6(2, 1)));        // next /64
  // 10.0.0.1 and 2001:db8::… share no key even where their first bytes could coincide.
  Address four = v4(1);
  Address six{};
  six.family = Family::V6;
  six.bytes = four.bytes;
  CHECK(SourceSlots::key_of(four) != SourceSlots::key_of(six));
}

TEST_CASE("source slots: a slot outliving the table still gives its place back safely",
          "[takeover][slots]") {
  SessionSlot s;
  {
    auto slots = SourceSlots::create(1);
    s = slots->acquire(v4(9));
    REQUIRE(s);
  }
  s.reset();  // the deleter keeps the table alive until here (ASan would catch a use-after-free)
  SUCCEED("released after the owner dropped the table");
}
