#include "server/storage/resource_store.hpp"

#include "resources/fhir_time.hpp"
#include "resources/json.hpp"
#include "server/storage/hash.hpp"

#include <cstdio>

namespace kasama::storage {
namespace {

using resources::format_sql;
using resources::parse_sql;

std::int64_t ts(const std::string& sql_time) {
  return parse_sql(sql_time).value_or(0);
}

// idx_token.sys/val hold at most 512 characters: longer values are kept as a prefix and
// told apart by the hashes, which cover the whole value.
constexpr std::size_t kTokenColumnChars = 512;
std::string_view column_text(std::string_view s) {
  return resources::utf8_prefix(s, kTokenColumnChars);
}

StoredVersion version_from(ResultSet& rs, std::size_t r, const std::string& type, const std::string& id,
                           std::size_t category_col) {
  // columns: pk, version, last_updated, method, content; the category at category_col
  StoredVersion v;
  v.category = static_cast<std::uint8_t>(rs.integer(r, category_col));
  v.pk = static_cast<std::uint64_t>(rs.integer(r, 0));
  v.type = type;
  v.id = id;
  v.version = static_cast<std::uint32_t>(rs.integer(r, 1));
  v.last_updated = ts(rs.text(r, 2));
  v.method = rs.text(r, 3);
  v.deleted = rs.is_null(r, 4);
  v.content = rs.take(r, 4);
  return v;
}

}  // namespace

std::string url_key(std::string_view url) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "~%016llx", static_cast<unsigned long long>(hash64({url})));
  return buf;
}

std::optional<CurrentRow> ResourceStore::current(Connection& c, const std::string& type, const std::string& id,
                                                 Lock lock) const {
  static constexpr const char* kSql[] = {
      "SELECT pk, version, deleted, last_updated, category FROM resource WHERE tenant_id=? AND res_type=? AND res_id=?",
      "SELECT pk, version, deleted, last_updated, category FROM resource WHERE tenant_id=? AND res_type=? AND res_id=? "
      "LOCK IN SHARE MODE",
      "SELECT pk, version, deleted, last_updated, category FROM resource WHERE tenant_id=? AND res_type=? AND res_id=? "
      "FOR UPDATE",
  };
  auto rs =
      c.query(kSql[static_cast<int>(lock)], {std::int64_t{tenant_}, std::string_view(type), std::string_view(id)});
  if (rs.empty()) return std::nullopt;
  return CurrentRow{static_cast<std::uint64_t>(rs.integer(0, 0)), static_cast<std::uint32_t>(rs.integer(0, 1)),
                    rs.integer(0, 2) != 0, ts(rs.text(0, 3)), static_cast<std::uint8_t>(rs.integer(0, 4))};
}

std::optional<StoredVersion> ResourceStore::read_current(Connection& c, const std::string& type,
                                                         const std::string& id) const {
  auto rs = c.query(
      "SELECT r.pk, r.version, h.last_updated, h.method, h.content, h.category FROM resource r "
      "JOIN resource_history h ON h.resource_pk = r.pk AND h.version = r.version "
      "WHERE r.tenant_id=? AND r.res_type=? AND r.res_id=?",
      {std::int64_t{tenant_}, std::string_view(type), std::string_view(id)});
  if (rs.empty()) return std::nullopt;
  return version_from(rs, 0, type, id, 5);
}

std::optional<StoredVersion> ResourceStore::read_version(Connection& c, const std::string& type, const std::string& id,
                                                         std::uint32_t version) const {
  auto rs = c.query(
      "SELECT r.pk, h.version, h.last_updated, h.method, h.content, h.category FROM resource r "
      "JOIN resource_history h ON h.resource_pk = r.pk AND h.version = ? "
      "WHERE r.tenant_id=? AND r.res_type=? AND r.res_id=?",
      {std::int64_t{version}, std::int64_t{tenant_}, std::string_view(type), std::string_view(id)});
  if (rs.empty()) return std::nullopt;
  return version_from(rs, 0, type, id, 5);
}

