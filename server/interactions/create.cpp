// create (http.html#create) and conditional create (If-None-Exist). A conditional create
// is race-safe: the new resource claims a key derived from its criteria in the same
// transaction; a concurrent twin waits on that key, fails, and is run again, finding the
// winner (see storage conditional_create_key).
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {
namespace {

// Claims the criteria for the new resource. Losing to a concurrent twin means the whole
// transaction runs again and then finds the twin's resource. A key left behind by a
// resource that no longer matches (updated or deleted since) is stale and is replaced.
void claim_criteria(Context& ctx, const std::string& type, const Criteria& criteria, std::uint64_t pk) {
  auto& store = ctx.svc.store;
  const std::int64_t hash = criteria_hash(type, criteria);
  try {
    store.claim_conditional_key(ctx.db(), type, hash, pk);
    return;
  } catch (const storage::DbError& e) {
    if (e.deadlock_or_timeout()) throw RetryTransaction{};
    if (!e.duplicate_key()) throw;
  }
  // Statements see what others committed (READ COMMITTED): a twin that just won is visible.
  for (const auto& m : match_criteria(ctx, type, criteria, 2)) {
    if (m.first != pk) throw RetryTransaction{};
  }
  auto owner = store.conditional_key_owner(ctx.db(), type, hash);
  if (owner && *owner != pk) store.drop_conditional_key(ctx.db(), type, hash, *owner);
  try {
    store.claim_conditional_key(ctx.db(), type, hash, pk);
  } catch (const storage::DbError& e) {
    if (e.duplicate_key() || e.deadlock_or_timeout()) throw RetryTransaction{};
    throw;
  }
}

}  // namespace

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
      auto v = ctx.svc.store.read_current(ctx.db(), r.type, matches[0].second);
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
