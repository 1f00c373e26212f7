#include "server/access/category.hpp"

#include <set>
#include <stdexcept>

#include "resources/paths.hpp"

namespace kasama::access {

namespace {

// The types with a Patient compartment definition (they hold some resident's data).
const std::set<std::string>& compartment_types() {
  static const std::set<std::string> types = [] {
    std::set<std::string> out;
    const Json doc = resources::load_json_file(resources::conformance_dir() + "/r4/compartmentdefinition-patient.json");
    for (const auto& r : doc["resource"]) {
      if (r.contains("param") || r.value("code", "") == "Patient") out.insert(r.value("code", ""));
    }
    return out;
  }();
  return types;
}

using resources::string_member;

bool coding_matches(const Json& c, const std::string& system, const std::string& code) {
  return c.is_object() && string_member(c, "system") == system && (code.empty() || string_member(c, "code") == code);
}

// A CodeableConcept, a Coding, or a list of either.
bool value_matches(const Json& v, const std::string& system, const std::string& code) {
  if (v.is_array()) {
    for (const auto& x : v)
      if (value_matches(x, system, code)) return true;
    return false;
  }
  if (!v.is_object()) return false;
  if (v.contains("system")) return coding_matches(v, system, code);
  if (auto it = v.find("coding"); it != v.end() && it->is_array()) {
    for (const auto& c : *it)
      if (coding_matches(c, system, code)) return true;
  }
  return false;
}

}  // namespace

const Categories& Categories::instance() {
  static const Categories c(resources::load_json_file(resources::conformance_dir() + "/kasama/categories.json"));
  return c;
}

Categories::Categories(const Json& doc) {
  system_ = string_member(doc, "system");
  if (system_.empty()) throw std::runtime_error("categories: 'system' is required");
  auto cats = doc.find("categories");
  if (cats == doc.end() || !cats->is_array() || cats->empty() || cats->size() > 30)
    throw std::runtime_error("categories: 'categories' must list 1 to 30 categories");
  for (const auto& c : *cats) {
    const std::string code = string_member(c, "code");
    if (code.empty() || parse(code)) throw std::runtime_error("categories: empty or repeated code '" + code + "'");
    codes_.push_back(code);
    displays_.push_back(string_member(c, "display"));
  }
  directory_ = parse("directory").value_or(0);
  auto rules = doc.find("rules");
  if (rules == doc.end() || !rules->is_array() || rules->empty())
    throw std::runtime_error("categories: 'rules' must be a non-empty list");
  for (const auto& j : *rules) {
    Rule r;
    r.type = string_member(j, "type");
    if (r.type.empty()) r.type = "*";
    r.profile = string_member(j, "profile");
    r.element = string_member(j, "element");
    r.coding_system = string_member(j, "system");
    r.coding_code = string_member(j, "code");
    const std::string comp = string_member(j, "compartment");
    if (!comp.empty() && comp != "Patient") throw std::runtime_error("categories: only the Patient compartment");
    r.compartment = comp == "Patient";
    if (!r.element.empty() && r.coding_system.empty())
      throw std::runtime_error("categories: a rule on element '" + r.element + "' needs a system");
    auto cat = parse(string_member(j, "category"));
    if (!cat) throw std::runtime_error("categories: rule with unknown category '" + string_member(j, "category") + "'");
    r.category = *cat;
    rules_.push_back(std::move(r));
  }
  const Rule& last = rules_.back();
  if (last.type != "*" || !last.profile.empty() || !last.element.empty() || last.compartment)
    throw std::runtime_error("categories: the last rule must match every resource");
}

bool Categories::matches(const Rule& r, const std::string& type, const Json& resource) const {
  if (r.type != "*" && r.type != type) return false;
  if (r.compartment && !compartment_types().count(type)) return false;
  if (!r.profile.empty()) {
    bool found = false;
    if (auto meta = resource.find("meta"); meta != resource.end() && meta->is_object()) {
      if (auto p = meta->find("profile"); p != meta->end() && p->is_array()) {
        for (const auto& x : *p) {
          if (!x.is_string()) continue;
          const std::string s = x.get<std::string>();
          if (s.substr(0, s.find('|')) == r.profile) found = true;
        }
      }
    }
    if (!found) return false;
  }
  if (!r.element.empty()) {
    auto v = resource.find(r.element);
    if (v == resource.end() || !value_matches(*v, r.coding_system, r.coding_code)) return false;
  }
  return true;
}

Category Categories::classify(const std::string& type, const Json& resource) const {
  for (const auto& r : rules_)
    if (matches(r, type, resource)) return r.category;
  return rules_.back().category;
}

Category Categories::label_of(const Json& resource) const {
  auto meta = resource.find("meta");
  if (meta == resource.end() || !meta->is_object()) return kUnlabelled;
  auto sec = meta->find("security");
  if (sec == meta->end() || !sec->is_array()) return kUnlabelled;
  for (const auto& c : *sec) {
    if (c.is_object() && string_member(c, "system") == system_) {
      if (auto cat = parse(string_member(c, "code"))) return *cat;
    }
  }
  return kUnlabelled;
}

void Categories::set_label(Json& resource, Category c) const {
  Json& meta = resource["meta"];
  if (!meta.is_object()) meta = Json::object();
  Json kept = Json::array();
  if (auto sec = meta.find("security"); sec != meta.end() && sec->is_array()) {
    for (auto& x : *sec)
      if (!(x.is_object() && string_member(x, "system") == system_)) kept.push_back(std::move(x));
  }
  if (c != kUnlabelled) kept.push_back(Json{{"system", system_}, {"code", code(c)}, {"display", display(c)}});
  if (kept.empty()) {
    meta.erase("security");
  } else {
    meta["security"] = std::move(kept);
  }
}

std::optional<Category> Categories::parse(std::string_view code) const {
  for (std::size_t i = 0; i < codes_.size(); ++i)
    if (codes_[i] == code) return static_cast<Category>(i + 1);
  return std::nullopt;
}

const std::string& Categories::code(Category c) const {
  static const std::string none;
  return c >= 1 && c <= codes_.size() ? codes_[c - 1] : none;
}

const std::string& Categories::display(Category c) const {
  static const std::string none;
  return c >= 1 && c <= displays_.size() ? displays_[c - 1] : none;
}

Range Categories::parse_range(const Json& j) const {
  if (!j.is_object()) throw std::invalid_argument("categories");
  Range r;
  for (const auto& [k, v] : j.items()) {
    auto cat = parse(k);
    if (!cat) throw std::invalid_argument("categories." + k);
    const std::string mode = v.is_string() ? v.get<std::string>() : std::string();
    if (mode == "read" || mode == "r") {
      r.read |= bit(*cat);
    } else if (mode == "read-write" || mode == "rw") {
      r.read |= bit(*cat);
      r.write |= bit(*cat);
    } else if (mode != "none") {
      throw std::invalid_argument("categories." + k);
    }
  }
  return r;
}

Json Categories::range_json(const Range& r) const {
  Json out = Json::object();
  for (std::size_t i = 0; i < codes_.size(); ++i) {
    const CategoryMask b = bit(static_cast<Category>(i + 1));
    if (r.write & b) {
      out[codes_[i]] = "read-write";
    } else if (r.read & b) {
      out[codes_[i]] = "read";
    }
  }
  return out;
}

Range Categories::full_range() const {
  Range r;
  for (std::size_t i = 0; i < codes_.size(); ++i) r.read |= bit(static_cast<Category>(i + 1));
  r.write = r.read;
  return r;
}

}  // namespace kasama::access
