// libFuzzer target for the HTTP request-head classifier; invariants in fuzz_invariants.hpp.
// Seeds: tests/fuzz/corpus/http/ (named by behaviour). See docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  acmegw::fuzz::run_one(data, size, acmegw::classifier::Protocol::Http);
  return 0;
}
