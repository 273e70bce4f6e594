#pragma once
// TLS ClientHello classifier for tls-alpn-01 (private to acmegw_classifier; call classify()).
#include <cstddef>
#include <span>

#include "classifier/classify.hpp"

namespace acmegw::classifier {

// Parses the TLS records at the start of `in` (already cut to the inspection limit), reassembling
// the first handshake message across records, and fills verdict, reason, challenge, sni, alpn and
// host (the SNI, lower-cased); `decision` is left to classify(). Returns verdict NeedMore with
// reason LimitReached when the ClientHello's declared length cannot fit in `max_client_hello`
// bytes, and verdict NeedMore with reason None when `in` is a valid but undecided prefix. Views
// point into `in` and are empty when the field straddles a record boundary. Pure: no syscalls,
// no allocation.
[[nodiscard]] Classification classify_tls(std::span<const std::byte> in,
                                          std::size_t max_client_hello) noexcept;

}  // namespace acmegw::classifier
