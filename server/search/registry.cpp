#include "server/search/registry.hpp"

#include "server/storage/hash.hpp"

#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "resources/paths.hpp"
#include "resources/type_model.hpp"

namespace kasama::search {
namespace {

using resources::Json;

std::string str(const Json& obj, const char* name) {
  auto it = obj.find(name);
  return (it != obj.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

std::vector<std::string> strings(const Json& obj, const char* name) {
  std::vector<std::string> out;
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

// Splits on '|' outside parentheses and string literals.
std::vector<std::string_view> union_parts(std::string_view e) {
  std::vector<std::string_view> parts;
  int depth = 0;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < e.size(); ++i) {
    const char c = e[i];
    if (quoted) {
      if (c == '\\')
        ++i;
      else if (c == '\'')
        quoted = false;
      continue;
    }
    if (c == '\'')
      quoted = true;
    else if (c == '(')
      ++depth;
    else if (c == ')')
      --depth;
    else if (c == '|' && depth == 0) {
      parts.push_back(e.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(e.substr(start));
  for (auto& p : parts) {
    while (!p.empty() && (p.front() == ' ' || p.front() == '\n')) p.remove_prefix(1);
    while (!p.empty() && (p.back() == ' ' || p.back() == '\n')) p.remove_suffix(1);
  }
  return parts;
}

// The type name a union part starts with ("(Observation.value as Quantity)" -> Observation).
std::string_view root_of(std::string_view part) {
  while (!part.empty() && part.front() == '(') part.remove_prefix(1);
  std::size_t n = 0;
  while (n < part.size() && (std::isalnum(static_cast<unsigned char>(part[n])))) ++n;
  return part.substr(0, n);
}

}  // namespace

std::optional<ParamType> param_type_from(std::string_view code) {
  static constexpr std::pair<std::string_view, ParamType> kTypes[] = {
      {"number", ParamType::kNumber},       {"date", ParamType::kDate},
      {"string", ParamType::kString},       {"token", ParamType::kToken},
      {"reference", ParamType::kReference}, {"composite", ParamType::kComposite},
      {"quantity", ParamType::kQuantity},   {"uri", ParamType::kUri},
      {"special", ParamType::kSpecial}};
  for (const auto& [name, type] : kTypes) {
    if (name == code) return type;
  }
  return std::nullopt;
}

const char* param_type_name(ParamType type) {
  switch (type) {
    case ParamType::kNumber:
      return "number";
    case ParamType::kDate:
      return "date";
    case ParamType::kString:
      return "string";
    case ParamType::kToken:
      return "token";
    case ParamType::kReference:
      return "reference";
    case ParamType::kComposite:
      return "composite";
    case ParamType::kQuantity:
      return "quantity";
    case ParamType::kUri:
      return "uri";
    case ParamType::kSpecial:
      return "special";
  }
  return "unknown";
}

std::string expression_for_base(std::string_view expression, std::string_view type) {
  const auto& model = resources::TypeModel::instance();
  std::string out;
  bool any_rooted = false;
  for (auto part : union_parts(expression)) {
    const std::string_view root = root_of(part);
    if (model.find_type(root) != nullptr) any_rooted = true;
    if (root != type) continue;
    if (!out.empty()) out += " | ";
    out.append(part);
  }
  return any_rooted ? out : std::string(expression);
}

void Registry::add(SearchParam p) {
  auto owned = std::make_unique<SearchParam>(std::move(p));
  const SearchParam* ptr = owned.get();
  const std::string key = ptr->base + "|" + ptr->code;
  if (by_key_.count(key)) {
    throw std::runtime_error("search parameter " + ptr->code + " is defined twice for " + ptr->base);
  }
  by_key_.emplace(key, ptr);
  by_type_[ptr->base].push_back(ptr);
  by_url_.emplace(ptr->url, ptr);
  params_.push_back(std::move(owned));
}

void Registry::add_bundle(const resources::Json& bundle) {
  const auto& model = resources::TypeModel::instance();
  auto entries = bundle.find("entry");
  if (!bundle.is_object() || entries == bundle.end() || !entries->is_array()) {
    throw std::runtime_error("a SearchParameter Bundle needs entries");
  }
  for (const auto& e : *entries) {
    auto res = e.find("resource");
    if (res == e.end() || str(*res, "resourceType") != "SearchParameter") continue;
    const Json& sp = *res;
    auto type = param_type_from(str(sp, "type"));
    if (!type) throw std::runtime_error("SearchParameter " + str(sp, "url") + " has an unknown type");
    for (const auto& base : strings(sp, "base")) {
      // The definitions also carry types that are not R4 resources (SubscriptionStatus): skip.
      if (base != "Resource" && base != "DomainResource" && !model.is_resource_type(base)) continue;
      SearchParam p;
      p.url = str(sp, "url");
      p.code = str(sp, "code");
      p.type = *type;
      p.base = base;
      p.expression = expression_for_base(str(sp, "expression"), base);
      p.targets = strings(sp, "target");
      p.comparators = strings(sp, "comparator");
      if (auto comps = sp.find("component"); comps != sp.end() && comps->is_array()) {
        for (const auto& c : *comps) p.components.push_back({str(c, "definition"), str(c, "expression")});
      }
      if (p.code.empty()) throw std::runtime_error("SearchParameter " + p.url + " has no code");
      add(std::move(p));
    }
  }
}

const Registry& Registry::instance() {
  static std::once_flag once;
  static std::unique_ptr<Registry> registry;
  std::call_once(once, [] {
    auto r = std::make_unique<Registry>();
    // The R4 core parameters, then the project's own (JP and Kasama facts).
    for (const char* file : {"/r4/search-parameters.json", "/kasama/search-parameters.json"}) {
      r->add_bundle(resources::load_json_file(resources::conformance_dir() + file));
    }
    registry = std::move(r);
  });
  return *registry;
}

namespace {

// Where a type's parameters are defined: its own, then DomainResource's (when it is one),
// then Resource's.
std::vector<std::string> bases_of(std::string_view type) {
  std::vector<std::string> out{std::string(type)};
  const auto* info = resources::TypeModel::instance().find_type(type);
  if (info && info->is_a("DomainResource")) out.emplace_back("DomainResource");
  out.emplace_back("Resource");
  return out;
}

}  // namespace

const SearchParam* Registry::find(std::string_view type, std::string_view code) const {
  for (const auto& base : bases_of(type)) {
    auto it = by_key_.find(base + "|" + std::string(code));
    if (it != by_key_.end()) return it->second;
  }
  return nullptr;
}

std::vector<const SearchParam*> Registry::for_type(std::string_view type) const {
  std::vector<const SearchParam*> out;
  for (const auto& base : bases_of(type)) {
    auto it = by_type_.find(base);
    if (it != by_type_.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

const SearchParam* Registry::by_url(std::string_view url) const {
  auto it = by_url_.find(std::string(url));
  return it == by_url_.end() ? nullptr : it->second;
}

std::string Registry::fingerprint() const {
  // Bump kIndexFormat when extraction (server/search/extract) changes what rows it writes.
  constexpr const char* kIndexFormat = "index-format-1";
  std::string all = kIndexFormat;
  for (const auto& p : params_) {
    all += '\x1e' + p->url + '\x1f' + p->base + '\x1f' + p->code + '\x1f' + param_type_name(p->type) + '\x1f' +
           p->expression;
    for (const auto& c : p->components) all += '\x1f' + c.definition + '\x1f' + c.expression;
  }
  return storage::sha256_hex(all);
}

std::string unsupported_reason(const SearchParam& p) {
  if (p.code == "_id" || p.code == "_lastUpdated") return {};
  if (p.type == ParamType::kSpecial) return "special";
  if (p.expression.empty()) return "no FHIRPath expression";
  if (p.type == ParamType::kComposite && p.components.size() != 2) return "composite of more than two parts";
  if (p.type == ParamType::kComposite) {
    const SearchParam* first = Registry::instance().by_url(p.components[0].definition);
    if (!first || first->type != ParamType::kToken) return "composite that does not start with a token";
  }
  return {};
}

const char* modifiers_documentation(ParamType type) {
  switch (type) {
    case ParamType::kString:
      return "starts-with, case- and accent-insensitive on NFKC text; :exact, :contains, :missing";
    case ParamType::kToken:
      return "code, system|code, |code, system|; :not, :text, :of-type (identifier), :missing";
    case ParamType::kReference:
      return "id, Type/id, absolute URL; :[type], :identifier, :missing; chaining and _has";
    case ParamType::kDate:
      return "prefixes eq ne gt lt ge le sa eb ap with precision-implied ranges; :missing";
    case ParamType::kNumber:
      return "prefixes eq ne gt lt ge le sa eb ap; eq and ne use the value's implied precision; :missing";
    case ParamType::kQuantity:
      return "[prefix]number[|system|code] or number||code; no unit conversion; :missing";
    case ParamType::kUri:
      return "exact; :above, :below, :missing";
    case ParamType::kComposite:
      return "two parts joined by $, matched within the same element";
    case ParamType::kSpecial:
      return "not supported";
  }
  return "";
}

}  // namespace kasama::search
