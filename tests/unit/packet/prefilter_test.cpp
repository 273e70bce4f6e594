// The generated xt_bpf programs, run in userspace by libpcap's bpf_filter() over crafted
// packets. libpcap, like the kernel, ends a program with 0 when a load reaches past the buffer,
// and the buffers here end at the IP length, as the skb does in PREROUTING.
//
// The reference is a spec-level oracle, independent of how the program is laid out: a payload is
// "compatible" while it agrees with some METHOD SP prefix / METHOD SP "http" (any case) line for
// as many bytes as both have. Then for every prefix of every input:
//   * compatible                      -> the prefilter does not match (never a challenge passed);
//   * not compatible since byte d - 1 -> it matches from length d + 3 on (loads are <= 4 bytes);
//   * it matches                      -> the real classifier already says Production.
#include <catch2/catch.hpp>

#include <sys/types.h>  // u_int, u_char: <pcap/bpf.h> expects them

#include <pcap/bpf.h>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "classifier/classify.hpp"
#include "classifier/tls_hello.hpp"
#include "gateway/packet/prefilter.hpp"
#include "packet/segment_builder.hpp"

namespace {

using namespace std::string_view_literals;
using acmegw::packet::BpfInsn;
using acmegw::packet::build_payload_probe;
using acmegw::packet::build_prefilter;
using acmegw::packet::build_tls_prefilter;
using acmegw::packet::Family;
using acmegw::packet::kDefaultChallengePrefix;
using acmegw::packet::to_xt_bytecode;
using acmegw::test::Segment;
namespace classifier = acmegw::classifier;

// A generated program converted once to libpcap's instruction type.
struct Program {
  explicit Program(const std::vector<BpfInsn>& prog) {
    for (const BpfInsn& i : prog) {
      code.push_back({i.code, i.jt, i.jf, i.k});
    }
  }
  // Runs the program over `pkt` (network header first) the way xt_bpf does; non-zero = match.
  [[nodiscard]] unsigned run(const std::vector<std::byte>& pkt) const {
    const auto len = static_cast<u_int>(pkt.size());
    return bpf_filter(code.data(), reinterpret_cast<const u_char*>(pkt.data()), len, len);
  }
  [[nodiscard]] bool valid() const {
    return bpf_validate(code.data(), static_cast<int>(code.size())) != 0;
  }
  std::vector<bpf_insn> code;
};

unsigned run(const std::vector<BpfInsn>& prog, const std::vector<std::byte>& pkt) {
  return Program{prog}.run(pkt);
}
bool valid(const std::vector<BpfInsn>& prog) {
  return Program{prog}.valid();
}

// Header shapes every payload is tried under.
struct Layout {
  const char* description;
  Family family;
  std::vector<std::uint8_t> ip_options;
  std::vector<std::uint8_t> tcp_options;
};

const std::vector<std::uint8_t> kTimestamps = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};  // 12 bytes
const std::vector<std::uint8_t> kRouterAlert = {0x94, 4, 0, 0};
std::vector<std::uint8_t> nops(std::size_t n) {
  return std::vector<std::uint8_t>(n, 1);
}

const std::vector<Layout>& layouts() {
  static const std::vector<Layout> l = {
      {"v4, TCP 20", Family::V4, {}, {}},
      {"v4 + IP option, TCP 32 (timestamps)", Family::V4, kRouterAlert, kTimestamps},
      {"v4 + 40 bytes of IP options, TCP 60", Family::V4, nops(40), nops(40)},
      {"v6, TCP 20", Family::V6, {}, {}},
      {"v6, TCP 32 (timestamps)", Family::V6, {}, kTimestamps},
      {"v6, TCP 60", Family::V6, {}, nops(40)},
  };
  return l;
}

std::vector<std::byte> packet(const Layout& l, std::string_view payload) {
  Segment s;
  s.family = l.family;
  s.ip_options = l.ip_options;
  s.tcp_options = l.tcp_options;
  s.payload = payload;
  return acmegw::test::build(s);
}

