#pragma once
// The caller of a request as authentication found them; what interactions and the access
// decision look at.
#include <string>

#include "server/access/category.hpp"
#include "server/auth/scopes.hpp"

namespace kasama::auth {

// The caller of a request, as a token check found them.
struct Principal {
  std::string kind;  // "session" (login to our pages and JSON API) or "access" (OAuth)
  std::string token_hash;
  std::string account_id, name, role, institution_id, fhir_user;
  bool admin_right = false;
  bool must_change_password = false;  // nothing else until it is changed
  bool needs_second_factor = false;   // an admin role without TOTP yet: enrol before anything else
  std::string client_id, terminal_id;
  std::string patient;  // SMART launch context
  ScopeSet scopes;
  std::string scope_text;
  // Institution staff and institution terminals see and write only their institution's
  // access range (∩ the user's own, R-20), less the residents who opted out:
  // server/access.
  bool institution_scoped = false;
  std::string access_institution;
  access::Range range;
  bool is_user() const { return !account_id.empty(); }
};

// The server itself (demo data, internal maintenance): every scope, no patient context.
Principal internal_principal();

}  // namespace kasama::auth
