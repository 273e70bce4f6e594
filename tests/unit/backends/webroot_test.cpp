#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include "backends/webroot.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using acmegw::backends::Answer;
using acmegw::backends::ChallengeRequest;
using acmegw::backends::kMaxWebrootFile;
using acmegw::backends::WebrootBackend;
using acmegw::test::TempDir;

namespace {

constexpr const char* kDir = ".well-known/acme-challenge/";

Answer ask(WebrootBackend& b, std::string_view token) {
  return b.answer(ChallengeRequest{"GET", token, "www.example.com", ""});
}

std::unique_ptr<WebrootBackend> make(const TempDir& d) {
  std::string error;
  auto b = WebrootBackend::create(d.path().string(), error);
  INFO(error);
  REQUIRE(b);
  return b;
}

}  // namespace

TEST_CASE("WebrootBackend: serves the file bytes as they are", "[backends][webroot]") {
  TempDir d;
  auto b = make(d);  // before the challenge directory exists, as with certbot's first run
  CHECK(ask(*b, "tok").kind == Answer::Kind::NotFound);

  d.write(std::string{kDir} + "tok", "tok.THUMB");
  d.write(std::string{kDir} + "nl", "nl.THUMB\n");  // served with its newline, as nginx would
  auto a = ask(*b, "tok");
  CHECK(a.kind == Answer::Kind::KeyAuthorization);
  CHECK(a.body == "tok.THUMB");
  CHECK(ask(*b, "nl").body == "nl.THUMB\n");
  CHECK(ask(*b, "missing").kind == Answer::Kind::NotFound);
  d.write(std::string{kDir} + "empty", "");
  a = ask(*b, "empty");
  CHECK(a.kind == Answer::Kind::KeyAuthorization);
  CHECK(a.body.empty());
}

TEST_CASE("WebrootBackend: nothing outside DIR is reachable", "[backends][webroot]") {
  TempDir outside;
  const auto secret = outside.write("secret", "SECRET");
  TempDir d;
  auto b = make(d);
  d.write(std::string{kDir} + "real", "real.THUMB");
  const auto dir = d.path() / kDir;
  fs::create_symlink(secret, dir / "abs");                     // absolute symlink out
  fs::create_symlink("../../../" + outside.path().filename().string() + "/secret",
                     dir / "rel");                             // relative symlink out
  fs::create_symlink("real", dir / "inside");                  // stays beneath DIR: fine
  fs::create_symlink("/proc/self/root" + secret.string(), dir / "magic");  // via a magic link
  fs::create_directory(dir / "adir");
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);        // must not block the caller

  CHECK(ask(*b, "abs").kind == Answer::Kind::NotFound);
  CHECK(ask(*b, "rel").kind == Answer::Kind::NotFound);
  CHECK(ask(*b, "magic").kind == Answer::Kind::NotFound);
  CHECK(ask(*b, "adir").kind == Answer::Kind::NotFound);
  CHECK(ask(*b, "fifo").kind == Answer::Kind::NotFound);
  const auto inside = ask(*b, "inside");
  CHECK(inside.kind == Answer::Kind::KeyAuthorization);
  CHECK(inside.body == "real.THUMB");
  // Tokens that would be paths never reach the file system.
  for (const char* bad : {"..", "../../x", "a/b", "", ".hidden"}) {
    CAPTURE(bad);
    CHECK(ask(*b, bad).kind == Answer::Kind::NotFound);
  }
}

TEST_CASE("WebrootBackend: .well-known itself may be a symlink inside DIR", "[backends][webroot]") {
  TempDir d;
  d.write("acme/.well-known/acme-challenge/tok", "tok.THUMB");
  fs::create_symlink("acme/.well-known", d.path() / ".well-known");
  auto b = make(d);
  CHECK(ask(*b, "tok").body == "tok.THUMB");
}

TEST_CASE("WebrootBackend: size cap", "[backends][webroot]") {
  TempDir d;
  auto b = make(d);
  d.write(std::string{kDir} + "max", std::string(kMaxWebrootFile, 'x'));
  d.write(std::string{kDir} + "big", std::string(kMaxWebrootFile + 1, 'x'));
  CHECK(ask(*b, "max").body.size() == kMaxWebrootFile);
  CHECK(ask(*b, "big").kind == Answer::Kind::Unavailable);
}

TEST_CASE("WebrootBackend: unreadable file is Unavailable, missing DIR an error",
          "[backends][webroot]") {
  TempDir d;
  auto b = make(d);
  const auto f = d.write(std::string{kDir} + "locked", "locked.THUMB");
  fs::permissions(f, fs::perms::none);
  if (::geteuid() != 0) {  // root reads mode-000 files anyway
    CHECK(ask(*b, "locked").kind == Answer::Kind::Unavailable);
  }
  std::string error;
  CHECK_FALSE(WebrootBackend::create((d.path() / "nope").string(), error));
  CHECK(error.find("webroot: cannot open directory") == 0);
}
