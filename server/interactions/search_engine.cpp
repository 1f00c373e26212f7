#include "server/interactions/search_engine.hpp"

#include "server/interactions/page.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "resources/fhir_time.hpp"
#include "resources/paths.hpp"
#include "resources/references.hpp"
#include "resources/type_model.hpp"
#include "server/log.hpp"
#include "server/search/query.hpp"
#include "server/search/registry.hpp"
#include "server/search/sql.hpp"
#include "server/storage/hash.hpp"

namespace kasama::server {

namespace {

using resources::TypeModel;
using search::ParsedQuery;
using search::SqlCompiler;

constexpr unsigned kMaxIncludes = 1000;    // included resources per page, over all rounds
constexpr unsigned kMaxIncludeRounds = 4;  // :iterate depth
// Without _total, Bundle.total is given when the matches are at most this many: counting
// stops there, so a broad search does not pay for a full count it was not asked for.
constexpr unsigned kDefaultTotalCap = 1000;
constexpr const char* kSubsetted = "SUBSETTED";

[[noreturn]] void query_error(const search::QueryError& e) {
  throw FhirError(e.status, e.code, e.message, e.parameter);
}

// --- cursors: base64url of a JSON array [direction, sort values..., pk] -------------------

const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url(std::string_view in) {
  std::string out;
  unsigned val = 0;
  int bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out += kB64[(val >> bits) & 0x3F];
      bits -= 6;
    }
  }
  if (bits > -6) out += kB64[((val << 8) >> (bits + 8)) & 0x3F];
  return out;
}

std::optional<std::string> unb64url(std::string_view in) {
  std::string out;
  unsigned val = 0;
  int bits = -8;
  for (char c : in) {
    const char* p = std::strchr(kB64, c);
    if (!p || c == 0) return std::nullopt;
    val = (val << 6) + static_cast<unsigned>(p - kB64);
    bits += 6;
    if (bits >= 0) {
      out += static_cast<char>((val >> bits) & 0xFF);
      bits -= 8;
    }
  }
  return out;
}

struct Cursor {
  bool backward = false;
  std::vector<std::optional<std::string>> values;  // one per sort key, then the pk
};

std::string encode_cursor(bool backward, const std::vector<std::optional<std::string>>& values) {
  Json a = Json::array();
  a.push_back(backward ? "p" : "n");
  for (const auto& v : values) a.push_back(v ? Json(*v) : Json(nullptr));
  return b64url(resources::dump_json(a));
}

Cursor decode_cursor(const std::string& text, std::size_t keys) {
  auto bad = [] { return FhirError(400, "value", "_cursor is not a cursor this server issued", "_cursor"); };
  auto raw = unb64url(text);
  if (!raw) throw bad();
  auto parsed = resources::parse_json(*raw);
  if (!parsed.ok || !parsed.value.is_array() || parsed.value.size() != keys + 2) throw bad();
  Cursor c;
  const Json& a = parsed.value;
  if (a[0] == "p") {
    c.backward = true;
  } else if (a[0] != "n") {
    throw bad();
  }
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i].is_null()) {
      c.values.emplace_back();
    } else if (a[i].is_string()) {
      c.values.emplace_back(a[i].get<std::string>());
    } else {
      throw bad();
    }
  }
  const auto& pk = c.values.back();
  if (!pk || pk->empty() || pk->size() > 20 || !std::all_of(pk->begin(), pk->end(), ::isdigit)) throw bad();
  return c;
}

// --- result parameters ----------------------------------------------------------------------

struct IncludeSpec {
  std::string source_type;  // "*" = any
  std::string param;        // "*" = every reference parameter
  std::string target_type;  // empty = any
  bool iterate = false;
  bool reverse = false;
};

struct SortSpec {
  std::string code;
  bool desc = false;
};

struct ResultParams {
  unsigned count = 20;
  std::vector<SortSpec> sort;
  std::string total;    // none, estimate, accurate; empty = default
  std::string summary;  // true, text, data, count, false
  std::vector<std::string> elements;
  std::vector<IncludeSpec> includes;
  std::optional<std::string> cursor;
};

IncludeSpec parse_include(const std::string& name, const std::string& value, bool reverse) {
  IncludeSpec s;
  s.reverse = reverse;
  const std::string base = reverse ? "_revinclude" : "_include";
  if (name != base) {
    const std::string mod = name.substr(base.size() + 1);
    if (mod != "iterate" && mod != "recurse")
      throw FhirError(400, "value", "unknown modifier on " + name + " (supported: :iterate)", name);
    s.iterate = true;
  }
  if (value == "*") {
    s.source_type = "*";
    s.param = "*";
    return s;
  }
  auto parts = search::split_keeping_escapes(value, ':');
  if (parts.size() < 2 || parts.size() > 3)
    throw FhirError(400, "value", name + " value '" + value + "' must be Type:parameter[:targetType]", name);
  s.source_type = parts[0];
  s.param = parts[1];
  if (parts.size() == 3) s.target_type = parts[2];
  auto& model = TypeModel::instance();
  if (!model.is_resource_type(s.source_type))
    throw FhirError(400, "value", name + ": '" + s.source_type + "' is not a resource type", name);
  if (s.param != "*") {
    const auto* p = search::Registry::instance().find(s.source_type, s.param);
    if (!p || p->type != search::ParamType::kReference)
      throw FhirError(400, "value", name + ": '" + s.param + "' is not a reference parameter of " + s.source_type,
                      name);
  }
  if (!s.target_type.empty() && !model.is_resource_type(s.target_type))
    throw FhirError(400, "value", name + ": '" + s.target_type + "' is not a resource type", name);
  return s;
}

