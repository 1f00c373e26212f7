#include "resources/validator.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>

#include "resources/narrative.hpp"

namespace kasama::resources {
namespace {

constexpr std::size_t kMaxStringChars = 1024 * 1024;  // datatypes.html: strings SHALL NOT exceed 1MB
constexpr int kMaxDepth = 256;                        // parse_json stops far earlier; this guards hand-built DOMs
constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();
constexpr std::int64_t kInt32Min = std::numeric_limits<std::int32_t>::min();

// The spec's regexes use \s and \S in the XML Schema/Java sense: ASCII whitespace only, so
// U+3000 (ideographic space) is an ordinary character in codes and strings.
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_lower_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f');
}

// Reads exactly n digits at pos.
bool read_digits(std::string_view s, std::size_t& pos, std::size_t n, int& out) {
  if (s.size() - pos < n) return false;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (!is_digit(c)) return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

int days_in_month(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) {
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return leap ? 29 : 28;
  }
  return kDays[month - 1];
}

// YYYY, YYYY-MM or YYYY-MM-DD; precision is 1, 2 or 3 parts. Year 0000 does not exist.
bool read_date(std::string_view s, std::size_t& pos, int& precision) {
  int year = 0;
  if (!read_digits(s, pos, 4, year) || year == 0) return false;
  precision = 1;
  if (pos == s.size() || s[pos] != '-') return true;
  ++pos;
  int month = 0;
  if (!read_digits(s, pos, 2, month) || month < 1 || month > 12) return false;
  precision = 2;
  if (pos == s.size() || s[pos] != '-') return true;
  ++pos;
  int day = 0;
  if (!read_digits(s, pos, 2, day) || day < 1 || day > days_in_month(year, month)) return false;
  precision = 3;
  return true;
}

// hh:mm:ss(.f+)? with 60 seconds allowed for leap seconds, as the R4 regex does.
bool read_time(std::string_view s, std::size_t& pos) {
  int h = 0, m = 0, sec = 0;
  if (!read_digits(s, pos, 2, h) || h > 23) return false;
  if (!expect(s, pos, ':') || !read_digits(s, pos, 2, m) || m > 59) return false;
  if (!expect(s, pos, ':') || !read_digits(s, pos, 2, sec) || sec > 60) return false;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    while (pos < s.size() && is_digit(s[pos])) ++pos;
    if (pos == start) return false;
  }
  return true;
}

// Z or ±hh:mm from -14:00 to +14:00.
bool read_zone(std::string_view s, std::size_t& pos) {
  if (expect(s, pos, 'Z')) return true;
  if (pos >= s.size() || (s[pos] != '+' && s[pos] != '-')) return false;
  ++pos;
  int h = 0, m = 0;
  if (!read_digits(s, pos, 2, h) || !expect(s, pos, ':') || !read_digits(s, pos, 2, m)) return false;
  return (h <= 13 && m <= 59) || (h == 14 && m == 0);
}

bool valid_date(std::string_view s) {
  std::size_t pos = 0;
  int precision = 0;
  return read_date(s, pos, precision) && pos == s.size();
}

bool valid_date_time(std::string_view s, bool instant) {
  std::size_t pos = 0;
  int precision = 0;
  if (!read_date(s, pos, precision)) return false;
  if (pos == s.size()) return !instant;
  return precision == 3 && expect(s, pos, 'T') && read_time(s, pos) && read_zone(s, pos) && pos == s.size();
}

bool valid_time(std::string_view s) {
  std::size_t pos = 0;
  return read_time(s, pos) && pos == s.size();
}

// [^\s]+(\s[^\s]+)*: no leading, trailing or doubled whitespace.
bool valid_code(std::string_view s) {
  if (s.empty() || is_space(s.front()) || is_space(s.back())) return false;
  for (std::size_t i = 1; i < s.size(); ++i) {
    if (is_space(s[i]) && is_space(s[i - 1])) return false;
  }
  return true;
}

bool valid_id(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool valid_uri(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (is_space(c)) return false;
  }
  return true;
}

