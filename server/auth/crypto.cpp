#include "server/auth/crypto.hpp"

#include <argon2.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace kasama::auth {
namespace {

template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using PKey = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using PKeyCtx = std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX, EVP_MD_CTX_free>>;
using Bignum = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_free>>;
using SecretBignum = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_clear_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Free<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Free<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Free<ECDSA_SIG, ECDSA_SIG_free>>;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* bytes_of(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}

// OpenSSL's error queue is per thread; leaving entries behind would make a later, unrelated
// failure on this thread report a stale cause, so every failure path drains it.
std::string take_openssl_error() {
  const unsigned long code = ERR_get_error();
  std::string message = "unknown OpenSSL error";
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    message = buf;
  }
  ERR_clear_error();
  return message;
}

[[noreturn]] void throw_openssl(const std::string& what) {
  throw std::runtime_error(what + ": " + take_openssl_error());
}

// For probes whose failure is an expected answer (does the key have a private part? does this
// signature verify?): drops whatever they queued without touching older entries.
class ErrorMark {
 public:
  ErrorMark() { ERR_set_mark(); }
  ~ErrorMark() { ERR_pop_to_mark(); }
  ErrorMark(const ErrorMark&) = delete;
  ErrorMark& operator=(const ErrorMark&) = delete;
};

// ---------------------------------------------------------------------------------------------
// Base64 / base32

constexpr std::string_view kBase64Std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kBase64Url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

using ReverseTable = std::array<std::int8_t, 256>;

constexpr ReverseTable reverse_of(std::string_view alphabet) {
  ReverseTable table{};
  for (auto& v : table) v = -1;
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}

constexpr ReverseTable kBase64StdReverse = reverse_of(kBase64Std);
constexpr ReverseTable kBase64UrlReverse = reverse_of(kBase64Url);
constexpr ReverseTable kBase32Reverse = reverse_of(kBase32);

