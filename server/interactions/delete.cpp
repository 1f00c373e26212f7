// delete (http.html#delete) and conditional delete. A delete writes a new version that
// marks the resource deleted: read answers 410 Gone and history keeps every version.
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {
namespace {

RestResponse delete_one(Context& ctx, const RestRequest& req, const Route& r) {
  auto cur = ctx.svc.store.current(ctx.db(), r.type, r.id, storage::Lock::kUpdate);
  // What the caller may not see is, for them, not there: nothing to delete (204), as for an
  // id that was never used.
  if (cur && !visible(ctx, cur->pk, cur->version, cur->category)) cur.reset();
  if (auto want = if_match_version(req); want && (!cur || *want != cur->version)) {
    throw FhirError(412, "conflict", "Version conflict: If-Match does not name the current version", "If-Match");
  }
  if (!cur || cur->deleted) {
    RestResponse resp;
    resp.status = 204;  // nothing to delete is not an error (http.html#delete)
    return resp;
  }
  WriteResult w = store_delete(ctx, r.type, r.id, *cur);
  RestResponse resp;
  resp.status = 200;
  resp.version_id = std::to_string(w.version);
  resp.body = outcome_json("information", "informational",
                           "Deleted " + r.type + "/" + r.id + " (version " + std::to_string(w.version) + ")");
  resp.body_is_outcome = true;
  if (return_preference(req) == ReturnPref::kMinimal) {
    resp.status = 204;
    resp.body.clear();
  }
  return resp;
}

}  // namespace

RestResponse remove(Context& ctx, const RestRequest& req, const Route& r) {
  return delete_one(ctx, req, r);
}

RestResponse conditional_remove(Context& ctx, const RestRequest& req, const Route& r) {
  auto matches = match_criteria(ctx, r.type, req.params, 2);
  if (matches.size() > 1) {
    throw FhirError(412, "duplicate", "The criteria match more than one " + r.type + "; nothing was deleted");
  }
  if (matches.empty()) {
    RestResponse resp;
    resp.status = 204;
    return resp;
  }
  Route target = r;
  target.id = matches[0].second;
  return delete_one(ctx, req, target);
}

}  // namespace kasama::server
