#pragma once
// Cryptographic building blocks for authentication: encodings, digests, password hashing,
// PKCE, TOTP and JWS (JWT) signing/verification. Everything here is stateless apart from the
// OpenSSL key objects, which are only read after construction, so all functions are safe to
// call from several threads at once.
#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace kasama::auth {

// Throws std::runtime_error if the system RNG fails; never returns predictable bytes.
std::string random_bytes(std::size_t n);
// base64url (no padding) of `bytes` random bytes: an opaque token safe in URLs and headers.
std::string random_token(std::size_t bytes = 32);

// Decoders throw std::invalid_argument on any character outside the alphabet, misplaced padding,
// impossible lengths, or non-zero unused trailing bits (so each byte string has one encoding).
std::string base64url_encode(std::string_view bytes);  // no padding
std::string base64url_decode(std::string_view text);   // padding optional
std::string base64_encode(std::string_view bytes);     // standard alphabet, padded
std::string base64_decode(std::string_view text);      // standard alphabet, padding required

std::string sha256(std::string_view data);  // raw 32 bytes
std::string sha256_hex(std::string_view data);
std::string hmac_sha1(std::string_view key, std::string_view data);  // raw 20 bytes
// Time independent of the contents; false if the sizes differ (sizes are not secret).
bool constant_time_equal(std::string_view a, std::string_view b);

// Passwords: Argon2id with the OWASP parameters (m = 19456 KiB, t = 2, p = 1), 16-byte random
// salt, 32-byte hash, stored as a PHC string: $argon2id$v=19$m=19456,t=2,p=1$salt$hash.
std::string hash_password(std::string_view password);
// False on mismatch, on malformed strings, and on parameters so large that checking them would
// let a tampered row exhaust the server (over 1 GiB of memory, t > 64 or p > 16).
bool verify_password(std::string_view password, const std::string& encoded);
// True if `encoded` is not Argon2id v19 or any of m, t, salt or hash length is below the
// current setting (also true for strings that cannot be parsed).
bool password_needs_rehash(const std::string& encoded);

// PKCE (RFC 7636) for the S256 method; callers handle the method name themselves and must
// refuse "plain". True iff the verifier is 43..128 characters of [A-Za-z0-9-._~] and
// base64url(sha256(verifier)) == challenge.
bool pkce_s256_matches(std::string_view verifier, std::string_view challenge);

// TOTP (RFC 6238): HMAC-SHA-1, 6 digits, 30 s steps from the Unix epoch. `secret` is raw bytes;
// base32 (RFC 4648, upper case, no padding) is only the transport form for authenticator apps.
std::string base32_encode(std::string_view bytes);
// Case-insensitive; ignores spaces and '=' so secrets typed by hand decode. Throws
// std::invalid_argument on other characters or impossible lengths.
std::string base32_decode(std::string_view text);
// Throws std::invalid_argument for an empty secret or a negative time.
std::string totp_code(std::string_view secret, std::int64_t unix_seconds);
// Accepts codes for steps t-1, t and t+1 (clock drift) and returns the step that matched, so
// callers can store it and refuse a second use of the same or an earlier step.
std::optional<std::int64_t> totp_verify(std::string_view secret, std::string_view code, std::int64_t unix_seconds);
// otpauth://totp/Issuer:account?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
std::string otpauth_uri(std::string_view issuer, std::string_view account, std::string_view secret);

// An RSA (>= 2048 bits) or EC (P-256, P-384) key, public or private. Copies share the
// underlying EVP_PKEY, which is never modified after construction.
class Key {
 public:
  Key() = default;  // invalid until assigned

  static Key generate_rsa(int bits = 2048);  // throws std::invalid_argument below 2048 bits
  static Key generate_ec_p256();
  static Key generate_ec_p384();
  // Private key (PKCS#8 or traditional) or public key (SPKI) PEM. Encrypted private keys are
  // refused rather than prompting for a passphrase. Throws std::invalid_argument.
  static Key from_pem(std::string_view pem);
  // Public JWK: kty RSA (n, e) or kty EC with crv P-256/P-384 (x, y). Private members are
  // ignored. Throws std::invalid_argument naming the member at fault.
  static Key from_jwk(const nlohmann::ordered_json& jwk);

  std::string private_pem() const;  // PKCS#8; throws std::logic_error for a public-only key
  std::string public_pem() const;   // SPKI
  // kty, kid, alg, use "sig", then n/e or crv/x/y. kid and alg are left out when empty; a
  // non-empty alg that does not fit the key throws std::invalid_argument.
  nlohmann::ordered_json public_jwk(std::string_view kid, std::string_view alg) const;
  std::string kind() const;  // "RSA" or "EC"
  bool has_private() const;
  bool valid() const { return pkey_ != nullptr; }
  EVP_PKEY* get() const { return pkey_.get(); }

 private:
  explicit Key(EVP_PKEY* pkey);  // takes ownership
  std::shared_ptr<EVP_PKEY> pkey_;
};

// JWS compact serialization with RS256, RS384, ES256 or ES384. ES signatures are the raw r||s of
// RFC 7518 section 3.4. The header is {"alg", "typ": "JWT"} plus "kid" when non-empty; claims
// must be an object. Throws std::invalid_argument if alg is unsupported or does not fit the key,
// std::logic_error if the key has no private part.
std::string sign_jwt(const nlohmann::ordered_json& claims, const Key& key, std::string_view alg,
                     std::string_view kid = "");

struct DecodedJwt {
  nlohmann::ordered_json header, payload;
  std::string signing_input;  // header.payload exactly as received
  std::string signature;      // raw bytes
};
// Splits and decodes without verifying anything. Throws std::invalid_argument if there are not
// exactly three segments, a segment is not base64url, the header is not an object with a
// string "alg", or the payload is not a JSON object.
DecodedJwt decode_jwt(std::string_view compact);
// False (never throws) if the header's alg is not RS256/RS384/ES256/ES384, does not fit the
// key (RS* needs RSA, ES256 P-256, ES384 P-384), or the signature does not verify.
bool verify_jwt_signature(const DecodedJwt& jwt, const Key& key);

}  // namespace kasama::auth