// urn:oid:[0-2](\.(0|[1-9][0-9]*))+
bool valid_oid(std::string_view s) {
  constexpr std::string_view kPrefix = "urn:oid:";
  if (!s.starts_with(kPrefix)) return false;
  std::size_t pos = kPrefix.size();
  if (pos >= s.size() || s[pos] < '0' || s[pos] > '2') return false;
  ++pos;
  int arcs = 0;
  while (pos < s.size()) {
    if (s[pos] != '.') return false;
    ++pos;
    std::size_t start = pos;
    while (pos < s.size() && is_digit(s[pos])) ++pos;
    if (pos == start || (s[start] == '0' && pos - start > 1)) return false;
    ++arcs;
  }
  return arcs > 0;
}

// urn:uuid: + lowercase 8-4-4-4-12 hex.
bool valid_uuid(std::string_view s) {
  constexpr std::string_view kPrefix = "urn:uuid:";
  if (!s.starts_with(kPrefix) || s.size() != kPrefix.size() + 36) return false;
  std::string_view u = s.substr(kPrefix.size());
  for (std::size_t i = 0; i < u.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? u[i] != '-' : !is_lower_hex(u[i])) return false;
  }
  return true;
}

// Standard base64 alphabet, whitespace anywhere, '=' padding only at the end.
bool valid_base64(std::string_view s) {
  std::size_t data = 0, padding = 0;
  for (char c : s) {
    if (is_space(c)) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    bool alphabet = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' || c == '/';
    if (!alphabet || padding > 0) return false;
    ++data;
  }
  return data > 0 && padding <= 2 && (data + padding) % 4 == 0;
}

// -?(0|[1-9][0-9]*) within 32 bits, or the positiveInt/unsignedInt forms.
bool valid_integer_text(std::string_view s, std::int64_t min) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  std::string_view digits = s.starts_with('-') ? s.substr(1) : s;
  if (digits.empty() || (digits[0] == '0' && digits.size() > 1)) return false;  // "-0" matches the regex
  return v >= min && v <= kInt32Max;
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool valid_decimal_text(std::string_view s) {
  std::size_t pos = 0;
  expect(s, pos, '-');
  if (pos >= s.size() || !is_digit(s[pos])) return false;
  if (s[pos] == '0') {
    ++pos;
  } else {
    while (pos < s.size() && is_digit(s[pos])) ++pos;
  }
  if (expect(s, pos, '.')) {
    std::size_t start = pos;
    while (pos < s.size() && is_digit(s[pos])) ++pos;
    if (pos == start) return false;
  }
  if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
    ++pos;
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
    std::size_t start = pos;
    while (pos < s.size() && is_digit(s[pos])) ++pos;
    if (pos == start) return false;
  }
  return pos == s.size();
}

enum class StringProblem { none, control_character, too_long };

// Control characters other than tab, CR and LF are not allowed (datatypes.html); the 1MB
// limit counts characters, so UTF-8 continuation bytes are not counted.
StringProblem check_characters(std::string_view s, bool limit_length) {
  std::size_t chars = 0;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return StringProblem::control_character;
    if ((c & 0xC0) != 0x80) ++chars;
  }
  return limit_length && chars > kMaxStringChars ? StringProblem::too_long : StringProblem::none;
}

// The string-valued formats' lexical rule, after the character checks.
bool valid_string_format(PrimitiveFormat format, std::string_view s) {
  switch (format) {
    case PrimitiveFormat::code:
      return valid_code(s);
    case PrimitiveFormat::id:
      return valid_id(s);
    case PrimitiveFormat::uri:
    case PrimitiveFormat::url:
    case PrimitiveFormat::canonical:
      return valid_uri(s);
    case PrimitiveFormat::oid:
      return valid_oid(s);
    case PrimitiveFormat::uuid:
      return valid_uuid(s);
    case PrimitiveFormat::base64_binary:
      return valid_base64(s);
    case PrimitiveFormat::date:
      return valid_date(s);
    case PrimitiveFormat::date_time:
      return valid_date_time(s, false);
    case PrimitiveFormat::instant:
      return valid_date_time(s, true);
    case PrimitiveFormat::time:
      return valid_time(s);
    default:
      return !s.empty();
  }
}

// string and its specialisations carry the 1MB limit; base64Binary, uri and xhtml do not.
bool has_length_limit(PrimitiveFormat format) {
  return format == PrimitiveFormat::string || format == PrimitiveFormat::markdown || format == PrimitiveFormat::code ||
         format == PrimitiveFormat::id;
}

