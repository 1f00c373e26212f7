#pragma once
// Parses the parameters of a FHIR search (search.html, R4) for one resource type into
// clauses against the Registry's SearchParams. Parsing only: nothing here reads storage.
// Errors are returned in the result (QueryError), never thrown.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "resources/fhir_time.hpp"
#include "server/search/registry.hpp"

namespace kasama::search {

enum class Prefix : std::uint8_t { kEq, kNe, kGt, kLt, kGe, kLe, kSa, kEb, kAp };
const char* prefix_name(Prefix prefix);

struct QueryError {
  int status = 400;
  std::string code;  // OperationOutcome issue code: "value", "not-supported", "invalid"
  std::string message;
  std::string parameter;  // the parameter at fault as written ("name:modifier")
};

// One value of an OR list (the comma-separated parts of a parameter value).
struct Value {
  std::string text;                           // the whole value, unescaped (without a prefix for number/date/quantity)
  Prefix prefix = Prefix::kEq;                // number, date, quantity
  std::optional<resources::TimeRange> range;  // date: [lo, hi] of the value's precision
  std::string number;                         // number, quantity: the decimal as written
  bool has_system = false;                    // token "system|code" and "|code"; quantity with a system
  std::string system;                         // token, quantity, reference :identifier (unescaped)
  std::string code;                           // token, quantity, reference :identifier (unescaped)
  std::string ref_type;                       // reference: "Patient" of "Patient/1" (or from a type modifier)
  std::string ref_id;                         // reference: "1"
  std::string url;                            // reference: an absolute URL
  bool missing = false;                       // :missing=true
  std::vector<Value> components;              // composite: one Value per component, in order
};

struct Chain;
struct Has;

struct Clause {
  const SearchParam* param = nullptr;
  std::string name;              // the parameter as written, with its modifier
  std::string modifier;          // "" when none; for a reference, may be a resource type
  std::vector<Value> values;     // OR
  std::shared_ptr<Chain> chain;  // set for "subject:Patient.name=x": values are then empty
  std::shared_ptr<Has> has;      // set for "_has:Observation:patient:code=x": param and values empty
};

// Reverse chaining: some resource of source_type whose ref_param refers to the searched
// resource matches inner.
struct Has {
  std::string source_type;
  const SearchParam* ref_param = nullptr;
  Clause inner;
};

// A chained parameter: the clause's reference param points at target_type, whose
// resources must match inner.
struct Chain {
  std::string target_type;
  Clause inner;
};

struct ParsedQuery {
  std::vector<Clause> clauses;                               // AND
  std::vector<std::pair<std::string, std::string>> result;   // _count, _sort, ... kept raw
  std::vector<std::pair<std::string, std::string>> ignored;  // lenient: unknown parameters
  std::optional<QueryError> error;
  bool ok() const { return !error.has_value(); }
};

// The result parameters (_count, _sort, _include, ...) kept raw by parse_search.
bool is_result_parameter(std::string_view name);

// params are already percent-decoded (name, value) pairs. lenient (Prefer:
// handling=lenient) records unknown parameters in ignored instead of failing.
ParsedQuery parse_search(std::string_view type, const std::vector<std::pair<std::string, std::string>>& params,
                         bool lenient);

}  // namespace kasama::search
