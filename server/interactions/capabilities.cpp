// GET /metadata: a CapabilityStatement generated from what this server implements: the
// resource types of the type model, the interactions routed in route.cpp, and the search
// parameters the search code understands.
#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "resources/type_model.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"
#include "server/search/registry.hpp"
#include "server/version.hpp"

namespace kasama::server {
namespace {

// SMART on FHIR's security element: the OAuth endpoints as the oauth-uris extension.
Json security_json(const std::string& base_url) {
  const auto scheme = base_url.find("://");
  const std::string origin =
      scheme == std::string::npos ? base_url : base_url.substr(0, base_url.find('/', scheme + 3));
  return Json{
      {"cors", true},
      {"service",
       Json::array({Json{
           {"coding", Json::array({Json{{"system", "http://terminology.hl7.org/CodeSystem/restful-security-service"},
                                        {"code", "SMART-on-FHIR"}}})}}})},
      {"description",
       "Every interaction but this CapabilityStatement needs a bearer token (SMART App Launch 2: authorization code "
       "with PKCE S256, client_credentials with private_key_jwt or client_secret_basic). Discovery: "
       "[base]/.well-known/smart-configuration."},
      {"extension",
       Json::array(
           {Json{{"url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"},
                 {"extension", Json::array({Json{{"url", "authorize"}, {"valueUri", origin + "/auth/authorize"}},
                                            Json{{"url", "token"}, {"valueUri", origin + "/auth/token"}},
                                            Json{{"url", "introspect"}, {"valueUri", origin + "/auth/introspect"}},
                                            Json{{"url", "revoke"}, {"valueUri", origin + "/auth/revoke"}}})}}})}};
}

// The audit trail (server/audit): the server's own records, read and searched by auditors;
// nobody writes AuditEvents over the API.
Json audit_event_capabilities() {
  const auto param = [](const char* name, const char* type, const char* doc) {
    Json p = {{"name", name}, {"type", type}, {"documentation", doc}};
    if (std::string(name) != "request-id" && std::string(name) != "denied") {
      p["definition"] = std::string("http://hl7.org/fhir/SearchParameter/AuditEvent-") + name;
    }
    return p;
  };
  Json params = Json::array({param("date", "date", "recorded; eq, ge, gt, le, lt, sa, eb"),
                             param("agent", "reference", "the account id (or a reference ending in it)"),
                             param("altid", "token", "the terminal ID (R-18)"),
                             param("address", "string", "the network address, exact"),
                             param("patient", "reference", "a Patient whose data the request touched"),
                             param("entity", "reference", "a resource the request touched"),
                             param("outcome", "token", "0, 4, 8 or 12"), param("action", "token", "C, R, U, D or E"),
                             param("subtype", "token", "the restful-interaction code"), param("type", "token", "rest"),
                             param("request-id", "token", "the X-Request-Id of the request (this server's own)"),
                             param("denied", "token", "true: refused by authentication or access control (own)")});
  params.push_back({{"name", "_id"}, {"type", "token"}});
  return {
      {"type", "AuditEvent"},
      {"documentation",
       "監査記録: 監査責任者とシステム管理者のみ / The audit trail (R-30, R-31): one record per request, written by "
       "the "
       "server only; read and searched by auditors and the system administrator, newest first."},
      {"interaction", Json::array({{{"code", "read"}}, {{"code", "search-type"}}})},
      {"searchParam", std::move(params)},
      {"operation",
       Json::array({{{"name", "verify"},
                     {"definition", "urn:kasama:OperationDefinition:AuditEvent-verify"},
                     {"documentation", "Walks the hash chain; result, checked, firstBrokenId and problem (R-31)"}}})}};
}

std::string build(const std::string& base_url, const Config& config) {
  const auto& model = resources::TypeModel::instance();
  Json resources_json = Json::array();
  const Json interactions = Json::array({{{"code", "read"}},
                                         {{"code", "vread"}},
                                         {{"code", "update"}},
                                         {{"code", "patch"}},
                                         {{"code", "delete"}},
                                         {{"code", "history-instance"}},
                                         {{"code", "history-type"}},
                                         {{"code", "create"}},
                                         {{"code", "search-type"}}});
  // Revinclude lists name every reference parameter that may point at the type.
  Json policy = Json::array({"literal", "local"});
  if (config.ref_integrity == RefIntegrity::kStrict) policy.push_back("enforced");
  const auto& registry = search::Registry::instance();
  for (const auto& type : model.resource_types()) {
    if (type == "AuditEvent") {
      resources_json.push_back(audit_event_capabilities());
      continue;
    }
    Json params = Json::array();
    std::vector<std::string> unsupported;
    Json includes = Json::array({"*"});
    Json revincludes = Json::array();
    for (const search::SearchParam* p : registry.for_type(type)) {
      std::string why = search::unsupported_reason(*p);
      if (!why.empty()) {
        unsupported.push_back(p->code + " (" + why + ")");
        continue;
      }
      params.push_back({{"name", p->code},
                        {"definition", p->url},
                        {"type", search::param_type_name(p->type)},
                        {"documentation", search::modifiers_documentation(p->type)}});
      if (p->type == search::ParamType::kReference) includes.push_back(type + ":" + p->code);
    }
    for (const auto& other : model.resource_types()) {
      for (const search::SearchParam* p : registry.for_type(other)) {
        if (p->type != search::ParamType::kReference || p->base == "Resource" || p->base == "DomainResource") continue;
        if (p->targets.empty() || std::find(p->targets.begin(), p->targets.end(), type) != p->targets.end())
          revincludes.push_back(other + ":" + p->code);
      }
    }
    std::string doc;
    if (!unsupported.empty()) {
      doc = "Search parameters not supported: ";
      for (std::size_t i = 0; i < unsupported.size(); ++i) doc += (i ? ", " : "") + unsupported[i];
    }
    resources_json.push_back({{"type", type},
                              {"interaction", interactions},
                              {"versioning", "versioned-update"},
                              {"readHistory", true},
                              {"updateCreate", true},
                              {"conditionalCreate", true},
                              {"conditionalRead", "full-support"},
                              {"conditionalUpdate", true},
                              {"conditionalDelete", "single"},
                              {"referencePolicy", policy},
                              {"searchInclude", std::move(includes)},
                              {"searchRevInclude", std::move(revincludes)},
                              {"searchParam", std::move(params)}});
    if (!doc.empty()) resources_json.back()["documentation"] = doc;
    if (type == "Patient")
      resources_json.back()["operation"] = Json::array(
          {{{"name", "everything"}, {"definition", "http://hl7.org/fhir/OperationDefinition/Patient-everything"}}});
  }
  Json cs = {
      {"resourceType", "CapabilityStatement"},
      {"id", "kasama"},
      {"url", base_url + "/metadata"},
      {"version", kVersion},
      {"name", "KasamaFhirServer"},
      {"title", "Kasama care and checkup FHIR server (笠間市介護・健診クラウド FHIR サーバ)"},
      {"status", "active"},
      {"experimental", false},
      {"date", kReleaseDate},
      {"publisher", "Kasama City (笠間市)"},
      {"kind", "instance"},
      {"software", {{"name", "kasama-fhir-server"}, {"version", kVersion}}},
      {"implementation", {{"description", "Kasama care and checkup FHIR server"}, {"url", base_url}}},
      {"fhirVersion", model.fhir_version().empty() ? "4.0.1" : model.fhir_version()},
      {"format", Json::array({"application/fhir+json", "json"})},
      {"patchFormat", Json::array({"application/json-patch+json"})},
      {"rest",
       Json::array(
           {{{"mode", "server"},
             {"documentation",
              "FHIR R4 REST API. Transactions are atomic; conditional create is race-safe. Search: every R4 "
              "core search parameter with a FHIRPath expression (see each type's documentation for the few "
              "that are not); result parameters _count (default " +
                  std::to_string(config.default_count) + ", max " + std::to_string(config.max_count) +
                  "), _sort (several keys, -desc), _total (none, estimate = accurate, accurate), _summary "
                  "(true, text, data, count), _elements, _include and _revinclude (with :iterate, at most "
                  "1000 included resources per page); paging by opaque _cursor links (next, previous) in "
                  "a stable order. Not supported: _contained, _containedType, _text, _content, _list, "
                  "_query, _filter, token :in/:not-in/:above/:below (no terminology service), three-part "
                  "composites, unit conversion of quantities."},
             {"security", security_json(base_url)},
             {"compartment", Json::array({"http://hl7.org/fhir/CompartmentDefinition/patient"})},
             {"searchParam", Json::array({{{"name", "_type"},
                                           {"type", "token"},
                                           {"documentation", "System search: the resource types to search"}}})},
             {"resource", std::move(resources_json)},
             {"interaction", Json::array({{{"code", "transaction"}},
                                          {{"code", "batch"}},
                                          {{"code", "history-system"}},
                                          {{"code", "search-system"}}})},
             {"operation", Json::array({{{"name", "reindex"},
                                         {"definition", "http://kasama-fhir.example/fhir/OperationDefinition/reindex"},
                                         {"documentation",
                                          "POST [base]/$reindex or [base]/[type]/$reindex: rebuild the search index "
                                          "now (also done at startup when the search registry changed)"}}})}}})}};
  return resources::dump_json(cs);
}

}  // namespace

RestResponse capabilities(Context& ctx, const RestRequest& req, const Route&) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::string> by_base;
  RestResponse resp;
  std::lock_guard lock(mu);
  auto it = by_base.find(req.base_url);
  if (it != by_base.end()) {
    resp.body = it->second;
    return resp;
  }
  resp.body = build(req.base_url, ctx.svc.config);
  // The base comes from the Host header when KASAMA_BASE_URL is unset: keep a few, not any
  // number a client can make up.
  if (by_base.size() < 8) by_base.emplace(req.base_url, resp.body);
  return resp;
}

}  // namespace kasama::server
