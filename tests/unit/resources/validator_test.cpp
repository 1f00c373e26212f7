#define BOOST_TEST_MODULE resources_validator
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "resources/json.hpp"
#include "resources/narrative.hpp"
#include "resources/paths.hpp"
#include "resources/type_model.hpp"
#include "resources/validator.hpp"

using kasama::resources::ElementContext;
using kasama::resources::is_valid_primitive_text;
using kasama::resources::Json;
using kasama::resources::kMaxValidationIssues;
using kasama::resources::parse_json;
using kasama::resources::PrimitiveFormat;
using kasama::resources::TypeKind;
using kasama::resources::TypeModel;
using kasama::resources::validate_resource;
using kasama::resources::ValidationIssue;

namespace fs = std::filesystem;

namespace {

struct Expected {
  const char* code;
  const char* expression;
};

struct Case {
  const char* name;
  const char* input;
  std::vector<Expected> issues;  // empty: valid
};

std::string describe(const std::vector<ValidationIssue>& issues) {
  std::string out;
  for (const auto& i : issues) out += "\n  [" + i.code + "] " + i.expression + ": " + i.message;
  return out.empty() ? " (no issues)" : out;
}

Json parse_or_fail(const std::string& text) {
  auto r = parse_json(text);
  if (!r.ok) BOOST_FAIL("test input is not JSON: " + r.error);
  return std::move(r.value);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const fs::path kShared = KASAMA_SHARED_DIR;

// Validates each case and compares the issues' codes and expressions with the expected ones.
void check_cases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      Json input = parse_or_fail(c.input);
      auto issues = validate_resource(input);
      BOOST_TEST(issues.size() == c.issues.size(),
                 c.name << ": expected " << c.issues.size() << " issue(s), got" << describe(issues));
      for (const Expected& e : c.issues) {
        bool found = std::any_of(issues.begin(), issues.end(), [&](const ValidationIssue& i) {
          return i.code == e.code && i.expression == e.expression;
        });
        BOOST_TEST(found, c.name << ": expected [" << e.code << "] " << e.expression << ", got" << describe(issues));
      }
      for (const auto& i : issues) BOOST_TEST(!i.message.empty());
    }
  }
}

// One Observation shell the value[x] cases fill in.
std::string observation(const std::string& extra) {
  return R"({"resourceType":"Observation","status":"final","code":{"text":"x"})" +
         (extra.empty() ? std::string() : "," + extra) + "}";
}

}  // namespace

