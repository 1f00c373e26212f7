// read and vread (http.html#read, #vread), with conditional read (If-None-Match,
// If-Modified-Since). Current versions come from the cache when they can.
#include <charconv>

#include "resources/fhir_time.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {
namespace {

bool not_modified(const RestRequest& req, std::uint32_t version, std::int64_t last_updated) {
  if (const std::string* inm = req.header("if-none-match")) {
    return *inm == etag(version) || *inm == "\"" + std::to_string(version) + "\"" || *inm == "*";
  }
  if (const std::string* ims = req.header("if-modified-since")) {
    auto since = resources::parse_http_date(*ims);
    return since && last_updated / 1000 <= *since / 1000;
  }
  return false;
}

RestResponse found(const RestRequest& req, std::uint32_t version, std::int64_t last_updated, std::string content) {
  RestResponse r;
  r.version_id = std::to_string(version);
  r.last_modified = last_updated;
  if (not_modified(req, version, last_updated)) {
    r.status = 304;
    return r;
  }
  r.status = 200;
  r.body = std::move(content);
  return r;
}

[[noreturn]] void gone(const Route& r, std::uint32_t version, std::int64_t when) {
  FhirError e(410, "deleted",
              r.type + "/" + r.id + " was deleted (version " + std::to_string(version) + ", " +
                  resources::format_instant(when) + ")");
  throw e;
}

}  // namespace

RestResponse read(Context& ctx, const RestRequest& req, const Route& r) {
  auto& cache = ctx.svc.cache;
  if (!ctx.in_transaction_bundle) {
    if (auto hit = cache.get(r.type, r.id)) {
      // The subjects are needed only when some resident is hidden from this caller; an entry
      // without them is decided from the database.
      const access::Filter* f = ctx.access.get();
      if (!f || !f->reads(hit->category) || f->hidden_patients().empty() || hit->subjects) {
        if (f && (!f->reads(hit->category) || (hit->subjects && f->hides(*hit->subjects)))) {
          note_hidden(ctx, hit->category, f->reads(hit->category));
          throw not_known(r.type, r.id);
        }
        if (hit->deleted) gone(r, hit->version, hit->last_updated);
        return found(req, hit->version, hit->last_updated, hit->content);
      }
    }
  }
  const std::uint64_t ticket = cache.ticket(r.type, r.id);
  auto v = ctx.svc.store.read_current(ctx.db(), r.type, r.id);
  if (!v) throw not_known(r.type, r.id);
  std::shared_ptr<const std::vector<std::string>> subjects;
  if (ctx.access && !ctx.access->hidden_patients().empty())
    subjects = std::make_shared<const std::vector<std::string>>(ctx.svc.store.subjects(ctx.db(), v->pk, v->version));
  if (!ctx.in_transaction_bundle) {
    auto entry = std::make_shared<storage::CachedResource>();
    entry->version = v->version;
    entry->last_updated = v->last_updated;
    entry->deleted = v->deleted;
    entry->content = v->content;
    entry->category = v->category;
    entry->subjects = subjects;
    cache.fill(r.type, r.id, entry, ticket);
  }
  if (!visible(ctx, v->pk, v->version, v->category, subjects.get())) throw not_known(r.type, r.id);
  if (v->deleted) gone(r, v->version, v->last_updated);
  return found(req, v->version, v->last_updated, std::move(v->content));
}

RestResponse vread(Context& ctx, const RestRequest& req, const Route& r) {
  std::uint32_t version = 0;
  const auto [end, ec] = std::from_chars(r.vid.data(), r.vid.data() + r.vid.size(), version);
  if (ec != std::errc() || end != r.vid.data() + r.vid.size() || version == 0) {
    throw FhirError(404, "not-found", r.type + "/" + r.id + " has no version '" + r.vid.substr(0, 20) + "'");
  }
  auto v = ctx.svc.store.read_version(ctx.db(), r.type, r.id, version);
  // The version as it was, and the resource as it is now (or an old version would tell that
  // a resource now hidden from the caller exists).
  const bool shown = v && visible(ctx, v->pk, v->version, v->category) &&
                     (!ctx.access || [&] {
                       auto cur = ctx.svc.store.current(ctx.db(), r.type, r.id, storage::Lock::kNone);
                       return cur && visible(ctx, cur->pk, cur->version, cur->category);
                     }());
  if (!shown) throw FhirError(404, "not-found", r.type + "/" + r.id + "/_history/" + r.vid + " is not known");
  if (v->deleted) gone(r, v->version, v->last_updated);
  return found(req, v->version, v->last_updated, std::move(v->content));
}

}  // namespace kasama::server
