// history at instance, type and system level (http.html#history) with _count, _since, _at
// and keyset paging: a next link carries the position of the last entry, so new writes
// (which sort first) neither shift nor repeat what later pages return.
#include <charconv>

#include "resources/fhir_time.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/page.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {
namespace {

std::string request_method(const storage::StoredVersion& v) {
  if (v.method == "DELETE" || v.method == "PATCH" || v.method == "PUT" || v.method == "POST") return v.method;
  return "PUT";
}

}  // namespace

RestResponse history(Context& ctx, const RestRequest& req, const Route& r) {
  auto& store = ctx.svc.store;
  storage::HistoryQuery q;
  q.type = r.type;
  if (r.kind == Kind::kHistoryInstance) {
    auto cur = store.current(ctx.db(), r.type, r.id, storage::Lock::kNone);
    if (!cur) throw FhirError(404, "not-found", r.type + "/" + r.id + " is not known");
    require_visible(ctx, r.type, r.id, cur);
    q.pk = cur->pk;
  }
  // Versions the caller may not see are left out of the entries and the total.
  if (ctx.access) {
    auto& db = ctx.db();
    const auto quote = [&db](std::string_view v) { return db.quote(v); };
    // Each version as it was, and the resource as it is: an earlier version of a resource the
    // caller may no longer see would tell that it exists.
    q.access_sql = ctx.access->sql("h.category", "h.resource_pk", "h.version", quote) +
                   " AND EXISTS (SELECT 1 FROM resource cur WHERE cur.pk=h.resource_pk AND " +
                   ctx.access->sql("cur.category", "cur.pk", "cur.version", quote) + ")";
  }
  PageParams page = page_params(ctx, req, {"_since", "_at", "_cursor"});
  for (const auto& [name, value] : req.params) {
    if (name == "_since") {
      auto range = resources::parse_fhir_time_range(value);
      if (!range) {
        throw FhirError(400, "value", "_since must be an instant such as 2024-05-01T09:00:00+09:00", "_since");
      }
      q.since = range->lo;
    } else if (name == "_at") {
      for (const auto& v : split_list(value)) {
        auto range = resources::parse_fhir_time_range(unescape(v));
        if (!range) throw FhirError(400, "value", "_at must be a date or dateTime such as 2024-05-01", "_at");
        q.at.emplace_back(range->lo, range->hi);
      }
    } else if (name == "_cursor") {
      // last_updated ms . pk . version of the last entry of the previous page
      std::int64_t t = 0;
      std::uint64_t pk = 0;
      std::uint32_t v = 0;
      const char* p = value.data();
      const char* end = value.data() + value.size();
      auto a = std::from_chars(p, end, t);
      bool ok = a.ec == std::errc() && a.ptr < end && *a.ptr == '.';
      if (ok) {
        auto b = std::from_chars(a.ptr + 1, end, pk);
        ok = b.ec == std::errc() && b.ptr < end && *b.ptr == '.';
        if (ok) {
          auto c = std::from_chars(b.ptr + 1, end, v);
          ok = c.ec == std::errc() && c.ptr == end;
        }
      }
      if (!ok) throw FhirError(400, "value", "_cursor is not a position this server handed out", "_cursor");
      q.before_time = t;
      q.before_pk = pk;
      q.before_version = v;
    }
  }
  const std::uint64_t total = store.history_count(ctx.db(), q);
  q.limit = page.count + 1;
  std::vector<storage::StoredVersion> rows;
  if (page.count > 0) rows = store.history(ctx.db(), q);
  const bool more = rows.size() > page.count;
  if (more) rows.resize(page.count);

  BundleWriter b("history");
  b.total(total);
  b.link("self", self_url(req));
  if (more) {
    const auto& last = rows.back();
    std::string next = self_url(req, {"_cursor"});
    next += next.find('?') == std::string::npos ? '?' : '&';
    b.link("next", next + "_cursor=" + std::to_string(last.last_updated) + "." + std::to_string(last.pk) + "." +
                       std::to_string(last.version));
  }
  for (const auto& v : rows) {
    const std::string method = request_method(v);
    Json extra = Json::object();
    extra["request"] = {{"method", method}, {"url", method == "POST" ? v.type : v.type + "/" + v.id}};
    std::string status = v.deleted ? "204 No Content" : (v.version == 1 ? "201 Created" : "200 OK");
    extra["response"] = {
        {"status", status}, {"etag", etag(v.version)}, {"lastModified", resources::format_instant(v.last_updated)}};
    b.entry(req.base_url + "/" + v.type + "/" + v.id, v.content, extra);
  }
  RestResponse resp;
  resp.body = b.finish();
  return resp;
}

}  // namespace kasama::server