std::string encode_base64(std::string_view bytes, std::string_view alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const unsigned char* b = bytes_of(bytes);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{b[i]} << 16) | (std::uint32_t{b[i + 1]} << 8) | b[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t v = std::uint32_t{b[i]} << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    const std::uint32_t v = (std::uint32_t{b[i]} << 16) | (std::uint32_t{b[i + 1]} << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

[[noreturn]] void decode_failed(std::string_view name, const std::string& why) {
  throw std::invalid_argument(std::string(name) + " decoding failed: " + why);
}

std::string decode_base64(std::string_view text, const ReverseTable& table, std::string_view name,
                          bool padding_required) {
  std::size_t pads = 0;
  while (pads < text.size() && text[text.size() - 1 - pads] == '=') ++pads;
  if (pads > 2) decode_failed(name, "more than two padding characters");
  if (pads > 0 && text.size() % 4 != 0) decode_failed(name, "padding does not complete a 4-character group");
  if (padding_required && text.size() % 4 != 0) decode_failed(name, "length is not a multiple of 4");
  const std::string_view body = text.substr(0, text.size() - pads);
  if (body.size() % 4 == 1) decode_failed(name, "length leaves a dangling character");

  std::string out;
  out.reserve(body.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const int v = table[static_cast<unsigned char>(body[i])];
    if (v < 0) decode_failed(name, "invalid character at offset " + std::to_string(i));
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
    acc &= (1u << bits) - 1;
  }
  if (acc != 0) decode_failed(name, "unused trailing bits are not zero");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Argon2id

constexpr std::uint32_t kArgonMemoryKiB = 19456;
constexpr std::uint32_t kArgonTime = 2;
constexpr std::uint32_t kArgonLanes = 1;
constexpr std::size_t kArgonSaltBytes = 16;
constexpr std::size_t kArgonHashBytes = 32;
// Ceilings for stored parameters: the hash column is data, and a row edited to ask for 100 GiB
// must not take the server down when someone logs in.
constexpr std::uint32_t kArgonMaxMemoryKiB = 1024 * 1024;
constexpr std::uint32_t kArgonMaxTime = 64;
constexpr std::uint32_t kArgonMaxLanes = 16;

struct PhcArgon2 {
  std::string_view type;
  std::uint32_t version = 0, memory = 0, time = 0, lanes = 0;
  std::size_t salt_bytes = 0, hash_bytes = 0;
};

std::optional<std::uint32_t> take_number(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return std::nullopt;
  s.remove_prefix(prefix.size());
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc{} || end == s.data()) return std::nullopt;
  s.remove_prefix(static_cast<std::size_t>(end - s.data()));
  return value;
}

// Byte length of the unpadded standard base64 PHC uses for salt and hash, or nullopt.
std::optional<std::size_t> phc_b64_length(std::string_view s) {
  if (s.empty() || s.size() % 4 == 1) return std::nullopt;
  for (char c : s) {
    if (kBase64StdReverse[static_cast<unsigned char>(c)] < 0) return std::nullopt;
  }
  return s.size() * 3 / 4;
}

// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, in exactly the layout libargon2 writes.
std::optional<PhcArgon2> parse_phc(std::string_view s) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t end = s.find('$', start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (parts.size() != 6 || !parts[0].empty()) return std::nullopt;
  PhcArgon2 out;
  out.type = parts[1];
  std::string_view v = parts[2];
  const auto version = take_number(v, "v=");
  if (!version || !v.empty()) return std::nullopt;
  std::string_view params = parts[3];
  const auto m = take_number(params, "m=");
  const auto t = take_number(params, ",t=");
  const auto p = take_number(params, ",p=");
  if (!m || !t || !p || !params.empty() || *t == 0 || *p == 0) return std::nullopt;
  const auto salt = phc_b64_length(parts[4]);
  const auto hash = phc_b64_length(parts[5]);
  if (!salt || !hash) return std::nullopt;
  out.version = *version;
  out.memory = *m;
  out.time = *t;
  out.lanes = *p;
  out.salt_bytes = *salt;
  out.hash_bytes = *hash;
  return out;
}

// ---------------------------------------------------------------------------------------------
// TOTP

std::string hotp(std::string_view secret, std::uint64_t counter) {
  std::string message(8, '\0');
  for (int i = 7; i >= 0; --i) {
    message[static_cast<std::size_t>(i)] = static_cast<char>(counter & 0xff);
    counter >>= 8;
  }
  const std::string mac = hmac_sha1(secret, message);
  const unsigned char* h = bytes_of(mac);
  const unsigned offset = h[19] & 0x0f;
  const std::uint32_t binary = ((std::uint32_t{h[offset]} & 0x7f) << 24) | (std::uint32_t{h[offset + 1]} << 16) |
                               (std::uint32_t{h[offset + 2]} << 8) | h[offset + 3];
  std::string code = std::to_string(binary % 1000000);
  return std::string(6 - code.size(), '0') + code;
}

constexpr std::int64_t kTotpStep = 30;

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Keys

struct Curve {
  int nid;
  const char* jwk_name;
  const char* openssl_name;
  std::size_t size;  // bytes per coordinate and per half of an ES signature
};
constexpr Curve kCurves[] = {
    {NID_X9_62_prime256v1, "P-256", "prime256v1", 32},
    {NID_secp384r1, "P-384", "secp384r1", 48},
};

constexpr int kMinRsaBits = 2048;
// OpenSSL refuses larger moduli anyway; stopping early keeps a hostile JWK from costing
// anything.
constexpr int kMaxRsaBits = 16384;

std::string group_name(const EVP_PKEY* pkey) {
  ErrorMark mark;
  char buf[80];
  std::size_t len = 0;
  if (EVP_PKEY_get_group_name(pkey, buf, sizeof buf, &len) != 1) return {};
  return std::string(buf, len);
}

const Curve* curve_of(const EVP_PKEY* pkey) {
  if (!EVP_PKEY_is_a(pkey, "EC")) return nullptr;
  const std::string name = group_name(pkey);
  if (name.empty()) return nullptr;  // explicit parameters: not a named curve we can publish
  int nid = OBJ_sn2nid(name.c_str());
  if (nid == NID_undef) nid = EC_curve_nist2nid(name.c_str());
  for (const Curve& c : kCurves) {
    if (c.nid == nid) return &c;
  }
  return nullptr;
}

const Curve* curve_by_jwk_name(std::string_view name) {
  for (const Curve& c : kCurves) {
    if (name == c.jwk_name) return &c;
  }
  return nullptr;
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// Unsigned big-endian bytes of a key parameter; width 0 means minimal length.
std::string bn_param(const EVP_PKEY* pkey, const char* name, std::size_t width) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) throw_openssl(std::string("reading key parameter ") + name);
  const Bignum bn(raw);
  std::string out(width == 0 ? static_cast<std::size_t>(BN_num_bytes(bn.get())) : width, '\0');
  const int written =
      width == 0 ? BN_bn2bin(bn.get(), bytes_of(out)) : BN_bn2binpad(bn.get(), bytes_of(out), static_cast<int>(width));
  if (written < 0) throw std::runtime_error(std::string("key parameter ") + name + " does not fit");
  return out;
}

template <typename Configure>
PKey generate(const char* type, Configure configure) {
  const PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || configure(ctx.get()) != 1) {
    throw_openssl(std::string("preparing ") + type + " key generation");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) != 1) throw_openssl(std::string("generating ") + type + " key");
  return PKey(raw);
}

