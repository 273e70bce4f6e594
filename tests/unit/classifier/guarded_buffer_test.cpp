// The guard page really faults: a read one byte past the view kills a forked child.
#include <csignal>
#include <string_view>

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "guarded_buffer.hpp"

TEST_CASE("GuardedBuffer: bytes end right before an inaccessible page", "[guarded_buffer]") {
  acmegw::test::GuardedBuffer buf{100};
  for (const std::string_view s : {std::string_view{}, std::string_view{"x"},
                                   std::string_view{"GET / HTTP/1.1\r\n"}}) {
    const auto view = buf.assign(s);
    CHECK(buf.str() == s);
    CHECK(view.size() == s.size());
  }
  CHECK_THROWS(buf.assign(std::string(5000, 'x')));  // capacity is one page here

  const auto view = buf.assign("abc");
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const volatile std::byte* p = view.data();
    const std::byte past = p[view.size()];  // must fault
    ::_exit(static_cast<int>(past) == 0x7f ? 2 : 0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  // A plain build dies of SIGSEGV; under ASan the report ends in abort or exit(1).
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 2));
}
