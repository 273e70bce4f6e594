#include "gateway/packet/prefilter.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace acmegw::packet {
namespace {

// Classic BPF opcodes (values from <linux/filter.h>, identical in libpcap's <pcap/bpf.h>),
// spelled out here so this pure target needs neither header.
namespace op {
constexpr std::uint16_t kLdW = 0x00;      // BPF_LD | BPF_W
constexpr std::uint16_t kLdH = 0x08;      // BPF_LD | BPF_H
constexpr std::uint16_t kLdB = 0x10;      // BPF_LD | BPF_B
constexpr std::uint16_t kAbs = 0x20;      // BPF_ABS: A = pkt[k]
constexpr std::uint16_t kInd = 0x40;      // BPF_IND: A = pkt[X + k]
constexpr std::uint16_t kLdxMshB = 0xb1;  // BPF_LDX | BPF_B | BPF_MSH: X = 4 * (pkt[k] & 0xf)
constexpr std::uint16_t kAddK = 0x04;     // BPF_ALU | BPF_ADD | BPF_K
constexpr std::uint16_t kAddX = 0x0c;     // BPF_ALU | BPF_ADD | BPF_X
constexpr std::uint16_t kOrK = 0x44;      // BPF_ALU | BPF_OR | BPF_K
constexpr std::uint16_t kAndK = 0x54;     // BPF_ALU | BPF_AND | BPF_K
constexpr std::uint16_t kRshK = 0x74;     // BPF_ALU | BPF_RSH | BPF_K
constexpr std::uint16_t kJa = 0x05;       // BPF_JMP | BPF_JA
constexpr std::uint16_t kJeqK = 0x15;     // BPF_JMP | BPF_JEQ | BPF_K
constexpr std::uint16_t kJsetK = 0x45;    // BPF_JMP | BPF_JSET | BPF_K
constexpr std::uint16_t kRetK = 0x06;     // BPF_RET | BPF_K
constexpr std::uint16_t kClassMask = 0x07;
constexpr std::uint16_t kJmpClass = 0x05;  // BPF_JMP
constexpr std::uint16_t kLdLen = 0x80;     // BPF_LD | BPF_W | BPF_LEN: A = packet length
constexpr std::uint16_t kLdMem = 0x60;     // BPF_LD | BPF_MEM: A = M[k]
constexpr std::uint16_t kLdxMem = 0x61;    // BPF_LDX | BPF_MEM: X = M[k]
constexpr std::uint16_t kSt = 0x02;        // BPF_ST: M[k] = A
constexpr std::uint16_t kStx = 0x03;       // BPF_STX: M[k] = X
constexpr std::uint16_t kJgeX = 0x3d;      // BPF_JMP | BPF_JGE | BPF_X
constexpr std::uint16_t kTax = 0x07;       // BPF_MISC | BPF_TAX
constexpr std::uint16_t kTxa = 0x87;       // BPF_MISC | BPF_TXA
}  // namespace op

constexpr std::uint32_t kNoMatch = 0;
constexpr std::uint32_t kMatch = 1;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint32_t kIpv6Header = 40;

// A forward-only assembler: jumps name labels (or kNext, the following instruction), resolved
// to 8-bit offsets by finish().
class Assembler {
 public:
  using Label = std::size_t;
  static constexpr Label kNext = std::numeric_limits<std::size_t>::max();

  Label label() {
    bound_.push_back(kUnbound);
    return bound_.size() - 1;
  }
  void bind(Label l) { bound_.at(l) = code_.size(); }
  void stmt(std::uint16_t code, std::uint32_t k) {
    code_.push_back({{code, 0, 0, k}, kNext, kNext});
  }
  void jump(std::uint16_t code, std::uint32_t k, Label jt, Label jf) {
    code_.push_back({{code, 0, 0, k}, jt, jf});
  }
  void ja(Label to) { code_.push_back({{op::kJa, 0, 0, 0}, to, kNext}); }

  // Resolves every label; throws std::invalid_argument if the program is longer than xt_bpf
  // accepts. A backward or unbound jump is a generator bug (std::logic_error).
  [[nodiscard]] std::vector<BpfInsn> finish() const {
    if (code_.size() > kXtBpfMaxInstructions) {
      throw std::invalid_argument("prefilter: the program needs " + std::to_string(code_.size()) +
                                  " instructions, xt_bpf accepts at most " +
                                  std::to_string(kXtBpfMaxInstructions));
    }
    std::vector<BpfInsn> out;
    out.reserve(code_.size());
    for (std::size_t i = 0; i < code_.size(); ++i) {
      BpfInsn insn = code_[i].insn;
      if (insn.code == op::kJa) {
        insn.k = offset(i, code_[i].jt);
      } else if ((insn.code & op::kClassMask) == op::kJmpClass) {  // conditional jump
        insn.jt = static_cast<std::uint8_t>(offset(i, code_[i].jt));
        insn.jf = static_cast<std::uint8_t>(offset(i, code_[i].jf));
      }
      out.push_back(insn);
    }
    return out;
  }

