#include "server/search/normalize.hpp"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <stdexcept>

namespace kasama::search {

namespace {

// Combining marks that are accents of alphabetic scripts. U+3099/U+309A (kana voicing
// marks) are deliberately not among them.
bool is_accent(UChar32 c) {
  return (c >= 0x0300 && c <= 0x036F) || (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) ||
         (c >= 0x20D0 && c <= 0x20FF) || (c >= 0xFE20 && c <= 0xFE2F);
}

struct Normalizers {
  const icu::Normalizer2* casefold = nullptr;
  const icu::Normalizer2* nfd = nullptr;
  const icu::Normalizer2* nfc = nullptr;
  Normalizers() {
    UErrorCode st = U_ZERO_ERROR;
    casefold = icu::Normalizer2::getNFKCCasefoldInstance(st);
    nfd = icu::Normalizer2::getNFDInstance(st);
    nfc = icu::Normalizer2::getNFCInstance(st);
    if (U_FAILURE(st)) throw std::runtime_error(std::string("ICU normalizers unavailable: ") + u_errorName(st));
  }
};

const Normalizers& normalizers() {
  static const Normalizers n;
  return n;
}

bool plain_ascii_lower(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80 || (c >= 'A' && c <= 'Z')) return false;
  return true;
}

}  // namespace

std::string fold_text(std::string_view utf8) {
  std::string out;
  // Lower-case ASCII is already folded; most identifiers and many names are.
  if (plain_ascii_lower(utf8)) return std::string(utf8);
  const auto& n = normalizers();
  UErrorCode st = U_ZERO_ERROR;
  icu::UnicodeString s = icu::UnicodeString::fromUTF8(icu::StringPiece(utf8.data(), static_cast<int32_t>(utf8.size())));
  icu::UnicodeString folded = n.casefold->normalize(s, st);
  icu::UnicodeString decomposed = n.nfd->normalize(folded, st);
  icu::UnicodeString kept;
  for (int32_t i = 0; i < decomposed.length();) {
    UChar32 c = decomposed.char32At(i);
    if (!is_accent(c)) kept.append(c);
    i += U16_LENGTH(c);
  }
  icu::UnicodeString composed = n.nfc->normalize(kept, st);
  if (U_FAILURE(st)) return std::string(utf8);
  composed.toUTF8String(out);
  return out;
}

std::string truncate_chars(std::string_view utf8, std::size_t max_chars) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    if ((static_cast<unsigned char>(utf8[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) return std::string(utf8.substr(0, i));
      ++chars;
    }
  }
  return std::string(utf8);
}

}  // namespace kasama::search
