#pragma once
// Compiles parsed search clauses to SQL over the index tables (migration 0002). One
// function per parameter type and modifier; parameters are data. Values reach the SQL only
// as hashes, numbers or through Connection::quote.
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/search/query.hpp"
#include "server/storage/db.hpp"

namespace kasama::search {

// A search that cannot run (unsupported modifier, parameter without an expression).
class SearchFailure : public std::runtime_error {
 public:
  explicit SearchFailure(QueryError e) : std::runtime_error(e.message), error(std::move(e)) {}
  QueryError error;
};

class SqlCompiler {
 public:
  SqlCompiler(storage::Connection& c, unsigned tenant, std::string base_url)
      : c_(c), tenant_(tenant), base_url_(std::move(base_url)) {}

  // A boolean SQL expression over the resource row alias `r` (columns pk, res_id,
  // last_updated) of resource type `type` that holds when the resource matches the clause.
  std::string clause(const std::string& type, const Clause& cl, const std::string& r);

  // Date clauses on one single-valued parameter (Patient.birthDate), one value each, tested
  // on the same index row: the same meaning (there is one row), and one index range instead
  // of a join of two (birthdate=ge1950&birthdate=lt1951).
  static bool single_valued(const SearchParam& p);
  std::string same_row_dates(const std::string& type, const std::vector<const Clause*>& clauses, const std::string& r);
  // A clause that finds its resources by key equality (token, reference, chain, ...): with
  // one of these in a query of several clauses, the others are best probed per resource.
  static bool equality_lookup(const Clause& cl);

  // Counting the matches of a type search with this one clause straight from its index
  // table, when the clause is one positive lookup there on a parameter of the type itself.
  // Index rows exist only for the current, live version of resources of the type their
  // hash names, so the join to the resource table adds nothing but cost.
  std::optional<std::string> direct_count(const std::string& type, const Clause& cl);

  // The index-table expression of a sort key: the lowest (ascending) or highest value of
  // the parameter for the resource row alias r; empty when the type cannot be sorted on.
  std::string sort_value(const std::string& type, const SearchParam& p, bool descending, const std::string& r);

  // A condition over a resource row alias that every resource a chain or _has looks into
  // must meet as well (the caller's access filter); none by default.
  void restrict_to(std::function<std::string(const std::string& alias)> f) { restrict_ = std::move(f); }
  bool restricted() const { return static_cast<bool>(restrict_); }
  std::string restriction(const std::string& alias) const { return restrict_ ? restrict_(alias) : std::string(); }

  std::string quote(std::string_view s) const { return c_.quote(s); }
  std::string tenant() const { return std::to_string(tenant_); }
  static std::string hash(std::initializer_list<std::string_view> parts);

 private:
  std::string value_expr(const std::string& type, const Clause& cl, const Value& v, const std::string& r);
  std::string in_index(const char* table, const std::string& cond, const std::string& r, bool negate = false);
  std::string fresh(const char* stem);
  std::string number_range(const std::string& col, const Value& v);
  std::string date_range(const std::string& lo, const std::string& hi, const Value& v);
  std::string last_updated(const Value& v, const std::string& col);

  storage::Connection& c_;
  unsigned tenant_;
  std::string base_url_;
  unsigned alias_ = 0;
  std::optional<std::pair<std::string, std::string>> last_index_;  // (table, condition) of the last in_index
  std::function<std::string(const std::string&)> restrict_;
  std::string restricted(const std::string& alias) const { return restrict_ ? " AND " + restrict_(alias) : ""; }
};

// The half-width of the range a decimal's written precision implies ("100" -> 0.5, "1.50" -> 0.005).
double implied_half_width(std::string_view decimal);
// parts joined by sep (SQL lists and conditions).
std::string join_sql(const std::vector<std::string>& parts, const char* sep);
// A LIKE pattern (backslash escapes) matching text that starts with prefix.
std::string like_prefix(std::string_view prefix);

}  // namespace kasama::search