// The spec the prefilter implements, for any methods and prefix.
struct Spec {
  std::vector<std::string> heads{"GET ", "HEAD "};  // "METHOD " per method
  std::string prefix{kDefaultChallengePrefix};

  // Whether `p` agrees with a challenge request line start for as many bytes as both have.
  [[nodiscard]] bool compatible(std::string_view p) const {
    const auto fold = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
    };
    for (const std::string& head : heads) {
      const std::size_t n = std::min(p.size(), head.size());
      if (p.substr(0, n) != std::string_view{head}.substr(0, n)) {
        continue;
      }
      const std::string_view rest = p.substr(n);
      const std::size_t np = std::min(rest.size(), prefix.size());
      if (rest.substr(0, np) == std::string_view{prefix}.substr(0, np)) {
        return true;
      }
      const std::size_t ns = std::min(rest.size(), std::size_t{4});
      bool scheme = true;
      for (std::size_t i = 0; i < ns; ++i) {
        scheme = scheme && fold(rest[i]) == "http"[i];
      }
      if (scheme) {
        return true;
      }
    }
    return false;
  }
};

classifier::Decision classify(std::string_view p) {
  return classifier::classify(std::as_bytes(std::span{p.data(), p.size()}),
                              classifier::Protocol::Http)
      .decision;
}

// Checks the three properties of the file comment for every prefix of `payload` under `layout`;
// `check_classifier` only applies to the default methods and prefix (what the classifier knows).
void check_all_prefixes(const Program& prog, const Spec& spec, const Layout& layout,
                        std::string_view payload, bool check_classifier) {
  std::size_t d = std::string_view::npos;  // smallest n with payload[0, n) not compatible
  bool matched_before = false;
  for (std::size_t n = 0; n <= payload.size(); ++n) {
    const std::string_view p = payload.substr(0, n);
    const bool compatible = d == std::string_view::npos && spec.compatible(p);
    if (!compatible && d == std::string_view::npos) {
      d = n;
    }
    const bool match = prog.run(packet(layout, p)) != 0;
    // Catch is only called on a failure: CAPTURE on every prefix would dominate the run time.
    const char* broken = nullptr;
    if (match && compatible) {
      broken = "matched a payload that may start a challenge";
    } else if (!match && d != std::string_view::npos && n >= d + 3) {
      broken = "no match 3 bytes after the payload stopped being compatible";
    } else if (!match && matched_before) {
      broken = "a longer payload undid a match";
    } else if (match && check_classifier && classify(p) != classifier::Decision::Production) {
      broken = "matched, but the classifier is not decided on production";
    }
    if (broken != nullptr) {
      CAPTURE(layout.description, p, d);
      FAIL(broken);
    }
    matched_before = match;
  }
  SUCCEED();
}

const std::vector<std::string_view> kChallengeLines = {
    "GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0 HTTP/1.1\r\n"
    "Host: example.org\r\n\r\n"sv,
    "HEAD /.well-known/acme-challenge/tok_en-1 HTTP/1.0\r\n\r\n"sv,
    "GET http://example.org/.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n"sv,
    "GET HTTP://example.org/.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n"sv,
    "HEAD hTtP://example.org:80/.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n"sv,
};

const std::vector<std::string_view> kProductionPayloads = {
    "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"sv,
    "GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n"sv,
    "HEAD /favicon.ico HTTP/1.1\r\n\r\n"sv,
    "POST /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n"sv,
    "PUT /upload HTTP/1.1\r\n\r\n"sv,
    "get /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n"sv,  // methods are case-sensitive
    "GET /.well-known/acme-challengX/tok HTTP/1.1\r\n\r\n"sv,  // last word of the prefix
    "GET /.well-known/acme-challenge HTTP/1.1\r\n\r\n"sv,      // no trailing slash
    "HEAD /.well-known/acme-challenge HTTP/1.1\r\n\r\n"sv,     // HEAD's last byte load
    "GET /.well-known/openid-configuration HTTP/1.1\r\n\r\n"sv,
    "GET ftp://example.org/ HTTP/1.1\r\n\r\n"sv,
    "GET  /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n"sv,  // two spaces
    "HEAD\t/.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n"sv,
    "\r\nGET /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n"sv,  // leading empty line
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"sv,                          // HTTP/2 preface
    "SSH-2.0-OpenSSH_9.6\r\n"sv,
    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"sv,  // TLS ClientHello start
    "\x00\x00\x00\x00\xff\xff\xff\xff"sv,              // binary
    "G"sv,
    "GE"sv,
    "GET"sv,
    "H"sv,
    "X"sv,
    "XY"sv,
    "XYZ"sv,  // 1-3 byte payloads
};

}  // namespace

