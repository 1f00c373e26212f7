#pragma once
// The search engine behind every search interaction and every conditional operation:
// parses parameters (server/search/query), compiles them to SQL (server/search/sql) and
// runs them on the request's connection, so a transaction sees its own writes.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "server/interactions/context.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/rest.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {

struct SearchScope {
  std::vector<std::string> types;  // type and compartment search: one type
  bool system = false;             // system search: _type or every type
  std::string compartment_type;    // "Patient" for /Patient/1/Observation
  std::string compartment_id;
};

RestResponse run_search(Context& ctx, const RestRequest& req, const SearchScope& scope);

// Current resources of `type` matching conditional criteria (any search parameters;
// result parameters are refused), at most limit, as (pk, id) in pk order.
std::vector<std::pair<std::uint64_t, std::string>> find_matches(Context& ctx, const std::string& type,
                                                                const Criteria& criteria, unsigned limit);

// The Patient compartment's parameters for a type ("{def}" for Patient itself); empty when
// the type is not in it.
const std::vector<std::string>& patient_compartment_params(const std::string& type);

}  // namespace kasama::server
