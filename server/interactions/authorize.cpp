#include "server/interactions/authorize.hpp"

#include "server/interactions/search_engine.hpp"

namespace kasama::server {

namespace {

using auth::ScopeContext;

unsigned needed_perms(Kind k) {
  switch (k) {
    case Kind::kRead:
    case Kind::kVread:
    case Kind::kHistoryInstance:
      return auth::kRead;
    case Kind::kCreate:
      return auth::kCreate;
    case Kind::kUpdate:
    case Kind::kConditionalUpdate:
    case Kind::kPatch:
    case Kind::kConditionalPatch:
    case Kind::kReindex:
      return auth::kUpdate;
    case Kind::kDelete:
    case Kind::kConditionalDelete:
      return auth::kDelete;
    case Kind::kHistoryType:
    case Kind::kHistorySystem:
    case Kind::kSearchType:
    case Kind::kSearchSystem:
    case Kind::kSearchCompartment:
      return auth::kSearch;
    case Kind::kEverything:
      return auth::kRead | auth::kSearch;
    case Kind::kCapabilities:
    case Kind::kBatchOrTransaction:
      return 0;
  }
  return auth::kAllPerms;
}

// The type the scopes must cover: "*" for system-wide interactions.
std::string scoped_type(const Route& r) {
  switch (r.kind) {
    case Kind::kSearchSystem:
    case Kind::kHistorySystem:
    case Kind::kEverything:
      return "*";
    case Kind::kSearchCompartment:
      return r.vid.empty() ? "*" : r.vid;
    case Kind::kReindex:
      return r.type.empty() ? "*" : r.type;
    default:
      return r.type;
  }
}

[[noreturn]] void refuse(const auth::Principal& p, const Route& r, const std::string& type) {
  FhirError e(403, "forbidden",
              std::string("アクセス権限(スコープ)が不足しています / the token's scopes (") + p.scope_text +
                  ") do not allow " + kind_name(r.kind) + (type == "*" ? std::string() : " on " + type));
  e.headers.emplace_back("WWW-Authenticate", "Bearer error=\"insufficient_scope\"");
  throw e;
}

// Whether resource type/id is in the patient's compartment now (a compartment search for it).
bool in_compartment(Context& ctx, const RestRequest& req, const std::string& patient, const std::string& type,
                    const std::string& id) {
  if (type == "Patient") return id == patient;
  if (patient_compartment_params(type).empty()) return true;  // not patient data: not held to the compartment
  RestRequest probe;
  probe.method = "GET";
  probe.base_url = req.base_url;
  probe.request_id = req.request_id;
  probe.principal = req.principal;
  probe.params = {{"_id", id}, {"_summary", "count"}, {"_total", "accurate"}};
  SearchScope scope;
  scope.types = {type};
  scope.compartment_type = "Patient";
  scope.compartment_id = patient;
  const RestResponse resp = run_search(ctx, probe, scope);
  auto parsed = resources::parse_json(resp.body);
  return parsed.ok && parsed.value.value("total", 0) > 0;
}

// Until the access module filters what _revinclude and iterated _include bring in (issue 5),
// a patient-context token may not ask for them: they can reach beyond the compartment.
void refuse_wide_includes(const auth::Principal& p, const RestRequest& req) {
  for (const auto& [name, value] : req.params) {
    if (name.starts_with("_revinclude") ||
        (name.starts_with("_include") && name.find(":iterate") != std::string::npos)) {
      FhirError e(403, "forbidden",
                  name + " is not available to a token limited to one patient's records (" + p.scope_text + ")", name);
      throw e;
    }
  }
}

}  // namespace

void authorize(Context& ctx, const RestRequest& req, Route& r) {
  if (r.kind == Kind::kCapabilities) return;
  if (!req.principal) throw FhirError(500, "exception", "request without a principal");
  const auth::Principal& p = *req.principal;
  if (p.kind == "internal") return;
  const unsigned perms = needed_perms(r.kind);
  const std::string type = scoped_type(r);
  const auto& s = p.scopes;
  if (r.kind == Kind::kReindex) {
    // Rebuilding indexes is server management: a backend client with system write scope, or
    // a holder of the admin right.
    if (p.admin_right || s.permits(ScopeContext::kSystem, type, perms)) return;
    refuse(p, r, type);
  }
  // A system search naming its types (_type) needs scopes for those types only.
  if (r.kind == Kind::kSearchSystem) {
    if (const std::string* types = req.param("_type"); types && !types->empty()) {
      std::size_t start = 0;
      while (start <= types->size()) {
        const std::size_t comma = std::min(types->find(',', start), types->size());
        const std::string one = types->substr(start, comma - start);
        if (!s.permits(ScopeContext::kUser, one, perms) && !s.permits(ScopeContext::kSystem, one, perms)) {
          refuse(p, r, one);
        }
        start = comma + 1;
      }
      return;
    }
  }
  if (s.permits(ScopeContext::kUser, type, perms) || s.permits(ScopeContext::kSystem, type, perms)) return;
  if (!s.permits(ScopeContext::kPatient, type, perms) || p.patient.empty()) refuse(p, r, type);

  // Only a patient/ scope covers it: the patient's compartment, nothing else.
  const std::string& pid = p.patient;
  const auto not_found = [&]() {
    return FhirError(404, "not-found", "Resource " + r.type + "/" + r.id + " is not known");
  };
  switch (r.kind) {
    case Kind::kRead:
    case Kind::kVread:
    case Kind::kHistoryInstance:
      if (!in_compartment(ctx, req, pid, r.type, r.id)) throw not_found();
      return;
    case Kind::kSearchType:
      refuse_wide_includes(p, req);
      if (patient_compartment_params(r.type).empty()) return;  // not patient data
      r = Route{Kind::kSearchCompartment, "Patient", pid, r.type};
      return;
    case Kind::kSearchCompartment:
      refuse_wide_includes(p, req);
      [[fallthrough]];
    case Kind::kEverything:
      if (r.type == "Patient" && r.id == pid) return;
      throw not_found();
    default:
      // Writes and system-wide reads are not given to a patient context.
      refuse(p, r, type);
  }
}

}  // namespace kasama::server
