#pragma once
// Classic BPF programs for the kernel's xt_bpf match (`iptables -m bpf --bytecode ...`), generated
// from the configured challenge methods and path prefix. They run on the skb from the network
// header on, in mangle PREROUTING, where the IP layer has already trimmed the skb to the IP
// length; a load past its end ends the program with 0 ("no match"). Layout, block by block, and
// the default programs: docs/prefilter.md. Pure: no syscalls; builds allocate (startup only).
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/packet/packet.hpp"

namespace acmegw::packet {

// One classic BPF instruction, laid out like the kernel's struct sock_filter and libpcap's
// struct bpf_insn (so a vector of these can be handed to either).
struct BpfInsn {
  std::uint16_t code = 0;
  std::uint8_t jt = 0;
  std::uint8_t jf = 0;
  std::uint32_t k = 0;
  friend bool operator==(const BpfInsn&, const BpfInsn&) = default;
};

// XT_BPF_MAX_NUM_INSTR in <linux/netfilter/xt_bpf.h>: xt_bpf refuses longer --bytecode programs.
inline constexpr std::size_t kXtBpfMaxInstructions = 64;

// The defaults, matching what the classifier accepts (classifier/http.cpp).
inline constexpr std::string_view kDefaultChallengePrefix = "/.well-known/acme-challenge/";
inline constexpr std::array<std::string_view, 2> kDefaultChallengeMethods = {"GET", "HEAD"};

// Returns a program that is true (1) iff the TCP segment carries payload, or its headers are ones
// the program does not walk (IPv6 extension headers, IPv4 fragments, non-TCP): those are left to
// userspace, which sends them to production. False (0) for SYNs, pure ACKs, FINs without data.
[[nodiscard]] std::vector<BpfInsn> build_payload_probe(Family family);

// Returns a program that is true (1) only when the TCP payload is non-empty and cannot be the
// start of a challenge request line: METHOD SP prefix, or METHOD SP "http" in any case (the
// absolute form). Never true for a possible challenge. It compares whole 4/2/1-byte loads, so it
// is false (userspace decides) when the payload ends inside a load, and true at the latest 3
// bytes after the first byte that differs; also false for unwalked headers as above.
// Throws std::invalid_argument naming the value if: `methods` is empty or holds a method that is
// not 3+ RFC 9110 tchars; two methods share their first 4 bytes of "METHOD "; `prefix` does not
// start with '/' or holds a byte outside visible ASCII; or the program would exceed
// kXtBpfMaxInstructions.
[[nodiscard]] std::vector<BpfInsn> build_prefilter(
    Family family, std::span<const std::string_view> methods = kDefaultChallengeMethods,
    std::string_view prefix = kDefaultChallengePrefix);

// TLS endpoints: returns a program that is true (1) only when the TCP payload is non-empty and
// either cannot start a ClientHello (not a handshake record, or a handshake record whose first
// message is not a ClientHello), or holds a whole ClientHello: its handshake message ends within
// the first record and that record ends within this segment. The rule pairs it with
// `-m string ! --string acme-tls/1` (xt_string), so together they pass only segments that
// cannot carry an acme-tls/1 hello. False for unwalked headers, as above.
[[nodiscard]] std::vector<BpfInsn> build_tls_prefilter(Family family);

// Returns the xt_bpf --bytecode argument for `prog`: "N,code jt jf k,code jt jf k,..." in
// decimal, the format `nfbpf_compile` prints.
[[nodiscard]] std::string to_xt_bytecode(std::span<const BpfInsn> prog);

}  // namespace acmegw::packet
