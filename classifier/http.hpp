#pragma once
// HTTP/1.x request-head classifier for http-01 (private to acmegw_classifier; call classify()).
#include <span>

#include "classifier/classify.hpp"

namespace acmegw::classifier {

// Parses the request head at the start of `in` (already cut to the inspection limit) and fills
// verdict, reason, challenge, token, host, host_port and head_len; `decision` is left to
// classify(). Returns verdict NeedMore when `in` is a valid but undecided prefix. Views point
// into `in`. Pure: no syscalls, no allocation, one linear pass with early exits.
[[nodiscard]] Classification classify_http(std::span<const std::byte> in) noexcept;

}  // namespace acmegw::classifier