BOOST_AUTO_TEST_CASE(table_of_valid_and_invalid_resources) {
  const std::string obs_quantity =
      observation(R"("valueQuantity":{"value":1.50,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"})");
  const std::string obs_string = observation(R"("valueString":"positive")");
  const std::string obs_leap = observation(R"("effectiveDateTime":"2020-02-29T10:00:00+09:00")");
  const std::string obs_component = observation(
      R"("component":[{"code":{"text":"a"},"valueInteger":-5},{"code":{"text":"b"},"valueBoolean":false}])");
  const std::string obs_time = observation(R"("valueTime":"23:59:60.5")");
  const std::string obs_no_tz = observation(R"("effectiveDateTime":"2020-01-01T10:00:00")");
  const std::string obs_no_secs = observation(R"("effectiveDateTime":"2020-01-01T10:00Z")");
  const std::string obs_tz15 = observation(R"("effectiveDateTime":"2020-01-01T10:00:00+15:00")");
  const std::string obs_two_choices = observation(R"("valueString":"a","valueBoolean":true)");
  const std::string obs_bare_choice = observation(R"("value":5)");
  const std::string obs_wrong_case = observation(R"("valuequantity":{"value":1})");
  const std::string obs_status_space = R"({"resourceType":"Observation","status":"final ","code":{"text":"x"}})";
  const std::string obs_integer_fraction = observation(R"("valueInteger":1.5)");
  const std::string obs_integer_big = observation(R"("valueInteger":2147483648)");
  const std::string obs_integer_min = observation(R"("valueInteger":-2147483648)");
  const std::string obs_decimal_string = observation(R"("valueQuantity":{"value":"1.5"})");
  const std::string obs_decimal_exp = observation(R"("valueQuantity":{"value":1e-3})");
  const std::string obs_bad_time = observation(R"("valueTime":"25:00:00")");
  const std::string obs_choice_ext =
      observation(R"("valueString":"a","_valueString":{"extension":[{"url":"http://x","valueCode":"b"}]})");

  const std::vector<Case> cases = {
      // ---- valid ----
      {"minimal patient", R"({"resourceType":"Patient"})", {}},
      {"patient with common elements",
       R"({"resourceType":"Patient","id":"p-1.a","active":true,"gender":"female","birthDate":"1974-12-25",
           "name":[{"use":"official","family":"Chalmers","given":["Peter","James"]}],
           "telecom":[{"system":"phone","value":"(03) 5555 6473"}],"deceasedBoolean":false,
           "multipleBirthInteger":2})",
       {}},
      {"observation valueQuantity with exact decimal", obs_quantity.c_str(), {}},
      {"observation valueString", obs_string.c_str(), {}},
      {"dateTime on a leap day with offset", obs_leap.c_str(), {}},
      {"backbone components with choices", obs_component.c_str(), {}},
      {"time with leap second and fraction", obs_time.c_str(), {}},
      {"decimal with exponent", obs_decimal_exp.c_str(), {}},
      {"integer minimum", obs_integer_min.c_str(), {}},
      {"extension on a choice primitive", obs_choice_ext.c_str(), {}},
      {"primitive extension without value",
       R"({"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}})",
       {}},
      {"null placeholders aligned in both arrays",
       R"({"resourceType":"Patient","name":[{"given":["Eve",null,"Ann"],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]},{"id":"g3"}]}]})",
       {}},
      {"year and year-month dates",
       R"({"resourceType":"Patient","birthDate":"1974","deceasedDateTime":"2001-07"})",
       {}},
      {"instant with fraction and offset",
       R"({"resourceType":"Patient","meta":{"lastUpdated":"2015-02-07T13:28:17.239+02:00","versionId":"1"}})",
       {}},
      {"contained resource referenced locally",
       R"({"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"org1","name":"ACME"}],
           "managingOrganization":{"reference":"#org1"}})",
       {}},
      {"transaction bundle",
       R"({"resourceType":"Bundle","type":"transaction","entry":[
           {"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":{"resourceType":"Patient","active":true},
            "request":{"method":"POST","url":"Patient"}},
           {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
             "subject":{"reference":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},"request":{"method":"POST","url":"Observation"}}]})",
       {}},
      {"bundle response outcome",
       R"({"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"400",
           "outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}}}]})",
       {}},
      {"parameters with a resource",
       R"({"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Patient"}},{"name":"n","valueInteger":3}]})",
       {}},
      {"japanese strings with U+3000 and full-width digits",
       "{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"山田\u3000太郎\",\"family\":\"山田\",\"given\":[\"太郎\"]}]"
       ","
       "\"address\":[{\"text\":\"東京都千代田区千代田１－１\",\"line\":[\"千代田１２３\u3000番地\"],\"postalCode\":"
       "\"１００－０００１\"}],"
       "\"identifier\":[{\"system\":\"urn:oid:1.2.392.100495.20.3.51.1\",\"value\":\"００１２３\"}]}",
       {}},
      {"code containing U+3000 is one token",
       "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"code\":\"血液\u3000検査\"}]}}",
       {}},
      {"nested questionnaire items via contentReference",
       R"({"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group",
           "item":[{"linkId":"1.1","type":"string","item":[{"linkId":"1.1.1","type":"display","text":"t"}]}]}]})",
       {}},
      {"timing repeat (an Element-typed backbone)",
       R"({"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},
           "medicationCodeableConcept":{"text":"m"},
           "dosageInstruction":[{"timing":{"repeat":{"frequency":2,"period":1,"periodUnit":"d"}},
             "doseAndRate":[{"doseQuantity":{"value":1}}]}]})",
       {}},
      {"base64 with line breaks",
       "{\"resourceType\":\"Binary\",\"contentType\":\"text/plain\",\"data\":\"SGVsbG8g\\nV29y bGQ=\"}",
       {}},
      {"extension with oid and uuid values",
       R"({"resourceType":"Patient","extension":[{"url":"http://x/a","valueOid":"urn:oid:2.16.840.1.113883"},
           {"url":"http://x/b","valueUuid":"urn:uuid:c757873d-ec9a-4326-a141-556f43239520"},
           {"url":"http://x/c","extension":[{"url":"d","valueCodeableConcept":{"text":"e"}}]}]})",
       {}},
      {"resource id with primitive extension",
       R"({"resourceType":"Patient","id":"a","_id":{"extension":[{"url":"http://x","valueString":"y"}]}})",
       {}},

      // ---- structure: resource envelope ----
      {"root is an array", "[]", {{"structure", ""}}},
      {"missing resourceType", R"({"id":"a"})", {{"structure", "resourceType"}}},
      {"unknown resourceType", R"({"resourceType":"Foo"})", {{"structure", "resourceType"}}},
      {"abstract resourceType", R"({"resourceType":"DomainResource"})", {{"structure", "resourceType"}}},
      {"resourceType not a string", R"({"resourceType":1})", {{"structure", "resourceType"}}},
      {"resourceType inside a datatype",
       R"({"resourceType":"Patient","name":[{"resourceType":"HumanName","family":"x"}]})",
       {{"structure", "Patient.name[0].resourceType"}}},
      // ---- structure: elements ----
      {"unknown element", R"({"resourceType":"Patient","foo":1})", {{"structure", "Patient.foo"}}},
      {"unknown element in a datatype",
       R"({"resourceType":"Patient","name":[{"family":"x","surname":"y"}]})",
       {{"structure", "Patient.name[0].surname"}}},
      {"repeating element not an array",
       R"({"resourceType":"Patient","name":{"family":"x"}})",
       {{"structure", "Patient.name"}}},
      {"single element as array", R"({"resourceType":"Patient","gender":["male"]})", {{"structure", "Patient.gender"}}},
      {"boolean as string", R"({"resourceType":"Patient","active":"true"})", {{"structure", "Patient.active"}}},
      {"string as number",
       R"({"resourceType":"Patient","name":[{"family":12}]})",
       {{"structure", "Patient.name[0].family"}}},
      {"object where primitive expected",
       R"({"resourceType":"Patient","birthDate":{"value":"1970"}})",
       {{"structure", "Patient.birthDate"}}},
      {"datatype as string",
       R"({"resourceType":"Patient","maritalStatus":"M"})",
       {{"structure", "Patient.maritalStatus"}}},
      {"empty object", R"({"resourceType":"Patient","name":[{}]})", {{"structure", "Patient.name[0]"}}},
      {"empty array", R"({"resourceType":"Patient","name":[]})", {{"structure", "Patient.name"}}},
      {"empty string",
       R"({"resourceType":"Patient","name":[{"family":""}]})",
       {{"structure", "Patient.name[0].family"}}},
      {"null single value", R"({"resourceType":"Patient","gender":null})", {{"structure", "Patient.gender"}}},
      {"null inside array of complex",
       R"({"resourceType":"Patient","name":[null]})",
       {{"structure", "Patient.name[0]"}}},
      {"null in array without extension",
       R"({"resourceType":"Patient","name":[{"given":["a",null]}]})",
       {{"structure", "Patient.name[0].given[1]"}}},
      {"both null at the same index",
       R"({"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,null]}]})",
       {{"structure", "Patient.name[0].given[1]"}, {"structure", "Patient.name[0]._given[1]"}}},
      {"primitive extension arrays not aligned",
       R"({"resourceType":"Patient","name":[{"given":["a","b"],"_given":[{"id":"x"}]}]})",
       {{"structure", "Patient.name[0]._given"}}},
      {"primitive extension as string",
       R"({"resourceType":"Patient","birthDate":"1970","_birthDate":"x"})",
       {{"structure", "Patient._birthDate"}}},
      {"primitive extension null",
       R"({"resourceType":"Patient","_birthDate":null})",
       {{"structure", "Patient._birthDate"}}},
      {"primitive extension with value",
       R"({"resourceType":"Patient","_birthDate":{"value":"1970"}})",
       {{"structure", "Patient._birthDate.value"}}},
      {"underscore on a complex element",
       R"({"resourceType":"Patient","_name":[{"id":"a"}]})",
       {{"structure", "Patient._name"}}},
      {"underscore on an XML attribute",
       R"({"resourceType":"Patient","extension":[{"url":"http://x","_url":{"id":"a"},"valueString":"v"}]})",
       {{"structure", "Patient.extension[0]._url"}}},
      {"two types for one choice", obs_two_choices.c_str(), {{"structure", "Observation.valueBoolean"}}},
      {"choice without type suffix", obs_bare_choice.c_str(), {{"structure", "Observation.value"}}},
      {"choice suffix in wrong case", obs_wrong_case.c_str(), {{"structure", "Observation.valuequantity"}}},
      {"decimal as string", obs_decimal_string.c_str(), {{"structure", "Observation.valueQuantity.value"}}},
      {"narrative div as object",
       R"({"resourceType":"Patient","text":{"status":"generated","div":{"p":"x"}}})",
       {{"structure", "Patient.text.div"}}},
      {"contained without resourceType",
       R"({"resourceType":"Patient","contained":[{"id":"x"}]})",
       {{"structure", "Patient.contained[0].resourceType"}}},
      {"unknown element in contained resource",
       R"({"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","foo":true}]})",
       {{"structure", "Patient.contained[0].foo"}}},
      {"bundle entry with a bad reference",
       R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient"}},
           {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":"Patient/1"}}]})",
       {{"structure", "Bundle.entry[1].resource.subject"}}},
      {"bundle entry of unknown type",
       R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patientt"}}]})",
       {{"structure", "Bundle.entry[0].resource.resourceType"}}},
      {"bundle response outcome of the wrong type",
       R"({"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"200",
           "outcome":{"resourceType":"Patient"}}}]})",
       {{"structure", "Bundle.entry[0].response.outcome.resourceType"}}},
      // ---- value: primitive formats ----
      {"month 13", R"({"resourceType":"Patient","birthDate":"1974-13-01"})", {{"value", "Patient.birthDate"}}},
      {"february 29 in a common year",
       R"({"resourceType":"Patient","birthDate":"2019-02-29"})",
       {{"value", "Patient.birthDate"}}},
      {"year zero", R"({"resourceType":"Patient","birthDate":"0000"})", {{"value", "Patient.birthDate"}}},
      {"date with time",
       R"({"resourceType":"Patient","birthDate":"1974-12-25T10:00:00Z"})",
       {{"value", "Patient.birthDate"}}},
      {"dateTime without time zone", obs_no_tz.c_str(), {{"value", "Observation.effectiveDateTime"}}},
      {"dateTime without seconds", obs_no_secs.c_str(), {{"value", "Observation.effectiveDateTime"}}},
      {"time zone beyond 14:00", obs_tz15.c_str(), {{"value", "Observation.effectiveDateTime"}}},
      {"instant with date only",
       R"({"resourceType":"Patient","meta":{"lastUpdated":"2015-02-07"}})",
       {{"value", "Patient.meta.lastUpdated"}}},
      {"time out of range", obs_bad_time.c_str(), {{"value", "Observation.valueTime"}}},
      {"code with trailing space", obs_status_space.c_str(), {{"value", "Observation.status"}}},
      {"code with double space",
       R"({"resourceType":"Observation","status":"final","code":{"coding":[{"code":"a  b"}]}})",
       {{"value", "Observation.code.coding[0].code"}}},
      {"id with underscore", R"({"resourceType":"Patient","id":"a_b"})", {{"value", "Patient.id"}}},
      {"id of 65 characters",
       R"({"resourceType":"Patient","id":"12345678901234567890123456789012345678901234567890123456789012345"})",
       {{"value", "Patient.id"}}},
      {"id with full-width digits", "{\"resourceType\":\"Patient\",\"id\":\"１２３\"}", {{"value", "Patient.id"}}},
      {"uri with a space",
       R"({"resourceType":"Patient","implicitRules":"http://x y"})",
       {{"value", "Patient.implicitRules"}}},
      {"integer with a fraction", obs_integer_fraction.c_str(), {{"value", "Observation.valueInteger"}}},
      {"integer beyond 32 bits", obs_integer_big.c_str(), {{"value", "Observation.valueInteger"}}},
      {"positiveInt zero",
       R"({"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},
           "medicationCodeableConcept":{"text":"m"},"dosageInstruction":[{"timing":{"repeat":{"frequency":0}}}]})",
       {{"value", "MedicationRequest.dosageInstruction[0].timing.repeat.frequency"}}},
      {"unsignedInt negative",
       R"({"resourceType":"Bundle","type":"searchset","total":-1})",
       {{"value", "Bundle.total"}}},
      {"control character in a string",
       R"({"resourceType":"Patient","name":[{"family":"a\u0001b"}]})",
       {{"value", "Patient.name[0].family"}}},
      {"oid with a leading zero",
       R"({"resourceType":"Patient","extension":[{"url":"http://x","valueOid":"urn:oid:1.02"}]})",
       {{"value", "Patient.extension[0].valueOid"}}},
      {"uuid in upper case",
       R"({"resourceType":"Patient","extension":[{"url":"http://x","valueUuid":"urn:uuid:C757873D-EC9A-4326-A141-556F43239520"}]})",
       {{"value", "Patient.extension[0].valueUuid"}}},
      {"base64 of wrong length",
       R"({"resourceType":"Binary","contentType":"text/plain","data":"abc"})",
       {{"value", "Binary.data"}}},
      {"base64 with bad characters",
       R"({"resourceType":"Binary","contentType":"text/plain","data":"ab$d"})",
       {{"value", "Binary.data"}}},
      // ---- required ----
      {"observation without status",
       R"({"resourceType":"Observation","code":{"text":"x"}})",
       {{"required", "Observation.status"}}},
      {"extension without url",
       R"({"resourceType":"Patient","extension":[{"valueString":"x"}]})",
       {{"required", "Patient.extension[0].url"}}},
      {"backbone element missing a required child",
       R"({"resourceType":"Patient","link":[{"type":"seealso"}]})",
       {{"required", "Patient.link[0].other"}}},
      {"required inside contentReference children",
       R"({"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"type":"string"}]}]})",
       {{"required", "Questionnaire.item[0].item[0].linkId"}}},
      {"required in a contained resource",
       R"({"resourceType":"Patient","contained":[{"resourceType":"Observation","code":{"text":"x"}}]})",
       {{"required", "Patient.contained[0].status"}}},
      {"required primitive satisfied by its extension only",
       R"({"resourceType":"Observation","_status":{"extension":[{"url":"http://x","valueCode":"unknown"}]},"code":{"text":"x"}})",
       {}},
  };

  BOOST_TEST(cases.size() >= 40u);
  check_cases(cases);
}

