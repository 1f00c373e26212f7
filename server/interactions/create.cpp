// create (http.html#create) and conditional create (If-None-Exist). A conditional create
// is race-safe: the new resource claims a key derived from its criteria in the same
// transaction; a concurrent twin waits on that key, fails, and is run again, finding the
// winner (see storage conditional_create_key).
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {

RestResponse create(Context& ctx, const RestRequest& req, const Route& r) {
  Json resource = request_resource(req, r.type);
  std::optional<Criteria> criteria;
  if (const std::string* ine = req.header("if-none-exist")) {
    criteria = parse_criteria(*ine);
    auto matches = match_criteria(ctx, r.type, *criteria, 2);
    if (matches.size() > 1) {
      throw FhirError(412, "duplicate",
                      "If-None-Exist '" + *ine + "' matches more than one " + r.type + "; nothing was created",
                      "If-None-Exist");
    }
    if (matches.size() == 1) {
      // In a transaction, this entry's id was assigned when no match existed; a twin that
      // committed since then makes the whole Bundle resolve its identities again.
      if (!req.assigned_id.empty()) throw RetryTransaction{};
      auto v = ctx.svc.store.read_current(ctx.db(), r.type, matches[0].second);
      if (!v || v->deleted) throw RetryTransaction{};  // deleted since it matched
      WriteResult w;
      w.type = r.type;
      w.id = v->id;
      w.version = v->version;
      w.last_updated = v->last_updated;
      w.content = std::move(v->content);
      w.changed = false;
      return write_response(req, w, 200, req.base_url);
    }
  }
  const std::string id = req.assigned_id.empty() ? new_resource_id() : req.assigned_id;
  WriteResult w = store_resource(ctx, std::move(resource), r.type, id, std::nullopt, "POST");
  if (criteria) claim_criteria(ctx, r.type, *criteria, w.pk);
  return write_response(req, w, 201, req.base_url);
}

}  // namespace kasama::server
