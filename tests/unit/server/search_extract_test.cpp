#define BOOST_TEST_MODULE search_extract
// Index extraction without a database: NFKC folding, the rows each FHIR value type gives,
// every core parameter's expression over the official examples (no exception escapes),
// and the project's own parameters.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "resources/json.hpp"
#include "server/search/extract.hpp"
#include "server/search/normalize.hpp"
#include "server/search/query.hpp"
#include "server/search/registry.hpp"

using namespace kasama::search;
using kasama::resources::Json;
using kasama::storage::IndexRows;

namespace {

Json parse(const std::string& text) {
  auto r = kasama::resources::parse_json(text);
  BOOST_REQUIRE_MESSAGE(r.ok, r.error);
  return r.value;
}

IndexRows rows_of(const std::string& json) {
  Json res = parse(json);
  return Extractor::instance().extract(res["resourceType"].get<std::string>(), res, "https://example.org/fhir");
}

template <class Row>
std::vector<Row> of_param(const std::vector<Row>& rows, const std::string& param) {
  std::vector<Row> out;
  std::copy_if(rows.begin(), rows.end(), std::back_inserter(out), [&](const Row& r) { return r.param == param; });
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fold_text_nfkc_case_accents_but_not_kana_voicing) {
  BOOST_TEST(fold_text("ﾔﾏﾀﾞ") == "ヤマダ");
  BOOST_TEST(fold_text("ＡＢＣ１２３") == "abc123");
  BOOST_TEST(fold_text("José ÅNGSTRÖM") == "jose angstrom");
  BOOST_TEST(fold_text("ヤマダ") != fold_text("ヤマタ"));
  BOOST_TEST(fold_text("ﾊﾟﾝ") == "パン");          // semi-voiced mark kept
  BOOST_TEST(fold_text("ガ") == fold_text("ガ"));  // decomposed and composed forms agree
  BOOST_TEST(fold_text("Straße") == "strasse");
  BOOST_TEST(fold_text("㈱笠間") == "(株)笠間");
  BOOST_TEST(fold_text("plain ascii") == "plain ascii");
  BOOST_TEST(truncate_chars("あいうえお", 3) == "あいう");
  BOOST_TEST(truncate_chars("abc", 5) == "abc");
}

BOOST_AUTO_TEST_CASE(rows_per_value_type) {
  auto rows = rows_of(R"({"resourceType":"Patient","id":"p","active":true,"gender":"female","birthDate":"1950-03",
    "identifier":[{"system":"urn:s","value":"1","type":{"coding":[{"system":"urn:t","code":"MR"}],"text":"Medical record"}}],
    "name":[{"family":"山田","given":["花子"]},{"family":"ﾔﾏﾀﾞ","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation","valueCode":"SYL"}]}],
    "telecom":[{"system":"phone","value":"0296-00-0000"}],
    "generalPractitioner":[{"reference":"https://example.org/fhir/Practitioner/dr"},{"reference":"http://elsewhere.org/Practitioner/x"},
      {"identifier":{"system":"urn:npi","value":"42"}}]})");
  // token: boolean, code with its implied system, identifier, of-type, :text
  auto gender = of_param(rows.tokens, "gender");
  BOOST_REQUIRE(gender.size() == 1u);
  BOOST_TEST(gender[0].system == "http://hl7.org/fhir/administrative-gender");
  BOOST_TEST(of_param(rows.tokens, "active").at(0).value == "true");
  BOOST_TEST(of_param(rows.tokens, "identifier").at(0).system == "urn:s");
  BOOST_TEST(of_param(rows.tokens, "identifier:of-type").at(0).value == "MR|1");
  BOOST_TEST(of_param(rows.strings, "identifier:text").at(0).folded == "medical record");
  BOOST_TEST(of_param(rows.tokens, "phone").at(0).value == "0296-00-0000");
  // string: each name part, folded; the kana reading also under the project's `kana`
  auto family = of_param(rows.strings, "family");
  BOOST_TEST(family.size() == 2u);
  auto kana = of_param(rows.strings, "kana");
  BOOST_REQUIRE(kana.size() == 1u);
  BOOST_TEST(kana[0].folded == "ヤマダ");
  BOOST_TEST(kana[0].exact == "ﾔﾏﾀﾞ");
  // date: the month as a range
  auto birth = of_param(rows.dates, "birthdate");
  BOOST_REQUIRE(birth.size() == 1u);
  BOOST_TEST(birth[0].hi - birth[0].lo == 31LL * 86'400'000);
  // reference: local (own base stripped), other server (url), identifier-only
  auto gp = of_param(rows.references, "general-practitioner");
  BOOST_REQUIRE(gp.size() == 2u);
  BOOST_TEST((std::any_of(gp.begin(), gp.end(),
                          [](auto& r) { return r.target_type == "Practitioner" && r.target_id == "dr"; })));
  BOOST_TEST(
      (std::any_of(gp.begin(), gp.end(), [](auto& r) { return r.url == "http://elsewhere.org/Practitioner/x"; })));
  BOOST_TEST(of_param(rows.tokens, "general-practitioner:identifier").at(0).value == "42");
}

