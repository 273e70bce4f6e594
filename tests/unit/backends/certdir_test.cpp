// The certdir=DIR tls-alpn-01 backend over real files in dehydrated's ALPNCERTDIR layout.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <openssl/pem.h>

#include "backends/alpn_cert.hpp"
#include "backends/certdir.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
namespace bk = acmegw::backends;
using acmegw::test::TempDir;

namespace {

std::string pem_of(X509* x) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(b);
  return out;
}

std::string pem_of(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(b);
  return out;
}

// What dehydrated writes for `ident`: a certificate and its key.
std::shared_ptr<const bk::AlpnCertificate> write_pair(const TempDir& d, const std::string& stem,
                                                      const std::string& ident,
                                                      const std::string& keyauth) {
  const auto key = bk::generate_p256_key();
  std::string error;
  auto c = bk::make_alpn_certificate(key, *bk::parse_alpn_identifier(ident),
                                     bk::keyauth_digest(keyauth), error);
  REQUIRE(c);
  d.write(stem + ".crt.pem", pem_of(c->cert.get()));
  d.write(stem + ".key.pem", pem_of(c->key.get()));
  return c;
}

std::unique_ptr<bk::CertdirBackend> open(const TempDir& d, std::vector<std::string>* warnings) {
  std::string error;
  auto b = bk::CertdirBackend::create(
      d.path().string(), [warnings](const std::string& w) { warnings->push_back(w); }, error);
  INFO(error);
  REQUIRE(b);
  return b;
}

}  // namespace

TEST_CASE("certdir_file_stem: DNS names as they are, reverse names as IP literals",
          "[backends][certdir]") {
  CHECK(bk::certdir_file_stem("www.example.com") == "www.example.com");
  CHECK(bk::certdir_file_stem("7.2.0.192.in-addr.arpa") == "192.0.2.7");
  CHECK(bk::certdir_file_stem(
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa") ==
        "2001:db8::1");
  for (const std::string_view bad : {"", "../etc", ".hidden", "a/b", "A.example", "a b"}) {
    CAPTURE(bad);
    CHECK_FALSE(bk::certdir_file_stem(bad));
  }
}

TEST_CASE("CertdirBackend: serves the client's files, re-reads them when they change",
          "[backends][certdir]") {
  TempDir d;
  std::vector<std::string> warnings;
  const auto b = open(d, &warnings);
  CHECK(b->certificate("www.example.com") == nullptr);  // nothing written yet: a miss
  CHECK(b->misses() == 1);
  const auto written = write_pair(d, "www.example.com", "www.example.com", "a.thumb");
  const auto got = b->certificate("www.example.com");
  REQUIRE(got);
  CHECK(X509_cmp(got->cert.get(), written->cert.get()) == 0);
  CHECK(b->certificate("www.example.com") == got);  // unchanged files: the cached pair
  // A new challenge for the same name: the client rewrites both files.
  const auto again = write_pair(d, "www.example.com", "www.example.com", "b.thumb");
  fs::last_write_time(
      d.path() / "www.example.com.crt.pem",
      fs::last_write_time(d.path() / "www.example.com.crt.pem") + std::chrono::seconds{1});
  const auto fresh = b->certificate("www.example.com");
  REQUIRE(fresh);
  CHECK(X509_cmp(fresh->cert.get(), again->cert.get()) == 0);
  // IP identifiers: files named after the literal.
  write_pair(d, "192.0.2.7", "192.0.2.7", "c.thumb");
  CHECK(b->certificate("7.2.0.192.in-addr.arpa") != nullptr);
  CHECK(warnings.empty());
  CHECK(b->bad_files() == 0);
}

TEST_CASE("CertdirBackend: bad files are refused, counted and warned about; nothing escapes DIR",
          "[backends][certdir]") {
  TempDir d;
  TempDir outside;
  std::vector<std::string> warnings;
  const auto b = open(d, &warnings);
  write_pair(outside, "secret.example", "secret.example", "x.thumb");
  fs::create_symlink(outside.path() / "secret.example.crt.pem",
                     d.path() / "secret.example.crt.pem");
  fs::create_symlink(outside.path() / "secret.example.key.pem",
                     d.path() / "secret.example.key.pem");
  CHECK(b->certificate("secret.example") == nullptr);  // a symlink out of DIR: absent
  CHECK(b->bad_files() == 0);

  // A key that belongs to another certificate.
  const auto one = write_pair(d, "one.example", "one.example", "1.thumb");
  const auto two = write_pair(d, "two.example", "two.example", "2.thumb");
  d.write("one.example.key.pem", pem_of(two->key.get()));
  CHECK(b->certificate("one.example") == nullptr);
  CHECK(b->bad_files() == 1);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("does not match") != std::string::npos);

  d.write("junk.example.crt.pem", "not a certificate");
  d.write("junk.example.key.pem", pem_of(two->key.get()));
  CHECK(b->certificate("junk.example") == nullptr);
  d.write("big.example.crt.pem", std::string(bk::kMaxCertdirFile + 1, 'A'));
  d.write("big.example.key.pem", pem_of(two->key.get()));
  CHECK(b->certificate("big.example") == nullptr);
  fs::create_directory(d.path() / "dir.example.crt.pem");
  d.write("dir.example.key.pem", pem_of(two->key.get()));
  CHECK(b->certificate("dir.example") == nullptr);
  CHECK(b->bad_files() == 4);
  CHECK(warnings.size() == 1);                      // rate-limited: one line per 10 s
  CHECK(b->certificate("two.example") != nullptr);  // the good pair is still served
}

TEST_CASE("CertdirBackend: a missing directory is a clear startup error", "[backends][certdir]") {
  std::string error;
  CHECK_FALSE(bk::CertdirBackend::create("/nonexistent/acmegw-certdir", {}, error));
  CHECK(error.find("/nonexistent/acmegw-certdir") != std::string::npos);
}
