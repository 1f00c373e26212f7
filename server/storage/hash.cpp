#include "server/storage/hash.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>

namespace kasama::storage {
namespace {

void sha256(std::initializer_list<std::string_view> parts, unsigned char out[32]) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) throw std::bad_alloc();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  bool first = true;
  for (auto p : parts) {
    if (!first) EVP_DigestUpdate(ctx, "\x1f", 1);
    first = false;
    EVP_DigestUpdate(ctx, p.data(), p.size());
  }
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, out, &len);
  EVP_MD_CTX_free(ctx);
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char d[32];
  sha256({data}, d);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (int i = 0; i < 32; ++i) {
    s[2 * i] = kHex[d[i] >> 4];
    s[2 * i + 1] = kHex[d[i] & 0xF];
  }
  return s;
}

std::int64_t hash64(std::initializer_list<std::string_view> parts) {
  unsigned char d[32];
  sha256(parts, d);
  std::int64_t v = 0;
  std::memcpy(&v, d, sizeof v);
  return v;
}

}  // namespace kasama::storage
