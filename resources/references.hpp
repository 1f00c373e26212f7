#pragma once
// Literal references inside a resource: finding them, recognising local ones, rewriting.
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "resources/json.hpp"

namespace kasama::resources {

struct FoundReference {
  std::string path;       // e.g. Observation.subject
  std::string reference;  // the Reference.reference text
};

// Every Reference.reference string (an object member "reference" whose value is a string),
// with contained resources included. Nothing inside a Bundle resource's entries: those
// reference each other, not this server.
std::vector<FoundReference> find_references(const Json& resource);

struct LocalReference {
  std::string type;
  std::string id;
  std::string version;  // empty unless .../_history/v
};

// "Type/id", "Type/id/_history/v", or such a path below base_url (when given).
// Returns nothing for contained (#x), urn:, logical or other servers' references.
std::optional<LocalReference> parse_local_reference(std::string_view ref, std::string_view base_url = {});

bool is_valid_id(std::string_view id);

// Applies fn to every value that is a link by type, per http.html#trules: Reference.reference
// and elements of type uri, url, canonical, oid and uuid (in contained and nested resources
// too). Plain strings that happen to look like links (Identifier.value) are data, not links.
void for_each_link(Json& resource, const std::function<void(std::string&)>& fn);

}  // namespace kasama::resources