PKey from_params(const char* type, OSSL_PARAM_BLD* bld) {
  const Params params(OSSL_PARAM_BLD_to_param(bld));
  const PKeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return PKey(raw);
}

const nlohmann::ordered_json& jwk_member(const nlohmann::ordered_json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end()) throw std::invalid_argument(std::string("JWK member \"") + name + "\" is missing");
  if (!it->is_string()) throw std::invalid_argument(std::string("JWK member \"") + name + "\" is not a string");
  return *it;
}

std::string jwk_bytes(const nlohmann::ordered_json& jwk, const char* name) {
  const auto& text = jwk_member(jwk, name).get_ref<const std::string&>();
  std::string bytes;
  try {
    bytes = base64url_decode(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("JWK member \"") + name + "\": " + e.what());
  }
  if (bytes.empty()) throw std::invalid_argument(std::string("JWK member \"") + name + "\" is empty");
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// JWS

struct JwsAlg {
  std::string_view name;
  const EVP_MD* (*md)();
  int curve_nid;  // NID_undef for RSA
};
const JwsAlg kJwsAlgs[] = {
    {"RS256", EVP_sha256, NID_undef},
    {"RS384", EVP_sha384, NID_undef},
    {"ES256", EVP_sha256, NID_X9_62_prime256v1},
    {"ES384", EVP_sha384, NID_secp384r1},
};

const JwsAlg* find_alg(std::string_view name) {
  for (const JwsAlg& a : kJwsAlgs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

// The alg/key pairing is checked on both sides: a token must not pick how the server's key is
// used (RFC 8725 section 3.1).
bool alg_fits(const JwsAlg& alg, const EVP_PKEY* pkey) {
  if (alg.curve_nid == NID_undef) return EVP_PKEY_is_a(pkey, "RSA");
  const Curve* curve = curve_of(pkey);
  return curve && curve->nid == alg.curve_nid;
}

std::string ecdsa_der_to_raw(const std::string& der, std::size_t half) {
  const unsigned char* p = bytes_of(der);
  const EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) throw_openssl("decoding ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(2 * half, '\0');
  if (BN_bn2binpad(r, bytes_of(raw), static_cast<int>(half)) < 0 ||
      BN_bn2binpad(s, bytes_of(raw) + half, static_cast<int>(half)) < 0) {
    throw std::runtime_error("ECDSA signature value wider than the curve");
  }
  return raw;
}

std::optional<std::string> ecdsa_raw_to_der(std::string_view raw, std::size_t half) {
  if (raw.size() != 2 * half) return std::nullopt;
  Bignum r(BN_bin2bn(bytes_of(raw), static_cast<int>(half), nullptr));
  Bignum s(BN_bin2bn(bytes_of(raw) + half, static_cast<int>(half), nullptr));
  const EcdsaSig sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
  r.release();  // owned by sig now
  s.release();
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::string der(static_cast<std::size_t>(len), '\0');
  unsigned char* out = bytes_of(der);
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return std::nullopt;
  return der;
}

std::string jwt_segment(std::string_view segment, const char* name) {
  if (segment.find('=') != std::string_view::npos) {
    throw std::invalid_argument(std::string("JWT ") + name + " is padded; JWS segments must not be");
  }
  try {
    return base64url_decode(segment);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("JWT ") + name + ": " + e.what());
  }
}

nlohmann::ordered_json jwt_object(const std::string& text, const char* name) {
  auto value = nlohmann::ordered_json::parse(text, nullptr, false);
  if (value.is_discarded()) throw std::invalid_argument(std::string("JWT ") + name + " is not valid JSON");
  if (!value.is_object()) throw std::invalid_argument(std::string("JWT ") + name + " is not a JSON object");
  return value;
}

}  // namespace

// -----------------------------------------------------------------------------------------------

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t done = 0; done < n;) {
    const int chunk = static_cast<int>(std::min<std::size_t>(n - done, std::size_t{1} << 30));
    if (RAND_bytes(bytes_of(out) + done, chunk) != 1) throw_openssl("RAND_bytes");
    done += static_cast<std::size_t>(chunk);
  }
  return out;
}

