#include "resources/type_model.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "resources/paths.hpp"

namespace kasama::resources {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("type model: " + what);
}

PrimitiveFormat format_of(std::string_view name) {
  static const std::unordered_map<std::string_view, PrimitiveFormat> formats = {
      {"boolean", PrimitiveFormat::boolean},
      {"integer", PrimitiveFormat::integer},
      {"positiveInt", PrimitiveFormat::positive_int},
      {"unsignedInt", PrimitiveFormat::unsigned_int},
      {"decimal", PrimitiveFormat::decimal},
      {"string", PrimitiveFormat::string},
      {"markdown", PrimitiveFormat::markdown},
      {"code", PrimitiveFormat::code},
      {"id", PrimitiveFormat::id},
      {"uri", PrimitiveFormat::uri},
      {"url", PrimitiveFormat::url},
      {"canonical", PrimitiveFormat::canonical},
      {"oid", PrimitiveFormat::oid},
      {"uuid", PrimitiveFormat::uuid},
      {"base64Binary", PrimitiveFormat::base64_binary},
      {"date", PrimitiveFormat::date},
      {"dateTime", PrimitiveFormat::date_time},
      {"instant", PrimitiveFormat::instant},
      {"time", PrimitiveFormat::time},
      {"xhtml", PrimitiveFormat::xhtml},
  };
  auto it = formats.find(name);
  // A primitive this code does not know would be accepted unchecked; refuse instead.
  if (it == formats.end()) fail("no format rule for primitive type " + std::string(name));
  return it->second;
}

JsonKind json_kind_of(const std::string& s) {
  if (s == "boolean") return JsonKind::boolean;
  if (s == "number") return JsonKind::number;
  if (s == "string") return JsonKind::string;
  fail("unknown json kind " + s);
}

BindingStrength strength_of(const std::string& s) {
  if (s == "required") return BindingStrength::required;
  if (s == "extensible") return BindingStrength::extensible;
  if (s == "preferred") return BindingStrength::preferred;
  if (s == "example") return BindingStrength::example;
  fail("unknown binding strength " + s);
}

