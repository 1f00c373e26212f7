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
}

void Context::commit() {
  db().commit();
  auto actions = std::move(after_commit);
  after_commit.clear();
  for (auto& a : actions) a();
}

void Context::rollback() noexcept {
  after_commit.clear();
  pending_links.clear();
  pending_deletes.clear();
  if (conn_) (*conn_)->rollback();
}

}  // namespace kasama::server
