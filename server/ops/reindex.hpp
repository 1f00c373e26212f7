#pragma once
// Rebuilds the search index from the stored resources: after the search registry changed
// (detected at startup by its fingerprint), from the CLI (`kasama-server reindex [Type]`)
// and by the $reindex operation. Works in batches of a few hundred resources, each in its
// own transaction, so writes go on meanwhile; a resource written during the run is indexed
// by its own write.
#include <cstdint>
#include <functional>
#include <string>

#include "server/interactions/context.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/rest.hpp"

namespace kasama::server {

struct ReindexResult {
  std::uint64_t resources = 0;
  std::uint64_t relabelled = 0;  // versions given their access labels (stored before labels existed)
  double seconds = 0;
};

// type empty: every type. base_url: absolute references below it are indexed as local.
// progress is called after each batch with the running count.
ReindexResult reindex(Services& svc, const std::string& type, const std::string& base_url,
                      const std::function<void(std::uint64_t)>& progress = {});

// Gives every stored version without access labels (category 0: written before migration
// 0005) its category — from its meta.security label, else by the rules — and its subjects.
// A full reindex runs it; returns the number of versions labelled.
std::uint64_t relabel(Services& svc, const std::string& base_url);

// The base for reindexing without a request: KASAMA_BASE_URL, else https://localhost:PORT/fhir.
std::string default_base_url(const Config& config);

// POST [base]/$reindex and POST [base]/Type/$reindex: runs the reindex now and answers a
// Parameters resource with the count and the time taken. Not inside a transaction Bundle.
RestResponse reindex_operation(Context& ctx, const RestRequest& req, const Route& r);

// At startup: reindexes everything when the registry's fingerprint differs from the one
// recorded with the index (and the database holds resources), then records it.
void reindex_if_registry_changed(Services& svc);

}  // namespace kasama::server
