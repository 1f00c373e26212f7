#define BOOST_TEST_MODULE resources_fhirpath
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "resources/fhirpath.hpp"
#include "resources/json.hpp"

using namespace kasama::resources;
using namespace kasama::resources::fhirpath;
namespace fs = std::filesystem;

namespace {

Json parse(std::string_view text) {
  auto r = parse_json(text);
  BOOST_REQUIRE_MESSAGE(r.ok, r.error);
  return r.value;
}

std::optional<std::string> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The results rendered for comparison: primitives as text, others as "<Type>".
std::string render(const Collection& c) {
  std::string out;
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (i) out += ",";
    if (auto t = primitive_text(c[i]))
      out += *t;
    else
      out += "<" + c[i].type + ">";
  }
  return out;
}

const char* const kPatient = R"({
  "resourceType": "Patient", "id": "p1",
  "extension": [{"url": "http://example.org/race", "valueCodeableConcept": {"text": "Other"}},
                {"url": "http://example.org/flag", "valueBoolean": true}],
  "active": true,
  "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
           {"use": "usual", "given": ["Jim"]}],
  "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "generalPractitioner": [{"reference": "Practitioner/pr1"}, {"reference": "Organization/o1"}],
  "managingOrganization": {"reference": "http://example.org/fhir/Organization/o2/_history/3"},
  "link": [{"other": {"reference": "#c1"}, "type": "seealso"}],
  "contained": [{"resourceType": "RelatedPerson", "id": "c1", "patient": {"reference": "Patient/p1"}}]
})";

const char* const kObservation = R"({
  "resourceType": "Observation", "id": "o1", "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}, {"system": "http://snomed.info/sct", "code": "27113001"}]},
  "subject": {"reference": "Patient/p1"},
  "effectiveDateTime": "2016-03-28",
  "valueQuantity": {"value": 67.50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
  "component": [{"code": {"text": "a"}, "valueString": "x"}, {"code": {"text": "b"}, "valueCodeableConcept": {"text": "y"}}]
})";

const char* const kCondition = R"({
  "resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
  "onsetDateTime": "2012-05-24", "abatementString": "around April 2013"
})";

}  // namespace