std::uint32_t parse_max(const std::string& s, const std::string& path) {
  if (s == "*") return kUnbounded;
  std::uint32_t v = 0;
  if (s.empty()) fail(path + ": empty max");
  for (char c : s) {
    if (c < '0' || c > '9') fail(path + ": bad max " + s);
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return v;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Strips a canonical's |version: bindings name "http://hl7.org/fhir/ValueSet/x|4.0.1".
std::string_view without_version(std::string_view url) {
  auto bar = url.find('|');
  return bar == std::string_view::npos ? url : url.substr(0, bar);
}

bool is_coded_type(std::string_view code) {
  return code == "code" || code == "Coding" || code == "CodeableConcept";
}

constexpr std::size_t kListedCodes = 10;  // codes named in a message before "..."

std::string capitalised(std::string_view s) {
  std::string out(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

}  // namespace

bool TypeInfo::is_a(std::string_view ancestor) const {
  for (const TypeInfo* t = this; t != nullptr; t = t->base_type) {
    if (t->name == ancestor) return true;
  }
  return false;
}

const ValueSetCodes::System* ValueSetCodes::find_system(std::string_view system) const {
  for (const System& s : systems) {
    if (s.url == system) return &s;
  }
  return nullptr;
}

bool ValueSetCodes::contains(std::string_view system, std::string_view code) const {
  const System* s = find_system(system);
  return s != nullptr && s->codes.find(code) != s->codes.end();
}

const TypeModel& TypeModel::instance() {
  static const std::unique_ptr<TypeModel> model =
      load_file(conformance_dir() + "/r4/type-model.json", conformance_dir() + "/r4/required-codes.json");
  return *model;
}

std::unique_ptr<TypeModel> TypeModel::load_file(const std::string& path, const std::string& codes_path) {
  const std::string text = read_whole_file(path);
  const std::string codes = codes_path.empty() ? std::string() : read_whole_file(codes_path);
  try {
    return load_text(text, codes);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) + " (in " + path +
                             (codes_path.empty() ? std::string() : " or " + codes_path) + ")");
  }
}

std::unique_ptr<TypeModel> TypeModel::load_text(std::string_view text, std::string_view codes_text) {
  std::unique_ptr<TypeModel> model(new TypeModel());
  model->build(text);
  if (!codes_text.empty()) model->build_codes(codes_text);
  return model;
}

void TypeModel::build_codes(std::string_view text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("required codes: not JSON: ") + e.what());
  }
  try {
    if (doc.at("fhirVersion").get<std::string>() != fhir_version_)
      fail("required codes: FHIR version differs from the model's");
    for (const auto& [url, systems] : doc.at("valueSets").items()) {
      ValueSetCodes& vs = value_sets_.emplace_back();
      vs.url = url;
      std::size_t listed = 0;
      for (const auto& [system, codes] : systems.items()) {
        ValueSetCodes::System& sys = vs.systems.emplace_back();
        sys.url = system;
        if (!vs.system_listing.empty()) vs.system_listing += ", ";
        vs.system_listing += system;
        for (const auto& c : codes) {
          const auto& code = c.get_ref<const std::string&>();
          if (!sys.codes.insert(code).second) continue;
          ++vs.code_count;
          if (!vs.all_codes.insert(code).second) continue;
          if (listed < kListedCodes) {
            if (listed > 0) vs.listing += ", ";
            vs.listing += code;
          }
          ++listed;
        }
        if (sys.codes.empty()) fail("required codes: " + url + " has no codes for " + system);
      }
      if (vs.systems.empty()) fail("required codes: " + url + " has no codes");
      if (listed > kListedCodes) vs.listing += ", ... (" + std::to_string(listed) + " codes)";
      if (!value_set_index_.emplace(url, &vs).second) fail("required codes: duplicate value set " + url);
    }
    for (const auto& [url, reason] : doc.at("skipped").items()) {
      skipped_value_sets_.emplace_back(url, reason.get<std::string>());
    }
    std::sort(skipped_value_sets_.begin(), skipped_value_sets_.end());
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("required codes: malformed: ") + e.what());
  }

  // Attach the codes to the elements they bind; a binding the file does not know at all
  // means the two files come from different generator runs.
  auto skipped = [&](std::string_view url) {
    return std::any_of(skipped_value_sets_.begin(), skipped_value_sets_.end(),
                       [&](const auto& s) { return s.first == url; });
  };
  for (ElementDef& el : elements_) {
    if (el.binding_strength != BindingStrength::required || el.value_set.empty()) continue;
    bool coded = false;
    for (const TypeRef& t : el.types) coded = coded || is_coded_type(t.code);
    if (!coded) continue;
    const std::string_view url = without_version(el.value_set);
    el.required_codes = find_value_set(url);
    if (el.required_codes == nullptr && !skipped(url)) {
      fail("required codes: " + el.path + " is bound to " + std::string(url) + ", which the codes file does not cover");
    }
  }
}

const ValueSetCodes* TypeModel::find_value_set(std::string_view url) const {
  auto it = value_set_index_.find(without_version(url));
  return it == value_set_index_.end() ? nullptr : it->second;
}

ElementContext& TypeModel::context_for_build(const std::string& name, const TypeInfo* owner) {
  auto it = context_index_.find(name);
  if (it != context_index_.end()) return *it->second;
  ElementContext& ctx = contexts_.emplace_back();
  ctx.name = name;
  ctx.owner = owner;
  context_index_.emplace(name, &ctx);
  return ctx;
}

