#pragma once
// FHIRPath (http://hl7.org/fhirpath, N1 as used by FHIR R4): a tokenizer and precedence
// parser to an AST, and an evaluator over collections of nodes in a resource held as Json.
// Typing comes from the TypeModel: navigation resolves choice elements (valueQuantity is
// `value` of type Quantity) and primitive "_x" extensions, so `as`/`is`/`ofType` work.
//
// Scope: what the R4 SearchParameter expressions use plus the common functions (see
// fhirpath.cpp for the list). Anything else fails with FhirPathError naming it: never a
// silently wrong answer. resolve() does not fetch: it yields, for "Type/id" (relative or
// absolute) references, a stand-in {resourceType, id} of that type, and for "#id" the
// contained resource; so `resolve() is Patient` and `where(resolve() is Patient)` work.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "resources/json.hpp"
#include "resources/type_model.hpp"

namespace kasama::resources::fhirpath {

class FhirPathError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One item of a collection. For model values `value` points into the evaluated resource
// (which must outlive the results); computed values (literals, function results) own theirs.
struct Node {
  const Json* value = nullptr;  // null for a primitive that has only its "_x" part
  const Json* ext = nullptr;    // a primitive's "_x" sibling object (id, extension), if any
  // FHIR type name ("HumanName", "string", "Patient"), or for computed values a System type
  // ("System.String", "System.Boolean", "System.Integer", "System.Decimal"); empty if unknown.
  std::string type;
  const ElementContext* context = nullptr;  // where its children are looked up
  std::shared_ptr<const Json> owned;        // keeps a computed value alive
};

using Collection = std::vector<Node>;

struct Expr;  // AST, defined in fhirpath.cpp

class Expression {
 public:
  // Throws FhirPathError (message names the offset and problem, or the unknown function).
  static Expression parse(std::string_view text);

  // Evaluates with the resource as context, %resource, %rootResource and %context.
  // Throws FhirPathError on type errors and unsupported functions.
  Collection evaluate(const Json& resource) const;
  Collection evaluate(const Collection& input, const Json& root_resource) const;

  const std::string& text() const { return text_; }

 private:
  std::shared_ptr<const Expr> root_;
  std::string text_;
};

// Convenience: a node for a whole resource (type from resourceType).
Node resource_node(const Json& resource);
// The node's primitive value rendered as text (strings as-is, numbers and booleans as
// FHIRPath toString()); empty optional for complex or absent values.
std::optional<std::string> primitive_text(const Node& node);

}  // namespace kasama::resources::fhirpath
