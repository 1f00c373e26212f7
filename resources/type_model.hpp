#pragma once
// The FHIR R4 type model: every resource, complex datatype and primitive with its element
// tree, read from conformance/r4/type-model.json (made by tools/gen_type_model.py from the
// official StructureDefinitions). Validation, JSON<->XML conversion and search all walk
// resources through child() so that choice names, contentReference and backbone elements
// are resolved in one place.
//
// The model is immutable after loading; all pointers it hands out live as long as it does
// (for instance(): the whole process), so callers may keep them.
//
// It also holds the codes of the value sets that required bindings name, from
// conformance/r4/required-codes.json (same generator), attached to the elements they bind.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace kasama::resources {

enum class TypeKind : std::uint8_t { primitive, datatype, resource };

// How a value of a type is written in FHIR JSON.
enum class JsonKind : std::uint8_t { object, boolean, number, string };

enum class BindingStrength : std::uint8_t { none, required, extensible, preferred, example };

// The lexical rule of each R4 primitive (datatypes.html); none for complex types.
enum class PrimitiveFormat : std::uint8_t {
  none,
  boolean,
  integer,
  positive_int,
  unsigned_int,
  decimal,
  string,
  markdown,
  code,
  id,
  uri,
  url,
  canonical,
  oid,
  uuid,
  base64_binary,
  date,
  date_time,
  instant,
  time,
  xhtml,
};

inline constexpr std::uint32_t kUnbounded = UINT32_MAX;
// Limits the loader enforces so that per-object checks fit in fixed-size bitmasks/arrays.
inline constexpr std::size_t kMaxRequiredElementsPerContext = 64;
inline constexpr std::size_t kMaxChoiceElementsPerContext = 16;

struct TypeInfo;
struct ElementContext;
struct ElementDef;
class TypeModel;

namespace detail {
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;
using StringSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;
}  // namespace detail

// The codes of a value set that a required binding names, expanded from the R4 core
// ValueSets and CodeSystems (terminologies.html#required: a coded value SHALL be from it).
struct ValueSetCodes {
  struct System {
    std::string url;
    detail::StringSet codes;
  };
  std::string url;              // canonical, without |version
  std::vector<System> systems;  // usually one
  detail::StringSet all_codes;  // every system's codes: what a `code` element may hold
  std::size_t code_count = 0;   // codes over all systems, counting a code once per system
  // For messages: "male, female, other, unknown" (the first ten codes, then "... (N codes)"),
  // and the systems, "http://hl7.org/fhir/administrative-gender".
  std::string listing;
  std::string system_listing;

  const System* find_system(std::string_view system) const;
  bool contains(std::string_view code) const { return all_codes.find(code) != all_codes.end(); }
  bool contains(std::string_view system, std::string_view code) const;
};

struct TypeRef {
  std::string code;                  // "string", "HumanName", "BackboneElement", "Resource"...
  const TypeInfo* info = nullptr;    // never null once loaded
  std::vector<std::string> targets;  // Reference/canonical: allowed target types ("Resource" = any)
  std::string profile;               // core profile on the type, e.g. "SimpleQuantity"; else empty
};

struct ElementDef {
  std::string path;  // "Observation.value[x]", "Patient.contact.name"
  std::string name;  // JSON name, or for a choice the prefix ("value") its names start with
  std::uint32_t min = 0;
  std::uint32_t max = 1;  // kUnbounded for "*"
  bool choice = false;    // value[x]: JSON name is name + capitalised type code
  bool modifier = false;
  bool summary = false;
  bool xml_attr = false;          // an XML attribute (Element.id, Extension.url): no "_name" in JSON
  bool xhtml = false;             // Narrative.div
  std::vector<TypeRef> types;     // for a contentReference: the referenced element's types
  std::string content_reference;  // path whose children this element reuses; else empty
  BindingStrength binding_strength = BindingStrength::none;
  std::string value_set;  // binding's ValueSet canonical (may carry |version)
  // For a required binding on a code, Coding or CodeableConcept element whose value set's
  // codes are known (required-codes.json): those codes. Null otherwise, and when the model
  // was loaded without the codes file.
  const ValueSetCodes* required_codes = nullptr;
  // Where this element's own children are defined when not by its type: a backbone
  // element's inline children, or the element a contentReference points to.
  const ElementContext* children = nullptr;
  // Bookkeeping for per-object checks: index among the parent's required elements
  // (min > 0) and among its choice elements; kNoSlot when neither.
  static constexpr std::uint8_t kNoSlot = 0xFF;
  std::uint8_t required_slot = kNoSlot;
  std::uint8_t choice_slot = kNoSlot;

  // In JSON a repeating element is always an array, a max-1 element never is.
  bool repeats() const { return max > 1; }
};

// The set of elements that may appear inside one JSON object: a type's own elements, or
// the inline children of a backbone element (named by its path, "Patient.contact").
struct ElementContext {
  std::string name;
  const TypeInfo* owner = nullptr;          // the type whose definition holds them
  std::vector<const ElementDef*> elements;  // definition order (XML order)
  std::vector<const ElementDef*> required;  // min > 0, indexed by required_slot
  std::size_t choice_count = 0;

