// patch (http.html#patch) with JSON Patch (RFC 6902), honouring If-Match.
#include "resources/json.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {
namespace {

Json parse_patch(const std::string& text);

Json patch_document(const RestRequest& req) {
  if (req.resource) {
    // A Bundle entry carries its JSON Patch as a Binary resource.
    const Json& b = *req.resource;
    if (string_member(b, "resourceType") != "Binary" ||
        string_member(b, "contentType") != "application/json-patch+json" || !b.contains("data")) {
      throw FhirError(400, "not-supported",
                      "A PATCH entry must carry a Binary with contentType application/json-patch+json");
    }
    validate_or_throw(b);  // Binary.data must be base64 text, and so on
    auto text = base64_decode(string_member(b, "data"));
    if (!text) throw FhirError(400, "value", "Binary.data is not valid base64", "Binary.data");
    return parse_patch(*text);
  }
  return parse_patch(req.body);
}

Json parse_patch(const std::string& text) {
  auto parsed = resources::parse_json(text);
  if (!parsed.ok) {
    throw FhirError(
        400, "structure",
        "The JSON Patch is not valid JSON (at byte " + std::to_string(parsed.offset) + "): " + parsed.error);
  }
  if (!parsed.value.is_array()) throw FhirError(400, "structure", "A JSON Patch document must be a JSON array");
  return std::move(parsed.value);
}

RestResponse apply(Context& ctx, const RestRequest& req, const Route& r, const Json& ops) {
  auto& store = ctx.svc.store;
  auto cur = store.current(ctx.db(), r.type, r.id, storage::Lock::kUpdate);
  if (!cur) throw FhirError(404, "not-found", r.type + "/" + r.id + " is not known");
  require_visible(ctx, r.type, r.id, cur);
  if (cur->deleted) throw FhirError(410, "deleted", r.type + "/" + r.id + " was deleted");
  if (auto want = if_match_version(req); want && *want != cur->version) {
    throw FhirError(412, "conflict",
                    "Version conflict: If-Match asks for version " + std::to_string(*want) + " but " + r.type + "/" +
                        r.id + " is at version " + std::to_string(cur->version),
                    "If-Match");
  }
  auto stored = store.read_current(ctx.db(), r.type, r.id);
  Json doc = resources::parse_json(stored->content).value;
  Json patched;
  try {
    patched = doc.patch(ops);
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    // A failed "test" operation is a precondition; anything else is a malformed patch.
    bool failed_test = what.find("unsuccessful") != std::string::npos;
    throw FhirError(failed_test ? 422 : 400, failed_test ? "conflict" : "invalid", "JSON Patch failed: " + what);
  }
  if (!patched.is_object() || string_member(patched, "resourceType") != r.type) {
    throw FhirError(400, "invalid", "A patch must not change resourceType", "resourceType");
  }
  if (string_member(patched, "id") != r.id) throw FhirError(400, "invalid", "A patch must not change the id", "id");
  validate_or_throw(patched);
  WriteResult w = store_resource(ctx, std::move(patched), r.type, r.id, cur, "PATCH");
  return write_response(req, w, 200, req.base_url);
}

}  // namespace

RestResponse patch(Context& ctx, const RestRequest& req, const Route& r) {
  return apply(ctx, req, r, patch_document(req));
}

RestResponse conditional_patch(Context& ctx, const RestRequest& req, const Route& r) {
  auto matches = match_criteria(ctx, r.type, req.params, 2);
  if (matches.empty()) throw FhirError(404, "not-found", "The criteria match no " + r.type);
  if (matches.size() > 1) throw FhirError(412, "duplicate", "The criteria match more than one " + r.type);
  Route target = r;
  target.id = matches[0].second;
  return apply(ctx, req, target, patch_document(req));
}

}  // namespace kasama::server