 private:
  static constexpr std::size_t kUnbound = std::numeric_limits<std::size_t>::max();

  struct Pending {
    BpfInsn insn;
    Label jt;
    Label jf;
  };

  [[nodiscard]] std::uint32_t offset(std::size_t from, Label to) const {
    if (to == kNext) {
      return 0;
    }
    const std::size_t target = bound_.at(to);
    // Offsets fit: finish() caps the program at 64 instructions, below the 8-bit jt/jf range.
    if (target == kUnbound || target <= from) {
      throw std::logic_error("prefilter: unresolvable jump");
    }
    return static_cast<std::uint32_t>(target - from - 1);
  }

  std::vector<Pending> code_;
  std::vector<std::size_t> bound_;
};
using Label = Assembler::Label;

// Prologue of both programs: leaves X = offset of the TCP payload from the network header.
// Packets whose TCP header is not where this expects jump to `unwalkable`.
void emit_payload_offset(Assembler& a, Family family, Label unwalkable) {
  if (family == Family::V4) {
    // Fragments: the TCP header is only in the first one. (In PREROUTING conntrack has already
    // reassembled them; this keeps the program right without relying on that.)
    a.stmt(op::kLdH | op::kAbs, 6);                            // flags + fragment offset
    a.jump(op::kJsetK, 0x3fff, unwalkable, Assembler::kNext);  // MF or offset; DF is fine
    a.stmt(op::kLdB | op::kAbs, 9);                            // protocol
    a.jump(op::kJeqK, kProtoTcp, Assembler::kNext, unwalkable);
    a.stmt(op::kLdxMshB, 0);          // X = IP header length (IHL * 4), options included
    a.stmt(op::kLdB | op::kInd, 12);  // TCP data offset in the high nibble
  } else {
    // Fixed header only: with an extension header the TCP header is elsewhere.
    a.stmt(op::kLdB | op::kAbs, 6);  // next header
    a.jump(op::kJeqK, kProtoTcp, Assembler::kNext, unwalkable);
    a.stmt(op::kLdB | op::kAbs, kIpv6Header + 12);  // TCP data offset in the high nibble
  }
  a.stmt(op::kRshK, 2);
  a.stmt(op::kAndK, 0x3c);  // A = TCP header length (data offset * 4)
  if (family == Family::V4) {
    a.stmt(op::kAddX, 0);
  } else {
    a.stmt(op::kAddK, kIpv6Header);
  }
  a.stmt(op::kTax, 0);  // X = IP header + TCP header = payload offset
}

// Width of the next load when comparing s[i..]: the widest of 4/2/1 bytes that s still fills,
// so no load reaches past the bytes being compared (a payload that ends there still decides).
std::uint32_t chunk_at(std::string_view s, std::size_t i) noexcept {
  const std::size_t left = s.size() - i;
  return left >= 4 ? 4 : left >= 2 ? 2 : 1;
}

std::uint16_t load_op(std::uint32_t width) noexcept {
  return static_cast<std::uint16_t>((width == 4   ? op::kLdW
                                     : width == 2 ? op::kLdH
                                                  : op::kLdB) |
                                    op::kInd);
}

bool is_alpha(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

// s[i, i+width) as the big-endian value a load yields; with `fold`, letters in lower case.
std::uint32_t chunk_value(std::string_view s, std::size_t i, std::uint32_t width, bool fold) {
  std::uint32_t v = 0;
  for (std::size_t j = i; j < i + width; ++j) {
    const auto c = static_cast<unsigned char>(s[j]);
    v = (v << 8) | ((fold && is_alpha(s[j])) ? (c | 0x20U) : c);
  }
  return v;
}

// OR mask that folds the letters of s[i, i+width) to lower case (ASCII: one bit, 0x20, apart;
// c | 0x20 == 'h' holds for exactly 'h' and 'H').
std::uint32_t fold_mask(std::string_view s, std::size_t i, std::uint32_t width) {
  std::uint32_t m = 0;
  for (std::size_t j = i; j < i + width; ++j) {
    m = (m << 8) | (is_alpha(s[j]) ? 0x20U : 0U);
  }
  return m;
}

// Tests the loaded A against s[i, i+width) (folded if `fold`): jumps to `eq` or `ne`.
void emit_test(Assembler& a, std::string_view s, std::size_t i, std::uint32_t width, bool fold,
               Label eq, Label ne) {
  if (fold && fold_mask(s, i, width) != 0) {
    a.stmt(op::kOrK, fold_mask(s, i, width));
  }
  a.jump(op::kJeqK, chunk_value(s, i, width, fold), eq, ne);
}

// Compares payload[X + base + i ..] with s[i..] chunk by chunk; any difference jumps to
// `differ`, equality falls through. A chunk the payload does not fully hold aborts the program
// with 0 (no match): the safe answer for a payload that might still be a challenge.
void emit_compare(Assembler& a, std::string_view s, std::size_t from, bool fold, std::uint32_t base,
                  Label differ) {
  for (std::size_t i = from; i < s.size();) {
    const std::uint32_t w = chunk_at(s, i);
    a.stmt(load_op(w), base + static_cast<std::uint32_t>(i));
    emit_test(a, s, i, w, fold, Assembler::kNext, differ);
    i += w;
  }
}

bool is_tchar(char c) noexcept {
  return is_alpha(c) || (c >= '0' && c <= '9') ||
         std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

// "METHOD " for each method, validated (see build_prefilter's contract).
std::vector<std::string> request_line_heads(std::span<const std::string_view> methods) {
  if (methods.empty()) {
    throw std::invalid_argument("prefilter: no challenge methods");
  }
  std::vector<std::string> heads;
  for (const std::string_view m : methods) {
    if (m.size() < 3 || !std::all_of(m.begin(), m.end(), is_tchar)) {
      throw std::invalid_argument("prefilter: method '" + std::string{m} +
                                  "' is not a token of 3 or more characters");
    }
    std::string head = std::string{m} + ' ';
    for (const std::string& other : heads) {
      if (other.compare(0, 4, head, 0, 4) == 0) {
        throw std::invalid_argument("prefilter: methods '" + other.substr(0, other.size() - 1) +
                                    "' and '" + std::string{m} +
                                    "' share their first 4 bytes; the program dispatches on them");
      }
    }
    heads.push_back(std::move(head));
  }
  return heads;
}

void check_prefix(std::string_view prefix) {
  const bool visible =
      std::all_of(prefix.begin(), prefix.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (prefix.empty() || prefix.front() != '/' || !visible) {
    throw std::invalid_argument("prefilter: challenge prefix '" + std::string{prefix} +
                                "' must start with '/' and hold only visible ASCII");
  }
}

// The absolute-form target start, compared case-insensitively (RFC 9110 §4.2.3: the scheme is
// case-insensitive). "http" covers "https" too; the classifier decides between them.
constexpr std::string_view kAbsoluteScheme = "http";

}  // namespace

std::vector<BpfInsn> build_payload_probe(Family family) {
  Assembler a;
  const Label yes = a.label();
  emit_payload_offset(a, family, yes);
  a.stmt(op::kLdB | op::kInd, 0);  // first payload byte: the load fails (-> 0) when there is none
  a.bind(yes);
  a.stmt(op::kRetK, kMatch);
  return a.finish();
}

std::vector<BpfInsn> build_prefilter(Family family, std::span<const std::string_view> methods,
                                     std::string_view prefix) {
  const std::vector<std::string> heads = request_line_heads(methods);
  check_prefix(prefix);

  Assembler a;
  const Label match = a.label();
  const Label no_match = a.label();
  emit_payload_offset(a, family, no_match);

  // Block 1: the first payload byte. Its load ends the program with 0 on an empty payload; a byte
  // no method starts with decides payloads of 1-3 bytes (too short for block 2's word load).
  std::string firsts;
  for (const std::string& h : heads) {
    if (firsts.find(h[0]) == std::string::npos) {
      firsts.push_back(h[0]);
    }
  }
  const Label word = a.label();
  a.stmt(op::kLdB | op::kInd, 0);
  for (std::size_t i = 0; i < firsts.size(); ++i) {
    const bool last = i + 1 == firsts.size();
    a.jump(op::kJeqK, static_cast<unsigned char>(firsts[i]), word, last ? match : Assembler::kNext);
  }

  // Block 2: the first word selects the method (methods differ in their first 4 bytes).
  a.bind(word);
  std::vector<Label> method_blocks;
  a.stmt(op::kLdW | op::kInd, 0);
  for (std::size_t i = 0; i < heads.size(); ++i) {
    const bool last = i + 1 == heads.size();
    method_blocks.push_back(a.label());
    a.jump(op::kJeqK, chunk_value(heads[i], 0, 4, false), method_blocks.back(),
           last ? match : Assembler::kNext);
  }

  // Block 3, one per method: the rest of "METHOD ", then X += its length so that one shared
  // block compares the request target whatever the method's length.
  const Label target = a.label();
  for (std::size_t i = 0; i < heads.size(); ++i) {
    a.bind(method_blocks[i]);
    emit_compare(a, heads[i], 4, false, 0, match);
    a.stmt(op::kTxa, 0);
    a.stmt(op::kAddK, static_cast<std::uint32_t>(heads[i].size()));
    a.stmt(op::kTax, 0);
    if (i + 1 < heads.size()) {
      a.ja(target);
    }
  }

  // Block 4: the request target. Its first chunk is either the prefix's (origin form) or, folded
  // to lower case, the scheme's (absolute form: a possible challenge, left to userspace).
  a.bind(target);
  const std::uint32_t w0 = chunk_at(prefix, 0);
  const Label rest_of_prefix = a.label();
  a.stmt(load_op(w0), 0);
  emit_test(a, prefix, 0, w0, false, rest_of_prefix, Assembler::kNext);
  const bool scheme_done = w0 == kAbsoluteScheme.size();
  const Label rest_of_scheme = scheme_done ? no_match : a.label();
  emit_test(a, kAbsoluteScheme, 0, w0, true, rest_of_scheme, match);
  if (!scheme_done) {
    a.bind(rest_of_scheme);
    emit_compare(a, kAbsoluteScheme, w0, true, 0, match);
    a.ja(no_match);
  }
  a.bind(rest_of_prefix);
  emit_compare(a, prefix, w0, false, 0, match);

  // Every compared byte agrees with a challenge line: leave the segment to userspace.
  a.bind(no_match);
  a.stmt(op::kRetK, kNoMatch);
  a.bind(match);
  a.stmt(op::kRetK, kMatch);
  return a.finish();
}

std::vector<BpfInsn> build_tls_prefilter(Family family) {
  // TLS record and handshake header offsets in the payload (RFC 8446 §5.1, §4).
  constexpr std::uint32_t kContentType = 0;   // 22 = handshake
  constexpr std::uint32_t kRecordLength = 3;  // 2 bytes
  constexpr std::uint32_t kRecordHeader = 5;
  constexpr std::uint32_t kHandshakeType = 5;    // 1 = ClientHello
  constexpr std::uint32_t kHandshakeLength = 6;  // 3 bytes: the high one, then the low two
  constexpr std::uint32_t kHandshakeHeader = 4;
  constexpr std::uint32_t kSlotPayloadOffset = 0;  // scratch memory
  constexpr std::uint32_t kSlotRecordLength = 1;

  Assembler a;
  const Label match = a.label();
  const Label no_match = a.label();
  emit_payload_offset(a, family, no_match);
  a.stmt(op::kStx, kSlotPayloadOffset);
  // Not a handshake record, or a handshake that does not start with a ClientHello: the
  // classifier sends it to production whatever follows. A load past the payload ends with 0.
  a.stmt(op::kLdB | op::kInd, kContentType);
  a.jump(op::kJeqK, 22, Assembler::kNext, match);
  a.stmt(op::kLdB | op::kInd, kHandshakeType);
  a.jump(op::kJeqK, 1, Assembler::kNext, match);
  // A ClientHello: only a whole one in the first record, the record whole in this segment,
  // lets the rule's string match rule out acme-tls/1. A hello of 64 KiB or more never fits.
  a.stmt(op::kLdB | op::kInd, kHandshakeLength);
  a.jump(op::kJeqK, 0, Assembler::kNext, no_match);
  a.stmt(op::kLdH | op::kInd, kRecordLength);
  a.stmt(op::kSt, kSlotRecordLength);
  a.stmt(op::kLdH | op::kInd, kHandshakeLength + 1);
  a.stmt(op::kAddK, kHandshakeHeader);
  a.stmt(op::kTax, 0);  // X = record bytes the ClientHello needs
  a.stmt(op::kLdMem, kSlotRecordLength);
  a.jump(op::kJgeX, 0, Assembler::kNext, no_match);
  a.stmt(op::kAddK, kRecordHeader);
  a.stmt(op::kLdxMem, kSlotPayloadOffset);
  a.stmt(op::kAddX, 0);
  a.stmt(op::kTax, 0);  // X = where the first record ends, from the network header
  a.stmt(op::kLdLen, 0);
  a.jump(op::kJgeX, 0, match, no_match);
  a.bind(no_match);
  a.stmt(op::kRetK, kNoMatch);
  a.bind(match);
  a.stmt(op::kRetK, kMatch);
  return a.finish();
}

std::string to_xt_bytecode(std::span<const BpfInsn> prog) {
  std::string out = std::to_string(prog.size());
  for (const BpfInsn& i : prog) {
    out += ',';
    out += std::to_string(i.code) + ' ' + std::to_string(i.jt) + ' ' + std::to_string(i.jf) + ' ' +
           std::to_string(i.k);
  }
  return out;
}

}  // namespace acmegw::packet
