#define BOOST_TEST_MODULE search_query
#include <boost/test/unit_test.hpp>

#include "server/search/query.hpp"

using namespace kasama::search;

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

// Expectations about a query; nullptr / -1: not checked. The value fields are about the
// first clause's first value (or, for a chained clause, its innermost clause).
struct Case {
  const char* what;
  const char* type;
  Params params;
  bool lenient = false;
  int status = 0;                   // 0: success expected
  const char* err_param = nullptr;  // with status
  int clauses = -1;
  int values = -1;
  int param_type = -1;  // ParamType of the first clause
  const char* modifier = nullptr;
  const char* prefix = nullptr;
  const char* system = nullptr;
  const char* code = nullptr;
  const char* text = nullptr;
  int has_system = -1;
};

constexpr int T(ParamType t) {
  return static_cast<int>(t);
}

const Clause& innermost(const Clause& c) {
  if (c.has) return innermost(c.has->inner);
  return c.chain ? innermost(c.chain->inner) : c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(query_table) {
  const Case cases[] = {
      // strings
      {"plain string",
       "Patient",
       {{"name", "peter"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kString),
       "",
       nullptr,
       nullptr,
       nullptr,
       "peter"},
      {"japanese string",
       "Patient",
       {{"name", "山田太郎"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kString),
       "",
       nullptr,
       nullptr,
       nullptr,
       "山田太郎"},
      {"japanese OR list",
       "Patient",
       {{"family", "山田,やまだ,ヤマダ"}},
       false,
       0,
       nullptr,
       1,
       3,
       -1,
       nullptr,
       nullptr,
       nullptr,
       nullptr,
       "山田"},
      {"escaped comma",
       "Patient",
       {{"name", "a\\,b"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       nullptr,
       nullptr,
       nullptr,
       "a,b"},
      {"escaped dollar",
       "Patient",
       {{"name", "a\\$b"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       nullptr,
       nullptr,
       nullptr,
       "a$b"},
      {"escaped pipe",
       "Patient",
       {{"name", "a\\|b"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       nullptr,
       nullptr,
       nullptr,
       "a|b"},
      {"escaped backslash then comma",
       "Patient",
       {{"name", "a\\\\,b"}},
       false,
       0,
       nullptr,
       1,
       2,
       -1,
       nullptr,
       nullptr,
       nullptr,
       nullptr,
       "a\\"},
      {":exact", "Patient", {{"name:exact", "Eve"}}, false, 0, nullptr, 1, 1, -1, "exact"},
      {":contains",
       "Patient",
       {{"name:contains", "太"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       "contains",
       nullptr,
       nullptr,
       nullptr,
       "太"},
      {"string :below is unknown", "Patient", {{"name:below", "x"}}, false, 400, "name:below"},
      {"empty value", "Patient", {{"name", ""}}, false, 400, "name"},
      {"AND: repeated name", "Patient", {{"name", "a"}, {"name", "b"}}, false, 0, nullptr, 2},
      // tokens
      {"token code",
       "Patient",
       {{"gender", "male"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kToken),
       "",
       nullptr,
       "",
       "male",
       nullptr,
       0},
      {"token system|code",
       "Patient",
       {{"identifier", "http://x.jp/mrn|12345"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       nullptr,
       "http://x.jp/mrn",
       "12345",
       nullptr,
       1},
      {"token |code",
       "Patient",
       {{"identifier", "|12345"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       nullptr,
       "",
       "12345",
       nullptr,
       1},
      {"token system|",
       "Patient",
       {{"identifier", "http://x.jp/mrn|"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       nullptr,
       "http://x.jp/mrn",
       "",
       nullptr,
       1},
      {"token escaped pipe",
       "Patient",
       {{"identifier", "a\\|b|c"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       nullptr,
       "a|b",
       "c",
       nullptr,
       1},
      {"token OR",
       "Observation",
       {{"code", "http://loinc.org|1234-5,http://loinc.org|8867-4"}},
       false,
       0,
       nullptr,
       1,
       2},
      {"token :not", "Patient", {{"gender:not", "male"}}, false, 0, nullptr, 1, 1, -1, "not", nullptr, nullptr, "male"},
      {"token :text japanese",
       "Observation",
       {{"code:text", "血圧"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       "text",
       nullptr,
       nullptr,
       nullptr,
       "血圧"},
      {"token :in",
       "Observation",
       {{"code:in", "http://x/vs"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       "in",
       nullptr,
       nullptr,
       nullptr,
       "http://x/vs"},
      {"token :of-type",
       "Patient",
       {{"identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|446"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       "of-type",
       nullptr,
       "http://terminology.hl7.org/CodeSystem/v2-0203",
       "MR",
       "446"},
      {"token :of-type two parts", "Patient", {{"identifier:of-type", "a|b"}}, false, 400, "identifier:of-type"},
      {"token :exact unknown", "Patient", {{"gender:exact", "male"}}, false, 400, "gender:exact"},
      {"_id is a clause", "Patient", {{"_id", "1,2"}}, false, 0, nullptr, 1, 2, T(ParamType::kToken)},
      // :missing
      {":missing true", "Patient", {{"birthdate:missing", "true"}}, false, 0, nullptr, 1, 1, -1, "missing"},
      {":missing bad", "Patient", {{"birthdate:missing", "yes"}}, false, 400, "birthdate:missing"},
      // numbers
      {"number",
       "RiskAssessment",
       {{"probability", "0.8"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kNumber),
       "",
       "eq",
       nullptr,
       nullptr,
       "0.8"},
      {"number gt", "RiskAssessment", {{"probability", "gt0.8"}}, false, 0, nullptr, 1, 1, -1, nullptr, "gt"},
      {"number exponent",
       "RiskAssessment",
       {{"probability", "le1e-2"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       "le",
       nullptr,
       nullptr,
       "1e-2"},
      {"number full-width digits", "RiskAssessment", {{"probability", "０.８"}}, false, 400, "probability"},
      {"number garbage", "RiskAssessment", {{"probability", "gt"}}, false, 400, "probability"},
      {"number leading plus", "RiskAssessment", {{"probability", "+1"}}, false, 400, "probability"},
      {"number bad prefix", "RiskAssessment", {{"probability", "xx5"}}, false, 400, "probability"},
      {"number :exact", "RiskAssessment", {{"probability:exact", "1"}}, false, 400, "probability:exact"},
      // dates, every prefix
      {"date eq year",
       "Patient",
       {{"birthdate", "eq1980"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kDate),
       "",
       "eq",
       nullptr,
       nullptr,
       "1980"},
      {"date ne", "Patient", {{"birthdate", "ne1980-05"}}, false, 0, nullptr, 1, 1, -1, nullptr, "ne"},
      {"date gt", "Patient", {{"birthdate", "gt1980-05-01"}}, false, 0, nullptr, 1, 1, -1, nullptr, "gt"},
      {"date lt", "Patient", {{"birthdate", "lt1980-05-01"}}, false, 0, nullptr, 1, 1, -1, nullptr, "lt"},
      {"date ge", "Patient", {{"birthdate", "ge1980-05-01"}}, false, 0, nullptr, 1, 1, -1, nullptr, "ge"},
      {"date le", "Patient", {{"birthdate", "le1980-05-01"}}, false, 0, nullptr, 1, 1, -1, nullptr, "le"},
      {"date sa", "Observation", {{"date", "sa2020-01-01T10:00:00Z"}}, false, 0, nullptr, 1, 1, -1, nullptr, "sa"},
      {"date eb", "Observation", {{"date", "eb2020-01-01T10:00:00+09:00"}}, false, 0, nullptr, 1, 1, -1, nullptr, "eb"},
      {"date ap", "Observation", {{"date", "ap2020-01-01"}}, false, 0, nullptr, 1, 1, -1, nullptr, "ap"},
      {"date bad month", "Patient", {{"birthdate", "1980-13"}}, false, 400, "birthdate"},
      {"date japanese era", "Patient", {{"birthdate", "昭和55年"}}, false, 400, "birthdate"},
      {"_lastUpdated",
       "Patient",
       {{"_lastUpdated", "gt2020-01-01T00:00:00Z"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kDate),
       nullptr,
       "gt"},
      // quantities
      {"quantity full",
       "Observation",
       {{"value-quantity", "le5.4|http://unitsofmeasure.org|mg"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kQuantity),
       "",
       "le",
       "http://unitsofmeasure.org",
       "mg",
       nullptr,
       1},
      {"quantity no system",
       "Observation",
       {{"value-quantity", "5.4||mg"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       "eq",
       "",
       "mg",
       nullptr,
       0},
      {"quantity number only",
       "Observation",
       {{"value-quantity", "ap5.4"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       nullptr,
       "ap",
       nullptr,
       nullptr,
       nullptr,
       0},
      {"quantity two parts", "Observation", {{"value-quantity", "5.4|mg"}}, false, 400, "value-quantity"},
      {"quantity bad number",
       "Observation",
       {{"value-quantity", "five|http://unitsofmeasure.org|mg"}},
       false,
       400,
       "value-quantity"},
      // references
      {"reference Type/id",
       "Observation",
       {{"subject", "Patient/123"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kReference),
       "",
       nullptr,
       nullptr,
       nullptr,
       "Patient/123"},
      {"reference :Type id", "Observation", {{"subject:Patient", "123"}}, false, 0, nullptr, 1, 1, -1, "Patient"},
      {"reference type not a target", "Patient", {{"organization:Patient", "1"}}, false, 400, "organization:Patient"},
      {"reference value type not a target", "Patient", {{"organization", "Patient/1"}}, false, 400, "organization"},
      {"reference absolute url",
       "Observation",
       {{"subject", "http://other.jp/fhir/Patient/1"}},
       false,
       0,
       nullptr,
       1,
       1},
      {"reference :identifier",
       "Observation",
       {{"subject:identifier", "urn:oid:1.2.392|123"}},
       false,
       0,
       nullptr,
       1,
       1,
       -1,
       "identifier",
       nullptr,
       "urn:oid:1.2.392",
       "123",
       nullptr,
       1},
      {"reference bad id", "Observation", {{"subject", "Patient/a b"}}, false, 400, "subject"},
      {"reference plain bad id", "Observation", {{"subject:Patient", "山田"}}, false, 400, "subject:Patient"},
      {"reference with version", "Observation", {{"subject", "Patient/1/_history/2"}}, false, 0, nullptr, 1, 1},
      // uri
      {"uri :below",
       "ValueSet",
       {{"url:below", "http://hl7.org/fhir/"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kUri),
       "below"},
      {"uri :contains unknown", "ValueSet", {{"url:contains", "x"}}, false, 400, "url:contains"},
      // composite
      {"composite",
       "Observation",
       {{"code-value-quantity", "http://loinc.org|8480-6$lt60"}},
       false,
       0,
       nullptr,
       1,
       1,
       T(ParamType::kComposite)},
      {"composite one part", "Observation", {{"code-value-quantity", "8480-6"}}, false, 400, "code-value-quantity"},
      {"composite modifier",
       "Observation",
       {{"code-value-quantity:missing", "true"}},
       false,
       400,
       "code-value-quantity:missing"},
      // chains
      {"chain with type",
       "Observation",
       {{"subject:Patient.name", "山田"}},
       false,
       0,
       nullptr,
       1,
       -1,
       T(ParamType::kReference),
       "Patient",
       nullptr,
       nullptr,
       nullptr,
       "山田"},
      {"chain single target",
       "Observation",
       {{"patient.birthdate", "ge1980"}},
       false,
       0,
       nullptr,
       1,
       -1,
       -1,
       nullptr,
       "ge"},
      {"chain two levels",
       "Observation",
       {{"patient.organization.name", "東京病院"}},
       false,
       0,
       nullptr,
       1,
       -1,
       -1,
       nullptr,
       nullptr,
       nullptr,
       nullptr,
       "東京病院"},
      {"chain ambiguous", "Observation", {{"subject.name", "x"}}, false, 400, "subject.name"},
      {"chain inner modifier", "Observation", {{"subject:Patient.name:exact", "Eve"}}, false, 0, nullptr, 1},
      {"chain inner bad modifier",
       "Observation",
       {{"subject:Patient.name:fuzzy", "Eve"}},
       false,
       400,
       "subject:Patient.name:fuzzy"},
      {"chain on a token", "Patient", {{"gender.name", "x"}}, false, 400, "gender.name"},
      {"chain unknown inner strict", "Observation", {{"patient.nope", "x"}}, false, 400, "patient.nope"},
      {"_has", "Patient", {{"_has:Observation:patient:code", "1234"}}, false, 0, nullptr, 1},
      {"_has nested",
       "Patient",
       {{"_has:Observation:patient:_has:AuditEvent:entity:agent", "x"}},
       false,
       0,
       nullptr,
       1},
      {"_has chained inner",
       "Patient",
       {{"_has:Observation:patient:performer:Practitioner.name", "x"}},
       false,
       0,
       nullptr,
       1},
      {"_has unknown type", "Patient", {{"_has:Nope:patient:code", "1"}}, false, 400, "_has:Nope:patient:code"},
      {"_has non-reference",
       "Patient",
       {{"_has:Observation:code:code", "1"}},
       false,
       400,
       "_has:Observation:code:code"},
      {"_has wrong target",
       "Patient",
       {{"_has:Observation:encounter:code", "1"}},
       false,
       400,
       "_has:Observation:encounter:code"},
      {"_has too short", "Patient", {{"_has:Observation:patient", "1"}}, false, 400, "_has:Observation:patient"},
      {"_has unknown inner",
       "Patient",
       {{"_has:Observation:patient:nope", "1"}},
       false,
       400,
       "_has:Observation:patient:nope"},
      // result parameters, strict vs lenient
      {"result params kept",
       "Patient",
       {{"_count", "10"},
        {"_sort", "-birthdate"},
        {"_include", "Patient:organization"},
        {"_total", "accurate"},
        {"_summary", "count"},
        {"name", "x"}},
       false,
       0,
       nullptr,
       1},
      {"_include:iterate kept", "Patient", {{"_include:iterate", "Patient:organization"}}, false, 0, nullptr, 0},
      {"unknown strict", "Patient", {{"foo", "1"}}, false, 400, "foo"},
      {"unknown lenient", "Patient", {{"foo", "1"}, {"name", "x"}}, true, 0, nullptr, 1},
      {"unknown underscore strict", "Patient", {{"_foo", "1"}}, false, 400, "_foo"},
      {"unknown modifier lenient still fails", "Patient", {{"name:fuzzy", "x"}}, true, 400, "name:fuzzy"},
      {"bad value lenient still fails", "Patient", {{"birthdate", "x"}}, true, 400, "birthdate"},
  };
  BOOST_TEST(std::size(cases) >= 40u);
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.what) {
      const ParsedQuery q = parse_search(c.type, c.params, c.lenient);
      if (c.status != 0) {
        BOOST_REQUIRE(q.error.has_value());
        BOOST_TEST(q.error->status == c.status);
        if (c.err_param) BOOST_TEST(q.error->parameter == c.err_param);
        BOOST_TEST(!q.error->message.empty());
        BOOST_TEST(q.clauses.empty());
        continue;
      }
      BOOST_REQUIRE_MESSAGE(q.ok(), (q.error ? q.error->message : std::string()));
      if (c.clauses >= 0) BOOST_TEST(q.clauses.size() == static_cast<std::size_t>(c.clauses));
      if (q.clauses.empty()) continue;
      const Clause& first = q.clauses.front();
      const auto* tp = first.param ? first.param : innermost(first).param;
      if (c.param_type >= 0) BOOST_TEST(static_cast<int>(tp->type) == c.param_type);
      if (c.modifier) BOOST_TEST(first.modifier == c.modifier);
      const Clause& leaf = innermost(first);
      if (c.values >= 0) BOOST_TEST(leaf.values.size() == static_cast<std::size_t>(c.values));
      BOOST_REQUIRE(!leaf.values.empty());
      const Value& v = leaf.values.front();
      if (c.prefix) BOOST_TEST(std::string(prefix_name(v.prefix)) == c.prefix);
      if (c.system) BOOST_TEST(v.system == c.system);
      if (c.code) BOOST_TEST(v.code == c.code);
      if (c.text) BOOST_TEST(v.text == c.text);
      if (c.has_system >= 0) BOOST_TEST(v.has_system == (c.has_system == 1));
    }
  }
}

BOOST_AUTO_TEST_CASE(details) {
  // date precision: lo/hi of a year span the year, of a day span the day
  auto year = parse_search("Patient", {{"birthdate", "1980"}}, false);
  auto day = parse_search("Patient", {{"birthdate", "1980-05-01"}}, false);
  BOOST_REQUIRE(year.ok());
  BOOST_REQUIRE(day.ok());
  const auto& yr = *year.clauses[0].values[0].range;
  const auto& dr = *day.clauses[0].values[0].range;
  BOOST_TEST(yr.lo < dr.lo);
  BOOST_TEST(dr.hi < yr.hi);
  BOOST_TEST(dr.lo < dr.hi);

  // lenient records the ignored parameter; result parameters are kept raw, in order
  auto q = parse_search("Patient", {{"foo:bar", "1"}, {"_count", "5"}, {"_elements", "id,name"}}, true);
  BOOST_REQUIRE(q.ok());
  BOOST_REQUIRE(q.ignored.size() == 1u);
  BOOST_TEST(q.ignored[0].first == "foo:bar");
  BOOST_REQUIRE(q.result.size() == 2u);
  BOOST_TEST(q.result[1].second == "id,name");

  // reference parts
  auto r = parse_search("Observation", {{"subject", "Patient/123"}}, false);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(r.clauses[0].values[0].ref_type == "Patient");
  BOOST_TEST(r.clauses[0].values[0].ref_id == "123");
  auto t = parse_search("Observation", {{"subject:Patient", "123"}}, false);
  BOOST_TEST(t.clauses[0].values[0].ref_type == "Patient");
  auto u = parse_search("Observation", {{"subject", "http://other.jp/fhir/Patient/1"}}, false);
  BOOST_TEST(u.clauses[0].values[0].url == "http://other.jp/fhir/Patient/1");

  // composite components are parsed by their own types
  auto comp = parse_search("Observation", {{"code-value-quantity", "http://loinc.org|8480-6$lt60"}}, false);
  BOOST_REQUIRE(comp.ok());
  const auto& parts = comp.clauses[0].values[0].components;
  BOOST_REQUIRE(parts.size() == 2u);
  BOOST_TEST(parts[0].system == "http://loinc.org");
  BOOST_TEST(parts[0].code == "8480-6");
  BOOST_TEST(std::string(prefix_name(parts[1].prefix)) == "lt");
  BOOST_TEST(parts[1].number == "60");

  // a chain names its target type and the inner parameter
  auto ch = parse_search("Observation", {{"subject:Patient.name", "山田"}}, false);
  BOOST_REQUIRE(ch.ok());
  BOOST_REQUIRE(ch.clauses[0].chain != nullptr);
  BOOST_TEST(ch.clauses[0].chain->target_type == "Patient");
  BOOST_TEST(ch.clauses[0].chain->inner.param->code == "name");
  BOOST_TEST(ch.clauses[0].values.empty());

  // unknown chained inner parameter in lenient mode is ignored as a whole
  auto li = parse_search("Observation", {{"patient.nope", "x"}}, true);
  BOOST_REQUIRE(li.ok());
  BOOST_TEST(li.clauses.empty());
  BOOST_TEST(li.ignored.size() == 1u);
}
