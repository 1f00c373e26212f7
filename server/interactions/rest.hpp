#pragma once
// The FHIR REST request and response as the interactions see them: no HTTP library types,
// so that a Bundle entry is handled by exactly the same code as a request on the wire.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "resources/json.hpp"
#include "server/auth/principal.hpp"

namespace kasama::server {

using resources::Json;

struct Issue {
  std::string severity = "error";
  std::string code;         // FHIR IssueType
  std::string diagnostics;  // what went wrong, for people
  std::string expression;   // the element or parameter at fault
};

// Ends a request with an HTTP status and an OperationOutcome. Only for outcomes that end
// the request; the http layer turns it into the response.
class FhirError : public std::runtime_error {
 public:
  FhirError(int status, std::string code, std::string diagnostics, std::string expression = "")
      : std::runtime_error(diagnostics), status_(status) {
    issues_.push_back(Issue{"error", std::move(code), std::move(diagnostics), std::move(expression)});
  }
  FhirError(int status, std::vector<Issue> issues)
      : std::runtime_error(issues.empty() ? "error" : issues.front().diagnostics),
        status_(status),
        issues_(std::move(issues)) {}
  int status() const { return status_; }
  int entry = -1;                                            // the transaction Bundle entry at fault, when known
  std::string allow;                                         // 405: the methods the path takes (the Allow header)
  std::vector<std::pair<std::string, std::string>> headers;  // more response fields (WWW-Authenticate)
  const std::vector<Issue>& issues() const { return issues_; }
  std::vector<Issue>& issues() { return issues_; }

 private:
  int status_;
  std::vector<Issue> issues_;
};

// What a request's audit record says beyond the request and its response, gathered
// on the way: set up by the http layer for every FHIR request, shared by a Bundle's entries.
struct AuditNotes {
  std::string interaction;  // restful-interaction code ("auth", "admin" for those endpoints); empty until routed
  std::string type, id;     // the routed resource (type/id), set with the interaction
  bool denied = false;      // refused by authentication or access control (also a 404 that hides)
  bool written = false;     // already committed with the write's own transaction
  std::string detail;       // why it was refused or failed
  // Who, when the request did not come with an access token: the session of the account pages
  // and API, or the account that just logged in.
  std::shared_ptr<const auth::Principal> principal;
};

struct RestRequest {
  std::string method;                                        // GET, POST, ...
  std::vector<std::string> segments;                         // path below the FHIR base, decoded
  std::vector<std::pair<std::string, std::string>> params;   // query, decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::optional<Json> resource;  // a Bundle entry's resource, already parsed
  std::string base_url;          // e.g. https://localhost:8443/fhir
  std::string request_id;
  std::string assigned_id;  // create: the id a transaction already assigned (urn:uuid mapping)
  std::string peer;         // the client's address (throttling, audit)
  std::string origin;       // https://host[:port], for the server's own non-FHIR URLs
  // Who is asking: set by FhirService::handle from the bearer token (or the server itself),
  // shared by a Bundle's entries.
  std::shared_ptr<const auth::Principal> principal;
  bool authorized = false;      // a transaction entry checked already (its route unchanged by the check)
  AuditNotes* audit = nullptr;  // null for the server's own requests (demo data), which are not audited

  const std::string* header(std::string_view lower_name) const;
  const std::string* param(std::string_view name) const;
  std::string path() const;  // segments joined by '/'
};

enum class ReturnPref { kDefault, kMinimal, kRepresentation, kOutcome };

struct RestResponse {
  int status = 200;
  std::string body;                           // JSON text (resource, Bundle or OperationOutcome); empty = none
  std::string location;                       // absolute URL
  std::string version_id;                     // for ETag W/"..."
  std::optional<std::int64_t> last_modified;  // ms since the epoch (Last-Modified, lastModified)
  std::string content_type = "application/fhir+json; charset=utf-8";
  std::string allow;  // Allow header (405)
  bool body_is_outcome = false;
  std::vector<std::pair<std::string, std::string>> headers;  // more fields (Set-Cookie, WWW-Authenticate, …)
};

std::string status_text(int status);  // "201 Created"

// Prefer: return=... and handling=...
ReturnPref return_preference(const RestRequest& req);
bool lenient_handling(const RestRequest& req);

// OperationOutcome JSON for issues.
std::string outcome_json(const std::vector<Issue>& issues);
std::string outcome_json(const std::string& severity, const std::string& code, const std::string& diagnostics,
                         const std::string& expression = "");

}  // namespace kasama::server