ResultParams parse_result_params(Context& ctx, const ParsedQuery& q, bool lenient) {
  ResultParams rp;
  rp.count = ctx.svc.config.default_count;
  for (const auto& [name, value] : q.result) {
    if (name == "_count") {
      rp.count = parse_count(ctx, value);
    } else if (name == "_sort") {
      for (const auto& part : search::split_list(value, ',')) {
        SortSpec s;
        std::string code = search::unescape(part);
        if (!code.empty() && code[0] == '-') {
          s.desc = true;
          code.erase(0, 1);
        }
        if (code.empty()) throw FhirError(400, "value", "_sort has an empty key", "_sort");
        s.code = code;
        rp.sort.push_back(s);
      }
    } else if (name == "_total") {
      if (value != "none" && value != "estimate" && value != "accurate")
        throw FhirError(400, "value", "_total must be none, estimate or accurate", "_total");
      rp.total = value;
    } else if (name == "_summary") {
      if (value != "true" && value != "text" && value != "data" && value != "count" && value != "false")
        throw FhirError(400, "value", "_summary must be true, text, data, count or false", "_summary");
      rp.summary = value;
    } else if (name == "_elements") {
      for (const auto& e : search::split_list(value, ',')) {
        std::string el = search::unescape(e);
        if (auto dot = el.find('.'); dot != std::string::npos) el = el.substr(dot + 1);  // "Patient.name"
        if (!el.empty()) rp.elements.push_back(el);
      }
    } else if (name.rfind("_include", 0) == 0) {
      rp.includes.push_back(parse_include(name, value, false));
    } else if (name.rfind("_revinclude", 0) == 0) {
      rp.includes.push_back(parse_include(name, value, true));
    } else if (name == "_format" || name == "_pretty") {
      continue;
    } else if (!lenient) {
      throw FhirError(400, "not-supported", "Parameter '" + name + "' is not supported", name);
    }
  }
  return rp;
}

// --- entries: _summary and _elements ---------------------------------------------------------

void mark_subsetted(Json& res) {
  Json& meta = res["meta"];
  if (!meta.is_object()) meta = Json::object();
  Json& tags = meta["tag"];
  if (!tags.is_array()) tags = Json::array();
  tags.push_back({{"system", "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"},
                  {"code", kSubsetted},
                  {"display", "As requested, resource is not fully detailed."}});
}

std::string shape_entry(const std::string& type, const std::string& content, const ResultParams& rp) {
  const bool summary = rp.summary == "true" || rp.summary == "text" || rp.summary == "data";
  if (!summary && rp.elements.empty()) return content;
  auto parsed = resources::parse_json(content);
  if (!parsed.ok) return content;
  const Json& in = parsed.value;
  const auto& model = TypeModel::instance();
  Json out = Json::object();
  for (const auto& [k, v] : in.items()) {
    bool keep = k == "resourceType" || k == "id" || k == "meta";
    const std::string name = (!k.empty() && k[0] == '_') ? k.substr(1) : k;
    auto m = model.child(type, name);
    if (!keep && rp.summary == "true") keep = m && m.element->summary;
    if (!keep && rp.summary == "text") keep = name == "text" || (m && m.element->min > 0);
    if (!keep && rp.summary == "data") keep = name != "text";
    if (!keep && !rp.elements.empty()) {
      keep = std::any_of(rp.elements.begin(), rp.elements.end(), [&](const std::string& e) {
        return name == e || (m && m.element->choice && m.element->name == e);
      });
    }
    if (keep) out[k] = v;
  }
  if (rp.summary != "data") mark_subsetted(out);
  return resources::dump_json(out);
}

// --- compartments ----------------------------------------------------------------------------

std::map<std::string, std::vector<std::string>> load_patient_compartment() {
  std::map<std::string, std::vector<std::string>> out;
  std::ifstream f(resources::conformance_dir() + "/r4/compartmentdefinition-patient.json");
  std::stringstream ss;
  ss << f.rdbuf();
  auto parsed = resources::parse_json(ss.str());
  if (!parsed.ok) throw std::runtime_error("conformance/r4/compartmentdefinition-patient.json is not valid JSON");
  for (const auto& r : parsed.value["resource"]) {
    std::vector<std::string> params;
    if (auto p = r.find("param"); p != r.end())
      for (const auto& x : *p) params.push_back(x.get<std::string>());
    if (r["code"] == "Patient") params.push_back("{def}");
    out[r["code"].get<std::string>()] = std::move(params);
  }
  return out;
}

