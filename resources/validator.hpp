#pragma once
// Structural validation of FHIR R4 JSON resources (json.html, datatypes.html): every
// property is defined where it appears, arrays exactly where elements repeat, primitives of
// the right JSON type and lexical form, primitive extensions ("_x") well formed and aligned,
// required elements present. Also:
// - required bindings (terminologies.html#required) on code, Coding and CodeableConcept
//   elements whose value set is known from the core definitions (TypeModel::find_value_set;
//   value sets of external terminologies such as SNOMED CT, UCUM or MIME types are not
//   checked): a code is one of the set's codes; a Coding's system and code are in the set; a
//   CodeableConcept has at least one such coding (text alone does not do) -> "code-invalid";
// - narrative XHTML (Narrative.div): well-formed, a <div> in the XHTML namespace, only the
//   elements and attributes of txt-1, some content (txt-2), no active content (narrative.hpp)
//   -> "value".
// Other invariants, extensible/preferred bindings and profiles are not checked.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "resources/json.hpp"
#include "resources/type_model.hpp"

namespace kasama::resources {

struct ValidationIssue {
  std::string code;        // FHIR IssueType: "structure", "value", "required" or "code-invalid"
  std::string expression;  // where: "Patient.name[0].given[1]", "Bundle.entry[3].resource.subject"
  std::string message;     // names the element and what is wrong, in plain English
};

// Validation stops adding issues after this many.
inline constexpr std::size_t kMaxValidationIssues = 100;

// Issues of a resource given as parsed FHIR JSON (parse_json); empty means valid.
// Expressions use the JSON property names as written ("Observation.valueQuantity.value",
// "Patient._birthDate.extension[0].url"), rooted at the resource type; "resourceType" when
// the root has no usable type, empty when the document is not a JSON object at all. Nested resources (contained,
// Bundle.entry.resource, Parameters.parameter.resource) are validated as the type their resourceType names.
std::vector<ValidationIssue> validate_resource(const Json& resource);
std::vector<ValidationIssue> validate_resource(const Json& resource, const TypeModel& model);

// Whether text is a valid lexical value of a primitive (for values that arrive as text:
// XML attributes, search parameters). boolean/integer/decimal forms are checked as the
// JSON/XML text of the value ("true", "-12", "1.50"); string-like types must be non-empty.
bool is_valid_primitive_text(PrimitiveFormat format, std::string_view text);

}  // namespace kasama::resources
