#pragma once
// Result-set parameters shared by history and search: _count and the self/next links.
#include <initializer_list>
#include <string>
#include <vector>

#include "server/interactions/context.hpp"
#include "server/interactions/rest.hpp"

namespace kasama::server {

struct PageParams {
  unsigned count = 50;
};

// A _count value: a whole number from 0, capped at the configured maximum; 400 otherwise.
unsigned parse_count(const Context& ctx, const std::string& value);

// Reads _count (0 .. max) and checks that every other parameter is one of `known` or a
// general one (_format, _pretty). Unknown ones: 400 naming them, or ignored under
// Prefer: handling=lenient.
PageParams page_params(Context& ctx, const RestRequest& req, std::initializer_list<const char*> known);

// The request URL below base_url, without the parameters named in drop (and without the
// parameters a lenient request had ignored).
std::string self_url(const RestRequest& req, std::initializer_list<const char*> drop = {});

}  // namespace kasama::server