// --- the query ---------------------------------------------------------------------------------

struct Row {
  std::uint64_t pk = 0;
  std::string type;
  std::string id;
  std::vector<std::optional<std::string>> keys;  // sort values
};

struct Plan {
  std::string where;  // over alias r
  // With an equality lookup among several clauses, MariaDB's materialization of a broad
  // range clause (date=ge2024 over 800k Observations) costs far more than probing it per
  // resource through its (resource_pk, ...) key: turned off for that statement.
  bool probe_others = false;
  std::vector<std::string> sort_exprs;
  std::vector<bool> sort_desc;
};

std::string pk_list(const std::vector<std::uint64_t>& pks) {
  std::string out;
  for (std::size_t i = 0; i < pks.size(); ++i) out += (i ? "," : "") + std::to_string(pks[i]);
  return out;
}

// Runs search SQL; statements slower than KASAMA_SLOW_SEARCH_MS are logged with their
// text (the values in them are hashes, numbers and quoted search values, no resource data).
storage::ResultSet run_sql(Context& ctx, storage::Connection& db, const std::string& query, bool probe_others = false) {
  const std::string sql = probe_others ? "SET STATEMENT optimizer_switch='materialization=off' FOR " + query : query;
  const auto start = std::chrono::steady_clock::now();
  auto rs = db.execute_text(sql);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  if (static_cast<unsigned long long>(ms) >= ctx.svc.config.slow_search_ms)
    log_info("slow search SQL (" + std::to_string(ms) + " ms, " + std::to_string(rs.size()) + " rows): " + sql);
  return rs;
}

struct Fetched {
  std::uint64_t pk;
  std::string type, id, content;
};

std::vector<Fetched> fetch_by_pk(storage::Connection& c, const std::vector<std::uint64_t>& pks) {
  std::vector<Fetched> out;
  if (pks.empty()) return out;
  auto rs = c.execute_text(
      "SELECT r.pk, r.res_type, r.res_id, h.content FROM resource r JOIN resource_history h ON h.resource_pk=r.pk "
      "AND h.version=r.version WHERE r.deleted=0 AND r.pk IN (" +
      pk_list(pks) + ")");
  std::map<std::uint64_t, Fetched> by_pk;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    auto pk = static_cast<std::uint64_t>(rs.integer(i, 0));
    by_pk[pk] = Fetched{pk, rs.take(i, 1), rs.take(i, 2), rs.take(i, 3)};
  }
  for (auto pk : pks)
    if (auto it = by_pk.find(pk); it != by_pk.end()) out.push_back(std::move(it->second));
  return out;
}

}  // namespace

const std::vector<std::string>& patient_compartment_params(const std::string& type) {
  static const auto compartment = load_patient_compartment();
  static const std::vector<std::string> none;
  auto it = compartment.find(type);
  return it == compartment.end() ? none : it->second;
}

