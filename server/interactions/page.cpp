#include "server/interactions/page.hpp"

#include <algorithm>
#include <cstring>

#include "server/interactions/support.hpp"

namespace kasama::server {

unsigned parse_count(const Context& ctx, const std::string& value) {
  const bool ok = !value.empty() && value.size() <= 9 &&
                  std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!ok) throw FhirError(400, "value", "_count must be a whole number from 0", "_count");
  return static_cast<unsigned>(std::min<unsigned long>(std::stoul(value), ctx.svc.config.max_count));
}

PageParams page_params(Context& ctx, const RestRequest& req, std::initializer_list<const char*> known) {
  PageParams p;
  p.count = ctx.svc.config.default_count;
  for (const auto& [name, value] : req.params) {
    if (name == "_count") {
      p.count = parse_count(ctx, value);
      continue;
    }
    if (name == "_format" || name == "_pretty") continue;
    bool is_known = std::any_of(known.begin(), known.end(), [&](const char* k) { return name == k; });
    if (!is_known && !lenient_handling(req)) {
      throw FhirError(400, "not-supported", "Parameter '" + name + "' is not supported here", name);
    }
  }
  return p;
}

std::string self_url(const RestRequest& req, std::initializer_list<const char*> drop) {
  std::string url = req.base_url + "/" + req.path();
  bool first = true;
  for (const auto& [name, value] : req.params) {
    if (std::any_of(drop.begin(), drop.end(), [&](const char* d) { return name == d; })) continue;
    url += first ? '?' : '&';
    first = false;
    url += percent_encode(name) + "=" + percent_encode(value);
  }
  return url;
}

}  // namespace kasama::server
