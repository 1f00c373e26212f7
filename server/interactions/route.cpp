#include "resources/type_model.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {
namespace {

[[noreturn]] void not_allowed(const RestRequest& req, const std::string& allowed) {
  FhirError err(405, "not-supported",
                "Method " + req.method + " is not allowed on /" + req.path() + " (allowed: " + allowed + ")");
  err.allow = allowed;
  throw err;
}

}  // namespace

Route route(const RestRequest& req) {
  const auto& s = req.segments;
  const std::string& m = req.method;
  if (s.empty()) {
    if (m == "POST") return {Kind::kBatchOrTransaction, "", "", ""};
    if (m == "GET" || m == "HEAD") return {Kind::kSearchSystem, "", "", ""};
    not_allowed(req, "GET, HEAD, POST");
  }
  if (s.size() == 1 && s[0] == "$reindex") {
    if (m == "POST") return {Kind::kReindex, "", "", ""};
    not_allowed(req, "POST");
  }
  if (s.size() == 1 && s[0] == "_search") {
    if (m == "POST") return {Kind::kSearchSystem, "", "", ""};
    not_allowed(req, "POST");
  }
  if (s.size() == 1 && s[0] == "metadata") {
    if (m == "GET" || m == "HEAD") return {Kind::kCapabilities, "", "", ""};
    not_allowed(req, "GET, HEAD");
  }
  if (s.size() == 1 && s[0] == "_history") {
    if (m == "GET" || m == "HEAD") return {Kind::kHistorySystem, "", "", ""};
    not_allowed(req, "GET, HEAD");
  }
  const std::string& type = s[0];
  if (s[0].empty() || s[0][0] == '$' || s[0][0] == '_') {
    throw FhirError(404, "not-supported", "Unknown path /" + req.path());
  }
  require_resource_type(type);
  if (s.size() == 1) {
    if (m == "GET" || m == "HEAD") return {Kind::kSearchType, type, "", ""};
    if (m == "POST") return {Kind::kCreate, type, "", ""};
    if (m == "PUT") return {Kind::kConditionalUpdate, type, "", ""};
    if (m == "PATCH") return {Kind::kConditionalPatch, type, "", ""};
    if (m == "DELETE") return {Kind::kConditionalDelete, type, "", ""};
    not_allowed(req, "GET, HEAD, POST, PUT, PATCH, DELETE");
  }
  if (s.size() == 2 && s[1] == "_history") {
    if (m == "GET" || m == "HEAD") return {Kind::kHistoryType, type, "", ""};
    not_allowed(req, "GET, HEAD");
  }
  if (s.size() == 2 && s[1] == "_search") {
    if (m == "POST") return {Kind::kSearchType, type, "", ""};
    not_allowed(req, "POST");
  }
  if (s.size() == 2 && s[1] == "$reindex") {
    if (m == "POST") return {Kind::kReindex, type, "", ""};
    not_allowed(req, "POST");
  }
  if (s.size() == 2 && s[1] == "$verify" && type == "AuditEvent") {
    if (m == "GET" || m == "HEAD" || m == "POST") return {Kind::kAuditVerify, type, "", ""};
    not_allowed(req, "GET, HEAD, POST");
  }
  const std::string& id = s[1];
  if (!id.empty() && id[0] == '$') throw FhirError(404, "not-supported", "Unknown operation " + id + " on " + type);
  require_valid_id(id);
  if (s.size() == 2) {
    if (m == "GET" || m == "HEAD") return {Kind::kRead, type, id, ""};
    if (m == "PUT") return {Kind::kUpdate, type, id, ""};
    if (m == "PATCH") return {Kind::kPatch, type, id, ""};
    if (m == "DELETE") return {Kind::kDelete, type, id, ""};
    not_allowed(req, "GET, HEAD, PUT, PATCH, DELETE");
  }
  if (s.size() == 3 && s[2] == "_history") {
    if (m == "GET" || m == "HEAD") return {Kind::kHistoryInstance, type, id, ""};
    not_allowed(req, "GET, HEAD");
  }
  if (s.size() == 3 && s[2] == "$everything" && type == "Patient") {
    if (m == "GET" || m == "HEAD") return {Kind::kEverything, type, id, ""};
    not_allowed(req, "GET, HEAD");
  }
  if (s.size() == 3 && resources::TypeModel::instance().is_resource_type(s[2])) {
    if (m == "GET" || m == "HEAD") return {Kind::kSearchCompartment, type, id, s[2]};
    not_allowed(req, "GET, HEAD");
  }
  if (s.size() == 4 && s[2] == "_history") {
    if (m == "GET" || m == "HEAD") return {Kind::kVread, type, id, s[3]};
    not_allowed(req, "GET, HEAD");
  }
  throw FhirError(404, "not-supported", "Unknown path /" + req.path());
}

bool is_write(Kind kind) {
  switch (kind) {
    case Kind::kCreate:
    case Kind::kUpdate:
    case Kind::kConditionalUpdate:
    case Kind::kPatch:
    case Kind::kConditionalPatch:
    case Kind::kDelete:
    case Kind::kConditionalDelete:
      return true;
    default:
      return false;
  }
}

namespace {

// Each interaction's name (in messages) and its restful-interaction code (in audit records,
// http://hl7.org/fhir/restful-interaction; "operation" for operations).
struct KindNames {
  Kind kind;
  const char* name;
  const char* code;
};
constexpr KindNames kKindNames[] = {
    {Kind::kCapabilities, "capabilities", "capabilities"},
    {Kind::kRead, "read", "read"},
    {Kind::kVread, "vread", "vread"},
    {Kind::kCreate, "create", "create"},
    {Kind::kUpdate, "update", "update"},
    {Kind::kConditionalUpdate, "conditional-update", "update"},
    {Kind::kPatch, "patch", "patch"},
    {Kind::kConditionalPatch, "conditional-patch", "patch"},
    {Kind::kDelete, "delete", "delete"},
    {Kind::kConditionalDelete, "conditional-delete", "delete"},
    {Kind::kHistoryInstance, "history-instance", "history-instance"},
    {Kind::kHistoryType, "history-type", "history-type"},
    {Kind::kHistorySystem, "history-system", "history-system"},
    {Kind::kSearchType, "search-type", "search-type"},
    {Kind::kSearchSystem, "search-system", "search-system"},
    {Kind::kSearchCompartment, "search-compartment", "search"},
    {Kind::kEverything, "operation-everything", "operation"},
    {Kind::kReindex, "operation-reindex", "operation"},
    {Kind::kBatchOrTransaction, "batch-or-transaction", "batch"},
    {Kind::kAuditVerify, "operation-verify", "operation"},
};

const KindNames* names_of(Kind kind) {
  for (const auto& k : kKindNames) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

}  // namespace

const char* kind_name(Kind kind) {
  const KindNames* k = names_of(kind);
  return k ? k->name : "unknown";
}

std::string audit_interaction(Kind kind) {
  const KindNames* k = names_of(kind);
  return k ? k->code : "unknown";
}

}  // namespace kasama::server