const char* format_description(PrimitiveFormat format) {
  switch (format) {
    case PrimitiveFormat::integer:
      return "an integer from -2147483648 to 2147483647";
    case PrimitiveFormat::positive_int:
      return "an integer from 1 to 2147483647";
    case PrimitiveFormat::unsigned_int:
      return "an integer from 0 to 2147483647";
    case PrimitiveFormat::decimal:
      return "a decimal number";
    case PrimitiveFormat::code:
      return "a code (no leading, trailing or repeated whitespace)";
    case PrimitiveFormat::id:
      return "an id (1 to 64 letters, digits, '-' or '.')";
    case PrimitiveFormat::uri:
    case PrimitiveFormat::url:
    case PrimitiveFormat::canonical:
      return "a URI without whitespace";
    case PrimitiveFormat::oid:
      return "an OID (urn:oid: followed by dotted numbers, e.g. urn:oid:1.2.3)";
    case PrimitiveFormat::uuid:
      return "a UUID (urn:uuid: followed by a lowercase 8-4-4-4-12 hex UUID)";
    case PrimitiveFormat::base64_binary:
      return "base64 data";
    case PrimitiveFormat::date:
      return "a date (YYYY, YYYY-MM or YYYY-MM-DD, a real calendar date)";
    case PrimitiveFormat::date_time:
      return "a dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.sss] with time zone Z or +hh:mm)";
    case PrimitiveFormat::instant:
      return "an instant (YYYY-MM-DDThh:mm:ss[.sss] with time zone Z or +hh:mm)";
    case PrimitiveFormat::time:
      return "a time (hh:mm:ss[.sss])";
    default:
      return "text";
  }
}

const char* json_type_name(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number() || is_decimal(v)) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "an unknown value";
}

const char* json_kind_name(JsonKind kind) {
  switch (kind) {
    case JsonKind::boolean:
      return "a JSON boolean";
    case JsonKind::number:
      return "a JSON number";
    case JsonKind::string:
      return "a JSON string";
    default:
      return "a JSON object";
  }
}

// A value quoted for a message, cut at a UTF-8 boundary so a huge value stays readable.
std::string in_quotes(std::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  if (s.size() <= kMax) {
    out += s;
  } else {
    std::size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    out += s.substr(0, cut);
    out += "...";
  }
  out += '\'';
  return out;
}

std::string number_as_text(const Json& v) {
  auto t = number_text(v);
  return t ? *t : std::string("?");
}

class Validator {
 public:
  Validator(const TypeModel& model, std::vector<ValidationIssue>& issues) : model_(model), issues_(issues) {}

  void run(const Json& root) {
    path_.clear();
    path_.reserve(128);
    if (!root.is_object()) {
      add_at("structure", "", std::string("A resource must be a JSON object, not ") + json_type_name(root));
      return;
    }
    resource(root, nullptr);
  }

 private:
  bool full() const { return issues_.size() >= kMaxValidationIssues; }

  void add_at(const char* code, std::string expression, std::string message) {
    if (full()) return;
    issues_.push_back(ValidationIssue{code, std::move(expression), std::move(message)});
  }
  void add(const char* code, std::string message) { add_at(code, path_, std::move(message)); }

  std::string child_path(std::string_view name) const {
    if (path_.empty()) return std::string(name);
    std::string p = path_;
    p += '.';
    p += name;
    return p;
  }

