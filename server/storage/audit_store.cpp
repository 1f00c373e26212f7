#include "server/storage/audit_store.hpp"

namespace kasama::storage {

namespace {

constexpr const char* kCols =
    "id, tenant_id, recorded, request_id, interaction, action, method, path, status, outcome, denied, account_id, "
    "role, "
    "institution_id, fhir_user, client_id, terminal_id, peer, patient_context, patients, entities, detail";

Param opt(const std::string& s) {
  return s.empty() ? Param(nullptr) : Param(std::string_view(s));
}

AuditRow row_at(ResultSet& rs, std::size_t r) {
  AuditRow a;
  a.id = static_cast<std::uint64_t>(rs.integer(r, 0));
  a.tenant = static_cast<unsigned>(rs.integer(r, 1));
  a.recorded = rs.integer(r, 2);
  a.request_id = rs.take(r, 3);
  a.interaction = rs.take(r, 4);
  a.action = rs.take(r, 5);
  a.method = rs.take(r, 6);
  a.path = rs.take(r, 7);
  a.status = static_cast<int>(rs.integer(r, 8));
  a.outcome = static_cast<int>(rs.integer(r, 9));
  a.denied = rs.integer(r, 10) != 0;
  a.account_id = rs.take(r, 11);
  a.role = rs.take(r, 12);
  a.institution_id = rs.take(r, 13);
  a.fhir_user = rs.take(r, 14);
  a.client_id = rs.take(r, 15);
  a.terminal_id = rs.take(r, 16);
  a.peer = rs.take(r, 17);
  a.patient_context = rs.take(r, 18);
  a.patients = rs.take(r, 19);
  a.entities = rs.take(r, 20);
  a.detail = rs.take(r, 21);
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
      {std::int64_t{tenant_},
       r.recorded,
       std::string_view(r.request_id),
       std::string_view(r.interaction),
       std::string_view(r.action),
       std::string_view(r.method),
       std::string_view(r.path),
       std::int64_t{r.status},
       std::int64_t{r.outcome},
       std::int64_t{r.denied ? 1 : 0},
       opt(r.account_id),
       opt(r.role),
       opt(r.institution_id),
       opt(r.fhir_user),
       opt(r.client_id),
       opt(r.terminal_id),
       opt(r.peer),
       opt(r.patient_context),
       std::string_view(r.patients),
       std::string_view(r.entities),
       opt(r.detail)});
  return rs.insert_id;
}

std::uint64_t AuditStore::insert_batch(Connection& c, const std::vector<const AuditRow*>& rows) {
  if (rows.empty()) return 0;
  std::string sql =
      "INSERT INTO audit_event (tenant_id, recorded, request_id, interaction, action, method, path, status, outcome, "
      "denied, account_id, role, institution_id, fhir_user, client_id, terminal_id, peer, patient_context, patients, "
      "entities, detail) VALUES ";
  sql.reserve(sql.size() + rows.size() * 320);
  const auto nullable = [&](const std::string& s) { return s.empty() ? std::string("NULL") : c.quote(s); };
  bool first = true;
  for (const AuditRow* r : rows) {
    if (!first) sql += ',';
    first = false;
    sql += '(';
    sql += std::to_string(r->tenant) + ',' + std::to_string(r->recorded) + ',' + c.quote(r->request_id) + ',' +
           c.quote(r->interaction) + ',' + c.quote(r->action) + ',' + c.quote(r->method) + ',' + c.quote(r->path) +
           ',' + std::to_string(r->status) + ',' + std::to_string(r->outcome) + ',' + (r->denied ? "1" : "0") + ',' +
           nullable(r->account_id) + ',' + nullable(r->role) + ',' + nullable(r->institution_id) + ',' +
           nullable(r->fhir_user) + ',' + nullable(r->client_id) + ',' + nullable(r->terminal_id) + ',' +
           nullable(r->peer) + ',' + nullable(r->patient_context) + ',' + c.quote(r->patients) + ',' +
           c.quote(r->entities) + ',' + nullable(r->detail);
    sql += ')';
  }
  return c.execute_text(sql).insert_id;
}

std::vector<std::uint64_t> AuditStore::ids(Connection& c, std::uint64_t after, std::uint64_t upto, std::size_t limit) {
  auto rs = c.query("SELECT id FROM audit_event WHERE id > ? AND id <= ? ORDER BY id LIMIT " + std::to_string(limit),
                    {after, upto});
  std::vector<std::uint64_t> out;
  out.reserve(rs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) out.push_back(static_cast<std::uint64_t>(rs.integer(i, 0)));
  return out;
}

std::vector<AuditRow> AuditStore::by_ids(Connection& c, const std::vector<std::uint64_t>& ids) {
  if (ids.empty()) return {};
  std::string in;
  for (std::uint64_t id : ids) {
    if (!in.empty()) in += ',';
    in += std::to_string(id);
  }
  return rows_of(
      c.execute_text(std::string("SELECT ") + kCols + " FROM audit_event WHERE id IN (" + in + ") ORDER BY id"));
}

std::uint64_t AuditStore::max_id(Connection& c) {
  auto rs = c.query("SELECT COALESCE(MAX(id), 0) FROM audit_event");
  return rs.empty() ? 0 : static_cast<std::uint64_t>(rs.integer(0, 0));
}

std::vector<AuditRow> AuditStore::range(Connection& c, std::uint64_t after, std::uint64_t upto, std::size_t limit) {
  return rows_of(c.query(std::string("SELECT ") + kCols +
                             " FROM audit_event WHERE id > ? AND id <= ? ORDER BY id LIMIT " + std::to_string(limit),
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

namespace {
constexpr const char* kSealCols = "last_id, first_id, prev_id, events, digests, hash, sealed_at";
std::vector<SealRow> seal_rows(ResultSet rs) {
  std::vector<SealRow> out;
  out.reserve(rs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) {
    SealRow s;
    s.last_id = static_cast<std::uint64_t>(rs.integer(i, 0));
    s.first_id = static_cast<std::uint64_t>(rs.integer(i, 1));
    s.prev_id = static_cast<std::uint64_t>(rs.integer(i, 2));
    s.events = static_cast<std::uint64_t>(rs.integer(i, 3));
    s.digests = rs.take(i, 4);
    s.hash = rs.take(i, 5);
    s.sealed_at = rs.integer(i, 6);
    out.push_back(std::move(s));
  }
  return out;
}
}  // namespace

std::optional<SealRow> AuditStore::last_seal(Connection& c) {
  auto rows = seal_rows(c.query(std::string("SELECT ") + kSealCols + " FROM audit_seal ORDER BY last_id DESC LIMIT 1"));
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

void AuditStore::insert_seal(Connection& c, const SealRow& s) {
  c.query(
      "INSERT INTO audit_seal (last_id, tenant_id, first_id, prev_id, events, digests, hash, sealed_at) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      {s.last_id, std::int64_t{tenant_}, s.first_id, s.prev_id, s.events, std::string_view(s.digests),
       std::string_view(s.hash), s.sealed_at});
}

std::vector<SealRow> AuditStore::seals(Connection& c, std::uint64_t after, std::size_t limit) {
  return seal_rows(c.query(std::string("SELECT ") + kSealCols +
                               " FROM audit_seal WHERE last_id > ? ORDER BY last_id LIMIT " + std::to_string(limit),
                           {after}));
}

std::uint64_t AuditStore::purge(Connection& c, std::int64_t before) {
  // The last block whose every event is older than the cut-off.
  auto young =
      c.query("SELECT MIN(id) FROM audit_event WHERE tenant_id = ? AND recorded >= ?", {std::int64_t{tenant_}, before});
  const std::uint64_t first_young = young.is_null(0, 0) ? UINT64_MAX : static_cast<std::uint64_t>(young.integer(0, 0));
  auto block = c.query("SELECT COALESCE(MAX(last_id), 0) FROM audit_seal WHERE tenant_id = ? AND last_id < ?",
                       {std::int64_t{tenant_}, first_young});
  const auto upto = static_cast<std::uint64_t>(block.integer(0, 0));
  if (upto == 0) return 0;
  auto removed = c.query("DELETE FROM audit_event WHERE tenant_id = ? AND id <= ?", {std::int64_t{tenant_}, upto});
  c.query("DELETE FROM audit_seal WHERE tenant_id = ? AND last_id < ?", {std::int64_t{tenant_}, upto});
  return removed.affected_rows;
}

}  // namespace kasama::storage
