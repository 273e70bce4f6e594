// Decisions per second for the shapes the gateway sees first: a browser's first segment, the
// Let's Encrypt validation request, and TLS ClientHellos. Goal: < 250 ns per decision, one core.
// Run: build/release/tests/bench/bench_classify --benchmark_repetitions=5
//        --benchmark_report_aggregates_only
#include <cstdint>
#include <string>
#include <string_view>

#include <benchmark/benchmark.h>

#include "classifier/classify.hpp"
#include "tests/unit/classifier/http_vectors.hpp"

namespace {

namespace cls = acmegw::classifier;

// Appends big-endian integers and length-prefixed vectors, TLS presentation style.
struct Wire {
  std::string b;
  void u8(unsigned v) { b += static_cast<char>(v & 0xff); }
  void u16(unsigned v) {
    u8(v >> 8);
    u8(v);
  }
  void u24(unsigned v) {
    u8(v >> 16);
    u16(v & 0xffff);
  }
  void bytes(std::size_t n, char fill) { b.append(n, fill); }
  void raw(std::string_view s) { b += s; }
  // Extension: type(2) length(2) body.
  void ext(unsigned type, const std::string& body) {
    u16(type);
    u16(static_cast<unsigned>(body.size()));
    raw(body);
  }
};

std::string alpn_body(std::initializer_list<std::string_view> names) {
  Wire list;
  for (const auto n : names) {
    list.u8(static_cast<unsigned>(n.size()));
    list.raw(n);
  }
  Wire w;
  w.u16(static_cast<unsigned>(list.b.size()));  // ProtocolNameList length
  w.raw(list.b);
  return w.b;
}

// A TLS 1.3 ClientHello in one record, shaped like Chrome's (16 suites, a 1216-byte
// X25519MLKEM768 key share, ~1.8 KiB) or like Go's crypto/tls ACME validator (small), with the
// ALPN extension last so the parser walks every extension.
std::string client_hello(std::string_view sni, const std::string& alpn, bool post_quantum) {
  Wire exts;
  {
    Wire sn;                                        // server_name (RFC 6066 §3)
    sn.u16(static_cast<unsigned>(sni.size() + 3));  //   ServerNameList length
    sn.u8(0);                                       //   name_type host_name
    sn.u16(static_cast<unsigned>(sni.size()));      //   HostName length
    sn.raw(sni);
    exts.ext(0, sn.b);
  }
  exts.ext(23, "");                         // extended_master_secret
  exts.ext(65281, std::string("\x00", 1));  // renegotiation_info
  exts.ext(10, std::string("\x00\x08\x11\xec\x00\x1d\x00\x17\x00\x18", 10));  // supported_groups
  exts.ext(11, std::string("\x01\x00", 2));                                   // ec_point_formats
  exts.ext(35, "");                                                           // session_ticket
  exts.ext(13, std::string(2 + 16, '\x04'));             // signature_algorithms (8 schemes)
  exts.ext(43, std::string("\x04\x03\x04\x03\x03", 5));  // supported_versions: 1.3, 1.2
  exts.ext(45, std::string("\x01\x01", 2));              // psk_key_exchange_modes: psk_dhe_ke
  {
    Wire ks;  // key_share (RFC 8446 §4.2.8)
    Wire shares;
    if (post_quantum) {
      shares.u16(0x11ec);  //   X25519MLKEM768
      shares.u16(1216);
      shares.bytes(1216, '\x42');
    }
    shares.u16(0x001d);  //   x25519
    shares.u16(32);
    shares.bytes(32, '\x24');
    ks.u16(static_cast<unsigned>(shares.b.size()));
    ks.raw(shares.b);
    exts.ext(51, ks.b);
  }
  exts.ext(16, alpn);  // ALPN (RFC 7301), last on purpose

  Wire body;
  body.u16(0x0303);        // legacy_version TLS 1.2
  body.bytes(32, '\x11');  // random
  body.u8(32);             // legacy_session_id
  body.bytes(32, '\x22');
  body.u16(32);  // cipher_suites: 16 suites
  body.bytes(32, '\x13');
  body.u8(1);  // legacy_compression_methods: null
  body.u8(0);
  body.u16(static_cast<unsigned>(exts.b.size()));  // extensions
  body.raw(exts.b);

  Wire hs;
  hs.u8(1);  // msg_type client_hello
  hs.u24(static_cast<unsigned>(body.b.size()));
  hs.raw(body.b);
  Wire rec;
  rec.u8(22);       // content_type handshake
  rec.u16(0x0301);  // legacy_record_version
  rec.u16(static_cast<unsigned>(hs.b.size()));
  rec.raw(hs.b);
  return rec.b;
}

void run(benchmark::State& state, std::string_view wire, cls::Protocol proto,
         cls::Decision expected) {
  const auto bytes = std::as_bytes(std::span{wire.data(), wire.size()});
  for (auto _ : state) {
    const auto c = cls::classify(bytes, proto);
    benchmark::DoNotOptimize(c.decision);
    if (c.decision != expected) {
      state.SkipWithError("unexpected decision");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());  // items/s = decisions per second
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
}

void BM_HttpBrowserFirstSegment(benchmark::State& state) {
  run(state, acmegw::test::kChrome, cls::Protocol::Http, cls::Decision::Production);
}
void BM_HttpLetsEncrypt(benchmark::State& state) {
  run(state, acmegw::test::kLetsEncrypt, cls::Protocol::Http, cls::Decision::Challenge);
}
void BM_TlsAcmeValidatorHello(benchmark::State& state) {
  static const std::string hello =
      client_hello("www.example.com", alpn_body({"acme-tls/1"}), false);
  run(state, hello, cls::Protocol::Tls, cls::Decision::Challenge);
}
void BM_TlsChromeHello(benchmark::State& state) {
  static const std::string hello =
      client_hello("www.example.com", alpn_body({"h2", "http/1.1"}), true);
  run(state, hello, cls::Protocol::Tls, cls::Decision::Production);
}

BENCHMARK(BM_HttpBrowserFirstSegment);
BENCHMARK(BM_HttpLetsEncrypt);
BENCHMARK(BM_TlsAcmeValidatorHello);
BENCHMARK(BM_TlsChromeHello);

}  // namespace

BENCHMARK_MAIN();
