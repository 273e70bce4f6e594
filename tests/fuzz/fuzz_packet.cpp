// libFuzzer target for packet::parse(): invariants, not just absence of crashes.
//   * a view exists exactly when the error is None;
//   * the payload is a view of the input, right after the IP and TCP headers;
//   * header lengths are what the headers say (v4 IHL / v6 40, TCP data offset);
//   * payload_truncated says whether the capture is shorter than the IP length;
//   * cutting the last byte off keeps every header field and shortens the payload by at most one.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "gateway/packet/packet.hpp"

namespace {

using acmegw::packet::Family;
using acmegw::packet::ParseError;
using acmegw::packet::ParseResult;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

std::size_t ip_length(std::span<const std::byte> in, Family f) {
  const auto b = [&](std::size_t i) { return std::to_integer<std::size_t>(in[i]); };
  return f == Family::V4 ? (b(2) << 8 | b(3)) : 40 + (b(4) << 8 | b(5));
}

void check_view(std::span<const std::byte> in, const ParseResult& r) {
  check(r.view.has_value() == (r.error == ParseError::None));
  if (!r.view) {
    return;
  }
  const auto& v = *r.view;
  const std::size_t version = std::to_integer<std::size_t>(in[0]) >> 4;
  check(v.key.src.family == (version == 4 ? Family::V4 : Family::V6));
  if (version == 4) {
    check(v.ip_header_len == (std::to_integer<std::size_t>(in[0]) & 0xf) * 4);
    check(v.ip_header_len >= 20 && v.ip_header_len <= 60);
  } else {
    check(version == 6 && v.ip_header_len == 40);
  }
  check(v.tcp_header_len >= 20 && v.tcp_header_len <= 60 && v.tcp_header_len % 4 == 0);
  const std::size_t headers = std::size_t{v.ip_header_len} + v.tcp_header_len;
  check(headers <= in.size());
  check(v.payload.data() == in.data() + headers);
  check(v.payload.size() <= in.size() - headers);
  const std::size_t ip_len = ip_length(in, v.key.src.family);
  check(headers + v.payload.size() == std::min(ip_len, in.size()));
  check(v.payload_truncated == (in.size() < ip_len));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in{reinterpret_cast<const std::byte*>(data), size};
  const ParseResult r = acmegw::packet::parse(in);
  check_view(in, r);
  if (r.view && size > std::size_t{r.view->ip_header_len} + r.view->tcp_header_len) {
    const std::span<const std::byte> shorter = in.first(size - 1);
    const ParseResult s = acmegw::packet::parse(shorter);
    check_view(shorter, s);
    check(s.view.has_value());
    check(s.view->key == r.view->key && s.view->seq == r.view->seq && s.view->ack == r.view->ack &&
          s.view->flags == r.view->flags && s.view->options.mss == r.view->options.mss &&
          s.view->options.ts_val == r.view->options.ts_val);
    check(s.view->payload.size() + 1 >= r.view->payload.size());
    check(s.view->payload.data() == r.view->payload.data());
  }
  return 0;
}
