#pragma once
// Demo institutions, accounts (individual names, R-10) and clients for the embedded default,
// created through the same service calls the /admin API makes, each acting as the role
// that may make it (the owner approves, the ops-manager issues, the secretariat registers
// terminals). Their credentials go to <data dir>/demo-credentials.json (mode 0600).
#include <string>

#include "server/auth/auth_service.hpp"
#include "server/interactions/service.hpp"

namespace kasama::server {

// Creates them on the first start (no owner yet); returns false when they exist already.
bool create_demo_accounts(auth::AuthService& auth, FhirService& fhir, const std::string& credentials_path,
                          const std::string& origin);

}  // namespace kasama::server
