// Access control's data (R-03, R-20, R-21): the category rules of
// conformance/kasama/categories.json, the label the server keeps in meta.security, access
// ranges as the secretariat and owner give them, the opt-outs a Consent states, and the SQL
// condition the filter adds to every data path.
#define BOOST_TEST_MODULE access
#include <boost/test/unit_test.hpp>

#include "server/access/category.hpp"
#include "server/access/policy.hpp"

using namespace kasama::access;
using kasama::resources::Json;
using kasama::resources::parse_json;

namespace {

Json j(const char* text) {
  auto p = parse_json(text);
  BOOST_REQUIRE_MESSAGE(p.ok, text);
  return p.value;
}

const Categories& cats() { return Categories::instance(); }

Category cat(const char* code) {
  auto c = cats().parse(code);
  BOOST_REQUIRE_MESSAGE(c, code);
  return *c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(r03_the_rules_give_every_resource_its_category) {
  struct Case {
    const char* type;
    const char* resource;
    const char* category;
  };
  const Case cases[] = {
      {"Patient", R"({"resourceType":"Patient"})", "demographics"},
      {"RelatedPerson", R"({"resourceType":"RelatedPerson"})", "demographics"},
      {"Consent", R"({"resourceType":"Consent"})", "privacy"},  // opt-outs are nobody's business but the city's
      {"Observation", R"({"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]}})",
       "checkup"},
      // A care-level certification by its code system, and by the city's observation category.
      {"Observation",
       R"({"resourceType":"Observation","code":{"coding":[{"system":"http://kasama-fhir.example/fhir/CodeSystem/care-level","code":"care-2"}]}})",
       "care"},
      {"Observation",
       R"({"resourceType":"Observation","category":[{"coding":[{"system":"http://kasama-fhir.example/fhir/CodeSystem/observation-category","code":"care"}]}]})",
       "care"},
      // The right system with another code is not the care category rule.
      {"Observation",
       R"({"resourceType":"Observation","category":[{"coding":[{"system":"http://kasama-fhir.example/fhir/CodeSystem/observation-category","code":"other"}]}]})",
       "checkup"},
      {"Coverage", R"({"resourceType":"Coverage"})", "care"},
      {"CarePlan", R"({"resourceType":"CarePlan"})", "care"},
      {"DiagnosticReport", R"({"resourceType":"DiagnosticReport"})", "checkup"},
      {"QuestionnaireResponse", R"({"resourceType":"QuestionnaireResponse"})", "checkup"},
      {"Condition", R"({"resourceType":"Condition"})", "medical"},       // in the Patient compartment
      {"MedicationRequest", R"({"resourceType":"MedicationRequest"})", "medical"},
      {"Binary", R"({"resourceType":"Binary"})", "medical"},             // could hold anything
      {"Organization", R"({"resourceType":"Organization"})", "directory"},  // outside the compartment
      {"Practitioner", R"({"resourceType":"Practitioner"})", "directory"},
      {"ValueSet", R"({"resourceType":"ValueSet"})", "directory"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.type << " " << c.resource) {
      BOOST_TEST(cats().code(cats().classify(c.type, j(c.resource))) == c.category);
    }
  }
}

