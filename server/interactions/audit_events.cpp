// The audit trail as R4 AuditEvents, for auditors (and the sysadmin): read, search and
// AuditEvent/$verify, which walks the hash chain and names the first broken record.
// The rows live in audit_event (server/storage/audit_store), not among the resources: only
// the server writes them, and authorize() keeps everyone else out.
#include <charconv>

#include "resources/fhir_time.hpp"
#include "server/audit/record.hpp"
#include "server/audit/trail.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"

namespace kasama::server {

namespace {

std::vector<std::string> split_commas(const std::string& v) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= v.size()) {
    auto end = v.find(',', pos);
    if (end == std::string::npos) end = v.size();
    if (end > pos) out.push_back(v.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

[[noreturn]] void bad(const std::string& name, const std::string& why) {
  throw FhirError(400, "value", why, name);
}

// "Type/id" or an absolute URL below the base → "Type/id"; "id" alone for Patient.
std::string reference_value(const std::string& v, const std::string& default_type) {
  std::string s = v;
  if (const auto h = s.find("/_history/"); h != std::string::npos) s = s.substr(0, h);
  const auto slash = s.rfind('/');
  if (slash == std::string::npos) return default_type.empty() ? s : default_type + "/" + s;
  const auto prev = s.rfind('/', slash - 1);
  return prev == std::string::npos ? s : s.substr(prev + 1);
}

void apply_date(storage::AuditQuery& q, const std::string& raw) {
  std::string prefix = "eq";
  std::string value = raw;
  if (raw.size() > 2 && std::isalpha(static_cast<unsigned char>(raw[0])) &&
      std::isalpha(static_cast<unsigned char>(raw[1]))) {
    prefix = raw.substr(0, 2);
    value = raw.substr(2);
  }
  auto range = resources::parse_fhir_time_range(value);
  if (!range) bad("date", "date '" + raw.substr(0, 60) + "' is not a FHIR date, dateTime or instant");
  const auto lower = [&](std::int64_t v) { q.from = q.from ? std::max(*q.from, v) : v; };
  const auto upper = [&](std::int64_t v) { q.to = q.to ? std::min(*q.to, v) : v; };
  if (prefix == "eq") {
    lower(range->lo);
    upper(range->hi);
  } else if (prefix == "ge" || prefix == "sa") {
    lower(prefix == "ge" ? range->lo : range->hi);
  } else if (prefix == "gt") {
    lower(range->hi);
  } else if (prefix == "le" || prefix == "eb") {
    upper(prefix == "le" ? range->hi : range->lo);
  } else if (prefix == "lt") {
    upper(range->lo);
  } else {
    bad("date", "the prefix '" + prefix + "' is not supported on AuditEvent date (eq, ge, gt, le, lt, sa, eb)");
  }
}

struct Parsed {
  std::vector<std::pair<std::string, std::string>> params;  // the URL's and a POST body's
  storage::AuditQuery query;
  bool count_only = false;
  bool total = false;
};

Parsed parse(const RestRequest& req) {
  Parsed p;
  auto& q = p.query;
  const bool lenient = lenient_handling(req);
  auto& params = p.params;
  params = req.params;
  // POST AuditEvent/_search: the form body's parameters too.
  if (req.method == "POST" && !req.body.empty()) {
    std::vector<std::string> ignored;
    split_url("x?" + req.body, ignored, params);
  }
  for (const auto& [name, value] : params) {
    if (name == "_format" || name == "_pretty") continue;
    if (name == "_count") {
      std::size_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size()) bad("_count", "_count must be a whole number");
      q.limit = std::min<std::size_t>(n, 1000);
    } else if (name == "_summary") {
      if (value == "count")
        p.count_only = true;
      else if (value != "false")
        bad("_summary", "only _summary=count is supported on AuditEvent");
    } else if (name == "_total") {
      p.total = value == "accurate" || value == "estimate";
    } else if (name == "_before") {  // paging cursor (our next links)
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), q.before_id);
      if (ec != std::errc()) bad("_before", "not a paging cursor");
    } else if (name == "_sort") {
      if (value != "-date" && value != "-_lastUpdated")
        bad("_sort", "AuditEvents are listed newest first (_sort=-date)");
    } else if (name == "date" || name == "_lastUpdated") {
      apply_date(q, value);
    } else if (name == "agent" || name == "agent-name") {
      for (auto& v : split_commas(value)) {
        const auto slash = v.rfind('/');
        q.accounts.push_back(slash == std::string::npos ? v : v.substr(slash + 1));
      }
    } else if (name == "agent-role") {
      // role codes (urn:kasama:role|practitioner or practitioner)
      bad(name, "search by agent-role is not supported yet; search by agent");
    } else if (name == "altid") {
      q.terminal = value;
    } else if (name == "address") {
      q.address = value;
    } else if (name == "patient") {
      q.patient = reference_value(value, "");
      if (const auto s = q.patient.find('/'); s != std::string::npos) {
        if (q.patient.substr(0, s) != "Patient") bad("patient", "patient must name a Patient");
        q.patient = q.patient.substr(s + 1);
      }
    } else if (name == "entity") {
      q.entity = reference_value(value, "");
      if (q.entity.find('/') == std::string::npos) bad("entity", "entity must be a reference Type/id");
    } else if (name == "outcome") {
      for (auto& v : split_commas(value)) {
        if (v == "0" || v == "4" || v == "8" || v == "12")
          q.outcomes.push_back(std::stoi(v));
        else
          bad("outcome", "outcome is 0, 4, 8 or 12");
      }
    } else if (name == "action") {
      for (auto& v : split_commas(value)) {
        if (v.size() != 1 || std::string("CRUDE").find(v) == std::string::npos)
          bad("action", "action is C, R, U, D or E");
        q.actions.push_back(v);
      }
    } else if (name == "subtype") {
      for (auto& v : split_commas(value)) {
        const auto bar = v.find('|');
        q.interactions.push_back(bar == std::string::npos ? v : v.substr(bar + 1));
      }
    } else if (name == "type") {
      const auto bar = value.find('|');
      const std::string code = bar == std::string::npos ? value : value.substr(bar + 1);
      if (code != "rest") q.request_id = "\x01none";  // only RESTful operations are recorded: nothing matches
    } else if (name == "_id") {
      std::uint64_t id = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
      q.id = ec == std::errc() && end == value.data() + value.size() && id > 0 ? id : UINT64_MAX;
    } else if (name == "request-id") {
      q.request_id = value;
    } else if (name == "denied") {
      if (value != "true" && value != "false") bad("denied", "denied is true or false");
      q.denied = value == "true";
    } else if (!lenient) {
      bad(name, "AuditEvent search does not support the parameter '" + name.substr(0, 60) +
                    "' (supported: date, agent, altid, address, patient, entity, outcome, action, subtype, type, "
                    "_id, request-id, denied, _count, _summary, _total)");
    }
  }
  return p;
}

