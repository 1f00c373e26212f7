#define BOOST_TEST_MODULE auth_crypto
#include <boost/test/unit_test.hpp>

#include <argon2.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <atomic>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/auth/crypto.hpp"

using namespace kasama::auth;
using nlohmann::ordered_json;

namespace {

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// Predicate for BOOST_CHECK_EXCEPTION: the message must point at what was wrong.
auto message_has(std::string needle) {
  return [needle](const std::exception& e) {
    const bool found = std::string_view(e.what()).find(needle) != std::string_view::npos;
    if (!found) BOOST_TEST_MESSAGE("message was: " << e.what());
    return found;
  };
}

// Generated once: RSA key generation dominates the run time otherwise.
struct Keys {
  Key rsa = Key::generate_rsa();
  Key rsa_other = Key::generate_rsa();
  Key p256 = Key::generate_ec_p256();
  Key p384 = Key::generate_ec_p384();
  Key p384_other = Key::generate_ec_p384();
};
const Keys& keys() {
  static const Keys k;
  return k;
}

const ordered_json kClaims = {
    {"iss", "https://fhir.example.org"}, {"sub", "alice"}, {"iat", 1700000000}, {"scope", "patient/*.read openid"}};

std::string segment(const std::string& json_text) {
  return base64url_encode(json_text);
}

// Writes a key with OpenSSL directly, so from_pem sees formats this module never produces.
std::string pem_of(EVP_PKEY* pkey, bool traditional, const EVP_CIPHER* cipher = nullptr) {
  BIO* bio = BIO_new(BIO_s_mem());
  static char passphrase[] = "secret";
  const int ok = traditional ? PEM_write_bio_PrivateKey_traditional(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr)
                             : PEM_write_bio_PrivateKey(bio, pkey, cipher, reinterpret_cast<unsigned char*>(passphrase),
                                                        cipher ? 6 : 0, nullptr, nullptr);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  BOOST_REQUIRE(ok == 1);
  return out;
}

// ECDSA over `signing_input` with an arbitrary digest, returned as raw r||s of `half` bytes
// each: lets a test build tokens whose alg disagrees with the key in ways sign_jwt refuses to.
std::string ecdsa_raw(const Key& key, const EVP_MD* md, const std::string& signing_input, int half) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  const auto* input = reinterpret_cast<const unsigned char*>(signing_input.data());
  BOOST_REQUIRE(EVP_DigestSignInit(ctx, nullptr, md, nullptr, key.get()) == 1);
  BOOST_REQUIRE(EVP_DigestSign(ctx, nullptr, &len, input, signing_input.size()) == 1);
  std::string der(len, '\0');
  BOOST_REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(der.data()), &len, input, signing_input.size()) ==
                1);
  EVP_MD_CTX_free(ctx);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
  BOOST_REQUIRE(sig);
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  std::string raw(2 * static_cast<std::size_t>(half), '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  BN_bn2binpad(r, out, half);
  BN_bn2binpad(s, out + half, half);
  ECDSA_SIG_free(sig);
  return raw;
}

// RFC 7515 Appendix A.2 (RS256) and A.3 (ES256): key and JWS exactly as printed in the RFC.
const char* const kRfc7515RsaN =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-"
    "pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-"
    "UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_"
    "h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
const char* const kRfc7515A2Jws =
    "eyJhbGciOiJSUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_"
    "O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AX"
    "LIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const char* const kRfc7515EcX = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const char* const kRfc7515EcY = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const char* const kRfc7515A3Jws =
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