std::string random_token(std::size_t bytes) {
  return base64url_encode(random_bytes(bytes));
}

std::string base64url_encode(std::string_view bytes) {
  return encode_base64(bytes, kBase64Url, false);
}
std::string base64url_decode(std::string_view text) {
  return decode_base64(text, kBase64UrlReverse, "base64url", false);
}
std::string base64_encode(std::string_view bytes) {
  return encode_base64(bytes, kBase64Std, true);
}
std::string base64_decode(std::string_view text) {
  return decode_base64(text, kBase64StdReverse, "base64", true);
}

std::string sha256(std::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), bytes_of(out), &len, EVP_sha256(), nullptr) != 1 || len != 32) {
    throw_openssl("SHA-256");
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : sha256(data)) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string hmac_sha1(std::string_view key, std::string_view data) {
  if (key.size() > static_cast<std::size_t>(INT_MAX)) throw std::invalid_argument("HMAC key is too long");
  // A default-constructed string_view has a null data(); OpenSSL wants a pointer even for zero bytes.
  static const char kEmpty = 0;
  std::string out(20, '\0');
  unsigned int len = 0;
  if (!HMAC(EVP_sha1(), key.empty() ? &kEmpty : key.data(), static_cast<int>(key.size()), bytes_of(data), data.size(),
            bytes_of(out), &len) ||
      len != 20) {
    throw_openssl("HMAC-SHA-1");
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// -----------------------------------------------------------------------------------------------

std::string hash_password(std::string_view password) {
  if (password.size() > ARGON2_MAX_PWD_LENGTH) throw std::invalid_argument("password is too long");
  const std::string salt = random_bytes(kArgonSaltBytes);
  std::string encoded(
      argon2_encodedlen(kArgonTime, kArgonMemoryKiB, kArgonLanes, kArgonSaltBytes, kArgonHashBytes, Argon2_id), '\0');
  const int rc = argon2id_hash_encoded(kArgonTime, kArgonMemoryKiB, kArgonLanes, password.data(), password.size(),
                                       salt.data(), salt.size(), kArgonHashBytes, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) throw std::runtime_error(std::string("argon2id hashing failed: ") + argon2_error_message(rc));
  encoded.resize(std::strlen(encoded.c_str()));
  return encoded;
}

bool verify_password(std::string_view password, const std::string& encoded) {
  // libargon2 reads a C string; an embedded NUL would make it check a prefix of what was stored.
  if (encoded.find('\0') != std::string::npos) return false;
  const auto phc = parse_phc(encoded);
  if (!phc || phc->type != "argon2id") return false;
  if (phc->memory > kArgonMaxMemoryKiB || phc->time > kArgonMaxTime || phc->lanes > kArgonMaxLanes) return false;
  if (password.size() > ARGON2_MAX_PWD_LENGTH) return false;
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

bool password_needs_rehash(const std::string& encoded) {
  const auto phc = parse_phc(encoded);
  if (!phc) return true;
  return phc->type != "argon2id" || phc->version != ARGON2_VERSION_13 || phc->memory < kArgonMemoryKiB ||
         phc->time < kArgonTime || phc->salt_bytes < kArgonSaltBytes || phc->hash_bytes < kArgonHashBytes;
}

// -----------------------------------------------------------------------------------------------

bool pkce_s256_matches(std::string_view verifier, std::string_view challenge) {
  if (verifier.size() < 43 || verifier.size() > 128) return false;
  for (char c : verifier) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~';
    if (!ok) return false;
  }
  return constant_time_equal(base64url_encode(sha256(verifier)), challenge);
}

// -----------------------------------------------------------------------------------------------

std::string base32_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += kBase32[(acc >> bits) & 31];
    }
    acc &= (1u << bits) - 1;
  }
  if (bits > 0) out += kBase32[(acc << (5 - bits)) & 31];
  return out;
}

