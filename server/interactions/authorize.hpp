#pragma once
// The enforcement point of the request-level access decision: gathers
// what an interaction asks for (its type and permissions, every type it reaches through
// _type, includes, chains, _has, conditional criteria and links) and carries out what
// server/access/decision decides. What the caller may see of the data is the Filter that
// FhirService::dispatch sets for the request (server/access/policy), applied by every data
// path.
#include "server/interactions/context.hpp"
#include "server/interactions/interactions.hpp"

namespace kasama::server {

// Throws FhirError 403 when the scopes do not allow the interaction, 404 for a resource
// outside a patient-context token's compartment (so a refusal never tells it exists).
// May rewrite r: a type search under a patient context becomes a compartment search.
void authorize(Context& ctx, const RestRequest& req, Route& r);

}  // namespace kasama::server
