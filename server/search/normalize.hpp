#pragma once
// The folded form of text that string search compares: NFKC with case folding (so
// half-width kana, full-width letters and digits and letter case all fold together:
// ﾔﾏﾀﾞ = ヤマダ, ＡＢＣ = abc), then the accents of Latin, Greek and Cyrillic letters
// removed (José = jose). Japanese voiced and semi-voiced sound marks are not accents and
// stay: ダ never folds to タ.
#include <cstddef>
#include <string>
#include <string_view>

namespace kasama::search {

std::string fold_text(std::string_view utf8);

// At most max_chars code points of valid UTF-8 (the index column's width).
std::string truncate_chars(std::string_view utf8, std::size_t max_chars);

}  // namespace kasama::search