BOOST_AUTO_TEST_CASE(messages_name_the_element) {
  auto issues = validate_resource(parse_or_fail(R"({"resourceType":"Patient","birthDate":"1974-13-01","foo":1})"));
  BOOST_REQUIRE_EQUAL(issues.size(), 2u);
  BOOST_TEST(issues[0].message.find("birthDate") != std::string::npos);
  BOOST_TEST(issues[0].message.find("1974-13-01") != std::string::npos);
  BOOST_TEST(issues[1].message.find("foo") != std::string::npos);
  auto choice = validate_resource(parse_or_fail(observation(R"("value":5)")));
  BOOST_REQUIRE_EQUAL(choice.size(), 1u);
  BOOST_TEST(choice[0].message.find("valueQuantity") != std::string::npos, choice[0].message);
}

// ---- required bindings (terminologies.html#required) ----

BOOST_AUTO_TEST_CASE(required_bindings) {
  const std::string units = R"({"resourceType":"MedicationRequest","status":"active","intent":"order",
      "subject":{"reference":"Patient/1"},"medicationCodeableConcept":{"text":"m"},
      "dosageInstruction":[{"timing":{"repeat":{"frequency":1,"period":1,"periodUnit":"%"}}}]})";
  auto with_unit = [&](const char* unit) {
    std::string s = units;
    s.replace(s.find('%'), 1, unit);
    return s;
  };
  const std::string unit_day = with_unit("d");
  const std::string unit_days = with_unit("days");
  auto condition = [](const char* clinical_status) {
    return std::string(R"({"resourceType":"Condition","subject":{"reference":"Patient/1"},"clinicalStatus":)") +
           clinical_status + "}";
  };
  const std::string cc_coded = condition(
      R"({"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}],"text":"Active"})");
  const std::string cc_translation = condition(
      R"({"coding":[{"system":"http://snomed.info/sct","code":"55561003"},{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"resolved"}]})");
  const std::string cc_absent = condition(
      R"({"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]})");
  const std::string cc_text_only = condition(R"({"text":"active"})");
  const std::string cc_other_system =
      condition(R"({"coding":[{"system":"http://snomed.info/sct","code":"55561003"}]})");
  const std::string cc_bad_code = condition(
      R"({"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"Active"}]})");
  const std::string cc_no_system = condition(R"({"coding":[{"code":"active"}]})");
  const std::string cc_r3_system =
      condition(R"({"coding":[{"system":"http://hl7.org/fhir/condition-clinical","code":"active"}]})");
  const std::string obs_comparator = observation(R"("valueQuantity":{"value":1,"comparator":"<="})");
  const std::string obs_bad_comparator = observation(R"("valueQuantity":{"value":1,"comparator":"=="})");

  const std::vector<Case> cases = {
      // ---- valid ----
      {"gender female", R"({"resourceType":"Patient","gender":"female"})", {}},
      {"gender unknown", R"({"resourceType":"Patient","gender":"unknown"})", {}},
      {"nested code system concept (observation-status corrected under amended)",
       R"({"resourceType":"Observation","status":"corrected","code":{"text":"x"}})",
       {}},
      {"binding with |version (Patient.link.type)",
       R"({"resourceType":"Patient","link":[{"other":{"reference":"Patient/2"},"type":"seealso"}]})",
       {}},
      {"value set with an explicit concept list (units-of-time d)", unit_day.c_str(), {}},
      {"quantity comparator in a datatype", obs_comparator.c_str(), {}},
      {"codeable concept with a coding from the set and text", cc_coded.c_str(), {}},
      {"codeable concept with a translation besides the coding from the set", cc_translation.c_str(), {}},
      {"codeable concept with only a data-absent-reason extension", cc_absent.c_str(), {}},
      {"code given only as an extension",
       R"({"resourceType":"Patient","_gender":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}})",
       {}},
      {"codeable concept binding on SupplyDelivery.type",
       R"({"resourceType":"SupplyDelivery","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/supply-item-type","code":"device"}]}})",
       {}},
      {"resource types (148 codes)",
       R"({"resourceType":"SearchParameter","url":"http://x/sp","name":"n","status":"draft","description":"d","code":"c",
           "base":["Patient","Observation"],"type":"token"})",
       {}},
      {"value set of an external terminology is not checked (mimetypes)",
       R"({"resourceType":"Binary","contentType":"application/x-anything"})",
       {}},
      {"value set outside the core definitions is not checked (v3 confidentiality)",
       R"({"resourceType":"Composition","status":"final","type":{"text":"t"},"date":"2020","author":[{"display":"a"}],
           "title":"t","confidentiality":"ZZZ"})",
       {}},
      {"codes inside a transaction bundle",
       R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","gender":"male"},
           "request":{"method":"POST","url":"Patient"}}]})",
       {}},
      // ---- invalid ----
      {"gender not in the set",
       R"({"resourceType":"Patient","gender":"unknown-code"})",
       {{"code-invalid", "Patient.gender"}}},
      {"codes are case-sensitive",
       R"({"resourceType":"Patient","gender":"Male"})",
       {{"code-invalid", "Patient.gender"}}},
      {"a code of another value set",
       R"({"resourceType":"Patient","gender":"active"})",
       {{"code-invalid", "Patient.gender"}}},
      {"observation status",
       R"({"resourceType":"Observation","status":"done","code":{"text":"x"}})",
       {{"code-invalid", "Observation.status"}}},
      {"abstract code (item-type question is notSelectable)",
       R"({"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"question"}]})",
       {{"code-invalid", "Questionnaire.item[0].type"}}},
      {"versioned binding, code not in the set",
       R"({"resourceType":"Patient","link":[{"other":{"reference":"Patient/2"},"type":"sameas"}]})",
       {{"code-invalid", "Patient.link[0].type"}}},
      {"explicit concept list, code not in it",
       unit_days.c_str(),
       {{"code-invalid", "MedicationRequest.dosageInstruction[0].timing.repeat.periodUnit"}}},
      {"quantity comparator not in the set",
       obs_bad_comparator.c_str(),
       {{"code-invalid", "Observation.valueQuantity.comparator"}}},
      {"narrative status",
       R"({"resourceType":"Patient","text":{"status":"done","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}})",
       {{"code-invalid", "Patient.text.status"}}},
      {"repeating code, second value wrong",
       R"({"resourceType":"SearchParameter","url":"http://x/sp","name":"n","status":"draft","description":"d","code":"c",
           "base":["Patient","Bogus"],"type":"token"})",
       {{"code-invalid", "SearchParameter.base[1]"}}},
      {"codeable concept with text only", cc_text_only.c_str(), {{"code-invalid", "Condition.clinicalStatus"}}},
      {"codeable concept with a coding of another system only",
       cc_other_system.c_str(),
       {{"code-invalid", "Condition.clinicalStatus"}}},
      {"codeable concept with the set's system and a wrong code",
       cc_bad_code.c_str(),
       {{"code-invalid", "Condition.clinicalStatus"}}},
      {"codeable concept coding without a system",
       cc_no_system.c_str(),
       {{"code-invalid", "Condition.clinicalStatus"}}},
      {"codeable concept coding with the STU3 system url",
       cc_r3_system.c_str(),
       {{"code-invalid", "Condition.clinicalStatus"}}},
      {"in a contained resource",
       R"({"resourceType":"Patient","contained":[{"resourceType":"Observation","status":"bogus","code":{"text":"x"}}]})",
       {{"code-invalid", "Patient.contained[0].status"}}},
      {"in a bundle entry",
       R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"x"}}]})",
       {{"code-invalid", "Bundle.entry[0].resource.gender"}}},
      {"bundle type and request method",
       R"({"resourceType":"Bundle","type":"transactions","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"post","url":"Patient"}}]})",
       {{"code-invalid", "Bundle.type"}, {"code-invalid", "Bundle.entry[0].request.method"}}},
      {"a malformed code is a value issue, not also code-invalid",
       R"({"resourceType":"Observation","status":" final","code":{"text":"x"}})",
       {{"value", "Observation.status"}}},
  };
  BOOST_TEST(cases.size() >= 30u);
  check_cases(cases);
}

