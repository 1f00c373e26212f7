#pragma once
// The SMART scope check of every interaction: a token's scopes must cover the
// interaction on the type; a token whose only cover is a patient/ scope is held to its
// patient's compartment. The full policy decision (institution range, categories, consent,
// proxy relations: issue 5) grows from here into server/access.
#include "server/interactions/context.hpp"
#include "server/interactions/interactions.hpp"

namespace kasama::server {

// Throws FhirError 403 when the scopes do not allow the interaction, 404 for a resource
// outside a patient-context token's compartment (so a refusal never tells it exists).
// May rewrite r: a type search under a patient context becomes a compartment search.
void authorize(Context& ctx, const RestRequest& req, Route& r);

}  // namespace kasama::server
