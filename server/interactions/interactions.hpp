#pragma once
// One function per FHIR interaction; each file of this folder holds one of them.
#include <string>

#include "server/interactions/context.hpp"
#include "server/interactions/rest.hpp"

namespace kasama::server {

enum class Kind {
  kCapabilities,
  kRead,
  kVread,
  kCreate,
  kUpdate,
  kConditionalUpdate,
  kPatch,
  kConditionalPatch,
  kDelete,
  kConditionalDelete,
  kHistoryInstance,
  kHistoryType,
  kHistorySystem,
  kSearchType,
  kSearchSystem,
  kSearchCompartment,
  kEverything,
  kReindex,
  kBatchOrTransaction,
  kAuditVerify,  // AuditEvent/$verify: the hash chain (server/audit)
};

struct Route {
  Kind kind;
  std::string type;
  std::string id;
  std::string vid;
};

// Which interaction a request is; 404 for unknown paths and types, 405 for wrong methods.
Route route(const RestRequest& req);
bool is_write(Kind kind);
const char* kind_name(Kind kind);

RestResponse read(Context& ctx, const RestRequest& req, const Route& r);
// The audit trail as AuditEvents (audit_events.cpp): read, search and $verify, for auditors.
RestResponse audit_event_read(Context& ctx, const RestRequest& req, const Route& r);
RestResponse audit_event_search(Context& ctx, const RestRequest& req, const Route& r);
RestResponse audit_verify(Context& ctx, const RestRequest& req, const Route& r);
// The restful-interaction code an audit record names for a route.
std::string audit_interaction(Kind kind);
RestResponse search_system(Context& ctx, const RestRequest& req, const Route& r);
RestResponse patient_everything(Context& ctx, const RestRequest& req, const Route& r);
// Route: type = compartment type, id = its id, vid = the searched type.
RestResponse search_compartment(Context& ctx, const RestRequest& req, const Route& r);
RestResponse vread(Context& ctx, const RestRequest& req, const Route& r);
RestResponse create(Context& ctx, const RestRequest& req, const Route& r);
RestResponse update(Context& ctx, const RestRequest& req, const Route& r);
RestResponse conditional_update(Context& ctx, const RestRequest& req, const Route& r);
RestResponse patch(Context& ctx, const RestRequest& req, const Route& r);
RestResponse conditional_patch(Context& ctx, const RestRequest& req, const Route& r);
RestResponse remove(Context& ctx, const RestRequest& req, const Route& r);
RestResponse conditional_remove(Context& ctx, const RestRequest& req, const Route& r);
RestResponse history(Context& ctx, const RestRequest& req, const Route& r);
RestResponse search_type(Context& ctx, const RestRequest& req, const Route& r);
RestResponse capabilities(Context& ctx, const RestRequest& req, const Route& r);

}  // namespace kasama::server