TEST_CASE("prefilter: instruction counts and validity of the default programs",
          "[packet][prefilter]") {
  // Pinned: docs/prefilter.md quotes these numbers.
  CHECK(build_prefilter(Family::V4).size() == 43);
  CHECK(build_prefilter(Family::V6).size() == 40);
  CHECK(build_payload_probe(Family::V4).size() == 12);
  CHECK(build_payload_probe(Family::V6).size() == 9);
  for (const Family f : {Family::V4, Family::V6}) {
    CHECK(valid(build_prefilter(f)));
    CHECK(valid(build_payload_probe(f)));
  }
}

TEST_CASE("prefilter: v6 payload probe, instruction by instruction", "[packet][prefilter]") {
  // Decoded by libpcap, so the opcodes are checked against an independent table.
  const auto prog = build_payload_probe(Family::V6);
  std::vector<bpf_insn> code;
  for (const BpfInsn& i : prog) {
    code.push_back({i.code, i.jt, i.jf, i.k});
  }
  std::vector<std::string> listing;
  for (std::size_t n = 0; n < code.size(); ++n) {
    listing.emplace_back(bpf_image(&code[n], static_cast<int>(n)));
  }
  const std::vector<std::string> expected = {
      "(000) ldb      [6]",                          // next header
      "(001) jeq      #0x6             jt 2\tjf 8",  // TCP, else ret #1 (userspace decides)
      "(002) ldb      [52]",                         // TCP data offset byte
      "(003) rsh      #2",
      "(004) and      #0x3c",    // TCP header length
      "(005) add      #40",      // + fixed IPv6 header
      "(006) tax      ",         // X = payload offset
      "(007) ldb      [x + 0]",  // first payload byte; fails -> 0 when empty
      "(008) ret      #1",
  };
  CHECK(listing == expected);
  CHECK(to_xt_bytecode(prog) ==
        "9,48 0 0 6,21 0 6 6,48 0 0 52,116 0 0 2,84 0 0 60,4 0 0 40,7 0 0 0,80 0 0 0,6 0 0 1");
}

TEST_CASE("prefilter: challenge lines never match, at any length, in any layout",
          "[packet][prefilter]") {
  const Spec spec;
  for (const auto& layout : layouts()) {
    const auto prog = build_prefilter(layout.family);
    const auto probe = build_payload_probe(layout.family);
    for (const std::string_view line : kChallengeLines) {
      REQUIRE(classify(line) == classifier::Decision::Challenge);  // the inputs are what we think
      for (std::size_t n = 0; n <= line.size(); ++n) {
        CAPTURE(layout.description, line.substr(0, n));
        const auto pkt = packet(layout, line.substr(0, n));
        CHECK(run(prog, pkt) == 0);
        CHECK((run(probe, pkt) != 0) == (n > 0));
      }
    }
  }
}

TEST_CASE("prefilter: production payloads match once enough bytes differ", "[packet][prefilter]") {
  const Spec spec;
  for (const auto& layout : layouts()) {
    const Program prog{build_prefilter(layout.family)};
    const auto probe = build_payload_probe(layout.family);
    for (const std::string_view payload : kProductionPayloads) {
      check_all_prefixes(prog, spec, layout, payload, true);
      CHECK(run(probe, packet(layout, payload)) != 0);
    }
    // Full requests that differ within the prefix are decided in the kernel.
    CHECK(prog.run(packet(layout, "GET /index.html HTTP/1.1\r\n\r\n")) != 0);
    CHECK(prog.run(packet(layout, "HEAD /.well-known/acme-challenge HTTP/1.1\r\n\r\n")) != 0);
  }
}

