// libFuzzer target for the TLS ClientHello classifier; invariants in fuzz_invariants.hpp.
// Seeds: tests/fuzz/corpus/tls/ (named by behaviour). See docs/fuzzing.md.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_invariants.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  acmegw::fuzz::run_one(data, size, acmegw::classifier::Protocol::Tls);
  return 0;
}