std::string base32_decode(std::string_view text) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t symbols = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == ' ' || c == '=') continue;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    const int v = kBase32Reverse[static_cast<unsigned char>(c)];
    if (v < 0) throw std::invalid_argument("base32 decoding failed: invalid character at offset " + std::to_string(i));
    acc = (acc << 5) | static_cast<std::uint32_t>(v);
    bits += 5;
    ++symbols;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
    acc &= (1u << bits) - 1;
  }
  // Leftover bits are not checked: secrets are typed by people, and the lengths below are the
  // only ones an encoder can produce.
  switch (symbols % 8) {
    case 1:
    case 3:
    case 6:
      throw std::invalid_argument("base32 decoding failed: length leaves dangling characters");
    default:
      break;
  }
  return out;
}

std::string totp_code(std::string_view secret, std::int64_t unix_seconds) {
  if (secret.empty()) throw std::invalid_argument("TOTP secret is empty");
  if (unix_seconds < 0) throw std::invalid_argument("TOTP time is before the Unix epoch");
  return hotp(secret, static_cast<std::uint64_t>(unix_seconds / kTotpStep));
}

std::optional<std::int64_t> totp_verify(std::string_view secret, std::string_view code, std::int64_t unix_seconds) {
  // An empty secret would make every account's codes predictable; that is a bug, not a wrong code.
  if (secret.empty()) throw std::invalid_argument("TOTP secret is empty");
  if (code.size() != 6 || !std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  if (unix_seconds < 0) return std::nullopt;
  const std::int64_t now = unix_seconds / kTotpStep;
  for (const std::int64_t step : {now, now - 1, now + 1}) {
    if (step < 0) continue;
    if (constant_time_equal(hotp(secret, static_cast<std::uint64_t>(step)), code)) return step;
  }
  return std::nullopt;
}

std::string otpauth_uri(std::string_view issuer, std::string_view account, std::string_view secret) {
  if (secret.empty()) throw std::invalid_argument("TOTP secret is empty");
  // The issuer goes both in the label and as a parameter: older apps read only the label,
  // newer ones prefer the parameter.
  std::string uri = "otpauth://totp/";
  if (!issuer.empty()) uri += percent_encode(issuer) + ":";
  uri += percent_encode(account);
  uri += "?secret=" + base32_encode(secret);
  if (!issuer.empty()) uri += "&issuer=" + percent_encode(issuer);
  uri += "&algorithm=SHA1&digits=6&period=30";
  return uri;
}

// -----------------------------------------------------------------------------------------------

Key::Key(EVP_PKEY* pkey) : pkey_(pkey, EVP_PKEY_free) {
  // Every constructor funnels through here, so no Key ever holds something the JWS code cannot
  // describe (RSA-PSS, Ed25519, unnamed or unsupported curves, short RSA moduli).
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    const int bits = EVP_PKEY_get_bits(pkey);
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      throw std::invalid_argument("RSA key has " + std::to_string(bits) + " bits; 2048 to 16384 are supported");
    }
  } else if (EVP_PKEY_is_a(pkey, "EC")) {
    if (!curve_of(pkey)) {
      const std::string name = group_name(pkey);
      throw std::invalid_argument("unsupported EC curve " + (name.empty() ? std::string("(unnamed)") : name) +
                                  "; P-256 and P-384 are supported");
    }
  } else {
    const char* type = EVP_PKEY_get0_type_name(pkey);
    throw std::invalid_argument(std::string("unsupported key type ") + (type ? type : "(unknown)") +
                                "; RSA and EC are supported");
  }
}