TEST_CASE("prefilter: segments the program does not walk go to userspace", "[packet][prefilter]") {
  const std::string_view production = "GET /index.html HTTP/1.1\r\n\r\n";
  Segment ext;  // IPv6 with a destination options header before TCP
  ext.family = Family::V6;
  ext.protocol = 60;
  ext.v6_ext = {6, 0, 1, 4, 0, 0, 0, 0};  // next header TCP | length 0 | PadN(4)
  ext.payload = production;
  Segment first_fragment;  // IPv4 MF, offset 0
  first_fragment.frag = 0x2000;
  first_fragment.payload = production;
  Segment later_fragment;  // IPv4 offset 8 bytes
  later_fragment.frag = 0x0001;
  later_fragment.payload = production;
  for (const Segment* s : {&ext, &first_fragment, &later_fragment}) {
    CAPTURE(s->family == Family::V4, s->frag);
    const auto pkt = acmegw::test::build(*s);
    CHECK(run(build_prefilter(s->family), pkt) == 0);
    CHECK(run(build_payload_probe(s->family), pkt) != 0);
  }
}

TEST_CASE("prefilter: pure ACKs, SYNs and FINs carry no payload", "[packet][prefilter]") {
  for (const auto& layout : layouts()) {
    CAPTURE(layout.description);
    for (const std::uint8_t flags : {std::uint8_t{0x10}, std::uint8_t{0x02}, std::uint8_t{0x11}}) {
      Segment s;
      s.family = layout.family;
      s.ip_options = layout.ip_options;
      s.tcp_options = layout.tcp_options;
      s.flags = flags;
      const auto pkt = acmegw::test::build(s);
      CHECK(run(build_payload_probe(layout.family), pkt) == 0);
      CHECK(run(build_prefilter(layout.family), pkt) == 0);
    }
  }
}

TEST_CASE("prefilter: random mutations of request lines agree with the spec and the classifier",
          "[packet][prefilter]") {
  const Spec spec;
  std::mt19937 rng{20261124};  // fixed: failures reproduce
  const std::string_view alphabet = "GETHADPOSgethad /.-_:wlknocmhrgttpTPX\r\n\x00\xff"sv;
  std::vector<std::string_view> bases = kChallengeLines;
  bases.insert(bases.end(), kProductionPayloads.begin(), kProductionPayloads.end());
  std::vector<Program> progs;
  for (const auto& layout : layouts()) {
    progs.emplace_back(build_prefilter(layout.family));
  }
  for (int iter = 0; iter < 500; ++iter) {
    std::string p{bases[rng() % bases.size()]};
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !p.empty(); ++e) {
      const std::size_t at = rng() % p.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          p[at] = c;
          break;
        case 1:
          p.insert(p.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          p.erase(at, 1);
          break;
      }
    }
    p.resize(std::min<std::size_t>(p.size(), 48));  // past the prefix nothing is compared
    const std::size_t l = rng() % layouts().size();
    check_all_prefixes(progs[l], spec, layouts()[l], p, true);
  }
}

