// SMART scopes: parsing v1 and v2 forms, the narrowing that grants only
// requested ∩ allowed, and the refresh rule that never widens.
#define BOOST_TEST_MODULE auth_scopes
#include <boost/test/unit_test.hpp>

#include "server/auth/scopes.hpp"

using namespace kasama::auth;

BOOST_AUTO_TEST_CASE(parses_v1_and_v2_resource_scopes) {
  struct Case {
    const char* text;
    bool ok;
    unsigned perms;
  };
  const Case cases[] = {
      {"patient/Observation.read", true, kRead | kSearch},
      {"user/*.write", true, kCreate | kUpdate | kDelete},
      {"system/*.*", true, kAllPerms},
      {"patient/Observation.rs", true, kRead | kSearch},
      {"user/*.cruds", true, kAllPerms},
      {"user/Patient.c", true, kCreate},
      {"user/Patient.sr", false, 0},  // v2 letters are in order c r u d s
      {"user/Patient.rr", false, 0},  // no repeats
      {"user/Patient.x", false, 0},
      {"user/Patient.", false, 0},
      {"user/NotAType.rs", false, 0},  // types come from the R4 model
      {"other/Patient.rs", false, 0},
      {"patient/Observation.rs?category=laboratory", false, 0},  // granular: never granted
      {"openid", false, 0},
  };
  for (const auto& c : cases) {
    auto s = parse_resource_scope(c.text);
    BOOST_TEST_CONTEXT(c.text) {
      BOOST_TEST(s.has_value() == c.ok);
      if (s && c.ok) BOOST_TEST(s->perms == c.perms);
    }
  }
}

BOOST_AUTO_TEST_CASE(scope_sets_keep_launch_and_openid_and_list_the_unknown) {
  const ScopeSet s = ScopeSet::parse("launch/patient openid fhirUser offline_access patient/*.rs bogus/x.y");
  BOOST_TEST(s.launch_patient);
  BOOST_TEST(s.openid);
  BOOST_TEST(s.fhir_user);
  BOOST_TEST(s.offline_access);
  BOOST_TEST(s.resources.size() == 1U);
  BOOST_TEST(s.unknown.size() == 1U);
  BOOST_TEST(s.permits(ScopeContext::kPatient, "Observation", kSearch));
  BOOST_TEST(!s.permits(ScopeContext::kUser, "Observation", kSearch));
  BOOST_TEST(!s.permits(ScopeContext::kPatient, "Observation", kCreate));
}

BOOST_AUTO_TEST_CASE(narrowing_grants_only_what_both_allow) {
  struct Case {
    const char* requested;
    const char* ceiling;
    const char* granted;
  };
  const Case cases[] = {
      {"user/*.cruds", "user/*.rs", "user/*.rs"},
      {"user/Observation.read", "user/*.cruds", "user/Observation.read"},  // unchanged keeps v1 text
      {"user/*.rs", "user/Observation.rs user/Patient.r", "user/Observation.rs user/Patient.r"},
      {"user/Patient.cruds", "user/Observation.rs", ""},
      {"system/*.rs", "user/*.cruds", ""},  // contexts never cross
      {"openid fhirUser user/Patient.rs", "user/*.rs", "user/Patient.rs"},
      {"openid fhirUser user/Patient.rs", "openid fhirUser user/*.rs", "openid fhirUser user/Patient.rs"},
      {"patient/*.write", "patient/*.rs", ""},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.requested << " within " << c.ceiling) {
      BOOST_TEST(narrow(ScopeSet::parse(c.requested), ScopeSet::parse(c.ceiling)).text() == c.granted);
    }
  }
}

BOOST_AUTO_TEST_CASE(refresh_may_only_narrow) {
  const ScopeSet held = ScopeSet::parse("offline_access user/Patient.rs user/Observation.read");
  BOOST_TEST(covered_by(ScopeSet::parse("user/Patient.r"), held));
  BOOST_TEST(covered_by(ScopeSet::parse("offline_access user/Observation.s"), held));
  BOOST_TEST(!covered_by(ScopeSet::parse("user/Patient.cruds"), held));
  BOOST_TEST(!covered_by(ScopeSet::parse("user/*.rs"), held));
  BOOST_TEST(!covered_by(ScopeSet::parse("openid"), held));
  BOOST_TEST(!covered_by(ScopeSet::parse("patient/Patient.rs"), held));
}
