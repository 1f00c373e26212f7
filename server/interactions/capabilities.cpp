// GET /metadata: a CapabilityStatement generated from what this server implements: the
// resource types of the type model, the interactions routed in route.cpp, and the search
// parameters the search code understands.
#include <mutex>
#include <unordered_map>

#include "resources/type_model.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"
#include "server/version.hpp"

namespace kasama::server {
namespace {

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
  Json policy = Json::array({"literal", "local"});
  if (config.ref_integrity == RefIntegrity::kStrict) policy.push_back("enforced");
  for (const auto& type : model.resource_types()) {
    Json params = Json::array();
    params.push_back({{"name", "_id"},
                      {"definition", "http://hl7.org/fhir/SearchParameter/Resource-id"},
                      {"type", "token"},
                      {"documentation", "Logical id of the resource"}});
    if (model.child(type, "identifier")) {
      params.push_back({{"name", "identifier"},
                        {"type", "token"},
                        {"documentation", "Business identifier: system|value, |value, value or system|"}});
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
                              {"searchParam", std::move(params)}});
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
       Json::array({{{"mode", "server"},
                     {"documentation", "FHIR R4 REST API. Transactions are atomic; conditional create is race-safe."},
                     {"resource", std::move(resources_json)},
                     {"interaction",
                      Json::array({{{"code", "transaction"}}, {{"code", "batch"}}, {{"code", "history-system"}}})}}})}};
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