TEST_CASE("prefilter: other methods and prefixes follow the same spec", "[packet][prefilter]") {
  struct Config {
    std::vector<std::string_view> methods;
    std::string_view prefix;
  };
  const Config configs[] = {
      {{"GET"}, "/.well-known/acme-challenge/"},
      {{"OPTIONS", "GET", "HEAD"}, "/.well-known/acme-challenge/"},
      {{"GET", "HEAD"}, "/acme/"},  // 6 bytes: a word and a half
      {{"GET"}, "/a"},              // shorter than a word: the scheme is compared 2 + 2
      {{"HEAD"}, "/"},              // one byte: the scheme is compared 1 + 2 + 1
  };
  std::mt19937 rng{7};
  for (const Config& c : configs) {
    Spec spec;
    spec.heads.clear();
    for (const auto m : c.methods) {
      spec.heads.push_back(std::string{m} + ' ');
    }
    spec.prefix = c.prefix;
    for (const Family f : {Family::V4, Family::V6}) {
      const Program prog{build_prefilter(f, c.methods, c.prefix)};
      REQUIRE(prog.valid());
      const Layout& layout = layouts()[f == Family::V4 ? 1 : 4];
      std::vector<std::string> inputs;
      for (const auto m : c.methods) {
        inputs.push_back(std::string{m} + ' ' + std::string{c.prefix} + "tok HTTP/1.1\r\n");
        inputs.push_back(std::string{m} + " HtTp://x" + std::string{c.prefix} + "tok\r\n");
        inputs.push_back(std::string{m} + " /index.html HTTP/1.1\r\n");
        inputs.push_back(std::string{m} + " htTX://x/ HTTP/1.1\r\n");
      }
      for (int i = 0; i < 60; ++i) {  // random mutations of those
        std::string p = inputs[rng() % inputs.size()];
        p[rng() % p.size()] = "GETHADOPINS /ahtpTX"[rng() % 19];
        inputs.push_back(std::move(p));
      }
      for (const std::string& in : inputs) {
        check_all_prefixes(prog, spec, layout, in, false);
      }
    }
  }
}

TEST_CASE("prefilter: invalid methods and prefixes are refused with the value named",
          "[packet][prefilter]") {
  using Methods = std::vector<std::string_view>;
  const auto throws = [](Methods methods, std::string_view prefix, std::string_view needle) {
    CAPTURE(prefix, needle);
    try {
      (void)build_prefilter(Family::V4, methods, prefix);
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      CHECK_THAT(e.what(), Catch::Contains(std::string{needle}));
    }
  };
  throws({}, "/x/", "no challenge methods");
  throws({"GE"}, "/x/", "'GE'");
  throws({"G T"}, "/x/", "'G T'");
  throws({"GET", "GET"}, "/x/", "share their first 4 bytes");
  throws({"HEAD", "HEADX"}, "/x/", "'HEADX'");
  throws({"GET"}, "", "prefix ''");
  throws({"GET"}, "x/", "prefix 'x/'");
  throws({"GET"}, "/a b/", "prefix '/a b/'");
  throws({"GET"}, std::string(200, '/'), "at most 64");
  throws({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
          "PROPFIND", "MKCOL", "LOCK", "UNLOCK", "COPY", "MOVE", "SEARCH"},
         "/.well-known/acme-challenge/", "at most 64");
}

TEST_CASE("to_xt_bytecode: count, then code jt jf k in decimal", "[packet][prefilter]") {
  const std::vector<BpfInsn> prog = {
      {0x30, 0, 0, 9}, {0x15, 0, 1, 6}, {0x06, 0, 0, 1}, {0x06, 0, 0, 0}};
  CHECK(to_xt_bytecode(prog) == "4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0");  // nfbpf_compile's example
  CHECK(to_xt_bytecode({}) == "0");
}

namespace {

// The PFX-TLS rule 1: the tls prefilter program and `-m string ! --string acme-tls/1`.
bool tls_rule_passes(const Program& prog, const std::vector<std::byte>& pkt,
                     std::string_view payload) {
  return prog.run(pkt) != 0 && payload.find("acme-tls/1") == std::string_view::npos;
}

classifier::Decision classify_tls(std::string_view p) {
  return classifier::classify(std::as_bytes(std::span{p.data(), p.size()}),
                              classifier::Protocol::Tls)
      .decision;
}

std::vector<std::pair<std::string, std::string>> tls_hellos() {
  using acmegw::test::client_hello;
  using acmegw::test::HelloOptions;
  std::vector<std::pair<std::string, std::string>> h;
  h.emplace_back("acme-tls/1, TLS 1.3", client_hello({"a.example", {"acme-tls/1"}, false, 0}));
  h.emplace_back("acme-tls/1, TLS 1.2", client_hello({"a.example", {"acme-tls/1"}, true, 0}));
  h.emplace_back("acme-tls/1, 1.8 KiB", client_hello({"a.example", {"acme-tls/1"}, false, 1400}));
  h.emplace_back("browser h2", client_hello({"www.example", {"h2", "http/1.1"}, false, 0}));
  h.emplace_back("no ALPN", client_hello({"www.example", {}, false, 0}));
  h.emplace_back("acme-tls/1 + h2", client_hello({"a.example", {"acme-tls/1", "h2"}, false, 0}));
  h.emplace_back("h2, 1.8 KiB", client_hello({"www.example", {"h2"}, false, 1400}));
  return h;
}

}  // namespace

