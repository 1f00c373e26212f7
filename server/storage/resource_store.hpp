#pragma once
// Resource versions in the generic tables (resource, resource_history) and the rows that
// hang off a version (token index, links, conditional-create keys). Stateless: every call
// takes the connection, whose transaction the caller owns.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/storage/db.hpp"
#include "server/storage/index_rows.hpp"

namespace kasama::storage {

struct CurrentRow {
  std::uint64_t pk = 0;
  std::uint32_t version = 0;
  bool deleted = false;
  std::int64_t last_updated = 0;  // ms since epoch
  std::uint8_t category = 0;      // server/access/category
};

// What access control knows of a version (migration 0005): its information category and
// the Patients whose data it is.
struct AccessLabels {
  std::uint8_t category = 0;
  std::vector<std::string> subjects;
};

// A resident's opt-out of one institution ("" = all) in [start_ms, end_ms) (access_optout).
struct OptOutRow {
  std::string patient_id;
  std::string institution_id;
  std::int64_t start_ms = 0, end_ms = 0;
};

struct StoredVersion {
  std::uint64_t pk = 0;
  std::string type;
  std::string id;
  std::uint32_t version = 0;
  std::int64_t last_updated = 0;
  bool deleted = false;
  std::string method;   // POST, PUT, PATCH, DELETE
  std::string content;  // compact JSON; empty for a delete marker
  std::uint8_t category = 0;
};

struct LinkRow {
  std::string target_type;
  std::string target_id;
  std::string path;
};

enum class Lock { kNone, kShare, kUpdate };

struct HistoryQuery {
  std::string type;                 // empty = system level
  std::optional<std::uint64_t> pk;  // instance level
  std::optional<std::int64_t> since;
  std::vector<std::pair<std::int64_t, std::int64_t>> at;  // versions current in each [lo, hi)
  // keyset cursor: versions strictly older than this (last_updated, pk, version)
  std::optional<std::int64_t> before_time;
  std::uint64_t before_pk = 0;
  std::uint32_t before_version = 0;
  unsigned limit = 50;
  std::string access_sql;  // a condition over the version alias h (server/access); empty = none
};

// idx_reference.target_id of a reference that is not to this server: "~" + hex of hash64(url).
std::string url_key(std::string_view url);

class ResourceStore {
 public:
  explicit ResourceStore(unsigned tenant) : tenant_(tenant) {}

  std::optional<CurrentRow> current(Connection& c, const std::string& type, const std::string& id, Lock lock) const;
  std::optional<StoredVersion> read_current(Connection& c, const std::string& type, const std::string& id) const;
  std::optional<StoredVersion> read_version(Connection& c, const std::string& type, const std::string& id,
                                            std::uint32_t version) const;

  // Writes a new version (content empty = delete marker) and moves the resource row to it.
  // Inserts the resource row when existing is empty; returns the resource pk.
  // labels: the version's category and subjects (a delete marker: those of the version it
  // deletes).
  std::uint64_t write_version(Connection& c, const std::optional<CurrentRow>& existing, const std::string& type,
                              const std::string& id, std::uint32_t version, std::int64_t last_updated,
                              const std::string& method, const std::string& content,
                              const AccessLabels& labels = {}) const;
  // The category column of one stored version (0 when there is no such version).
  std::uint8_t version_category(Connection& c, std::uint64_t pk, std::uint32_t version) const;
  // The Patients a version belongs to.
  std::vector<std::string> subjects(Connection& c, std::uint64_t pk, std::uint32_t version) const;
  // Sets the labels of a stored version (reindex).
  void set_labels(Connection& c, std::uint64_t pk, std::uint32_t version, const AccessLabels& labels,
                  bool current) const;
  // Versions stored before labels existed (category 0), after pk/version, at most limit.
  struct Unlabelled {
    std::uint64_t pk;
    std::uint32_t version;
    std::string type, content;
    bool current;
  };
  std::vector<Unlabelled> unlabelled(Connection& c, std::uint64_t after_pk, std::uint32_t after_version,
                                     unsigned limit) const;

  // The opt-outs a Consent (by pk) states, replaced as a whole; every opt-out of the tenant.
  void replace_opt_outs(Connection& c, std::uint64_t consent_pk, const std::vector<OptOutRow>& rows) const;
  std::vector<OptOutRow> opt_outs(Connection& c) const;

  // Replaces the search-index rows of a resource (existed: it may have rows to remove).
  void replace_index(Connection& c, std::uint64_t pk, const std::string& type, const IndexRows& rows,
                     bool existed) const;
  // The same for many resources at once: one DELETE and one multi-row INSERT per table.
  struct IndexWrite {
    std::uint64_t pk;
    const std::string* type;
    const IndexRows* rows;
    bool existed;
  };
  void replace_index_many(Connection& c, const std::vector<IndexWrite>& writes) const;
  void replace_links(Connection& c, std::uint64_t pk, const std::vector<LinkRow>& rows) const;
  void clear_dependents(Connection& c, std::uint64_t pk) const;  // index rows, links, conditional keys

  // Live resources (not deleted) that link to type/id, other than exclude_pk.
  // only: a condition over the referrer's resource row alias r (the caller's access filter).
  std::vector<std::string> referrers(Connection& c, const std::string& type, const std::string& id,
                                     std::uint64_t exclude_pk, unsigned limit, const std::string& only = "") const;

  // Conditional-create key: the insert waits for a transaction that holds the same key and
  // throws DbError(duplicate_key) once that one committed (or when a committed key exists).
  void claim_conditional_key(Connection& c, const std::string& type, std::int64_t criteria_hash,
                             std::uint64_t pk) const;
  std::optional<std::uint64_t> conditional_key_owner(Connection& c, const std::string& type,
                                                     std::int64_t criteria_hash) const;
  // Removes a key whose resource no longer matches its criteria (only that owner's key).
  void drop_conditional_key(Connection& c, const std::string& type, std::int64_t criteria_hash,
                            std::uint64_t owner_pk) const;

  std::vector<StoredVersion> history(Connection& c, const HistoryQuery& q) const;
  std::uint64_t history_count(Connection& c, const HistoryQuery& q) const;

  // Current non-deleted resources of a type in id order after an id (a plain listing).
  std::vector<StoredVersion> list(Connection& c, const std::string& type, const std::string& after_id,
                                  unsigned limit) const;
  std::uint64_t count(Connection& c, const std::string& type) const;

  unsigned tenant() const { return tenant_; }

 private:
  void insert_subjects(Connection& c, std::uint64_t pk, std::uint32_t version,
                       const std::vector<std::string>& subjects) const;
  unsigned tenant_;
};

}  // namespace kasama::storage