Key Key::generate_rsa(int bits) {
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    throw std::invalid_argument("RSA key size " + std::to_string(bits) + " is outside 2048..16384");
  }
  PKey pkey = generate("RSA", [bits](EVP_PKEY_CTX* ctx) { return EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits); });
  return Key(pkey.release());
}

Key Key::generate_ec_p256() {
  PKey pkey = generate("EC", [](EVP_PKEY_CTX* ctx) { return EVP_PKEY_CTX_set_group_name(ctx, "prime256v1"); });
  return Key(pkey.release());
}

Key Key::generate_ec_p384() {
  PKey pkey = generate("EC", [](EVP_PKEY_CTX* ctx) { return EVP_PKEY_CTX_set_group_name(ctx, "secp384r1"); });
  return Key(pkey.release());
}

Key Key::from_pem(std::string_view pem) {
  if (pem.empty()) throw std::invalid_argument("PEM text is empty");
  if (pem.size() > static_cast<std::size_t>(INT_MAX)) throw std::invalid_argument("PEM text is too long");
  // Without a callback OpenSSL would prompt on the terminal for an encrypted key's passphrase.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return -1; };
  EVP_PKEY* raw = nullptr;
  {
    const Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) throw_openssl("reading PEM");
    raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  }
  if (!raw) {
    ERR_clear_error();
    const Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) throw_openssl("reading PEM");
    raw = PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr);
  }
  if (!raw) {
    ERR_clear_error();
    throw std::invalid_argument(
        "PEM holds no readable private key (PKCS#8 or traditional, unencrypted) or SPKI public key");
  }
  return Key(raw);
}

