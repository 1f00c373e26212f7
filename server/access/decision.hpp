#pragma once
// The policy decision for one interaction at request level (R-19, R-20, R-22, R-30/31 for the
// audit trail): from the caller (role, SMART scopes, patient context, institution) and what
// the request asks for (its interaction, type, the permissions it needs, every type it
// reaches), before any data is touched. The interactions gather those facts and enforce the
// answer (server/interactions/authorize.cpp); what the caller may see of the data is the
// Filter of policy.hpp, applied by every data path. Both halves are described in README.md.
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "server/auth/principal.hpp"

namespace kasama::access {

// What the request asks, as the decision needs it.
struct RequestFacts {
  enum class What {
    kCapabilities, kRead, kVread, kSearchType, kSearchSystem, kSearchCompartment, kHistoryInstance, kHistoryType,
    kHistorySystem, kEverything, kWrite, kReindex, kAuditVerify, kBatch
  };
  What what = What::kRead;
  std::string interaction;  // its name, for messages
  std::string type;         // the type the scopes must cover; "*" = every type
  std::string route_type;   // the routed type (AuditEvent, the compartment's type, …)
  std::string route_id;     // the routed id (a compartment's Patient)
  unsigned perms = 0;       // auth::Perm bits needed on type
  bool searching = false;   // a search of some kind ($everything included)
  // Include/revinclude parameter names present (refused to a patient context).
  std::vector<std::string> include_params;
  // Every type the request reaches besides its own, with what it needs there ("*": any
  // type): `read` for what includes bring in, `search` for what _type, chains, _has and
  // conditional criteria and links look into. Called only when the decision needs them.
  std::function<void(std::set<std::string>& read, std::set<std::string>& search)> reached;
  // Whether the criteria chain or use _has (refused to a patient context).
  std::function<bool()> chains;
  bool compartment_type = false;  // route_type has a Patient compartment definition
};

struct Decision {
  enum class Effect {
    kPermit,
    kDeny,      // status 403 (message, parameter; insufficient_scope for the WWW-Authenticate header)
    kNotFound,  // 404: refusing would tell that the resource exists
    // Permitted for a patient context provided the enforcement point checks, against the
    // data, that the resource (or the version asked for) is in the patient's compartment;
    // 404 when it is not.
    kIfInCompartment,
    kIfVersionInCompartment,
    // Permitted as a search of the patient's compartment instead of the whole type.
    kAsCompartmentSearch,
  };
  Effect effect = Effect::kPermit;
  std::string message, parameter;
  bool insufficient_scope = false;
};

Decision decide(const auth::Principal& p, const RequestFacts& f);

}  // namespace kasama::access
