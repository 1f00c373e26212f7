#include "resources/json.hpp"

#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <memory>
#include <unordered_set>
#include <vector>

namespace kasama::resources {
namespace {

using ObjectVector = std::vector<std::pair<const std::string, Json>>;

// Builds the DOM from nlohmann's SAX events. Objects are appended to directly (O(1)) and
// checked for duplicate keys with a hash set once they grow past a handful of members,
// so a hostile body with many keys cannot make parsing quadratic.
class DomBuilder {
 public:
  explicit DomBuilder(Json& root) : root_(root) {}

  bool null() { return put(Json(nullptr)); }
  bool boolean(bool v) { return put(Json(v)); }
  bool number_integer(Json::number_integer_t v) { return put(Json(v)); }
  bool number_unsigned(Json::number_unsigned_t v) { return put(Json(v)); }
  bool number_float(Json::number_float_t, const std::string& raw) { return put(make_decimal(raw)); }
  bool string(std::string& v) { return put(Json(std::move(v))); }
  bool binary(Json::binary_t&) { return fail("binary values are not JSON"); }

  bool start_object(std::size_t) {
    if (stack_.size() >= static_cast<std::size_t>(kMaxJsonDepth)) return fail("nesting too deep");
    Json* node = put_container(Json::object());
    if (!node) return false;
    stack_.push_back(Frame{node, {}});
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    if (stack_.size() >= static_cast<std::size_t>(kMaxJsonDepth)) return fail("nesting too deep");
    Json* node = put_container(Json::array());
    if (!node) return false;
    stack_.push_back(Frame{node, {}});
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool key(std::string& k) {
    Frame& f = stack_.back();
    auto& obj = f.node->get_ref<Json::object_t&>();
    if (obj.size() < 16) {
      for (const auto& [existing, _] : obj) {
        if (existing == k) return fail("duplicate property \"" + k + "\"");
      }
      if (obj.size() == 15) {
        f.keys = std::make_unique<std::unordered_set<std::string>>();
        for (const auto& [existing, _] : obj) f.keys->insert(existing);
        f.keys->insert(k);
      }
    } else if (!f.keys->insert(k).second) {
      return fail("duplicate property \"" + k + "\"");
    }
    pending_key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    if (error_.empty()) {
      error_ = ex.what();
      // nlohmann's message starts with "[json.exception.parse_error.101] parse error at ...".
      if (auto pos = error_.find("] "); pos != std::string::npos) error_ = error_.substr(pos + 2);
      offset_ = position;
    }
    return false;
  }

  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }
  const std::string& error() const { return error_; }
  std::size_t offset() const { return offset_; }
  void set_offset(std::size_t o) { offset_ = o; }

 private:
  struct Frame {
    Json* node;
    std::unique_ptr<std::unordered_set<std::string>> keys;
  };

  // Places v in the current container (or as the root) and returns where it lives.
  Json* place(Json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json* parent = stack_.back().node;
    if (parent->is_array()) {
      auto& arr = parent->get_ref<Json::array_t&>();
      arr.push_back(std::move(v));
      return &arr.back();
    }
    auto& obj = static_cast<ObjectVector&>(parent->get_ref<Json::object_t&>());
    obj.emplace_back(std::move(pending_key_), std::move(v));
    return &obj.back().second;
  }
  bool put(Json&& v) {
    place(std::move(v));
    return true;
  }
  Json* put_container(Json&& v) { return place(std::move(v)); }

