#define BOOST_TEST_MODULE resources_json
#include <boost/test/unit_test.hpp>

#include "resources/json.hpp"

using kasama::resources::dump_json;
using kasama::resources::parse_json;

namespace {
struct RoundTrip {
  const char* input;
  const char* expected;  // compact output
};
}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_keeps_decimal_text_and_utf8) {
  const RoundTrip cases[] = {
      {R"({"value":1.50})", R"({"value":1.50})"},
      {R"({"value":1e2})", R"({"value":1e2})"},
      {R"({"value":-0.000100})", R"({"value":-0.000100})"},
      {R"({"value":1.0E-5})", R"({"value":1.0E-5})"},
      {R"({"big":123456789012345678901234567890})", R"({"big":123456789012345678901234567890})"},
      {R"({"i":-42,"u":42})", R"({"i":-42,"u":42})"},
      {"{ \"name\" : \"山田\u3000太郎\" }", "{\"name\":\"山田\u3000太郎\"}"},
      {R"({"kana":"ﾔﾏﾀﾞ","digits":"１２３"})", R"({"kana":"ﾔﾏﾀﾞ","digits":"１２３"})"},
      {R"({"esc":"a\"b\\c\n\u0001"})", R"({"esc":"a\"b\\c\n\u0001"})"},
      {R"({"u":"\u5c71\u7530"})", R"({"u":"山田"})"},
      {R"({"z":1,"a":2,"m":[true,false,null]})", R"({"z":1,"a":2,"m":[true,false,null]})"},
  };
  for (const auto& c : cases) {
    auto r = parse_json(c.input);
    BOOST_TEST_CONTEXT(c.input) {
      BOOST_TEST(r.ok);
      BOOST_TEST(dump_json(r.value) == c.expected);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_bad_json_with_a_message) {
  const char* cases[] = {
      R"({"a":1,"a":2})",      // duplicate key
      R"({"a":1,)",            // truncated
      "{\"a\":\"\xff\xfe\"}",  // invalid UTF-8
      R"({"a":01})",           // leading zero
      "",                      // empty
      R"({"a":1} x)",          // trailing garbage
      R"({"a":NaN})",
  };
  for (const char* c : cases) {
    auto r = parse_json(c);
    BOOST_TEST_CONTEXT(c) {
      BOOST_TEST(!r.ok);
      BOOST_TEST(!r.error.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(duplicate_key_detected_in_large_objects) {
  std::string s = "{";
  for (int i = 0; i < 5000; ++i) s += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  s += "\"k4321\":1}";
  auto r = parse_json(s);
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.error.find("k4321") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(depth_limit) {
  std::string deep(kasama::resources::kMaxJsonDepth + 5, '[');
  deep += std::string(kasama::resources::kMaxJsonDepth + 5, ']');
  BOOST_TEST(!parse_json(deep).ok);
  std::string ok(10, '[');
  ok += std::string(10, ']');
  BOOST_TEST(parse_json(ok).ok);
}

BOOST_AUTO_TEST_CASE(number_helpers) {
  auto r = parse_json(R"({"d":1.50,"i":3})");
  BOOST_REQUIRE(r.ok);
  BOOST_TEST(kasama::resources::is_decimal(r.value["d"]));
  BOOST_TEST(*kasama::resources::number_text(r.value["d"]) == "1.50");
  BOOST_TEST(*kasama::resources::number_value(r.value["d"]) == 1.5);
  BOOST_TEST(*kasama::resources::number_text(r.value["i"]) == "3");
  BOOST_TEST(!kasama::resources::is_decimal(r.value["i"]));
  // Equality of parsed documents compares decimal text, so 1.50 != 1.5.
  BOOST_TEST(parse_json(R"({"d":1.50})").value != parse_json(R"({"d":1.5})").value);
  BOOST_TEST(parse_json(R"({"d":1.50})").value == parse_json(R"({ "d" : 1.50 })").value);
}

BOOST_AUTO_TEST_CASE(pretty_print) {
  auto r = parse_json(R"({"a":[1,2],"b":{}})");
  BOOST_TEST(dump_json(r.value, 2) == "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}");
}

BOOST_AUTO_TEST_CASE(utf8_sanitizing_and_prefixes) {
  using kasama::resources::sanitize_utf8;
  using kasama::resources::utf8_prefix;
  const std::string bad[] = {"\xff", "a\xc3(b", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\xe5\xb1"};
  for (const auto& s : bad) {
    const std::string clean = sanitize_utf8(s);
    BOOST_TEST(clean.find("\xEF\xBF\xBD") != std::string::npos);
    BOOST_TEST(parse_json("\"" + clean + "\"").ok);  // valid UTF-8 now
  }
  BOOST_TEST(sanitize_utf8("山田\u3000太郎 ok") == "山田\u3000太郎 ok");
  BOOST_TEST(utf8_prefix("山田太郎", 2) == "山田");
  BOOST_TEST(utf8_prefix("abc", 10) == "abc");
  BOOST_TEST(utf8_prefix("", 3).empty());
}
