#include "server/interactions/authorize.hpp"

#include <algorithm>
#include <set>

#include "resources/references.hpp"
#include "resources/type_model.hpp"
#include "server/interactions/search_engine.hpp"
#include "server/interactions/support.hpp"
#include "server/search/escapes.hpp"
#include "server/search/extract.hpp"
#include "server/search/query.hpp"
#include "server/search/registry.hpp"

namespace kasama::server {

namespace {

using auth::ScopeContext;

unsigned needed_perms(Kind k, const RestRequest& req) {
  switch (k) {
    case Kind::kRead:
    case Kind::kVread:
    case Kind::kHistoryInstance:
      return auth::kRead;
    case Kind::kCreate:
      // If-None-Exist searches the type: that needs search as well.
      return req.header("if-none-exist") ? auth::kCreate | auth::kSearch : auth::kCreate;
    case Kind::kUpdate:
    case Kind::kPatch:
    case Kind::kReindex:
      return auth::kUpdate;
    case Kind::kConditionalUpdate:
    case Kind::kConditionalPatch:
      return auth::kUpdate | auth::kSearch;
    case Kind::kDelete:
      return auth::kDelete;
    case Kind::kConditionalDelete:
      return auth::kDelete | auth::kSearch;
    case Kind::kHistoryType:
    case Kind::kHistorySystem:
    case Kind::kSearchType:
    case Kind::kSearchSystem:
    case Kind::kSearchCompartment:
      return auth::kSearch;
    case Kind::kEverything:
      return auth::kRead | auth::kSearch;
    case Kind::kAuditVerify:
      return auth::kRead;
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

[[noreturn]] void refuse(const auth::Principal& p, const Route& r, const std::string& type,
                         const std::string& because = "") {
  FhirError e(403, "forbidden",
              std::string("アクセス権限(スコープ)が不足しています / the token's scopes (") + p.scope_text +
                  ") do not allow " + kind_name(r.kind) +
                  (type == "*" ? std::string(" on every type") : " on " + type) + because);
  e.headers.emplace_back("WWW-Authenticate", "Bearer error=\"insufficient_scope\"");
  throw e;
}

bool broad(const auth::ScopeSet& s, const std::string& type, unsigned perms) {
  return s.permits(ScopeContext::kUser, type, perms) || s.permits(ScopeContext::kSystem, type, perms);
}

// A search's parameters as run_search will see them: the query, then a POST _search body.
std::vector<std::pair<std::string, std::string>> search_params(const RestRequest& req) {
  std::vector<std::pair<std::string, std::string>> all = req.params;
  if (req.method == "POST" && !req.body.empty()) {
    const std::string* ct = req.header("content-type");
    if (ct && ct->find("application/x-www-form-urlencoded") != std::string::npos) {
      auto body = parse_criteria("?" + req.body);
      all.insert(all.end(), body.begin(), body.end());
    }
  }
  return all;
}

// The reference targets of a parameter on some of the types; "*" when one is unknown.
void add_targets(const std::set<std::string>& from, const std::string& code, std::set<std::string>& out) {
  for (const auto& t : from) {
    const auto* sp = search::Registry::instance().find(t, code);
    if (!sp || sp->targets.empty()) {
      out.insert("*");
      continue;
    }
    out.insert(sp->targets.begin(), sp->targets.end());
  }
}

// The types the chains and reverse chains (_has) of a clause look into, at any depth.
void walk_clause(const search::Clause& c, std::set<std::string>& search) {
  if (c.chain) {
    search.insert(c.chain->target_type);
    walk_clause(c.chain->inner, search);
  }
  if (c.has) {
    search.insert(c.has->source_type);
    walk_clause(c.has->inner, search);
  }
}

// The types a set of criteria on type reaches through chains and _has, as the search engine
// parses them (so that nothing it accepts goes unseen here). Unparsable criteria reach
// nothing: the search itself refuses them.
void criteria_types(const std::string& type, const std::vector<std::pair<std::string, std::string>>& criteria,
                    std::set<std::string>& search) {
  std::vector<std::pair<std::string, std::string>> filters;
  for (const auto& kv : criteria) {
    if (!search::is_result_parameter(kv.first) && kv.first != "_type" && kv.first != "_cursor") filters.push_back(kv);
  }
  if (filters.empty() || !resources::TypeModel::instance().is_resource_type(type)) return;
  const auto q = search::parse_search(type, filters, true);
  for (const auto& c : q.clauses) walk_clause(c, search);
}

// Every type a search reaches besides the searched one, with what it needs: resources that
// _include/_revinclude bring in must be readable; types that _type, chains and _has look
// into must be searchable. "*" stands for "any type".
void reached_types(const std::vector<std::pair<std::string, std::string>>& params,
                   const std::vector<std::string>& types, std::set<std::string>& read, std::set<std::string>& search) {
  for (const auto& [name, value] : params) {
    if (name == "_type") {
      for (const auto& t : search::split_list(value, ',')) search.insert(search::unescape(t));
    } else if (name.starts_with("_include") || name.starts_with("_revinclude")) {
      const bool rev = name.starts_with("_revinclude");
      const auto parts = search::split_list(value, ':');
      if (value == "*" || parts.size() < 2) {
        read.insert("*");
      } else if (rev) {
        read.insert(parts[0]);  // the resources that point here
      } else if (parts[1] == "*") {
        read.insert("*");  // whatever the source's references point to
      } else if (parts.size() >= 3) {
        read.insert(parts[2]);
      } else {
        add_targets({parts[0]}, parts[1], read);
      }
    }
  }
  for (const auto& t : types) criteria_types(t, params, search);
}

// Links in a resource to be written that are conditional ("Patient?identifier=…", in a
// reference or any uri/url/canonical element, as a transaction resolves them): resolving one
// searches its type, and whatever its criteria chain into.
void conditional_link_types(const RestRequest& req, std::set<std::string>& search) {
  std::optional<resources::Json> parsed_body;
  resources::Json* resource = nullptr;
  if (req.resource) {
    // for_each_link takes a mutable resource (it also serves rewriting); this walk only reads.
    resource = const_cast<resources::Json*>(&*req.resource);
  } else if (req.body.find('?') != std::string::npos) {
    auto parsed = resources::parse_json(req.body);
    if (!parsed.ok) return;  // the write itself will refuse it
    parsed_body = std::move(parsed.value);
    resource = &*parsed_body;
  } else {
    return;
  }
  resources::for_each_link(*resource, [&](std::string& link) {
    const auto q = link.find('?');
    if (q == std::string::npos || q == 0 || link.find('/') < q || link.find(':') < q) return;
    const std::string type = link.substr(0, q);
    if (!resources::TypeModel::instance().is_resource_type(type)) return;
    search.insert(type);
    criteria_types(type, parse_criteria(std::string_view(link).substr(q)), search);
  });
}

// Whether resource type/id is in the patient's compartment now (a compartment search for it).
bool in_compartment(Context& ctx, const RestRequest& req, const std::string& patient, const std::string& type,
                    const std::string& id) {
  if (type == "Patient") return id == patient;
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

// Whether one stored version of type/id belonged to the patient's compartment: its own
// references, through the compartment's parameters, name the patient.
bool version_in_compartment(Context& ctx, const RestRequest& req, const std::string& patient, const std::string& type,
                            const std::string& id, const std::string& vid) {
  if (type == "Patient") return id == patient;
  std::uint32_t version = 0;
  try {
    version = static_cast<std::uint32_t>(std::stoul(vid));
  } catch (const std::exception&) {
    return false;
  }
  auto v = ctx.svc.store.read_version(ctx.db(), type, id, version);
  if (!v || v->deleted) return false;
  auto parsed = resources::parse_json(v->content);
  if (!parsed.ok) return false;
  const auto rows = search::Extractor::instance().extract(type, parsed.value, req.base_url);
  const auto& params = patient_compartment_params(type);
  return std::any_of(rows.references.begin(), rows.references.end(), [&](const storage::ReferenceRow& ref) {
    return ref.target_type == "Patient" && ref.target_id == patient &&
           std::find(params.begin(), params.end(), ref.param) != params.end();
  });
}

// Types outside the Patient compartment that a patient-context token may read: the
// directory of people, places and things a record points to, which holds nobody's health
// data. Anything else outside the compartment (Bundle, Binary, Device, …) may.
bool shared_reference_type(const std::string& type) {
  static const std::set<std::string> kTypes = {
      "Organization", "Practitioner",  "PractitionerRole",    "Location",        "HealthcareService",
      "Endpoint",     "Medication",    "Substance",           "ValueSet",        "CodeSystem",
      "ConceptMap",   "Questionnaire", "StructureDefinition", "SearchParameter", "OperationDefinition"};
  return kTypes.count(type) > 0;
}

void check(Context& ctx, const RestRequest& req, Route& r) {
  if (r.kind == Kind::kCapabilities) return;
  if (!req.principal) throw FhirError(500, "exception", "request without a principal");
  const auth::Principal& p = *req.principal;
  if (p.kind == "internal") return;
  if (r.type == "AuditEvent") {
    // The audit trail is the auditors' (and the sysadmin's, for operations), whatever the
    // token's scopes; and only the server writes it.
    if (p.role != "auditor" && p.role != "sysadmin") {
      throw FhirError(403, "forbidden",
                      "監査記録は監査責任者とシステム管理者のみが参照できます / only auditors and the system "
                      "administrator may read the audit trail");
    }
  }
  const unsigned perms = needed_perms(r.kind, req);
  const std::string type = scoped_type(r);
  const auto& s = p.scopes;
  if (r.kind == Kind::kReindex) {
    // Rebuilding indexes is server management: a backend client with system write scope,
    // not an institution's (its answer counts every resource, whoever's they are: R-20).
    if (p.institution_scoped) {
      throw FhirError(403, "forbidden",
                      "索引の再構築は市の管理作業です / $reindex is server maintenance, not for an institution's "
                      "terminal (use kasama-server reindex)");
    }
    if (s.permits(ScopeContext::kSystem, type, perms)) return;
    refuse(p, r, type);
  }
  const bool searching = r.kind == Kind::kSearchType || r.kind == Kind::kSearchSystem ||
                         r.kind == Kind::kSearchCompartment || r.kind == Kind::kEverything;
  std::vector<std::pair<std::string, std::string>> params;
  if (searching) params = search_params(req);
  const bool patient_only = !broad(s, type, perms) && r.kind != Kind::kSearchSystem;

  if (!patient_only) {
    // user/ or system/ scopes: the interaction's type, and every type the request reaches.
    // A scope on every type covers all of that: no second parse of the search here.
    if (broad(s, type, perms) && broad(s, "*", auth::kRead | auth::kSearch)) return;
    std::set<std::string> read, search;
    if (searching) {
      std::vector<std::string> types;
      if (r.kind == Kind::kSearchSystem) {
        for (const auto& [name, value] : params) {
          if (name != "_type") continue;
          for (const auto& t : search::split_list(value, ',')) types.push_back(search::unescape(t));
        }
        if (types.empty()) search.insert("*");  // no _type: every type, whatever else is asked
      } else if (type != "*") {
        types.push_back(type);
      }
      reached_types(params, types, read, search);
    }
    if (r.kind != Kind::kSearchSystem && !broad(s, type, perms)) refuse(p, r, type);
    // Conditional operations search with their criteria (the URL's, or If-None-Exist).
    if (r.kind == Kind::kConditionalUpdate || r.kind == Kind::kConditionalPatch || r.kind == Kind::kConditionalDelete) {
      criteria_types(r.type, req.params, search);
    }
    if (const std::string* ine = req.header("if-none-exist"); ine && r.kind == Kind::kCreate) {
      criteria_types(r.type, parse_criteria(*ine), search);
    }
    if (is_write(r.kind)) conditional_link_types(req, search);
    for (const auto& t : search) {
      if (!broad(s, t, auth::kSearch)) refuse(p, r, t, " (searched by this request)");
    }
    for (const auto& t : read) {
      if (!broad(s, t, auth::kRead)) refuse(p, r, t, " (included by this request)");
    }
    return;
  }

  if (!s.permits(ScopeContext::kPatient, type, perms) || p.patient.empty()) refuse(p, r, type);
  // Only a patient/ scope covers it: the patient's compartment, and the shared directory
  // types, nothing else. Until the access module filters what includes bring in (issue 5),
  // includes and $everything (which adds referenced resources) are not offered here.
  for (const auto& [name, value] : params) {
    if (name.starts_with("_include") || name.starts_with("_revinclude")) {
      throw FhirError(403, "forbidden",
                      name + " is not available to a token limited to one patient's records (" + p.scope_text + ")",
                      name);
    }
  }
  if (searching) {
    // Chains and _has look into other resources, which may be anybody's.
    std::set<std::string> reached;
    criteria_types(type == "*" ? "Patient" : type, params, reached);
    if (!reached.empty()) {
      throw FhirError(403, "forbidden",
                      "chained parameters and _has are not available to a token limited to one patient's records (" +
                          p.scope_text + ")");
    }
  }
  const std::string& pid = p.patient;
  const auto not_found = [&]() {
    return FhirError(404, "not-found", "Resource " + r.type + "/" + r.id + " is not known");
  };
  const bool compartment_type = !patient_compartment_params(r.type).empty();
  switch (r.kind) {
    case Kind::kRead:
      if (!compartment_type && !shared_reference_type(r.type)) refuse(p, r, r.type, " (not one patient's data)");
      if (compartment_type && !in_compartment(ctx, req, pid, r.type, r.id)) throw not_found();
      return;
    case Kind::kVread:
      // The version asked for must have been the patient's, whatever the resource is now.
      if (!compartment_type && !shared_reference_type(r.type)) refuse(p, r, r.type, " (not one patient's data)");
      if (compartment_type && !version_in_compartment(ctx, req, pid, r.type, r.id, r.vid)) {
        throw FhirError(404, "not-found", r.type + "/" + r.id + "/_history/" + r.vid + " is not known");
      }
      return;
    case Kind::kSearchType:
      if (!compartment_type) {
        if (shared_reference_type(r.type)) return;
        refuse(p, r, r.type, " (not one patient's data)");
      }
      r = Route{Kind::kSearchCompartment, "Patient", pid, r.type};
      return;
    case Kind::kSearchCompartment:
      if (r.type == "Patient" && r.id == pid) return;
      throw not_found();
    default:
      // Writes, instance history (earlier versions may have been someone else's), $everything
      // and system-wide reads are not given to a patient context.
      refuse(p, r, type);
  }
}

}  // namespace

void authorize(Context& ctx, const RestRequest& req, Route& r) {
  try {
    check(ctx, req, r);
  } catch (FhirError& e) {
    // Every refusal here is a denial for the audit record, also a 404 that hides.
    if (req.audit) {
      req.audit->denied = true;
      req.audit->detail = e.what();
    }
    throw;
  }
}

}  // namespace kasama::server
