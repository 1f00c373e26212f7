#pragma once
// Server settings, read once from the environment at start.
#include <cstddef>
#include <string>

namespace kasama::server {

enum class RefIntegrity { kOff, kDelete, kStrict };
// KASAMA_DEMO_DATA: 1 = demo accounts and records (the embedded default), accounts = demo
// accounts and clients only (the test fixtures), 0 = nothing. Never with KASAMA_DB.
enum class DemoData { kOff, kAccounts, kAll };

struct Config {
  unsigned port = 8443;
  std::string bind = "127.0.0.1";
  std::string data_dir = "var";
  std::string db_url;        // KASAMA_DB: external MariaDB; empty = private instance under data_dir
  std::string db_admin_url;  // KASAMA_DB_ADMIN: migration user (defaults to KASAMA_DB)
  std::string db_buffer_pool = "256M";
  std::string base_url;  // KASAMA_BASE_URL; empty = derived from the Host header
  std::string tls_cert, tls_key;
  unsigned threads = 64;
  unsigned db_pool = 24;
  std::size_t max_body = 64UL << 20;      // bytes
  std::size_t cache_bytes = 256UL << 20;  // current-version cache; 0 disables it
  unsigned default_count = 50;
  unsigned max_count = 1000;
  unsigned slow_search_ms = 1000;  // KASAMA_SLOW_SEARCH_MS: search SQL slower than this is logged (0 = all)
  RefIntegrity ref_integrity = RefIntegrity::kStrict;
  DemoData demo_data = DemoData::kAll;
  unsigned idle_timeout_s = 900;   // KASAMA_IDLE_TIMEOUT: sessions and user tokens (R-17: at most 900)
  unsigned access_token_s = 3600;  // KASAMA_ACCESS_TOKEN_LIFETIME: user access tokens, absolute
  unsigned backend_token_s = 300;  // KASAMA_BACKEND_TOKEN_LIFETIME: client_credentials tokens
  // KASAMA_AUDIT=off: no audit trail, for benchmarks that compare with and without it
  // (refused with KASAMA_DB: a real deployment always audits, R-30).
  bool audit = true;
  // KASAMA_AUDIT_SYNC: fdatasync (default: a read's record is on disk before its answer, also
  // across a power loss) or write (handed to the kernel: survives a crash of the server or of
  // MariaDB, not of the machine).
  bool audit_sync = true;
  // KASAMA_AUDIT_GRANTS=unchecked: start even when the DB user can UPDATE/DELETE audit rows.
  bool audit_grants_checked = true;
  unsigned token_cache_ms = 1000;  // KASAMA_TOKEN_CACHE_MS: how long another process's revocation may go unseen
  unsigned tenant = 1;
  // KASAMA_ANOMALY_RULES: the abnormal-access rules; empty = conformance/kasama/anomaly-rules.json.
  std::string anomaly_rules;
  // KASAMA_AUDIT_RETENTION_DAYS: `kasama-server audit-purge` removes audit records older
  // than this; 0 (the default) keeps them all. Separate from data retention.
  unsigned audit_retention_days = 0;
  // KASAMA_DB_MAINT: the maintenance DB user that may DELETE audit rows (audit-purge only);
  // empty = the migration user (KASAMA_DB_ADMIN, or the private instance's root).
  std::string db_maint_url;

  static Config from_env();  // throws std::invalid_argument naming the variable
};

}  // namespace kasama::server
