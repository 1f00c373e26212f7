#include "resources/references.hpp"

#include "resources/type_model.hpp"

namespace kasama::resources {
namespace {

void walk(const Json& v, std::string& path, std::vector<FoundReference>& out) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.items()) {
      if (k == "reference" && child.is_string()) {
        out.push_back(FoundReference{path, child.get<std::string>()});
        continue;
      }
      if (k == "resourceType") continue;
      const std::size_t keep = path.size();
      path.push_back('.');
      path += k;
      walk(child, path, out);
      path.resize(keep);
    }
  } else if (v.is_array()) {
    for (const auto& child : v) walk(child, path, out);
  }
}

bool is_type_name(std::string_view s) {
  if (s.empty() || s.size() > 64 || s[0] < 'A' || s[0] > 'Z') return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

}  // namespace

bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

std::vector<FoundReference> find_references(const Json& resource) {
  std::vector<FoundReference> out;
  if (!resource.is_object()) return out;
  auto rt = resource.find("resourceType");
  if (rt != resource.end() && rt->is_string() && rt->get<std::string>() == "Bundle") return out;
  std::string path = rt != resource.end() && rt->is_string() ? rt->get<std::string>() : std::string();
  walk(resource, path, out);
  return out;
}

std::optional<LocalReference> parse_local_reference(std::string_view ref, std::string_view base_url) {
  if (!base_url.empty() && ref.size() > base_url.size() + 1 && ref.substr(0, base_url.size()) == base_url &&
      ref[base_url.size()] == '/') {
    ref = ref.substr(base_url.size() + 1);
  }
  auto slash = ref.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view type = ref.substr(0, slash);
  std::string_view rest = ref.substr(slash + 1);
  if (!is_type_name(type)) return std::nullopt;
  LocalReference out;
  out.type = std::string(type);
  auto slash2 = rest.find('/');
  std::string_view id = rest.substr(0, slash2);
  if (!is_valid_id(id)) return std::nullopt;
  out.id = std::string(id);
  if (slash2 != std::string_view::npos) {
    std::string_view tail = rest.substr(slash2 + 1);
    if (tail.substr(0, 9) != "_history/" || !is_valid_id(tail.substr(9))) return std::nullopt;
    out.version = std::string(tail.substr(9));
  }
  return out;
}

namespace {

bool is_link_type(const ChildMatch& m) {
  if (m.element->path == "Reference.reference") return true;
  const std::string& code = m.type->code;
  return code == "uri" || code == "url" || code == "canonical" || code == "oid" || code == "uuid";
}

void walk_links(Json& obj, const ElementContext& ctx, const TypeModel& model,
                const std::function<void(std::string&)>& fn);

void walk_resource(Json& resource, const TypeModel& model, const std::function<void(std::string&)>& fn) {
  if (!resource.is_object()) return;
  auto rt = resource.find("resourceType");
  if (rt == resource.end() || !rt->is_string()) return;
  const ElementContext* ctx = model.find_context(rt->get_ref<const std::string&>());
  if (ctx) walk_links(resource, *ctx, model, fn);
}

void walk_links(Json& obj, const ElementContext& ctx, const TypeModel& model,
                const std::function<void(std::string&)>& fn) {
  for (auto& [key, value] : obj.items()) {
    if (key == "resourceType") continue;
    ChildMatch m = model.child(ctx, key);
    if (!m) continue;
    auto visit = [&](Json& v) {
      if (v.is_string()) {
        if (!m.primitive_extension && is_link_type(m)) fn(v.get_ref<std::string&>());
      } else if (v.is_object()) {
        if (m.context) {
          walk_links(v, *m.context, model, fn);
        } else {
          walk_resource(v, model, fn);
        }
      }
    };
    if (value.is_array()) {
      for (auto& v : value) visit(v);
    } else {
      visit(value);
    }
  }
}

}  // namespace

void for_each_link(Json& resource, const std::function<void(std::string&)>& fn) {
  walk_resource(resource, TypeModel::instance(), fn);
}

}  // namespace kasama::resources