  void push_name(std::string_view name) {
    if (!path_.empty()) path_ += '.';
    path_ += name;
  }
  void push_index(std::size_t i) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, i);
    (void)ec;
    path_ += '[';
    path_.append(buf, end);
    path_ += ']';
  }

  static const Json* member(const Json::object_t& obj, std::string_view key) {
    for (const auto& [k, v] : obj) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  // The "_key" partner of a primitive property, found without building the name.
  static const Json* extension_member(const Json::object_t& obj, std::string_view key) {
    for (const auto& [k, v] : obj) {
      if (k.size() == key.size() + 1 && k[0] == '_' && std::string_view(k).substr(1) == key) return &v;
    }
    return nullptr;
  }

  // A resource at path_ (empty for the document root); expected: the element's declared
  // resource type, or null/abstract Resource for any.
  void resource(const Json& v, const TypeInfo* expected) {
    if (!v.is_object()) {
      add("structure", std::string("A resource must be a JSON object, not ") + json_type_name(v));
      return;
    }
    const auto& obj = v.get_ref<const Json::object_t&>();
    const Json* rt = member(obj, "resourceType");
    if (rt == nullptr) {
      add_at("structure", child_path("resourceType"), "The resource has no resourceType, so its type is unknown");
      return;
    }
    if (!rt->is_string()) {
      add_at("structure", child_path("resourceType"),
             std::string("resourceType must be a JSON string, not ") + json_type_name(*rt));
      return;
    }
    const auto& name = rt->get_ref<const std::string&>();
    const TypeInfo* type = model_.find_type(name);
    if (type == nullptr || type->kind != TypeKind::resource || type->is_abstract) {
      add_at("structure", child_path("resourceType"), "Unknown resource type " + in_quotes(name));
      return;
    }
    if (expected != nullptr && !type->is_a(expected->name)) {
      add_at("structure", child_path("resourceType"),
             "A " + name + " is not allowed here: the element holds a " + expected->name);
      return;
    }
    const bool document_root = path_.empty();
    if (document_root) path_ = name;
    object(v, *type->context, true);
    if (document_root) path_.clear();
  }

  void object(const Json& v, const ElementContext& ctx, bool resource_root) {
    const auto& obj = v.get_ref<const Json::object_t&>();
    if (obj.empty()) {
      add("structure", "Empty object: an element must have a value or child elements");
      return;
    }
    if (++depth_ > kMaxDepth) {
      add("structure", "Elements are nested too deeply");
      --depth_;
      return;
    }
    std::uint64_t present = 0;
    std::array<const TypeRef*, kMaxChoiceElementsPerContext> chosen{};
    for (const auto& [key, value] : obj) {
      if (full()) break;
      const std::size_t mark = path_.size();
      push_name(key);
      if (key == "resourceType" && resource_root) {
        path_.resize(mark);
        continue;
      }
      ChildMatch m = model_.child(ctx, key);
      if (!m) {
        unknown_element(ctx, key);
      } else {
        const ElementDef& e = *m.element;
        if (e.required_slot != ElementDef::kNoSlot) present |= std::uint64_t{1} << e.required_slot;
        bool conflict = false;
        if (e.choice_slot != ElementDef::kNoSlot) {
          const TypeRef*& c = chosen[e.choice_slot];
          conflict = c != nullptr && c != m.type;
          if (c == nullptr) c = m.type;
        }
        if (conflict) {
          add("structure", "Element " + in_quotes(key) + " is a second type for " + e.name +
                               "[x]: a choice element takes only one type");
        } else if (m.primitive_extension) {
          primitive_extension(obj, key, value, m);
        } else {
          property(obj, key, value, m);
        }
      }
      path_.resize(mark);
    }
    if (!full()) {
      for (const ElementDef* r : ctx.required) {
        if ((present & (std::uint64_t{1} << r->required_slot)) == 0) {
          add_at("required", child_path(r->name),
                 "Required element " + in_quotes(r->choice ? r->name + "[x]" : r->name) + " is missing");
        }
      }
    }
    --depth_;
  }

  void unknown_element(const ElementContext& ctx, const std::string& key) {
    std::string message;
    if (key == "resourceType") {
      message = "resourceType is only allowed at the root of a resource";
    } else if (ChildMatch base = key.size() > 1 && key[0] == '_' ? model_.child(ctx, key.substr(1)) : ChildMatch{}) {
      message = "Element " + in_quotes(key) + " is not allowed: " + in_quotes(key.substr(1)) +
                (base.element->xml_attr ? " cannot have extensions" : " is not a primitive, so it has no '_' form");
    } else {
      message = "Unknown element " + in_quotes(key) + " in " + ctx.name;
      for (const ElementDef* e : ctx.elements) {
        if (e->choice && e->name == key) {
          std::string example = e->types.front().code;
          example[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(example[0])));
          message += ": " + key + "[x] needs its type in the name, such as " + key + example;
          break;
        }
      }
    }
    add("structure", std::move(message));
  }

  // Checks shared by an element and its "_x" sibling: the element may appear, and not as null.
  bool present(const ElementDef& e, const std::string& key, const Json& v) {
    if (e.max == 0) {
      add("structure", "Element " + in_quotes(key) + " is not allowed here");
      return false;
    }
    if (v.is_null()) {
      add("structure", "Element " + in_quotes(key) + " is null; null is only allowed inside arrays");
      return false;
    }
    return true;
  }

  void property(const Json::object_t& obj, const std::string& key, const Json& v, const ChildMatch& m) {
    const ElementDef& e = *m.element;
    if (!present(e, key, v)) return;
    if (!e.repeats()) {
      if (v.is_array()) {
        add("structure", "Element " + in_quotes(key) + " does not repeat, so it must not be an array");
        return;
      }
      value(v, m, key);
      return;
    }
    if (!v.is_array()) {
      add("structure", "Element " + in_quotes(key) + " repeats, so it must be a JSON array");
      return;
    }
    const auto& items = v.get_ref<const Json::array_t&>();
    if (items.empty()) {
      add("structure", "Element " + in_quotes(key) + " is an empty array; leave it out instead");
      return;
    }
    if (e.max != kUnbounded && items.size() > e.max) {
      add("structure", "Element " + in_quotes(key) + " has " + std::to_string(items.size()) + " values but at most " +
                           std::to_string(e.max) + " are allowed");
    }
    const bool primitive = m.type->info->kind == TypeKind::primitive;
    const Json* ext = nullptr;
    bool ext_looked_up = false;
    const std::size_t mark = path_.size();
    for (std::size_t i = 0; i < items.size() && !full(); ++i) {
      push_index(i);
      const Json& item = items[i];
      if (item.is_null()) {
        // A null keeps the arrays aligned when only "_key" has something at this index.
        if (primitive && !ext_looked_up) {
          ext = extension_member(obj, key);
          ext_looked_up = true;
        }
        bool covered = ext != nullptr && ext->is_array() && i < ext->size() && !(*ext)[i].is_null();
        if (!covered) {
          add("structure",
              primitive ? "Null in " + in_quotes(key) + " without an extension at the same index in '_" + key + "'"
                        : "Element " + in_quotes(key) + " contains null, which is not allowed");
        }
      } else {
        value(item, m, key);
      }
      path_.resize(mark);
    }
  }

  void primitive_extension(const Json::object_t& obj, const std::string& key, const Json& v, const ChildMatch& m) {
    const ElementDef& e = *m.element;
    const std::string_view base_key = std::string_view(key).substr(1);
    if (!present(e, key, v)) return;
    if (!e.repeats()) {
      if (!v.is_object()) {
        add("structure", "Element " + in_quotes(key) + " must be a JSON object holding the id and extensions of " +
                             in_quotes(base_key) + ", not " + json_type_name(v));
        return;
      }
      object(v, *m.context, false);
      return;
    }
    if (!v.is_array()) {
      add("structure",
          "Element " + in_quotes(key) + " must be an array aligned with " + in_quotes(base_key) + ", which repeats");
      return;
    }
    const auto& items = v.get_ref<const Json::array_t&>();
    if (items.empty()) {
      add("structure", "Element " + in_quotes(key) + " is an empty array; leave it out instead");
      return;
    }
    const Json* values = member(obj, base_key);
    const bool aligned = values != nullptr && values->is_array();
    if (aligned && values->size() != items.size()) {
      add("structure", "Element " + in_quotes(key) + " has " + std::to_string(items.size()) + " items but " +
                           in_quotes(base_key) + " has " + std::to_string(values->size()) + "; the arrays must align");
    }
    const std::size_t mark = path_.size();
    for (std::size_t i = 0; i < items.size() && !full(); ++i) {
      push_index(i);
      const Json& item = items[i];
      if (item.is_null()) {
        bool covered = aligned && i < values->size() && !(*values)[i].is_null();
        if (!covered) {
          add("structure", "Null in " + in_quotes(key) + " with no value at the same index in " + in_quotes(base_key));
        }
      } else if (item.is_object()) {
        object(item, *m.context, false);
      } else {
        add("structure", "Items of " + in_quotes(key) + " must be JSON objects (or null), not " + json_type_name(item));
      }
      path_.resize(mark);
    }
  }

  void value(const Json& v, const ChildMatch& m, const std::string& key) {
    const TypeInfo& type = *m.type->info;
    switch (type.kind) {
      case TypeKind::primitive:
        if (primitive(v, type, key) && m.element->required_codes != nullptr && type.format == PrimitiveFormat::code) {
          bound_code(v.get_ref<const std::string&>(), *m.element);
        }
        return;
      case TypeKind::resource:
        resource(v, &type);
        return;
      case TypeKind::datatype:
        if (!v.is_object()) {
          add("structure",
              "Element " + in_quotes(key) + " must be a JSON object (" + m.type->code + "), not " + json_type_name(v));
          return;
        }
        object(v, *m.context, false);
        if (m.element->required_codes != nullptr) {
          if (type.name == "CodeableConcept") {
            bound_codeable_concept(v, *m.element);
          } else if (type.name == "Coding") {
            bound_coding(v, *m.element);
          }
        }
        return;
    }
  }

  // ---- required bindings (terminologies.html#required) ----
  // Only values that are structurally usable are judged; structure issues are reported above.

  static const std::string* string_member(const Json::object_t& obj, std::string_view key) {
    const Json* v = member(obj, key);
    return v != nullptr && v->is_string() ? &v->get_ref<const std::string&>() : nullptr;
  }

  static std::string value_set_text(const ValueSetCodes& vs) { return vs.url + " (" + vs.listing + ")"; }
  static std::string coded_value_set_text(const ValueSetCodes& vs) {
    return vs.url + " (codes of " + vs.system_listing + ": " + vs.listing + ")";
  }

  // A code element: the code of any of the value set's systems.
  void bound_code(const std::string& code, const ElementDef& e) {
    const ValueSetCodes& vs = *e.required_codes;
    if (vs.contains(code)) return;
    add("code-invalid", e.path + ": " + in_quotes(code) + " is not in " + value_set_text(vs));
  }

  // A Coding: its system and code together are in the value set. A Coding with neither has
  // no concept to judge (only extensions); one without a system has no defined meaning.
  void bound_coding(const Json& v, const ElementDef& e) {
    const auto& obj = v.get_ref<const Json::object_t&>();
    const std::string* system = string_member(obj, "system");
    const std::string* code = string_member(obj, "code");
    if (system == nullptr && code == nullptr) return;
    const ValueSetCodes& vs = *e.required_codes;
    if (system != nullptr && code != nullptr && vs.contains(*system, *code)) return;
    add("code-invalid", e.path + ": " + coding_text(system, code) + " is not in " + coded_value_set_text(vs));
  }

  // A CodeableConcept: at least one coding is in the value set; other codings (translations)
  // may be from anywhere. Text alone does not satisfy a required binding: the concept SHALL
  // be from the value set. A concept with neither coding nor text (only extensions, such as
  // a data-absent-reason) has no value to judge.
  void bound_codeable_concept(const Json& v, const ElementDef& e) {
    const auto& obj = v.get_ref<const Json::object_t&>();
    const ValueSetCodes& vs = *e.required_codes;
    const Json* coding = member(obj, "coding");
    std::string given;
    std::size_t coded = 0;
    if (coding != nullptr && coding->is_array()) {
      for (const Json& c : coding->get_ref<const Json::array_t&>()) {
        if (!c.is_object()) continue;
        const auto& cobj = c.get_ref<const Json::object_t&>();
        const std::string* system = string_member(cobj, "system");
        const std::string* code = string_member(cobj, "code");
        if (system == nullptr && code == nullptr) continue;
        if (system != nullptr && code != nullptr && vs.contains(*system, *code)) return;
        if (++coded <= 3) given += (coded > 1 ? ", " : "") + coding_text(system, code);
      }
    }
    if (coded > 0) {
      if (coded > 3) given += ", ...";
      add("code-invalid", e.path + ": no coding is from " + coded_value_set_text(vs) + "; given " + given);
    } else if (member(obj, "text") != nullptr) {
      add("code-invalid",
          e.path + ": only text is given, but the required binding needs a coding from " + coded_value_set_text(vs));
    }
  }

  static std::string coding_text(const std::string* system, const std::string* code) {
    if (system == nullptr) return "code " + in_quotes(*code) + " without a system";
    if (code == nullptr) return "system " + *system + " without a code";
    return in_quotes(*system + "|" + *code);
  }

  void wrong_json_type(const Json& v, const TypeInfo& type, const std::string& key) {
    std::string message = "Element " + in_quotes(key) + " (" + type.name + ") must be " + json_kind_name(type.json) +
                          ", not " + json_type_name(v);
    if (v.is_object()) message += "; id and extensions of a primitive go in '_" + key + "'";
    add("structure", std::move(message));
  }

  // Whether the value is a valid string-valued primitive (true only for JSON strings), so
  // that callers may judge it further.
  bool primitive(const Json& v, const TypeInfo& type, const std::string& key) {
    switch (type.json) {
      case JsonKind::boolean:
        if (!v.is_boolean()) wrong_json_type(v, type, key);
        return false;
      case JsonKind::number:
        number(v, type, key);
        return false;
      case JsonKind::string:
        break;
      case JsonKind::object:
        return false;
    }
    if (!v.is_string()) {
      wrong_json_type(v, type, key);
      return false;
    }
    const auto& s = v.get_ref<const std::string&>();
    if (s.empty()) {
      add("structure", "Element " + in_quotes(key) + " is an empty string; leave it out instead");
      return false;
    }
    switch (check_characters(s, has_length_limit(type.format))) {
      case StringProblem::control_character:
        add("value", "Element " + in_quotes(key) + " contains a control character (only tab, CR and LF are allowed)");
        return false;
      case StringProblem::too_long:
        add("value", "Element " + in_quotes(key) + " is longer than the 1MB limit for strings");
        return false;
      case StringProblem::none:
        break;
    }
    if (!valid_string_format(type.format, s)) {
      add("value", "Element " + in_quotes(key) + " has value " + in_quotes(s) + ", which is not " +
                       format_description(type.format));
      return false;
    }
    if (type.format == PrimitiveFormat::xhtml) {
      for (std::string& problem : check_narrative(s)) add("value", "Element " + in_quotes(key) + ": " + problem);
    }
    return true;
  }

  void number(const Json& v, const TypeInfo& type, const std::string& key) {
    if (v.is_number_integer()) {
      if (type.format == PrimitiveFormat::decimal) return;
      std::int64_t min = type.format == PrimitiveFormat::positive_int   ? 1
                         : type.format == PrimitiveFormat::unsigned_int ? 0
                                                                        : kInt32Min;
      bool ok = v.is_number_unsigned() ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(kInt32Max)
                                       : v.get<std::int64_t>() >= min && v.get<std::int64_t>() <= kInt32Max;
      if (ok && v.is_number_unsigned()) ok = static_cast<std::int64_t>(v.get<std::uint64_t>()) >= min;
      if (!ok) {
        add("value", "Element " + in_quotes(key) + " has value " + number_as_text(v) + ", which is not " +
                         format_description(type.format));
      }
      return;
    }
    if (is_decimal(v) || v.is_number_float()) {
      if (type.format != PrimitiveFormat::decimal) {
        add("value", "Element " + in_quotes(key) + " has value " + number_as_text(v) + ", which is not " +
                         format_description(type.format));
      }
      return;
    }
    wrong_json_type(v, type, key);
  }

  const TypeModel& model_;
  std::vector<ValidationIssue>& issues_;
  std::string path_;
  int depth_ = 0;
};

}  // namespace

std::vector<ValidationIssue> validate_resource(const Json& resource, const TypeModel& model) {
  std::vector<ValidationIssue> issues;
  Validator(model, issues).run(resource);
  return issues;
}

std::vector<ValidationIssue> validate_resource(const Json& resource) {
  return validate_resource(resource, TypeModel::instance());
}

bool is_valid_primitive_text(PrimitiveFormat format, std::string_view text) {
  switch (format) {
    case PrimitiveFormat::none:
      return false;
    case PrimitiveFormat::boolean:
      return text == "true" || text == "false";
    case PrimitiveFormat::integer:
      return valid_integer_text(text, kInt32Min);
    case PrimitiveFormat::positive_int:
      return valid_integer_text(text, 1);
    case PrimitiveFormat::unsigned_int:
      return valid_integer_text(text, 0);
    case PrimitiveFormat::decimal:
      return valid_decimal_text(text);
    default:
      break;
  }
  if (text.empty() || check_characters(text, has_length_limit(format)) != StringProblem::none) return false;
  return valid_string_format(format, text);
}

}  // namespace kasama::resources
