#pragma once
// The search parameters the server knows, as data: the R4 core SearchParameter Bundle
// (conformance/r4/search-parameters.json, vendored unmodified) plus the project's own. C++
// is written per parameter type and modifier, never per parameter; everything a parameter
// needs (type, FHIRPath expression, targets, components) comes from here.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "resources/json.hpp"

namespace kasama::search {

enum class ParamType : std::uint8_t {
  kNumber,
  kDate,
  kString,
  kToken,
  kReference,
  kComposite,
  kQuantity,
  kUri,
  kSpecial
};

std::optional<ParamType> param_type_from(std::string_view code);
const char* param_type_name(ParamType type);

struct SearchParam {
  std::string url;
  std::string code;  // what appears in a query: "birthdate", "_lastUpdated"
  ParamType type = ParamType::kToken;
  std::string expression;            // for one base type: the union parts rooted at that type
  std::string base;                  // the resource type (or Resource/DomainResource for common ones)
  std::vector<std::string> targets;  // reference: resource types it may point to
  std::vector<std::string> comparators;
  struct Component {
    std::string definition;  // url of the component's SearchParameter
    std::string expression;  // relative to the composite's value
  };
  std::vector<Component> components;
};

class Registry {
 public:
  // Throws std::runtime_error naming the problem when a bundle is malformed.
  void add_bundle(const resources::Json& bundle);
  static const Registry& instance();  // conformance_dir()/r4/search-parameters.json, loaded once

  // A parameter of a resource type, including the ones every resource has (_id,
  // _lastUpdated, _tag, ...) and every DomainResource has (_text).
  const SearchParam* find(std::string_view type, std::string_view code) const;
  // All parameters of a resource type (own first, then common), in a stable order.
  std::vector<const SearchParam*> for_type(std::string_view type) const;
  const SearchParam* by_url(std::string_view url) const;
  std::size_t size() const { return params_.size(); }
  // SHA-256 over every parameter's definition and the index format: a change means the
  // stored index is stale.
  std::string fingerprint() const;

 private:
  void add(SearchParam p);
  std::vector<std::unique_ptr<SearchParam>> params_;
  std::unordered_map<std::string, const SearchParam*> by_key_;  // "Type|code"
  std::unordered_map<std::string, std::vector<const SearchParam*>> by_type_;
  std::unordered_map<std::string, const SearchParam*> by_url_;  // for a multi-base url: its first base
};

// Why the server cannot search on a parameter (empty when it can): no expression (the
// special ones), or a composite of more than two parts.
std::string unsupported_reason(const SearchParam& p);
// The modifiers and prefixes a parameter type supports, for the CapabilityStatement.
const char* modifiers_documentation(ParamType type);

// The parts of a FHIRPath union expression ("A.x | B.y.where(...)") rooted at type:
// "Observation.subject | Condition.subject" for Observation gives "Observation.subject".
// An expression with no part rooted at any type name is returned whole.
std::string expression_for_base(std::string_view expression, std::string_view type);

}  // namespace kasama::search