void TypeModel::build(std::string_view text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("not JSON: ") + e.what());
  }
  try {
    fhir_version_ = doc.at("fhirVersion").get<std::string>();
    const auto& types = doc.at("types");

    for (const auto& [name, t] : types.items()) {
      TypeInfo& info = types_.emplace_back();
      info.name = name;
      const auto& kind = t.at("kind").get_ref<const std::string&>();
      if (kind == "primitive") {
        info.kind = TypeKind::primitive;
        info.format = format_of(name);
        info.json = json_kind_of(t.at("json").get<std::string>());
        info.regex = t.value("regex", "");
        info.max_length = t.value("maxLength", 0u);
      } else if (kind == "datatype") {
        info.kind = TypeKind::datatype;
      } else if (kind == "resource") {
        info.kind = TypeKind::resource;
      } else {
        fail(name + ": unknown kind " + kind);
      }
      info.is_abstract = t.value("abstract", false);
      info.base = t.value("base", "");
      info.constraint_on = t.value("constraintOn", "");
      type_index_.emplace(name, &info);
    }

    for (TypeInfo& info : types_) {
      if (!info.base.empty()) {
        auto it = type_index_.find(info.base);
        if (it == type_index_.end()) fail(info.name + ": unknown base " + info.base);
        info.base_type = it->second;
      }
      ElementContext& own = context_for_build(info.name, &info);
      info.context = &own;
      const auto& t = types.at(info.name);
      if (!t.contains("elements")) continue;
      // Profiles (SimpleQuantity) keep the constrained type's paths ("Quantity.value");
      // renaming the root keeps their elements apart from the real Quantity's.
      const std::string& path_root = info.constraint_on.empty() ? info.name : info.constraint_on;
      for (const auto& e : t.at("elements")) {
        std::string path = e.at("path").get<std::string>();
        if (path.compare(0, path_root.size(), path_root) != 0 || path.size() <= path_root.size() ||
            path[path_root.size()] != '.') {
          fail(info.name + ": element " + path + " outside the type");
        }
        path.replace(0, path_root.size(), info.name);

        ElementDef& el = elements_.emplace_back();
        el.path = path;
        auto dot = path.rfind('.');
        el.name = path.substr(dot + 1);
        if (el.name.size() > 3 && el.name.ends_with("[x]")) {
          el.choice = true;
          el.name.resize(el.name.size() - 3);
        }
        el.min = e.value("min", 0u);
        el.max = parse_max(e.at("max").get<std::string>(), path);
        el.modifier = e.value("modifier", false);
        el.summary = e.value("summary", false);
        el.xml_attr = e.value("xmlAttr", false);
        el.xhtml = e.value("xhtml", false);
        if (e.contains("types")) {
          for (const auto& ty : e.at("types")) {
            TypeRef& ref = el.types.emplace_back();
            ref.code = ty.at("code").get<std::string>();
            if (ty.contains("targets")) ref.targets = ty.at("targets").get<std::vector<std::string>>();
            ref.profile = ty.value("profile", "");
          }
        }
        el.content_reference = e.value("contentReference", "");
        if (e.contains("binding")) {
          const auto& b = e.at("binding");
          el.binding_strength = strength_of(b.at("strength").get<std::string>());
          el.value_set = b.value("valueSet", "");
        }
        if (!element_index_.emplace(path, &el).second) fail("duplicate element " + path);

        std::string parent_path = path.substr(0, dot);
        ElementContext& parent = context_for_build(parent_path, &info);
        if (parent_path != info.name) {
          // Snapshots list a backbone element before its children.
          auto pit = element_index_.find(parent_path);
          if (pit == element_index_.end()) fail(path + ": parent element missing");
          pit->second->children = &parent;
        }
        parent.elements.push_back(&el);
      }
    }

    for (ElementDef& el : elements_) {
      if (!el.content_reference.empty()) {
        auto it = element_index_.find(el.content_reference);
        if (it == element_index_.end()) fail(el.path + ": unknown contentReference " + el.content_reference);
        const ElementDef& target = *it->second;
        if (target.children == nullptr) fail(el.path + ": contentReference to an element without children");
        el.children = target.children;
        if (el.types.empty()) el.types = target.types;
      }
      if (el.types.empty()) fail(el.path + ": no type");
      if (el.types.size() > 1 && !el.choice) fail(el.path + ": several types but not a choice");
      for (TypeRef& ref : el.types) {
        auto it = type_index_.find(ref.code);
        if (it == type_index_.end()) fail(el.path + ": unknown type " + ref.code);
        ref.info = it->second;
      }
    }

    for (ElementContext& ctx : contexts_) {
      for (const ElementDef* cel : ctx.elements) {
        // The contexts own nothing; the slots are bookkeeping on the shared definitions.
        ElementDef& el = *element_index_.find(cel->path)->second;
        if (el.min > 0) {
          el.required_slot = static_cast<std::uint8_t>(ctx.required.size());
          ctx.required.push_back(&el);
        }
        if (el.choice) el.choice_slot = static_cast<std::uint8_t>(ctx.choice_count++);
        auto add = [&](std::string json_name, std::size_t type_index) {
          auto [it, inserted] = ctx.by_json_name_.emplace(
              std::move(json_name), ElementContext::Entry{&el, static_cast<std::uint16_t>(type_index)});
          if (!inserted) fail(ctx.name + ": JSON name " + it->first + " is ambiguous");
        };
        if (el.choice) {
          for (std::size_t i = 0; i < el.types.size(); ++i) add(el.name + capitalised(el.types[i].code), i);
        } else {
          add(el.name, 0);
        }
      }
      if (ctx.required.size() > kMaxRequiredElementsPerContext) fail(ctx.name + ": too many required elements");
      if (ctx.choice_count > kMaxChoiceElementsPerContext) fail(ctx.name + ": too many choice elements");
    }

    // The lists are checked against the kinds so the two views cannot disagree.
    auto concrete = [&](std::string_view n, TypeKind k) {
      const TypeInfo* t = find_type(n);
      return t != nullptr && t->kind == k && !t->is_abstract && t->constraint_on.empty();
    };
    resource_types_ = doc.at("resources").get<std::vector<std::string>>();
    datatypes_ = doc.at("datatypes").get<std::vector<std::string>>();
    primitives_ = doc.at("primitives").get<std::vector<std::string>>();
    for (const auto& n : resource_types_) {
      if (!concrete(n, TypeKind::resource)) fail("resources: " + n + " is not a concrete resource");
    }
    for (const auto& n : datatypes_) {
      if (!concrete(n, TypeKind::datatype)) fail("datatypes: " + n + " is not a concrete datatype");
    }
    for (const auto& n : primitives_) {
      if (!concrete(n, TypeKind::primitive)) fail("primitives: " + n + " is not a primitive");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("malformed: ") + e.what());
  }
}

