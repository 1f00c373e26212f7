#include "server/search/escapes.hpp"

namespace kasama::search {
namespace {

std::vector<std::string> split(std::string_view value, char sep, bool keep_sep_escape) {
  std::vector<std::string> out(1);
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      if (keep_sep_escape || value[i + 1] != sep) out.back().push_back('\\');
      out.back().push_back(value[++i]);
    } else if (value[i] == sep) {
      out.emplace_back();
    } else {
      out.back().push_back(value[i]);
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> split_list(std::string_view value, char sep) {
  return split(value, sep, false);
}

std::vector<std::string> split_keeping_escapes(std::string_view value, char sep) {
  return split(value, sep, true);
}

std::string unescape(std::string_view value) {
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) ++i;
    out.push_back(value[i]);
  }
  return out;
}

}  // namespace kasama::search
