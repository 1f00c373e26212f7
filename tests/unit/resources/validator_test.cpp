#define BOOST_TEST_MODULE resources_validator
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "resources/json.hpp"
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

// One Observation shell the value[x] cases fill in.
std::string observation(const std::string& extra) {
  return R"({"resourceType":"Observation","status":"final","code":{"text":"x"})" +
         (extra.empty() ? std::string() : "," + extra) + "}";
}

}  // namespace

BOOST_AUTO_TEST_CASE(table_of_valid_and_invalid_resources) {
  const std::string obs_quantity = observation(R"("valueQuantity":{"value":1.50,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"})");
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
  const std::string obs_status_space =
      R"({"resourceType":"Observation","status":"final ","code":{"text":"x"}})";
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
      {"year and year-month dates", R"({"resourceType":"Patient","birthDate":"1974","deceasedDateTime":"2001-07"})", {}},
      {"instant with fraction and offset",
       R"({"resourceType":"Patient","meta":{"lastUpdated":"2015-02-07T13:28:17.239+02:00","versionId":"1"}})", {}},
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
       "{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"山田\u3000太郎\",\"family\":\"山田\",\"given\":[\"太郎\"]}],"
       "\"address\":[{\"text\":\"東京都千代田区千代田１－１\",\"line\":[\"千代田１２３\u3000番地\"],\"postalCode\":\"１００－０００１\"}],"
       "\"identifier\":[{\"system\":\"urn:oid:1.2.392.100495.20.3.51.1\",\"value\":\"００１２３\"}]}",
       {}},
      {"code containing U+3000 is one token",
       "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"code\":\"血液\u3000検査\"}]}}", {}},
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
      {"base64 with line breaks", "{\"resourceType\":\"Binary\",\"contentType\":\"text/plain\",\"data\":\"SGVsbG8g\\nV29y bGQ=\"}", {}},
      {"extension with oid and uuid values",
       R"({"resourceType":"Patient","extension":[{"url":"http://x/a","valueOid":"urn:oid:2.16.840.1.113883"},
           {"url":"http://x/b","valueUuid":"urn:uuid:c757873d-ec9a-4326-a141-556f43239520"},
           {"url":"http://x/c","extension":[{"url":"d","valueCodeableConcept":{"text":"e"}}]}]})",
       {}},
      {"resource id with primitive extension",
       R"({"resourceType":"Patient","id":"a","_id":{"extension":[{"url":"http://x","valueString":"y"}]}})", {}},

      // ---- structure: resource envelope ----
      {"root is an array", "[]", {{"structure", ""}}},
      {"missing resourceType", R"({"id":"a"})", {{"structure", "resourceType"}}},
      {"unknown resourceType", R"({"resourceType":"Foo"})", {{"structure", "resourceType"}}},
      {"abstract resourceType", R"({"resourceType":"DomainResource"})", {{"structure", "resourceType"}}},
      {"resourceType not a string", R"({"resourceType":1})", {{"structure", "resourceType"}}},
      {"resourceType inside a datatype", R"({"resourceType":"Patient","name":[{"resourceType":"HumanName","family":"x"}]})",
       {{"structure", "Patient.name[0].resourceType"}}},
      // ---- structure: elements ----
      {"unknown element", R"({"resourceType":"Patient","foo":1})", {{"structure", "Patient.foo"}}},
      {"unknown element in a datatype", R"({"resourceType":"Patient","name":[{"family":"x","surname":"y"}]})",
       {{"structure", "Patient.name[0].surname"}}},
      {"repeating element not an array", R"({"resourceType":"Patient","name":{"family":"x"}})", {{"structure", "Patient.name"}}},
      {"single element as array", R"({"resourceType":"Patient","gender":["male"]})", {{"structure", "Patient.gender"}}},
      {"boolean as string", R"({"resourceType":"Patient","active":"true"})", {{"structure", "Patient.active"}}},
      {"string as number", R"({"resourceType":"Patient","name":[{"family":12}]})", {{"structure", "Patient.name[0].family"}}},
      {"object where primitive expected", R"({"resourceType":"Patient","birthDate":{"value":"1970"}})",
       {{"structure", "Patient.birthDate"}}},
      {"datatype as string", R"({"resourceType":"Patient","maritalStatus":"M"})", {{"structure", "Patient.maritalStatus"}}},
      {"empty object", R"({"resourceType":"Patient","name":[{}]})", {{"structure", "Patient.name[0]"}}},
      {"empty array", R"({"resourceType":"Patient","name":[]})", {{"structure", "Patient.name"}}},
      {"empty string", R"({"resourceType":"Patient","name":[{"family":""}]})", {{"structure", "Patient.name[0].family"}}},
      {"null single value", R"({"resourceType":"Patient","gender":null})", {{"structure", "Patient.gender"}}},
      {"null inside array of complex", R"({"resourceType":"Patient","name":[null]})", {{"structure", "Patient.name[0]"}}},
      {"null in array without extension", R"({"resourceType":"Patient","name":[{"given":["a",null]}]})",
       {{"structure", "Patient.name[0].given[1]"}}},
      {"both null at the same index",
       R"({"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,null]}]})",
       {{"structure", "Patient.name[0].given[1]"}, {"structure", "Patient.name[0]._given[1]"}}},
      {"primitive extension arrays not aligned",
       R"({"resourceType":"Patient","name":[{"given":["a","b"],"_given":[{"id":"x"}]}]})",
       {{"structure", "Patient.name[0]._given"}}},
      {"primitive extension as string", R"({"resourceType":"Patient","birthDate":"1970","_birthDate":"x"})",
       {{"structure", "Patient._birthDate"}}},
      {"primitive extension null", R"({"resourceType":"Patient","_birthDate":null})", {{"structure", "Patient._birthDate"}}},
      {"primitive extension with value", R"({"resourceType":"Patient","_birthDate":{"value":"1970"}})",
       {{"structure", "Patient._birthDate.value"}}},
      {"underscore on a complex element", R"({"resourceType":"Patient","_name":[{"id":"a"}]})", {{"structure", "Patient._name"}}},
      {"underscore on an XML attribute",
       R"({"resourceType":"Patient","extension":[{"url":"http://x","_url":{"id":"a"},"valueString":"v"}]})",
       {{"structure", "Patient.extension[0]._url"}}},
      {"two types for one choice", obs_two_choices.c_str(), {{"structure", "Observation.valueBoolean"}}},
      {"choice without type suffix", obs_bare_choice.c_str(), {{"structure", "Observation.value"}}},
      {"choice suffix in wrong case", obs_wrong_case.c_str(), {{"structure", "Observation.valuequantity"}}},
      {"decimal as string", obs_decimal_string.c_str(), {{"structure", "Observation.valueQuantity.value"}}},
      {"narrative div as object",
       R"({"resourceType":"Patient","text":{"status":"generated","div":{"p":"x"}}})", {{"structure", "Patient.text.div"}}},
      {"contained without resourceType", R"({"resourceType":"Patient","contained":[{"id":"x"}]})",
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
      {"february 29 in a common year", R"({"resourceType":"Patient","birthDate":"2019-02-29"})", {{"value", "Patient.birthDate"}}},
      {"year zero", R"({"resourceType":"Patient","birthDate":"0000"})", {{"value", "Patient.birthDate"}}},
      {"date with time", R"({"resourceType":"Patient","birthDate":"1974-12-25T10:00:00Z"})", {{"value", "Patient.birthDate"}}},
      {"dateTime without time zone", obs_no_tz.c_str(), {{"value", "Observation.effectiveDateTime"}}},
      {"dateTime without seconds", obs_no_secs.c_str(), {{"value", "Observation.effectiveDateTime"}}},
      {"time zone beyond 14:00", obs_tz15.c_str(), {{"value", "Observation.effectiveDateTime"}}},
      {"instant with date only", R"({"resourceType":"Patient","meta":{"lastUpdated":"2015-02-07"}})",
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
      {"uri with a space", R"({"resourceType":"Patient","implicitRules":"http://x y"})", {{"value", "Patient.implicitRules"}}},
      {"integer with a fraction", obs_integer_fraction.c_str(), {{"value", "Observation.valueInteger"}}},
      {"integer beyond 32 bits", obs_integer_big.c_str(), {{"value", "Observation.valueInteger"}}},
      {"positiveInt zero",
       R"({"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},
           "medicationCodeableConcept":{"text":"m"},"dosageInstruction":[{"timing":{"repeat":{"frequency":0}}}]})",
       {{"value", "MedicationRequest.dosageInstruction[0].timing.repeat.frequency"}}},
      {"unsignedInt negative", R"({"resourceType":"Bundle","type":"searchset","total":-1})", {{"value", "Bundle.total"}}},
      {"control character in a string", R"({"resourceType":"Patient","name":[{"family":"a\u0001b"}]})",
       {{"value", "Patient.name[0].family"}}},
      {"oid with a leading zero", R"({"resourceType":"Patient","extension":[{"url":"http://x","valueOid":"urn:oid:1.02"}]})",
       {{"value", "Patient.extension[0].valueOid"}}},
      {"uuid in upper case",
       R"({"resourceType":"Patient","extension":[{"url":"http://x","valueUuid":"urn:uuid:C757873D-EC9A-4326-A141-556F43239520"}]})",
       {{"value", "Patient.extension[0].valueUuid"}}},
      {"base64 of wrong length", R"({"resourceType":"Binary","contentType":"text/plain","data":"abc"})", {{"value", "Binary.data"}}},
      {"base64 with bad characters", R"({"resourceType":"Binary","contentType":"text/plain","data":"ab$d"})", {{"value", "Binary.data"}}},
      // ---- required ----
      {"observation without status", R"({"resourceType":"Observation","code":{"text":"x"}})", {{"required", "Observation.status"}}},
      {"extension without url", R"({"resourceType":"Patient","extension":[{"valueString":"x"}]})",
       {{"required", "Patient.extension[0].url"}}},
      {"backbone element missing a required child", R"({"resourceType":"Patient","link":[{"type":"seealso"}]})",
       {{"required", "Patient.link[0].other"}}},
      {"required inside contentReference children",
       R"({"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"group","item":[{"type":"string"}]}]})",
       {{"required", "Questionnaire.item[0].item[0].linkId"}}},
      {"required in a contained resource", R"({"resourceType":"Patient","contained":[{"resourceType":"Observation","code":{"text":"x"}}]})",
       {{"required", "Patient.contained[0].status"}}},
      {"required primitive satisfied by its extension only",
       R"({"resourceType":"Observation","_status":{"extension":[{"url":"http://x","valueCode":"unknown"}]},"code":{"text":"x"}})",
       {}},
  };

  BOOST_TEST(cases.size() >= 40u);
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      Json input = parse_or_fail(c.input);
      auto issues = validate_resource(input);
      BOOST_TEST(issues.size() == c.issues.size(), c.name << ": expected " << c.issues.size() << " issue(s), got" << describe(issues));
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
  auto binary = validate_resource(parse_or_fail(R"({"resourceType":"Binary","contentType":"a/b","data":")" + data + "\"}"));
  BOOST_TEST(binary.empty(), describe(binary));
}

