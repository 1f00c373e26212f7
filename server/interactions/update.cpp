// update (http.html#update): update-as-create with a client id, version-aware updates
// (If-Match), and conditional update (PUT Type?criteria).
#include "resources/references.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {
namespace {

void check_version(const RestRequest& req, const Route& r, const std::optional<storage::CurrentRow>& cur) {
  auto want = if_match_version(req);
  if (!want) return;
  if (!cur) {
    throw FhirError(412, "conflict", "If-Match given but " + r.type + "/" + r.id + " does not exist", "If-Match");
  }
  if (*want != cur->version) {
    throw FhirError(412, "conflict",
                    "Version conflict: If-Match asks for version " + std::to_string(*want) + " but " + r.type + "/" +
                        r.id + " is at version " + std::to_string(cur->version),
                    "If-Match");
  }
}

RestResponse put(Context& ctx, const RestRequest& req, const Route& r, Json resource,
                 const Criteria* criteria = nullptr) {
  auto cur = ctx.svc.store.current(ctx.db(), r.type, r.id, storage::Lock::kUpdate);
  // Before If-Match: a version conflict would tell a hidden resource's version.
  require_visible(ctx, r.type, r.id, cur);
  check_version(req, r, cur);
  WriteResult w = store_resource(ctx, std::move(resource), r.type, r.id, cur, "PUT");
  if (criteria && w.created) claim_criteria(ctx, r.type, *criteria, w.pk);
  return write_response(req, w, w.created ? 201 : 200, req.base_url);
}

}  // namespace

RestResponse update(Context& ctx, const RestRequest& req, const Route& r) {
  Json resource = request_resource(req, r.type);
  const std::string id = string_member(resource, "id");
  if (id.empty()) {
    throw FhirError(400, "required", "The resource has no id; an update needs the id of the URL (" + r.id + ")", "id");
  }
  if (id != r.id) {
    throw FhirError(400, "invalid", "The resource id '" + id + "' differs from the id in the URL '" + r.id + "'", "id");
  }
  return put(ctx, req, r, std::move(resource));
}

RestResponse conditional_update(Context& ctx, const RestRequest& req, const Route& r) {
  if (req.params.empty()) {
    throw FhirError(400, "invalid",
                    "PUT " + r.type + " needs search criteria (conditional update) or an id in the URL");
  }
  Json resource = request_resource(req, r.type);
  auto matches = match_criteria(ctx, r.type, req.params, 2);
  if (matches.size() > 1) {
    throw FhirError(412, "duplicate", "The criteria match more than one " + r.type + "; nothing was updated");
  }
  Route target = r;
  const std::string id = string_member(resource, "id");
  if (matches.size() == 1) {
    if (!req.assigned_id.empty() && req.assigned_id != matches[0].second) throw RetryTransaction{};
    if (!id.empty() && id != matches[0].second) {
      throw FhirError(
          400, "invalid",
          "The resource id '" + id + "' differs from the matching resource " + r.type + "/" + matches[0].second, "id");
    }
    target.id = matches[0].second;
  } else {
    target.id = !req.assigned_id.empty() ? req.assigned_id : (id.empty() ? new_resource_id() : id);
    if (id.empty()) resource["id"] = target.id;
  }
  return put(ctx, req, target, std::move(resource), &req.params);
}

}  // namespace kasama::server