Key Key::from_jwk(const nlohmann::ordered_json& jwk) {
  if (!jwk.is_object()) throw std::invalid_argument("JWK is not a JSON object");
  const std::string& kty = jwk_member(jwk, "kty").get_ref<const std::string&>();
  const ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld) throw_openssl("building key parameters");

  if (kty == "RSA") {
    const std::string n = jwk_bytes(jwk, "n");
    const std::string e = jwk_bytes(jwk, "e");
    if (n.size() * 8 > static_cast<std::size_t>(kMaxRsaBits) + 8 || e.size() > 64) {
      throw std::invalid_argument(std::string("JWK member \"") + (e.size() > 64 ? "e" : "n") + "\" is too long");
    }
    const Bignum bn_n(BN_bin2bn(bytes_of(n), static_cast<int>(n.size()), nullptr));
    const Bignum bn_e(BN_bin2bn(bytes_of(e), static_cast<int>(e.size()), nullptr));
    if (!bn_n || !bn_e) throw_openssl("reading RSA key");
    const int bits = BN_num_bits(bn_n.get());
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      throw std::invalid_argument("JWK member \"n\": RSA modulus has " + std::to_string(bits) +
                                  " bits; 2048 to 16384 are supported");
    }
    if (!BN_is_odd(bn_n.get())) throw std::invalid_argument("JWK member \"n\": RSA modulus is even");
    if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get())) {
      throw std::invalid_argument("JWK member \"e\": not a usable RSA public exponent");
    }
    if (OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
      throw_openssl("building RSA key parameters");
    }
    PKey pkey = from_params("RSA", bld.get());
    if (!pkey) throw std::invalid_argument("JWK members \"n\"/\"e\" do not form an RSA public key");
    return Key(pkey.release());
  }

  if (kty == "EC") {
    const std::string& crv = jwk_member(jwk, "crv").get_ref<const std::string&>();
    const Curve* curve = curve_by_jwk_name(crv);
    if (!curve) throw std::invalid_argument("JWK member \"crv\": unsupported curve \"" + crv + "\" (P-256, P-384)");
    std::string point = "\x04";
    for (const char* name : {"x", "y"}) {
      const std::string coord = jwk_bytes(jwk, name);
      // RFC 7518 section 6.2.1.2: coordinates are always the full field width.
      if (coord.size() != curve->size) {
        throw std::invalid_argument(std::string("JWK member \"") + name + "\" has " + std::to_string(coord.size()) +
                                    " bytes; " + crv + " needs " + std::to_string(curve->size));
      }
      point += coord;
    }
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve->openssl_name, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
      throw_openssl("building EC key parameters");
    }
    PKey pkey = from_params("EC", bld.get());
    bool on_curve = false;
    if (pkey) {
      // Verifying against a point off the curve is the classic invalid-curve attack surface.
      ErrorMark mark;
      const PKeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
      on_curve = check && EVP_PKEY_public_check(check.get()) == 1;
    }
    if (!on_curve) throw std::invalid_argument("JWK members \"x\"/\"y\" are not a point on " + crv);
    return Key(pkey.release());
  }

  throw std::invalid_argument("JWK member \"kty\": unsupported key type \"" + kty + "\" (RSA, EC)");
}

std::string Key::private_pem() const {
  if (!pkey_) throw std::logic_error("key is empty");
  if (!has_private()) throw std::logic_error("key has no private part");
  const Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw_openssl("writing private key PEM");
  }
  return bio_contents(bio.get());
}

std::string Key::public_pem() const {
  if (!pkey_) throw std::logic_error("key is empty");
  const Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey_.get()) != 1) throw_openssl("writing public key PEM");
  return bio_contents(bio.get());
}

nlohmann::ordered_json Key::public_jwk(std::string_view kid, std::string_view alg) const {
  if (!pkey_) throw std::logic_error("key is empty");
  if (!alg.empty()) {
    const JwsAlg* a = find_alg(alg);
    if (!a || !alg_fits(*a, pkey_.get())) {
      throw std::invalid_argument("alg \"" + std::string(alg) + "\" does not fit this " + kind() + " key");
    }
  }
  nlohmann::ordered_json jwk = nlohmann::ordered_json::object();
  jwk["kty"] = kind();
  if (!kid.empty()) jwk["kid"] = std::string(kid);
  if (!alg.empty()) jwk["alg"] = std::string(alg);
  jwk["use"] = "sig";
  if (const Curve* curve = curve_of(pkey_.get())) {
    jwk["crv"] = curve->jwk_name;
    jwk["x"] = base64url_encode(bn_param(pkey_.get(), OSSL_PKEY_PARAM_EC_PUB_X, curve->size));
    jwk["y"] = base64url_encode(bn_param(pkey_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, curve->size));
  } else {
    jwk["n"] = base64url_encode(bn_param(pkey_.get(), OSSL_PKEY_PARAM_RSA_N, 0));
    jwk["e"] = base64url_encode(bn_param(pkey_.get(), OSSL_PKEY_PARAM_RSA_E, 0));
  }
  return jwk;
}

std::string Key::kind() const {
  if (!pkey_) return {};
  if (EVP_PKEY_is_a(pkey_.get(), "RSA")) return "RSA";
  if (EVP_PKEY_is_a(pkey_.get(), "EC")) return "EC";
  return {};
}

