#include "server/access/decision.hpp"

#include <set>

namespace kasama::access {

namespace {

using auth::ScopeContext;
using What = RequestFacts::What;
using Effect = Decision::Effect;

Decision permit() { return {}; }

Decision refuse(const auth::Principal& p, const RequestFacts& f, const std::string& type, const std::string& because = "") {
  Decision d;
  d.effect = Effect::kDeny;
  d.insufficient_scope = true;
  d.message = std::string("アクセス権限(スコープ)が不足しています / the token's scopes (") + p.scope_text +
              ") do not allow " + f.interaction + (type == "*" ? std::string(" on every type") : " on " + type) +
              because;
  return d;
}

Decision deny(std::string message, std::string parameter = "") {
  Decision d;
  d.effect = Effect::kDeny;
  d.message = std::move(message);
  d.parameter = std::move(parameter);
  return d;
}

Decision not_found(std::string message) {
  Decision d;
  d.effect = Effect::kNotFound;
  d.message = std::move(message);
  return d;
}

bool broad(const auth::ScopeSet& s, const std::string& type, unsigned perms) {
  return s.permits(ScopeContext::kUser, type, perms) || s.permits(ScopeContext::kSystem, type, perms);
}

// Types outside the Patient compartment that a patient context may read: the directory of
// people, places and things a record points to, which holds nobody's health data.
bool shared_reference_type(const std::string& type) {
  static const std::set<std::string> kTypes = {
      "Organization", "Practitioner",  "PractitionerRole",    "Location",        "HealthcareService",
      "Endpoint",     "Medication",    "Substance",           "ValueSet",        "CodeSystem",
      "ConceptMap",   "Questionnaire", "StructureDefinition", "SearchParameter", "OperationDefinition"};
  return kTypes.count(type) > 0;
}

}  // namespace

Decision decide(const auth::Principal& p, const RequestFacts& f) {
  if (f.what == What::kCapabilities) return permit();
  if (p.kind == "internal") return permit();
  if (f.route_type == "AuditEvent" && p.role != "auditor" && p.role != "sysadmin") {
    // The audit trail is the auditors' (and the sysadmin's, for operations), whatever the
    // token's scopes; and only the server writes it.
    return deny(
        "監査記録は監査責任者とシステム管理者のみが参照できます / only auditors and the system administrator may "
        "read the audit trail");
  }
  const auto& s = p.scopes;
  if (f.what == What::kReindex) {
    // Rebuilding indexes is server management: a backend client with system write scope
    // (an institution's is told no count of what was reindexed: R-20, see reindex.cpp).
    if (s.permits(ScopeContext::kSystem, f.type, f.perms)) return permit();
    return refuse(p, f, f.type);
  }
  const bool patient_only = !broad(s, f.type, f.perms) && f.what != What::kSearchSystem;

  if (!patient_only) {
    // user/ or system/ scopes: the interaction's type, and every type the request reaches.
    // A scope on every type covers all of that: the reached types are not even gathered.
    if (broad(s, f.type, f.perms) && broad(s, "*", auth::kRead | auth::kSearch)) return permit();
    if (f.what != What::kSearchSystem && !broad(s, f.type, f.perms)) return refuse(p, f, f.type);
    std::set<std::string> read, search;
    if (f.reached) f.reached(read, search);
    for (const auto& t : search)
      if (!broad(s, t, auth::kSearch)) return refuse(p, f, t, " (searched by this request)");
    for (const auto& t : read)
      if (!broad(s, t, auth::kRead)) return refuse(p, f, t, " (included by this request)");
    return permit();
  }

  if (!s.permits(ScopeContext::kPatient, f.type, f.perms) || p.patient.empty()) return refuse(p, f, f.type);
  // Only a patient/ scope covers it: the patient's compartment and the shared directory
  // types, nothing else. What includes and $everything bring in, and what chains and _has
  // look into, may be anybody's: not offered to a patient context.
  for (const auto& name : f.include_params) {
    return deny(name + " is not available to a token limited to one patient's records (" + p.scope_text + ")", name);
  }
  if (f.searching && f.chains && f.chains()) {
    return deny("chained parameters and _has are not available to a token limited to one patient's records (" +
                p.scope_text + ")");
  }
  const std::string known = f.route_type + "/" + f.route_id;
  switch (f.what) {
    case What::kRead:
    case What::kVread: {
      if (!f.compartment_type && !shared_reference_type(f.route_type))
        return refuse(p, f, f.route_type, " (not one patient's data)");
      if (!f.compartment_type) return permit();
      Decision d;
      d.effect = f.what == What::kRead ? Effect::kIfInCompartment : Effect::kIfVersionInCompartment;
      return d;
    }
    case What::kSearchType: {
      if (!f.compartment_type) {
        if (shared_reference_type(f.route_type)) return permit();
        return refuse(p, f, f.route_type, " (not one patient's data)");
      }
      Decision d;
      d.effect = Effect::kAsCompartmentSearch;
      return d;
    }
    case What::kSearchCompartment:
      if (f.route_type == "Patient" && f.route_id == p.patient) return permit();
      return not_found("Resource " + known + " is not known");
    default:
      // Writes, history (earlier versions may have been someone else's), $everything and
      // system-wide reads are not given to a patient context.
      return refuse(p, f, f.type);
  }
}

}  // namespace kasama::access