std::uint64_t ResourceStore::write_version(Connection& c, const std::optional<CurrentRow>& existing,
                                           const std::string& type, const std::string& id, std::uint32_t version,
                                           std::int64_t last_updated, const std::string& method,
                                           const std::string& content, const AccessLabels& labels) const {
  const std::string when = format_sql(last_updated);
  const std::int64_t deleted = content.empty() ? 1 : 0;
  const std::int64_t category = labels.category;
  std::uint64_t pk;
  if (!existing) {
    auto rs = c.query(
        "INSERT INTO resource (tenant_id, res_type, res_id, version, last_updated, deleted, category) VALUES "
        "(?,?,?,?,?,?,?)",
        {std::int64_t{tenant_}, std::string_view(type), std::string_view(id), std::int64_t{version},
         std::string_view(when), deleted, category});
    pk = rs.insert_id;
  } else {
    pk = existing->pk;
    c.query("UPDATE resource SET version=?, last_updated=?, deleted=?, category=? WHERE pk=?",
            {std::int64_t{version}, std::string_view(when), deleted, category, pk});
    c.query("UPDATE resource_history SET superseded_at=? WHERE resource_pk=? AND version=?",
            {std::string_view(when), pk, std::int64_t{existing->version}});
  }
  c.query(
      "INSERT INTO resource_history (resource_pk, version, tenant_id, res_type, res_id, last_updated, method, content, "
      "category) VALUES (?,?,?,?,?,?,?,?,?)",
      {pk, std::int64_t{version}, std::int64_t{tenant_}, std::string_view(type), std::string_view(id),
       std::string_view(when), std::string_view(method),
       content.empty() ? Param(nullptr) : Param(std::string_view(content)), category});
  insert_subjects(c, pk, version, labels.subjects);
  return pk;
}

void ResourceStore::insert_subjects(Connection& c, std::uint64_t pk, std::uint32_t version,
                                    const std::vector<std::string>& subjects) const {
  if (subjects.empty()) return;
  std::string sql = "INSERT IGNORE INTO resource_subject (resource_pk, version, tenant_id, patient_id) VALUES ";
  for (std::size_t i = 0; i < subjects.size(); ++i) {
    sql += (i ? ",(" : "(") + std::to_string(pk) + "," + std::to_string(version) + "," + std::to_string(tenant_) +
           "," + c.quote(subjects[i]) + ")";
  }
  c.execute_text(sql);
}

std::uint8_t ResourceStore::version_category(Connection& c, std::uint64_t pk, std::uint32_t version) const {
  auto rs = c.query("SELECT category FROM resource_history WHERE resource_pk=? AND version=?", {pk, std::int64_t{version}});
  return rs.empty() ? 0 : static_cast<std::uint8_t>(rs.integer(0, 0));
}

std::vector<std::string> ResourceStore::subjects(Connection& c, std::uint64_t pk, std::uint32_t version) const {
  auto rs = c.query("SELECT patient_id FROM resource_subject WHERE resource_pk=? AND version=?",
                    {pk, std::int64_t{version}});
  std::vector<std::string> out;
  for (std::size_t i = 0; i < rs.size(); ++i) out.push_back(rs.take(i, 0));
  return out;
}

void ResourceStore::set_labels(Connection& c, std::uint64_t pk, std::uint32_t version, const AccessLabels& labels,
                               bool current) const {
  const std::int64_t category = labels.category;
  c.query("UPDATE resource_history SET category=? WHERE resource_pk=? AND version=?",
          {category, pk, std::int64_t{version}});
  if (current) c.query("UPDATE resource SET category=? WHERE pk=? AND version=?", {category, pk, std::int64_t{version}});
  c.query("DELETE FROM resource_subject WHERE resource_pk=? AND version=?", {pk, std::int64_t{version}});
  insert_subjects(c, pk, version, labels.subjects);
}

std::vector<ResourceStore::Unlabelled> ResourceStore::unlabelled(Connection& c, std::uint64_t after_pk,
                                                                 std::uint32_t after_version, unsigned limit) const {
  auto rs = c.query(
      "SELECT h.resource_pk, h.version, h.res_type, h.content, r.version=h.version FROM resource_history h "
      "JOIN resource r ON r.pk=h.resource_pk WHERE h.tenant_id=? AND h.category=0 AND (h.resource_pk>? OR "
      "(h.resource_pk=? AND h.version>?)) ORDER BY h.resource_pk, h.version LIMIT ?",
      {std::int64_t{tenant_}, after_pk, after_pk, std::int64_t{after_version}, std::int64_t{limit}});
  std::vector<Unlabelled> out;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    out.push_back(Unlabelled{static_cast<std::uint64_t>(rs.integer(i, 0)), static_cast<std::uint32_t>(rs.integer(i, 1)),
                             rs.take(i, 2), rs.take(i, 3), rs.integer(i, 4) != 0});
  }
  return out;
}

