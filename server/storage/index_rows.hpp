#pragma once
// The search-index rows of one resource version, one vector per value type. The search
// extractor (server/search/extract) fills them from the registry's FHIRPath expressions;
// ResourceStore::replace_index writes them in the resource's own transaction. Every row
// names its parameter by code; the store hashes (type, code, ...) into the key columns.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kasama::storage {

// What a row's hashes are scoped by: the resource type, except for the parameters every
// resource has (their codes start with '_': _tag, _profile, _security, _source), which are
// scoped by "Resource" so that a search across all types needs one lookup.
inline std::string_view index_scope(std::string_view type, std::string_view param) {
  return !param.empty() && param[0] == '_' ? std::string_view("Resource") : type;
}

struct TokenRow {
  std::string param;
  std::string system;  // empty = no system
  std::string value;
};

struct StringRow {
  std::string param;
  std::string folded;  // fold_text() of the value: default and :contains search, sorting
  std::string exact;   // the value as written: :exact search (by hash)
};

// A half-open instant range [lo, hi) in ms; open ends are kOpenLow/kOpenHigh.
struct DateRow {
  std::string param;
  std::int64_t lo = 0;
  std::int64_t hi = 0;
  static constexpr std::int64_t kOpenLow = -(std::int64_t{1} << 60);
  static constexpr std::int64_t kOpenHigh = std::int64_t{1} << 60;
};

struct NumberRow {
  std::string param;
  double value = 0;
};

struct QuantityRow {
  std::string param;
  double value = 0;
  std::string system;
  std::string code;  // Quantity.code, else Quantity.unit
};

struct UriRow {
  std::string param;
  std::string value;
};

// A reference to a resource on this server (type and id), or to anything else (url).
struct ReferenceRow {
  std::string param;
  std::string target_type;
  std::string target_id;
  std::string url;
};

// One combination of a composite parameter's two components. The first is a token
// (system may be empty); the second is one of the other kinds, filled as its type needs.
struct CompositeRow {
  std::string param;
  std::string system1, code1;
  std::string system2, code2;       // token, quantity (system, code) or reference (code2 = Type/id or url)
  std::string text2;                // string: folded text
  std::optional<double> number2;    // quantity or number
  std::optional<std::int64_t> lo2;  // date
  std::optional<std::int64_t> hi2;
};

struct IndexRows {
  std::vector<TokenRow> tokens;
  std::vector<StringRow> strings;
  std::vector<DateRow> dates;
  std::vector<NumberRow> numbers;
  std::vector<QuantityRow> quantities;
  std::vector<UriRow> uris;
  std::vector<ReferenceRow> references;
  std::vector<CompositeRow> composites;
  bool empty() const {
    return tokens.empty() && strings.empty() && dates.empty() && numbers.empty() && quantities.empty() &&
           uris.empty() && references.empty() && composites.empty();
  }
};

}  // namespace kasama::storage
