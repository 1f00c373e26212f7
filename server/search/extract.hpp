#pragma once
// Index extraction: the values a resource has for each of its type's search parameters,
// found by evaluating the registry's FHIRPath expressions and turned into index rows by
// the FHIR type of each value (Coding, HumanName, Period, Quantity, Reference, ...). Written
// once per value type, never per parameter.
//
// Beside a parameter's own rows, some modifiers need rows of their own, kept under the
// parameter's code with a suffix: "code:text" (string rows: CodeableConcept.text and
// Coding.display, Identifier.type.text), "identifier:of-type" (token rows: system =
// type coding's system, value = "code|value"), "subject:identifier" (token rows from
// Reference.identifier). _id and _lastUpdated are served from the resource table.
#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "resources/json.hpp"
#include "server/search/registry.hpp"
#include "server/storage/index_rows.hpp"

namespace kasama::search {

struct CompiledParam;

class Extractor {
 public:
  explicit Extractor(const Registry& registry) : registry_(registry) {}
  static const Extractor& instance();  // over Registry::instance()

  // base_url: absolute references below it count as local ("Patient/1").
  storage::IndexRows extract(std::string_view type, const resources::Json& resource, std::string_view base_url) const;

  // Parameters whose expression could not be compiled (reported once at startup).
  std::vector<std::string> failures() const;
  // Evaluations that failed on a resource (the parameter was left unindexed for it): the
  // count and the first few messages, "Type.code: message".
  std::size_t evaluation_errors() const { return eval_errors_.load(); }
  std::vector<std::string> evaluation_error_samples() const;

 private:
  const std::vector<std::shared_ptr<CompiledParam>>& compiled(std::string_view type) const;
  const Registry& registry_;
  mutable std::shared_mutex mu_;
  mutable std::unordered_map<std::string, std::vector<std::shared_ptr<CompiledParam>>> by_type_;
  mutable std::vector<std::string> failures_;
  mutable std::atomic<std::size_t> eval_errors_{0};
  mutable std::vector<std::string> eval_samples_;  // guarded by mu_
};

}  // namespace kasama::search
