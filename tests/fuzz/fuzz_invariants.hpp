#pragma once
// Invariants both classifier fuzz targets assert (STYLE §25d): no crash, head_len within the
// input, every view inside the input, well-formed challenge fields, and decision stability: a
// prefix that is decided stays decided the same way when more bytes are appended.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>

#include "classifier/classify.hpp"

namespace acmegw::fuzz {

namespace cls = acmegw::classifier;

// Aborts with a message: libFuzzer turns it into a crash report with the input saved.
[[noreturn]] inline void violated(const char* what) {
  std::fprintf(stderr, "classifier invariant violated: %s\n", what);
  std::abort();
}
#define ACMEGW_FUZZ_CHECK(cond)        \
  do {                                 \
    if (!(cond)) {                     \
      ::acmegw::fuzz::violated(#cond); \
    }                                  \
  } while (0)

inline bool inside(std::string_view v, std::span<const std::byte> in) {
  if (v.empty()) {
    return true;
  }
  const auto* lo = reinterpret_cast<const char*>(in.data());
  return v.data() >= lo && v.size() <= in.size() &&
         static_cast<std::size_t>(v.data() - lo) <= in.size() - v.size();
}

inline void check_one(const cls::Classification& c, std::span<const std::byte> in) {
  ACMEGW_FUZZ_CHECK(c.head_len <= in.size());
  ACMEGW_FUZZ_CHECK(inside(c.token, in));
  ACMEGW_FUZZ_CHECK(inside(c.sni, in));
  ACMEGW_FUZZ_CHECK(inside(c.alpn, in));
  ACMEGW_FUZZ_CHECK(c.host.len <= cls::kMaxHostLen);
  ACMEGW_FUZZ_CHECK((c.decision == cls::Decision::Challenge) == (c.verdict == cls::Verdict::Match));
  ACMEGW_FUZZ_CHECK((c.decision == cls::Decision::Challenge) ==
                    (c.challenge != cls::ChallengeType::None));
  ACMEGW_FUZZ_CHECK((c.decision == cls::Decision::Production) == (c.reason != cls::Reason::None));
  if (c.challenge == cls::ChallengeType::Http01) {
    ACMEGW_FUZZ_CHECK(!c.token.empty() && c.token.size() <= 255);
    for (const char ch : c.token) {
      ACMEGW_FUZZ_CHECK((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                        (ch >= '0' && ch <= '9') || ch == '_' || ch == '-');
    }
    ACMEGW_FUZZ_CHECK(c.head_len > 0);
  }
  for (const char ch : c.host.view()) {
    ACMEGW_FUZZ_CHECK(!(ch >= 'A' && ch <= 'Z') && static_cast<unsigned char>(ch) > 0x20 &&
                      static_cast<unsigned char>(ch) < 0x7f);
  }
}

// `early` classified a prefix of what `late` classified (both without at_end).
inline void check_stable(const cls::Classification& early, const cls::Classification& late) {
  if (early.decision == cls::Decision::NeedMore) {
    return;
  }
  ACMEGW_FUZZ_CHECK(late.decision == early.decision);
  ACMEGW_FUZZ_CHECK(late.challenge == early.challenge);
  // The only refinement allowed: another method's token turning out not to be HTTP.
  ACMEGW_FUZZ_CHECK(late.reason == early.reason ||
                    (early.reason == cls::Reason::Method && late.reason == cls::Reason::NotHttp));
  ACMEGW_FUZZ_CHECK(late.head_len == early.head_len);
  ACMEGW_FUZZ_CHECK(late.token == early.token);
  ACMEGW_FUZZ_CHECK(late.host.view() == early.host.view());
  ACMEGW_FUZZ_CHECK(late.host_port == early.host_port);
}

// Runs the checks for one input: the whole input, three prefixes of it (half, all but the last
// byte, and one picked by a hash of the bytes), default limits and a small limit taken from the
// hash, and at_end.
inline void run_one(const std::uint8_t* data, std::size_t size, cls::Protocol proto) {
  const auto in = std::as_bytes(std::span{data, size});
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a picks the split and the limit
  for (std::size_t i = 0; i < size; ++i) {
    h = (h ^ data[i]) * 1099511628211ull;
  }
  cls::Limits small;
  small.max_http_head = 1 + h % 512;
  small.max_client_hello = 1 + (h >> 16) % 2048;
  for (const cls::Limits& lim : {cls::Limits{}, small}) {
    const auto full = cls::classify(in, proto, lim);
    check_one(full, in);
    for (const std::size_t cut :
         {size / 2, size == 0 ? 0 : size - 1, size == 0 ? 0 : static_cast<std::size_t>(h % size)}) {
      const auto part = cls::classify(in.first(cut), proto, lim);
      check_one(part, in.first(cut));
      check_stable(part, full);
    }
    const auto end = cls::classify(in, proto, lim, true);
    check_one(end, in);
    ACMEGW_FUZZ_CHECK(end.decision != cls::Decision::NeedMore);
    ACMEGW_FUZZ_CHECK(full.decision == cls::Decision::NeedMore || end.reason == full.reason);
  }
}

}  // namespace acmegw::fuzz
