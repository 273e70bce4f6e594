// classify() must not touch the heap (STYLE §4, §23): this TU replaces the global allocation
// functions for the whole test binary and counts calls around classify().
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include <catch2/catch.hpp>

#include "classifier/classify.hpp"
#include "tests/unit/classifier/http_vectors.hpp"
#include "tls_hello.hpp"

namespace {

std::atomic<std::size_t> g_allocations{0};

void* counted_alloc(std::size_t n, std::size_t align = alignof(std::max_align_t)) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n == 0 ? 1 : n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) {
    throw std::bad_alloc();
  }
  return p;
}

}  // namespace

void* operator new(std::size_t n) {
  return counted_alloc(n);
}
void* operator new[](std::size_t n) {
  return counted_alloc(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

TEST_CASE("classify: zero heap allocations per call", "[classifier][alloc]") {
  using acmegw::classifier::Protocol;
  const std::string http{acmegw::test::kLetsEncrypt};
  const std::string hello = acmegw::test::client_hello({"a.example", {"acme-tls/1"}});
  const std::string split_hello = acmegw::test::refragment(hello, 3);
  const auto bytes = [](const std::string& s) {
    return std::as_bytes(std::span{s.data(), s.size()});
  };

  // Sanity: the counter sees allocations at all.
  const std::size_t before_probe = g_allocations.load();
  auto* probe = new std::string(100, 'x');
  delete probe;
  REQUIRE(g_allocations.load() > before_probe);

  const std::size_t before = g_allocations.load();
  std::size_t decided = 0;
  for (std::size_t cut = 0; cut <= http.size(); ++cut) {
    decided += acmegw::classifier::classify(bytes(http).first(cut), Protocol::Http).decision !=
               acmegw::classifier::Decision::NeedMore;
  }
  for (const std::string* tls : {&hello, &split_hello}) {
    for (std::size_t cut = 0; cut <= tls->size(); ++cut) {
      decided +=
          acmegw::classifier::classify(bytes(*tls).first(cut), Protocol::Tls, {}, true).decision !=
          acmegw::classifier::Decision::NeedMore;
    }
  }
  CHECK(g_allocations.load() == before);
  CHECK(decided > 0);
}