  Json& root_;
  std::vector<Frame> stack_;
  std::string pending_key_;
  std::string error_;
  std::size_t offset_ = 0;
};

void append_indent(std::string& out, int indent, int level) {
  out.push_back('\n');
  out.append(static_cast<std::size_t>(indent * level), ' ');
}

void dump_rec(std::string& out, const Json& v, int indent, int level) {
  switch (v.type()) {
    case Json::value_t::null:
      out += "null";
      return;
    case Json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return;
    case Json::value_t::number_integer: {
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof buf, v.get<Json::number_integer_t>());
      out.append(buf, r.ptr);
      return;
    }
    case Json::value_t::number_unsigned: {
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof buf, v.get<Json::number_unsigned_t>());
      out.append(buf, r.ptr);
      return;
    }
    case Json::value_t::number_float: {
      // Only produced by code (never by parse_json); shortest round-trip form.
      char buf[64];
      auto r = std::to_chars(buf, buf + sizeof buf, v.get<Json::number_float_t>());
      out.append(buf, r.ptr);
      return;
    }
    case Json::value_t::binary: {
      const auto& b = v.get_binary();
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
      return;
    }
    case Json::value_t::string:
      append_json_string(out, v.get_ref<const std::string&>());
      return;
    case Json::value_t::array: {
      const auto& arr = v.get_ref<const Json::array_t&>();
      out.push_back('[');
      bool first = true;
      for (const auto& e : arr) {
        if (!first) out.push_back(',');
        first = false;
        if (indent >= 0) append_indent(out, indent, level + 1);
        dump_rec(out, e, indent, level + 1);
      }
      if (indent >= 0 && !arr.empty()) append_indent(out, indent, level);
      out.push_back(']');
      return;
    }
    case Json::value_t::object: {
      const auto& obj = v.get_ref<const Json::object_t&>();
      out.push_back('{');
      bool first = true;
      for (const auto& [k, e] : obj) {
        if (!first) out.push_back(',');
        first = false;
        if (indent >= 0) append_indent(out, indent, level + 1);
        append_json_string(out, k);
        out.push_back(':');
        if (indent >= 0) out.push_back(' ');
        dump_rec(out, e, indent, level + 1);
      }
      if (indent >= 0 && !obj.empty()) append_indent(out, indent, level);
      out.push_back('}');
      return;
    }
    case Json::value_t::discarded:
      return;
  }
}

}  // namespace

JsonParseResult parse_json(std::string_view text) {
  JsonParseResult result;
  DomBuilder builder(result.value);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &builder, Json::input_format_t::json, true);
  } catch (const std::exception& e) {
    ok = false;
    builder.fail(e.what());
  }
  if (!ok) {
    result.ok = false;
    result.error = builder.error().empty() ? "invalid JSON" : builder.error();
    result.offset = builder.offset();
    result.value = Json();
    return result;
  }
  result.ok = true;
  return result;
}

namespace {

// Length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates, at
// most U+10FFFF), or 0 when it is invalid.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string printable_ascii(std::string_view s, std::size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  }
  return out;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string_view utf8_prefix(std::string_view s, std::size_t max_chars) {
  std::size_t i = 0;
  for (std::size_t chars = 0; i < s.size() && chars < max_chars; ++chars) {
    const std::size_t n = utf8_sequence(s, i);
    i += n == 0 ? 1 : n;
  }
  return s.substr(0, i);
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void dump_json_to(std::string& out, const Json& value, int indent) {
  dump_rec(out, value, indent, 0);
}

std::string dump_json(const Json& value, int indent) {
  std::string out;
  out.reserve(256);
  dump_rec(out, value, indent, 0);
  return out;
}

bool is_decimal(const Json& value) {
  return value.is_binary() && value.get_binary().has_subtype() && value.get_binary().subtype() == kDecimalSubtype;
}

std::optional<std::string> number_text(const Json& value) {
  if (is_decimal(value)) {
    const auto& b = value.get_binary();
    return std::string(b.begin(), b.end());
  }
  if (value.is_number_integer() || value.is_number_unsigned() || value.is_number_float()) return dump_json(value);
  return std::nullopt;
}

Json make_decimal(std::string_view text) {
  return Json::binary(Json::binary_t::container_type(text.begin(), text.end()), kDecimalSubtype);
}

std::optional<double> number_value(const Json& value) {
  if (value.is_number()) return value.get<double>();
  if (is_decimal(value)) {
    const auto& b = value.get_binary();
    std::string s(b.begin(), b.end());
    double d = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), d);
    if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return d;
  }
  return std::nullopt;
}

std::string string_member(const Json& obj, const char* name) {
  if (!obj.is_object()) return {};
  auto it = obj.find(name);
  return (it != obj.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

Json load_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = parse_json(ss.str());
  if (!parsed.ok) throw std::runtime_error(path + " is not valid JSON: " + parsed.error);
  return std::move(parsed.value);
}

}  // namespace kasama::resources
