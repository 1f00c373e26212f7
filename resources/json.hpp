#pragma once
// FHIR JSON as a DOM: nlohmann::ordered_json (key order kept) with one twist.
// FHIR decimals must keep their exact text (1.50 stays 1.50), which a double cannot
// do, so every JSON number with a fraction or exponent is held as a nlohmann "binary"
// value tagged kDecimalSubtype whose bytes are the number's original text. Only the
// functions here parse and print JSON, so that representation never leaks out.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kasama::resources {

using Json = nlohmann::ordered_json;

inline constexpr std::uint8_t kDecimalSubtype = 0x44;  // 'D'
inline constexpr int kMaxJsonDepth = 128;

struct JsonParseResult {
  Json value;
  bool ok = false;
  std::size_t offset = 0;  // byte offset of the error in the input
  std::string error;       // human readable, names what is wrong
};

// Parses RFC 8259 JSON with FHIR's extra rules that are about JSON itself: duplicate keys
// are an error, nesting deeper than kMaxJsonDepth is an error. UTF-8 is validated.
JsonParseResult parse_json(std::string_view text);
// obj[name] when obj is an object and that member is a string, else "" (JSON from clients
// and data files may hold any type anywhere).
std::string string_member(const Json& obj, const char* name);

// A JSON file (conformance data, rule files): throws std::runtime_error naming the path when
// it cannot be read or parsed.
Json load_json_file(const std::string& path);

// Compact (indent < 0) or pretty output; non-ASCII is written as UTF-8, decimals as their text.
std::string dump_json(const Json& value, int indent = -1);
void dump_json_to(std::string& out, const Json& value, int indent = -1);

bool is_decimal(const Json& value);
// The decimal's original text; for integer numbers their decimal rendering.
std::optional<std::string> number_text(const Json& value);
Json make_decimal(std::string_view text);
// A number usable in arithmetic (search indexes, comparisons): integers and decimals.
std::optional<double> number_value(const Json& value);

// s with every invalid UTF-8 sequence replaced by U+FFFD: for texts that echo client bytes
// (error messages) and must still be valid JSON.
std::string sanitize_utf8(std::string_view s);
// At most max_chars code points of valid UTF-8 text, cut at a character boundary.
std::string_view utf8_prefix(std::string_view s, std::size_t max_chars);
// At most max bytes of s with every byte outside printable ASCII (0x20–0x7e) as '?': for
// ASCII columns and log lines that quote what a client sent.
std::string printable_ascii(std::string_view s, std::size_t max);

// Appends s to out as a JSON string literal (with quotes).
void append_json_string(std::string& out, std::string_view s);

}  // namespace kasama::resources
