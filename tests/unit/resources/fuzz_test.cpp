#define BOOST_TEST_MODULE resources_fuzz
// Deterministic mutation fuzzing of the JSON parser and the validator: whatever the bytes,
// they return (an error or a value) and never crash, hang or recurse without bound; and
// whatever parses prints back to text that parses to the same value. tests/fuzz/ has the
// libFuzzer target for open-ended runs.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "resources/json.hpp"
#include "resources/validator.hpp"

using namespace kasama::resources;

namespace {

std::vector<std::string> seeds() {
  std::vector<std::string> out = {
      R"({"resourceType":"Patient","id":"p1","name":[{"family":"山田","given":["太郎"]}],"birthDate":"1950-01-02","_birthDate":{"extension":[{"url":"http://x","valueDecimal":1.50}]}})",
      R"({"resourceType":"Observation","status":"final","code":{"text":"BMI"},"valueQuantity":{"value":22.50,"unit":"kg/m2"}})",
      R"({"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]})",
  };
  std::filesystem::path dir = std::filesystem::path(KASAMA_SHARED_DIR) / "corpora" / "r4-examples";
  if (std::filesystem::exists(dir)) {
    int taken = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() != ".json" || std::filesystem::file_size(e.path()) > 20000) continue;
      std::ifstream in(e.path());
      std::stringstream ss;
      ss << in.rdbuf();
      out.push_back(ss.str());
      if (++taken == 60) break;
    }
  } else {
    BOOST_TEST_MESSAGE("../shared/corpora/r4-examples absent: fuzzing from built-in seeds only");
  }
  return out;
}

std::string mutate(std::string s, std::mt19937& rng) {
  std::uniform_int_distribution<int> op(0, 7);
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < edits && !s.empty(); ++i) {
    std::size_t pos = rng() % s.size();
    switch (op(rng)) {
      case 0:
        s.erase(pos, 1 + rng() % 8);
        break;  // delete
      case 1:
        s.insert(pos, 1, static_cast<char>(rng() % 256));
        break;  // random byte
      case 2:
        s[pos] = "{}[],:\"\\0123456789.eE-+ntfu"[rng() % 27];
        break;  // structural char
      case 3:
        s.resize(pos);
        break;  // truncate
      case 4:
        s.insert(pos, s.substr(rng() % s.size(), rng() % 64));
        break;  // duplicate a slice
      case 5:
        s.insert(pos, "\xe5\xb1");
        break;  // broken UTF-8
      case 6:
        s.insert(pos, "1e999999");
        break;  // huge exponent
      default:
        s.insert(pos, std::string(rng() % 300, rng() % 2 ? '[' : '{'));
        break;  // nesting
    }
  }
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(mutations_never_crash_and_round_trip) {
  std::mt19937 rng(20261122);
  int parsed = 0, rejected = 0;
  for (const auto& seed : seeds()) {
    for (int i = 0; i < 300; ++i) {
      const std::string input = mutate(seed, rng);
      auto r = parse_json(input);
      if (!r.ok) {
        ++rejected;
        BOOST_TEST(!r.error.empty());
        continue;
      }
      ++parsed;
      auto issues = validate_resource(r.value);  // must return, whatever the shape
      BOOST_TEST(issues.size() <= kMaxValidationIssues);
      auto again = parse_json(dump_json(r.value));
      BOOST_REQUIRE(again.ok);
      BOOST_TEST((again.value == r.value));
    }
  }
  BOOST_TEST_MESSAGE("fuzz: " << parsed << " parsed, " << rejected << " rejected");
  BOOST_TEST(rejected > 0);
  BOOST_TEST(parsed > 0);
}

BOOST_AUTO_TEST_CASE(pathological_inputs) {
  BOOST_TEST(!parse_json(std::string(1'000'000, '[')).ok);
  BOOST_TEST(!parse_json(std::string(1'000'000, '{')).ok);
  std::string long_string = "{\"resourceType\":\"Patient\",\"id\":\"" + std::string(2'000'000, 'a') + "\"}";
  auto r = parse_json(long_string);
  BOOST_REQUIRE(r.ok);
  BOOST_TEST(!validate_resource(r.value).empty());
  BOOST_TEST(!parse_json(std::string("\0", 1)).ok);
}