BOOST_AUTO_TEST_CASE(required_binding_messages) {
  auto code = validate_resource(parse_or_fail(R"({"resourceType":"Patient","gender":"unknown-code"})"));
  BOOST_REQUIRE_EQUAL(code.size(), 1u);
  BOOST_TEST(code[0].message ==
             "Patient.gender: 'unknown-code' is not in http://hl7.org/fhir/ValueSet/administrative-gender "
             "(male, female, other, unknown)");
  // Long value sets list ten codes and the count.
  auto many = validate_resource(parse_or_fail(
      R"({"resourceType":"SearchParameter","url":"http://x/sp","name":"n","status":"draft","description":"d","code":"c","base":["Patientt"],"type":"token"})"));
  BOOST_REQUIRE_EQUAL(many.size(), 1u);
  BOOST_TEST(many[0].message.find("'Patientt' is not in http://hl7.org/fhir/ValueSet/resource-types (Account, ") !=
                 std::string::npos,
             many[0].message);
  BOOST_TEST(many[0].message.find("... (148 codes)") != std::string::npos, many[0].message);
  auto cc = validate_resource(parse_or_fail(
      R"({"resourceType":"Condition","subject":{"reference":"Patient/1"},"clinicalStatus":{"coding":[{"system":"http://snomed.info/sct","code":"55561003"}]}})"));
  BOOST_REQUIRE_EQUAL(cc.size(), 1u);
  BOOST_TEST(cc[0].message.find("http://snomed.info/sct|55561003") != std::string::npos, cc[0].message);
  BOOST_TEST(cc[0].message.find("http://terminology.hl7.org/CodeSystem/condition-clinical: active, recurrence") !=
                 std::string::npos,
             cc[0].message);
  auto text = validate_resource(parse_or_fail(
      R"({"resourceType":"Condition","subject":{"reference":"Patient/1"},"clinicalStatus":{"text":"active"}})"));
  BOOST_REQUIRE_EQUAL(text.size(), 1u);
  BOOST_TEST(text[0].message.find("only text") != std::string::npos, text[0].message);
}

BOOST_AUTO_TEST_CASE(required_codes_in_the_model) {
  const TypeModel& m = TypeModel::instance();
  // 226 value sets are bound with strength required to coded elements: 219 are expanded from
  // the core definitions, 7 need terminologies or versions that are not there.
  BOOST_TEST(m.value_set_count() == 219u);
  BOOST_TEST(m.skipped_value_sets().size() == 7u);
  const auto* gender = m.find_value_set("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1");
  BOOST_REQUIRE(gender);
  BOOST_TEST(gender == m.find_value_set("http://hl7.org/fhir/ValueSet/administrative-gender"));
  BOOST_TEST(gender->code_count == 4u);
  BOOST_TEST(gender->contains("other"));
  BOOST_TEST(gender->contains("http://hl7.org/fhir/administrative-gender", "other"));
  BOOST_TEST(!gender->contains("http://hl7.org/fhir/v3/AdministrativeGender", "other"));
  BOOST_TEST(m.find_element("Patient.gender")->required_codes == gender);
  BOOST_TEST(m.find_element("Quantity.comparator")->required_codes != nullptr);
  BOOST_TEST(m.find_element("Condition.clinicalStatus")->required_codes != nullptr);
  // Not checked: external terminologies, and bindings that are not required.
  BOOST_TEST(m.find_value_set("http://hl7.org/fhir/ValueSet/mimetypes") == nullptr);
  BOOST_TEST(m.find_element("Attachment.contentType")->required_codes == nullptr);
  BOOST_TEST(m.find_element("Observation.code")->required_codes == nullptr);
  // The R5 DetectedIssue status value set in the redistributed file is not R4's.
  BOOST_TEST(m.find_element("DetectedIssue.status")->required_codes == nullptr);
  const auto& skipped = m.skipped_value_sets();
  BOOST_TEST(std::is_sorted(skipped.begin(), skipped.end()));
  for (const auto& [url, reason] : skipped) BOOST_TEST(!reason.empty(), url);

  // A model loaded without the codes file checks no bindings.
  auto bare = TypeModel::load_file(kasama::resources::conformance_dir() + "/r4/type-model.json");
  BOOST_TEST(bare->value_set_count() == 0u);
  BOOST_TEST(validate_resource(parse_or_fail(R"({"resourceType":"Patient","gender":"x"})"), *bare).empty());
  // A codes file that does not cover the model's bindings is refused.
  BOOST_CHECK_THROW(TypeModel::load_text(read_file(kasama::resources::conformance_dir() + "/r4/type-model.json"),
                                         R"({"fhirVersion":"4.0.1","valueSets":{},"skipped":{}})"),
                    std::runtime_error);
}

// ---- narrative (Narrative.div: txt-1, txt-2, narrative.html) ----

namespace {

struct NarrativeCase {
  const char* name;
  std::string xhtml;
  std::vector<const char*> problems;  // a fragment of each expected issue's message; empty: valid
};

std::string patient_with_div(const std::string& xhtml) {
  std::string out = R"({"resourceType":"Patient","text":{"status":"generated","div":)";
  kasama::resources::append_json_string(out, xhtml);
  out += "}}";
  return out;
}

const std::string kDiv = R"(<div xmlns="http://www.w3.org/1999/xhtml">)";

}  // namespace

BOOST_AUTO_TEST_CASE(narrative_xhtml) {
  const std::vector<NarrativeCase> cases = {
      // ---- valid ----
      {"paragraph", kDiv + "<p>Peter James Chalmers</p></div>", {}},
      {"japanese text with U+3000 and full-width digits",
       kDiv + "<p>山田\u3000太郎（ヤマダ タロウ）</p><p>東京都千代田区千代田１－１</p></div>",
       {}},
      {"style and class attributes",
       kDiv + R"(<p style="color: red; font-weight: bold" class="highlight">x</p></div>)",
       {}},
      {"table",
       kDiv +
           R"(<table class="grid" border="1" cellpadding="2"><caption>c</caption><thead><tr><th scope="col">a</th></tr></thead>)"
           R"(<tbody><tr><td colspan="2" rowspan="1" style="white-space:nowrap" valign="top">b</td></tr></tbody><tfoot><tr><td>f</td></tr></tfoot></table></div>)",
       {}},
      {"href with urn:uuid", kDiv + R"(<a href="urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a">subject</a></div>)", {}},
      {"relative href, anchor and name",
       kDiv + R"(<a name="top"/><a href="Patient/123">p</a> <a href="#top" title="t">up</a></div>)",
       {}},
      {"image as the only content", kDiv + R"(<img src="#photo" alt="photo"/></div>)", {}},
      {"image with a data: URL and text",
       kDiv + R"(<p>x<img src="data:image/png;base64,iVBORw0KGgo=" width="10" height="10"/></p></div>)",
       {}},
      {"character and predefined entities", kDiv + "<p>a &amp; b &lt; c &#160; &#x3042;</p></div>", {}},
      {"lang and xml:lang", R"(<div xmlns="http://www.w3.org/1999/xhtml" lang="ja" xml:lang="ja">日本語</div>)", {}},
      {"comment and CDATA", kDiv + "<!-- generated --><p><![CDATA[a < b]]></p></div>", {}},
      {"lists, headings and inline elements",
       kDiv + "<h1>h</h1><h6>h</h6><ul><li>a</li></ul><ol start=\"2\"><li>b</li></ol><dl><dt>t</dt><dd>d</dd></dl>"
              "<pre>p</pre><code>c</code><b>b</b><i>i</i><em>e</em><strong>s</strong><sub>1</sub><sup>2</sup><br/><hr/>"
              "<span>s</span><blockquote "
              "cite=\"http://x\">q</blockquote><q>q</q><small>s</small><big>b</big><tt>t</tt></div>",
       {}},
      {"no-break space is content", kDiv + "\u00a0</div>", {}},
      {"XHTML namespace with a prefix", R"(<x:div xmlns:x="http://www.w3.org/1999/xhtml"><x:p>a</x:p></x:div>)", {}},
      {"XML declaration", R"(<?xml version="1.0" encoding="UTF-8"?>)" + kDiv + "x</div>", {}},
      // ---- invalid ----
      {"script element", kDiv + "<p>x</p><script>alert(1)</script></div>", {"<script> is not allowed in narrative"}},
      {"style element", kDiv + "<style>p { color: red }</style><p>x</p></div>", {"<style> is not allowed"}},
      {"form and input",
       kDiv + R"(<form action="http://x"><input name="a"/></form>x</div>)",
       {"<form> is not allowed", "<input> is not allowed"}},
      {"iframe", kDiv + R"(<iframe src="http://x"/>x</div>)", {"<iframe> is not allowed"}},
      {"object and embed",
       kDiv + R"(<object data="x"/><embed src="x"/>x</div>)",
       {"<object> is not allowed", "<embed> is not allowed"}},
      {"base, link and meta",
       kDiv + R"(<base href="http://x/"/><link rel="stylesheet" href="x.css"/><meta charset="utf-8"/>x</div>)",
       {"<base> is not allowed", "<link> is not allowed", "<meta> is not allowed"}},
      {"event attribute", kDiv + R"x(<p onclick="steal()">x</p></div>)x", {"event attribute onclick on <p>"}},
      {"javascript: URL in any case and with whitespace",
       kDiv + "<a href=\" JavaScript&#9;:alert(1)\">x</a></div>",
       {"the href of <a> is a script URL"}},
      {"vbscript: URL in img src",
       kDiv + R"x(<img src="vbscript:msgbox(1)"/>x</div>)x",
       {"the src of <img> is a script URL"}},
      {"attribute outside the list",
       kDiv + R"(<a href="http://x" target="_blank">x</a></div>)",
       {"attribute target on <a>"}},
      {"xlink attribute",
       kDiv + R"(<a xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="http://x">x</a></div>)",
       {"attribute xlink:href on <a>"}},
      {"root is not a div", R"(<p xmlns="http://www.w3.org/1999/xhtml">x</p>)", {"the root element must be a <div>"}},
      {"div without the XHTML namespace", "<div>x</div>", {"not <div> without a namespace"}},
      {"div in another namespace", R"(<div xmlns="http://hl7.org/fhir">x</div>)", {"in namespace http://hl7.org/fhir"}},
      {"html document",
       R"(<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head><body>x</body></html>)",
       {"not <html>", "<head> is not allowed", "<title> is not allowed", "<body> is not allowed"}},
      {"SVG inside",
       kDiv + R"(x<svg xmlns="http://www.w3.org/2000/svg"><circle r="1"/></svg></div>)",
       {"<svg> is not an XHTML element", "<circle> is not an XHTML element"}},
      {"unclosed element", kDiv + "<p>x</div>", {"not well-formed XML: Opening and ending tag mismatch"}},
      {"HTML entity not defined in XML", kDiv + "a&nbsp;b</div>", {"not well-formed XML: Entity 'nbsp' not defined"}},
      {"plain text", "just text", {"not well-formed XML"}},
      {"content after the root", kDiv + "x</div><p>y</p>", {"not well-formed XML: Extra content"}},
      {"external entity (XXE)",
       "<!DOCTYPE div [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><div "
       "xmlns=\"http://www.w3.org/1999/xhtml\">&xxe;</div>",
       {"a DOCTYPE is not allowed"}},
      {"entity expansion bomb",
       "<!DOCTYPE div [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c "
       "\"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>"
       "<div xmlns=\"http://www.w3.org/1999/xhtml\">&c;</div>",
       {"a DOCTYPE is not allowed"}},
      {"processing instruction",
       kDiv + R"(<?xml-stylesheet href="x.css"?>x</div>)",
       {"processing instructions (<?xml-stylesheet"}},
      {"whitespace only (txt-2)", kDiv + "\n    </div>", {"no content"}},
      {"empty elements only", kDiv + "<p> </p><br/><table><tr><td/></tr></table></div>", {"no content"}},
      {"image without src", kDiv + R"(<img alt="x"/></div>)", {"no content"}},
      {"nested too deeply",
       [] {
         std::string s = kDiv;
         for (int i = 0; i < 300; ++i) s += "<span>";
         s += "x";
         for (int i = 0; i < 300; ++i) s += "</span>";
         return s + "</div>";
       }(),
       {"not well-formed XML"}},
  };
  BOOST_TEST(cases.size() >= 30u);
  for (const NarrativeCase& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      auto issues = validate_resource(parse_or_fail(patient_with_div(c.xhtml)));
      BOOST_TEST(issues.size() == c.problems.size(),
                 c.name << ": expected " << c.problems.size() << " issue(s), got" << describe(issues));
      for (const char* fragment : c.problems) {
        bool found = std::any_of(issues.begin(), issues.end(), [&](const ValidationIssue& i) {
          return i.code == "value" && i.expression == "Patient.text.div" &&
                 i.message.find(fragment) != std::string::npos;
        });
        BOOST_TEST(found,
                   c.name << ": expected [value] Patient.text.div '" << fragment << "', got" << describe(issues));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(narrative_in_nested_resources) {
  const std::vector<Case> cases = {
      {"contained resource narrative",
       R"({"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","text":{"status":"generated",
           "div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><script/>x</div>"}}]})",
       {{"value", "Patient.contained[0].text.div"}}},
      {"bundle entry narrative",
       R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","text":{"status":"generated",
           "div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"> </div>"}}}]})",
       {{"value", "Bundle.entry[0].resource.text.div"}}},
  };
  check_cases(cases);
}

BOOST_AUTO_TEST_CASE(narrative_problems_are_capped_and_named) {
  std::string many = kDiv + "x";
  for (const char* e :
       {"script", "style", "form", "input", "iframe", "object", "embed", "base", "link", "meta", "frame", "button"}) {
    many += "<" + std::string(e) + "/>";
  }
  many += "<script/></div>";
  auto problems = kasama::resources::check_narrative(many);
  BOOST_TEST(problems.size() == kasama::resources::kMaxNarrativeProblems);
  BOOST_TEST(problems[0] == "<script> is not allowed in narrative");
  auto issues = validate_resource(parse_or_fail(patient_with_div(kDiv + "<p>x</p><script>alert(1)</script></div>")));
  BOOST_REQUIRE_EQUAL(issues.size(), 1u);
  BOOST_TEST(issues[0].code == "value");
  BOOST_TEST(issues[0].expression == "Patient.text.div");
  BOOST_TEST(issues[0].message == "Element 'div': <script> is not allowed in narrative");
}

BOOST_AUTO_TEST_CASE(narrative_lists_are_txt_1s) {
  // The allowed names are those in txt-1's XPath on Narrative.div in the R4 definitions.
  const fs::path types = kShared / "fhir-r4" / "profiles-types.json";
  if (!fs::exists(types)) {
    BOOST_TEST_MESSAGE("SKIPPED: " << types << " not found");
    return;
  }
  const auto doc = nlohmann::json::parse(read_file(types));
  std::string xpath;
  for (const auto& entry : doc.at("entry")) {
    const auto& r = entry.at("resource");
    if (r.value("id", "") != "Narrative") continue;
    for (const auto& el : r.at("snapshot").at("element")) {
      if (el.at("path") != "Narrative.div") continue;
      for (const auto& c : el.at("constraint")) {
        if (c.at("key") == "txt-1") xpath = c.at("xpath").get<std::string>();
      }
    }
  }
  BOOST_REQUIRE(!xpath.empty());
  // not(descendant-or-self::*[not(local-name(.)=('a', ...))]) and not(descendant-or-self::*/@*[not(name(.)=('abbr',
  // ...))])
  auto names_after = [&](const std::string& marker) {
    std::vector<std::string> out;
    auto start = xpath.find(marker);
    BOOST_REQUIRE(start != std::string::npos);
    auto end = xpath.find(')', start + marker.size());
    std::string list = xpath.substr(start + marker.size(), end - start - marker.size());
    for (std::size_t q = list.find('\''); q != std::string::npos; q = list.find('\'', q + 1)) {
      auto close = list.find('\'', q + 1);
      out.push_back(list.substr(q + 1, close - q - 1));
      q = close;
    }
    return out;
  };
  auto as_strings = [](std::span<const std::string_view> s) { return std::vector<std::string>(s.begin(), s.end()); };
  auto elements = names_after("local-name(.)=(");
  auto attributes = names_after("@*[not(name(.)=(");
  BOOST_TEST(elements.size() == 48u);
  BOOST_TEST(attributes.size() == 49u);
  BOOST_TEST(as_strings(kasama::resources::narrative_element_names()) == elements, boost::test_tools::per_element());
  BOOST_TEST(as_strings(kasama::resources::narrative_attribute_names()) == attributes,
             boost::test_tools::per_element());
  for (const char* bad :
       {"script", "style", "head", "body",  "html",  "form",   "input", "iframe", "object", "embed",
        "base",   "link",  "meta", "frame", "title", "button", "svg",   "math",   "audio",  "video"}) {
    BOOST_TEST(!kasama::resources::is_narrative_element(bad), bad);
  }
  for (const char* bad : {"onclick", "onload", "onerror", "target", "action", "formaction", "srcdoc", "xmlns"}) {
    BOOST_TEST(!kasama::resources::is_narrative_attribute(bad), bad);
  }
}

BOOST_AUTO_TEST_CASE(narrative_never_crashes_on_broken_xhtml) {
  // Every truncation of a rich narrative, and byte flips through it: an answer, never a crash.
  const std::string good =
      kDiv + R"(<p class="a">山田&amp;<b>x</b><!-- c --><![CDATA[d]]></p><table><tr><td colspan="2">)"
             R"(<a href="urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a">e</a><img src="#i"/></td></tr></table></div>)";
  BOOST_TEST(kasama::resources::check_narrative(good).empty());
  std::size_t rejected = 0;
  for (std::size_t n = 0; n < good.size(); ++n) {
    if (!kasama::resources::check_narrative(std::string_view(good).substr(0, n)).empty()) ++rejected;
  }
  BOOST_TEST(rejected == good.size(), "every proper prefix is malformed");
  const char flips[] = {'<', '>', '&', '"', '\'', '\0', '\xff', '/', '?', '!'};
  for (std::size_t i = 0; i < good.size(); i += 3) {
    for (char f : flips) {
      std::string bad = good;
      bad[i] = f;
      auto problems = kasama::resources::check_narrative(bad);
      BOOST_TEST(problems.size() <= kasama::resources::kMaxNarrativeProblems);
    }
  }
}

BOOST_AUTO_TEST_CASE(stops_after_the_issue_limit) {
  std::string text = R"({"resourceType":"Patient")";
  for (int i = 0; i < 300; ++i) text += ",\"bad" + std::to_string(i) + "\":1";
  text += "}";
  auto issues = validate_resource(parse_or_fail(text));
  BOOST_TEST(issues.size() == kMaxValidationIssues);
}

BOOST_AUTO_TEST_CASE(long_strings_do_not_break_the_format_checks) {
  // Hand-written matching is linear; a regex engine would recurse on input like this.
  std::string huge(2 * 1024 * 1024, 'a');
  auto too_long = validate_resource(parse_or_fail(R"({"resourceType":"Patient","name":[{"family":")" + huge + "\"}]}"));
  BOOST_REQUIRE_EQUAL(too_long.size(), 1u);
  BOOST_TEST(too_long[0].code == "value");
  std::string spaced(600000, ' ');
  auto code = validate_resource(parse_or_fail(R"({"resourceType":"Patient","gender":"m)" + spaced + "x\"}"));
  BOOST_REQUIRE_EQUAL(code.size(), 1u);
  BOOST_TEST(code[0].code == "value");
  std::string data;
  for (int i = 0; i < 500000; ++i) data += "QUJD";
  auto binary =
      validate_resource(parse_or_fail(R"({"resourceType":"Binary","contentType":"a/b","data":")" + data + "\"}"));
  BOOST_TEST(binary.empty(), describe(binary));
}

BOOST_AUTO_TEST_CASE(primitive_text_checks) {
  struct TextCase {
    PrimitiveFormat format;
    const char* text;
    bool valid;
  };
  const TextCase cases[] = {
      {PrimitiveFormat::boolean, "true", true},
      {PrimitiveFormat::boolean, "True", false},
      {PrimitiveFormat::integer, "-0", true},
      {PrimitiveFormat::integer, "0", true},
      {PrimitiveFormat::integer, "007", false},
      {PrimitiveFormat::integer, "-2147483648", true},
      {PrimitiveFormat::integer, "2147483648", false},
      {PrimitiveFormat::positive_int, "0", false},
      {PrimitiveFormat::unsigned_int, "0", true},
      {PrimitiveFormat::decimal, "1.50", true},
      {PrimitiveFormat::decimal, "-0.5e+10", true},
      {PrimitiveFormat::decimal, ".5", false},
      {PrimitiveFormat::decimal, "1.", false},
      {PrimitiveFormat::date, "2000-02-29", true},
      {PrimitiveFormat::date, "1900-02-29", false},
      {PrimitiveFormat::date, "2024-04-31", false},
      {PrimitiveFormat::date_time, "2024-04-30T24:00:00Z", false},
      {PrimitiveFormat::date_time, "2024-04-30T23:59:59.123456-14:00", true},
      {PrimitiveFormat::date_time, "2024-04-30T23:59:59-14:01", false},
      {PrimitiveFormat::instant, "2024-04-30T23:59:59Z", true},
      {PrimitiveFormat::instant, "2024-04-30T23:59:59.Z", false},
      {PrimitiveFormat::time, "00:00:00", true},
      {PrimitiveFormat::time, "0:00:00", false},
      {PrimitiveFormat::code, "a b", true},
      {PrimitiveFormat::code, " a", false},
      {PrimitiveFormat::id, "A-Za-z0-9.", true},
      {PrimitiveFormat::uri, "urn:x:y", true},
      {PrimitiveFormat::uri, "", false},
      {PrimitiveFormat::oid, "urn:oid:2", false},
      {PrimitiveFormat::oid, "urn:oid:2.0.10", true},
      {PrimitiveFormat::uuid, "urn:uuid:c757873d-ec9a-4326-a141-556f4323952", false},
      {PrimitiveFormat::base64_binary, "QUJD\r\nREVG", true},
      {PrimitiveFormat::base64_binary, "QU=D", false},
      {PrimitiveFormat::string, "  ", true},
      {PrimitiveFormat::string, "a\tb", true},
  };
  for (const auto& c : cases) {
    BOOST_TEST(is_valid_primitive_text(c.format, c.text) == c.valid,
               "'" << c.text << "' format " << static_cast<int>(c.format));
  }
}

BOOST_AUTO_TEST_CASE(type_model_lookups) {
  const TypeModel& m = TypeModel::instance();
  BOOST_TEST(m.fhir_version() == "4.0.1");
  BOOST_TEST(m.resource_types().size() == 146u);
  BOOST_TEST(m.is_resource_type("Patient"));
  BOOST_TEST(!m.is_resource_type("DomainResource"));
  BOOST_TEST(!m.is_resource_type("HumanName"));
  BOOST_TEST(m.is_datatype("HumanName"));
  BOOST_TEST(m.is_primitive("dateTime"));
  BOOST_TEST(m.is_abstract("BackboneElement"));
  BOOST_TEST(m.find_type("positiveInt")->is_a("integer"));

  auto q = m.child("Observation", "valueQuantity");
  BOOST_REQUIRE(q);
  BOOST_TEST(q.element->path == "Observation.value[x]");
  BOOST_TEST(q.element->choice);
  BOOST_TEST(q.type->code == "Quantity");
  BOOST_TEST(q.context == m.find_context("Quantity"));
  BOOST_TEST(!m.child("Observation", "valuequantity"));
  BOOST_TEST(!m.child("Observation", "value"));

  auto bd = m.child("Patient", "_birthDate");
  BOOST_REQUIRE(bd);
  BOOST_TEST(bd.primitive_extension);
  BOOST_TEST(bd.type->code == "date");
  BOOST_TEST(bd.context == m.find_context("date"));
  BOOST_TEST(!m.child("Patient", "_name"));
  BOOST_TEST(!m.child("Extension", "_url"));

  auto contact = m.child("Patient", "contact");
  BOOST_REQUIRE(contact);
  BOOST_TEST(contact.element->repeats());
  BOOST_TEST(contact.context == m.find_context("Patient.contact"));
  BOOST_TEST(m.child(*contact.context, "name").type->code == "HumanName");

  auto nested = m.child("Questionnaire.item", "item");
  BOOST_REQUIRE(nested);
  BOOST_TEST(nested.element->content_reference == "Questionnaire.item");
  BOOST_TEST(nested.context == m.find_context("Questionnaire.item"));

  auto contained = m.child("Patient", "contained");
  BOOST_REQUIRE(contained);
  BOOST_TEST(contained.type->code == "Resource");
  BOOST_TEST(contained.context == nullptr);

  auto subject = m.child("Observation", "subject");
  BOOST_REQUIRE(subject);
  const auto& targets = subject.type->targets;
  BOOST_TEST((std::find(targets.begin(), targets.end(), "Patient") != targets.end()));

  const auto* status = m.find_element("Observation.status");
  BOOST_REQUIRE(status);
  BOOST_TEST(status->min == 1u);
  BOOST_TEST(status->modifier);
  BOOST_TEST(status->value_set.starts_with("http://hl7.org/fhir/ValueSet/observation-status"));
  BOOST_TEST(m.find_element("Patient.id")->types[0].code == "id");
  BOOST_TEST(m.find_element("Element.id")->types[0].code == "string");
  BOOST_TEST(m.find_element("Extension.url")->xml_attr);
  BOOST_TEST(m.find_element("Narrative.div")->xhtml);
  BOOST_TEST(m.find_type("SimpleQuantity")->constraint_on == "Quantity");
  BOOST_TEST(m.find_element("SimpleQuantity.comparator")->max == 0u);
  BOOST_TEST((m.find_type("decimal")->json == kasama::resources::JsonKind::number));
  BOOST_TEST(m.find_type("string")->max_length == 1048576u);
}

BOOST_AUTO_TEST_CASE(conformance_dir_honours_kasama_home) {
  BOOST_TEST(kasama::resources::conformance_dir() == std::string(KASAMA_SOURCE_DIR) + "/conformance");
  ::setenv("KASAMA_HOME", "/opt/kasama", 1);
  BOOST_TEST(kasama::resources::conformance_dir() == "/opt/kasama/conformance");
  ::unsetenv("KASAMA_HOME");
}

// Official examples that are not valid R4 JSON, each with the reason; keep this short.
const std::map<std::string, std::string> kInvalidExamples = {
    {"ImplementationGuide-fhir.json", "lacks ImplementationGuide.name and .status (both 1..1)"},
    {"ig-r4.json", "same resource as ImplementationGuide-fhir.json (lacks name and status)"},
    {"Questionnaire-qs1.json", "32 nested display items lack Questionnaire.item.linkId (1..1)"},
    // txt-2 (Narrative.div): "The narrative SHALL have some non-whitespace content"; these
    // four were published with an empty generated narrative.
    {"ActivityDefinition-blood-tubes-supply.json", "text.div is an empty <div> (txt-2)"},
    {"ActivityDefinition-heart-valve-replacement.json", "text.div is an empty <div> (txt-2)"},
    {"EventDefinition-example.json", "text.div is an empty <div> (txt-2)"},
    {"Questionnaire-zika-virus-exposure-assessment.json", "text.div holds only an empty <pre> (txt-2)"},
};

BOOST_AUTO_TEST_CASE(every_official_example_is_valid) {
  const fs::path dir = kShared / "corpora" / "r4-examples";
  if (!fs::is_directory(dir)) {
    BOOST_TEST_MESSAGE("SKIPPED: " << dir << " not found");
    return;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".json" && e.path().filename() != "package.json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  BOOST_TEST(files.size() >= 700u);
  std::chrono::nanoseconds total{0};
  std::size_t validated = 0;
  std::vector<std::chrono::nanoseconds> times;
  for (const auto& path : files) {
    const std::string name = path.filename().string();
    auto parsed = parse_json(read_file(path));
    BOOST_TEST_CONTEXT(name) {
      BOOST_REQUIRE_MESSAGE(parsed.ok, name << ": " << parsed.error);
      auto start = std::chrono::steady_clock::now();
      auto issues = validate_resource(parsed.value);
      auto elapsed = std::chrono::steady_clock::now() - start;
      total += elapsed;
      times.push_back(elapsed);
      ++validated;
      if (kInvalidExamples.count(name)) {
        BOOST_TEST(!issues.empty(), name << " is listed as invalid but has no issues");
      } else {
        BOOST_TEST(issues.empty(), name << ":" << describe(issues));
      }
    }
  }
  std::sort(times.begin(), times.end());
  auto us = [](std::chrono::nanoseconds d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); };
  BOOST_TEST_MESSAGE("validated " << validated << " official examples in " << us(total)
                                  << " us: " << us(total) / static_cast<long>(std::max<std::size_t>(validated, 1))
                                  << " us per resource on average, median " << us(times[times.size() / 2])
                                  << " us, slowest " << us(times.back()) << " us");
}

BOOST_AUTO_TEST_CASE(every_synthea_resource_is_valid) {
  const fs::path dir = kShared / "corpora" / "synthea";
  if (!fs::is_directory(dir)) {
    BOOST_TEST_MESSAGE("SKIPPED: " << dir << " not found");
    return;
  }
  std::vector<fs::path> files;
  for (const auto& sub : {dir / "shared", dir}) {
    for (const auto& e : fs::directory_iterator(sub)) {
      if (e.path().extension() == ".json") files.push_back(e.path());
    }
  }
  std::size_t resources = 0;
  std::chrono::nanoseconds total{0};
  for (const auto& path : files) {
    const std::string name = path.filename().string();
    auto parsed = parse_json(read_file(path));
    BOOST_REQUIRE_MESSAGE(parsed.ok, name << ": " << parsed.error);
    const Json& bundle = parsed.value;
    auto issues = validate_resource(bundle);
    BOOST_TEST(issues.empty(), name << ":" << describe(issues));
    for (const auto& entry : bundle.at("entry")) {
      auto start = std::chrono::steady_clock::now();
      auto entry_issues = validate_resource(entry.at("resource"));
      total += std::chrono::steady_clock::now() - start;
      ++resources;
      BOOST_TEST(entry_issues.empty(),
                 name << " entry " << entry.value("fullUrl", "") << ":" << describe(entry_issues));
    }
  }
  BOOST_TEST(resources > 10000u);
  BOOST_TEST_MESSAGE("validated " << resources << " Synthea resources from " << files.size() << " bundles, "
                                  << std::chrono::duration_cast<std::chrono::microseconds>(total).count() /
                                         std::max<std::size_t>(resources, 1)
                                  << " us per resource on average");
}