void ResourceStore::replace_opt_outs(Connection& c, std::uint64_t consent_pk, const std::vector<OptOutRow>& rows) const {
  c.query("DELETE FROM access_optout WHERE tenant_id=? AND consent_pk=?", {std::int64_t{tenant_}, consent_pk});
  for (const auto& r : rows) {
    c.query(
        "INSERT IGNORE INTO access_optout (tenant_id, consent_pk, patient_id, institution_id, start_ms, end_ms) VALUES "
        "(?,?,?,?,?,?)",
        {std::int64_t{tenant_}, consent_pk, std::string_view(r.patient_id), std::string_view(r.institution_id),
         r.start_ms, r.end_ms});
  }
}

std::vector<OptOutRow> ResourceStore::opt_outs(Connection& c) const {
  auto rs = c.query("SELECT patient_id, institution_id, start_ms, end_ms FROM access_optout WHERE tenant_id=?",
                    {std::int64_t{tenant_}});
  std::vector<OptOutRow> out;
  for (std::size_t i = 0; i < rs.size(); ++i)
    out.push_back(OptOutRow{rs.take(i, 0), rs.take(i, 1), rs.integer(i, 2), rs.integer(i, 3)});
  return out;
}

namespace {

constexpr const char* kIndexTables[] = {"idx_token",    "idx_string", "idx_date",      "idx_number",
                                        "idx_quantity", "idx_uri",    "idx_reference", "idx_composite"};

// Builds one multi-row INSERT per table.
class RowsSql {
 public:
  RowsSql(Connection& c, const char* head) : c_(c), head_(head), sql_(head) {}
  // Starts a row; a statement that grew past ~1 MB is sent first (max_allowed_packet).
  RowsSql& row() {
    if (sql_.size() > (1U << 20)) {
      run();
      sql_ = head_;
      rows_ = 0;
    }
    sql_ += rows_++ ? ",(" : " VALUES (";
    first_ = true;
    return *this;
  }
  RowsSql& i(std::int64_t v) { return raw(std::to_string(v)); }
  RowsSql& u(std::uint64_t v) { return raw(std::to_string(v)); }
  RowsSql& d(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return raw(buf);
  }
  RowsSql& s(std::string_view v) { return raw(c_.quote(v)); }
  RowsSql& null() { return raw("NULL"); }
  RowsSql& end() {
    sql_ += ')';
    return *this;
  }
  void run() {
    if (rows_) c_.execute_text(sql_);
  }

 private:
  RowsSql& raw(std::string_view v) {
    if (!first_) sql_ += ',';
    first_ = false;
    sql_ += v;
    return *this;
  }
  Connection& c_;
  std::string head_;
  std::string sql_;
  std::size_t rows_ = 0;
  bool first_ = true;
};

}  // namespace

void ResourceStore::replace_index(Connection& c, std::uint64_t pk, const std::string& type, const IndexRows& rows,
                                  bool existed) const {
  replace_index_many(c, {IndexWrite{pk, &type, &rows, existed}});
}

