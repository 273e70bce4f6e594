// RoutingBackend: per-request route choice by Host, on-miss, no route, and replace().
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "backends/routing.hpp"

namespace {

using namespace acmegw::backends;

// Answers KeyAuthorization "TOKEN.<tag>" for token "known", NotFound otherwise.
class Fixed final : public AnsweringBackend {
 public:
  explicit Fixed(std::string tag) : tag_(std::move(tag)) {}
  Answer answer(const ChallengeRequest& req) noexcept override {
    Answer a;
    if (req.token == "known") {
      a.kind = Answer::Kind::KeyAuthorization;
      a.body = std::string{req.token} + "." + tag_;
    }
    return a;
  }
  std::string_view name() const noexcept override { return "fixed"; }

 private:
  std::string tag_;
};

std::shared_ptr<const RouteSet> make_set(bool with_default) {
  auto s = std::make_shared<RouteSet>();
  s->targets.push_back({std::make_shared<Fixed>("a"), "a", false});
  s->targets.push_back({std::make_shared<Fixed>("b"), "b", true});
  REQUIRE_FALSE(s->table.add("a.example", 0));
  REQUIRE_FALSE(s->table.add("*.b.example", 1));
  if (with_default) {
    s->targets.push_back({std::make_shared<Fixed>("d"), "d", false});
    REQUIRE_FALSE(s->table.add("*", 2));
  }
  return s;
}

Answer ask(RoutingBackend& r, std::string_view host, std::string_view token = "known") {
  return r.answer({"GET", token, host, "/.well-known/acme-challenge/x"});
}

}  // namespace

TEST_CASE("routing: exact, wildcard and default routes pick their backend", "[routes]") {
  RoutingBackend r(make_set(true));
  CHECK(ask(r, "a.example").body == "known.a");
  CHECK(ask(r, "x.b.example").body == "known.b");
  CHECK(ask(r, "b.example").body == "known.d");  // the wildcard excludes the suffix itself
  CHECK(ask(r, "").body == "known.d");           // no Host: default
  CHECK_FALSE(ask(r, "a.example").to_production);
}

TEST_CASE("routing: on-miss and no route send the connection to production", "[routes]") {
  RoutingBackend r(make_set(false));
  const Answer miss_b = ask(r, "x.b.example", "unknown");
  CHECK(miss_b.kind == Answer::Kind::NotFound);
  CHECK(miss_b.to_production);  // route b: on-miss = production
  const Answer miss_a = ask(r, "a.example", "unknown");
  CHECK(miss_a.kind == Answer::Kind::NotFound);
  CHECK_FALSE(miss_a.to_production);  // route a: 404
  CHECK(ask(r, "other.example").to_production);  // no default route
}

TEST_CASE("routing: replace() applies to later requests; backends can be reused", "[routes]") {
  RoutingBackend r(make_set(false));
  const auto old = r.current();
  auto next = std::make_shared<RouteSet>();
  next->targets.push_back({old->backend_for("b"), "b", false});
  REQUIRE(next->targets[0].backend);
  REQUIRE_FALSE(next->table.add("a.example", 0));
  r.replace(next);
  CHECK(ask(r, "a.example").body == "known.b");
  CHECK(old->find("a.example")->spec == "a");  // the old set is unchanged for its holders
  CHECK(r.current()->backend_for("a") == nullptr);
}