BOOST_AUTO_TEST_CASE(primitive_text_checks) {
  struct TextCase {
    PrimitiveFormat format;
    const char* text;
    bool valid;
  };
  const TextCase cases[] = {
      {PrimitiveFormat::boolean, "true", true},          {PrimitiveFormat::boolean, "True", false},
      {PrimitiveFormat::integer, "-0", true},           {PrimitiveFormat::integer, "0", true},
      {PrimitiveFormat::integer, "007", false},          {PrimitiveFormat::integer, "-2147483648", true},
      {PrimitiveFormat::integer, "2147483648", false},   {PrimitiveFormat::positive_int, "0", false},
      {PrimitiveFormat::unsigned_int, "0", true},        {PrimitiveFormat::decimal, "1.50", true},
      {PrimitiveFormat::decimal, "-0.5e+10", true},      {PrimitiveFormat::decimal, ".5", false},
      {PrimitiveFormat::decimal, "1.", false},           {PrimitiveFormat::date, "2000-02-29", true},
      {PrimitiveFormat::date, "1900-02-29", false},      {PrimitiveFormat::date, "2024-04-31", false},
      {PrimitiveFormat::date_time, "2024-04-30T24:00:00Z", false},
      {PrimitiveFormat::date_time, "2024-04-30T23:59:59.123456-14:00", true},
      {PrimitiveFormat::date_time, "2024-04-30T23:59:59-14:01", false},
      {PrimitiveFormat::instant, "2024-04-30T23:59:59Z", true},
      {PrimitiveFormat::instant, "2024-04-30T23:59:59.Z", false},
      {PrimitiveFormat::time, "00:00:00", true},         {PrimitiveFormat::time, "0:00:00", false},
      {PrimitiveFormat::code, "a b", true},              {PrimitiveFormat::code, " a", false},
      {PrimitiveFormat::id, "A-Za-z0-9.", true},         {PrimitiveFormat::uri, "urn:x:y", true},
      {PrimitiveFormat::uri, "", false},                 {PrimitiveFormat::oid, "urn:oid:2", false},
      {PrimitiveFormat::oid, "urn:oid:2.0.10", true},    {PrimitiveFormat::uuid, "urn:uuid:c757873d-ec9a-4326-a141-556f4323952", false},
      {PrimitiveFormat::base64_binary, "QUJD\r\nREVG", true}, {PrimitiveFormat::base64_binary, "QU=D", false},
      {PrimitiveFormat::string, "  ", true},             {PrimitiveFormat::string, "a\tb", true},
  };
  for (const auto& c : cases) {
    BOOST_TEST(is_valid_primitive_text(c.format, c.text) == c.valid, "'" << c.text << "' format " << static_cast<int>(c.format));
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
  BOOST_TEST_MESSAGE("validated " << validated << " official examples in " << us(total) << " us: "
                                  << us(total) / static_cast<long>(std::max<std::size_t>(validated, 1))
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
      BOOST_TEST(entry_issues.empty(), name << " entry " << entry.value("fullUrl", "") << ":" << describe(entry_issues));
    }
  }
  BOOST_TEST(resources > 10000u);
  BOOST_TEST_MESSAGE("validated " << resources << " Synthea resources from " << files.size() << " bundles, "
                                  << std::chrono::duration_cast<std::chrono::microseconds>(total).count() / std::max<std::size_t>(resources, 1)
                                  << " us per resource on average");
}