BOOST_AUTO_TEST_CASE(r03_rules_match_profiles_and_the_first_match_wins) {
  const Json doc = j(R"({"system":"urn:test","categories":[{"code":"a"},{"code":"b"},{"code":"directory"}],
    "rules":[{"type":"Observation","profile":"http://example.org/p","category":"b"},
             {"type":"Observation","category":"a"},{"type":"*","category":"directory"}]})");
  const Categories c(doc);
  BOOST_TEST(c.code(c.classify("Observation", j(R"({"meta":{"profile":["http://example.org/p|1.0"]}})"))) == "b");
  BOOST_TEST(c.code(c.classify("Observation", j(R"({"meta":{"profile":["http://example.org/q"]}})"))) == "a");
  BOOST_TEST(c.code(c.classify("Patient", j("{}"))) == "directory");
  // Malformed rule documents are refused at load.
  const char* bad[] = {
      R"({"categories":[{"code":"a"}],"rules":[{"category":"a"}]})",                      // no system
      R"({"system":"s","categories":[{"code":"a"},{"code":"a"}],"rules":[{"category":"a"}]})",  // repeated code
      R"({"system":"s","categories":[{"code":"a"}],"rules":[{"category":"z"}]})",            // unknown category
      R"({"system":"s","categories":[{"code":"a"}],"rules":[{"type":"Patient","category":"a"}]})",  // no catch-all
      R"({"system":"s","categories":[{"code":"a"}],"rules":[{"element":"code","category":"a"},{"category":"a"}]})",
  };
  for (const char* b : bad) BOOST_CHECK_THROW(Categories{j(b)}, std::runtime_error);
}

BOOST_AUTO_TEST_CASE(r03_the_label_replaces_any_label_of_our_system_and_keeps_others) {
  Json r = j(R"({"resourceType":"Observation","meta":{"security":[
      {"system":"http://kasama-fhir.example/fhir/CodeSystem/information-category","code":"directory"},
      {"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}})");
  cats().set_label(r, cat("checkup"));
  BOOST_TEST(r["meta"]["security"].size() == 2u);
  BOOST_TEST(r["meta"]["security"][0]["code"] == "R");
  BOOST_TEST(r["meta"]["security"][1]["code"] == "checkup");
  BOOST_TEST(cats().label_of(r) == cat("checkup"));
  Json none = j(R"({"resourceType":"Observation"})");
  BOOST_TEST(cats().label_of(none) == kUnlabelled);
  cats().set_label(none, cat("care"));
  BOOST_TEST(cats().label_of(none) == cat("care"));
}

BOOST_AUTO_TEST_CASE(r20_ranges_parse_read_and_read_write_and_name_what_is_wrong) {
  const Range r = cats().parse_range(j(R"({"care":"read-write","checkup":"read","medical":"none","demographics":"r"})"));
  BOOST_TEST(((r.read & bit(cat("care"))) != 0));
  BOOST_TEST(((r.write & bit(cat("care"))) != 0));
  BOOST_TEST(((r.read & bit(cat("checkup"))) != 0));
  BOOST_TEST(((r.write & bit(cat("checkup"))) == 0));
  BOOST_TEST(((r.read & bit(cat("medical"))) == 0));
  BOOST_TEST(((r.read & bit(cat("demographics"))) != 0));
  BOOST_TEST(cats().range_json(r) == j(R"({"demographics":"read","care":"read-write","checkup":"read"})"));  // in category order
  BOOST_TEST((cats().parse_range(cats().range_json(r)) == r));
  const Range full = cats().full_range();
  BOOST_TEST(((full.read & bit(kUnlabelled)) == 0));  // nobody outside the city reads unlabelled rows
  BOOST_TEST((full.intersect(r) == r));
  try {
    cats().parse_range(j(R"({"care":"write"})"));
    BOOST_FAIL("accepted an unknown mode");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(std::string(e.what()) == "categories.care");
  }
  BOOST_CHECK_THROW(cats().parse_range(j(R"({"dental":"read"})")), std::invalid_argument);
  BOOST_CHECK_THROW(cats().parse_range(j(R"(["care"])")), std::invalid_argument);
}

namespace {
const char* kOptOut = R"({"resourceType":"Consent","status":"active",
  "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
  "patient":{"reference":"Patient/p1"},
  "policy":[{"uri":"http://kasama-fhir.example/fhir/policy/opt-out"}],
  "provision":{"type":"deny"}})";
}

BOOST_AUTO_TEST_CASE(r21_an_opt_out_consent_states_whom_it_hides_from_and_when) {
  auto all = opt_outs_of(j(kOptOut), "https://h/fhir");
  BOOST_REQUIRE(all.size() == 1u);
  BOOST_TEST(all[0].patient_id == "p1");
  BOOST_TEST(all[0].institution_id == "");  // every institution
  BOOST_TEST(all[0].start_ms < 0);
  BOOST_TEST(all[0].end_ms == kForever);

  Json some = j(kOptOut);
  some["patient"]["reference"] = "https://h/fhir/Patient/p2";  // absolute below the base: local
  some["provision"]["actor"] = j(R"([{"reference":{"reference":"Organization/org-b"}},
                                     {"reference":{"reference":"Organization/org-a"}},
                                     {"reference":{"reference":"Practitioner/x"}}])");
  some["provision"]["period"] = j(R"({"start":"2026-04-01","end":"2027-03-31"})");
  auto two = opt_outs_of(some, "https://h/fhir");
  BOOST_REQUIRE(two.size() == 2u);
  BOOST_TEST(two[0].patient_id == "p2");
  BOOST_TEST(two[0].institution_id == "org-a");
  BOOST_TEST(two[1].institution_id == "org-b");
  BOOST_TEST(two[0].start_ms < two[0].end_ms);

  // Actors that are no institution of ours: the opt-out still holds, for every institution.
  Json other = j(kOptOut);
  other["provision"]["actor"] = j(R"([{"reference":{"reference":"https://elsewhere/Organization/z"}}])");
  auto wide = opt_outs_of(other, "https://h/fhir");
  BOOST_REQUIRE(wide.size() == 1u);
  BOOST_TEST(wide[0].institution_id == "");

  // Not an opt-out: each of these states nothing.
  const char* changes[][2] = {
      {"/status", R"("inactive")"},
      {"/provision/type", R"("permit")"},
      {"/policy/0/uri", R"("http://example.org/other-policy")"},
      {"/scope/coding/0/code", R"("research")"},
      {"/patient/reference", R"("Group/g1")"},
  };
  for (const auto& [path, value] : changes) {
    BOOST_TEST_CONTEXT(path) {
      Json c = j(kOptOut);
      c[Json::json_pointer(path)] = j(value);
      BOOST_TEST(opt_outs_of(c, "https://h/fhir").empty());
    }
  }
  BOOST_TEST(opt_outs_of(j(R"({"resourceType":"Patient"})"), "").empty());
  BOOST_TEST(opt_outs_of(j("[]"), "").empty());
}

BOOST_AUTO_TEST_CASE(r20_r21_the_filter_as_sql_names_the_categories_and_the_hidden_residents) {
  Filter f;
  f.range.read = bit(cat("care")) | bit(cat("directory"));
  const auto quote = [](std::string_view v) { return "'" + std::string(v) + "'"; };
  const std::string care = std::to_string(cat("care")), dir = std::to_string(cat("directory"));
  BOOST_TEST(f.sql("r.category", "r.pk", "r.version", quote) == "(r.category IN (" + care + "," + dir + "))");
  f.hidden = std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"a", "b"});
  const std::string s = f.sql("h.category", "h.resource_pk", "h.version", quote);
  BOOST_TEST(s.find("subj.resource_pk=h.resource_pk AND subj.version=h.version AND subj.patient_id IN ('a','b')") !=
             std::string::npos);
  BOOST_TEST(f.hides({"x", "b"}));
  BOOST_TEST(!f.hides({"x"}));
  BOOST_TEST(f.reads(cat("care")));
  BOOST_TEST(!f.reads(cat("checkup")));
  BOOST_TEST(!f.reads(kUnlabelled));
  Filter none;
  BOOST_TEST(none.sql("r.category", "r.pk", "r.version", quote) == "0=1");  // nothing granted: nothing matches
}

// --- the request-level decision (decision.hpp) -------------------------------------------------

#include "server/access/decision.hpp"

namespace {

kasama::auth::Principal principal(const char* role, const char* scopes, const char* patient = "") {
  kasama::auth::Principal p;
  p.kind = "access";
  p.role = role;
  p.account_id = "a1";
  p.scope_text = scopes;
  p.scopes = kasama::auth::ScopeSet::parse(scopes);
  p.patient = patient;
  return p;
}

RequestFacts facts(RequestFacts::What what, const char* type, unsigned perms, bool compartment = true) {
  RequestFacts f;
  f.what = what;
  f.interaction = "test";
  f.type = type;
  f.route_type = type;
  f.route_id = "x";
  f.perms = perms;
  f.compartment_type = compartment;
  return f;
}

}  // namespace

BOOST_AUTO_TEST_CASE(r19_r20_the_request_level_decision_table) {
  using W = RequestFacts::What;
  using E = Decision::Effect;
  namespace a = kasama::auth;
  const unsigned rs = a::kRead | a::kSearch;
  int reached_calls = 0;
  struct Case {
    const char* name;
    kasama::auth::Principal p;
    RequestFacts f;
    E effect;
  };
  auto with_reached = [&](RequestFacts f, std::set<std::string> read, std::set<std::string> search) {
    f.reached = [&reached_calls, read, search](std::set<std::string>& r, std::set<std::string>& s) {
      ++reached_calls;
      r = read;
      s = search;
    };
    return f;
  };
  auto with_includes = [](RequestFacts f) {
    f.searching = true;
    f.include_params = {"_include"};
    return f;
  };
  kasama::auth::Principal internal;
  internal.kind = "internal";
  auto inst = principal("system", "system/*.cruds");
  inst.institution_scoped = true;
  auto audit_read = facts(W::kSearchType, "AuditEvent", rs, true);
  auto other_compartment = facts(W::kSearchCompartment, "Patient", rs);
  other_compartment.route_id = "p2";
  auto own_compartment = other_compartment;
  own_compartment.route_id = "p1";
  const std::vector<Case> cases = {
      {"the server itself", internal, facts(W::kWrite, "Patient", a::kCreate), E::kPermit},
      {"capabilities for anyone", principal("citizen", ""), facts(W::kCapabilities, "", 0), E::kPermit},
      {"the audit trail is the auditors'", principal("practitioner", "user/*.cruds"), audit_read, E::kDeny},
      {"an auditor reads it", principal("auditor", "user/AuditEvent.rs"), audit_read, E::kPermit},
      {"$reindex: a system write scope", inst, facts(W::kReindex, "*", a::kUpdate), E::kPermit},
      {"$reindex: not a user scope", principal("practitioner", "user/*.cruds"), facts(W::kReindex, "*", a::kUpdate), E::kDeny},
      {"a user scope on the type and every type", principal("practitioner", "user/*.cruds"),
       with_reached(facts(W::kSearchType, "Observation", rs), {"Patient"}, {}), E::kPermit},
      {"an include outside the scopes", principal("practitioner", "user/Observation.rs"),
       with_reached(facts(W::kSearchType, "Observation", rs), {"Patient"}, {}), E::kDeny},
      {"a chain outside the scopes", principal("practitioner", "user/Observation.rs"),
       with_reached(facts(W::kSearchType, "Observation", rs), {}, {"Patient"}), E::kDeny},
      {"only what was reached, within the scopes", principal("practitioner", "user/Observation.rs user/Patient.rs"),
       with_reached(facts(W::kSearchType, "Observation", rs), {"Patient"}, {"Patient"}), E::kPermit},
      {"no scope for the write", principal("practitioner", "user/*.rs"), facts(W::kWrite, "Observation", a::kCreate),
       E::kDeny},
      {"a patient context reads in its compartment, if there", principal("citizen", "patient/*.rs", "p1"),
       facts(W::kRead, "Observation", a::kRead), E::kIfInCompartment},
      {"a version that was the patient's", principal("citizen", "patient/*.rs", "p1"),
       facts(W::kVread, "Observation", a::kRead), E::kIfVersionInCompartment},
      {"the shared directory", principal("citizen", "patient/*.rs", "p1"), facts(W::kRead, "Organization", a::kRead, false),
       E::kPermit},
      {"not one patient's data", principal("citizen", "patient/*.rs", "p1"), facts(W::kRead, "Basic", a::kRead, false),
       E::kDeny},
      {"a type search becomes a compartment search", principal("citizen", "patient/*.rs", "p1"),
       facts(W::kSearchType, "Observation", rs), E::kAsCompartmentSearch},
      {"includes are not for a patient context", principal("citizen", "patient/*.rs", "p1"),
       with_includes(facts(W::kSearchType, "Observation", rs)), E::kDeny},
      {"another patient's compartment is not there", principal("citizen", "patient/*.rs", "p1"), other_compartment,
       E::kNotFound},
      {"its own compartment", principal("citizen", "patient/*.rs", "p1"), own_compartment, E::kPermit},
      {"no history for a patient context", principal("citizen", "patient/*.rs", "p1"),
       facts(W::kHistoryInstance, "Observation", a::kRead), E::kDeny},
      {"a patient scope without a patient", principal("citizen", "patient/*.rs"), facts(W::kRead, "Observation", a::kRead),
       E::kDeny},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      const Decision d = decide(c.p, c.f);
      BOOST_TEST(static_cast<int>(d.effect) == static_cast<int>(c.effect));
      if (d.effect == E::kDeny) BOOST_TEST(!d.message.empty());
    }
  }
  // A scope on every type decides without gathering what the request reaches.
  reached_calls = 0;
  decide(principal("practitioner", "user/*.cruds"), with_reached(facts(W::kSearchType, "Observation", rs), {"X"}, {}));
  BOOST_TEST(reached_calls == 0);
  const Decision inc = decide(principal("citizen", "patient/*.rs", "p1"), with_includes(facts(W::kSearchType, "Observation", rs)));
  BOOST_TEST(inc.parameter == "_include");
}
