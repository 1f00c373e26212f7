#include "server/access/policy.hpp"

#include <algorithm>

#include "resources/fhir_time.hpp"
#include "resources/references.hpp"
#include "server/storage/resource_store.hpp"

namespace kasama::access {

namespace {

using resources::string_member;

bool has_coding(const Json& cc, const char* system, const char* code) {
  if (!cc.is_object()) return false;
  auto c = cc.find("coding");
  if (c == cc.end() || !c->is_array()) return false;
  return std::any_of(c->begin(), c->end(), [&](const Json& x) {
    return x.is_object() && string_member(x, "system") == system && string_member(x, "code") == code;
  });
}

// The id of a local literal reference to type (relative, or absolute below base_url); "" otherwise.
std::string local_id(const Json& reference, const std::string& type, const std::string& base_url) {
  auto local = resources::parse_local_reference(string_member(reference, "reference"), base_url);
  return local && local->type == type ? local->id : std::string();
}

}  // namespace

bool under_opt_out_policy(const Json& consent) {
  auto p = consent.find("policy");
  if (!consent.is_object() || p == consent.end() || !p->is_array()) return false;
  return std::any_of(p->begin(), p->end(), [](const Json& x) { return string_member(x, "uri") == kOptOutPolicy; });
}

std::vector<OptOut> opt_outs_of(const Json& c, const std::string& base_url) {
  std::vector<OptOut> out;
  if (!c.is_object() || string_member(c, "resourceType") != "Consent" || string_member(c, "status") != "active") return out;
  auto scope = c.find("scope");
  if (scope == c.end() || !has_coding(*scope, "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"))
    return out;
  if (!under_opt_out_policy(c)) return out;
  auto prov = c.find("provision");
  if (prov == c.end() || !prov->is_object() || string_member(*prov, "type") != "deny") return out;
  auto patient = c.find("patient");
  const std::string pid = patient == c.end() ? std::string() : local_id(*patient, "Patient", base_url);
  if (pid.empty()) return out;
  std::int64_t start = -kForever, end = kForever;
  if (auto period = prov->find("period"); period != prov->end() && period->is_object()) {
    if (auto s = resources::parse_fhir_time_range(string_member(*period, "start"))) start = s->lo;
    if (auto e = resources::parse_fhir_time_range(string_member(*period, "end"))) end = e->hi;
  }
  std::vector<std::string> institutions;
  if (auto actors = prov->find("actor"); actors != prov->end() && actors->is_array()) {
    for (const auto& a : *actors) {
      if (!a.is_object()) continue;
      auto ref = a.find("reference");
      if (ref == a.end()) continue;
      const std::string org = local_id(*ref, "Organization", base_url);
      if (!org.empty()) institutions.push_back(org);
    }
    // Actors were named but none is an institution of this server: the opt-out still holds,
    // for every institution (the narrower reading would leak).
  }
  if (institutions.empty()) institutions.emplace_back();
  std::sort(institutions.begin(), institutions.end());
  institutions.erase(std::unique(institutions.begin(), institutions.end()), institutions.end());
  for (auto& inst : institutions) out.push_back(OptOut{pid, std::move(inst), start, end});
  return out;
}

bool Filter::hides_patient(const std::string& id) const {
  const auto& h = hidden_patients();
  return std::binary_search(h.begin(), h.end(), id);
}

bool Filter::hides(const std::vector<std::string>& subjects) const {
  return std::any_of(subjects.begin(), subjects.end(), [&](const std::string& s) { return hides_patient(s); });
}

std::string Filter::sql(const std::string& category_col, const std::string& pk_col, const std::string& version_col,
                        const std::function<std::string(std::string_view)>& quote) const {
  std::string cats;
  for (unsigned c = 0; c < 32; ++c) {
    if (range.read & bit(static_cast<Category>(c))) cats += (cats.empty() ? "" : ",") + std::to_string(c);
  }
  if (cats.empty()) return "0=1";
  std::string out = "(" + category_col + " IN (" + cats + ")";
  if (!hidden_patients().empty()) {
    std::string ids;
    for (const auto& p : hidden_patients()) ids += (ids.empty() ? "" : ",") + quote(p);
    out += " AND NOT EXISTS (SELECT 1 FROM resource_subject subj WHERE subj.resource_pk=" + pk_col +
           " AND subj.version=" + version_col + " AND subj.patient_id IN (" + ids + "))";
  }
  return out + ")";
}

std::shared_ptr<const OptOutRegistry::Snapshot> OptOutRegistry::snapshot(std::int64_t now) {
  std::shared_ptr<const Snapshot> s;
  std::uint64_t epoch = 0;
  {
    std::lock_guard lock(mu_);
    s = snap_;
    epoch = epoch_;
  }
  if (s && s->epoch == epoch && now - s->loaded_at < ttl_.count()) return s;
  auto fresh = std::make_shared<Snapshot>();
  fresh->loaded_at = now;
  fresh->epoch = epoch;
  {
    auto conn = pool_.acquire();
    storage::ResourceStore store(tenant_);
    for (auto& r : store.opt_outs(*conn)) fresh->rows.push_back(OptOut{std::move(r.patient_id), std::move(r.institution_id), r.start_ms, r.end_ms});
  }
  std::lock_guard lock(mu_);
  // A change that came while loading bumped the epoch: this snapshot serves this call only.
  if (epoch_ == epoch) snap_ = fresh;
  return fresh;
}

std::shared_ptr<const std::vector<std::string>> OptOutRegistry::hidden_for(const std::string& institution,
                                                                           std::int64_t now) {
  auto s = snapshot(now);
  {
    std::lock_guard lock(s->mu);
    auto it = s->by_institution.find(institution);
    if (it != s->by_institution.end() && it->second.from <= now && now < it->second.until) return it->second.patients;
  }
  auto out = std::make_shared<std::vector<std::string>>();
  std::int64_t from = -kForever, until = kForever;  // the span in which this answer holds
  for (const auto& r : s->rows) {
    if (!r.institution_id.empty() && r.institution_id != institution) continue;
    if (r.start_ms <= now && now < r.end_ms) out->push_back(r.patient_id);
    for (const std::int64_t t : {r.start_ms, r.end_ms}) {
      if (t > now) until = std::min(until, t);
      if (t <= now) from = std::max(from, t);
    }
  }
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
  std::shared_ptr<const std::vector<std::string>> result = std::move(out);
  std::lock_guard lock(s->mu);
  if (s->by_institution.size() > 10000) s->by_institution.clear();  // bounded
  s->by_institution[institution] = {result, from, until};
  return result;
}

void OptOutRegistry::changed() {
  std::lock_guard lock(mu_);
  ++epoch_;
}

std::shared_ptr<const Filter> filter_for(const auth::Principal& p, OptOutRegistry& optouts, std::int64_t now) {
  if (!p.institution_scoped) return nullptr;
  auto f = std::make_shared<Filter>();
  f->range = p.range;
  if (const Category d = Categories::instance().directory()) f->range.read |= bit(d);
  f->range.read |= f->range.write;
  f->hidden = optouts.hidden_for(p.access_institution, now);
  return f;
}

}  // namespace kasama::access
