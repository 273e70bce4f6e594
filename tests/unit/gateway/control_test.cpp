// The control socket over a real unix socket: ControlServer answers `status` with what its
// callback builds, with the tokens socket's access control; the client tells "nobody serves
// this path" (what `acmegw status` turns into exit 3) from other failures.
#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <stdexcept>

#include <sys/stat.h>

#include "backends/temp_dir.hpp"
#include "backends/tokens_server.hpp"
#include "gateway/cli/control.hpp"

using acmegw::backends::token_request;
using acmegw::cli::ControlServer;
using namespace std::chrono_literals;

TEST_CASE("control: status over the socket, mode 0600, file gone after stop", "[status]") {
  acmegw::test::TempDir d;
  const std::string path = (d.path() / "control.sock").string();
  {
    ControlServer server{path, [] { return std::string{R"({"version":"x"})"}; }};
    CHECK(server.path() == path);
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    std::string error;
    CHECK(token_request(path, "status", 2000ms, error) == std::string{"{\"version\":\"x\"}\n"});
    CHECK(token_request(path, "list", 2000ms, error)->starts_with("error "));
  }
  std::string error;
  int err = 0;
  CHECK_FALSE(token_request(path, "status", 2000ms, error, &err));
  CHECK(err == ENOENT);
}

TEST_CASE("control: a socket that cannot be served is a startup error", "[status]") {
  acmegw::test::TempDir d;
  const auto status = [] { return std::string{"{}"}; };
  CHECK_THROWS_AS(ControlServer((d.path() / "no/such/dir.sock").string(), status),
                  std::runtime_error);
  CHECK_THROWS_AS(ControlServer("relative.sock", status), std::runtime_error);
}