BOOST_AUTO_TEST_CASE(table_of_cases) {
  Json patient = parse(kPatient);
  Json observation = parse(kObservation);
  Json condition = parse(kCondition);
  struct Case {
    const Json* resource;
    const char* expr;
    const char* expected;
  };
  const Case cases[] = {
      {&patient, "Patient.name.family", "Chalmers"},
      {&patient, "Patient.name.given", "Peter,James,Jim"},
      {&patient, "name.given.first()", "Peter"},
      {&patient, "Patient.name.where(use = 'usual').given", "Jim"},
      {&patient, "Patient.name.where(use != 'usual').given.count()", "2"},
      {&patient, "Observation.code", ""},
      {&patient, "Patient.gender | Patient.birthDate", "male,1974-12-25"},
      {&patient, "Patient.gender | Patient.gender", "male"},
      {&patient, "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').value",
       "1974-12-25T14:35:45-05:00"},
      {&patient, "Patient.extension('http://example.org/race').value.text", "Other"},
      {&patient, "Patient.extension('http://example.org/race').value is CodeableConcept", "true"},
      {&patient, "Patient.extension.value.ofType(boolean)", "true"},
      {&patient, "Patient.extension('nope').exists()", "false"},
      {&patient, "Patient.active.not()", "false"},
      {&patient, "Patient.name.empty()", "false"},
      {&patient, "Patient.generalPractitioner.where(resolve() is Practitioner).reference", "Practitioner/pr1"},
      {&patient, "Patient.generalPractitioner.resolve().ofType(Organization).id", "o1"},
      {&patient, "Patient.managingOrganization.resolve() is Organization", "true"},
      {&patient, "Patient.link.other.resolve().patient.reference", "Patient/p1"},
      {&patient, "%resource.id", "p1"},
      {&patient, "Patient.name.select(given.first() & ' ' & family)", "Peter Chalmers,Jim "},
      {&patient, "Patient.name.given.where($this.startsWith('J'))", "James,Jim"},
      {&patient, "Patient.name.given.distinct().count() = 3 and Patient.active", "true"},
      {&patient, "Patient.gender = 'female' or Patient.active = false", "false"},
      {&patient, "iif(Patient.active, 'yes', 'no')", "yes"},
      {&patient, "Patient.name[1].given", "Jim"},
      {&patient, "Resource.id", "p1"},
      {&patient, "DomainResource.id", "p1"},
      {&patient, "Patient.birthDate > @1970-01-01", "true"},
      {&patient, "Patient.name.given.contains('Pet')", ""},  // multi-item input: error, checked below
      {&observation, "Observation.value as Quantity", "67.50 'kg'"},
      {&observation, "(Observation.value as Quantity).value", "67.50"},
      {&observation, "Observation.value.as(Quantity).unit", "kg"},
      {&observation, "Observation.value is Quantity", "true"},
      {&observation, "(Observation.value as CodeableConcept).text", ""},
      {&observation, "Observation.effective.as(dateTime)", "2016-03-28"},
      {&observation, "Observation.effective as Period", ""},
      {&observation, "Observation.component.value.ofType(CodeableConcept).text", "y"},
      {&observation, "Observation.component.where(code.text = 'a').value", "x"},
      {&observation, "Observation.code.coding.where(system = %loinc).code", "29463-7"},
      {&observation, "Observation.code.coding.code contains '27113001'", "true"},
      {&observation, "'29463-7' in Observation.code.coding.code", "true"},
      {&observation, "Observation.subject.where(resolve() is Patient)", "<Reference>"},
      {&observation, "Observation.subject.where(resolve() is Group)", ""},
      {&observation, "Observation.value.value * 2", "135.0"},
      {&observation, "Observation.value.value > 60", "true"},
      {&observation, "1 + 2 * 3 - 4 div 3", "6"},
      {&observation, "7 mod 3 = 1 and (10 / 4) = 2.5", "true"},
      {&observation, "'a' + 'b' & 'c'", "abc"},
      {&observation, "Observation.status.upper().lower().length()", "5"},
      {&observation, "Observation.status.substring(1, 3)", "ina"},
      {&observation, "Observation.status.replace('in', 'IN')", "fINal"},
      {&observation, "Observation.status ~ 'FINAL'", "true"},
      {&observation, "Observation.children().count()", "8"},
      {&condition, "Condition.onset.as(dateTime)", "2012-05-24"},
      {&condition, "Condition.onset.as(DateTime) | Condition.onset.as(Period)", "2012-05-24"},
      {&condition, "Condition.onset.is(DateTime)", "false"},
      {&observation, "Observation.status.is(string) and Observation.status.as(string).empty()", "true"},
      {&condition, "Condition.abatement.as(string)", "around April 2013"},
      {&condition, "Condition.abatement as dateTime", ""},
      {&condition, "{}.empty() and true", "true"},
      {&condition, "(true and {}).empty() and (false and {}) = false and (true or {}) and ({} implies false).empty()",
       "true"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.expr) {
      auto expr = Expression::parse(c.expr);
      if (std::string_view(c.expr).find("contains('Pet')") != std::string_view::npos) {
        BOOST_CHECK_THROW(expr.evaluate(*c.resource), FhirPathError);
        continue;
      }
      BOOST_TEST(render(expr.evaluate(*c.resource)) == c.expected);
    }
  }
}

BOOST_AUTO_TEST_CASE(errors_name_the_problem) {
  try {
    Expression::parse("Patient.name.frobnicate()");
    BOOST_FAIL("expected an error");
  } catch (const FhirPathError& e) {
    BOOST_TEST(std::string(e.what()).find("frobnicate") != std::string::npos);
  }
  const char* bad[] = {"Patient.", "Patient.name.where(", "'unterminated", "(1 + 2",
                       "1 +",      "Patient..name",       "$nope",         "a.b(1,)",
                       "ofType(1)"};
  for (const char* b : bad) {
    BOOST_TEST_CONTEXT(b) {
      BOOST_CHECK_THROW(Expression::parse(b), FhirPathError);
    }
  }
  // Hostile input fails cleanly instead of exhausting the stack.
  BOOST_CHECK_THROW(Expression::parse(std::string(5000, '(') + "1" + std::string(5000, ')')), FhirPathError);
  BOOST_CHECK_THROW(Expression::parse(std::string(5000, '-') + "1"), FhirPathError);
  std::string chain = "Patient";
  for (int i = 0; i < 3000; ++i) chain += ".name";
  Json p = parse(kPatient);
  BOOST_CHECK_THROW(Expression::parse(chain).evaluate(p), FhirPathError);
  std::string sum = "1";
  for (int i = 0; i < 3000; ++i) sum += "+1";
  BOOST_CHECK_THROW(Expression::parse(sum).evaluate(p), FhirPathError);
  BOOST_CHECK_THROW(Expression::parse("Patient.name.given + 1").evaluate(p), FhirPathError);
  BOOST_CHECK_THROW(Expression::parse("%unknownConstant").evaluate(p), FhirPathError);
}

