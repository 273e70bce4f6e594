// sys::run_process with real child processes (the real thing is cheap here: no mocks).
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "gateway/sys/process.hpp"

using acmegw::sys::find_program;
using acmegw::sys::run_process;
using Argv = std::vector<std::string>;

TEST_CASE("run_process: stdin in, stdout and stderr out, exit status", "[process]") {
  const auto cat = run_process(Argv{"cat"}, "line 1\nline 2\n");
  REQUIRE(cat.ok());
  CHECK(cat.value.status == 0);
  CHECK(cat.value.out == "line 1\nline 2\n");
  CHECK(cat.value.err.empty());

  const auto fail = run_process(Argv{"sh", "-c", "echo oops >&2; echo out; exit 3"});
  REQUIRE(fail.ok());
  CHECK(fail.value.status == 3);
  CHECK_FALSE(fail.value.exited_ok());
  CHECK(fail.value.out == "out\n");
  CHECK(fail.value.err == "oops\n");
}

TEST_CASE("run_process: large input and output do not deadlock", "[process]") {
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 61) {
    big[i] = '\n';
  }
  const auto r = run_process(Argv{"cat"}, big);
  REQUIRE(r.ok());
  CHECK(r.value.out == big);
}

TEST_CASE("run_process: a child that ignores stdin, a signal, a timeout, a missing tool",
          "[process]") {
  const auto ignores = run_process(Argv{"true"}, std::string(1 << 20, 'x'));
  REQUIRE(ignores.ok());  // EPIPE on its stdin is not our failure, and no SIGPIPE kills us
  CHECK(ignores.value.status == 0);

  const auto killed = run_process(Argv{"sh", "-c", "kill -9 $$"});
  REQUIRE(killed.ok());
  CHECK(killed.value.status == 128 + 9);

  const auto start = std::chrono::steady_clock::now();
  const auto slow = run_process(Argv{"sleep", "5"}, {}, std::chrono::milliseconds(100));
  CHECK(slow.err == ETIMEDOUT);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));

  CHECK(run_process(Argv{"acmegw-no-such-tool"}).err == ENOENT);
  CHECK(run_process(Argv{}).err == EINVAL);
  const auto sh = find_program("sh");
  REQUIRE(sh.has_value());
  CHECK(sh->starts_with("/"));
  CHECK_FALSE(find_program("acmegw-no-such-tool").has_value());
}
