#define BOOST_TEST_MODULE resources_fhir_time
#include <boost/test/unit_test.hpp>

#include "resources/fhir_time.hpp"
#include "resources/references.hpp"

using namespace kasama::resources;

BOOST_AUTO_TEST_CASE(ranges_follow_precision) {
  struct Case {
    const char* text;
    const char* lo;  // as format_instant
    const char* hi;
  };
  const Case cases[] = {
      {"2024", "2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"},
      {"2024-02", "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"},
      {"2024-12", "2024-12-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"},
      {"2024-02-29", "2024-02-29T00:00:00.000Z", "2024-03-01T00:00:00.000Z"},
      {"2024-05-01T10:00:00+09:00", "2024-05-01T01:00:00.000Z", "2024-05-01T01:00:01.000Z"},
      {"2024-05-01T10:00+09:00", "2024-05-01T01:00:00.000Z", "2024-05-01T01:01:00.000Z"},
      {"2024-05-01T01:00:00.5Z", "2024-05-01T01:00:00.500Z", "2024-05-01T01:00:00.600Z"},
      {"2024-05-01T01:00:00.123Z", "2024-05-01T01:00:00.123Z", "2024-05-01T01:00:00.124Z"},
      {"1969-12-31T23:59:59Z", "1969-12-31T23:59:59.000Z", "1970-01-01T00:00:00.000Z"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.text) {
      auto r = parse_fhir_time_range(c.text);
      BOOST_REQUIRE(r.has_value());
      BOOST_TEST(format_instant(r->lo) == c.lo);
      BOOST_TEST(format_instant(r->hi) == c.hi);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_malformed_times) {
  const char* bad[] = {"",
                       "24",
                       "2024-13",
                       "2023-02-29",
                       "2024-05-01T25:00:00Z",
                       "2024-05-01T10:00:00+9",
                       "2024-05-01 10:00:00Z",
                       "2024-05-01T10:00:00.Z",
                       "２０２４"};
  for (const char* b : bad) BOOST_TEST(!parse_fhir_time_range(b).has_value(), b);
}

BOOST_AUTO_TEST_CASE(sql_and_http_forms_round_trip) {
  const std::int64_t samples[] = {0, 1, 951782400123, 1779417600999, -86400000};
  for (auto ms : samples) {
    BOOST_TEST(*parse_sql(format_sql(ms)) == ms);
    BOOST_TEST(*parse_http_date(format_http_date(ms)) == ms / 1000 * 1000 - (ms < 0 && ms % 1000 ? 1000 : 0));
  }
  BOOST_TEST(format_http_date(784111777000) == "Sun, 06 Nov 1994 08:49:37 GMT");
  BOOST_TEST(*parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777000);
}

BOOST_AUTO_TEST_CASE(local_references) {
  struct Case {
    const char* ref;
    const char* type;  // nullptr = not local
    const char* id;
    const char* version;
  };
  const Case cases[] = {
      {"Patient/123", "Patient", "123", ""},
      {"Patient/a-b.c/_history/2", "Patient", "a-b.c", "2"},
      {"https://localhost:8443/fhir/Observation/x", "Observation", "x", ""},
      {"https://other.example/fhir/Observation/x", nullptr, nullptr, nullptr},
      {"#contained", nullptr, nullptr, nullptr},
      {"urn:uuid:7d3c1a52-0b5e-4e57-9d0a-1f0a7f6e0001", nullptr, nullptr, nullptr},
      {"patient/123", nullptr, nullptr, nullptr},
      {"Patient/", nullptr, nullptr, nullptr},
      {"Patient/１２３", nullptr, nullptr, nullptr},
      {"Patient?identifier=a|b", nullptr, nullptr, nullptr},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.ref) {
      auto r = parse_local_reference(c.ref, "https://localhost:8443/fhir");
      BOOST_TEST(r.has_value() == (c.type != nullptr));
      if (r && c.type) {
        BOOST_TEST(r->type == c.type);
        BOOST_TEST(r->id == c.id);
        BOOST_TEST(r->version == c.version);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(references_found_everywhere_but_inside_bundles) {
  auto obs = parse_json(R"({"resourceType":"Observation","subject":{"reference":"Patient/1"},
    "contained":[{"resourceType":"Patient","id":"p","managingOrganization":{"reference":"Organization/2"}}],
    "performer":[{"reference":"#p"},{"display":"x"}]})");
  auto refs = find_references(obs.value);
  BOOST_TEST(refs.size() == 3u);
  BOOST_TEST(refs[0].path == "Observation.subject");
  auto bundle = parse_json(
      R"({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","subject":{"reference":"Patient/1"}}}]})");
  BOOST_TEST(find_references(bundle.value).empty());
}