BOOST_AUTO_TEST_CASE(search_parameter_expressions) {
  fs::path shared = KASAMA_SHARED_DIR;
  auto text = read_file(shared / "fhir-r4" / "search-parameters.json");
  if (!text) {
    BOOST_TEST_MESSAGE("search-parameters.json not found; skipped");
    return;
  }
  Json bundle = parse(*text);
  fs::path examples = shared / "corpora" / "r4-examples";
  // Up to two official examples per resource type.
  std::map<std::string, std::vector<Json>> by_type;
  if (fs::is_directory(examples)) {
    std::vector<fs::path> files;
    for (const auto& f : fs::directory_iterator(examples))
      if (f.path().extension() == ".json") files.push_back(f.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::string name = f.filename().string();
      std::string type = name.substr(0, name.find('-'));
      auto& list = by_type[type];
      if (list.size() >= 2) continue;
      auto t = read_file(f);
      if (!t) continue;
      auto r = parse_json(*t);
      if (r.ok && r.value.is_object()) list.push_back(std::move(r.value));
    }
  }
  std::size_t total = 0, parsed = 0, evaluations = 0, nonempty = 0;
  for (const auto& entry : bundle["entry"]) {
    const Json& sp = entry["resource"];
    if (!sp.contains("expression")) continue;
    ++total;
    std::string expr_text = sp["expression"].get<std::string>();
    std::optional<Expression> expr;
    try {
      expr = Expression::parse(expr_text);
      ++parsed;
    } catch (const FhirPathError& e) {
      BOOST_ERROR(sp["id"].get<std::string>() << ": " << e.what());
      continue;
    }
    for (const auto& base : sp["base"]) {
      auto it = by_type.find(base.get<std::string>());
      if (it == by_type.end()) continue;
      for (const auto& res : it->second) {
        BOOST_TEST_CONTEXT(sp["id"].get<std::string>() << " on " << res.value("id", "?") << ": " << expr_text) {
          BOOST_CHECK_NO_THROW({
            auto r = expr->evaluate(res);
            ++evaluations;
            if (!r.empty()) ++nonempty;
          });
        }
      }
    }
  }
  BOOST_TEST_MESSAGE("search parameter expressions: " << parsed << "/" << total << " parse; " << evaluations
                                                      << " evaluations over examples, " << nonempty << " non-empty");
  BOOST_TEST(parsed == total);
  BOOST_TEST(evaluations > 0u);
}

namespace {

// A minimal reader for the suite's XML: elements, attributes, text with the five entities.
struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::string text;
  std::vector<XmlNode> children;
};

std::string decode_entities(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    auto semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s[i];
      continue;
    }
    auto ent = s.substr(i + 1, semi - i - 1);
    if (ent == "lt")
      out += '<';
    else if (ent == "gt")
      out += '>';
    else if (ent == "amp")
      out += '&';
    else if (ent == "quot")
      out += '"';
    else if (ent == "apos")
      out += '\'';
    else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

class XmlReader {
 public:
  explicit XmlReader(std::string_view s) : s_(s) {}
  XmlNode document() {
    XmlNode root;
    root.name = "#document";
    content(root);
    return root;
  }

 private:
  std::string_view s_;
  std::size_t p_ = 0;

  void content(XmlNode& parent) {
    while (p_ < s_.size()) {
      if (s_.compare(p_, 4, "<!--") == 0) {
        auto e = s_.find("-->", p_);
        p_ = e == std::string_view::npos ? s_.size() : e + 3;
      } else if (s_.compare(p_, 2, "<?") == 0) {
        auto e = s_.find("?>", p_);
        p_ = e == std::string_view::npos ? s_.size() : e + 2;
      } else if (s_.compare(p_, 2, "</") == 0) {
        auto e = s_.find('>', p_);
        p_ = e == std::string_view::npos ? s_.size() : e + 1;
        return;
      } else if (s_[p_] == '<') {
        parent.children.push_back(element());
      } else {
        auto e = s_.find('<', p_);
        if (e == std::string_view::npos) e = s_.size();
        parent.text += decode_entities(s_.substr(p_, e - p_));
        p_ = e;
      }
    }
  }

  XmlNode element() {
    XmlNode n;
    ++p_;  // '<'
    std::size_t b = p_;
    while (p_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[p_])) && s_[p_] != '>' && s_[p_] != '/') ++p_;
    n.name = std::string(s_.substr(b, p_ - b));
    while (p_ < s_.size()) {
      while (p_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[p_]))) ++p_;
      if (p_ >= s_.size()) break;
      if (s_[p_] == '/') {
        p_ += 2;
        return n;
      }
      if (s_[p_] == '>') {
        ++p_;
        content(n);
        return n;
      }
      auto eq = s_.find('=', p_);
      std::string key(s_.substr(p_, eq - p_));
      char q = s_[eq + 1];
      auto end = s_.find(q, eq + 2);
      n.attrs[key] = decode_entities(s_.substr(eq + 2, end - eq - 2));
      p_ = end + 1;
    }
    return n;
  }
};

