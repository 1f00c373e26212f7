#pragma once
// What an interaction works with: the long-lived services and the per-request context
// (its database connection and transaction, and what to do once that transaction commits).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/access/policy.hpp"
#include "server/audit/anomaly.hpp"
#include "server/audit/trail.hpp"
#include "server/config.hpp"
#include "server/interactions/rest.hpp"
#include "server/storage/db.hpp"
#include "server/storage/resource_cache.hpp"
#include "server/storage/resource_store.hpp"

namespace kasama::auth {
class AuthService;
}

namespace kasama::server {

struct Services {
  Services(const Config& c, storage::ConnectionPool& p, storage::ResourceCache& rc, auth::AuthService* a = nullptr,
           audit::AuditTrail* t = nullptr)
      : config(c),
        pool(p),
        cache(rc),
        store(c.tenant),
        auth(a),
        audit(t),
        optouts(p, c.tenant, std::chrono::milliseconds(c.token_cache_ms)) {}
  const Config& config;
  storage::ConnectionPool& pool;
  storage::ResourceCache& cache;
  storage::ResourceStore store;
  auth::AuthService* auth;   // bearer tokens of FHIR requests; null only where no request comes from outside
  audit::AuditTrail* audit;  // the audit trail; null where nothing is audited (CLI tools)
  access::OptOutRegistry optouts;
  audit::AnomalyDetector* anomaly = nullptr;  // R-32; null: no detection
};

class Context {
 public:
  explicit Context(Services& s) : svc(s) {}

  // The connection, acquired on first use (a read served from the cache never needs one).
  storage::Connection& db();
  bool has_db() const { return conn_.has_value(); }
  void begin();   // starts the interaction's transaction
  void commit();  // commits, then runs the after-commit actions
  void rollback() noexcept;

  Services& svc;
  // The FHIR base of the request (KASAMA_BASE_URL, else from the Host header): absolute
  // references below it are local, in the search index, search values and integrity checks.
  std::string base_url;
  bool in_transaction_bundle = false;  // reads must see the bundle's own uncommitted writes
  // What the caller may see and write (server/access); null: nothing is filtered.
  std::shared_ptr<const access::Filter> access;
  // The request's audit record notes: a resource hidden by the filter is recorded as a
  // denial there (R-30, R-33's opt-out hits), though the caller is told "not known".
  AuditNotes* audit_notes = nullptr;
  const auth::Principal* principal = nullptr;  // the caller (set with access)
  std::int64_t now = 0;                // the writes' lastUpdated, one per transaction
  std::vector<std::function<void()>> after_commit;
  // Held from the audit record's INSERT until this transaction ends (server/audit/trail.hpp).
  audit::AuditTrail::Slot audit_slot;

  // Referential integrity is checked when the transaction's writes are all done (a
  // transaction Bundle may create a target after the entry that refers to it).
  struct PendingLink {
    std::string type, id, path;
    int entry;
  };
  struct PendingDelete {
    std::string type, id;
    std::uint64_t pk;
    int entry;
  };
  int current_entry = -1;  // the transaction Bundle entry being processed
  std::vector<PendingLink> pending_links;
  std::vector<PendingDelete> pending_deletes;

  // Search-index rows of the resources written so far, by pk (a later write of the same
  // resource replaces its entry). Written in one batch per table before the commit, and
  // before any search in the transaction, so searches see the transaction's own writes.
  struct PendingIndex {
    std::string type;
    storage::IndexRows rows;
    bool existed = false;  // the resource may have rows in the database to remove
  };
  std::map<std::uint64_t, PendingIndex> pending_index;
  void flush_index();

 private:
  std::optional<storage::PooledConnection> conn_;
};

// Raised inside a transaction when it must be run again from the start (a concurrent
// conditional create claimed the same criteria first, or two creates raced on one id).
struct RetryTransaction {};

}  // namespace kasama::server
