#include <string>

#include <catch2/catch.hpp>

#include "backends/thumbprint.hpp"

using acmegw::backends::Answer;
using acmegw::backends::ThumbprintBackend;

namespace {
// RFC 7638 §3.1 example thumbprint.
constexpr std::string_view kThumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
}  // namespace

TEST_CASE("thumbprint backend: answers TOKEN.THUMB", "[backends][thumbprint]") {
  std::string error;
  const auto b = ThumbprintBackend::create(kThumb, error);
  REQUIRE(b);
  CHECK(error.empty());
  const auto a =
      b->answer({"GET", "abc_DEF-1", "example.com", "/.well-known/acme-challenge/abc_DEF-1"});
  CHECK(a.kind == Answer::Kind::KeyAuthorization);
  CHECK(a.body == "abc_DEF-1." + std::string(kThumb));

  SECTION("a malformed token is not found") {
    CHECK(b->answer({"GET", "a.b", "", ""}).kind == Answer::Kind::NotFound);
    CHECK(b->answer({"GET", "", "", ""}).kind == Answer::Kind::NotFound);
    CHECK(b->answer({"GET", std::string(256, 'a'), "", ""}).kind == Answer::Kind::NotFound);
  }
}

TEST_CASE("thumbprint backend: rejects values that are not a thumbprint",
          "[backends][thumbprint]") {
  std::string error;
  CHECK_FALSE(ThumbprintBackend::create(kThumb.substr(1), error));
  CHECK(error.find("43") != std::string::npos);
  CHECK(error.find("got 42") != std::string::npos);
  error.clear();
  CHECK_FALSE(ThumbprintBackend::create(std::string(42, 'a') + "=", error));
  CHECK(error.find("[A-Za-z0-9_-]") != std::string::npos);
  error.clear();
  CHECK_FALSE(ThumbprintBackend::create("", error));
  CHECK_FALSE(error.empty());
}
