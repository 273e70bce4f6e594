#pragma once
// Real ClientHellos for the classifier tests: OpenSSL's SSL_connect on memory BIOs, the bytes it
// writes captured before any server answers. Plus helpers to re-frame them into many records.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/bio.h>
#include <openssl/ssl.h>

namespace acmegw::test {

struct HelloOptions {
  std::string sni;                // empty: no server_name extension
  std::vector<std::string> alpn;  // empty: no ALPN extension
  bool tls12_only = false;        // max version TLS 1.2 (no key_share, supported_versions)
  std::size_t padding_ext = 0;    // bytes of an extra (unknown) extension, to grow the hello
};

// The first flight OpenSSL sends as a client with `o`: one handshake record with a ClientHello.
inline std::string client_hello(const HelloOptions& o) {
  const std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{SSL_CTX_new(TLS_client_method()),
                                                              &SSL_CTX_free};
  if (!ctx) {
    throw std::runtime_error("SSL_CTX_new failed");
  }
  if (o.tls12_only) {
    SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
  }
  static std::string padding;  // the callback below hands OpenSSL a pointer into it
  padding.assign(o.padding_ext, '\x5a');
  if (o.padding_ext > 0) {
    const auto add = [](SSL*, unsigned, const unsigned char** out, size_t* outlen, int*,
                        void*) -> int {
      *out = reinterpret_cast<const unsigned char*>(padding.data());
      *outlen = padding.size();
      return 1;
    };
    SSL_CTX_add_client_custom_ext(ctx.get(), 0x1234, add, nullptr, nullptr, nullptr, nullptr);
  }
  const std::unique_ptr<SSL, decltype(&SSL_free)> ssl{SSL_new(ctx.get()), &SSL_free};
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);  // ssl owns both BIOs now
  if (!o.sni.empty()) {
    SSL_set_tlsext_host_name(ssl.get(), o.sni.c_str());
  }
  if (!o.alpn.empty()) {
    std::string wire;
    for (const auto& p : o.alpn) {
      wire += static_cast<char>(p.size());
      wire += p;
    }
    SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  SSL_set_connect_state(ssl.get());
  if (SSL_do_handshake(ssl.get()) != -1 || SSL_get_error(ssl.get(), -1) != SSL_ERROR_WANT_READ) {
    throw std::runtime_error("SSL_do_handshake did not stop for the server's answer");
  }
  std::string out(BIO_ctrl_pending(wbio), '\0');
  BIO_read(wbio, out.data(), static_cast<int>(out.size()));
  return out;
}

// Re-frames the handshake bytes of `records` (one or more handshake records) into records
// carrying at most `fragment` bytes each, as a TLS stack may legally do (RFC 8446 §5.1).
inline std::string refragment(const std::string& records, std::size_t fragment) {
  std::string handshake;
  for (std::size_t off = 0; off + 5 <= records.size();) {
    const std::size_t len = static_cast<std::uint8_t>(records[off + 3]) << 8 |
                            static_cast<std::uint8_t>(records[off + 4]);
    handshake += records.substr(off + 5, len);
    off += 5 + len;
  }
  std::string out;
  for (std::size_t off = 0; off < handshake.size(); off += fragment) {
    const std::size_t n = std::min(fragment, handshake.size() - off);
    out += "\x16\x03\x01";  // handshake, legacy_record_version TLS 1.0 (as OpenSSL sends)
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
    out += handshake.substr(off, n);
  }
  return out;
}

}  // namespace acmegw::test