const TypeInfo* TypeModel::find_type(std::string_view name) const {
  auto it = type_index_.find(name);
  return it == type_index_.end() ? nullptr : it->second;
}

bool TypeModel::is_resource_type(std::string_view name) const {
  const TypeInfo* t = find_type(name);
  return t != nullptr && t->kind == TypeKind::resource && !t->is_abstract;
}

bool TypeModel::is_datatype(std::string_view name) const {
  const TypeInfo* t = find_type(name);
  return t != nullptr && t->kind == TypeKind::datatype && !t->is_abstract && t->constraint_on.empty();
}

bool TypeModel::is_primitive(std::string_view name) const {
  const TypeInfo* t = find_type(name);
  return t != nullptr && t->kind == TypeKind::primitive;
}

bool TypeModel::is_abstract(std::string_view name) const {
  const TypeInfo* t = find_type(name);
  return t != nullptr && t->is_abstract;
}

const ElementContext* TypeModel::find_context(std::string_view type_or_path) const {
  auto it = context_index_.find(type_or_path);
  return it == context_index_.end() ? nullptr : it->second;
}

const ElementDef* TypeModel::find_element(std::string_view path) const {
  auto it = element_index_.find(path);
  return it == element_index_.end() ? nullptr : it->second;
}

ChildMatch TypeModel::child(const ElementContext& parent, std::string_view json_name) const {
  const bool extension = !json_name.empty() && json_name[0] == '_';
  const std::string_view key = extension ? json_name.substr(1) : json_name;
  auto it = parent.by_json_name_.find(key);
  if (it == parent.by_json_name_.end()) return {};
  ChildMatch m;
  m.element = it->second.element;
  m.type = &m.element->types[it->second.type_index];
  const TypeInfo& type = *m.type->info;
  if (extension) {
    // "_x" carries a primitive's id/extension; attributes in XML have no such thing.
    if (type.kind != TypeKind::primitive || m.element->xml_attr) return {};
    m.primitive_extension = true;
    m.context = type.context;
    return m;
  }
  if (m.element->children != nullptr) {
    m.context = m.element->children;
  } else if (type.kind != TypeKind::resource) {
    m.context = type.context;
  }
  return m;
}

ChildMatch TypeModel::child(std::string_view parent, std::string_view json_name) const {
  const ElementContext* ctx = find_context(parent);
  return ctx == nullptr ? ChildMatch{} : child(*ctx, json_name);
}

}  // namespace kasama::resources
