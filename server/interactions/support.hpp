#pragma once
// Pieces every interaction shares: reading a resource from a request, the one write path
// (meta, storage, index rows, links, cache), conditional matching, ETags, Bundle output.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/interactions/context.hpp"
#include "server/interactions/rest.hpp"
#include "server/search/escapes.hpp"

namespace kasama::server {

std::string new_resource_id();

using resources::string_member;

// Throws 404 for anything that is not a concrete resource type.
void require_resource_type(const std::string& type);
void require_valid_id(const std::string& id, const char* what = "id");

// The request's resource (a Bundle entry's, or the parsed body): parsed, validated, and of
// the expected type. Throws 400/415/422 with the offending element named.
Json request_resource(const RestRequest& req, const std::string& expected_type, bool validate = true);
// Throws 400/422 for validation issues of an already parsed resource.
void validate_or_throw(const Json& resource, const std::string& where_prefix = "");

// "W/\"3\"" or "3" -> 3; nothing when absent; 400 when malformed.
std::optional<std::uint32_t> if_match_version(const RestRequest& req);
std::string etag(std::uint32_t version);

struct WriteResult {
  std::uint64_t pk = 0;
  std::string type, id;
  std::uint32_t version = 0;
  std::int64_t last_updated = 0;
  std::string content;  // empty for a delete
  bool created = false;
  bool changed = true;  // false: an update that changed nothing (no new version)
};

// Stores resource as version (existing ? existing.version + 1 : 1) of type/id: sets id and
// meta, writes history, index rows and links, checks referential integrity, and queues the
// cache update for after commit. Unchanged content on update writes nothing.
WriteResult store_resource(Context& ctx, Json resource, const std::string& type, const std::string& id,
                           const std::optional<storage::CurrentRow>& existing, const std::string& method);
// Writes a delete marker; 409 when live resources still reference it (per configuration).
WriteResult store_delete(Context& ctx, const std::string& type, const std::string& id,
                         const storage::CurrentRow& existing);

// --- access (server/access): what the request's caller may see -----------------------------
// The Patients a version with these index rows belongs to (itself for a Patient).
std::vector<std::string> subjects_of(const std::string& type, const std::string& id, const storage::IndexRows& rows);
// Whether the caller may see a stored version (its category, and the residents it is about);
// always true when nothing is filtered. Subjects are read from the database unless given.
bool visible(Context& ctx, std::uint64_t pk, std::uint32_t version, std::uint8_t category,
             const std::vector<std::string>* known_subjects = nullptr);
// Records in the request's audit notes that the filter hid something.
void note_hidden(Context& ctx, std::uint8_t category, bool opted_out);
// "Type/id is not known" (404): also the answer for what the caller may not see, so that a
// denial never tells a hidden resource from one that is not there.
FhirError not_known(const std::string& type, const std::string& id);
// Throws not_known when the current row (live or a delete marker) is hidden from the caller.
void require_visible(Context& ctx, const std::string& type, const std::string& id,
                     const std::optional<storage::CurrentRow>& cur);

// Checks the referential integrity of everything the transaction wrote (409 on failure).
void check_integrity(Context& ctx);

// The response for a successful write, honouring Prefer: return=.
RestResponse write_response(const RestRequest& req, const WriteResult& w, int status, const std::string& base_url);

// Conditional criteria: "identifier=sys|val&_id=x" (as given in If-None-Exist, a
// conditional URL's query, or a conditional reference).
using Criteria = std::vector<std::pair<std::string, std::string>>;
Criteria parse_criteria(std::string_view query);
// Parameter values are split and unescaped by the search code's rules.
using search::split_list;
using search::unescape;
// Matches of the criteria among current resources of the type (at most limit).
std::vector<std::pair<std::uint64_t, std::string>> match_criteria(Context& ctx, const std::string& type,
                                                                  const Criteria& criteria, unsigned limit = 2);
std::int64_t criteria_hash(const std::string& type, const Criteria& criteria);
// Claims the criteria for a resource just created by a conditional create or update, so
// that concurrent twins create exactly one resource (throws RetryTransaction on losing).
void claim_criteria(Context& ctx, const std::string& type, const Criteria& criteria, std::uint64_t pk);

// Splits "Patient/1?x=y" into path segments and decoded query parameters.
void split_url(std::string_view url, std::vector<std::string>& segments,
               std::vector<std::pair<std::string, std::string>>& params);
std::string percent_decode(std::string_view s, bool plus_is_space);
std::string percent_encode(std::string_view s);
std::optional<std::string> base64_decode(std::string_view s);

// Builds Bundle JSON text, splicing stored resources in as they are.
class BundleWriter {
 public:
  explicit BundleWriter(const std::string& type);
  void total(std::uint64_t n);
  void link(const std::string& relation, const std::string& url);
  // resource_json: raw JSON text or empty; extra: members besides fullUrl/resource
  // (search, request, response), in that order.
  void entry(const std::string& full_url, const std::string& resource_json, const Json& extra);
  std::string finish();

 private:
  std::string head_;
  std::string links_;
  std::string entries_;
  bool any_entry_ = false;
};

}  // namespace kasama::server
