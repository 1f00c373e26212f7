#pragma once
// One audit record: what the chain hashes, how it reads as an IHE BALP-shaped R4
// AuditEvent, and how a response or request body is scanned for the resources and the
// residents (Patients) it touched.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "resources/json.hpp"
#include "server/storage/audit_store.hpp"

namespace kasama::audit {

using storage::AuditRow;

// The bytes the chain hashes for one event: every column, length-prefixed, in a fixed order.
std::string canonical(const AuditRow& row);
// The inverse of canonical(): nullopt for anything that is not exactly one encoded record.
std::optional<AuditRow> decode_canonical(std::string_view bytes);
// One event's entry in its block's digest list: 16 hex digits of its id, then the hex
// SHA-256 of its canonical bytes (80 characters).
std::string digest_entry(const AuditRow& row);
constexpr std::size_t kDigestEntry = 80;
// A block's hash: hex SHA-256(previous block's hash || its digest list); the first block's
// previous hash is 64 zeros.
// It covers the block's first, last and previous ids and its count as well.
std::string block_hash(const std::string& prev_hash_hex, const storage::SealRow& seal);
extern const std::string kGenesis;

// The record as an R4 AuditEvent (IHE BALP: type rest, subtype the interaction).
resources::Json to_audit_event(const AuditRow& row);

// What a request touched, gathered from bodies without a full parse: each resource's
// Type/id (top-level or Bundle entries' fullUrl / resourceType+id) and each Patient it is or
// refers to. Bounded: at most kMaxEntities entities and kMaxPatients patients are kept.
struct Touched {
  static constexpr std::size_t kMaxEntities = 200;
  static constexpr std::size_t kMaxPatients = 1000;
  std::set<std::string> entities;
  std::set<std::string> patients;
  bool truncated = false;
  // A Patient entity is also a patient touched, unless only attempted (a failed request).
  void entity(std::string_view type, std::string_view id, bool touched = true);
  void patient(std::string_view id);
  std::string entities_text() const;
  std::string patients_text() const;
};
void scan_body(std::string_view json, Touched& out);

// restful-interaction code → AuditEvent.action (C R U D E).
std::string action_of(std::string_view interaction, std::string_view method);

}  // namespace kasama::audit
