// Type-level search, as far as the foundation goes: _id and identifier (the parameters
// conditional interactions use), paged in id order. The data-driven search engine
// replaces this with the full parameter registry.
#include <set>

#include "resources/references.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/page.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {

RestResponse search_type(Context& ctx, const RestRequest& req, const Route& r) {
  PageParams page = page_params(ctx, req, {"_id", "identifier", "_after"});
  Criteria criteria;
  std::string after;
  for (const auto& [name, value] : req.params) {
    if (name == "_id" || name == "identifier") criteria.emplace_back(name, value);
    if (name == "_after") {
      if (!resources::is_valid_id(value)) throw FhirError(400, "value", "_after must be a resource id", "_after");
      after = value;
    }
  }
  auto& store = ctx.svc.store;
  std::vector<storage::StoredVersion> rows;
  std::uint64_t total = 0;
  bool total_known = true;
  bool more = false;
  if (criteria.empty()) {
    total = store.count(ctx.db(), r.type);
    if (page.count > 0) rows = store.list(ctx.db(), r.type, after, page.count + 1);
    more = rows.size() > page.count;
    if (more) rows.resize(page.count);
  } else {
    // A stopgap until the search engine: ids are collected in full, up to a bound past
    // which the total is not claimed.
    constexpr unsigned kMaxMatches = 100000;
    auto matches = match_criteria(ctx, r.type, criteria, kMaxMatches + 1);
    std::set<std::string> ids;
    for (auto& m : matches) ids.insert(m.second);
    total_known = matches.size() <= kMaxMatches;
    total = ids.size();
    for (const auto& id : ids) {
      if (id <= after) continue;
      if (rows.size() == page.count) {
        more = page.count > 0;
        break;
      }
      if (auto v = store.read_current(ctx.db(), r.type, id); v && !v->deleted) rows.push_back(std::move(*v));
    }
  }
  BundleWriter b("searchset");
  if (total_known) b.total(total);
  b.link("self", self_url(req));
  if (more) {
    std::string next = self_url(req, {"_after"});
    next += next.find('?') == std::string::npos ? '?' : '&';
    b.link("next", next + "_after=" + percent_encode(rows.back().id));
  }
  const Json match = {{"search", {{"mode", "match"}}}};
  for (const auto& v : rows) b.entry(req.base_url + "/" + v.type + "/" + v.id, v.content, match);
  RestResponse resp;
  resp.body = b.finish();
  return resp;
}

}  // namespace kasama::server
