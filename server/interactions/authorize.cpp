#include "server/interactions/authorize.hpp"

#include <algorithm>
#include <set>

#include "resources/references.hpp"
#include "resources/type_model.hpp"
#include "server/access/decision.hpp"
#include "server/interactions/search_engine.hpp"
#include "server/interactions/support.hpp"
#include "server/search/escapes.hpp"
#include "server/search/extract.hpp"
#include "server/search/query.hpp"
#include "server/search/registry.hpp"

namespace kasama::server {

namespace {

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

access::RequestFacts::What what_of(Kind k) {
  using W = access::RequestFacts::What;
  switch (k) {
    case Kind::kCapabilities:
      return W::kCapabilities;
    case Kind::kRead:
      return W::kRead;
    case Kind::kVread:
      return W::kVread;
    case Kind::kSearchType:
      return W::kSearchType;
    case Kind::kSearchSystem:
      return W::kSearchSystem;
    case Kind::kSearchCompartment:
      return W::kSearchCompartment;
    case Kind::kHistoryInstance:
      return W::kHistoryInstance;
    case Kind::kHistoryType:
      return W::kHistoryType;
    case Kind::kHistorySystem:
      return W::kHistorySystem;
    case Kind::kEverything:
      return W::kEverything;
    case Kind::kReindex:
      return W::kReindex;
    case Kind::kAuditVerify:
      return W::kAuditVerify;
    case Kind::kBatchOrTransaction:
      return W::kBatch;
    default:
      return W::kWrite;
  }
}

// The enforcement point: gathers what the request asks for, asks server/access for the
// decision, and carries it out (403, 404, the compartment checks a patient context needs,
// or a type search turned into a compartment search).
void check(Context& ctx, const RestRequest& req, Route& r) {
  if (r.kind == Kind::kCapabilities) return;
  if (!req.principal) throw FhirError(500, "exception", "request without a principal");
  const auth::Principal& p = *req.principal;
  access::RequestFacts f;
  f.what = what_of(r.kind);
  f.interaction = kind_name(r.kind);
  f.type = scoped_type(r);
  f.route_type = r.type;
  f.route_id = r.id;
  f.perms = needed_perms(r.kind, req);
  f.searching = r.kind == Kind::kSearchType || r.kind == Kind::kSearchSystem || r.kind == Kind::kSearchCompartment ||
                r.kind == Kind::kEverything;
  f.compartment_type = !patient_compartment_params(r.type).empty();
  std::vector<std::pair<std::string, std::string>> params;
  if (f.searching) params = search_params(req);
  for (const auto& [name, value] : params)
    if (name.starts_with("_include") || name.starts_with("_revinclude")) f.include_params.push_back(name);
  f.reached = [&](std::set<std::string>& read, std::set<std::string>& search) {
    if (f.searching) {
      std::vector<std::string> types;
      if (r.kind == Kind::kSearchSystem) {
        for (const auto& [name, value] : params) {
          if (name != "_type") continue;
          for (const auto& t : search::split_list(value, ',')) types.push_back(search::unescape(t));
        }
        if (types.empty()) search.insert("*");  // no _type: every type, whatever else is asked
      } else if (f.type != "*") {
        types.push_back(f.type);
      }
      reached_types(params, types, read, search);
    }
    // Conditional operations search with their criteria (the URL's, or If-None-Exist).
    if (r.kind == Kind::kConditionalUpdate || r.kind == Kind::kConditionalPatch || r.kind == Kind::kConditionalDelete) {
      criteria_types(r.type, req.params, search);
    }
    if (const std::string* ine = req.header("if-none-exist"); ine && r.kind == Kind::kCreate) {
      criteria_types(r.type, parse_criteria(*ine), search);
    }
    if (is_write(r.kind)) conditional_link_types(req, search);
  };
  f.chains = [&] {
    std::set<std::string> reached;
    criteria_types(f.type == "*" ? "Patient" : f.type, params, reached);
    return !reached.empty();
  };

  using Effect = access::Decision::Effect;
  const access::Decision d = access::decide(p, f);
  const auto not_found = [&]() { return FhirError(404, "not-found", "Resource " + r.type + "/" + r.id + " is not known"); };
  switch (d.effect) {
    case Effect::kPermit:
      return;
    case Effect::kDeny: {
      FhirError e(403, "forbidden", d.message, d.parameter);
      if (d.insufficient_scope) e.headers.emplace_back("WWW-Authenticate", "Bearer error=\"insufficient_scope\"");
      throw e;
    }
    case Effect::kNotFound:
      throw FhirError(404, "not-found", d.message);
    case Effect::kIfInCompartment:
      if (!in_compartment(ctx, req, p.patient, r.type, r.id)) throw not_found();
      return;
    case Effect::kIfVersionInCompartment:
      // The version asked for must have been the patient's, whatever the resource is now.
      if (!version_in_compartment(ctx, req, p.patient, r.type, r.id, r.vid))
        throw FhirError(404, "not-found", r.type + "/" + r.id + "/_history/" + r.vid + " is not known");
      return;
    case Effect::kAsCompartmentSearch:
      r = Route{Kind::kSearchCompartment, "Patient", p.patient, r.type};
      return;
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