void ResourceStore::replace_index_many(Connection& c, const std::vector<IndexWrite>& writes) const {
  std::string existing;
  for (const auto& w : writes)
    if (w.existed) existing += (existing.empty() ? "" : ",") + std::to_string(w.pk);
  if (!existing.empty())
    for (const char* t : kIndexTables)
      c.execute_text(std::string("DELETE FROM ") + t + " WHERE resource_pk IN (" + existing + ")");
  const std::int64_t tenant = tenant_;
  {
    RowsSql q(
        c,
        "INSERT INTO idx_token (resource_pk, tenant_id, param_hash, hash_sys_value, hash_value, hash_sys, sys, val)");
    for (const auto& w : writes)
      for (const auto& r : w.rows->tokens) {
        q.row()
            .u(w.pk)
            .i(tenant)
            .i(hash64({index_scope(*w.type, r.param), r.param}))
            .i(hash64({index_scope(*w.type, r.param), r.param, r.system, r.value}));
        q.i(hash64({index_scope(*w.type, r.param), r.param, r.value}))
            .i(hash64({index_scope(*w.type, r.param), r.param, r.system}));
        r.system.empty() ? q.null() : q.s(column_text(r.system));
        r.value.empty() ? q.null() : q.s(column_text(r.value));
        q.end();
      }
    q.run();
  }
  {
    RowsSql q(c, "INSERT INTO idx_string (resource_pk, tenant_id, param_hash, hash_exact, folded)");
    for (const auto& w : writes)
      for (const auto& r : w.rows->strings)
        q.row()
            .u(w.pk)
            .i(tenant)
            .i(hash64({index_scope(*w.type, r.param), r.param}))
            .i(hash64({index_scope(*w.type, r.param), r.param, r.exact}))
            .s(r.folded)
            .end();
    q.run();
  }
  {
    RowsSql q(c, "INSERT INTO idx_date (resource_pk, tenant_id, param_hash, lo, hi)");
    for (const auto& w : writes)
      for (const auto& r : w.rows->dates)
        q.row().u(w.pk).i(tenant).i(hash64({index_scope(*w.type, r.param), r.param})).i(r.lo).i(r.hi).end();
    q.run();
  }
  {
    RowsSql q(c, "INSERT INTO idx_number (resource_pk, tenant_id, param_hash, val)");
    for (const auto& w : writes)
      for (const auto& r : w.rows->numbers)
        q.row().u(w.pk).i(tenant).i(hash64({index_scope(*w.type, r.param), r.param})).d(r.value).end();
    q.run();
  }
  {
    RowsSql q(c, "INSERT INTO idx_quantity (resource_pk, tenant_id, param_hash, hash_sys_code, hash_code, val)");
    for (const auto& w : writes)
      for (const auto& r : w.rows->quantities)
        q.row()
            .u(w.pk)
            .i(tenant)
            .i(hash64({index_scope(*w.type, r.param), r.param}))
            .i(hash64({index_scope(*w.type, r.param), r.param, r.system, r.code}))
            .i(hash64({index_scope(*w.type, r.param), r.param, r.code}))
            .d(r.value)
            .end();
    q.run();
  }
  {
    RowsSql q(c, "INSERT INTO idx_uri (resource_pk, tenant_id, param_hash, hash_value, val)");
    for (const auto& w : writes)
      for (const auto& r : w.rows->uris)
        q.row()
            .u(w.pk)
            .i(tenant)
            .i(hash64({index_scope(*w.type, r.param), r.param}))
            .i(hash64({index_scope(*w.type, r.param), r.param, r.value}))
            .s(resources::utf8_prefix(r.value, 512))
            .end();
    q.run();
  }
  {
    RowsSql q(c,
              "INSERT INTO idx_reference (resource_pk, tenant_id, param_hash, hash_ref, target_type, target_id, url)");
    for (const auto& w : writes)
      for (const auto& r : w.rows->references) {
        const std::string_view scope = index_scope(*w.type, r.param);
        q.row().u(w.pk).i(tenant).i(hash64({scope, r.param}));
        q.i(hash64({scope, r.param, r.target_type, r.target_id, r.url}));
        if (r.url.empty()) {
          q.s(r.target_type).s(r.target_id);
        } else {
          q.s("").s(url_key(r.url));
        }
        r.url.empty() ? q.null() : q.s(resources::utf8_prefix(r.url, 512));
        q.end();
      }
    q.run();
  }
  {
    RowsSql q(c,
              "INSERT INTO idx_composite (resource_pk, tenant_id, param_hash, hash_row, hash1_sv, hash1_v, hash2_sv, "
              "hash2_v, "
              "num, lo, hi, text2)");
    for (const auto& w : writes)
      for (const auto& r : w.rows->composites) {
        const std::string_view scope = index_scope(*w.type, r.param);
        char n2[32] = "-";
        if (r.number2) std::snprintf(n2, sizeof n2, "%.17g", *r.number2);
        const std::string lo2 = r.lo2 ? std::to_string(*r.lo2) : "-", hi2 = r.hi2 ? std::to_string(*r.hi2) : "-";
        q.row().u(w.pk).i(tenant).i(hash64({scope, r.param}));
        q.i(hash64({scope, r.param, r.system1, r.code1, r.system2, r.code2, r.text2, n2, lo2, hi2}));
        q.i(hash64({scope, r.param, r.system1, r.code1}));
        q.i(hash64({index_scope(*w.type, r.param), r.param, r.code1}));
        if (r.code2.empty()) {
          q.null().null();
        } else {
          q.i(hash64({index_scope(*w.type, r.param), r.param, r.system2, r.code2}))
              .i(hash64({index_scope(*w.type, r.param), r.param, r.code2}));
        }
        r.number2 ? q.d(*r.number2) : q.null();
        r.lo2 ? q.i(*r.lo2) : q.null();
        r.hi2 ? q.i(*r.hi2) : q.null();
        r.text2.empty() ? q.null() : q.s(r.text2);
        q.end();
      }
    q.run();
  }
}

