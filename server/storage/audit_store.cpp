#include "server/storage/audit_store.hpp"

namespace kasama::storage {

namespace {

constexpr const char* kCols =
    "id, recorded, request_id, interaction, action, method, path, status, outcome, denied, account_id, role, "
    "institution_id, fhir_user, client_id, terminal_id, peer, patient_context, patients, entities, detail";

Param opt(const std::string& s) {
  return s.empty() ? Param(nullptr) : Param(std::string_view(s));
}

AuditRow row_at(ResultSet& rs, std::size_t r) {
  AuditRow a;
  a.id = static_cast<std::uint64_t>(rs.integer(r, 0));
  a.recorded = rs.integer(r, 1);
  a.request_id = rs.take(r, 2);
  a.interaction = rs.take(r, 3);
  a.action = rs.take(r, 4);
  a.method = rs.take(r, 5);
  a.path = rs.take(r, 6);
  a.status = static_cast<int>(rs.integer(r, 7));
  a.outcome = static_cast<int>(rs.integer(r, 8));
  a.denied = rs.integer(r, 9) != 0;
  a.account_id = rs.take(r, 10);
  a.role = rs.take(r, 11);
  a.institution_id = rs.take(r, 12);
  a.fhir_user = rs.take(r, 13);
  a.client_id = rs.take(r, 14);
  a.terminal_id = rs.take(r, 15);
  a.peer = rs.take(r, 16);
  a.patient_context = rs.take(r, 17);
  a.patients = rs.take(r, 18);
  a.entities = rs.take(r, 19);
  a.detail = rs.take(r, 20);
  return a;
}

std::vector<AuditRow> rows_of(ResultSet rs) {
  std::vector<AuditRow> out;
  out.reserve(rs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) out.push_back(row_at(rs, i));
  return out;
}

// The WHERE clause of an auditor's search; values bound.
std::string where(const AuditQuery& q, unsigned tenant, std::vector<Param>& params, std::vector<std::string>& keep) {
  std::string w = "tenant_id = " + std::to_string(tenant);
  const auto any_of = [&](const char* column, const std::vector<std::string>& values) {
    if (values.empty()) return;
    w += std::string(" AND ") + column + " IN (";
    for (std::size_t i = 0; i < values.size(); ++i) {
      w += i ? ",?" : "?";
      params.emplace_back(std::string_view(values[i]));
    }
    w += ')';
  };
  const auto equals = [&](const char* column, const std::string& value) {
    if (value.empty()) return;
    w += std::string(" AND ") + column + " = ?";
    params.emplace_back(std::string_view(value));
  };
  if (q.from) {
    w += " AND recorded >= ?";
    params.emplace_back(*q.from);
  }
  if (q.to) {
    w += " AND recorded < ?";
    params.emplace_back(*q.to);
  }
  any_of("account_id", q.accounts);
  any_of("interaction", q.interactions);
  any_of("action", q.actions);
  if (!q.outcomes.empty()) {
    w += " AND outcome IN (";
    for (std::size_t i = 0; i < q.outcomes.size(); ++i) w += (i ? "," : "") + std::to_string(q.outcomes[i]);
    w += ')';
  }
  equals("terminal_id", q.terminal);
  equals("client_id", q.client);
  equals("peer", q.address);
  equals("institution_id", q.institution);
  equals("request_id", q.request_id);
  if (q.denied) w += *q.denied ? " AND denied = 1" : " AND denied = 0";
  // Space-separated lists: a whole-word match, padded on both sides.
  const auto word = [&](const char* column, const std::string& value) {
    if (value.empty()) return;
    w += std::string(" AND INSTR(CONCAT(' ', ") + column + ", ' '), ?) > 0";
    keep.push_back(" " + value + " ");
    params.emplace_back(std::string_view(keep.back()));
  };
  keep.reserve(2);  // the views above stay valid: at most two strings, reserved before
  word("patients", q.patient);
  word("entities", q.entity);
  if (q.id) {
    w += " AND id = ?";
    params.emplace_back(q.id);
  }
  if (q.before_id) {
    w += " AND id < ?";
    params.emplace_back(q.before_id);
  }
  return w;
}

}  // namespace

std::uint64_t AuditStore::insert(Connection& c, const AuditRow& r) {
  auto rs = c.query(
      "INSERT INTO audit_event (tenant_id, recorded, request_id, interaction, action, method, path, status, outcome, "
      "denied, account_id, role, institution_id, fhir_user, client_id, terminal_id, peer, patient_context, patients, "
      "entities, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
      {std::int64_t{tenant_}, r.recorded, std::string_view(r.request_id), std::string_view(r.interaction),
       std::string_view(r.action), std::string_view(r.method), std::string_view(r.path), std::int64_t{r.status},
       std::int64_t{r.outcome}, std::int64_t{r.denied ? 1 : 0}, opt(r.account_id), opt(r.role),
       opt(r.institution_id), opt(r.fhir_user), opt(r.client_id), opt(r.terminal_id), opt(r.peer),
       opt(r.patient_context), std::string_view(r.patients), std::string_view(r.entities), opt(r.detail)});
  return rs.insert_id;
}

void AuditStore::insert_batch(Connection& c, const std::vector<const AuditRow*>& rows) {
  if (rows.empty()) return;
  std::string sql =
      "INSERT INTO audit_event (tenant_id, recorded, request_id, interaction, action, method, path, status, outcome, "
      "denied, account_id, role, institution_id, fhir_user, client_id, terminal_id, peer, patient_context, patients, "
      "entities, detail) VALUES ";
  sql.reserve(sql.size() + rows.size() * 320);
  const std::string tenant = std::to_string(tenant_);
  const auto nullable = [&](const std::string& s) { return s.empty() ? std::string("NULL") : c.quote(s); };
  bool first = true;
  for (const AuditRow* r : rows) {
    if (!first) sql += ',';
    first = false;
    sql += '(';
    sql += tenant + ',' + std::to_string(r->recorded) + ',' + c.quote(r->request_id) + ',' + c.quote(r->interaction) +
           ',' + c.quote(r->action) + ',' + c.quote(r->method) + ',' + c.quote(r->path) + ',' +
           std::to_string(r->status) + ',' + std::to_string(r->outcome) + ',' + (r->denied ? "1" : "0") + ',' +
           nullable(r->account_id) + ',' + nullable(r->role) + ',' + nullable(r->institution_id) + ',' +
           nullable(r->fhir_user) + ',' + nullable(r->client_id) + ',' + nullable(r->terminal_id) + ',' +
           nullable(r->peer) + ',' + nullable(r->patient_context) + ',' + c.quote(r->patients) + ',' +
           c.quote(r->entities) + ',' + nullable(r->detail);
    sql += ')';
  }
  c.execute_text(sql);
}

std::uint64_t AuditStore::max_id(Connection& c) {
  auto rs = c.query("SELECT COALESCE(MAX(id), 0) FROM audit_event");
  return rs.empty() ? 0 : static_cast<std::uint64_t>(rs.integer(0, 0));
}

std::vector<AuditRow> AuditStore::range(Connection& c, std::uint64_t after, std::uint64_t upto, std::size_t limit) {
  return rows_of(c.query(std::string("SELECT ") + kCols + " FROM audit_event WHERE id > ? AND id <= ? ORDER BY id LIMIT " +
                             std::to_string(limit),
                         {after, upto}));
}

std::optional<AuditRow> AuditStore::by_id(Connection& c, std::uint64_t id) {
  auto rows = rows_of(c.query(std::string("SELECT ") + kCols + " FROM audit_event WHERE id = ? AND tenant_id = ?",
                              {id, std::int64_t{tenant_}}));
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

std::vector<AuditRow> AuditStore::search(Connection& c, const AuditQuery& q) {
  std::vector<Param> params;
  std::vector<std::string> keep;
  const std::string w = where(q, tenant_, params, keep);
  return rows_of(c.query(std::string("SELECT ") + kCols + " FROM audit_event WHERE " + w + " ORDER BY id DESC LIMIT " +
                             std::to_string(q.limit),
                         params));
}

std::uint64_t AuditStore::count(Connection& c, const AuditQuery& q) {
  std::vector<Param> params;
  std::vector<std::string> keep;
  AuditQuery all = q;
  all.before_id = 0;
  const std::string w = where(all, tenant_, params, keep);
  auto rs = c.query("SELECT COUNT(*) FROM audit_event WHERE " + w, params);
  return rs.empty() ? 0 : static_cast<std::uint64_t>(rs.integer(0, 0));
}

std::pair<std::uint64_t, std::uint64_t> AuditStore::loaded_position(Connection& c) {
  auto rs = c.query(
      "SELECT file_no, end_offset FROM audit_loaded WHERE tenant_id = ? ORDER BY file_no DESC, end_offset DESC LIMIT 1",
      {std::int64_t{tenant_}});
  if (rs.empty()) return {0, 0};
  return {static_cast<std::uint64_t>(rs.integer(0, 0)), static_cast<std::uint64_t>(rs.integer(0, 1))};
}

void AuditStore::insert_loaded_position(Connection& c, std::uint64_t file_no, std::uint64_t end_offset,
                                        std::int64_t at) {
  c.query("INSERT IGNORE INTO audit_loaded (tenant_id, file_no, end_offset, loaded_at) VALUES (?, ?, ?, ?)",
          {std::int64_t{tenant_}, file_no, end_offset, at});
}

std::optional<SealRow> AuditStore::last_seal(Connection& c) {
  auto rs = c.query("SELECT event_id, prev_id, hash, sealed_at FROM audit_seal ORDER BY event_id DESC LIMIT 1");
  if (rs.empty()) return std::nullopt;
  SealRow s;
  s.event_id = static_cast<std::uint64_t>(rs.integer(0, 0));
  s.prev_id = static_cast<std::uint64_t>(rs.integer(0, 1));
  s.hash = rs.take(0, 2);
  s.sealed_at = rs.integer(0, 3);
  return s;
}

void AuditStore::insert_seals(Connection& c, const std::vector<SealRow>& seals) {
  if (seals.empty()) return;
  std::string sql = "INSERT INTO audit_seal (event_id, tenant_id, prev_id, hash, sealed_at) VALUES ";
  const std::string tenant = std::to_string(tenant_);
  for (std::size_t i = 0; i < seals.size(); ++i) {
    const SealRow& s = seals[i];
    if (i) sql += ',';
    sql += '(' + std::to_string(s.event_id) + ',' + tenant + ',' + std::to_string(s.prev_id) + ',' + c.quote(s.hash) +
           ',' + std::to_string(s.sealed_at) + ')';
  }
  c.execute_text(sql);
}

std::vector<SealRow> AuditStore::seals(Connection& c, std::uint64_t after, std::size_t limit) {
  auto rs = c.query("SELECT event_id, prev_id, hash, sealed_at FROM audit_seal WHERE event_id > ? ORDER BY event_id LIMIT " +
                        std::to_string(limit),
                    {after});
  std::vector<SealRow> out;
  out.reserve(rs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) {
    SealRow s;
    s.event_id = static_cast<std::uint64_t>(rs.integer(i, 0));
    s.prev_id = static_cast<std::uint64_t>(rs.integer(i, 1));
    s.hash = rs.take(i, 2);
    s.sealed_at = rs.integer(i, 3);
    out.push_back(std::move(s));
  }
  return out;
}

std::uint64_t AuditStore::purge(Connection& c, std::int64_t before) {
  // The seal of the last purged event stays: it anchors the chain that follows.
  auto last = c.query("SELECT COALESCE(MAX(id), 0) FROM audit_event WHERE tenant_id = ? AND recorded < ?",
                      {std::int64_t{tenant_}, before});
  const auto upto = static_cast<std::uint64_t>(last.integer(0, 0));
  if (upto == 0) return 0;
  auto removed = c.query("DELETE FROM audit_event WHERE tenant_id = ? AND id <= ?", {std::int64_t{tenant_}, upto});
  c.query("DELETE FROM audit_seal WHERE tenant_id = ? AND event_id < ?", {std::int64_t{tenant_}, upto});
  return removed.affected_rows;
}

}  // namespace kasama::storage
