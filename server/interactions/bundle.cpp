// batch and transaction (http.html#transaction). A transaction runs in one database
// transaction in the R4 processing order (DELETE, POST, PUT/PATCH, GET/HEAD): new ids are
// assigned and conditional targets resolved before any resource is written, so that
// urn:uuid: fullUrls and conditional references (Type?criteria) can be rewritten to real ids
// everywhere in the Bundle. Any failure rolls everything back. Batch entries succeed or
// fail one by one.
#include <map>
#include <set>

#include "resources/fhir_time.hpp"
#include "resources/references.hpp"
#include "resources/type_model.hpp"
#include "server/interactions/authorize.hpp"
#include "server/interactions/service.hpp"
#include "server/interactions/support.hpp"
#include "server/log.hpp"

namespace kasama::server {
namespace {

struct Entry {
  std::size_t index = 0;
  std::string method;
  std::string url;
  std::string full_url;
  std::vector<std::string> segments;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::pair<std::string, std::string>> headers;
  const Json* resource = nullptr;  // in the parsed Bundle
};

// "https://example.org/fhir/Patient/1" -> "Patient/1"
std::string last_two_segments(const std::string& url) {
  auto last = url.rfind('/');
  if (last == std::string::npos || last == 0) return {};
  auto before = url.rfind('/', last - 1);
  return before == std::string::npos ? std::string() : url.substr(before + 1);
}

std::string where(const Entry& e) {
  return "Bundle.entry[" + std::to_string(e.index) + "]";
}

int phase(const std::string& method) {
  if (method == "DELETE") return 0;
  if (method == "POST") return 1;
  if (method == "PUT" || method == "PATCH") return 2;
  return 3;
}

// The Bundle without its entries' resources: those are validated as each entry runs.
Json skeleton(const Json& bundle) {
  Json out = Json::object();
  for (const auto& [k, v] : bundle.items()) {
    if (k != "entry" || !v.is_array()) {
      out[k] = v;
      continue;
    }
    Json entries = Json::array();
    for (const auto& e : v) {
      if (!e.is_object()) {
        entries.push_back(e);
        continue;
      }
      Json copy = Json::object();
      for (const auto& [ek, ev] : e.items()) {
        // A minimal valid stand-in keeps the entry's shape for the structural check.
        copy[ek] = ek == "resource" ? Json{{"resourceType", "Parameters"}} : ev;
      }
      entries.push_back(std::move(copy));
    }
    out[k] = std::move(entries);
  }
  return out;
}

std::vector<Entry> read_entries(const Json& bundle, const std::string& base_url) {
  std::vector<Entry> out;
  auto it = bundle.find("entry");
  if (it == bundle.end()) return out;
  std::size_t i = 0;
  for (const auto& e : *it) {
    Entry entry;
    entry.index = i++;
    const std::string w = where(entry);
    auto req = e.find("request");
    if (req == e.end() || !req->is_object()) {
      throw FhirError(400, "required", w + " has no request", w + ".request");
    }
    entry.method = string_member(*req, "method");
    entry.url = string_member(*req, "url");
    static const std::set<std::string> kMethods = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    if (!kMethods.count(entry.method)) {
      throw FhirError(400, "value", w + ".request.method must be one of GET, HEAD, POST, PUT, PATCH, DELETE",
                      w + ".request.method");
    }
    if (entry.url.empty()) throw FhirError(400, "required", w + " has no request.url", w + ".request.url");
    std::string url = entry.url;
    if (url.rfind(base_url + "/", 0) == 0) url = url.substr(base_url.size() + 1);
    if (url.find("://") != std::string::npos) {
      throw FhirError(400, "not-supported", w + ".request.url must be relative to this server", w + ".request.url");
    }
    split_url(url, entry.segments, entry.params);
    entry.full_url = string_member(e, "fullUrl");
    static const std::pair<const char*, const char*> kHeaders[] = {{"ifMatch", "if-match"},
                                                                   {"ifNoneExist", "if-none-exist"},
                                                                   {"ifNoneMatch", "if-none-match"},
                                                                   {"ifModifiedSince", "if-modified-since"}};
    for (const auto& [field, header] : kHeaders) {
      std::string v = string_member(*req, field);
      if (!v.empty()) entry.headers.emplace_back(header, v);
    }
    auto res = e.find("resource");
    if (res != e.end()) entry.resource = &*res;
    if ((entry.method == "POST" || entry.method == "PUT" || entry.method == "PATCH") && !entry.resource) {
      throw FhirError(400, "required", w + " (" + entry.method + ") has no resource", w + ".resource");
    }
    out.push_back(std::move(entry));
  }
  return out;
}

RestRequest entry_request(const Entry& e, const RestRequest& outer) {
  RestRequest r;
  r.method = e.method;
  r.segments = e.segments;
  r.params = e.params;
  r.headers = e.headers;
  if (const std::string* prefer = outer.header("prefer")) r.headers.emplace_back("prefer", *prefer);
  r.base_url = outer.base_url;
  r.request_id = outer.request_id;
  r.peer = outer.peer;
  r.origin = outer.origin;
  r.principal = outer.principal;
  r.audit = outer.audit;
  if (e.resource) r.resource = *e.resource;
  return r;
}

// The entry's response element (and resource) for the response Bundle.
void add_response(BundleWriter& b, const RestResponse& resp, const std::string& method, ReturnPref pref,
                  const std::string& base_url) {
  Json response = Json::object();
  response["status"] = status_text(resp.status);
  if (!resp.location.empty()) {
    std::string loc = resp.location;
    if (loc.rfind(base_url + "/", 0) == 0) loc = loc.substr(base_url.size() + 1);
    response["location"] = loc;
  }
  if (!resp.version_id.empty()) response["etag"] = etag(static_cast<std::uint32_t>(std::stoul(resp.version_id)));
  if (resp.last_modified) response["lastModified"] = resources::format_instant(*resp.last_modified);
  std::string resource;
  if (resp.body_is_outcome) {
    response["outcome"] = resources::parse_json(resp.body).value;
  } else if (!resp.body.empty() && (method == "GET" || method == "HEAD" || pref == ReturnPref::kRepresentation)) {
    resource = resp.body;
  }
  Json extra = Json::object();
  extra["response"] = std::move(response);
  b.entry(resource.empty() || resp.location.empty() ? std::string()
                                                    : resp.location.substr(0, resp.location.find("/_history")),
          resource, extra);
}

std::string prefix_expression(const std::string& expr, const Entry& e) {
  const std::string w = where(e);
  if (expr.empty()) return w;
  // Request headers and URL parameters are elements of the entry's request in a Bundle.
  static const std::pair<const char*, const char*> kHeaders[] = {{"If-Match", "request.ifMatch"},
                                                                 {"If-None-Exist", "request.ifNoneExist"},
                                                                 {"If-None-Match", "request.ifNoneMatch"},
                                                                 {"If-Modified-Since", "request.ifModifiedSince"}};
  for (const auto& [header, element] : kHeaders) {
    if (expr == header) return w + "." + element;
  }
  for (const auto& [name, value] : e.params) {
    if (expr == name) return w + ".request.url";
  }
  for (const auto& [header, value] : e.headers) {
    if (header != "if-none-exist") continue;
    for (const auto& [name, v] : parse_criteria(value)) {
      if (expr == name) return w + ".request.ifNoneExist";
    }
  }
  if (e.resource) {
    std::string type = string_member(*e.resource, "resourceType");
    if (!type.empty() && expr.rfind(type + ".", 0) == 0) return w + ".resource." + expr.substr(type.size() + 1);
    if (expr == type || expr == "resourceType") return w + ".resource";
  }
  if (expr.find("Bundle.") == 0) return expr;
  return w + "." + expr;
}

[[noreturn]] void rethrow_for_entry(FhirError& err, const Entry& e) {
  for (auto& issue : err.issues()) {
    issue.expression = prefix_expression(issue.expression, e);
    issue.diagnostics = where(e) + " (" + e.method + " " + e.url + "): " + issue.diagnostics;
  }
  throw;
}

RestResponse run_transaction(FhirService& service, const RestRequest& req, const std::vector<Entry>& entries) {
  Services& svc = service.services();
  const ReturnPref pref = return_preference(req);
  return in_transaction(
      svc, true,
      [&](Context& ctx) {
        ctx.base_url = req.base_url;
        // Conditional matching and references below see only what the caller may see.
        bind_caller(ctx, req);
        std::vector<RestRequest> requests;
        requests.reserve(entries.size());
        for (const auto& e : entries) requests.push_back(entry_request(e, req));
        // Every entry is authorized before any runs and before any conditional target is
        // resolved: a refusal must not come after work whose outcome tells what exists.
        for (std::size_t i = 0; i < entries.size(); ++i) {
          ctx.current_entry = static_cast<int>(i);
          try {
            Route r = route(requests[i]);
            if (r.kind != Kind::kBatchOrTransaction) {
              const Kind before = r.kind;
              authorize(ctx, requests[i], r);
              // Not again in dispatch, unless the check rewrote the route (a patient-context
              // search held to its compartment), which dispatch must then redo.
              requests[i].authorized = r.kind == before;
            }
          } catch (FhirError& err) {
            rethrow_for_entry(err, entries[i]);
          }
        }
        std::vector<RestResponse> responses(entries.size());
        std::vector<std::size_t> order(entries.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
          return phase(entries[a].method) < phase(entries[b].method);
        });

        auto run = [&](std::size_t i) {
          const Entry& e = entries[i];
          ctx.current_entry = static_cast<int>(i);
          try {
            Route r = route(requests[i]);
            if (r.kind == Kind::kBatchOrTransaction)
              throw FhirError(400, "not-supported", "A Bundle entry cannot be a Bundle POST");
            responses[i] = service.dispatch(ctx, requests[i], r);
          } catch (FhirError& err) {
            rethrow_for_entry(err, e);
          }
        };

        // 1. Deletes.
        for (std::size_t i : order) {
          if (entries[i].method == "DELETE") run(i);
        }
        // 2. Identities: what each fullUrl will be, and conditional targets.
        std::map<std::string, std::string> ids;  // fullUrl -> Type/id
        std::set<std::string> targets;
        for (std::size_t i : order) {
          const Entry& e = entries[i];
          RestRequest& r = requests[i];
          if (e.method != "POST" && e.method != "PUT" && e.method != "PATCH" && e.method != "DELETE") continue;
          if (e.segments.empty()) continue;
          const std::string& type = e.segments[0];
          std::string id;
          try {
            require_resource_type(type);
            if (e.method == "POST") {
              if (const std::string* ine = r.header("if-none-exist")) {
                auto m = match_criteria(ctx, type, parse_criteria(*ine), 2);
                if (m.size() == 1) id = m[0].second;
              }
              if (id.empty()) {
                id = new_resource_id();
                r.assigned_id = id;
              }
            } else if (e.segments.size() >= 2) {
              id = e.segments[1];
            } else if (e.method == "PUT" && !e.params.empty()) {
              auto m = match_criteria(ctx, type, e.params, 2);
              if (m.size() == 1) {
                id = m[0].second;
              } else if (m.empty()) {
                id = string_member(*e.resource, "id");
                if (id.empty()) id = new_resource_id();
                // The conditional update creates exactly this id (references were rewritten to it).
                r.assigned_id = id;
              }
            }
          } catch (FhirError& err) {
            rethrow_for_entry(err, e);
          }
          if (id.empty()) continue;
          if (!targets.insert(type + "/" + id).second && e.method != "POST") {
            throw FhirError(400, "duplicate",
                            where(e) + " touches " + type + "/" + id + ", which another entry also changes", where(e));
          }
          if (!e.full_url.empty()) {
            ids[e.full_url] = type + "/" + id;
            // An absolute fullUrl ending in Type/oldid: references written relative to the
            // Bundle's base ("Type/oldid") mean this entry too (references.html#bundle-references).
            if (e.method == "POST" && e.full_url.rfind("http", 0) == 0) {
              if (auto old = resources::parse_local_reference(last_two_segments(e.full_url));
                  old && old->type == type) {
                ids.emplace(old->type + "/" + old->id, type + "/" + id);
              }
            }
          }
        }
        // 3. Rewrite urn:uuid / fullUrl references and resolve conditional references.
        std::map<std::string, std::string> conditional;
        for (std::size_t i = 0; i < entries.size(); ++i) {
          RestRequest& r = requests[i];
          if (!r.resource) continue;
          try {
            resources::for_each_link(*r.resource, [&](std::string& s) {
              if (s.size() < 3) return;
              auto hit = ids.find(s);
              if (hit != ids.end()) {
                s = hit->second;
                return;
              }
              auto q = s.find('?');
              if (q == std::string::npos || q == 0 || s.find("://") != std::string::npos) return;
              std::string type = s.substr(0, q);
              if (!resources::TypeModel::instance().is_resource_type(type)) return;
              auto done = conditional.find(s);
              if (done == conditional.end()) {
                auto m = match_criteria(ctx, type, parse_criteria(s.substr(q + 1)), 2);
                if (m.size() != 1) {
                  throw FhirError(412, m.empty() ? "not-found" : "multiple-matches",
                                  "The conditional reference " + s +
                                      (m.empty() ? " matches nothing" : " matches more than one resource"));
                }
                done = conditional.emplace(s, type + "/" + m[0].second).first;
              }
              s = done->second;
            });
            // Narrative links to bundle entries (<a href="urn:uuid:...">) follow the rewrite too.
            auto text = r.resource->find("text");
            if (text != r.resource->end() && text->is_object() && text->contains("div") && (*text)["div"].is_string()) {
              std::string& div = (*text)["div"].get_ref<std::string&>();
              if (div.find("urn:") != std::string::npos) {
                for (const auto& [from, to] : ids) {
                  for (auto pos = div.find("\"" + from + "\""); pos != std::string::npos;
                       pos = div.find("\"" + from + "\"", pos)) {
                    div.replace(pos + 1, from.size(), to);
                    pos += to.size() + 2;
                  }
                }
              }
            }
          } catch (FhirError& err) {
            rethrow_for_entry(err, entries[i]);
          }
        }
        // 4. Creates, then updates and patches, then reads.
        for (int p = 1; p <= 3; ++p) {
          for (std::size_t i : order) {
            if (phase(entries[i].method) == p) run(i);
          }
        }
        try {
          check_integrity(ctx);
        } catch (FhirError& err) {
          if (err.entry >= 0) rethrow_for_entry(err, entries[static_cast<std::size_t>(err.entry)]);
          throw;
        }
        BundleWriter b("transaction-response");
        for (std::size_t i = 0; i < entries.size(); ++i)
          add_response(b, responses[i], entries[i].method, pref, req.base_url);
        RestResponse out;
        out.body = b.finish();
        return out;
      },
      &req);
}

RestResponse run_batch(FhirService& service, const RestRequest& req, const std::vector<Entry>& entries) {
  const ReturnPref pref = return_preference(req);
  BundleWriter b("batch-response");
  for (const auto& e : entries) {
    RestResponse resp;
    // A batch entry that writes commits on its own, so its own audit record goes with it;
    // the batch as a whole gets one more record when it is answered.
    AuditNotes entry_notes;
    try {
      RestRequest r = entry_request(e, req);
      r.audit = req.audit ? &entry_notes : nullptr;
      Route route_info = route(r);
      if (route_info.kind == Kind::kBatchOrTransaction)
        throw FhirError(400, "not-supported", "A Bundle entry cannot be a Bundle POST");
      resp = is_write(route_info.kind) ? service.run_write(r, route_info) : service.run_read(r, route_info);
    } catch (FhirError& err) {
      for (auto& issue : err.issues()) issue.expression = prefix_expression(issue.expression, e);
      resp = RestResponse{};
      resp.status = err.status();
      resp.body = outcome_json(err.issues());
      resp.body_is_outcome = true;
    } catch (const std::exception& ex) {
      log_error("batch entry " + where(e) + " of request " + req.request_id + " failed: " + ex.what());
      resp = RestResponse{};
      resp.status = 500;
      resp.body = outcome_json("error", "exception",
                               "Internal error processing " + where(e) + " (request " + req.request_id + ")");
      resp.body_is_outcome = true;
    }
    // A refused entry is a denial of the batch as a whole too.
    if (req.audit && entry_notes.denied) {
      req.audit->denied = true;
      if (req.audit->detail.empty()) req.audit->detail = "entry " + where(e) + ": " + entry_notes.detail;
    }
    add_response(b, resp, e.method, pref, req.base_url);
  }
  RestResponse out;
  out.body = b.finish();
  return out;
}

}  // namespace

RestResponse process_bundle(FhirService& service, const RestRequest& req) {
  Json bundle = request_resource(req, "Bundle", false);
  validate_or_throw(skeleton(bundle));
  const std::string type = string_member(bundle, "type");
  if (type != "transaction" && type != "batch") {
    throw FhirError(400, "value", "POST to the base takes a Bundle of type transaction or batch, not '" + type + "'",
                    "Bundle.type");
  }
  if (req.audit) req.audit->interaction = type;
  auto entries = read_entries(bundle, req.base_url);
  return type == "transaction" ? run_transaction(service, req, entries) : run_batch(service, req, entries);
}

}  // namespace kasama::server