// Replaces the last character of a compact JWS segment-wise so it stays valid base64url.
std::string with_last_char_changed(std::string s) {
  s.back() = s.back() == 'A' ? 'Q' : 'A';
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Encodings

BOOST_AUTO_TEST_CASE(rfc4648_vectors) {
  struct Case {
    const char* plain;
    const char* base64;
    const char* base64url;  // unpadded
    const char* base32;     // unpadded
  };
  const Case cases[] = {
      {"", "", "", ""},
      {"f", "Zg==", "Zg", "MY"},
      {"fo", "Zm8=", "Zm8", "MZXQ"},
      {"foo", "Zm9v", "Zm9v", "MZXW6"},
      {"foob", "Zm9vYg==", "Zm9vYg", "MZXW6YQ"},
      {"fooba", "Zm9vYmE=", "Zm9vYmE", "MZXW6YTB"},
      {"foobar", "Zm9vYmFy", "Zm9vYmFy", "MZXW6YTBOI"},
      {"\xfb\xff\xbf", "+/+/", "-_-_", "7P736"},
      {"12345678901234567890", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA",
       "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT("plain \"" << c.plain << "\"") {
      BOOST_TEST(base64_encode(c.plain) == c.base64);
      BOOST_TEST(base64_decode(c.base64) == c.plain);
      BOOST_TEST(base64url_encode(c.plain) == c.base64url);
      BOOST_TEST(base64url_decode(c.base64url) == c.plain);
      BOOST_TEST(base32_encode(c.plain) == c.base32);
      BOOST_TEST(base32_decode(c.base32) == c.plain);
    }
  }
}

BOOST_AUTO_TEST_CASE(lenient_forms_decode) {
  struct Case {
    std::string (*decode)(std::string_view);
    const char* text;
    const char* plain;
  };
  const Case cases[] = {
      {base64url_decode, "Zm8=", "fo"},  // padding is optional, not forbidden
      {base64url_decode, "Zg==", "f"},           {base32_decode, "mzxw6ytboi", "foobar"},
      {base32_decode, "MZXW 6YTB OI", "foobar"}, {base32_decode, "MZXW6YTBOI======", "foobar"},
      {base32_decode, "my======", "f"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.text) {
      BOOST_TEST(c.decode(c.text) == c.plain);
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_encodings_throw) {
  struct Case {
    std::string (*decode)(std::string_view);
    const char* text;
  };
  const Case cases[] = {
      {base64_decode, "Zm9"},        // padding required for standard base64
      {base64_decode, "Zm9v="},      // padding past a group boundary
      {base64_decode, "Z==="},       // too much padding
      {base64_decode, "Zm-v"},       // url alphabet in standard base64
      {base64_decode, "Zm9v\n"},     // whitespace
      {base64_decode, "Zh=="},       // non-zero unused bits (Zg== is canonical)
      {base64_decode, "Zg=a"},       // padding in the middle
      {base64url_decode, "Zm+v"},    // standard alphabet in base64url
      {base64url_decode, "Z"},       // dangling character
      {base64url_decode, "Zh"},      // non-zero unused bits
      {base64url_decode, "Zm9v.a"},  // JWT separator is not data
      {base32_decode, "MZXW1"},      // '1' is not base32
      {base32_decode, "M"},          // impossible lengths: 1, 3, 6 symbols mod 8
      {base32_decode, "MZX"},       {base32_decode, "MZXW6Y"}, {base32_decode, "MZ-XW"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.text) {
      BOOST_CHECK_THROW(c.decode(c.text), std::invalid_argument);
    }
  }
  BOOST_CHECK_EXCEPTION(base64url_decode("ab*d"), std::invalid_argument, message_has("offset 2"));
}

BOOST_AUTO_TEST_CASE(random_round_trips) {
  for (std::size_t n = 0; n <= 70; ++n) {
    const std::string bytes = random_bytes(n);
    BOOST_TEST_CONTEXT("length " << n) {
      BOOST_TEST(bytes.size() == n);
      BOOST_TEST(base64_decode(base64_encode(bytes)) == bytes);
      BOOST_TEST(base64url_decode(base64url_encode(bytes)) == bytes);
      BOOST_TEST(base32_decode(base32_encode(bytes)) == bytes);
    }
  }
}

BOOST_AUTO_TEST_CASE(random_tokens) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string token = random_token();
    BOOST_TEST(token.size() == 43u);  // 32 bytes, unpadded
    BOOST_TEST(token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
               std::string::npos);
    seen.insert(token);
  }
  BOOST_TEST(seen.size() == 100u);
  BOOST_TEST(random_token(16).size() == 22u);
}

// ---------------------------------------------------------------------------------------------
// Digests

BOOST_AUTO_TEST_CASE(digest_vectors) {
  BOOST_TEST(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  BOOST_TEST(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  BOOST_TEST(hex(sha256("abc")) == sha256_hex("abc"));
  BOOST_TEST(sha256("abc").size() == 32u);

  struct Case {  // RFC 2202 section 3, test cases 1, 2 and 6
    std::string key, data;
    const char* mac;
  };
  const Case cases[] = {
      {std::string(20, '\x0b'), "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"},
      {"Jefe", "what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
      {std::string(80, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.data) {
      BOOST_TEST(hex(hmac_sha1(c.key, c.data)) == c.mac);
    }
  }
}

BOOST_AUTO_TEST_CASE(constant_time_comparison) {
  BOOST_TEST(constant_time_equal("", ""));
  BOOST_TEST(constant_time_equal("abc", "abc"));
  BOOST_TEST(!constant_time_equal("abc", "abd"));
  BOOST_TEST(!constant_time_equal("abc", "ab"));
  BOOST_TEST(!constant_time_equal("", "a"));
  BOOST_TEST(constant_time_equal(std::string("a\0b", 3), std::string("a\0b", 3)));
  BOOST_TEST(!constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

// ---------------------------------------------------------------------------------------------
// TOTP

BOOST_AUTO_TEST_CASE(totp_rfc6238_vectors) {
  // Appendix B, SHA-1 column; the RFC prints 8 digits, we use the last 6.
  const std::string secret = "12345678901234567890";
  const std::pair<std::int64_t, const char*> cases[] = {
      {59, "287082"},         {1111111109, "081804"}, {1111111111, "050471"},
      {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"},
  };
  for (const auto& [time, code] : cases) {
    BOOST_TEST_CONTEXT("T = " << time) {
      BOOST_TEST(totp_code(secret, time) == code);
    }
  }
  BOOST_CHECK_THROW(totp_code("", 59), std::invalid_argument);
  BOOST_CHECK_THROW(totp_code(secret, -1), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(totp_verify_window) {
  const std::string secret = "12345678901234567890";
  const std::int64_t now = 1111111111;  // step 37037037, 1 s into it
  const std::int64_t step = now / 30;
  const std::pair<int, bool> cases[] = {{-2, false}, {-1, true}, {0, true}, {1, true}, {2, false}};
  for (const auto& [offset, accepted] : cases) {
    BOOST_TEST_CONTEXT("offset " << offset) {
      const auto matched = totp_verify(secret, totp_code(secret, now + 30 * offset), now);
      BOOST_TEST(matched.has_value() == accepted);
      if (accepted && matched) BOOST_TEST(*matched == step + offset);
    }
  }
  // Neighbouring codes for this secret and time, checked by hand to be outside the window.
  for (const char* wrong : {"000000", "050472", "05047", "0504711", "05047a", " 50471", ""}) {
    BOOST_TEST_CONTEXT("code \"" << wrong << "\"") {
      BOOST_TEST(!totp_verify(secret, wrong, now).has_value());
    }
  }
  BOOST_TEST(!totp_verify("another secret......", "050471", now).has_value());
  BOOST_CHECK_THROW(totp_verify("", "050471", now), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(otpauth_uris) {
  BOOST_TEST(otpauth_uri("Kasama FHIR", "alice@example.org", "12345678901234567890") ==
             "otpauth://totp/Kasama%20FHIR:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
             "&issuer=Kasama%20FHIR&algorithm=SHA1&digits=6&period=30");
  // A colon in the issuer would split the label in the wrong place.
  BOOST_TEST(otpauth_uri("a:b", "c", "x") ==
             "otpauth://totp/a%3Ab:c?secret=PA&issuer=a%3Ab&algorithm=SHA1&digits=6&period=30");
  BOOST_TEST(otpauth_uri("", "bob", "x") == "otpauth://totp/bob?secret=PA&algorithm=SHA1&digits=6&period=30");
}

// ---------------------------------------------------------------------------------------------
// PKCE

BOOST_AUTO_TEST_CASE(pkce_s256) {
  const std::string rfc_verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  const std::string rfc_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
  auto challenge_of = [](const std::string& v) { return base64url_encode(sha256(v)); };
  const std::string short_verifier = rfc_verifier.substr(0, 42);
  const std::string longest = std::string(128, 'a');
  const std::string too_long = std::string(129, 'a');
  const std::string bad_char = std::string(42, 'a') + "+";
  const std::string all_allowed = "ABCXYZabcxyz0189-._~" + std::string(23, 'q');

  struct Case {
    std::string verifier, challenge;
    bool matches;
  };
  const Case cases[] = {
      {rfc_verifier, rfc_challenge, true},  // RFC 7636 Appendix B
      {rfc_verifier, with_last_char_changed(rfc_challenge), false},
      {rfc_verifier, rfc_challenge + "=", false},
      {rfc_verifier, rfc_verifier, false},  // "plain" is not S256
      {short_verifier, challenge_of(short_verifier), false},
      {longest, challenge_of(longest), true},
      {too_long, challenge_of(too_long), false},
      {bad_char, challenge_of(bad_char), false},
      {all_allowed, challenge_of(all_allowed), true},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.verifier << " / " << c.challenge) {
      BOOST_TEST(pkce_s256_matches(c.verifier, c.challenge) == c.matches);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Passwords

BOOST_AUTO_TEST_CASE(password_hashing) {
  const std::string password = "correct horse battery staple";
  const std::string hash = hash_password(password);
  BOOST_TEST(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
  BOOST_TEST(verify_password(password, hash));
  BOOST_TEST(!verify_password("correct horse battery stapl", hash));
  BOOST_TEST(!verify_password("", hash));
  BOOST_TEST(!password_needs_rehash(hash));

  const std::string again = hash_password(password);
  BOOST_TEST(again != hash);  // fresh salt each time
  BOOST_TEST(verify_password(password, again));

  const std::string empty_password_hash = hash_password("");
  BOOST_TEST(verify_password("", empty_password_hash));
  BOOST_TEST(!verify_password(" ", empty_password_hash));
}

BOOST_AUTO_TEST_CASE(malformed_password_hashes) {
  const std::string password = "hunter2";
  const std::string hash = hash_password(password);
  const std::string cases[] = {
      "",
      "hunter2",
      "$argon2id$v=19$m=19456,t=2,p=1$",
      hash.substr(0, hash.size() - 10),
      hash + std::string("\0junk", 5),
      hash.substr(0, hash.rfind('$')),
      "$argon2id$v=19$m=19456,t=0,p=1" + hash.substr(hash.rfind('$', hash.rfind('$') - 1)),
      "$argon2id$v=19$p=1,t=2,m=19456" + hash.substr(hash.rfind('$', hash.rfind('$') - 1)),
      "$argon2id$v=19$m=19456,t=2,p=1$$" + hash.substr(hash.rfind('$') + 1),
  };
  for (const auto& encoded : cases) {
    BOOST_TEST_CONTEXT(encoded) {
      BOOST_TEST(!verify_password(password, encoded));
      BOOST_TEST(password_needs_rehash(encoded));
    }
  }  // Well-formed but wrong: fails verification without asking for a rehash.
  const std::string tampered = with_last_char_changed(hash);
  BOOST_TEST(!verify_password(password, tampered));
  BOOST_TEST(!password_needs_rehash(tampered));
  BOOST_TEST(verify_password(password, hash));
}

BOOST_AUTO_TEST_CASE(password_rehash_policy) {
  const std::string password = "hunter2";
  const std::string salt = "0123456789abcdef";
  auto encode = [&](argon2_type type, std::uint32_t t, std::uint32_t m, std::size_t salt_len, std::size_t hash_len) {
    std::string out(
        argon2_encodedlen(t, m, 1, static_cast<std::uint32_t>(salt_len), static_cast<std::uint32_t>(hash_len), type),
        '\0');
    const int rc = type == Argon2_id ? argon2id_hash_encoded(t, m, 1, password.data(), password.size(), salt.data(),
                                                             salt_len, hash_len, out.data(), out.size())
                                     : argon2i_hash_encoded(t, m, 1, password.data(), password.size(), salt.data(),
                                                            salt_len, hash_len, out.data(), out.size());
    BOOST_REQUIRE(rc == ARGON2_OK);
    out.resize(out.find('\0'));
    return out;
  };

  struct Case {
    std::string encoded;
    bool verifies, needs_rehash;
  };
  const Case cases[] = {
      {encode(Argon2_id, 2, 19456, 16, 32), true, false},  // exactly current
      {encode(Argon2_id, 1, 4096, 16, 32), true, true},    // weaker memory and time
      {encode(Argon2_id, 1, 19456, 16, 32), true, true},   // weaker time
      {encode(Argon2_id, 2, 16384, 16, 32), true, true},   // weaker memory
      {encode(Argon2_id, 2, 19456, 8, 32), true, true},    // short salt
      {encode(Argon2_id, 2, 19456, 16, 16), true, true},   // short hash
      {encode(Argon2_id, 3, 24576, 16, 32), true, false},  // stronger is fine
      {encode(Argon2_i, 2, 19456, 16, 32), false, true},   // never issued by us
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.encoded) {
      BOOST_TEST(verify_password(password, c.encoded) == c.verifies);
      BOOST_TEST(password_needs_rehash(c.encoded) == c.needs_rehash);
    }
  }
  BOOST_TEST(cases[1].encoded.starts_with("$argon2id$v=19$m=4096,t=1,p=1$"));
}

// ---------------------------------------------------------------------------------------------
// JWT

BOOST_AUTO_TEST_CASE(jwt_round_trips) {
  struct Case {
    const char* alg;
    const Key& key;
    std::size_t signature_bytes;
  };
  const Case cases[] = {
      {"RS256", keys().rsa, 256},
      {"RS384", keys().rsa, 256},
      {"ES256", keys().p256, 64},
      {"ES384", keys().p384, 96},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.alg) {
      const std::string token = sign_jwt(kClaims, c.key, c.alg, "key-1");
      const DecodedJwt jwt = decode_jwt(token);
      BOOST_TEST(jwt.header.dump() == std::string(R"({"alg":")") + c.alg + R"(","typ":"JWT","kid":"key-1"})");
      BOOST_TEST(jwt.payload == kClaims);
      BOOST_TEST(jwt.signing_input == token.substr(0, token.rfind('.')));
      BOOST_TEST(jwt.signature.size() == c.signature_bytes);
      BOOST_TEST(verify_jwt_signature(jwt, c.key));

      // Only the public half, as a relying party would hold it.
      BOOST_TEST(verify_jwt_signature(jwt, Key::from_jwk(c.key.public_jwk("key-1", c.alg))));
      BOOST_TEST(verify_jwt_signature(jwt, Key::from_pem(c.key.public_pem())));
      BOOST_TEST(verify_jwt_signature(jwt, Key::from_pem(c.key.private_pem())));
    }
  }
  BOOST_TEST(decode_jwt(sign_jwt(kClaims, keys().p256, "ES256")).header.dump() == R"({"alg":"ES256","typ":"JWT"})");
}

BOOST_AUTO_TEST_CASE(jwt_rejections) {
  const std::string rs256 = sign_jwt(kClaims, keys().rsa, "RS256");
  const std::string es384 = sign_jwt(kClaims, keys().p384, "ES384");
  auto payload_swapped = [](const std::string& token) {
    ordered_json claims = kClaims;
    claims["sub"] = "mallory";
    const std::size_t first = token.find('.');
    const std::size_t second = token.find('.', first + 1);
    return token.substr(0, first + 1) + base64url_encode(claims.dump()) + token.substr(second);
  };
  auto signature_flipped = [](const std::string& token) {
    DecodedJwt jwt = decode_jwt(token);
    jwt.signature[jwt.signature.size() / 2] ^= 1;
    return jwt.signing_input + "." + base64url_encode(jwt.signature);
  };
  auto realg = [](const std::string& token, const char* alg) {
    DecodedJwt jwt = decode_jwt(token);
    jwt.header["alg"] = alg;
    return jwt;
  };

  auto truncated = [](const std::string& token) {
    DecodedJwt jwt = decode_jwt(token);
    jwt.signature.pop_back();
    return jwt;
  };
  const Key empty;

  // Positive controls, so the false results below are about the tampering.
  BOOST_TEST(verify_jwt_signature(decode_jwt(rs256), keys().rsa));
  BOOST_TEST(verify_jwt_signature(decode_jwt(es384), keys().p384));

  struct Case {
    const char* what;
    DecodedJwt jwt;
    const Key& key;
  };
  const Case cases[] = {
      {"RS256 payload swapped", decode_jwt(payload_swapped(rs256)), keys().rsa},
      {"ES384 payload swapped", decode_jwt(payload_swapped(es384)), keys().p384},
      {"RS256 signature flipped", decode_jwt(signature_flipped(rs256)), keys().rsa},
      {"ES384 signature flipped", decode_jwt(signature_flipped(es384)), keys().p384},
      {"RS256 other key", decode_jwt(rs256), keys().rsa_other},
      {"ES384 other key", decode_jwt(es384), keys().p384_other},
      {"RS256 token, EC key", decode_jwt(rs256), keys().p384},
      {"ES384 token, RSA key", decode_jwt(es384), keys().rsa},
      {"ES384 token, P-256 key", decode_jwt(es384), keys().p256},
      {"RS384 header, EC key", realg(es384, "RS384"), keys().p384},
      {"RS384 header on RS256 signature", realg(rs256, "RS384"), keys().rsa},
      {"ES256 header on ES384 signature", realg(es384, "ES256"), keys().p384},
      {"PS256 header", realg(rs256, "PS256"), keys().rsa},
      {"HS256 header", realg(rs256, "HS256"), keys().rsa},
      {"none header", realg(rs256, "none"), keys().rsa},
      {"truncated signature", truncated(rs256), keys().rsa},
      {"truncated ES signature", truncated(es384), keys().p384},
      {"empty key", decode_jwt(rs256), empty},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.what) {
      BOOST_TEST(!verify_jwt_signature(c.jwt, c.key));
    }
  }

  const std::string unsecured = segment(R"({"alg":"none"})") + "." + segment(kClaims.dump()) + ".";
  const DecodedJwt none = decode_jwt(unsecured);
  BOOST_TEST(none.signature.empty());
  for (const Key* key : {&keys().rsa, &keys().p256, &keys().p384}) BOOST_TEST(!verify_jwt_signature(none, *key));
}

BOOST_AUTO_TEST_CASE(jwt_alg_must_fit_key) {
  // A correct ECDSA signature made with SHA-256 by a P-384 key, labelled ES256. Only the
  // alg/curve check refuses it; the ES384 twin shows the forging helper itself is sound.
  const std::string es256_input = segment(R"({"alg":"ES256","typ":"JWT"})") + "." + segment(kClaims.dump());
  const std::string es384_input = segment(R"({"alg":"ES384","typ":"JWT"})") + "." + segment(kClaims.dump());
  const auto forged =
      decode_jwt(es256_input + "." + base64url_encode(ecdsa_raw(keys().p384, EVP_sha256(), es256_input, 48)));
  const auto control =
      decode_jwt(es384_input + "." + base64url_encode(ecdsa_raw(keys().p384, EVP_sha384(), es384_input, 48)));
  BOOST_TEST(verify_jwt_signature(control, keys().p384));
  BOOST_TEST(!verify_jwt_signature(forged, keys().p384));

  // Classic confusion: HMAC keyed with the server's public key.
  const std::string hs_input = segment(R"({"alg":"HS256","typ":"JWT"})") + "." + segment(kClaims.dump());
  const std::string pem = keys().rsa.public_pem();
  unsigned char mac[32];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), pem.data(), static_cast<int>(pem.size()), reinterpret_cast<const unsigned char*>(hs_input.data()),
       hs_input.size(), mac, &mac_len);
  const std::string hs_token = hs_input + "." + base64url_encode(std::string(reinterpret_cast<char*>(mac), mac_len));
  BOOST_TEST(!verify_jwt_signature(decode_jwt(hs_token), keys().rsa));

  struct Case {
    const char* alg;
    const Key& key;
  };
  const Case mismatches[] = {
      {"RS256", keys().p256}, {"RS384", keys().p384}, {"ES256", keys().rsa}, {"ES256", keys().p384},
      {"ES384", keys().p256}, {"HS256", keys().rsa},  {"none", keys().rsa},  {"PS256", keys().rsa},
  };
  for (const auto& c : mismatches) {
    BOOST_TEST_CONTEXT(c.alg << " with " << c.key.kind()) {
      BOOST_CHECK_THROW(sign_jwt(kClaims, c.key, c.alg), std::invalid_argument);
      BOOST_CHECK_THROW(c.key.public_jwk("k", c.alg), std::invalid_argument);
    }
  }
  BOOST_CHECK_THROW(sign_jwt(ordered_json::array({1, 2}), keys().rsa, "RS256"), std::invalid_argument);
  BOOST_CHECK_THROW(sign_jwt(kClaims, Key::from_pem(keys().rsa.public_pem()), "RS256"), std::logic_error);
}

BOOST_AUTO_TEST_CASE(decode_jwt_rejects_malformed) {
  const std::string header = segment(R"({"alg":"RS256"})");
  const std::string payload = segment(R"({"sub":"alice"})");
  struct Case {
    std::string compact;
    const char* message;
  };
  const Case cases[] = {
      {"a.b", "three"},
      {"", "three"},
      {header + "." + payload + ".c.d", "three"},
      {"!!!." + payload + ".", "header"},
      {header + ".e30=.", "payload"},  // padded
      {header + "." + payload + ".a+b", "signature"},
      {header + "." + segment("[]") + ".", "payload is not a JSON object"},
      {header + "." + segment("\"sub\"") + ".", "payload is not a JSON object"},
      {header + "." + segment("not json") + ".", "payload is not valid JSON"},
      {header + "." + segment("{\"sub\":\"\xff\"}") + ".", "payload is not valid JSON"},  // not UTF-8
      {header + ".." + "", "payload is not valid JSON"},
      {"." + payload + ".", "header is not valid JSON"},
      {segment("[]") + "." + payload + ".", "header is not a JSON object"},
      {segment("{}") + "." + payload + ".", "alg"},
      {segment(R"({"alg":1})") + "." + payload + ".", "alg"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.compact) {
      BOOST_CHECK_EXCEPTION(decode_jwt(c.compact), std::invalid_argument, message_has(c.message));
    }
  }
  const DecodedJwt ok = decode_jwt(header + "." + payload + ".");
  BOOST_TEST(ok.payload["sub"] == "alice");
  BOOST_TEST(ok.signing_input == header + "." + payload);
}

BOOST_AUTO_TEST_CASE(rfc7515_interop) {
  const ordered_json rsa_jwk = {{"kty", "RSA"}, {"n", kRfc7515RsaN}, {"e", "AQAB"}};
  const Key rsa = Key::from_jwk(rsa_jwk);
  BOOST_TEST(rsa.kind() == "RSA");
  BOOST_TEST(!rsa.has_private());
  const DecodedJwt a2 = decode_jwt(kRfc7515A2Jws);
  BOOST_TEST(a2.header.dump() == R"({"alg":"RS256"})");
  BOOST_TEST(a2.payload["iss"] == "joe");
  BOOST_TEST(a2.payload["exp"] == 1300819380);
  BOOST_TEST(verify_jwt_signature(a2, rsa));
  BOOST_TEST(!verify_jwt_signature(decode_jwt(with_last_char_changed(kRfc7515A2Jws)), rsa));
  const ordered_json rsa_out = rsa.public_jwk("2011-04-29", "RS256");
  BOOST_TEST(rsa_out.dump() == std::string(R"({"kty":"RSA","kid":"2011-04-29","alg":"RS256","use":"sig","n":")") +
                                   kRfc7515RsaN + R"(","e":"AQAB"})");

  // Private members in a JWK are ignored rather than refused: only the public key is built.
  const ordered_json ec_jwk = {{"kty", "EC"},
                               {"crv", "P-256"},
                               {"x", kRfc7515EcX},
                               {"y", kRfc7515EcY},
                               {"d", "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}};
  const Key ec = Key::from_jwk(ec_jwk);
  BOOST_TEST(ec.kind() == "EC");
  BOOST_TEST(!ec.has_private());
  const DecodedJwt a3 = decode_jwt(kRfc7515A3Jws);
  BOOST_TEST(a3.signature.size() == 64u);
  BOOST_TEST(verify_jwt_signature(a3, ec));
  BOOST_TEST(!verify_jwt_signature(decode_jwt(with_last_char_changed(kRfc7515A3Jws)), ec));
  BOOST_TEST(ec.public_jwk("", "").dump() == std::string(R"({"kty":"EC","use":"sig","crv":"P-256","x":")") +
                                                 kRfc7515EcX + R"(","y":")" + kRfc7515EcY + R"("})");
}

BOOST_AUTO_TEST_CASE(public_jwk_shapes) {
  const ordered_json rsa = keys().rsa.public_jwk("r1", "RS256");
  std::vector<std::string> names;
  for (const auto& [name, value] : rsa.items()) names.push_back(name);
  BOOST_TEST(names == (std::vector<std::string>{"kty", "kid", "alg", "use", "n", "e"}),
             boost::test_tools::per_element());
  BOOST_TEST(rsa["e"] == "AQAB");
  BOOST_TEST(base64url_decode(rsa["n"].get<std::string>()).size() == 256u);

  const ordered_json p384 = keys().p384.public_jwk("e1", "ES384");
  BOOST_TEST(p384["crv"] == "P-384");
  BOOST_TEST(base64url_decode(p384["x"].get<std::string>()).size() == 48u);
  BOOST_TEST(base64url_decode(p384["y"].get<std::string>()).size() == 48u);

  // Coordinates are fixed-width (RFC 7518 section 6.2.1.2): find keys whose x, and whose y,
  // starts with a zero byte, where a minimal big-endian encoding would come out one byte short.
  bool x_seen = false;
  bool y_seen = false;
  for (int i = 0; i < 10000 && !(x_seen && y_seen); ++i) {
    const Key key = Key::generate_ec_p256();
    unsigned char point[65];
    std::size_t len = 0;
    BOOST_REQUIRE(
        EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point, &len) == 1);
    BOOST_REQUIRE(len == 65u);
    if (point[1] != 0 && point[33] != 0) continue;
    x_seen = x_seen || point[1] == 0;
    y_seen = y_seen || point[33] == 0;
    const ordered_json jwk = key.public_jwk("", "ES256");
    BOOST_TEST(base64url_decode(jwk["x"].get<std::string>()) == std::string(reinterpret_cast<char*>(point + 1), 32));
    BOOST_TEST(base64url_decode(jwk["y"].get<std::string>()) == std::string(reinterpret_cast<char*>(point + 33), 32));
    BOOST_TEST(Key::from_jwk(jwk).public_pem() == key.public_pem());
  }
  BOOST_TEST(x_seen);
  BOOST_TEST(y_seen);
}

BOOST_AUTO_TEST_CASE(from_jwk_rejections) {
  const std::string x = kRfc7515EcX;
  const std::string y = kRfc7515EcY;
  const std::string short_x = base64url_encode(base64url_decode(x).substr(1));
  struct Case {
    ordered_json jwk;
    const char* message;
  };
  const Case cases[] = {
      {ordered_json::array(), "not a JSON object"},
      {ordered_json::object(), "\"kty\" is missing"},
      {{{"kty", "oct"}, {"k", "AyM1"}}, "\"kty\""},
      {{{"kty", 1}}, "\"kty\" is not a string"},
      {{{"kty", "RSA"}, {"e", "AQAB"}}, "\"n\" is missing"},
      {{{"kty", "RSA"}, {"n", kRfc7515RsaN}}, "\"e\" is missing"},
      {{{"kty", "RSA"}, {"n", 5}, {"e", "AQAB"}}, "\"n\" is not a string"},
      {{{"kty", "RSA"}, {"n", "a+b/"}, {"e", "AQAB"}}, "\"n\""},
      {{{"kty", "RSA"}, {"n", ""}, {"e", "AQAB"}}, "\"n\" is empty"},
      {{{"kty", "RSA"}, {"n", "AQAB"}, {"e", "AQAB"}}, "\"n\": RSA modulus has 17 bits"},
      {{{"kty", "RSA"}, {"n", kRfc7515RsaN}, {"e", "AQAA"}}, "\"e\""},  // even exponent
      {{{"kty", "EC"}, {"x", x}, {"y", y}}, "\"crv\" is missing"},
      {{{"kty", "EC"}, {"crv", "P-521"}, {"x", x}, {"y", y}}, "\"crv\": unsupported curve \"P-521\""},
      {{{"kty", "EC"}, {"crv", "secp256k1"}, {"x", x}, {"y", y}}, "\"crv\""},
      {{{"kty", "EC"}, {"crv", "P-256"}, {"y", y}}, "\"x\" is missing"},
      {{{"kty", "EC"}, {"crv", "P-256"}, {"x", x}}, "\"y\" is missing"},
      {{{"kty", "EC"}, {"crv", "P-256"}, {"x", short_x}, {"y", y}}, "\"x\" has 31 bytes"},
      {{{"kty", "EC"}, {"crv", "P-384"}, {"x", x}, {"y", y}}, "\"x\" has 32 bytes; P-384 needs 48"},
      {{{"kty", "EC"}, {"crv", "P-256"}, {"x", x}, {"y", x}}, "not a point on P-256"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.jwk.dump()) {
      BOOST_CHECK_EXCEPTION(Key::from_jwk(c.jwk), std::invalid_argument, message_has(c.message));
    }
  }
}

BOOST_AUTO_TEST_CASE(pem_round_trips) {
  for (const Key* key : {&keys().rsa, &keys().p256, &keys().p384}) {
    BOOST_TEST_CONTEXT(key->kind()) {
      BOOST_TEST(key->has_private());
      const std::string private_pem = key->private_pem();
      const std::string public_pem = key->public_pem();
      BOOST_TEST(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
      BOOST_TEST(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));

      const Key reloaded = Key::from_pem(private_pem);
      BOOST_TEST(reloaded.has_private());
      BOOST_TEST(reloaded.public_pem() == public_pem);
      const Key public_only = Key::from_pem(public_pem);
      BOOST_TEST(!public_only.has_private());
      BOOST_TEST(public_only.kind() == key->kind());
      BOOST_CHECK_THROW(public_only.private_pem(), std::logic_error);

      const char* alg = key->kind() == "RSA" ? "RS256" : (key == &keys().p256 ? "ES256" : "ES384");
      BOOST_TEST(verify_jwt_signature(decode_jwt(sign_jwt(kClaims, reloaded, alg)), public_only));
    }
  }
}

BOOST_AUTO_TEST_CASE(from_pem_formats) {
  // Traditional ("BEGIN EC PRIVATE KEY" / "BEGIN RSA PRIVATE KEY") PEM is accepted.
  const std::string traditional_ec = pem_of(keys().p256.get(), true);
  BOOST_TEST(traditional_ec.starts_with("-----BEGIN EC PRIVATE KEY-----"));
  BOOST_TEST(Key::from_pem(traditional_ec).public_pem() == keys().p256.public_pem());
  const std::string traditional_rsa = pem_of(keys().rsa.get(), true);
  BOOST_TEST(traditional_rsa.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
  BOOST_TEST(Key::from_pem(traditional_rsa).has_private());

  EVP_PKEY* ed25519 = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  EVP_PKEY* p521 = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521");
  EVP_PKEY* rsa1024 = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(1024));
  BOOST_REQUIRE(ed25519 && p521 && rsa1024);
  struct Case {
    std::string pem;
    const char* message;
  };
  const Case cases[] = {
      {"", "empty"},
      {"not a pem", "PEM"},
      {"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "PEM"},
      {pem_of(keys().rsa.get(), false, EVP_aes_256_cbc()), "unencrypted"},  // must not prompt
      {pem_of(ed25519, false), "unsupported key type ED25519"},
      {pem_of(p521, false), "unsupported EC curve secp521r1"},
      {pem_of(rsa1024, false), "1024 bits"},
  };
  EVP_PKEY_free(ed25519);
  EVP_PKEY_free(p521);
  EVP_PKEY_free(rsa1024);
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.pem) {
      BOOST_CHECK_EXCEPTION(Key::from_pem(c.pem), std::invalid_argument, message_has(c.message));
    }
  }
  BOOST_CHECK_THROW(Key::generate_rsa(1024), std::invalid_argument);
  BOOST_TEST(!Key().valid());
  BOOST_TEST(keys().rsa.valid());
}

BOOST_AUTO_TEST_CASE(concurrent_signing) {
  // Keys are shared read-only between request threads; nothing in the path may mutate them.
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&failures] {
      for (int i = 0; i < 25; ++i) {
        const bool ok = verify_jwt_signature(decode_jwt(sign_jwt(kClaims, keys().p256, "ES256")), keys().p256) &&
                        verify_jwt_signature(decode_jwt(sign_jwt(kClaims, keys().rsa, "RS256")), keys().rsa) &&
                        totp_verify("12345678901234567890", "050471", 1111111111) == 37037037;
        if (!ok) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  BOOST_TEST(failures.load() == 0);
}
