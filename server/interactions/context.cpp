#include "server/interactions/context.hpp"

#include "resources/fhir_time.hpp"

namespace kasama::server {

storage::Connection& Context::db() {
  if (!conn_) conn_.emplace(svc.pool.acquire());
  return **conn_;
}

void Context::begin() {
  db().begin();
  now = resources::now_millis();
  after_commit.clear();
  pending_links.clear();
  pending_deletes.clear();
  pending_index.clear();
}

void Context::flush_index() {
  if (pending_index.empty()) return;
  std::vector<storage::ResourceStore::IndexWrite> writes;
  writes.reserve(pending_index.size());
  for (const auto& [pk, p] : pending_index) writes.push_back({pk, &p.type, &p.rows, p.existed});
  svc.store.replace_index_many(db(), writes);
  pending_index.clear();
}

void Context::commit() {
  flush_index();
  db().commit();
  auto actions = std::move(after_commit);
  after_commit.clear();
  for (auto& a : actions) a();
}

void Context::rollback() noexcept {
  after_commit.clear();
  pending_index.clear();
  pending_links.clear();
  pending_deletes.clear();
  if (conn_) (*conn_)->rollback();
}

}  // namespace kasama::server
