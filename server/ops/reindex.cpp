#include "server/ops/reindex.hpp"

#include <chrono>

#include "resources/json.hpp"
#include "server/access/category.hpp"
#include "server/interactions/support.hpp"
#include "server/log.hpp"
#include "server/search/extract.hpp"
#include "server/search/registry.hpp"

namespace kasama::server {

namespace {
constexpr unsigned kBatch = 500;
}

std::string default_base_url(const Config& config) {
  return config.base_url.empty() ? "https://localhost:" + std::to_string(config.port) + "/fhir" : config.base_url;
}

ReindexResult reindex(Services& svc, const std::string& type, const std::string& base_url,
                      const std::function<void(std::uint64_t)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  ReindexResult result;
  const auto& extractor = search::Extractor::instance();
  auto conn = svc.pool.acquire(std::chrono::seconds(30));
  storage::Connection& c = *conn;
  const std::int64_t tenant = svc.store.tenant();
  std::uint64_t after = 0;
  while (true) {
    c.begin();
    try {
      auto rs = type.empty()
                    ? c.query(
                          "SELECT r.pk, r.res_type, h.content FROM resource r JOIN resource_history h ON "
                          "h.resource_pk=r.pk AND h.version=r.version WHERE r.tenant_id=? AND r.pk>? AND r.deleted=0 "
                          "ORDER BY r.pk LIMIT ? FOR UPDATE",
                          {tenant, after, std::int64_t{kBatch}})
                    : c.query(
                          "SELECT r.pk, r.res_type, h.content FROM resource r JOIN resource_history h ON "
                          "h.resource_pk=r.pk AND h.version=r.version WHERE r.tenant_id=? AND r.res_type=? AND "
                          "r.pk>? AND r.deleted=0 ORDER BY r.pk LIMIT ? FOR UPDATE",
                          {tenant, std::string_view(type), after, std::int64_t{kBatch}});
      if (rs.empty()) {
        c.commit();
        break;
      }
      for (std::size_t i = 0; i < rs.size(); ++i) {
        const auto pk = static_cast<std::uint64_t>(rs.integer(i, 0));
        const std::string rtype = rs.take(i, 1);
        auto parsed = resources::parse_json(rs.text(i, 2));
        after = pk;
        if (!parsed.ok) continue;  // stored content is always valid; never stop a reindex on one row
        auto rows = extractor.extract(rtype, parsed.value, base_url);
        svc.store.replace_index(c, pk, rtype, rows, true);
        ++result.resources;
      }
      c.commit();
    } catch (...) {
      c.rollback();
      throw;
    }
    if (progress) progress(result.resources);
  }
  if (type.empty()) result.relabelled = relabel(svc, base_url);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::uint64_t relabel(Services& svc, const std::string& base_url) {
  const auto& cats = access::Categories::instance();
  const auto& extractor = search::Extractor::instance();
  auto conn = svc.pool.acquire(std::chrono::seconds(30));
  storage::Connection& c = *conn;
  std::uint64_t done = 0, after_pk = 0;
  std::uint32_t after_version = 0;
  while (true) {
    c.begin();
    try {
      auto rows = svc.store.unlabelled(c, after_pk, after_version, kBatch);
      if (rows.empty()) {
        c.commit();
        break;
      }
      for (const auto& u : rows) {
        after_pk = u.pk;
        after_version = u.version;
        storage::AccessLabels labels;
        if (u.content.empty()) {
          // A delete marker: the labels of the version it deleted (labelled just before, in
          // this same pass: versions come in order).
          labels.category = u.version > 1 ? svc.store.version_category(c, u.pk, u.version - 1) : 0;
          if (labels.category == access::kUnlabelled) labels.category = cats.classify(u.type, Json::object());
          if (u.version > 1) labels.subjects = svc.store.subjects(c, u.pk, u.version - 1);
        } else {
          auto parsed = resources::parse_json(u.content);
          if (!parsed.ok) continue;
          labels.category = cats.label_of(parsed.value);
          if (labels.category == access::kUnlabelled) labels.category = cats.classify(u.type, parsed.value);
          const std::string id = parsed.value.value("id", "");
          labels.subjects = subjects_of(u.type, id, extractor.extract(u.type, parsed.value, base_url));
        }
        svc.store.set_labels(c, u.pk, u.version, labels, u.current);
        ++done;
      }
      c.commit();
    } catch (...) {
      c.rollback();
      throw;
    }
  }
  if (done) log_info("access labels given to " + std::to_string(done) + " stored versions");
  return done;
}

RestResponse reindex_operation(Context& ctx, const RestRequest& req, const Route& r) {
  if (ctx.in_transaction_bundle)
    throw FhirError(400, "not-supported", "$reindex cannot run inside a transaction Bundle");
  auto result = reindex(ctx.svc, r.type, req.base_url);
  log_info("$reindex " + (r.type.empty() ? std::string("(all types)") : r.type) + ": " +
           std::to_string(result.resources) + " resources in " + std::to_string(result.seconds) + " s");
  Json out = {{"resourceType", "Parameters"}, {"parameter", Json::array({{{"name", "seconds"}, {"valueDecimal", result.seconds}}})}};
  // The count covers every resource, whoever's: not for a caller who may see only some.
  if (!ctx.access)
    out["parameter"].push_back({{"name", "resources"}, {"valueInteger", static_cast<std::int64_t>(result.resources)}});
  if (!r.type.empty()) out["parameter"].push_back({{"name", "type"}, {"valueCode", r.type}});
  RestResponse resp;
  resp.body = resources::dump_json(out);
  return resp;
}

void reindex_if_registry_changed(Services& svc) {
  const std::string fingerprint = search::Registry::instance().fingerprint();
  std::string stored;
  bool any = false;
  {
    auto conn = svc.pool.acquire(std::chrono::seconds(30));
    auto rs = conn->query("SELECT registry_fingerprint FROM search_state WHERE tenant_id=?",
                          {std::int64_t{svc.store.tenant()}});
    if (!rs.empty()) stored = rs.text(0, 0);
    any = !conn->query("SELECT 1 FROM resource WHERE tenant_id=? LIMIT 1", {std::int64_t{svc.store.tenant()}}).empty();
  }
  if (stored == fingerprint) return;
  if (any) {
    log_info(stored.empty() ? "search index: first start with the search registry; indexing every resource"
                            : "search registry changed; reindexing every resource");
    auto r = reindex(svc, "", default_base_url(svc.config), [](std::uint64_t n) {
      if (n % 50000 == 0) log_info("reindex: " + std::to_string(n) + " resources");
    });
    log_info("reindex done: " + std::to_string(r.resources) + " resources in " + std::to_string(r.seconds) + " s");
  }
  auto conn = svc.pool.acquire(std::chrono::seconds(30));
  conn->query(
      "INSERT INTO search_state (tenant_id, registry_fingerprint, indexed_at) VALUES (?,?,UTC_TIMESTAMP(6)) "
      "ON DUPLICATE KEY UPDATE registry_fingerprint=VALUES(registry_fingerprint), indexed_at=VALUES(indexed_at)",
      {std::int64_t{svc.store.tenant()}, std::string_view(fingerprint)});
}

}  // namespace kasama::server
