#define BOOST_TEST_MODULE search_registry
#include <boost/test/unit_test.hpp>

#include "resources/type_model.hpp"
#include "server/search/registry.hpp"

using namespace kasama::search;

BOOST_AUTO_TEST_CASE(loads_the_r4_core_parameters) {
  const auto& reg = Registry::instance();
  BOOST_TEST(reg.size() > 1500u);  // 1378 definitions, multi-base ones counted once per base
  struct Case {
    const char* type;
    const char* code;
    ParamType param_type;
    const char* expression;  // nullptr: not checked
  };
  const Case cases[] = {
      {"Patient", "birthdate", ParamType::kDate, "Patient.birthDate"},
      {"Patient", "identifier", ParamType::kToken, "Patient.identifier"},
      {"Patient", "name", ParamType::kString, "Patient.name"},
      {"Observation", "code", ParamType::kToken, "Observation.code"},
      {"Observation", "value-quantity", ParamType::kQuantity,
       "(Observation.value as Quantity) | (Observation.value as SampledData)"},
      {"Observation", "subject", ParamType::kReference, "Observation.subject"},
      {"Observation", "code-value-quantity", ParamType::kComposite, nullptr},
      {"Observation", "patient", ParamType::kReference, "Observation.subject.where(resolve() is Patient)"},
      {"Condition", "patient", ParamType::kReference, "Condition.subject.where(resolve() is Patient)"},
      {"Patient", "_id", ParamType::kToken, "Resource.id"},
      {"Observation", "_lastUpdated", ParamType::kDate, "Resource.meta.lastUpdated"},
      {"Patient", "_text", ParamType::kString, nullptr},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.type << "?" << c.code) {
      const SearchParam* p = reg.find(c.type, c.code);
      BOOST_REQUIRE(p != nullptr);
      BOOST_TEST(static_cast<int>(p->type) == static_cast<int>(c.param_type));
      if (c.expression) BOOST_TEST(p->expression == c.expression);
    }
  }
  BOOST_TEST(reg.find("Patient", "no-such-param") == nullptr);
  BOOST_TEST(reg.find("Bundle", "_text") == nullptr);  // Bundle is not a DomainResource
  BOOST_TEST(reg.find("Bundle", "_id") != nullptr);
  const SearchParam* composite = reg.find("Observation", "code-value-quantity");
  BOOST_TEST(composite->components.size() == 2u);
  const SearchParam* subject = reg.find("Observation", "subject");
  BOOST_TEST(!subject->targets.empty());
}

BOOST_AUTO_TEST_CASE(union_expressions_are_split_per_base) {
  BOOST_TEST(expression_for_base("AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient)",
                                 "CarePlan") == "CarePlan.subject.where(resolve() is Patient)");
  BOOST_TEST(
      expression_for_base("(Observation.value as Quantity) | (Observation.value as SampledData)", "Observation") ==
      "(Observation.value as Quantity) | (Observation.value as SampledData)");
  BOOST_TEST(expression_for_base("Patient.name.where(use = 'a|b') | Person.name", "Patient") ==
             "Patient.name.where(use = 'a|b')");
  BOOST_TEST(expression_for_base("Patient.name", "Group").empty());
}

BOOST_AUTO_TEST_CASE(every_parameter_of_every_type_has_an_expression_or_is_special) {
  const auto& reg = Registry::instance();
  std::size_t checked = 0;
  for (const auto& type : kasama::resources::TypeModel::instance().resource_types()) {
    for (const SearchParam* p : reg.for_type(type)) {
      ++checked;
      BOOST_TEST_CONTEXT(type << "?" << p->code) {
        BOOST_TEST((!p->expression.empty() || p->type == ParamType::kSpecial || p->code == "_query" ||
                    p->code == "_content" || p->code == "_text"));
      }
    }
  }
  BOOST_TEST(checked > 2500u);
}