 private:
  friend class TypeModel;
  struct Entry {
    const ElementDef* element;
    std::uint16_t type_index;
  };
  // Every JSON name valid here, choice names expanded ("valueQuantity"), "_x" not included.
  detail::StringMap<Entry> by_json_name_;
};

struct TypeInfo {
  std::string name;
  TypeKind kind = TypeKind::datatype;
  bool is_abstract = false;   // Element, BackboneElement, Resource, DomainResource
  std::string base;           // base type name; empty for Element and Resource
  std::string constraint_on;  // for core profiles (SimpleQuantity): the type they constrain
  const TypeInfo* base_type = nullptr;
  JsonKind json = JsonKind::object;
  PrimitiveFormat format = PrimitiveFormat::none;
  std::string regex;                        // primitives: the spec's regex (documentation; not used to match)
  std::uint32_t max_length = 0;             // primitives: 0 = no limit from the definition
  const ElementContext* context = nullptr;  // its elements (primitives: id, extension)

  // True when this type is `ancestor` or derives from it.
  bool is_a(std::string_view ancestor) const;
};

// What a JSON property name means inside a context.
struct ChildMatch {
  const ElementDef* element = nullptr;
  const TypeRef* type = nullptr;  // the concrete type: for a choice, the one the suffix names
  // Where the child's own properties are looked up: backbone/contentReference children,
  // the datatype's elements, or for a primitive (and "_name") its id/extension. Null for
  // resource-typed elements (contained, Bundle.entry.resource): the value's resourceType says.
  const ElementContext* context = nullptr;
  bool primitive_extension = false;  // the name was "_name"

  explicit operator bool() const { return element != nullptr; }
};

class TypeModel {
 public:
  // The model of conformance_dir() + "/r4/type-model.json" with the codes of
  // "/r4/required-codes.json", loaded on first use (thread-safe). Throws std::runtime_error
  // when a file is missing or malformed.
  static const TypeModel& instance();
  // codes_path/codes_text empty: no value set codes, so no binding is checked. The codes must
  // cover every required binding of the model (expanded or listed as skipped), or the files
  // are from different generator runs and loading fails.
  static std::unique_ptr<TypeModel> load_file(const std::string& path, const std::string& codes_path = {});
  // From the files' text; throws std::runtime_error on malformed content.
  static std::unique_ptr<TypeModel> load_text(std::string_view text, std::string_view codes_text = {});

  TypeModel(const TypeModel&) = delete;
  TypeModel& operator=(const TypeModel&) = delete;

  const std::string& fhir_version() const { return fhir_version_; }

  const TypeInfo* find_type(std::string_view name) const;
  bool is_resource_type(std::string_view name) const;  // concrete resource types only
  bool is_datatype(std::string_view name) const;       // concrete complex datatypes only
  bool is_primitive(std::string_view name) const;
  bool is_abstract(std::string_view name) const;
  const std::vector<std::string>& resource_types() const { return resource_types_; }  // sorted
  const std::vector<std::string>& datatypes() const { return datatypes_; }
  const std::vector<std::string>& primitive_types() const { return primitives_; }

  // A type name ("Patient", "HumanName", "string") or backbone path ("Patient.contact").
  const ElementContext* find_context(std::string_view type_or_path) const;
  // An element by its definition path ("Observation.value[x]", "Patient.contact.name").
  const ElementDef* find_element(std::string_view path) const;

  // The element a JSON property name denotes in `parent`: "valueQuantity" (choice suffix,
  // case-sensitive), "_birthDate" (primitive extension; only for primitive-typed elements
  // that are not XML attributes), "contact". Empty match when the name is not defined there.
  ChildMatch child(const ElementContext& parent, std::string_view json_name) const;
  ChildMatch child(std::string_view parent, std::string_view json_name) const;

  // The codes of a value set named by a required binding (url with or without |version);
  // null when its contents are unknown (skipped: external terminology, filters...).
  const ValueSetCodes* find_value_set(std::string_view url) const;
  std::size_t value_set_count() const { return value_sets_.size(); }  // expanded, so checked
  // Bound value sets whose codes are not checked, sorted, each with the generator's reason.
  const std::vector<std::pair<std::string, std::string>>& skipped_value_sets() const { return skipped_value_sets_; }

 private:
  TypeModel() = default;
  void build(std::string_view text);
  void build_codes(std::string_view text);

  ElementContext& context_for_build(const std::string& name, const TypeInfo* owner);

  std::string fhir_version_;
  std::deque<TypeInfo> types_;
  std::deque<ElementDef> elements_;
  std::deque<ElementContext> contexts_;
  detail::StringMap<TypeInfo*> type_index_;
  detail::StringMap<ElementContext*> context_index_;
  detail::StringMap<ElementDef*> element_index_;
  std::vector<std::string> resource_types_;
  std::vector<std::string> datatypes_;
  std::vector<std::string> primitives_;
  std::deque<ValueSetCodes> value_sets_;
  detail::StringMap<const ValueSetCodes*> value_set_index_;
  std::vector<std::pair<std::string, std::string>> skipped_value_sets_;
};

}  // namespace kasama::resources
