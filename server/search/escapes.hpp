#pragma once
// Search parameter values and their escapes (search.html#escaping): "\," "\|" "\$" "\\"
// are literal characters. A value is split in steps (commas, then '|' or '$'), and only
// the last step unescapes.
#include <string>
#include <string_view>
#include <vector>

namespace kasama::search {

// Splits on unescaped sep; "\<sep>" becomes a plain sep in the part, other escapes stay
// for the next step.
std::vector<std::string> split_list(std::string_view value, char sep = ',');
// Splits on unescaped sep keeping every escape, for parts that are split again.
std::vector<std::string> split_keeping_escapes(std::string_view value, char sep);
std::string unescape(std::string_view value);

}  // namespace kasama::search
