#include "server/search/sql.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "resources/fhir_time.hpp"
#include "resources/references.hpp"
#include "resources/type_model.hpp"
#include "server/search/normalize.hpp"
#include "server/storage/hash.hpp"
#include "server/storage/index_rows.hpp"
#include "server/storage/resource_store.hpp"

namespace kasama::search {

namespace {

constexpr std::size_t kStringChars = 255;

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string i64(std::int64_t v) {
  return std::to_string(v);
}

[[noreturn]] void fail(const Clause& cl, std::string code, std::string message) {
  throw SearchFailure(QueryError{400, std::move(code), std::move(message), cl.name});
}

const char* table_for(ParamType t) {
  switch (t) {
    case ParamType::kToken:
      return "idx_token";
    case ParamType::kString:
      return "idx_string";
    case ParamType::kDate:
      return "idx_date";
    case ParamType::kNumber:
      return "idx_number";
    case ParamType::kQuantity:
      return "idx_quantity";
    case ParamType::kUri:
      return "idx_uri";
    case ParamType::kReference:
      return "idx_reference";
    case ParamType::kComposite:
      return "idx_composite";
    case ParamType::kSpecial:
      break;
  }
  return nullptr;
}

}  // namespace

double implied_half_width(std::string_view d) {
  int exponent = 0;
  if (auto e = d.find_first_of("eE"); e != std::string_view::npos) {
    exponent =
        static_cast<int>(std::clamp(std::strtol(std::string(d.substr(e + 1)).c_str(), nullptr, 10), -400L, 400L));
    d = d.substr(0, e);
  }
  int decimals = 0;
  if (auto dot = d.find('.'); dot != std::string_view::npos) decimals = static_cast<int>(d.size() - dot - 1);
  return 0.5 * std::pow(10.0, exponent - decimals);
}

std::string join_sql(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

std::string like_prefix(std::string_view prefix) {
  std::string out;
  for (char ch : prefix) {
    if (ch == '\\' || ch == '%' || ch == '_') out += '\\';
    out += ch;
  }
  out += '%';
  return out;
}

std::string SqlCompiler::hash(std::initializer_list<std::string_view> parts) {
  return i64(storage::hash64(parts));
}

std::string SqlCompiler::fresh(const char* stem) {
  return stem + std::to_string(++alias_);
}

std::string SqlCompiler::in_index(const char* table, const std::string& cond, const std::string& r, bool negate) {
  last_index_ = negate ? std::nullopt : std::optional<std::pair<std::string, std::string>>({table, cond});
  return r + ".pk " + (negate ? "NOT IN" : "IN") + " (SELECT resource_pk FROM " + table +
         " WHERE tenant_id=" + tenant() + " AND (" + cond + "))";
}

// value in [v - w, v + w) for the implied precision of a number's text.
std::string SqlCompiler::number_range(const std::string& col, const Value& v) {
  const double x = std::strtod(v.number.c_str(), nullptr);
  const double w = implied_half_width(v.number);
  switch (v.prefix) {
    case Prefix::kEq:
      return col + ">=" + num(x - w) + " AND " + col + "<" + num(x + w);
    case Prefix::kNe:
      return "(" + col + "<" + num(x - w) + " OR " + col + ">=" + num(x + w) + ")";
    case Prefix::kGt:
    case Prefix::kSa:
      return col + ">" + num(x);
    case Prefix::kLt:
    case Prefix::kEb:
      return col + "<" + num(x);
    case Prefix::kGe:
      return col + ">=" + num(x);
    case Prefix::kLe:
      return col + "<=" + num(x);
    case Prefix::kAp: {
      const double d = std::max(std::abs(x) * 0.1, w);
      return col + ">=" + num(x - d) + " AND " + col + "<=" + num(x + d);
    }
  }
  return "FALSE";
}

// A target range [lo, hi) against the search value's range [slo, shi), per the prefix
// table of search.html. point: the target is an instant column (hi = lo + 1 ms).
std::string SqlCompiler::date_range(const std::string& lo, const std::string& hi, const Value& v) {
  const std::int64_t slo = v.range->lo, shi = v.range->hi;
  const std::string SLO = i64(slo), SHI = i64(shi);
  const std::string within = lo + ">=" + SLO + " AND " + hi + "<=" + SHI;
  // Each form leads with a single-column range that the (param, lo) or (param, hi) key can
  // scan; the rest of the prefix's definition then filters (ranges are never empty: lo < hi).
  switch (v.prefix) {
    case Prefix::kEq:
      return lo + "<" + SHI + " AND " + within;
    case Prefix::kNe:
      return "(" + lo + "<" + SLO + " OR " + hi + ">" + SHI + ")";
    case Prefix::kGt:
      return hi + ">" + SHI;
    case Prefix::kLt:
      return lo + "<" + SLO;
    case Prefix::kGe:
      return hi + ">" + SLO + " AND (" + hi + ">" + SHI + " OR (" + within + "))";
    case Prefix::kLe:
      return lo + "<" + SHI + " AND (" + lo + "<" + SLO + " OR (" + within + "))";
    case Prefix::kSa:
      return lo + ">=" + SHI;
    case Prefix::kEb:
      return hi + "<=" + SLO;
    case Prefix::kAp: {
      const std::int64_t now = resources::now_millis();
      const std::int64_t mid = slo / 2 + shi / 2;
      const std::int64_t gap = std::llabs(now - mid) / 10;
      const std::int64_t delta = std::max<std::int64_t>(gap, 86'400'000);
      return lo + "<" + i64(shi + delta) + " AND " + hi + ">" + i64(slo - delta);
    }
  }
  return "FALSE";
}

// The resource row's last_updated is an instant t, the range [t, t + 1 ms): the prefix
// table reduced to comparisons of the column itself, so its index serves.
std::string SqlCompiler::last_updated(const Value& v, const std::string& col) {
  const std::int64_t slo = v.range->lo, shi = v.range->hi;
  // DATETIME holds years 1000-9999; bounds outside are clamped (no instant lies beyond).
  constexpr std::int64_t kMin = -30610224000000LL;  // 1000-01-01T00:00:00Z
  constexpr std::int64_t kMax = 253402300799999LL;  // 9999-12-31T23:59:59.999Z
  auto at = [&](std::int64_t ms) { return quote(resources::format_sql(std::clamp(ms, kMin, kMax))); };
  switch (v.prefix) {
    case Prefix::kEq:
      return col + ">=" + at(slo) + " AND " + col + "<" + at(shi);
    case Prefix::kNe:
      return "(" + col + "<" + at(slo) + " OR " + col + ">=" + at(shi) + ")";
    case Prefix::kGt:
    case Prefix::kSa:
      return col + ">=" + at(shi);
    case Prefix::kLt:
    case Prefix::kEb:
      return col + "<" + at(slo);
    case Prefix::kGe:
      return col + ">=" + at(slo);
    case Prefix::kLe:
      return col + "<" + at(shi);
    case Prefix::kAp: {
      const std::int64_t now = resources::now_millis();
      const std::int64_t delta = std::max<std::int64_t>(std::llabs(now - (slo / 2 + shi / 2)) / 10, 86'400'000);
      return col + ">=" + at(slo - delta) + " AND " + col + "<" + at(shi + delta);
    }
  }
  return "FALSE";
}

std::string SqlCompiler::value_expr(const std::string& type, const Clause& cl, const Value& v, const std::string& r) {
  const SearchParam& p = *cl.param;
  const std::string& code = p.code;
  const std::string& mod = cl.modifier;
  const std::string scope(storage::index_scope(type, code));
  auto ph = [&](const std::string& param) { return "param_hash=" + hash({scope, param}); };

  // Parameters kept in the resource row itself.
  if (code == "_id") {
    if (!mod.empty()) fail(cl, "not-supported", "modifier :" + mod + " is not supported on _id");
    // No resource has an id outside [A-Za-z0-9-.]{1,64} (and res_id is ASCII: comparing it
    // with other text would be a collation error).
    if (!resources::is_valid_id(v.text)) return "FALSE";
    return r + ".res_id=" + quote(v.text);
  }
  if (code == "_lastUpdated") return last_updated(v, r + ".last_updated");

  switch (p.type) {
    case ParamType::kToken: {
      if (mod == "text") {
        const std::string f = truncate_chars(fold_text(v.text), kStringChars);
        return in_index("idx_string", ph(code + ":text") + " AND folded LIKE " + quote(like_prefix(f)), r);
      }
      if (mod == "in" || mod == "not-in" || mod == "above" || mod == "below")
        fail(cl, "not-supported", "modifier :" + mod + " needs terminology services, which are not available");
      std::string cond;
      if (mod == "of-type") {
        cond = "hash_sys_value=" + hash({scope, code + ":of-type", v.system, v.code + "|" + v.text});
      } else if (!v.has_system) {
        cond = "hash_value=" + hash({scope, code, v.code});
      } else if (v.code.empty()) {
        if (v.system.empty()) fail(cl, "value", "'|' alone names no system and no code");
        cond = "hash_sys=" + hash({scope, code, v.system});
      } else {
        cond = "hash_sys_value=" + hash({scope, code, v.system, v.code});
        if (v.system.empty()) cond += " AND sys IS NULL";
      }
      return in_index("idx_token", cond, r, mod == "not");
    }
    case ParamType::kString: {
      const std::string f = truncate_chars(fold_text(v.text), kStringChars);
      if (mod == "exact")
        return in_index("idx_string",
                        ph(code) + " AND folded=" + quote(f) + " AND hash_exact=" + hash({scope, code, v.text}), r);
      const std::string pattern = mod == "contains" ? "%" + like_prefix(f) : like_prefix(f);
      return in_index("idx_string", ph(code) + " AND folded LIKE " + quote(pattern), r);
    }
    case ParamType::kDate:
      return in_index("idx_date", ph(code) + " AND " + date_range("lo", "hi", v), r);
    case ParamType::kNumber:
      return in_index("idx_number", ph(code) + " AND " + number_range("val", v), r);
    case ParamType::kQuantity: {
      std::string cond;
      if (v.has_system) {
        cond = "hash_sys_code=" + hash({scope, code, v.system, v.code});
      } else if (!v.code.empty()) {
        cond = "hash_code=" + hash({scope, code, v.code});
      } else {
        cond = ph(code);
      }
      return in_index("idx_quantity", cond + " AND " + number_range("val", v), r);
    }
    case ParamType::kUri: {
      if (mod == "below") return in_index("idx_uri", ph(code) + " AND val LIKE " + quote(like_prefix(v.text)), r);
      if (mod == "above") {
        // Every stored value that is the search value cut at a '/' (or the whole of it).
        std::vector<std::string> hashes;
        std::string s = v.text;
        while (true) {
          hashes.push_back(hash({scope, code, s}));
          auto slash = s.find_last_of('/');
          if (slash == std::string::npos || slash < 8) break;  // stop at "scheme://"
          s = s.substr(0, slash);
        }
        return in_index("idx_uri", "hash_value IN (" + join_sql(hashes, ",") + ")", r);
      }
      return in_index("idx_uri", "hash_value=" + hash({scope, code, v.text}), r);
    }
    case ParamType::kReference: {
      if (mod == "identifier") {
        std::string cond = v.has_system ? "hash_sys_value=" + hash({scope, code + ":identifier", v.system, v.code})
                                        : "hash_value=" + hash({scope, code + ":identifier", v.code});
        return in_index("idx_token", cond, r);
      }
      if (mod == "above" || mod == "below")
        fail(cl, "not-supported", "modifier :" + mod + " on references is not supported");
      std::string rtype = v.ref_type, rid = v.ref_id;
      if (!v.url.empty()) {
        auto local = resources::parse_local_reference(v.url, base_url_);
        if (!local)
          return in_index("idx_reference",
                          ph(code) + " AND target_id=" + quote(storage::url_key(v.url)) + " AND url=" + quote(v.url),
                          r);
        rtype = local->type;
        rid = local->id;
      }
      if (auto h = rid.find("/_history/"); h != std::string::npos) rid.resize(h);
      std::string cond = ph(code) + " AND target_id=" + quote(rid);
      if (rtype.empty() && !mod.empty()) rtype = mod;
      if (!rtype.empty()) cond += " AND target_type=" + quote(rtype);
      return in_index("idx_reference", cond, r);
    }
    case ParamType::kComposite: {
      if (v.components.size() != 2 || p.components.size() != 2)
        fail(cl, "not-supported", "composite parameter " + code + " has more than two parts; not supported");
      const SearchParam* p1 = Registry::instance().by_url(p.components[0].definition);
      if (!p1 || p1->type != ParamType::kToken)
        fail(cl, "not-supported", "composite parameter " + code + " does not start with a token; not supported");
      const Value& a = v.components[0];
      const Value& b = v.components[1];
      std::string cond = ph(code) + " AND ";
      cond +=
          a.has_system ? "hash1_sv=" + hash({scope, code, a.system, a.code}) : "hash1_v=" + hash({scope, code, a.code});
      const SearchParam* p2 = Registry::instance().by_url(p.components[1].definition);
      switch (p2 ? p2->type : ParamType::kSpecial) {
        case ParamType::kToken:
          cond += " AND " + (b.has_system ? "hash2_sv=" + hash({scope, code, b.system, b.code})
                                          : "hash2_v=" + hash({scope, code, b.code}));
          break;
        case ParamType::kQuantity:
          if (b.has_system) {
            cond += " AND hash2_sv=" + hash({scope, code, b.system, b.code});
          } else if (!b.code.empty()) {
            cond += " AND hash2_v=" + hash({scope, code, b.code});
          }
          cond += " AND " + number_range("num", b);
          break;
        case ParamType::kNumber:
          cond += " AND " + number_range("num", b);
          break;
        case ParamType::kDate:
          cond += " AND " + date_range("lo", "hi", b);
          break;
        case ParamType::kString:
          cond += " AND text2 LIKE " + quote(like_prefix(truncate_chars(fold_text(b.text), kStringChars)));
          break;
        case ParamType::kReference:
          cond += " AND hash2_v=" + hash({scope, code, b.url.empty() ? b.ref_type + "/" + b.ref_id : b.url});
          break;
        default:
          fail(cl, "not-supported", "composite parameter " + code + " is not supported");
      }
      return in_index("idx_composite", cond, r);
    }
    case ParamType::kSpecial:
      break;
  }
  fail(cl, "not-supported", "search parameter '" + code + "' is not supported");
}

std::string SqlCompiler::clause(const std::string& type, const Clause& cl, const std::string& r) {
  if (cl.has) {
    // _has:Source:param:inner — some Source whose param refers to this resource matches inner.
    const Has& h = *cl.has;
    const std::string s = fresh("h");
    return r + ".res_id IN (SELECT " + s + ".target_id FROM idx_reference " + s + " JOIN resource " + s + "r ON " + s +
           "r.pk=" + s + ".resource_pk WHERE " + s + ".tenant_id=" + tenant() + " AND " + s +
           ".param_hash=" + hash({h.source_type, h.ref_param->code}) + " AND " + s + ".target_type=" + quote(type) +
           " AND " + clause(h.source_type, h.inner, s + "r") + restricted(s + "r") + ")";
  }
  if (cl.chain) {
    const Chain& ch = *cl.chain;
    const std::string x = fresh("c");
    const std::string t = fresh("t");
    return r + ".pk IN (SELECT " + x + ".resource_pk FROM idx_reference " + x + " JOIN resource " + t + " ON " + t +
           ".tenant_id=" + tenant() + " AND " + t + ".res_type=" + x + ".target_type AND " + t + ".res_id=" + x +
           ".target_id AND " + t + ".deleted=0 WHERE " + x + ".tenant_id=" + tenant() + " AND " + x +
           ".param_hash=" + hash({type, cl.param->code}) + " AND " + x + ".target_type=" + quote(ch.target_type) +
           " AND " + clause(ch.target_type, ch.inner, t) + restricted(t) + ")";
  }
  const SearchParam& p = *cl.param;
  if (p.type == ParamType::kSpecial || (p.expression.empty() && p.code != "_id" && p.code != "_lastUpdated"))
    fail(cl, "not-supported", "search parameter '" + p.code + "' is not supported");
  if (cl.modifier == "missing") {
    // Every value is true or false; several values OR together.
    bool want_missing = false, want_present = false;
    for (const auto& v : cl.values) (v.missing ? want_missing : want_present) = true;
    if (p.code == "_id" || p.code == "_lastUpdated") return want_present ? "TRUE" : "FALSE";
    if (want_missing && want_present) return "TRUE";
    // Correlated on (resource_pk, param_hash), the key every index table has.
    const std::string m = fresh("m");
    return std::string(want_missing ? "NOT " : "") + "EXISTS (SELECT 1 FROM " + table_for(p.type) + " " + m +
           " WHERE " + m + ".resource_pk=" + r + ".pk AND " + m +
           ".param_hash=" + hash({storage::index_scope(type, p.code), p.code}) + ")";
  }
  std::vector<std::string> parts;
  if (cl.modifier == "not" && p.type == ParamType::kToken) {
    // :not with several values: none of them.
    for (const auto& v : cl.values) parts.push_back(value_expr(type, cl, v, r));
    return "(" + join_sql(parts, " AND ") + ")";
  }
  for (const auto& v : cl.values) parts.push_back(value_expr(type, cl, v, r));
  if (parts.empty()) return "FALSE";
  return parts.size() == 1 ? parts[0] : "(" + join_sql(parts, " OR ") + ")";
}

bool SqlCompiler::single_valued(const SearchParam& p) {
  // A plain path to a direct element of the resource with at most one value.
  const std::string& e = p.expression;
  if (e.empty() || std::count(e.begin(), e.end(), '.') != 1) return false;
  for (char c : e)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.') return false;
  const auto* el = resources::TypeModel::instance().find_element(e);
  return el && el->max == 1 && !el->choice;
}

std::string SqlCompiler::same_row_dates(const std::string& type, const std::vector<const Clause*>& clauses,
                                        const std::string& r) {
  const SearchParam& p = *clauses.front()->param;
  std::string cond = "param_hash=" + hash({storage::index_scope(type, p.code), p.code});
  // A date, dateTime or instant spans at most a year (its coarsest precision), so "ends
  // after X" also bounds where it starts: lo > X - 367 days. With the other bound from lt/le
  // that makes one closed range on the (param, lo) key.
  const auto* el = resources::TypeModel::instance().find_element(p.expression);
  const std::string t = el && el->types.size() == 1 ? el->types[0].code : "";
  const bool bounded = t == "date" || t == "dateTime" || t == "instant";
  constexpr std::int64_t kYear = 367LL * 86'400'000;
  for (const Clause* cl : clauses) {
    const Value& v = cl->values.front();
    cond += " AND " + date_range("lo", "hi", v);
    if (bounded && v.prefix == Prefix::kGe) cond += " AND lo>" + i64(v.range->lo - kYear);
    if (bounded && v.prefix == Prefix::kGt) cond += " AND lo>" + i64(v.range->hi - kYear);
  }
  return in_index("idx_date", cond, r);
}

bool SqlCompiler::equality_lookup(const Clause& cl) {
  if (cl.has || cl.chain) return true;  // a join that starts from index keys
  if (!cl.param || cl.modifier == "missing" || cl.modifier == "not" || cl.modifier == "text") return false;
  switch (cl.param->type) {
    case ParamType::kToken:
    case ParamType::kReference:
    case ParamType::kComposite:
      return cl.param->code != "_lastUpdated";
    case ParamType::kUri:
      return cl.modifier.empty();
    case ParamType::kString:
      return cl.modifier == "exact";
    default:
      return false;
  }
}

std::optional<std::string> SqlCompiler::direct_count(const std::string& type, const Clause& cl) {
  if (cl.chain || cl.has || !cl.param || cl.values.size() != 1) return std::nullopt;
  if (cl.modifier == "missing" || cl.modifier == "not") return std::nullopt;
  // Common parameters (_tag, _profile, ...) are hashed under "Resource": their rows span types.
  if (storage::index_scope(type, cl.param->code) != type) return std::nullopt;
  last_index_.reset();
  const std::string expr = value_expr(type, cl, cl.values[0], "r");
  if (!last_index_) return std::nullopt;
  const auto& [table, cond] = *last_index_;
  // value_expr must have been exactly one positive index lookup.
  if (expr != "r.pk IN (SELECT resource_pk FROM " + table + " WHERE tenant_id=" + tenant() + " AND (" + cond + "))")
    return std::nullopt;
  return "SELECT COUNT(DISTINCT resource_pk) FROM " + table + " WHERE tenant_id=" + tenant() + " AND (" + cond + ")";
}

std::string SqlCompiler::sort_value(const std::string& type, const SearchParam& p, bool descending,
                                    const std::string& r) {
  const char* agg = descending ? "MAX" : "MIN";
  const std::string where =
      " WHERE resource_pk=" + r + ".pk AND param_hash=" + hash({storage::index_scope(type, p.code), p.code}) + ")";
  switch (p.type) {
    case ParamType::kString:
      return std::string("(SELECT ") + agg + "(folded) FROM idx_string" + where;
    case ParamType::kToken:
      return std::string("(SELECT ") + agg + "(val) FROM idx_token" + where;
    case ParamType::kDate:
      return std::string("(SELECT ") + agg + (descending ? "(hi)" : "(lo)") + " FROM idx_date" + where;
    case ParamType::kNumber:
      return std::string("(SELECT ") + agg + "(val) FROM idx_number" + where;
    case ParamType::kQuantity:
      return std::string("(SELECT ") + agg + "(val) FROM idx_quantity" + where;
    case ParamType::kUri:
      return std::string("(SELECT ") + agg + "(val) FROM idx_uri" + where;
    case ParamType::kReference:
      return std::string("(SELECT ") + agg + "(CONCAT(target_type,'/',target_id)) FROM idx_reference" + where;
    default:
      return {};
  }
}

}  // namespace kasama::search