namespace {

// The caller's access filter as a condition on every resource row the SQL reads.
void restrict_to_caller(Context& ctx, SqlCompiler& comp) {
  if (!ctx.access) return;
  comp.restrict_to([f = ctx.access, &comp](const std::string& alias) {
    return f->sql(alias + ".category", alias + ".pk", alias + ".version",
                  [&comp](std::string_view v) { return comp.quote(v); });
  });
}

// The WHERE clause for the parsed clauses over the scope's types.
std::string build_where(SqlCompiler& comp, const SearchScope& scope, const std::vector<std::string>& types,
                        const ParsedQuery& q) {
  std::vector<std::string> conds;
  conds.push_back("r.tenant_id=" + comp.tenant());
  conds.push_back("r.deleted=0");
  if (types.size() == 1) {
    conds.push_back("r.res_type=" + comp.quote(types[0]));
  } else if (!types.empty()) {
    std::vector<std::string> quoted;
    for (const auto& t : types) quoted.push_back(comp.quote(t));
    conds.push_back("r.res_type IN (" + search::join_sql(quoted, ",") + ")");
  }
  // What the caller may not see is no match: before paging and counting.
  if (comp.restricted()) conds.push_back(comp.restriction("r"));
  const std::string ctype = scope.system ? "Resource" : types.at(0);
  // Date clauses on a single-valued parameter are merged into one index condition.
  std::map<const search::SearchParam*, std::vector<const search::Clause*>> same_row;
  for (const auto& cl : q.clauses)
    if (!cl.chain && !cl.has && cl.param && cl.param->type == search::ParamType::kDate && cl.modifier.empty() &&
        cl.values.size() == 1 && cl.param->code != "_lastUpdated" && SqlCompiler::single_valued(*cl.param))
      same_row[cl.param].push_back(&cl);
  try {
    for (const auto& [param, list] : same_row)
      if (list.size() > 1) conds.push_back(comp.same_row_dates(ctype, list, "r"));
    for (const auto& cl : q.clauses) {
      if (cl.param && same_row.count(cl.param) && same_row[cl.param].size() > 1 &&
          std::find(same_row[cl.param].begin(), same_row[cl.param].end(), &cl) != same_row[cl.param].end())
        continue;
      conds.push_back(comp.clause(ctype, cl, "r"));
    }
  } catch (const search::SearchFailure& f) {
    query_error(f.error);
  }
  if (!scope.compartment_type.empty()) {
    const auto& params = patient_compartment_params(types.at(0));
    std::vector<std::string> hashes;
    std::vector<std::string> ors;
    for (const auto& p : params) {
      if (p == "{def}") {
        ors.push_back("r.res_id=" + comp.quote(scope.compartment_id));
      } else {
        hashes.push_back(SqlCompiler::hash({types[0], p}));
      }
    }
    if (!hashes.empty())
      ors.push_back("r.pk IN (SELECT resource_pk FROM idx_reference WHERE tenant_id=" + comp.tenant() +
                    " AND param_hash IN (" + search::join_sql(hashes, ",") + ") AND target_type=" +
                    comp.quote(scope.compartment_type) + " AND target_id=" + comp.quote(scope.compartment_id) + ")");
    conds.push_back("(" + search::join_sql(ors, " OR ") + ")");
  }
  return search::join_sql(conds, " AND ");
}

void add_sort(Plan& plan, SqlCompiler& comp, const std::vector<std::string>& types, bool system,
              const std::vector<SortSpec>& sort) {
  for (const auto& s : sort) {
    std::string expr;
    if (s.code == "_id") {
      // As utf8mb4, so that a cursor value of any text compares (res_id is ASCII).
      expr = "CAST(r.res_id AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_bin";
    } else if (s.code == "_lastUpdated") {
      expr = "r.last_updated";
    } else {
      const std::string type = system ? "Resource" : types.at(0);
      const auto* p = search::Registry::instance().find(type, s.code);
      if (!p) throw FhirError(400, "value", "_sort: unknown search parameter '" + s.code + "' for " + type, "_sort");
      expr = comp.sort_value(type, *p, s.desc, "r");
      if (expr.empty())
        throw FhirError(400, "not-supported",
                        "_sort: cannot sort on " + s.code + " (a " + search::param_type_name(p->type) + " parameter)",
                        "_sort");
    }
    plan.sort_exprs.push_back(expr);
    plan.sort_desc.push_back(s.desc);
  }
}

// Keyset condition: rows strictly after (or before, going backward) the cursor in the order
// ORDER BY (k IS NULL), k [DESC], ..., pk — missing sort values last.
std::string keyset(SqlCompiler& comp, const Plan& plan, const Cursor& c, const std::vector<std::string>& cols,
                   const std::string& pk_col) {
  std::vector<std::string> ors;
  std::vector<std::string> eqs;
  for (std::size_t i = 0; i < plan.sort_exprs.size(); ++i) {
    const std::string& col = cols[i];
    const auto& v = c.values[i];
    const bool desc = plan.sort_desc[i];
    std::string beyond;
    if (!c.backward) {
      beyond = v ? "(" + col + (desc ? "<" : ">") + comp.quote(*v) + " OR " + col + " IS NULL)" : "";
    } else {
      beyond = v ? col + (desc ? ">" : "<") + comp.quote(*v) : col + " IS NOT NULL";
    }
    if (!beyond.empty()) ors.push_back(search::join_sql(eqs, " AND ") + (eqs.empty() ? "" : " AND ") + beyond);
    eqs.push_back(v ? col + "=" + comp.quote(*v) : col + " IS NULL");
  }
  ors.push_back(search::join_sql(eqs, " AND ") + (eqs.empty() ? "" : " AND ") + pk_col + (c.backward ? "<" : ">") +
                *c.values.back());
  std::string out;
  for (std::size_t i = 0; i < ors.size(); ++i) out += (i ? " OR (" : "(") + ors[i] + ")";
  return "(" + out + ")";
}

std::vector<Row> page_rows(Context& ctx, storage::Connection& db, SqlCompiler& comp, const Plan& plan,
                           const std::optional<Cursor>& cursor, unsigned limit) {
  const bool backward = cursor && cursor->backward;
  std::vector<std::string> order;
  std::vector<std::string> cols;
  std::string select = "SELECT r.pk, r.res_type, r.res_id";
  for (std::size_t i = 0; i < plan.sort_exprs.size(); ++i) {
    const std::string col = "s" + std::to_string(i);
    cols.push_back("q." + col);
    select += ", " + plan.sort_exprs[i] + " AS " + col;
    const bool desc = plan.sort_desc[i] != backward;
    order.push_back("(q." + col + " IS NULL)" + std::string(backward ? " DESC" : ""));
    order.push_back("q." + col + (desc ? " DESC" : ""));
  }
  order.push_back(std::string("q.pk") + (backward ? " DESC" : ""));
  std::string sql = "SELECT * FROM (" + select + " FROM resource r WHERE " + plan.where + ") q";
  if (cursor) sql += " WHERE " + keyset(comp, plan, *cursor, cols, "q.pk");
  sql += " ORDER BY " + search::join_sql(order, ", ") + " LIMIT " + std::to_string(limit);
  if (plan.sort_exprs.empty()) {
    // No sort keys: straight on the resource table in pk order.
    sql = "SELECT r.pk, r.res_type, r.res_id FROM resource r WHERE " + plan.where;
    if (cursor) sql += std::string(" AND r.pk") + (backward ? "<" : ">") + *cursor->values.back();
    sql += std::string(" ORDER BY r.pk") + (backward ? " DESC" : "") + " LIMIT " + std::to_string(limit);
  }
  auto rs = run_sql(ctx, db, sql, plan.probe_others);
  std::vector<Row> rows;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    Row row;
    row.pk = static_cast<std::uint64_t>(rs.integer(i, 0));
    row.type = rs.take(i, 1);
    row.id = rs.take(i, 2);
    for (std::size_t k = 0; k < plan.sort_exprs.size(); ++k) {
      if (rs.is_null(i, 3 + k)) {
        row.keys.emplace_back();
      } else {
        row.keys.emplace_back(rs.take(i, 3 + k));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::optional<std::string>> cursor_values(const Row& row) {
  auto v = row.keys;
  v.emplace_back(std::to_string(row.pk));
  return v;
}

// Up to room rows after (or, going back, before) the cursor, in order, with the previous
// and next links added to b. A next link from an empty page (room 0: $everything's first
// page holding only the Patient) starts from pk 0; such plans have no sort keys.
std::vector<Row> page_with_links(Context& ctx, storage::Connection& db, SqlCompiler& comp, const Plan& plan,
                                 const std::optional<Cursor>& cursor, unsigned room, BundleWriter& b,
                                 const std::function<std::string(const std::string&)>& with_cursor) {
  auto rows = page_rows(ctx, db, comp, plan, cursor, room + 1);
  const bool more = rows.size() > room;
  if (more) rows.resize(room);
  if (cursor && cursor->backward) std::reverse(rows.begin(), rows.end());
  // next: there is more in the direction of travel, or we came backward from a later page.
  const bool has_next = (cursor && cursor->backward) ? !rows.empty() : more;
  const bool has_prev = cursor && (cursor->backward ? more : !rows.empty());
  if (!rows.empty() && has_prev) b.link("previous", with_cursor(encode_cursor(true, cursor_values(rows.front()))));
  if (has_next)
    b.link("next", with_cursor(encode_cursor(false, rows.empty() ? std::vector<std::optional<std::string>>{"0"}
                                                                 : cursor_values(rows.back()))));
  return rows;
}

// Included resources for the page (and, with :iterate, for what was included).
std::vector<Fetched> includes(Context& ctx, storage::Connection& db, SqlCompiler& comp,
                              const std::vector<IncludeSpec>& specs, const std::vector<Fetched>& matches) {
  std::vector<Fetched> out;
  if (specs.empty()) return out;
  std::set<std::uint64_t> seen;
  for (const auto& m : matches) seen.insert(m.pk);
  std::vector<const Fetched*> frontier;
  for (const auto& m : matches) frontier.push_back(&m);
  for (unsigned round = 0; round < kMaxIncludeRounds && !frontier.empty(); ++round) {
    std::set<std::uint64_t> found;
    for (const auto& s : specs) {
      if (round > 0 && !s.iterate) continue;
      if (!s.reverse) {
        std::vector<std::uint64_t> src;
        for (const auto* f : frontier)
          if (s.source_type == "*" || f->type == s.source_type) src.push_back(f->pk);
        if (src.empty()) continue;
        std::string sql =
            "SELECT DISTINCT t.pk FROM idx_reference x JOIN resource t ON t.tenant_id=x.tenant_id AND "
            "t.res_type=x.target_type AND t.res_id=x.target_id AND t.deleted=0 WHERE x.resource_pk IN (" +
            pk_list(src) + ")";
        if (s.param != "*") sql += " AND x.param_hash=" + SqlCompiler::hash({s.source_type, s.param});
        if (!s.target_type.empty()) sql += " AND x.target_type=" + comp.quote(s.target_type);
        if (comp.restricted()) sql += " AND " + comp.restriction("t");
        sql += " LIMIT " + std::to_string(kMaxIncludes + 1);
        auto rs = run_sql(ctx, db, sql);
        for (std::size_t i = 0; i < rs.size(); ++i) found.insert(static_cast<std::uint64_t>(rs.integer(i, 0)));
      } else {
        std::vector<std::string> targets;
        for (const auto* f : frontier)
          if (s.target_type.empty() || f->type == s.target_type)
            targets.push_back("(" + comp.quote(f->type) + "," + comp.quote(f->id) + ")");
        if (targets.empty()) continue;
        std::string sql = "SELECT DISTINCT x.resource_pk FROM idx_reference x";
        // Type:* names every reference parameter of that source type only.
        if (s.param == "*" && s.source_type != "*") {
          sql += " JOIN resource src ON src.pk=x.resource_pk AND src.res_type=" + comp.quote(s.source_type);
        } else if (comp.restricted()) {
          sql += " JOIN resource src ON src.pk=x.resource_pk";
        }
        sql += " WHERE x.tenant_id=" + comp.tenant() + " AND (x.target_type, x.target_id) IN (" +
               search::join_sql(targets, ",") + ")";
        if (comp.restricted()) sql += " AND " + comp.restriction("src");
        if (s.param != "*") sql += " AND x.param_hash=" + SqlCompiler::hash({s.source_type, s.param});
        sql += " LIMIT " + std::to_string(kMaxIncludes + 1);
        auto rs = run_sql(ctx, db, sql);
        for (std::size_t i = 0; i < rs.size(); ++i) found.insert(static_cast<std::uint64_t>(rs.integer(i, 0)));
      }
    }
    std::vector<std::uint64_t> fresh;
    for (auto pk : found)
      if (seen.insert(pk).second) fresh.push_back(pk);
    if (fresh.size() + out.size() > kMaxIncludes)
      throw FhirError(400, "too-costly",
                      "_include/_revinclude would add more than " + std::to_string(kMaxIncludes) +
                          " resources to one page; use a smaller _count",
                      "_include");
    const std::size_t before = out.size();
    for (auto& f : fetch_by_pk(db, fresh)) out.push_back(std::move(f));
    frontier.clear();
    for (std::size_t i = before; i < out.size(); ++i) frontier.push_back(&out[i]);
  }
  return out;
}

}  // namespace

RestResponse run_search(Context& ctx, const RestRequest& req, const SearchScope& scope) {
  ctx.flush_index();  // inside a transaction Bundle: see its own writes
  const bool lenient = lenient_handling(req);
  // Parameters: the query, then (POST _search) the form body.
  Criteria params;
  std::optional<std::string> cursor_text;
  std::vector<std::string> types = scope.types;
  std::vector<std::pair<std::string, std::string>> all = req.params;
  if (req.method == "POST" && !req.body.empty()) {
    const std::string* ct = req.header("content-type");
    if (!ct || ct->find("application/x-www-form-urlencoded") == std::string::npos)
      throw FhirError(415, "not-supported", "POST _search takes a form body (application/x-www-form-urlencoded)");
    auto body = parse_criteria("?" + req.body);
    all.insert(all.end(), body.begin(), body.end());
  }
  for (const auto& [name, value] : all) {
    if (name == "_cursor") {
      cursor_text = value;
    } else if (name == "_type" && scope.system) {
      for (const auto& t : search::split_list(value, ',')) {
        std::string type = search::unescape(t);
        if (!TypeModel::instance().is_resource_type(type))
          throw FhirError(400, "value", "_type: '" + type + "' is not a resource type", "_type");
        types.push_back(type);
      }
    } else {
      params.emplace_back(name, value);
    }
  }
  if (!scope.compartment_type.empty() && scope.compartment_type != "Patient")
    throw FhirError(400, "not-supported",
                    "Compartment search is supported for the Patient compartment only, not " + scope.compartment_type);
  if (!scope.compartment_type.empty() && patient_compartment_params(types.at(0)).empty())
    throw FhirError(400, "invalid", types[0] + " is not in the " + scope.compartment_type + " compartment");

  ParsedQuery q = search::parse_search(scope.system ? "Resource" : types.at(0), params, lenient);
  if (!q.ok()) query_error(*q.error);
  ResultParams rp = parse_result_params(ctx, q, lenient);

  auto& db = ctx.db();
  SqlCompiler comp(db, ctx.svc.store.tenant(), ctx.base_url);
  restrict_to_caller(ctx, comp);
  Plan plan;
  plan.where = build_where(comp, scope, types, q);
  plan.probe_others =
      q.clauses.size() > 1 && std::any_of(q.clauses.begin(), q.clauses.end(), SqlCompiler::equality_lookup);
  add_sort(plan, comp, types, scope.system, rp.sort);
  std::optional<Cursor> cursor;
  if (cursor_text) cursor = decode_cursor(*cursor_text, plan.sort_exprs.size());

  // The links carry the parameters as given, less those a lenient request ignored.
  std::string path = req.base_url;
  if (!scope.compartment_type.empty()) {
    path += "/" + scope.compartment_type + "/" + scope.compartment_id + "/" + types.at(0);
  } else if (!scope.system) {
    path += "/" + types.at(0);
  }
  std::set<std::string> ignored;
  for (const auto& [n, v] : q.ignored) ignored.insert(n);
  std::string query;
  for (const auto& [name, value] : all) {
    if (name == "_cursor" || ignored.count(name)) continue;
    query += (query.empty() ? "?" : "&") + percent_encode(name) + "=" + percent_encode(value);
  }
  const std::string self = path + query;
  auto with_cursor = [&](const std::string& c) { return path + query + (query.empty() ? "?" : "&") + "_cursor=" + c; };

  BundleWriter b("searchset");
  const bool count_only = rp.summary == "count" || rp.count == 0;
  const bool want_total =
      rp.total == "accurate" || rp.total == "estimate" || (rp.total.empty() && !cursor) || count_only;
  if (want_total && rp.total != "none") {
    const bool capped = rp.total.empty() && !count_only;
    std::optional<std::string> direct;
    if (!scope.system && scope.compartment_type.empty() && q.clauses.size() == 1 && !comp.restricted()) {
      try {
        direct = comp.direct_count(types.at(0), q.clauses[0]);
      } catch (const search::SearchFailure& f) {
        query_error(f.error);
      }
    }
    std::string sql = direct && !capped ? *direct : "SELECT COUNT(*) FROM resource r WHERE " + plan.where;
    if (capped)
      sql = "SELECT COUNT(*) FROM (SELECT 1 FROM resource r WHERE " + plan.where + " LIMIT " +
            std::to_string(kDefaultTotalCap + 1) + ") capped";
    auto rs = run_sql(ctx, db, sql, plan.probe_others && !(direct && !capped));
    const auto n = static_cast<std::uint64_t>(rs.integer(0, 0));
    if (!capped || n <= kDefaultTotalCap) b.total(n);
  }
  b.link("self", cursor ? with_cursor(*cursor_text) : self);
  if (count_only) {
    RestResponse resp;
    resp.body = b.finish();
    return resp;
  }

  const auto rows = page_with_links(ctx, db, comp, plan, cursor, rp.count, b, with_cursor);

  std::vector<std::uint64_t> pks;
  for (const auto& r : rows) pks.push_back(r.pk);
  auto matches = fetch_by_pk(db, pks);
  auto included = includes(ctx, db, comp, rp.includes, matches);
  const Json match = {{"search", {{"mode", "match"}}}};
  const Json include = {{"search", {{"mode", "include"}}}};
  for (const auto& m : matches)
    b.entry(req.base_url + "/" + m.type + "/" + m.id, shape_entry(m.type, m.content, rp), match);
  for (const auto& m : included)
    b.entry(req.base_url + "/" + m.type + "/" + m.id, shape_entry(m.type, m.content, rp), include);
  RestResponse resp;
  resp.body = b.finish();
  return resp;
}

// Patient/[id]/$everything: the patient, every resource in its compartment, and what those
// refer to (one level, as included entries), in pk order with cursor paging.
RestResponse patient_everything(Context& ctx, const RestRequest& req, const Route& r) {
  ctx.flush_index();
  auto& db = ctx.db();
  SqlCompiler comp(db, ctx.svc.store.tenant(), ctx.base_url);
  restrict_to_caller(ctx, comp);
  unsigned count = ctx.svc.config.default_count;
  std::optional<std::string> cursor_text;
  std::vector<std::string> types;
  std::optional<std::int64_t> since;
  std::string query;
  for (const auto& [name, value] : req.params) {
    bool keep = true;
    if (name == "_count") {
      count = parse_count(ctx, value);
    } else if (name == "_cursor") {
      cursor_text = value;
      keep = false;
    } else if (name == "_type") {
      for (const auto& t : search::split_list(value, ',')) {
        std::string type = search::unescape(t);
        if (!TypeModel::instance().is_resource_type(type))
          throw FhirError(400, "value", "_type: '" + type + "' is not a resource type", "_type");
        types.push_back(type);
      }
    } else if (name == "_since") {
      auto range = resources::parse_fhir_time_range(value);
      if (!range || value.size() < 20)
        throw FhirError(400, "value", "_since must be an instant (yyyy-mm-ddThh:mm:ss[.sss]+zz:zz)", "_since");
      since = range->lo;
    } else if (name == "_format" || name == "_pretty") {
    } else if (!lenient_handling(req)) {
      throw FhirError(400, "not-supported", "Parameter '" + name + "' is not supported by $everything", name);
    } else {
      keep = false;
    }
    if (keep) query += (query.empty() ? "?" : "&") + percent_encode(name) + "=" + percent_encode(value);
  }
  auto patient = ctx.svc.store.current(db, "Patient", r.id, storage::Lock::kNone);
  require_visible(ctx, "Patient", r.id, patient);
  if (!patient || patient->deleted)
    throw FhirError(patient ? 410 : 404, patient ? "deleted" : "not-found", "Patient/" + r.id + " is not known");

  static const std::string hashes = [] {
    std::vector<std::string> out;
    for (const auto& type : TypeModel::instance().resource_types())
      for (const auto& p : patient_compartment_params(type))
        if (p != "{def}") out.push_back(SqlCompiler::hash({type, p}));
    return search::join_sql(out, ",");
  }();
  Plan plan;
  // The compartment by its index rows; the Patient itself is added to the first page (an
  // OR of the two would make MariaDB read the whole resource table).
  plan.where = "r.tenant_id=" + comp.tenant() +
               " AND r.deleted=0 AND r.pk IN (SELECT resource_pk FROM idx_reference WHERE tenant_id=" + comp.tenant() +
               " AND target_type='Patient' AND target_id=" + comp.quote(r.id) + " AND param_hash IN (" + hashes + "))";
  if (comp.restricted()) plan.where += " AND " + comp.restriction("r");
  const bool with_patient = !cursor_text && (types.empty() || std::count(types.begin(), types.end(), "Patient")) &&
                            (!since || patient->last_updated >= *since);
  if (!types.empty()) {
    std::vector<std::string> quoted;
    for (const auto& t : types) quoted.push_back(comp.quote(t));
    plan.where += " AND r.res_type IN (" + search::join_sql(quoted, ",") + ")";
  }
  if (since) plan.where += " AND r.last_updated>=" + comp.quote(resources::format_sql(*since));
  std::optional<Cursor> cursor;
  if (cursor_text) cursor = decode_cursor(*cursor_text, 0);

  const std::string path = req.base_url + "/Patient/" + r.id + "/$everything";
  auto with_cursor = [&](const std::string& c) { return path + query + (query.empty() ? "?" : "&") + "_cursor=" + c; };
  BundleWriter b("searchset");
  if (!cursor) {
    auto rs = run_sql(ctx, db, "SELECT COUNT(*) FROM resource r WHERE " + plan.where);
    b.total(static_cast<std::uint64_t>(rs.integer(0, 0)) + (with_patient ? 1 : 0));
  }
  b.link("self", cursor ? with_cursor(*cursor_text) : path + query);
  if (count == 0) {  // the total only
    RestResponse resp;
    resp.body = b.finish();
    return resp;
  }
  // The first page holds the Patient and count - 1 compartment resources.
  const bool patient_here = with_patient && count > 0;
  const unsigned room = patient_here ? count - 1 : count;
  const auto rows = page_with_links(ctx, db, comp, plan, cursor, room, b, with_cursor);
  std::vector<std::uint64_t> pks;
  if (patient_here) pks.push_back(patient->pk);
  for (const auto& row : rows) pks.push_back(row.pk);
  auto matches = fetch_by_pk(db, pks);
  IncludeSpec all_refs;
  all_refs.source_type = "*";
  all_refs.param = "*";
  auto included = includes(ctx, db, comp, {all_refs}, matches);
  const Json match = {{"search", {{"mode", "match"}}}};
  const Json include = {{"search", {{"mode", "include"}}}};
  for (const auto& m : matches) b.entry(req.base_url + "/" + m.type + "/" + m.id, m.content, match);
  for (const auto& m : included) b.entry(req.base_url + "/" + m.type + "/" + m.id, m.content, include);
  RestResponse resp;
  resp.body = b.finish();
  return resp;
}

std::vector<std::pair<std::uint64_t, std::string>> find_matches(Context& ctx, const std::string& type,
                                                                const Criteria& criteria, unsigned limit) {
  if (criteria.empty())
    throw FhirError(400, "invalid", "Conditional criteria are empty: give at least one search parameter");
  ParsedQuery q = search::parse_search(type, criteria, false);
  if (!q.ok()) query_error(*q.error);
  if (!q.result.empty())
    throw FhirError(400, "invalid",
                    "Conditional criteria take search parameters only, not '" + q.result.front().first + "'",
                    q.result.front().first);
  ctx.flush_index();
  auto& db = ctx.db();
  SqlCompiler comp(db, ctx.svc.store.tenant(), ctx.base_url);
  restrict_to_caller(ctx, comp);
  SearchScope scope;
  scope.types = {type};
  const std::string where = build_where(comp, scope, scope.types, q);
  const bool probe =
      q.clauses.size() > 1 && std::any_of(q.clauses.begin(), q.clauses.end(), SqlCompiler::equality_lookup);
  auto rs = run_sql(
      ctx, db, "SELECT r.pk, r.res_id FROM resource r WHERE " + where + " ORDER BY r.pk LIMIT " + std::to_string(limit),
      probe);
  std::vector<std::pair<std::uint64_t, std::string>> out;
  for (std::size_t i = 0; i < rs.size(); ++i)
    out.emplace_back(static_cast<std::uint64_t>(rs.integer(i, 0)), rs.take(i, 1));
  return out;
}

}  // namespace kasama::server