bool Key::has_private() const {
  if (!pkey_) return false;
  ErrorMark mark;
  BIGNUM* raw = nullptr;
  const char* name = EVP_PKEY_is_a(pkey_.get(), "RSA") ? OSSL_PKEY_PARAM_RSA_D : OSSL_PKEY_PARAM_PRIV_KEY;
  const bool found = EVP_PKEY_get_bn_param(pkey_.get(), name, &raw) == 1;
  const SecretBignum secret(raw);
  return found;
}

// -----------------------------------------------------------------------------------------------

std::string sign_jwt(const nlohmann::ordered_json& claims, const Key& key, std::string_view alg, std::string_view kid) {
  if (!key.valid()) throw std::invalid_argument("JWT signing key is empty");
  const JwsAlg* a = find_alg(alg);
  if (!a) throw std::invalid_argument("unsupported JWS alg \"" + std::string(alg) + "\"");
  if (!alg_fits(*a, key.get())) {
    throw std::invalid_argument("JWS alg " + std::string(alg) + " does not fit this " + key.kind() + " key");
  }
  if (!claims.is_object()) throw std::invalid_argument("JWT claims must be a JSON object");
  if (!key.has_private()) throw std::logic_error("JWT signing needs a private key");

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["alg"] = std::string(alg);
  header["typ"] = "JWT";
  if (!kid.empty()) header["kid"] = std::string(kid);
  std::string signing_input;
  try {
    signing_input = base64url_encode(header.dump()) + "." + base64url_encode(claims.dump());
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("JWT header or claims cannot be serialized: ") + e.what());
  }

  const MdCtx ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, a->md(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, bytes_of(signing_input), signing_input.size()) != 1) {
    throw_openssl("JWS signing");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), bytes_of(signature), &len, bytes_of(signing_input), signing_input.size()) != 1) {
    throw_openssl("JWS signing");
  }
  signature.resize(len);
  if (a->curve_nid != NID_undef) signature = ecdsa_der_to_raw(signature, curve_of(key.get())->size);
  return signing_input + "." + base64url_encode(signature);
}

DecodedJwt decode_jwt(std::string_view compact) {
  const std::size_t first = compact.find('.');
  const std::size_t second = first == std::string_view::npos ? first : compact.find('.', first + 1);
  if (second == std::string_view::npos || compact.find('.', second + 1) != std::string_view::npos) {
    throw std::invalid_argument("JWT must have exactly three dot-separated segments");
  }
  DecodedJwt jwt;
  jwt.header = jwt_object(jwt_segment(compact.substr(0, first), "header"), "header");
  const auto alg = jwt.header.find("alg");
  if (alg == jwt.header.end() || !alg->is_string()) throw std::invalid_argument("JWT header has no string \"alg\"");
  jwt.payload = jwt_object(jwt_segment(compact.substr(first + 1, second - first - 1), "payload"), "payload");
  jwt.signing_input = std::string(compact.substr(0, second));
  jwt.signature = jwt_segment(compact.substr(second + 1), "signature");
  return jwt;
}

bool verify_jwt_signature(const DecodedJwt& jwt, const Key& key) {
  ErrorMark mark;
  try {
    if (!key.valid() || !jwt.header.is_object()) return false;
    const auto alg_it = jwt.header.find("alg");
    if (alg_it == jwt.header.end() || !alg_it->is_string()) return false;
    const JwsAlg* a = find_alg(alg_it->get_ref<const std::string&>());
    if (!a || !alg_fits(*a, key.get())) return false;

    std::string signature = jwt.signature;
    if (a->curve_nid != NID_undef) {
      auto der = ecdsa_raw_to_der(signature, curve_of(key.get())->size);
      if (!der) return false;
      signature = std::move(*der);
    } else if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key.get()))) {
      return false;
    }
    const MdCtx ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, a->md(), nullptr, key.get()) != 1) return false;
    return EVP_DigestVerify(ctx.get(), bytes_of(signature), signature.size(), bytes_of(jwt.signing_input),
                            jwt.signing_input.size()) == 1;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace kasama::auth
