#include "server/storage/auth_store.hpp"

#include <deque>

#include "resources/fhir_time.hpp"

namespace kasama::storage {

namespace {

using resources::format_sql;

// Keeps the formatted text alive while the statement runs.
struct Times {
  std::deque<std::string> texts;  // a deque: growing it never moves the texts already viewed
  Param at(std::int64_t ms) {
    texts.push_back(format_sql(ms));
    return std::string_view(texts.back());
  }
  Param at(const std::optional<std::int64_t>& ms) { return ms ? at(*ms) : Param(nullptr); }
};

Param opt(const std::string& s) {
  return s.empty() ? Param(nullptr) : Param(std::string_view(s));
}
Param text(const std::string& s) {
  return std::string_view(s);
}
Param flag(bool b) {
  return std::int64_t{b ? 1 : 0};
}

std::int64_t ms(const ResultSet& rs, std::size_t r, std::size_t c) {
  return resources::parse_sql(rs.text(r, c)).value_or(0);
}
std::optional<std::int64_t> opt_ms(const ResultSet& rs, std::size_t r, std::size_t c) {
  if (rs.is_null(r, c)) return std::nullopt;
  return resources::parse_sql(rs.text(r, c));
}

constexpr const char* kInstitutionCols =
    "id, name, state, details, applied_at, decided_at, decided_by, ended_at, ended_by";

InstitutionRow institution_row(ResultSet& rs, std::size_t r) {
  InstitutionRow row;
  row.id = rs.take(r, 0);
  row.name = rs.take(r, 1);
  row.state = rs.take(r, 2);
  row.details = rs.take(r, 3);
  row.applied_at = ms(rs, r, 4);
  row.decided_at = opt_ms(rs, r, 5);
  row.decided_by = rs.take(r, 6);
  row.ended_at = opt_ms(rs, r, 7);
  row.ended_by = rs.take(r, 8);
  return row;
}

constexpr const char* kAccountCols =
    "id, name, role, institution_id, fhir_user, state, password_hash, password_initial, password_set_at, "
    "totp_secret, totp_last_step, admin_right, details, created_at, created_by, issued_at, issued_by, ended_at, "
    "ended_by";

AccountRow account_row(ResultSet& rs, std::size_t r) {
  AccountRow a;
  a.id = rs.take(r, 0);
  a.name = rs.take(r, 1);
  a.role = rs.take(r, 2);
  a.institution_id = rs.take(r, 3);
  a.fhir_user = rs.take(r, 4);
  a.state = rs.take(r, 5);
  a.password_hash = rs.take(r, 6);
  a.password_initial = rs.integer(r, 7) != 0;
  a.password_set_at = opt_ms(rs, r, 8);
  a.totp_secret = rs.take(r, 9);
  a.totp_last_step = rs.integer(r, 10);
  a.admin_right = rs.integer(r, 11) != 0;
  a.details = rs.take(r, 12);
  a.created_at = ms(rs, r, 13);
  a.created_by = rs.take(r, 14);
  a.issued_at = opt_ms(rs, r, 15);
  a.issued_by = rs.take(r, 16);
  a.ended_at = opt_ms(rs, r, 17);
  a.ended_by = rs.take(r, 18);
  return a;
}

constexpr const char* kGrantCols = "pk, account_id, state, reason, requested_at, requested_by, decided_at, decided_by";

AdminGrantRow grant_row(ResultSet& rs, std::size_t r) {
  AdminGrantRow g;
  g.pk = rs.integer(r, 0);
  g.account_id = rs.take(r, 1);
  g.state = rs.take(r, 2);
  g.reason = rs.take(r, 3);
  g.requested_at = ms(rs, r, 4);
  g.requested_by = rs.take(r, 5);
  g.decided_at = opt_ms(rs, r, 6);
  g.decided_by = rs.take(r, 7);
  return g;
}

constexpr const char* kClientCols =
    "client_id, terminal_id, name, kind, institution_id, state, secret_hash, details, created_at, created_by, "
    "ended_at, ended_by";

ClientRow client_row(ResultSet& rs, std::size_t r) {
  ClientRow c;
  c.client_id = rs.take(r, 0);
  c.terminal_id = rs.take(r, 1);
  c.name = rs.take(r, 2);
  c.kind = rs.take(r, 3);
  c.institution_id = rs.take(r, 4);
  c.state = rs.take(r, 5);
  c.secret_hash = rs.take(r, 6);
  c.details = rs.take(r, 7);
  c.created_at = ms(rs, r, 8);
  c.created_by = rs.take(r, 9);
  c.ended_at = opt_ms(rs, r, 10);
  c.ended_by = rs.take(r, 11);
  return c;
}

}  // namespace

// --- institutions ---------------------------------------------------------------------

void AuthStore::insert_institution(Connection& c, const InstitutionRow& r) {
  Times t;
  c.query(
      "INSERT INTO auth_institution (tenant_id, id, name, state, details, applied_at, decided_at, decided_by, "
      "ended_at, ended_by) VALUES (?,?,?,?,?,?,?,?,?,?)",
      {tenant(), text(r.id), text(r.name), text(r.state), text(r.details), t.at(r.applied_at), t.at(r.decided_at),
       opt(r.decided_by), t.at(r.ended_at), opt(r.ended_by)});
}

std::optional<InstitutionRow> AuthStore::institution(Connection& c, const std::string& id, bool for_update) {
  const std::string sql = std::string("SELECT ") + kInstitutionCols +
                          " FROM auth_institution WHERE tenant_id=? AND id=?" + (for_update ? " FOR UPDATE" : "");
  auto rs = c.query(sql, {tenant(), text(id)});
  if (rs.empty()) return std::nullopt;
  return institution_row(rs, 0);
}

std::vector<InstitutionRow> AuthStore::institutions(Connection& c, const std::string& state) {
  const std::string sql = std::string("SELECT ") + kInstitutionCols +
                          " FROM auth_institution WHERE tenant_id=? AND (? IS NULL OR state=?) ORDER BY applied_at, id";
  auto rs = c.query(sql, {tenant(), opt(state), opt(state)});
  std::vector<InstitutionRow> out;
  for (std::size_t r = 0; r < rs.size(); ++r) out.push_back(institution_row(rs, r));
  return out;
}

void AuthStore::update_institution(Connection& c, const InstitutionRow& r) {
  Times t;
  c.query(
      "UPDATE auth_institution SET name=?, state=?, details=?, decided_at=?, decided_by=?, ended_at=?, ended_by=? "
      "WHERE tenant_id=? AND id=?",
      {text(r.name), text(r.state), text(r.details), t.at(r.decided_at), opt(r.decided_by), t.at(r.ended_at),
       opt(r.ended_by), tenant(), text(r.id)});
}

// --- accounts -------------------------------------------------------------------------

void AuthStore::insert_account(Connection& c, const AccountRow& a) {
  Times t;
  c.query(
      "INSERT INTO auth_account (tenant_id, id, name, role, institution_id, fhir_user, state, password_hash, "
      "password_initial, password_set_at, totp_secret, totp_last_step, admin_right, details, created_at, created_by, "
      "issued_at, issued_by, ended_at, ended_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
      {tenant(),
       text(a.id),
       text(a.name),
       text(a.role),
       opt(a.institution_id),
       opt(a.fhir_user),
       text(a.state),
       opt(a.password_hash),
       flag(a.password_initial),
       t.at(a.password_set_at),
       opt(a.totp_secret),
       std::int64_t{a.totp_last_step},
       flag(a.admin_right),
       text(a.details),
       t.at(a.created_at),
       opt(a.created_by),
       t.at(a.issued_at),
       opt(a.issued_by),
       t.at(a.ended_at),
       opt(a.ended_by)});
}

std::optional<AccountRow> AuthStore::account(Connection& c, const std::string& id, bool for_update) {
  const std::string sql = std::string("SELECT ") + kAccountCols + " FROM auth_account WHERE tenant_id=? AND id=?" +
                          (for_update ? " FOR UPDATE" : "");
  auto rs = c.query(sql, {tenant(), text(id)});
  if (rs.empty()) return std::nullopt;
  return account_row(rs, 0);
}

std::vector<AccountRow> AuthStore::accounts(Connection& c, const std::string& role, const std::string& institution_id,
                                            const std::string& state) {
  const std::string sql = std::string("SELECT ") + kAccountCols +
                          " FROM auth_account WHERE tenant_id=? AND (? IS NULL OR role=?) AND (? IS NULL OR "
                          "institution_id=?) AND (? IS NULL OR state=?) ORDER BY created_at, id";
  auto rs =
      c.query(sql, {tenant(), opt(role), opt(role), opt(institution_id), opt(institution_id), opt(state), opt(state)});
  std::vector<AccountRow> out;
  for (std::size_t r = 0; r < rs.size(); ++r) out.push_back(account_row(rs, r));
  return out;
}

void AuthStore::update_account(Connection& c, const AccountRow& a) {
  Times t;
  c.query(
      "UPDATE auth_account SET name=?, role=?, institution_id=?, fhir_user=?, state=?, password_hash=?, "
      "password_initial=?, password_set_at=?, totp_secret=?, totp_last_step=?, admin_right=?, details=?, "
      "issued_at=?, issued_by=?, ended_at=?, ended_by=? WHERE tenant_id=? AND id=?",
      {text(a.name), text(a.role), opt(a.institution_id), opt(a.fhir_user), text(a.state), opt(a.password_hash),
       flag(a.password_initial), t.at(a.password_set_at), opt(a.totp_secret), std::int64_t{a.totp_last_step},
       flag(a.admin_right), text(a.details), t.at(a.issued_at), opt(a.issued_by), t.at(a.ended_at), opt(a.ended_by),
       tenant(), text(a.id)});
}

std::vector<std::string> AuthStore::admin_holders(Connection& c) {
  auto rs = c.query("SELECT id FROM auth_account WHERE tenant_id=? AND admin_right=1 AND state='active'", {tenant()});
  std::vector<std::string> out;
  for (std::size_t r = 0; r < rs.size(); ++r) out.push_back(rs.take(r, 0));
  return out;
}

void AuthStore::lock(Connection& c, const std::string& name) {
  c.query("INSERT IGNORE INTO auth_lock (tenant_id, name, n) VALUES (?,?,0)", {tenant(), text(name)});
  c.query("UPDATE auth_lock SET n=n+1 WHERE tenant_id=? AND name=?", {tenant(), text(name)});
}

// --- admin grants ---------------------------------------------------------------------

std::int64_t AuthStore::insert_admin_grant(Connection& c, const AdminGrantRow& g) {
  Times t;
  auto rs = c.query(
      "INSERT INTO auth_admin_grant (tenant_id, account_id, state, reason, requested_at, requested_by, decided_at, "
      "decided_by) VALUES (?,?,?,?,?,?,?,?)",
      {tenant(), text(g.account_id), text(g.state), text(g.reason), t.at(g.requested_at), text(g.requested_by),
       t.at(g.decided_at), opt(g.decided_by)});
  return static_cast<std::int64_t>(rs.insert_id);
}

std::optional<AdminGrantRow> AuthStore::admin_grant(Connection& c, std::int64_t pk, bool for_update) {
  const std::string sql = std::string("SELECT ") + kGrantCols + " FROM auth_admin_grant WHERE tenant_id=? AND pk=?" +
                          (for_update ? " FOR UPDATE" : "");
  auto rs = c.query(sql, {tenant(), pk});
  if (rs.empty()) return std::nullopt;
  return grant_row(rs, 0);
}

std::vector<AdminGrantRow> AuthStore::admin_grants(Connection& c, const std::string& state) {
  const std::string sql = std::string("SELECT ") + kGrantCols +
                          " FROM auth_admin_grant WHERE tenant_id=? AND (? IS NULL OR state=?) ORDER BY pk";
  auto rs = c.query(sql, {tenant(), opt(state), opt(state)});
  std::vector<AdminGrantRow> out;
  for (std::size_t r = 0; r < rs.size(); ++r) out.push_back(grant_row(rs, r));
  return out;
}

void AuthStore::update_admin_grant(Connection& c, const AdminGrantRow& g) {
  Times t;
  c.query("UPDATE auth_admin_grant SET state=?, decided_at=?, decided_by=? WHERE tenant_id=? AND pk=?",
          {text(g.state), t.at(g.decided_at), opt(g.decided_by), tenant(), g.pk});
}

// --- proxies --------------------------------------------------------------------------

void AuthStore::upsert_proxy(Connection& c, const ProxyRow& p) {
  Times t;
  c.query(
      "INSERT INTO auth_proxy (tenant_id, account_id, patient_id, relationship, started_at, ended_at) "
      "VALUES (?,?,?,?,?,?) ON DUPLICATE KEY UPDATE relationship=VALUES(relationship), "
      "started_at=VALUES(started_at), ended_at=VALUES(ended_at)",
      {tenant(), text(p.account_id), text(p.patient_id), text(p.relationship), t.at(p.started_at), t.at(p.ended_at)});
}

std::vector<ProxyRow> AuthStore::proxies(Connection& c, const std::string& account_id) {
  auto rs = c.query(
      "SELECT account_id, patient_id, relationship, started_at, ended_at FROM auth_proxy "
      "WHERE tenant_id=? AND account_id=? ORDER BY started_at, patient_id",
      {tenant(), text(account_id)});
  std::vector<ProxyRow> out;
  for (std::size_t r = 0; r < rs.size(); ++r) {
    ProxyRow p;
    p.account_id = rs.take(r, 0);
    p.patient_id = rs.take(r, 1);
    p.relationship = rs.take(r, 2);
    p.started_at = ms(rs, r, 3);
    p.ended_at = opt_ms(rs, r, 4);
    out.push_back(std::move(p));
  }
  return out;
}

// --- clients --------------------------------------------------------------------------

void AuthStore::insert_client(Connection& c, const ClientRow& r) {
  Times t;
  c.query(
      "INSERT INTO auth_client (tenant_id, client_id, terminal_id, name, kind, institution_id, state, secret_hash, "
      "details, created_at, created_by, ended_at, ended_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
      {tenant(), text(r.client_id), text(r.terminal_id), text(r.name), text(r.kind), opt(r.institution_id),
       text(r.state), opt(r.secret_hash), text(r.details), t.at(r.created_at), text(r.created_by), t.at(r.ended_at),
       opt(r.ended_by)});
}

std::optional<ClientRow> AuthStore::client(Connection& c, const std::string& client_id, bool for_update) {
  const std::string sql = std::string("SELECT ") + kClientCols + " FROM auth_client WHERE tenant_id=? AND client_id=?" +
                          (for_update ? " FOR UPDATE" : "");
  auto rs = c.query(sql, {tenant(), text(client_id)});
  if (rs.empty()) return std::nullopt;
  return client_row(rs, 0);
}

std::vector<ClientRow> AuthStore::clients(Connection& c, const std::string& institution_id) {
  const std::string sql = std::string("SELECT ") + kClientCols +
                          " FROM auth_client WHERE tenant_id=? AND (? IS NULL OR institution_id=?) "
                          "ORDER BY created_at, client_id";
  auto rs = c.query(sql, {tenant(), opt(institution_id), opt(institution_id)});
  std::vector<ClientRow> out;
  for (std::size_t r = 0; r < rs.size(); ++r) out.push_back(client_row(rs, r));
  return out;
}

void AuthStore::update_client(Connection& c, const ClientRow& r) {
  Times t;
  c.query(
      "UPDATE auth_client SET name=?, state=?, secret_hash=?, details=?, ended_at=?, ended_by=? "
      "WHERE tenant_id=? AND client_id=?",
      {text(r.name), text(r.state), opt(r.secret_hash), text(r.details), t.at(r.ended_at), opt(r.ended_by), tenant(),
       text(r.client_id)});
}

// --- tokens ---------------------------------------------------------------------------

void AuthStore::insert_token(Connection& c, const AuthTokenRow& r) {
  Times t;
  c.query(
      "INSERT INTO auth_token (token_hash, tenant_id, kind, account_id, client_id, scope, patient_id, family, "
      "created_at, expires_at, last_used, revoked) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
      {text(r.token_hash), tenant(), text(r.kind), opt(r.account_id), opt(r.client_id), text(r.scope),
       opt(r.patient_id), opt(r.family), t.at(r.created_at), t.at(r.expires_at), t.at(r.last_used), flag(r.revoked)});
}

std::optional<AuthTokenRow> AuthStore::token(Connection& c, const std::string& hash, bool for_update) {
  const std::string sql = std::string(
                              "SELECT token_hash, kind, account_id, client_id, scope, patient_id, family, created_at, "
                              "expires_at, last_used, revoked FROM auth_token WHERE token_hash=? AND tenant_id=?") +
                          (for_update ? " FOR UPDATE" : "");
  auto rs = c.query(sql, {text(hash), tenant()});
  if (rs.empty()) return std::nullopt;
  AuthTokenRow t;
  t.token_hash = rs.take(0, 0);
  t.kind = rs.take(0, 1);
  t.account_id = rs.take(0, 2);
  t.client_id = rs.take(0, 3);
  t.scope = rs.take(0, 4);
  t.patient_id = rs.take(0, 5);
  t.family = rs.take(0, 6);
  t.created_at = ms(rs, 0, 7);
  t.expires_at = ms(rs, 0, 8);
  t.last_used = ms(rs, 0, 9);
  t.revoked = rs.integer(0, 10) != 0;
  return t;
}

std::optional<TokenContext> AuthStore::token_context(Connection& c, const std::string& hash) {
  auto rs = c.query(
      "SELECT t.kind, t.account_id, t.client_id, t.scope, t.patient_id, t.family, t.created_at, t.expires_at, "
      "t.last_used, t.revoked, a.state, a.role, a.name, a.institution_id, a.fhir_user, a.admin_right, "
      "a.password_initial, a.totp_secret IS NOT NULL, ia.state, c.state, c.terminal_id, ic.state, "
      "p.ended_at IS NULL AND p.started_at IS NOT NULL, a.details, ia.details, c.institution_id, ic.details "
      "FROM auth_token t "
      "LEFT JOIN auth_account a ON a.tenant_id=t.tenant_id AND a.id=t.account_id "
      "LEFT JOIN auth_institution ia ON ia.tenant_id=t.tenant_id AND ia.id=a.institution_id "
      "LEFT JOIN auth_client c ON c.tenant_id=t.tenant_id AND c.client_id=t.client_id "
      "LEFT JOIN auth_institution ic ON ic.tenant_id=t.tenant_id AND ic.id=c.institution_id "
      "LEFT JOIN auth_proxy p ON p.tenant_id=t.tenant_id AND p.account_id=t.account_id AND p.patient_id=t.patient_id "
      "WHERE t.token_hash=? AND t.tenant_id=?",
      {text(hash), tenant()});
  if (rs.empty()) return std::nullopt;
  TokenContext x;
  x.token.token_hash = hash;
  x.token.kind = rs.take(0, 0);
  x.token.account_id = rs.take(0, 1);
  x.token.client_id = rs.take(0, 2);
  x.token.scope = rs.take(0, 3);
  x.token.patient_id = rs.take(0, 4);
  x.token.family = rs.take(0, 5);
  x.token.created_at = ms(rs, 0, 6);
  x.token.expires_at = ms(rs, 0, 7);
  x.token.last_used = ms(rs, 0, 8);
  x.token.revoked = rs.integer(0, 9) != 0;
  x.account_state = rs.take(0, 10);
  x.role = rs.take(0, 11);
  x.name = rs.take(0, 12);
  x.institution_id = rs.take(0, 13);
  x.fhir_user = rs.take(0, 14);
  x.admin_right = !rs.is_null(0, 15) && rs.integer(0, 15) != 0;
  x.password_initial = !rs.is_null(0, 16) && rs.integer(0, 16) != 0;
  x.has_totp = !rs.is_null(0, 17) && rs.integer(0, 17) != 0;
  x.account_institution_state = rs.take(0, 18);
  x.client_state = rs.take(0, 19);
  x.terminal_id = rs.take(0, 20);
  x.client_institution_state = rs.take(0, 21);
  x.proxy_active = !rs.is_null(0, 22) && rs.integer(0, 22) != 0;
  x.account_details = rs.take(0, 23);
  x.account_institution_details = rs.take(0, 24);
  x.client_institution_id = rs.take(0, 25);
  x.client_institution_details = rs.take(0, 26);
  return x;
}

void AuthStore::revoke_token(Connection& c, const std::string& hash) {
  c.query("UPDATE auth_token SET revoked=1 WHERE token_hash=? AND tenant_id=?", {text(hash), tenant()});
}

void AuthStore::revoke_family(Connection& c, const std::string& family) {
  c.query("UPDATE auth_token SET revoked=1 WHERE family=? AND tenant_id=?", {text(family), tenant()});
}

void AuthStore::revoke_account_tokens(Connection& c, const std::string& account_id) {
  c.query("UPDATE auth_token SET revoked=1 WHERE tenant_id=? AND account_id=? AND revoked=0",
          {tenant(), text(account_id)});
}

void AuthStore::revoke_patient_tokens(Connection& c, const std::string& account_id, const std::string& patient_id) {
  c.query("UPDATE auth_token SET revoked=1 WHERE tenant_id=? AND account_id=? AND patient_id=? AND revoked=0",
          {tenant(), text(account_id), text(patient_id)});
}

void AuthStore::revoke_account_tokens_except(Connection& c, const std::string& account_id,
                                             const std::string& keep_hash) {
  c.query("UPDATE auth_token SET revoked=1 WHERE tenant_id=? AND account_id=? AND revoked=0 AND token_hash<>?",
          {tenant(), text(account_id), text(keep_hash)});
}

void AuthStore::revoke_client_tokens(Connection& c, const std::string& client_id) {
  c.query("UPDATE auth_token SET revoked=1 WHERE tenant_id=? AND client_id=? AND revoked=0",
          {tenant(), text(client_id)});
}

void AuthStore::touch_token(Connection& c, const std::string& hash, std::int64_t last_used) {
  Times t;
  c.query("UPDATE auth_token SET last_used=GREATEST(last_used, ?) WHERE token_hash=? AND tenant_id=?",
          {t.at(last_used), text(hash), tenant()});
}

std::uint64_t AuthStore::purge_expired(Connection& c, std::int64_t now) {
  Times t;
  auto a = c.query("DELETE FROM auth_token WHERE expires_at < ? LIMIT 10000", {t.at(now)});
  auto b = c.query("DELETE FROM auth_code WHERE expires_at < ? LIMIT 10000", {t.at(now)});
  auto d = c.query("DELETE FROM auth_jti WHERE expires_at < ? LIMIT 10000", {t.at(now)});
  return a.affected_rows + b.affected_rows + d.affected_rows;
}

// --- codes, assertion ids, signing key ------------------------------------------------

void AuthStore::insert_code(Connection& c, const CodeRow& r) {
  Times t;
  c.query(
      "INSERT INTO auth_code (code_hash, tenant_id, client_id, account_id, redirect_uri, scope, challenge, "
      "patient_id, nonce, session_hash, created_at, expires_at, used) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0)",
      {text(r.code_hash), tenant(), text(r.client_id), text(r.account_id), text(r.redirect_uri), text(r.scope),
       text(r.challenge), opt(r.patient_id), opt(r.nonce), text(r.session_hash), t.at(r.created_at),
       t.at(r.expires_at)});
}

std::optional<CodeRow> AuthStore::code_for_update(Connection& c, const std::string& hash) {
  auto rs = c.query(
      "SELECT code_hash, client_id, account_id, redirect_uri, scope, challenge, patient_id, nonce, session_hash, "
      "created_at, expires_at, used FROM auth_code WHERE code_hash=? AND tenant_id=? FOR UPDATE",
      {text(hash), tenant()});
  if (rs.empty()) return std::nullopt;
  CodeRow r;
  r.code_hash = rs.take(0, 0);
  r.client_id = rs.take(0, 1);
  r.account_id = rs.take(0, 2);
  r.redirect_uri = rs.take(0, 3);
  r.scope = rs.take(0, 4);
  r.challenge = rs.take(0, 5);
  r.patient_id = rs.take(0, 6);
  r.nonce = rs.take(0, 7);
  r.session_hash = rs.take(0, 8);
  r.created_at = ms(rs, 0, 9);
  r.expires_at = ms(rs, 0, 10);
  r.used = rs.integer(0, 11) != 0;
  return r;
}

void AuthStore::mark_code_used(Connection& c, const std::string& hash) {
  c.query("UPDATE auth_code SET used=1 WHERE code_hash=? AND tenant_id=?", {text(hash), tenant()});
}

bool AuthStore::remember_jti(Connection& c, const std::string& client_id, const std::string& jti_hash,
                             std::int64_t expires_at) {
  Times t;
  try {
    c.query("INSERT INTO auth_jti (tenant_id, client_id, jti_hash, expires_at) VALUES (?,?,?,?)",
            {tenant(), text(client_id), text(jti_hash), t.at(expires_at)});
    return true;
  } catch (const DbError& e) {
    if (e.duplicate_key()) return false;
    throw;
  }
}

std::optional<std::pair<std::string, std::string>> AuthStore::signing_key(Connection& c) {
  auto rs = c.query("SELECT kid, private_pem FROM auth_signing_key WHERE tenant_id=? ORDER BY created_at DESC LIMIT 1",
                    {tenant()});
  if (rs.empty()) return std::nullopt;
  return std::make_pair(rs.take(0, 0), rs.take(0, 1));
}

void AuthStore::insert_signing_key(Connection& c, const std::string& kid, const std::string& pem, std::int64_t now) {
  Times t;
  c.query("INSERT INTO auth_signing_key (tenant_id, kid, private_pem, created_at) VALUES (?,?,?,?)",
          {tenant(), text(kid), text(pem), t.at(now)});
}

// --- incidents ------------------------------------------------------------------------

namespace {
constexpr const char* kIncidentColumns =
    "pk, level, source, rule, state, action, account_id, client_id, terminal_id, institution_id, detail, detected_at, "
    "closed_at, closed_by, cause, measures";

IncidentRow incident_from(ResultSet& rs, std::size_t i) {
  IncidentRow r;
  r.pk = rs.integer(i, 0);
  r.level = static_cast<int>(rs.integer(i, 1));
  r.source = rs.take(i, 2);
  r.rule = rs.take(i, 3);
  r.state = rs.take(i, 4);
  r.action = rs.take(i, 5);
  r.account_id = rs.take(i, 6);
  r.client_id = rs.take(i, 7);
  r.terminal_id = rs.take(i, 8);
  r.institution_id = rs.take(i, 9);
  r.detail = rs.take(i, 10);
  r.detected_at = ms(rs, i, 11);
  if (!rs.is_null(i, 12)) r.closed_at = ms(rs, i, 12);
  r.closed_by = rs.take(i, 13);
  r.cause = rs.take(i, 14);
  r.measures = rs.take(i, 15);
  return r;
}
}  // namespace

std::int64_t AuthStore::insert_incident(Connection& c, const IncidentRow& r) {
  Times t;
  auto rs = c.query(
      "INSERT INTO incident (tenant_id, level, source, rule, state, action, account_id, client_id, terminal_id, "
      "institution_id, detail, detected_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
      {tenant(), std::int64_t{r.level}, text(r.source), text(r.rule), text(r.state), text(r.action), opt(r.account_id),
       opt(r.client_id), opt(r.terminal_id), opt(r.institution_id), text(r.detail), t.at(r.detected_at)});
  return static_cast<std::int64_t>(rs.insert_id);
}

std::optional<IncidentRow> AuthStore::incident(Connection& c, std::int64_t pk, bool for_update) {
  auto rs = c.query(std::string("SELECT ") + kIncidentColumns + " FROM incident WHERE tenant_id=? AND pk=?" +
                        (for_update ? " FOR UPDATE" : ""),
                    {tenant(), pk});
  if (rs.empty()) return std::nullopt;
  return incident_from(rs, 0);
}

std::vector<IncidentRow> AuthStore::incidents(Connection& c, const std::string& state, unsigned limit) {
  auto rs = state.empty()
                ? c.query(std::string("SELECT ") + kIncidentColumns +
                              " FROM incident WHERE tenant_id=? ORDER BY pk DESC LIMIT ?",
                          {tenant(), std::int64_t{limit}})
                : c.query(std::string("SELECT ") + kIncidentColumns +
                              " FROM incident WHERE tenant_id=? AND state=? ORDER BY pk DESC LIMIT ?",
                          {tenant(), text(state), std::int64_t{limit}});
  std::vector<IncidentRow> out;
  for (std::size_t i = 0; i < rs.size(); ++i) out.push_back(incident_from(rs, i));
  return out;
}

std::vector<IncidentRow> AuthStore::incidents_between(Connection& c, std::int64_t from, std::int64_t to,
                                                      const std::string& institution) {
  Times t;
  auto rs = c.query(std::string("SELECT ") + kIncidentColumns +
                        " FROM incident WHERE tenant_id=? AND detected_at>=? AND detected_at<? AND (?='' OR "
                        "institution_id=?) ORDER BY pk LIMIT 10000",
                    {tenant(), t.at(from), t.at(to), text(institution), text(institution)});
  std::vector<IncidentRow> out;
  for (std::size_t i = 0; i < rs.size(); ++i) out.push_back(incident_from(rs, i));
  return out;
}

void AuthStore::close_incident(Connection& c, const IncidentRow& r) {
  Times t;
  c.query("UPDATE incident SET state=?, closed_at=?, closed_by=?, cause=?, measures=? WHERE tenant_id=? AND pk=?",
          {text(r.state), t.at(r.closed_at), opt(r.closed_by), opt(r.cause), opt(r.measures), tenant(), r.pk});
}

}  // namespace kasama::storage
