#include "server/interactions/support.hpp"

#include "server/access/category.hpp"
#include "server/access/policy.hpp"
#include "server/interactions/search_engine.hpp"
#include "server/search/extract.hpp"

#include <algorithm>
#include <random>
#include <set>

#include "resources/fhir_time.hpp"
#include "resources/references.hpp"
#include "resources/type_model.hpp"
#include "resources/validator.hpp"
#include "server/storage/hash.hpp"

namespace kasama::server {

using resources::TypeModel;

std::string new_resource_id() {
  // UUID version 4: unguessable, and unique across servers without coordination.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t a = rng(), b = rng();
  a = (a & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;
  b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (int i = 15; i >= 0; --i) {
    s.push_back(kHex[(a >> (i * 4)) & 0xF]);
    if (i == 8 || i == 4) s.push_back('-');
  }
  s.push_back('-');
  for (int i = 15; i >= 0; --i) {
    s.push_back(kHex[(b >> (i * 4)) & 0xF]);
    if (i == 12) s.push_back('-');
  }
  return s;
}

void require_resource_type(const std::string& type) {
  if (!TypeModel::instance().is_resource_type(type)) {
    throw FhirError(404, "not-supported", "Unknown resource type '" + type + "'", type);
  }
}

void require_valid_id(const std::string& id, const char* what) {
  if (!resources::is_valid_id(id)) {
    throw FhirError(400, "value",
                    std::string("Invalid ") + what + " '" + id.substr(0, 80) +
                        "': 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'");
  }
}

void validate_or_throw(const Json& resource, const std::string& where_prefix) {
  auto found = resources::validate_resource(resource);
  if (found.empty()) return;
  bool structural = false;
  std::vector<Issue> issues;
  for (auto& i : found) {
    if (i.code != "required") structural = true;
    std::string expr = i.expression;
    if (!where_prefix.empty()) expr = where_prefix + "." + expr;
    issues.push_back(Issue{"error", i.code, i.message, expr});
  }
  // Malformed content is a bad request; content that is well formed but breaks the base
  // definition's cardinality rules is unprocessable.
  throw FhirError(structural ? 400 : 422, std::move(issues));
}

Json request_resource(const RestRequest& req, const std::string& expected_type, bool validate) {
  Json r;
  if (req.resource) {
    r = *req.resource;
  } else {
    if (req.body.find_first_not_of(" \t\r\n") == std::string::npos) {
      throw FhirError(400, "required", "The request body is empty; a " + expected_type + " resource is required");
    }
    auto parsed = resources::parse_json(req.body);
    if (!parsed.ok) {
      throw FhirError(400, "structure",
                      "The body is not valid JSON (at byte " + std::to_string(parsed.offset) + "): " + parsed.error);
    }
    r = std::move(parsed.value);
  }
  if (!r.is_object()) throw FhirError(400, "structure", "The body must be a JSON object holding a FHIR resource");
  auto rt = r.find("resourceType");
  if (rt == r.end() || !rt->is_string()) {
    throw FhirError(400, "required", "The resource has no resourceType", "resourceType");
  }
  const std::string& type = rt->get_ref<const std::string&>();
  if (!TypeModel::instance().is_resource_type(type)) {
    throw FhirError(400, "not-supported", "Unknown resourceType '" + type.substr(0, 80) + "'", "resourceType");
  }
  if (type != expected_type) {
    throw FhirError(400, "invalid", "The body holds a " + type + " but this endpoint takes a " + expected_type,
                    "resourceType");
  }
  if (validate) validate_or_throw(r);
  return r;
}

std::optional<std::uint32_t> if_match_version(const RestRequest& req) {
  const std::string* h = req.header("if-match");
  if (!h) return std::nullopt;
  std::string_view v = *h;
  if (v.substr(0, 2) == "W/") v.remove_prefix(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  std::uint32_t n = 0;
  if (v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw FhirError(400, "value", "If-Match must be a version ETag such as W/\"3\"", "If-Match");
  }
  for (char c : v) n = n * 10 + static_cast<std::uint32_t>(c - '0');
  return n;
}

std::string etag(std::uint32_t version) {
  return "W/\"" + std::to_string(version) + "\"";
}

namespace {

// The resource as stored: resourceType, id and meta first, then the rest in the client's order.
std::string finalize(Json& resource, const std::string& type, const std::string& id, std::uint32_t version,
                     std::int64_t last_updated) {
  Json out = Json::object();
  out["resourceType"] = type;
  out["id"] = id;
  Json meta = Json::object();
  meta["versionId"] = std::to_string(version);
  meta["lastUpdated"] = resources::format_instant(last_updated);
  auto m = resource.find("meta");
  if (m != resource.end() && m->is_object()) {
    for (auto& [k, v] : m->items()) {
      if (k != "versionId" && k != "lastUpdated") meta[k] = v;
    }
  }
  out["meta"] = std::move(meta);
  for (auto& [k, v] : resource.items()) {
    if (k != "resourceType" && k != "id" && k != "meta") out[k] = v;
  }
  return resources::dump_json(out);
}

std::vector<storage::LinkRow> local_links(const Json& resource, const std::string& base_url) {
  std::vector<storage::LinkRow> rows;
  std::set<std::pair<std::string, std::string>> seen;
  for (auto& f : resources::find_references(resource)) {
    auto local = resources::parse_local_reference(f.reference, base_url);
    if (!local || !TypeModel::instance().is_resource_type(local->type)) continue;
    if (!seen.emplace(local->type, local->id).second) continue;
    rows.push_back({local->type, local->id, f.path});
  }
  return rows;
}

// The time a version is written: taken after the resource's row lock (so a version is never
// older than the one it replaces), one time for all entries of a transaction Bundle.
std::int64_t write_time(Context& ctx, const std::optional<storage::CurrentRow>& existing) {
  std::int64_t t = ctx.in_transaction_bundle ? ctx.now : resources::now_millis();
  if (existing) t = std::max(t, existing->last_updated + 1);
  return t;
}

void queue_cache_put(Context& ctx, const WriteResult& w, bool deleted, std::uint8_t category,
                     std::vector<std::string> subjects) {
  auto entry = std::make_shared<storage::CachedResource>();
  entry->version = w.version;
  entry->last_updated = w.last_updated;
  entry->deleted = deleted;
  entry->content = w.content;
  entry->category = category;
  entry->subjects = std::make_shared<const std::vector<std::string>>(std::move(subjects));
  ctx.after_commit.push_back(
      [&cache = ctx.svc.cache, type = w.type, id = w.id, entry] { cache.written(type, id, entry); });
}

}  // namespace

std::vector<std::string> subjects_of(const std::string& type, const std::string& id, const storage::IndexRows& rows) {
  std::vector<std::string> out;
  if (type == "Patient") out.push_back(id);
  const auto& params = patient_compartment_params(type);
  for (const auto& ref : rows.references) {
    if (ref.target_type == "Patient" && !ref.target_id.empty() && ref.target_id[0] != '~' &&
        std::find(params.begin(), params.end(), ref.param) != params.end())
      out.push_back(ref.target_id);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void note_hidden(Context& ctx, std::uint8_t category, bool opted_out) {
  if (!ctx.audit_notes) return;
  ctx.audit_notes->denied = true;
  ctx.audit_notes->detail = opted_out ? "hidden: the resident opted out (R-21)"
                                      : "hidden: category '" + access::Categories::instance().code(category) +
                                            "' is outside the caller's range (R-20)";
}

bool visible(Context& ctx, std::uint64_t pk, std::uint32_t version, std::uint8_t category,
             const std::vector<std::string>* known_subjects) {
  const access::Filter* f = ctx.access.get();
  if (!f) return true;
  if (!f->reads(category)) {
    note_hidden(ctx, category, false);
    return false;
  }
  if (f->hidden_patients().empty()) return true;
  const bool hidden =
      known_subjects ? f->hides(*known_subjects) : f->hides(ctx.svc.store.subjects(ctx.db(), pk, version));
  if (hidden) note_hidden(ctx, category, true);
  return !hidden;
}

FhirError not_known(const std::string& type, const std::string& id) {
  return FhirError(404, "not-found", type + "/" + id + " is not known");
}

void require_visible(Context& ctx, const std::string& type, const std::string& id,
                     const std::optional<storage::CurrentRow>& cur) {
  if (!cur || !ctx.access) return;
  // A delete marker carries the labels of the version it deleted: hidden the same way.
  if (!visible(ctx, cur->pk, cur->version, cur->category)) throw not_known(type, id);
}

namespace {

[[noreturn]] void refuse_category(const std::string& type, access::Category c) {
  const auto& cats = access::Categories::instance();
  throw FhirError(403, "forbidden",
                  "この情報区分(" + cats.display(c) + ")への書き込み権限がありません / the access range of your "
                  "institution or account does not allow writing " + type + " resources of category '" + cats.code(c) +
                  "' (R-20)");
}

void queue_opt_out_change(Context& ctx) {
  ctx.after_commit.push_back([&reg = ctx.svc.optouts] { reg.changed(); });
}

}  // namespace

namespace {

// Opt-outs are the secretariat's to record, change and withdraw (R-21, OM 3.1(3)): a Consent
// under the opt-out policy — as written, or as stored before — is refused to anyone else.
void check_opt_out_writer(Context& ctx, const std::string& id, const std::optional<storage::CurrentRow>& existing,
                          const Json* resource) {
  const auth::Principal* p = ctx.principal;
  if (!p || p->kind == "internal" || p->role == "secretariat") return;
  bool opt_out = resource && access::under_opt_out_policy(*resource);
  if (!opt_out && existing && !existing->deleted) {
    auto cur = ctx.svc.store.read_current(ctx.db(), "Consent", id);
    if (cur && !cur->deleted) {
      auto parsed = resources::parse_json(cur->content);
      opt_out = parsed.ok && access::under_opt_out_policy(parsed.value);
    }
  }
  if (opt_out) {
    throw FhirError(403, "forbidden",
                    "オプトアウトの記録・変更は運営事務局が行います / opt-outs are recorded, changed and withdrawn by "
                    "the secretariat (R-21)");
  }
}

}  // namespace

WriteResult store_resource(Context& ctx, Json resource, const std::string& type, const std::string& id,
                           const std::optional<storage::CurrentRow>& existing, const std::string& method) {
  auto& store = ctx.svc.store;
  auto& db = ctx.db();
  const access::Filter* filter = ctx.access.get();
  WriteResult w;
  w.type = type;
  w.id = id;
  w.created = !existing || existing->deleted;
  // The information category is the server's: a label of its system in the request is
  // replaced by what the rules say.
  const auto& cats = access::Categories::instance();
  const access::Category category = cats.classify(type, resource);
  cats.set_label(resource, category);
  if (type == "Consent") check_opt_out_writer(ctx, id, existing, &resource);
  if (filter) {
    if (existing && !existing->deleted) {
      require_visible(ctx, type, id, existing);
      if (!filter->writes(existing->category)) refuse_category(type, existing->category);
    }
    if (!filter->writes(category)) refuse_category(type, category);
  }
  if (existing && !existing->deleted && method != "POST") {
    // An update that changes nothing keeps the current version (no history noise).
    auto cur = store.read_current(db, type, id);
    if (cur && !cur->deleted) {
      Json copy = resource;
      if (finalize(copy, type, id, cur->version, cur->last_updated) == cur->content) {
        w.pk = cur->pk;
        w.version = cur->version;
        w.last_updated = cur->last_updated;
        w.content = std::move(cur->content);
        w.changed = false;
        return w;
      }
    }
  }
  w.version = existing ? existing->version + 1 : 1;
  w.last_updated = write_time(ctx, existing);
  w.content = finalize(resource, type, id, w.version, w.last_updated);

  // The search index is written in the resource's own transaction, from the content as stored.
  storage::IndexRows rows = search::Extractor::instance().extract(type, resource, ctx.base_url);
  storage::AccessLabels labels;
  labels.category = category;
  labels.subjects = subjects_of(type, id, rows);
  if (filter && ctx.svc.config.ref_integrity != RefIntegrity::kStrict) {
    // Data about a resident hidden from the caller: answered as for a resident who is not
    // there. With strict integrity (the default) the integrity check does that with
    // the very answer a missing target gets (it counts hidden targets as missing); without
    // it a missing target would be accepted, so the write is refused here.
    for (const auto& s : labels.subjects) {
      if (filter->hides_patient(s) && !(type == "Patient" && s == id)) {
        FhirError err(409, "not-found",
                      "Referential integrity: the resource refers to Patient/" + s +
                          ", which does not exist on this server");
        err.entry = ctx.current_entry;
        throw err;
      }
    }
  }
  auto links = local_links(resource, ctx.base_url);
  if (ctx.svc.config.ref_integrity == RefIntegrity::kStrict) {
    for (const auto& l : links) {
      if (l.target_type == type && l.target_id == id) continue;
      ctx.pending_links.push_back({l.target_type, l.target_id, l.path, ctx.current_entry});
    }
  }
  try {
    w.pk = store.write_version(db, existing, type, id, w.version, w.last_updated, method, w.content, labels);
  } catch (const storage::DbError& e) {
    // Two creates of the same new id raced: run again, and the loser becomes an update.
    if (e.duplicate_key() && !existing) throw RetryTransaction{};
    throw;
  }
  if (type == "Consent") {
    std::vector<storage::OptOutRow> optouts;
    for (auto& o : access::opt_outs_of(resource, ctx.base_url))
      optouts.push_back({std::move(o.patient_id), std::move(o.institution_id), o.start_ms, o.end_ms});
    if (existing || !optouts.empty()) {
      store.replace_opt_outs(db, w.pk, optouts);
      queue_opt_out_change(ctx);
    }
  }
  auto& pending = ctx.pending_index[w.pk];
  pending.existed = pending.existed || existing.has_value();
  pending.type = type;
  pending.rows = std::move(rows);
  if (existing || !links.empty()) store.replace_links(db, w.pk, links);
  queue_cache_put(ctx, w, false, category, std::move(labels.subjects));
  return w;
}

WriteResult store_delete(Context& ctx, const std::string& type, const std::string& id,
                         const storage::CurrentRow& existing) {
  auto& store = ctx.svc.store;
  auto& db = ctx.db();
  if (ctx.access) {
    require_visible(ctx, type, id, existing);
    if (!ctx.access->writes(existing.category)) refuse_category(type, existing.category);
  }
  if (type == "Consent") check_opt_out_writer(ctx, id, std::optional<storage::CurrentRow>(existing), nullptr);
  if (ctx.svc.config.ref_integrity != RefIntegrity::kOff)
    ctx.pending_deletes.push_back({type, id, existing.pk, ctx.current_entry});
  WriteResult w;
  w.type = type;
  w.id = id;
  w.version = existing.version + 1;
  w.last_updated = write_time(ctx, existing);
  // The marker keeps the deleted version's labels: its history stays hidden from whom the
  // version was.
  storage::AccessLabels labels;
  labels.category = existing.category;
  labels.subjects = store.subjects(db, existing.pk, existing.version);
  w.pk = store.write_version(db, existing, type, id, w.version, w.last_updated, "DELETE", "", labels);
  ctx.pending_index.erase(w.pk);
  store.clear_dependents(db, w.pk);
  if (type == "Consent") {
    store.replace_opt_outs(db, w.pk, {});
    queue_opt_out_change(ctx);
  }
  queue_cache_put(ctx, w, true, existing.category, std::move(labels.subjects));
  return w;
}

void check_integrity(Context& ctx) {
  auto& store = ctx.svc.store;
  for (const auto& d : ctx.pending_deletes) {
    auto refs = store.referrers(ctx.db(), d.type, d.id, d.pk, 6);
    if (refs.empty()) continue;
    if (ctx.access) {
      // Name only referrers the caller may see; hidden ones still keep the target (the one
      // thing a refusal here cannot hide: server/access/README.md).
      auto& db = ctx.db();
      refs = store.referrers(db, d.type, d.id, d.pk, 6,
                             ctx.access->sql("r.category", "r.pk", "r.version",
                                             [&db](std::string_view v) { return db.quote(v); }));
      if (refs.empty()) refs.push_back("other resources");
    }
    std::string list;
    for (std::size_t i = 0; i < refs.size() && i < 5; ++i) list += (i ? ", " : "") + refs[i];
    if (refs.size() > 5) list += ", ...";
    FhirError err(
        409, "conflict",
        "Cannot delete " + d.type + "/" + d.id + ": it is referenced by " + list + " (referential integrity)");
    err.entry = d.entry;
    throw err;
  }
  std::set<std::pair<std::string, std::string>> checked;
  for (const auto& l : ctx.pending_links) {
    if (!checked.emplace(l.type, l.id).second) continue;
    // A shared lock keeps the target from being deleted until this transaction ends.
    auto target = store.current(ctx.db(), l.type, l.id, storage::Lock::kShare);
    // A target hidden from the caller is answered for as one that is not there.
    if (target && !target->deleted && !visible(ctx, target->pk, target->version, target->category)) target.reset();
    if (!target || target->deleted) {
      FhirError err(409, "not-found",
                    "Referential integrity: " + l.path + " refers to " + l.type + "/" + l.id + ", which " +
                        (target ? "has been deleted" : "does not exist on this server"),
                    l.path);
      err.entry = l.entry;
      throw err;
    }
  }
  ctx.pending_links.clear();
  ctx.pending_deletes.clear();
}

RestResponse write_response(const RestRequest& req, const WriteResult& w, int status, const std::string& base_url) {
  RestResponse r;
  r.status = status;
  r.location = base_url + "/" + w.type + "/" + w.id + "/_history/" + std::to_string(w.version);
  r.version_id = std::to_string(w.version);
  r.last_modified = w.last_updated;
  switch (return_preference(req)) {
    case ReturnPref::kMinimal:
      break;
    case ReturnPref::kOutcome: {
      std::string what = status == 201 ? "Created " : (w.changed ? "Updated " : "No change to ");
      r.body = outcome_json("information", "informational",
                            what + w.type + "/" + w.id + " (version " + std::to_string(w.version) + ")");
      r.body_is_outcome = true;
      break;
    }
    default:
      r.body = w.content;
  }
  return r;
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~' || c == ':' || c == ',' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view s) {
  std::string out;
  unsigned buf = 0;
  int bits = 0, pad = 0;
  for (char c : s) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=') {
      ++pad;
      continue;
    } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    else
      return std::nullopt;
    if (pad) return std::nullopt;
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  if (pad > 2) return std::nullopt;
  return out;
}

void split_url(std::string_view url, std::vector<std::string>& segments,
               std::vector<std::pair<std::string, std::string>>& params) {
  auto q = url.find('?');
  std::string_view path = url.substr(0, q);
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (!path.empty()) {
    auto slash = path.find('/');
    segments.push_back(percent_decode(path.substr(0, slash), false));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  if (q == std::string_view::npos) return;
  std::string_view query = url.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    if (!kv.empty()) {
      auto eq = kv.find('=');
      params.emplace_back(percent_decode(kv.substr(0, eq), true),
                          eq == std::string_view::npos ? std::string() : percent_decode(kv.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
}

Criteria parse_criteria(std::string_view query) {
  std::vector<std::string> ignored;
  Criteria c;
  std::string q = "?" + std::string(query.substr(query.find('?') == std::string_view::npos ? 0 : query.find('?') + 1));
  split_url(q, ignored, c);
  return c;
}

std::vector<std::pair<std::uint64_t, std::string>> match_criteria(Context& ctx, const std::string& type,
                                                                  const Criteria& criteria, unsigned limit) {
  return find_matches(ctx, type, criteria, limit);
}

// Claims the criteria for the new resource. Losing to a concurrent twin means the whole
// transaction runs again and then finds the twin's resource. A key left behind by a
// resource that no longer matches (updated or deleted since) is stale and is replaced.
void claim_criteria(Context& ctx, const std::string& type, const Criteria& criteria, std::uint64_t pk) {
  auto& store = ctx.svc.store;
  const std::int64_t hash = criteria_hash(type, criteria);
  try {
    store.claim_conditional_key(ctx.db(), type, hash, pk);
    return;
  } catch (const storage::DbError& e) {
    if (e.deadlock_or_timeout()) throw RetryTransaction{};
    if (!e.duplicate_key()) throw;
  }
  // Statements see what others committed (READ COMMITTED): a twin that just won is visible.
  for (const auto& m : match_criteria(ctx, type, criteria, 2)) {
    if (m.first != pk) throw RetryTransaction{};
  }
  auto owner = store.conditional_key_owner(ctx.db(), type, hash);
  if (owner && *owner != pk) store.drop_conditional_key(ctx.db(), type, hash, *owner);
  try {
    store.claim_conditional_key(ctx.db(), type, hash, pk);
  } catch (const storage::DbError& e) {
    if (e.duplicate_key() || e.deadlock_or_timeout()) throw RetryTransaction{};
    throw;
  }
}

std::int64_t criteria_hash(const std::string& type, const Criteria& criteria) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : criteria) parts.push_back(k + "=" + v);
  std::sort(parts.begin(), parts.end());
  std::string joined;
  for (const auto& p : parts) joined += p + "&";
  return storage::hash64({type, joined});
}

BundleWriter::BundleWriter(const std::string& type) {
  head_ = "{\"resourceType\":\"Bundle\",\"id\":\"" + new_resource_id() + "\",\"meta\":{\"lastUpdated\":\"" +
          resources::format_instant(resources::now_millis()) + "\"},\"type\":\"" + type + "\"";
}

void BundleWriter::total(std::uint64_t n) {
  head_ += ",\"total\":" + std::to_string(n);
}

void BundleWriter::link(const std::string& relation, const std::string& url) {
  if (!links_.empty()) links_ += ',';
  links_ += "{\"relation\":\"" + relation + "\",\"url\":";
  resources::append_json_string(links_, url);
  links_ += '}';
}

void BundleWriter::entry(const std::string& full_url, const std::string& resource_json, const Json& extra) {
  if (any_entry_) entries_ += ',';
  any_entry_ = true;
  entries_ += '{';
  bool first = true;
  if (!full_url.empty()) {
    entries_ += "\"fullUrl\":";
    resources::append_json_string(entries_, full_url);
    first = false;
  }
  if (!resource_json.empty()) {
    entries_ += first ? "" : ",";
    entries_ += "\"resource\":";
    entries_ += resource_json;
    first = false;
  }
  if (extra.is_object()) {
    for (const auto& [k, v] : extra.items()) {
      if (!first) entries_ += ',';
      first = false;
      resources::append_json_string(entries_, k);
      entries_ += ':';
      resources::dump_json_to(entries_, v);
    }
  }
  entries_ += '}';
}

std::string BundleWriter::finish() {
  std::string out = std::move(head_);
  if (!links_.empty()) out += ",\"link\":[" + links_ + "]";
  if (any_entry_) out += ",\"entry\":[" + entries_ + "]";
  out += '}';
  return out;
}

}  // namespace kasama::server