TEST_CASE("tls prefilter: an acme-tls/1 hello never passes, at any length, in any layout",
          "[packet][prefilter]") {
  for (const auto& layout : layouts()) {
    const Program prog{build_tls_prefilter(layout.family)};
    REQUIRE(prog.valid());
    for (const auto& [what, hello] : tls_hellos()) {
      const bool acme = hello.find("acme-tls/1") != std::string::npos;
      for (const std::string& framing :
           {hello, acmegw::test::refragment(hello, 100), acmegw::test::refragment(hello, 1)}) {
        if (classify_tls(framing) == classifier::Decision::Challenge) {
          for (std::size_t n = 0; n <= framing.size(); ++n) {
            const std::string_view p = std::string_view{framing}.substr(0, n);
            CAPTURE(layout.description, what, framing.size(), n);
            CHECK_FALSE(tls_rule_passes(prog, packet(layout, p), p));
          }
        }
      }
      // One whole record in one segment: decided in the kernel unless it names acme-tls/1.
      CAPTURE(layout.description, what);
      CHECK(tls_rule_passes(prog, packet(layout, hello), hello) == !acme);
      const std::string trailing = hello + "\x14\x03\x03\x00\x01\x01";  // + ChangeCipherSpec
      CHECK(tls_rule_passes(prog, packet(layout, trailing), trailing) == !acme);
      // Only a prefix, or a hello spread over records: left to userspace.
      const std::string_view half = std::string_view{hello}.substr(0, hello.size() / 2);
      CHECK_FALSE(tls_rule_passes(prog, packet(layout, half), half));
      const std::string split = acmegw::test::refragment(hello, hello.size() / 2);
      CHECK_FALSE(prog.run(packet(layout, split)) != 0);
    }
  }
}

TEST_CASE("tls prefilter: what cannot start a ClientHello passes; empty payloads never",
          "[packet][prefilter]") {
  for (const auto& layout : layouts()) {
    const Program prog{build_tls_prefilter(layout.family)};
    for (const std::string_view p :
         {"GET / HTTP/1.1\r\n\r\n"sv, "SSH-2.0-OpenSSH_9.2\r\n"sv, "\x15\x03\x03\x00\x02\x02\x28"sv,
          "\x16\x03\x03\x00\x04\x02\x00\x00\x00"sv /* ServerHello type */, "\x80"sv, "x"sv}) {
      CAPTURE(layout.description, p);
      REQUIRE(classify_tls(p) == classifier::Decision::Production);
      CHECK(tls_rule_passes(prog, packet(layout, p), p));
    }
    // A handshake record header alone, or a ClientHello header claiming 64 KiB or more.
    for (const std::string_view p : {"\x16"sv, "\x16\x03\x01\x00\xff"sv,
                                     "\x16\x03\x01\x00\x08\x01\x01\x00\x00\x00\x00\x00\x00"sv}) {
      CAPTURE(layout.description, p.size());
      CHECK(prog.run(packet(layout, p)) == 0);
    }
    Segment ack;
    ack.family = layout.family;
    ack.ip_options = layout.ip_options;
    ack.tcp_options = layout.tcp_options;
    CHECK(prog.run(acmegw::test::build(ack)) == 0);
  }
  Segment ext;  // IPv6 with a destination options header: not walked, left to userspace
  ext.family = Family::V6;
  ext.protocol = 60;
  ext.v6_ext = {6, 0, 1, 4, 0, 0, 0, 0};
  ext.payload = "GET / HTTP/1.1\r\n\r\n";
  CHECK(run(build_tls_prefilter(Family::V6), acmegw::test::build(ext)) == 0);
}