BOOST_AUTO_TEST_CASE(quantities_periods_and_composites) {
  auto rows = rows_of(R"({"resourceType":"Observation","id":"o","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
    "effectivePeriod":{"start":"2024-05-01T10:00:00+09:00"},
    "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
                 {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80.50,"unit":"mmHg"}}]})");
  auto date = of_param(rows.dates, "date");
  BOOST_REQUIRE(date.size() == 1u);
  BOOST_TEST(date[0].hi == kasama::storage::DateRow::kOpenHigh);  // open end
  auto cvq = of_param(rows.quantities, "component-value-quantity");
  BOOST_REQUIRE(cvq.size() == 2u);
  auto comp = of_param(rows.composites, "component-code-value-quantity");
  BOOST_REQUIRE(comp.size() == 2u);  // each code with its own value only
  for (const auto& c : comp) {
    if (c.code1 == "8480-6") BOOST_TEST(*c.number2 == 120.0);
    if (c.code1 == "8462-4") {
      BOOST_TEST(*c.number2 == 80.5);
      BOOST_TEST(c.code2 == "mmHg");  // unit when there is no code
    }
  }
}

BOOST_AUTO_TEST_CASE(every_official_example_extracts_without_error) {
  const std::filesystem::path dir = std::string(KASAMA_SHARED_DIR) + "/corpora/r4-examples";
  if (!std::filesystem::exists(dir)) {
    BOOST_TEST_MESSAGE("skipped: " << dir << " is absent");
    return;
  }
  std::size_t files = 0, rows = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() != ".json") continue;
    std::ifstream in(f.path());
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = kasama::resources::parse_json(ss.str());
    if (!parsed.ok || !parsed.value.contains("resourceType")) continue;
    const std::string type = parsed.value["resourceType"].get<std::string>();
    IndexRows r;
    BOOST_CHECK_NO_THROW(r = Extractor::instance().extract(type, parsed.value, "http://hl7.org/fhir"));
    rows += r.tokens.size() + r.strings.size() + r.dates.size() + r.references.size() + r.quantities.size() +
            r.uris.size() + r.numbers.size() + r.composites.size();
    ++files;
  }
  BOOST_TEST(files > 700u);
  BOOST_TEST(rows > files * 5);
  BOOST_TEST_MESSAGE(files << " examples, " << rows << " index rows");
  BOOST_TEST(Extractor::instance().failures().empty());
  for (const auto& m : Extractor::instance().evaluation_error_samples()) BOOST_TEST_MESSAGE("evaluation error: " << m);
  BOOST_TEST(Extractor::instance().evaluation_errors() == 0u);
}

BOOST_AUTO_TEST_CASE(project_parameters_and_fingerprint) {
  const auto& reg = Registry::instance();
  for (const char* code : {"kana"}) BOOST_TEST(reg.find("Patient", code) != nullptr);
  BOOST_TEST(reg.find("Coverage", "jp-insured-personnumber") != nullptr);
  BOOST_TEST((reg.find("Organization", "jp-prefectureno")->type == ParamType::kToken));
  BOOST_TEST(reg.fingerprint().size() == 64u);
  BOOST_TEST(reg.fingerprint() == reg.fingerprint());
  BOOST_TEST(unsupported_reason(*reg.find("Patient", "_text")) != "");
  BOOST_TEST(unsupported_reason(*reg.find("Patient", "name")) == "");
}

BOOST_AUTO_TEST_CASE(query_parser_survives_random_input) {
  // Deterministic mutation fuzzing of parse_search: never throws, errors name a parameter.
  std::mt19937 rng(20261129);
  const std::vector<std::string> names = {"name",
                                          "birthdate",
                                          "_has:Observation:patient:code",
                                          "subject:Patient.name",
                                          "code:text",
                                          "value-quantity",
                                          "code-value-quantity",
                                          "_id",
                                          "x",
                                          "_sort",
                                          "identifier:of-type",
                                          "date",
                                          "general-practitioner.name",
                                          "_has"};
  const std::string alphabet = "ab|$,\\:._-019eEgtlsapx%/ ﾔ山\x80";
  for (int i = 0; i < 20000; ++i) {
    const std::string type = i % 3 ? "Patient" : "Observation";
    std::vector<std::pair<std::string, std::string>> params;
    const int n = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < n; ++k) {
      std::string name = names[rng() % names.size()];
      std::string value;
      const int len = static_cast<int>(rng() % 12);
      for (int c = 0; c < len; ++c) value += alphabet[rng() % alphabet.size()];
      if (rng() % 5 == 0) name += alphabet[rng() % alphabet.size()];
      params.emplace_back(name, value);
    }
    ParsedQuery q;
    BOOST_REQUIRE_NO_THROW(q = parse_search(type, params, rng() % 2 == 0));
    if (!q.ok()) BOOST_REQUIRE(!q.error->parameter.empty());
  }
}