void collect_tests(const XmlNode& n, std::vector<const XmlNode*>& out) {
  if (n.name == "test") {
    out.push_back(&n);
    return;
  }
  for (const auto& c : n.children) collect_tests(c, out);
}

}  // namespace

BOOST_AUTO_TEST_CASE(official_fhirpath_suite) {
  fs::path dir = fs::path(KASAMA_SHARED_DIR) / "corpora" / "fhirpath";
  auto text = read_file(dir / "tests-fhir-r4.xml");
  if (!text) {
    BOOST_TEST_MESSAGE("tests-fhir-r4.xml not found; skipped");
    return;
  }
  XmlNode doc = XmlReader(*text).document();
  std::vector<const XmlNode*> tests;
  collect_tests(doc, tests);
  std::map<std::string, Json> inputs;
  auto input = [&](std::string file) -> const Json* {
    if (file.empty()) file = "patient-example.xml";
    auto dot = file.rfind('.');
    std::string json_name = file.substr(0, dot) + ".json";
    auto it = inputs.find(json_name);
    if (it != inputs.end()) return &it->second;
    auto t = read_file(dir / "fhirpathjs-converted" / "resources" / json_name);
    if (!t) t = read_file(dir / "inputs-r4" / json_name);
    if (!t) return nullptr;
    auto r = parse_json(*t);
    if (!r.ok) return nullptr;
    return &inputs.emplace(json_name, std::move(r.value)).first->second;
  };
  std::size_t passed = 0, unsupported = 0, failed = 0, no_input = 0;
  std::vector<std::string> failures;
  for (const XmlNode* t : tests) {
    const XmlNode* expr_node = nullptr;
    std::vector<std::string> expected;
    for (const auto& c : t->children) {
      if (c.name == "expression") expr_node = &c;
      if (c.name == "output") {
        std::string v = c.text;
        if (!v.empty() && v[0] == '@') v = v.substr(v.size() > 1 && v[1] == 'T' ? 2 : 1);
        expected.push_back(v);
      }
    }
    if (!expr_node) continue;
    std::string name = t->attrs.count("name") ? t->attrs.at("name") : "?";
    const Json* res = input(t->attrs.count("inputfile") ? t->attrs.at("inputfile") : "");
    if (!res) {
      ++no_input;
      continue;
    }
    bool expect_error = expr_node->attrs.count("invalid") > 0;
    bool predicate = t->attrs.count("predicate") && t->attrs.at("predicate") == "true";
    std::string expr_text = expr_node->text;
    try {
      auto expr = Expression::parse(expr_text);
      auto result = expr.evaluate(*res);
      if (expect_error) {
        ++failed;
        failures.push_back(name + ": expected an error: " + expr_text);
        continue;
      }
      std::vector<std::string> got;
      if (predicate) {
        got.push_back(result.empty() ? "false" : "true");
      } else {
        for (const auto& n : result) got.push_back(primitive_text(n).value_or("<" + n.type + ">"));
      }
      if (got == expected) {
        ++passed;
      } else {
        ++failed;
        std::string g, w;
        for (const auto& x : got) g += x + ";";
        for (const auto& x : expected) w += x + ";";
        failures.push_back(name + ": " + expr_text + " => [" + g + "] want [" + w + "]");
      }
    } catch (const FhirPathError& e) {
      if (expect_error) {
        ++passed;
      } else if (std::string(e.what()).find("unsupported") != std::string::npos) {
        ++unsupported;
        failures.push_back("UNSUPPORTED " + name + ": " + e.what());
      } else {
        ++failed;
        failures.push_back(name + ": " + expr_text + " threw " + e.what());
      }
    }
  }
  std::size_t total = passed + failed + unsupported;
  BOOST_TEST_MESSAGE("official FHIRPath R4 suite: "
                     << passed << "/" << total << " pass ("
                     << (total ? 100.0 * static_cast<double>(passed) / static_cast<double>(total) : 0.0) << "%), "
                     << unsupported << " use unsupported functions, " << failed << " fail, " << no_input
                     << " skipped (no JSON input)");
  if (std::getenv("KASAMA_FHIRPATH_SUITE_VERBOSE")) {
    for (const auto& f : failures) BOOST_TEST_MESSAGE("  " << f);
  }
  BOOST_TEST(total > 0u);
}
