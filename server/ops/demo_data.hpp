#pragma once
#include "server/interactions/service.hpp"

namespace kasama::server {

// Loads conformance/demo/kasama-demo-bundle.json (a transaction of fictitious Kasama
// residents, institutions and records) once, into an empty database. Returns how many
// resources it created (0 when the database already had data).
int load_demo_data(FhirService& service);

}  // namespace kasama::server