void ResourceStore::replace_links(Connection& c, std::uint64_t pk, const std::vector<LinkRow>& rows) const {
  c.query("DELETE FROM resource_link WHERE src_pk=?", {pk});
  if (rows.empty()) return;
  std::string sql = "INSERT INTO resource_link (src_pk, tenant_id, target_type, target_id, path) VALUES ";
  bool first = true;
  for (const auto& r : rows) {
    if (!first) sql += ',';
    first = false;
    sql += '(' + std::to_string(pk) + ',' + std::to_string(tenant_) + ',' + c.quote(r.target_type) + ',' +
           c.quote(r.target_id) + ',' + c.quote(r.path.substr(0, 255)) + ')';
  }
  c.execute_text(sql);
}

void ResourceStore::clear_dependents(Connection& c, std::uint64_t pk) const {
  for (const char* t : kIndexTables) c.query(std::string("DELETE FROM ") + t + " WHERE resource_pk=?", {pk});
  c.query("DELETE FROM resource_link WHERE src_pk=?", {pk});
  c.query("DELETE FROM conditional_create_key WHERE resource_pk=?", {pk});
}

std::vector<std::string> ResourceStore::referrers(Connection& c, const std::string& type, const std::string& id,
                                                  std::uint64_t exclude_pk, unsigned limit,
                                                  const std::string& only) const {
  auto rs = c.query(
      "SELECT DISTINCT r.res_type, r.res_id FROM resource_link l JOIN resource r ON r.pk = l.src_pk "
      "WHERE l.tenant_id=? AND l.target_type=? AND l.target_id=? AND l.src_pk<>? AND r.deleted=0" +
          (only.empty() ? std::string() : " AND " + only) + " LIMIT ?",
      {std::int64_t{tenant_}, std::string_view(type), std::string_view(id), exclude_pk, std::int64_t{limit}});
  std::vector<std::string> out;
  for (std::size_t r = 0; r < rs.size(); ++r) out.push_back(rs.text(r, 0) + "/" + rs.text(r, 1));
  return out;
}

void ResourceStore::claim_conditional_key(Connection& c, const std::string& type, std::int64_t criteria_hash,
                                          std::uint64_t pk) const {
  c.query("INSERT INTO conditional_create_key (tenant_id, res_type, criteria_hash, resource_pk) VALUES (?,?,?,?)",
          {std::int64_t{tenant_}, std::string_view(type), criteria_hash, pk});
}

void ResourceStore::drop_conditional_key(Connection& c, const std::string& type, std::int64_t criteria_hash,
                                         std::uint64_t owner_pk) const {
  c.query("DELETE FROM conditional_create_key WHERE tenant_id=? AND res_type=? AND criteria_hash=? AND resource_pk=?",
          {std::int64_t{tenant_}, std::string_view(type), criteria_hash, owner_pk});
}

std::optional<std::uint64_t> ResourceStore::conditional_key_owner(Connection& c, const std::string& type,
                                                                  std::int64_t criteria_hash) const {
  auto rs =
      c.query("SELECT resource_pk FROM conditional_create_key WHERE tenant_id=? AND res_type=? AND criteria_hash=?",
              {std::int64_t{tenant_}, std::string_view(type), criteria_hash});
  if (rs.empty()) return std::nullopt;
  return static_cast<std::uint64_t>(rs.integer(0, 0));
}