// The next page as a GET, with every parameter the search had (also a POST body's).
std::string next_link(const RestRequest& req, const Parsed& p, std::uint64_t before) {
  std::string url = req.base_url + "/AuditEvent?";
  bool first = true;
  for (const auto& [name, value] : p.params) {
    if (name == "_before") continue;
    if (!first) url += '&';
    first = false;
    url += percent_encode(name) + "=" + percent_encode(value);
  }
  if (!first) url += '&';
  return url + "_before=" + std::to_string(before);
}

}  // namespace

RestResponse audit_event_read(Context& ctx, const RestRequest&, const Route& r) {
  std::uint64_t id = 0;
  auto [end, ec] = std::from_chars(r.id.data(), r.id.data() + r.id.size(), id);
  std::optional<storage::AuditRow> row;
  if (ctx.svc.audit) ctx.svc.audit->flush();  // what was just appended is found too
  if (ec == std::errc() && end == r.id.data() + r.id.size()) {
    row = storage::AuditStore(ctx.svc.config.tenant).by_id(ctx.db(), id);
  }
  if (!row) throw FhirError(404, "not-found", "AuditEvent/" + r.id + " is not known");
  RestResponse resp;
  resp.body = resources::dump_json(audit::to_audit_event(*row));
  resp.version_id = "1";
  resp.last_modified = row->recorded;
  return resp;
}

RestResponse audit_event_search(Context& ctx, const RestRequest& req, const Route&) {
  Parsed p = parse(req);
  if (ctx.svc.audit) ctx.svc.audit->flush();  // what was just appended is found too
  storage::AuditStore store(ctx.svc.config.tenant);
  BundleWriter b("searchset");
  if (p.count_only || p.total) b.total(store.count(ctx.db(), p.query));
  if (!p.count_only && p.query.limit > 0) {
    const std::size_t asked = p.query.limit;
    p.query.limit = asked + 1;
    auto rows = store.search(ctx.db(), p.query);
    const bool more = rows.size() > asked;
    if (more) rows.resize(asked);
    b.link("self", req.base_url + "/" + req.path());
    if (more) b.link("next", next_link(req, p, rows.back().id));
    for (const auto& row : rows) {
      b.entry(req.base_url + "/AuditEvent/" + std::to_string(row.id), resources::dump_json(audit::to_audit_event(row)),
              Json{{"search", {{"mode", "match"}}}});
    }
  }
  RestResponse resp;
  resp.body = b.finish();
  return resp;
}

RestResponse audit_verify(Context& ctx, const RestRequest&, const Route&) {
  if (ctx.svc.audit) {
    ctx.svc.audit->flush();
    ctx.svc.audit->seal_now();
  }
  const audit::VerifyResult v = audit::verify_chain(ctx.db(), ctx.svc.config.tenant);
  Json params = {{"resourceType", "Parameters"}};
  Json list = Json::array();
  list.push_back({{"name", "result"}, {"valueBoolean", v.ok}});
  list.push_back({{"name", "checked"}, {"valueInteger", static_cast<std::int64_t>(v.checked)}});
  if (!v.ok) {
    list.push_back(
        {{"name", "firstBroken"}, {"valueReference", {{"reference", "AuditEvent/" + std::to_string(v.first_broken)}}}});
    list.push_back({{"name", "firstBrokenId"}, {"valueString", std::to_string(v.first_broken)}});
    list.push_back({{"name", "problem"}, {"valueString", v.problem}});
  }
  list.push_back({{"name", "headId"}, {"valueString", std::to_string(v.head_id)}});
  list.push_back({{"name", "headHash"}, {"valueString", v.head_hash}});
  if (v.anchor_id) list.push_back({{"name", "anchorId"}, {"valueString", std::to_string(v.anchor_id)}});
  list.push_back({{"name", "unsealed"}, {"valueInteger", static_cast<std::int64_t>(v.unsealed)}});
  params["parameter"] = std::move(list);
  RestResponse resp;
  resp.body = resources::dump_json(params);
  return resp;
}

}  // namespace kasama::server
