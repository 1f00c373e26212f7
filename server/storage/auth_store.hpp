#pragma once
// SQL for identity (server/auth): institutions, accounts, admin grants, proxy relations,
// clients, tokens, authorization codes, client-assertion ids and the signing key. Plain rows
// in, plain rows out; the rules live in server/auth. Times are ms since the epoch.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/storage/db.hpp"

namespace kasama::storage {

struct InstitutionRow {
  std::string id, name, state, details;  // details: JSON text
  std::int64_t applied_at = 0;
  std::optional<std::int64_t> decided_at, ended_at;
  std::string decided_by, ended_by;
};

struct AccountRow {
  std::string id, name, role, institution_id, fhir_user, state, password_hash, totp_secret, details;
  bool password_initial = true, admin_right = false;
  std::int64_t totp_last_step = 0;
  std::optional<std::int64_t> password_set_at, issued_at, ended_at;
  std::int64_t created_at = 0;
  std::string created_by, issued_by, ended_by;
};

struct AdminGrantRow {
  std::int64_t pk = 0;
  std::string account_id, state, reason, requested_by, decided_by;
  std::int64_t requested_at = 0;
  std::optional<std::int64_t> decided_at;
};

struct ProxyRow {
  std::string account_id, patient_id, relationship;
  std::int64_t started_at = 0;
  std::optional<std::int64_t> ended_at;
};

struct ClientRow {
  std::string client_id, terminal_id, name, kind, institution_id, state, secret_hash, details, created_by, ended_by;
  std::int64_t created_at = 0;
  std::optional<std::int64_t> ended_at;
};

struct AuthTokenRow {
  std::string token_hash, kind, account_id, client_id, scope, patient_id, family;
  std::int64_t created_at = 0, expires_at = 0, last_used = 0;
  bool revoked = false;
};

struct CodeRow {
  std::string code_hash, client_id, account_id, redirect_uri, scope, challenge, patient_id, nonce, session_hash;
  std::int64_t created_at = 0, expires_at = 0;
  bool used = false;
};

// An incident (R-32, R-42; migration 0006).
struct IncidentRow {
  std::int64_t pk = 0;
  int level = 1;
  std::string source, rule, state, action, account_id, client_id, terminal_id, institution_id, detail;
  std::int64_t detected_at = 0;
  std::optional<std::int64_t> closed_at;
  std::string closed_by, cause, measures;
};

// A token with what decides whether it still holds: its account, client, their
// institutions and the proxy relation behind its patient context, read in one query.
struct TokenContext {
  AuthTokenRow token;
  std::string account_state, role, name, institution_id, fhir_user, account_institution_state;
  bool admin_right = false, password_initial = false, has_totp = false;
  std::string client_state, terminal_id, client_institution_state;
  bool proxy_active = false;  // an active auth_proxy row for (account, patient)
  // What the access range comes from (JSON texts; empty when there is none).
  std::string account_details, account_institution_details, client_institution_id, client_institution_details;
};

class AuthStore {
 public:
  explicit AuthStore(unsigned tenant) : tenant_(tenant) {}

  void insert_institution(Connection& c, const InstitutionRow& r);
  std::optional<InstitutionRow> institution(Connection& c, const std::string& id, bool for_update = false);
  std::vector<InstitutionRow> institutions(Connection& c, const std::string& state = "");
  void update_institution(Connection& c, const InstitutionRow& r);

  void insert_account(Connection& c, const AccountRow& r);
  std::optional<AccountRow> account(Connection& c, const std::string& id, bool for_update = false);
  // Filters are optional (empty = any).
  std::vector<AccountRow> accounts(Connection& c, const std::string& role, const std::string& institution_id,
                                   const std::string& state);
  void update_account(Connection& c, const AccountRow& r);
  // The accounts holding the admin right (call under lock(c, "admin-rights")).
  std::vector<std::string> admin_holders(Connection& c);
  // Serializes the transactions that take the named lock, until commit.
  void lock(Connection& c, const std::string& name);

  std::int64_t insert_admin_grant(Connection& c, const AdminGrantRow& r);
  std::optional<AdminGrantRow> admin_grant(Connection& c, std::int64_t pk, bool for_update = false);
  std::vector<AdminGrantRow> admin_grants(Connection& c, const std::string& state);
  void update_admin_grant(Connection& c, const AdminGrantRow& r);

  void upsert_proxy(Connection& c, const ProxyRow& r);
  std::vector<ProxyRow> proxies(Connection& c, const std::string& account_id);

  void insert_client(Connection& c, const ClientRow& r);
  std::optional<ClientRow> client(Connection& c, const std::string& client_id, bool for_update = false);
  std::vector<ClientRow> clients(Connection& c, const std::string& institution_id);
  void update_client(Connection& c, const ClientRow& r);

  void insert_token(Connection& c, const AuthTokenRow& r);
  std::optional<AuthTokenRow> token(Connection& c, const std::string& hash, bool for_update = false);
  std::optional<TokenContext> token_context(Connection& c, const std::string& hash);
  void revoke_token(Connection& c, const std::string& hash);
  void revoke_family(Connection& c, const std::string& family);
  void revoke_account_tokens(Connection& c, const std::string& account_id);
  void revoke_patient_tokens(Connection& c, const std::string& account_id, const std::string& patient_id);
  void revoke_account_tokens_except(Connection& c, const std::string& account_id, const std::string& keep_hash);
  void revoke_client_tokens(Connection& c, const std::string& client_id);
  void touch_token(Connection& c, const std::string& hash, std::int64_t last_used);
  std::uint64_t purge_expired(Connection& c, std::int64_t now);

  void insert_code(Connection& c, const CodeRow& r);
  std::optional<CodeRow> code_for_update(Connection& c, const std::string& hash);
  void mark_code_used(Connection& c, const std::string& hash);

  // False when (client, jti) was seen before: a replay.
  bool remember_jti(Connection& c, const std::string& client_id, const std::string& jti_hash, std::int64_t expires_at);

  std::int64_t insert_incident(Connection& c, const IncidentRow& r);
  std::optional<IncidentRow> incident(Connection& c, std::int64_t pk, bool for_update = false);
  std::vector<IncidentRow> incidents(Connection& c, const std::string& state, unsigned limit);
  std::vector<IncidentRow> incidents_between(Connection& c, std::int64_t from, std::int64_t to,
                                             const std::string& institution);
  void close_incident(Connection& c, const IncidentRow& r);

  std::optional<std::pair<std::string, std::string>> signing_key(Connection& c);  // kid, private PEM
  void insert_signing_key(Connection& c, const std::string& kid, const std::string& pem, std::int64_t now);

 private:
  std::int64_t tenant() const { return tenant_; }
  unsigned tenant_;
};

}  // namespace kasama::storage