namespace {

void history_where(const HistoryQuery& q, unsigned tenant, std::string& sql, std::vector<Param>& params,
                   std::vector<std::string>& keep) {
  if (q.pk) {
    sql += " WHERE h.resource_pk=?";
    params.emplace_back(*q.pk);
  } else if (!q.type.empty()) {
    sql += " WHERE h.tenant_id=? AND h.res_type=?";
    params.emplace_back(std::int64_t{tenant});
    params.emplace_back(std::string_view(q.type));
  } else {
    sql += " WHERE h.tenant_id=?";
    params.emplace_back(std::int64_t{tenant});
  }
  if (!q.access_sql.empty()) sql += " AND " + q.access_sql;
  // keep owns the strings the string_view params point at; reserve so they never move.
  keep.reserve(8 + 2 * q.at.size());
  if (q.since) {
    keep.push_back(format_sql(*q.since));
    sql += " AND h.last_updated >= ?";
    params.emplace_back(std::string_view(keep.back()));
  }
  if (!q.at.empty()) {
    sql += " AND h.method <> 'DELETE' AND (";
    bool first = true;
    for (const auto& [lo, hi] : q.at) {
      if (!first) sql += " OR ";
      first = false;
      keep.push_back(format_sql(hi));
      const std::string& hs = keep.back();
      keep.push_back(format_sql(lo));
      const std::string& ls = keep.back();
      sql += "(h.last_updated < ? AND (h.superseded_at IS NULL OR h.superseded_at > ?))";
      params.emplace_back(std::string_view(hs));
      params.emplace_back(std::string_view(ls));
    }
    sql += ")";
  }
}

}  // namespace

std::vector<StoredVersion> ResourceStore::history(Connection& c, const HistoryQuery& q) const {
  std::string sql =
      "SELECT h.resource_pk, h.version, h.last_updated, h.method, h.content, h.res_type, h.res_id, h.category "
      "FROM resource_history h";
  std::vector<Param> params;
  std::vector<std::string> keep;
  history_where(q, tenant_, sql, params, keep);
  if (q.before_time) {
    keep.push_back(format_sql(*q.before_time));
    const std::string& t = keep.back();
    sql +=
        " AND (h.last_updated < ? OR (h.last_updated = ? AND (h.resource_pk < ? OR (h.resource_pk = ? AND h.version < "
        "?))))";
    params.emplace_back(std::string_view(t));
    params.emplace_back(std::string_view(t));
    params.emplace_back(std::uint64_t{q.before_pk});
    params.emplace_back(std::uint64_t{q.before_pk});
    params.emplace_back(std::int64_t{q.before_version});
  }
  sql += " ORDER BY h.last_updated DESC, h.resource_pk DESC, h.version DESC LIMIT ?";
  params.emplace_back(std::int64_t{q.limit});
  auto rs = c.query(sql, params);
  std::vector<StoredVersion> out;
  out.reserve(rs.size());
  for (std::size_t r = 0; r < rs.size(); ++r) {
    std::string type = rs.take(r, 5);
    std::string id = rs.take(r, 6);
    out.push_back(version_from(rs, r, type, id, 7));
  }
  return out;
}

std::uint64_t ResourceStore::history_count(Connection& c, const HistoryQuery& q) const {
  std::string sql = "SELECT COUNT(*) FROM resource_history h";
  std::vector<Param> params;
  std::vector<std::string> keep;
  history_where(q, tenant_, sql, params, keep);
  auto rs = c.query(sql, params);
  return static_cast<std::uint64_t>(rs.integer(0, 0));
}

std::vector<StoredVersion> ResourceStore::list(Connection& c, const std::string& type, const std::string& after_id,
                                               unsigned limit) const {
  auto rs = c.query(
      "SELECT r.pk, r.version, h.last_updated, h.method, h.content, r.res_id, h.category FROM resource r "
      "JOIN resource_history h ON h.resource_pk = r.pk AND h.version = r.version "
      "WHERE r.tenant_id=? AND r.res_type=? AND r.deleted=0 AND r.res_id > ? ORDER BY r.res_id LIMIT ?",
      {std::int64_t{tenant_}, std::string_view(type), std::string_view(after_id), std::int64_t{limit}});
  std::vector<StoredVersion> out;
  for (std::size_t r = 0; r < rs.size(); ++r) {
    std::string id = rs.take(r, 5);
    out.push_back(version_from(rs, r, type, id, 6));
  }
  return out;
}

std::uint64_t ResourceStore::count(Connection& c, const std::string& type) const {
  auto rs = c.query("SELECT COUNT(*) FROM resource WHERE tenant_id=? AND res_type=? AND deleted=0",
                    {std::int64_t{tenant_}, std::string_view(type)});
  return static_cast<std::uint64_t>(rs.integer(0, 0));
}

}  // namespace kasama::storage
