#pragma once
// SQL for the audit trail (server/audit): event rows, the hash-chain seals over them, the
// auditor's searches and the retention purge. Plain rows in and out; the chain rules live
// in server/audit.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/storage/db.hpp"

namespace kasama::storage {

struct AuditRow {
  std::uint64_t id = 0;
  unsigned tenant = 0;        // tenant_id (in the hash too: moving a row to another tenant hides it)
  std::int64_t recorded = 0;  // ms since the epoch
  std::string request_id, interaction, action, method, path;
  int status = 0;
  int outcome = 0;  // 0 success, 4 minor failure, 8 serious failure
  bool denied = false;
  std::string account_id, role, institution_id, fhir_user, client_id, terminal_id, peer, patient_context;
  std::string patients;  // Patient ids, space-separated
  std::string entities;  // Type/id, space-separated
  std::string detail;
};

struct SealRow {
  std::uint64_t last_id = 0, first_id = 0, prev_id = 0, events = 0;
  std::string digests;  // per event: 16 hex digits of the id, 64 of SHA-256(canonical bytes)
  std::string hash;     // hex
  std::int64_t sealed_at = 0;
};

// What an auditor may ask for (AuditEvent search parameters, already parsed).
struct AuditQuery {
  std::optional<std::int64_t> from, to;   // recorded >= from, < to (ms)
  std::vector<std::string> accounts;      // agent (account ids), any of
  std::string patient;                    // touched this Patient id
  std::string entity;                     // touched this Type/id
  std::vector<std::string> interactions;  // subtype, any of
  std::vector<std::string> actions;       // action, any of
  std::vector<int> outcomes;              // outcome, any of
  std::string terminal, client, address, institution, request_id;
  std::optional<bool> denied;
  std::uint64_t id = 0;         // _id (0 = any)
  std::uint64_t before_id = 0;  // paging: newest first, ids below this (0 = from the newest)
  std::size_t limit = 50;
};

class AuditStore {
 public:
  explicit AuditStore(unsigned tenant) : tenant_(tenant) {}
  unsigned tenant() const { return tenant_; }

  std::uint64_t insert(Connection& c, const AuditRow& r);
  // One multi-row INSERT for a batch; returns the first id (consecutive ids follow when
  // innodb_autoinc_lock_mode is 0 or 1).
  std::uint64_t insert_batch(Connection& c, const std::vector<const AuditRow*>& rows);
  // Ids with after < id <= upto, in order (the primary key only).
  std::vector<std::uint64_t> ids(Connection& c, std::uint64_t after, std::uint64_t upto, std::size_t limit);
  std::vector<AuditRow> by_ids(Connection& c, const std::vector<std::uint64_t>& ids);
  std::uint64_t max_id(Connection& c);
  // Events with after < id <= upto, in id order.
  std::vector<AuditRow> range(Connection& c, std::uint64_t after, std::uint64_t upto, std::size_t limit);
  std::optional<AuditRow> by_id(Connection& c, std::uint64_t id);
  std::vector<AuditRow> search(Connection& c, const AuditQuery& q);
  std::uint64_t count(Connection& c, const AuditQuery& q);

  // The journal position the loader reached: (file number, offset after the last loaded entry).
  std::pair<std::uint64_t, std::uint64_t> loaded_position(Connection& c);
  void insert_loaded_position(Connection& c, std::uint64_t file_no, std::uint64_t end_offset, std::int64_t at);

  std::optional<SealRow> last_seal(Connection& c);
  void insert_seal(Connection& c, const SealRow& seal);
  // Seals with last_id > after, in order.
  std::vector<SealRow> seals(Connection& c, std::uint64_t after, std::size_t limit);

  // Retention: removes the events of the blocks whose events were all recorded before
  // `before` (ms), and those blocks' seals but the last, which anchors the chain that follows;
  // as the maintenance user. Returns the number of events removed.
  std::uint64_t purge(Connection& c, std::int64_t before);

 private:
  unsigned tenant_;
};

}  // namespace kasama::storage
