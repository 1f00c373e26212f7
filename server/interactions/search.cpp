// Search: type (GET /Type, POST /Type/_search), system (GET /?_type=..., POST /_search) and
// compartment (GET /Patient/1/Observation) search over the index tables, with the result
// parameters _count, _sort, _total, _summary, _elements, _include and _revinclude, and
// keyset paging (next/previous) that neither skips nor repeats a resource while writes go on.
#include <algorithm>
#include <map>
#include <set>

#include "resources/references.hpp"
#include "resources/type_model.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/page.hpp"
#include "server/interactions/search_engine.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {

RestResponse search_type(Context& ctx, const RestRequest& req, const Route& r) {
  SearchScope scope;
  scope.types = {r.type};
  return run_search(ctx, req, scope);
}

RestResponse search_system(Context& ctx, const RestRequest& req, const Route&) {
  SearchScope scope;
  scope.system = true;
  return run_search(ctx, req, scope);
}

RestResponse search_compartment(Context& ctx, const RestRequest& req, const Route& r) {
  SearchScope scope;
  scope.types = {r.vid};
  scope.compartment_type = r.type;
  scope.compartment_id = r.id;
  return run_search(ctx, req, scope);
}

}  // namespace kasama::server
