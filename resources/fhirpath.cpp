#include "resources/fhirpath.hpp"

#include "resources/fhir_time.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <optional>
#include <unordered_set>

namespace kasama::resources::fhirpath {

// ---------------------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------------------
enum class ExprKind {
  literal,    // value in `literal`, type in `name`
  empty,      // {}
  member,     // name, optional base (args[0] when has_base)
  call,       // name(args...), optional base in `base`
  index,      // base[args[0]]
  binary,     // op, args[0], args[1]
  unary,      // op ("-" / "+"), args[0]
  type_op,    // "is"/"as" with args[0] and type `name`
  this_var,   // $this
  index_var,  // $index
  total_var,  // $total
  ext_const,  // %name
};

struct Expr {
  ExprKind kind;
  std::string name;  // member/function/type/constant name; literal system type
  std::string op;
  std::shared_ptr<const Expr> base;  // member/call/index: what they apply to (null: focus)
  std::vector<std::shared_ptr<const Expr>> args;
  std::shared_ptr<const Json> literal;
};
using ExprPtr = std::shared_ptr<const Expr>;

namespace {

// ---------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------
enum class Tok { end, ident, delimited_ident, string, number, datetime, op, this_var, index_var, total_var, ext_const };

struct Token {
  Tok kind = Tok::end;
  std::string text;
  std::size_t offset = 0;
};

[[noreturn]] void fail(std::size_t offset, const std::string& msg) {
  throw FhirPathError("FHIRPath syntax error at offset " + std::to_string(offset) + ": " + msg);
}

bool ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

std::string unescape(std::string_view s, std::size_t offset) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i >= s.size()) fail(offset, "dangling escape");
    switch (s[i]) {
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'f':
        out += '\f';
        break;
      case 'u': {
        if (i + 4 >= s.size()) fail(offset, "bad \\u escape");
        unsigned cp = 0;
        auto r = std::from_chars(s.data() + i + 1, s.data() + i + 5, cp, 16);
        if (r.ec != std::errc() || r.ptr != s.data() + i + 5) fail(offset, "bad \\u escape");
        i += 4;
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default:
        out += s[i];
        break;  // \' \" \` \\ \/
    }
  }
  return out;
}

std::vector<Token> tokenize(std::string_view s) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (true) {
    while (i < s.size()) {
      if (std::isspace(static_cast<unsigned char>(s[i]))) {
        ++i;
      } else if (s.compare(i, 2, "//") == 0) {
        while (i < s.size() && s[i] != '\n') ++i;
      } else if (s.compare(i, 2, "/*") == 0) {
        auto e = s.find("*/", i + 2);
        if (e == std::string_view::npos) fail(i, "unterminated comment");
        i = e + 2;
      } else {
        break;
      }
    }
    Token t;
    t.offset = i;
    if (i >= s.size()) {
      out.push_back(t);
      return out;
    }
    char c = s[i];
    if (ident_start(c)) {
      std::size_t b = i;
      while (i < s.size() && ident_char(s[i])) ++i;
      t.kind = Tok::ident;
      t.text = std::string(s.substr(b, i - b));
    } else if (c == '`' || c == '\'') {
      std::size_t b = ++i;
      while (i < s.size() && s[i] != c) i += (s[i] == '\\') ? 2 : 1;
      if (i >= s.size()) fail(t.offset, "unterminated literal");
      t.kind = c == '`' ? Tok::delimited_ident : Tok::string;
      t.text = unescape(s.substr(b, i - b), t.offset);
      ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t b = i;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      if (i + 1 < s.size() && s[i] == '.' && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
        ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      }
      t.kind = Tok::number;
      t.text = std::string(s.substr(b, i - b));
    } else if (c == '@') {
      std::size_t b = ++i;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '-' || s[i] == ':' ||
                              s[i] == '.' || s[i] == '+')) {
        // a '.' is part of the literal only when digits follow (fractional seconds)
        if (s[i] == '.' && !(i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) break;
        ++i;
      }
      t.kind = Tok::datetime;
      t.text = std::string(s.substr(b, i - b));
      if (t.text.empty()) fail(t.offset, "empty date/time literal");
      if (t.text[0] == 'T' && t.text.find_first_of("Z+-") != std::string::npos)
        fail(t.offset, "a time literal cannot have a timezone");
    } else if (c == '$') {
      std::size_t b = ++i;
      while (i < s.size() && ident_char(s[i])) ++i;
      auto name = s.substr(b, i - b);
      if (name == "this")
        t.kind = Tok::this_var;
      else if (name == "index")
        t.kind = Tok::index_var;
      else if (name == "total")
        t.kind = Tok::total_var;
      else
        fail(t.offset, "unknown variable $" + std::string(name));
    } else if (c == '%') {
      ++i;
      t.kind = Tok::ext_const;
      if (i < s.size() && (s[i] == '`' || s[i] == '\'')) {
        char q = s[i];
        std::size_t b = ++i;
        while (i < s.size() && s[i] != q) ++i;
        if (i >= s.size()) fail(t.offset, "unterminated constant name");
        t.text = std::string(s.substr(b, i - b));
        ++i;
      } else {
        std::size_t b = i;
        while (i < s.size() && (ident_char(s[i]) || s[i] == '-')) ++i;
        t.text = std::string(s.substr(b, i - b));
      }
      if (t.text.empty()) fail(t.offset, "empty constant name");
    } else {
      static const char* const two[] = {"!=", "!~", "<=", ">="};
      t.kind = Tok::op;
      for (const char* o : two) {
        if (s.compare(i, 2, o) == 0) t.text = o;
      }
      if (t.text.empty()) {
        if (std::string_view("().,[]{}|+-*/&=~<>").find(c) == std::string_view::npos)
          fail(i, std::string("unexpected character '") + c + "'");
        t.text = std::string(1, c);
      }
      i += t.text.size();
    }
    out.push_back(std::move(t));
    if (out.size() > 10000) fail(t.offset, "expression too long");
  }
}

// ---------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------
const std::unordered_set<std::string>& known_functions() {
  static const std::unordered_set<std::string> f = {"empty",
                                                    "exists",
                                                    "all",
                                                    "allTrue",
                                                    "anyTrue",
                                                    "allFalse",
                                                    "anyFalse",
                                                    "subsetOf",
                                                    "supersetOf",
                                                    "count",
                                                    "distinct",
                                                    "isDistinct",
                                                    "where",
                                                    "select",
                                                    "repeat",
                                                    "ofType",
                                                    "as",
                                                    "is",
                                                    "single",
                                                    "first",
                                                    "last",
                                                    "tail",
                                                    "skip",
                                                    "take",
                                                    "intersect",
                                                    "exclude",
                                                    "union",
                                                    "combine",
                                                    "iif",
                                                    "toInteger",
                                                    "toDecimal",
                                                    "toString",
                                                    "toBoolean",
                                                    "convertsToInteger",
                                                    "convertsToDecimal",
                                                    "convertsToString",
                                                    "convertsToBoolean",
                                                    "indexOf",
                                                    "substring",
                                                    "startsWith",
                                                    "endsWith",
                                                    "contains",
                                                    "upper",
                                                    "lower",
                                                    "replace",
                                                    "length",
                                                    "toChars",
                                                    "not",
                                                    "children",
                                                    "descendants",
                                                    "trace",
                                                    "extension",
                                                    "resolve",
                                                    "hasValue",
                                                    "abs",
                                                    "ceiling",
                                                    "floor",
                                                    "round",
                                                    "truncate",
                                                    "trim",
                                                    "getValue",
                                                    "join",
                                                    "power",
                                                    "exp",
                                                    "sqrt",
                                                    "ln",
                                                    "log",
                                                    "split",
                                                    "aggregate",
                                                    "now",
                                                    "today",
                                                    "toDate",
                                                    "toDateTime",
                                                    "toTime",
                                                    "convertsToDate",
                                                    "convertsToDateTime",
                                                    "convertsToTime"};
  return f;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  ExprPtr parse_all() {
    auto e = expression(0);
    if (peek().kind != Tok::end) fail(peek().offset, "unexpected '" + peek().text + "'");
    return e;
  }

 private:
  std::vector<Token> t_;
  std::size_t p_ = 0;
  int depth_ = 0;
  int unary_depth_ = 0;

  const Token& peek(std::size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  Token next() { return t_[p_ < t_.size() - 1 ? p_++ : p_]; }
  bool is_op(const char* o, std::size_t k = 0) const { return peek(k).kind == Tok::op && peek(k).text == o; }
  void expect(const char* o) {
    if (!is_op(o)) fail(peek().offset, std::string("expected '") + o + "'");
    ++p_;
  }

  // Levels: implies 1, or/xor 2, and 3, in/contains 4, equality 5, comparison 6, | 7,
  // is/as 8, additive 9, multiplicative 10.
  static int binary_level(const Token& t) {
    if (t.kind == Tok::op) {
      const auto& o = t.text;
      if (o == "*" || o == "/") return 10;
      if (o == "+" || o == "-" || o == "&") return 9;
      if (o == "|") return 7;
      if (o == "<" || o == ">" || o == "<=" || o == ">=") return 6;
      if (o == "=" || o == "~" || o == "!=" || o == "!~") return 5;
      return 0;
    }
    if (t.kind == Tok::ident) {
      const auto& o = t.text;
      if (o == "div" || o == "mod") return 10;
      if (o == "is" || o == "as") return 8;
      if (o == "in" || o == "contains") return 4;
      if (o == "and") return 3;
      if (o == "or" || o == "xor") return 2;
      if (o == "implies") return 1;
    }
    return 0;
  }

  ExprPtr expression(int min_level) {
    if (++depth_ > 200) fail(peek().offset, "expression nested too deeply");
    auto lhs = unary();
    while (true) {
      int lv = binary_level(peek());
      if (lv == 0 || lv < min_level) break;
      Token op = next();
      auto e = std::make_shared<Expr>();
      if (op.kind == Tok::ident && (op.text == "is" || op.text == "as")) {
        e->kind = ExprKind::type_op;
        e->op = op.text;
        e->name = type_specifier();
        e->args.push_back(lhs);
      } else {
        e->kind = ExprKind::binary;
        e->op = op.text;
        e->args.push_back(lhs);
        e->args.push_back(expression(lv + 1));
      }
      lhs = e;
    }
    --depth_;
    return lhs;
  }

  std::string type_specifier() {
    Token a = next();
    if (a.kind != Tok::ident && a.kind != Tok::delimited_ident) fail(a.offset, "expected a type name");
    std::string name = a.text;
    if (is_op(".") && (peek(1).kind == Tok::ident || peek(1).kind == Tok::delimited_ident)) {
      ++p_;
      name += "." + next().text;
    }
    return name;
  }

  ExprPtr unary() {
    if (is_op("-") || is_op("+")) {
      if (++unary_depth_ > 200) fail(peek().offset, "too many unary operators");
      Token op = next();
      auto e = std::make_shared<Expr>();
      e->kind = ExprKind::unary;
      e->op = op.text;
      e->args.push_back(unary());
      return e;
    }
    return postfix(term());
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        ++p_;
        e = invocation(e);
      } else if (is_op("[")) {
        ++p_;
        auto ix = std::make_shared<Expr>();
        ix->kind = ExprKind::index;
        ix->base = e;
        ix->args.push_back(expression(0));
        expect("]");
        e = ix;
      } else {
        return e;
      }
    }
  }

  ExprPtr invocation(ExprPtr base) {
    Token t = next();
    auto e = std::make_shared<Expr>();
    e->base = base;
    if (t.kind == Tok::this_var || t.kind == Tok::index_var || t.kind == Tok::total_var) {
      e->kind = t.kind == Tok::this_var    ? ExprKind::this_var
                : t.kind == Tok::index_var ? ExprKind::index_var
                                           : ExprKind::total_var;
      return e;
    }
    if (t.kind != Tok::ident && t.kind != Tok::delimited_ident) fail(t.offset, "expected a name");
    e->name = t.text;
    if (t.kind == Tok::ident && is_op("(")) {
      ++p_;
      e->kind = ExprKind::call;
      if (!known_functions().count(e->name)) fail(t.offset, "unsupported function '" + e->name + "()'");
      if (!is_op(")")) {
        while (true) {
          e->args.push_back(expression(0));
          if (is_op(",")) {
            ++p_;
            continue;
          }
          break;
        }
      }
      expect(")");
      // ofType/as/is take a type specifier: keep it as the name of a member expression
      if ((e->name == "ofType" || e->name == "as" || e->name == "is") && e->args.size() == 1) {
        const Expr& a = *e->args[0];
        std::string type;
        if (a.kind == ExprKind::member && !a.base)
          type = a.name;
        else if (a.kind == ExprKind::member && a.base && a.base->kind == ExprKind::member && !a.base->base)
          type = a.base->name + "." + a.name;
        else
          fail(t.offset, e->name + "() needs a type name");
        auto ty = std::make_shared<Expr>();
        ty->kind = ExprKind::literal;
        ty->name = type;
        e->args[0] = ty;
      }
    } else {
      e->kind = ExprKind::member;
    }
    return e;
  }

  ExprPtr term() {
    const Token& t = peek();
    auto e = std::make_shared<Expr>();
    switch (t.kind) {
      case Tok::string:
        e->kind = ExprKind::literal;
        e->name = "System.String";
        e->literal = std::make_shared<Json>(next().text);
        return e;
      case Tok::number: {
        Token n = next();
        e->kind = ExprKind::literal;
        if (peek().kind == Tok::string || (peek().kind == Tok::ident && is_calendar_unit(peek().text))) {
          // quantity literal: 4 'mg', 3 days
          Token u = next();
          Json q = Json::object();
          q["value"] = n.text.find('.') == std::string::npos ? Json(std::stoll(n.text)) : make_decimal(n.text);
          q["unit"] = u.text;
          q["code"] = u.text;
          e->name = "Quantity";
          e->literal = std::make_shared<Json>(std::move(q));
          return e;
        }
        if (n.text.find('.') == std::string::npos) {
          long long v = 0;
          auto r = std::from_chars(n.text.data(), n.text.data() + n.text.size(), v);
          if (r.ec != std::errc()) fail(n.offset, "integer out of range");
          e->name = "System.Integer";
          e->literal = std::make_shared<Json>(v);
        } else {
          e->name = "System.Decimal";
          e->literal = std::make_shared<Json>(make_decimal(n.text));
        }
        return e;
      }
      case Tok::datetime: {
        Token d = next();
        e->kind = ExprKind::literal;
        std::string v = d.text;
        if (v[0] == 'T') {
          e->name = "System.Time";
          v = v.substr(1);
        } else if (v.find('T') != std::string::npos) {
          e->name = "System.DateTime";
          if (v.back() == 'T') v.pop_back();
        } else {
          e->name = "System.Date";
        }
        e->literal = std::make_shared<Json>(v);
        return e;
      }
      case Tok::this_var:
        next();
        e->kind = ExprKind::this_var;
        return e;
      case Tok::index_var:
        next();
        e->kind = ExprKind::index_var;
        return e;
      case Tok::total_var:
        next();
        e->kind = ExprKind::total_var;
        return e;
      case Tok::ext_const:
        e->kind = ExprKind::ext_const;
        e->name = next().text;
        return e;
      case Tok::ident:
        if (t.text == "true" || t.text == "false") {
          e->kind = ExprKind::literal;
          e->name = "System.Boolean";
          e->literal = std::make_shared<Json>(next().text == "true");
          return e;
        }
        return invocation(nullptr);
      case Tok::delimited_ident:
        return invocation(nullptr);
      case Tok::op:
        if (t.text == "(") {
          ++p_;
          auto inner = expression(0);
          expect(")");
          return inner;
        }
        if (t.text == "{") {
          ++p_;
          expect("}");
          e->kind = ExprKind::empty;
          return e;
        }
        fail(t.offset, "unexpected '" + t.text + "'");
      case Tok::end:
        fail(t.offset, "unexpected end of expression");
    }
    fail(t.offset, "unexpected token");
  }

  static bool is_calendar_unit(const std::string& s) {
    static const std::unordered_set<std::string> u = {
        "year", "years", "month",  "months",  "week",   "weeks",   "day",         "days",
        "hour", "hours", "minute", "minutes", "second", "seconds", "millisecond", "milliseconds"};
    return u.count(s) > 0;
  }
};

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------
const TypeModel& model() {
  return TypeModel::instance();
}

Node make_value(Json v, std::string type) {
  Node n;
  auto p = std::make_shared<const Json>(std::move(v));
  n.value = p.get();
  n.owned = std::move(p);
  n.type = std::move(type);
  return n;
}
Node make_bool(bool b) {
  return make_value(Json(b), "System.Boolean");
}
Node make_string(std::string s) {
  return make_value(Json(std::move(s)), "System.String");
}
Node make_int(long long v) {
  return make_value(Json(v), "System.Integer");
}
Node make_decimal_node(double d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", d);
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return make_value(make_decimal(s), "System.Decimal");
}

Collection single_bool(bool b) {
  return {make_bool(b)};
}

bool is_primitive_value(const Node& n) {
  return n.value && (n.value->is_string() || n.value->is_boolean() || n.value->is_number() || is_decimal(*n.value));
}
bool is_number(const Node& n) {
  return n.value && (n.value->is_number() || is_decimal(*n.value));
}
bool is_integer(const Node& n) {
  return n.value && n.value->is_number_integer();
}

std::string base_type_name(std::string_view t) {
  if (t.substr(0, 5) == "FHIR.") return std::string(t.substr(5));
  return std::string(t);
}

// Does the node's type match the type specifier (FHIR.X, System.X or bare)?
// `is` accepts derived primitives (code is a string); as()/ofType() match primitives exactly.
bool type_matches(const Node& n, const std::string& spec, bool is_test = false) {
  if (n.type.empty()) return false;
  std::string want = base_type_name(spec);
  if (n.type == want) return true;
  static const std::unordered_set<std::string> system_names = {"Boolean", "String",   "Integer", "Decimal",
                                                               "Date",    "DateTime", "Time",    "Quantity"};
  if (!model().find_type(want) && !system_names.count(want) && want.rfind("System.", 0) != 0)
    throw FhirPathError("unknown type '" + spec + "'");
  if (!is_test && !n.type.empty() && want.size() > 1 && std::isupper(static_cast<unsigned char>(want[0])) &&
      std::islower(static_cast<unsigned char>(n.type[0]))) {
    // as(DateTime) on a FHIR dateTime: R4 search parameters write the System name
    // ("value.as(DateTime)"), so casts accept the FHIR primitive of the same name.
    std::string lowered = want;
    lowered[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(lowered[0])));
    if (lowered == n.type) return true;
  }
  if (n.type.rfind("System.", 0) == 0) {
    // bare System names: Boolean, String, Integer, Decimal, Date, DateTime, Time
    return n.type == "System." + want;
  }
  if (want.rfind("System.", 0) == 0) return false;
  const TypeInfo* wt = model().find_type(want);
  if (!wt) return false;
  if (wt->kind == TypeKind::primitive && !is_test) return false;
  const TypeInfo* ti = model().find_type(n.type);
  return ti && ti->is_a(want);
}

std::optional<bool> as_bool(const Node& n) {
  if (n.value && n.value->is_boolean()) return n.value->get<bool>();
  return std::nullopt;
}

// Singleton evaluation of a collection as a boolean: empty -> nullopt.
std::optional<bool> truth(const Collection& c, const char* what) {
  if (c.empty()) return std::nullopt;
  if (c.size() > 1)
    throw FhirPathError(std::string(what) + ": expected a single value, got " + std::to_string(c.size()));
  if (auto b = as_bool(c[0])) return b;
  return true;  // a single non-boolean item is true (singleton evaluation)
}

std::optional<std::string> str_of(const Node& n) {
  if (n.value && n.value->is_string()) return n.value->get<std::string>();
  return std::nullopt;
}

const Json* object_of(const Node& n) {
  if (n.value && n.value->is_object()) return n.value;
  if (n.ext && n.ext->is_object()) return n.ext;
  return nullptr;
}

void push_child(Collection& out, const Node& parent, const Json* v, const Json* ext, const ChildMatch& m) {
  Node n;
  n.owned = parent.owned;  // children of a computed value share its lifetime
  n.value = v;
  n.ext = ext && ext->is_object() ? ext : nullptr;
  if (m) {
    n.type = m.type ? m.type->code : std::string();
    n.context = m.context;
  }
  if (v && v->is_object() && v->contains("resourceType") && (*v)["resourceType"].is_string()) {
    const auto& rt = (*v)["resourceType"].get_ref<const std::string&>();
    if (!m || !m.context) {
      n.type = rt;
      n.context = model().find_context(rt);
    }
  }
  out.push_back(std::move(n));
}

// Children named `name` of one node (choice elements: `value` finds valueQuantity...).
void children_named(const Node& n, const std::string& name, Collection& out) {
  const Json* obj = object_of(n);
  if (!obj) return;
  for (auto it = obj->begin(); it != obj->end(); ++it) {
    const std::string& key = it.key();
    if (key.empty() || key == "resourceType") continue;
    bool underscore = key[0] == '_';
    std::string base = underscore ? key.substr(1) : key;
    if (underscore && obj->contains(base)) continue;  // handled with its value
    ChildMatch m;
    if (n.context) m = model().child(*n.context, base);
    bool hit = m ? m.element->name == name : base == name;
    if (!hit) continue;
    const Json* val = underscore ? nullptr : &it.value();
    const Json* ext = nullptr;
    if (!underscore) {
      auto e = obj->find("_" + key);
      if (e != obj->end()) ext = &e.value();
    } else {
      ext = &it.value();
    }
    if ((val && val->is_array()) || (!val && ext && ext->is_array())) {
      std::size_t count = val ? val->size() : ext->size();
      for (std::size_t i = 0; i < count; ++i) {
        const Json* v = val ? &(*val)[i] : nullptr;
        if (v && v->is_null()) v = nullptr;
        const Json* x = ext && ext->is_array() && i < ext->size() ? &(*ext)[i] : nullptr;
        if (x && x->is_null()) x = nullptr;
        if (!v && !x) continue;
        push_child(out, n, v, x, m);
      }
    } else {
      push_child(out, n, val, ext, m);
    }
  }
}

void all_children(const Node& n, Collection& out) {
  const Json* obj = object_of(n);
  if (!obj) return;
  std::vector<std::string> names;
  for (auto it = obj->begin(); it != obj->end(); ++it) {
    std::string base = it.key();
    if (base == "resourceType" || base.empty()) continue;
    if (base[0] == '_') {
      if (obj->contains(base.substr(1))) continue;
      base = base.substr(1);
    }
    std::string name = base;
    if (n.context) {
      if (auto m = model().child(*n.context, base)) name = m.element->name;
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  for (const auto& nm : names) children_named(n, nm, out);
}

int compare_numbers(double a, double b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

std::string number_string(const Json& v) {
  if (auto t = number_text(v)) return *t;
  return {};
}

std::optional<std::string> to_text(const Node& n) {
  if (!n.value) return std::nullopt;
  const Json& v = *n.value;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number() || is_decimal(v)) return number_string(v);
  if (n.type == "Quantity" && v.is_object() && v.contains("value")) {
    std::string s = number_string(v["value"]);
    if (v.contains("unit") && v["unit"].is_string()) s += " '" + v["unit"].get<std::string>() + "'";
    return s;
  }
  return std::nullopt;
}

bool is_temporal_type(const std::string& t) {
  return t == "System.Date" || t == "System.DateTime" || t == "System.Time" || t == "date" || t == "dateTime" ||
         t == "instant" || t == "time";
}

// A date/dateTime/time value as milliseconds with its precision (1 year .. 6 second; a
// fraction counts as seconds, per FHIRPath) and whether it carried a timezone.
struct Temporal {
  std::int64_t ms = 0;
  int precision = 0;
  bool has_tz = false;
};

std::optional<Temporal> parse_temporal(const std::string& s, bool time_only) {
  Temporal t;
  std::size_t i = 0;
  auto digits = [&](std::size_t n, int& out) {
    if (i + n > s.size()) return false;
    out = 0;
    for (std::size_t k = 0; k < n; ++k) {
      char c = s[i + k];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    i += n;
    return true;
  };
  int y = 1970, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0;
  if (!time_only) {
    if (!digits(4, y)) return std::nullopt;
    t.precision = 1;
    if (i < s.size() && s[i] == '-') {
      ++i;
      if (!digits(2, mo)) return std::nullopt;
      t.precision = 2;
      if (i < s.size() && s[i] == '-') {
        ++i;
        if (!digits(2, d)) return std::nullopt;
        t.precision = 3;
      }
    }
    if (i < s.size() && s[i] == 'T')
      ++i;
    else if (i < s.size() && s[i] != 'Z' && s[i] != '+' && s[i] != '-')
      return std::nullopt;
  }
  if (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (!digits(2, h)) return std::nullopt;
    t.precision = 4;
    if (i < s.size() && s[i] == ':') {
      ++i;
      if (!digits(2, mi)) return std::nullopt;
      t.precision = 5;
      if (i < s.size() && s[i] == ':') {
        ++i;
        if (!digits(2, sec)) return std::nullopt;
        t.precision = 6;
        if (i < s.size() && s[i] == '.') {
          ++i;
          int scale = 100;
          std::size_t b = i;
          while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            ms += (s[i] - '0') * scale;
            scale /= 10;
            ++i;
          }
          if (i == b) return std::nullopt;
        }
      }
    }
  }
  int offset_min = 0;
  if (i < s.size()) {
    if (s[i] == 'Z') {
      ++i;
      t.has_tz = true;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i] == '-' ? -1 : 1;
      ++i;
      int oh = 0, om = 0;
      if (!digits(2, oh) || i >= s.size() || s[i] != ':') return std::nullopt;
      ++i;
      if (!digits(2, om)) return std::nullopt;
      offset_min = sign * (oh * 60 + om);
      t.has_tz = true;
    }
  }
  if (i != s.size() || t.precision == 0) return std::nullopt;
  std::int64_t days = time_only ? 0 : days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  t.ms = ((days * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL + ms - offset_min * 60000LL;
  return t;
}

bool is_time_type(const std::string& t) {
  return t == "System.Time" || t == "time";
}

// -1/0/1, or nullopt when the precisions (or timezone presence) make it unknown.
std::optional<int> compare_temporal(const Node& a, const Node& b) {
  const auto& x = a.value->get_ref<const std::string&>();
  const auto& y = b.value->get_ref<const std::string&>();
  bool ta = is_time_type(a.type), tb = is_time_type(b.type);
  auto pa = parse_temporal(x, ta), pb = parse_temporal(y, tb);
  if (!pa || !pb || ta != tb) {
    int c = x.compare(y);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (pa->precision == pb->precision && (pa->has_tz == pb->has_tz || pa->precision <= 3)) {
    return pa->ms < pb->ms ? -1 : pa->ms > pb->ms ? 1 : 0;
  }
  if (pa->has_tz != pb->has_tz && std::min(pa->precision, pb->precision) > 3) return std::nullopt;
  // different precisions: decided only where the common prefix differs
  static const std::size_t prefix_len[] = {0, 4, 7, 10, 13, 16, 19};
  std::size_t n = prefix_len[std::min(pa->precision, pb->precision)];
  if (ta) n -= 11;
  int c = x.compare(0, n, y, 0, n);
  if (c == 0) return std::nullopt;
  return c < 0 ? -1 : 1;
}

bool is_quantity(const Node& n) {
  if (!n.value || !n.value->is_object() || n.type.empty()) return false;
  const TypeInfo* ti = model().find_type(n.type);
  return ti && ti->is_a("Quantity");
}

std::string quantity_unit(const Json& q) {
  for (const char* k : {"code", "unit"}) {
    auto it = q.find(k);
    if (it != q.end() && it->is_string()) return it->get<std::string>();
  }
  return "1";
}

// Quantities with the same unit compare by value; unit conversion is not supported.
std::optional<int> compare_quantities(const Node& a, const Node& b) {
  auto va = a.value->find("value"), vb = b.value->find("value");
  if (va == a.value->end() || vb == b.value->end()) return std::nullopt;
  auto ua = quantity_unit(*a.value), ub = quantity_unit(*b.value);
  if (ua != ub)
    throw FhirPathError("unsupported: comparing quantities in different units ('" + ua + "', '" + ub + "')");
  auto x = number_value(*va), y = number_value(*vb);
  if (!x || !y) return std::nullopt;
  return *x < *y ? -1 : *x > *y ? 1 : 0;
}

// Equality of two items: nullopt when not comparable (different date precision).
std::optional<bool> item_equal(const Node& a, const Node& b) {
  if (!a.value || !b.value) return false;
  if (is_number(a) && is_number(b)) return *number_value(*a.value) == *number_value(*b.value);
  if (a.value->is_string() && b.value->is_string()) {
    const auto& x = a.value->get_ref<const std::string&>();
    const auto& y = b.value->get_ref<const std::string&>();
    if (is_temporal_type(a.type) && is_temporal_type(b.type)) {
      auto c = compare_temporal(a, b);
      if (!c) return std::nullopt;
      return *c == 0;
    }
    return x == y;
  }
  if (a.value->is_boolean() && b.value->is_boolean()) return a.value->get<bool>() == b.value->get<bool>();
  if (a.value->is_object() && b.value->is_object()) {
    if (is_quantity(a) && is_quantity(b)) {
      // Different units are not comparable without conversion: equality is empty (not an
      // error), so union and distinct keep both.
      if (quantity_unit(*a.value) != quantity_unit(*b.value)) return std::nullopt;
      auto c = compare_quantities(a, b);
      if (!c) return std::nullopt;
      return *c == 0;
    }
    return *a.value == *b.value;
  }
  return false;
}

std::string normalize_ws(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool item_equivalent(const Node& a, const Node& b) {
  if (!a.value || !b.value) return false;
  if (is_number(a) && is_number(b)) {
    // equivalence at the precision of the less precise operand
    auto ta = number_string(*a.value), tb = number_string(*b.value);
    auto decimals = [](const std::string& s) {
      auto d = s.find('.');
      return d == std::string::npos ? 0 : static_cast<int>(s.size() - d - 1);
    };
    int p = std::min(decimals(ta), decimals(tb));
    double scale = std::pow(10.0, p);
    return std::round(*number_value(*a.value) * scale) == std::round(*number_value(*b.value) * scale);
  }
  if (is_temporal_type(a.type) && is_temporal_type(b.type) && a.value->is_string() && b.value->is_string()) {
    auto c = compare_temporal(a, b);
    return c && *c == 0;
  }
  if (a.value->is_string() && b.value->is_string())
    return normalize_ws(a.value->get<std::string>()) == normalize_ws(b.value->get<std::string>());
  if (auto e = item_equal(a, b)) return *e;
  return false;
}

bool contains_item(const Collection& c, const Node& n) {
  for (const auto& x : c) {
    if (auto e = item_equal(x, n); e && *e) return true;
  }
  return false;
}

Collection distinct(const Collection& c) {
  Collection out;
  for (const auto& n : c) {
    if (!contains_item(out, n)) out.push_back(n);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Evaluator
// ---------------------------------------------------------------------------------------
struct Env {
  const Json* root = nullptr;
  Collection root_node;
  Collection context;
};

struct Focus {
  const Collection* input;  // the focus the expression applies to
  const Node* this_item;    // $this (null at top level: input)
  long long index = -1;     // $index
  const Collection* total = nullptr;
};

class Evaluator {
 public:
  explicit Evaluator(Env& env) : env_(env) {}

  Collection eval(const Expr& e, const Focus& f) {
    if (++depth_ > 400) throw FhirPathError("FHIRPath evaluation nested too deeply");
    struct Guard {
      int& d;
      ~Guard() { --d; }
    } g{depth_};
    switch (e.kind) {
      case ExprKind::literal: {
        Node n;
        n.value = e.literal.get();
        n.owned = e.literal;
        n.type = e.name;
        return {n};
      }
      case ExprKind::empty:
        return {};
      case ExprKind::this_var:
        if (e.base) throw FhirPathError("$this cannot follow '.'");
        if (f.this_item) return {*f.this_item};
        return *f.input;
      case ExprKind::index_var:
        if (f.index < 0) return {};
        return {make_int(f.index)};
      case ExprKind::total_var:
        if (f.total) return *f.total;
        return {};
      case ExprKind::ext_const:
        return constant(e.name);
      case ExprKind::member: {
        if (e.base) {
          Collection in = eval(*e.base, f);
          Collection out;
          for (const auto& n : in) children_named(n, e.name, out);
          return out;
        }
        const Collection& in = focus_collection(f);
        // A leading type name (Patient.name): selects the focus items of that type.
        if (!e.name.empty() && std::isupper(static_cast<unsigned char>(e.name[0])) &&
            model().find_type(e.name) != nullptr) {
          Collection out;
          bool any_child = false;
          for (const auto& n : in) {
            if (type_matches(n, e.name))
              out.push_back(n);
            else
              any_child = true;
          }
          if (!any_child || !out.empty()) return out;
          // otherwise fall through: it is an element name (rare: capitalised elements)
          out.clear();
          for (const auto& n : in) children_named(n, e.name, out);
          return out;
        }
        Collection out;
        for (const auto& n : in) children_named(n, e.name, out);
        return out;
      }
      case ExprKind::index: {
        Collection in = eval(*e.base, f);
        Collection ix = eval(*e.args[0], f);
        if (ix.empty()) return {};
        if (ix.size() != 1 || !is_integer(ix[0])) throw FhirPathError("indexer needs an integer");
        long long i = ix[0].value->get<long long>();
        if (i < 0 || static_cast<std::size_t>(i) >= in.size()) return {};
        return {in[static_cast<std::size_t>(i)]};
      }
      case ExprKind::call: {
        if (e.base) {
          Collection in = eval(*e.base, f);
          return call(e, in, f);
        }
        return call(e, focus_collection(f), f);
      }
      case ExprKind::type_op: {
        Collection in = eval(*e.args[0], f);
        if (e.op == "is") {
          if (in.empty()) return {};
          if (in.size() > 1) throw FhirPathError("'is' needs a single item");
          return single_bool(type_matches(in[0], e.name, true));
        }
        Collection out;
        for (const auto& n : in)
          if (type_matches(n, e.name)) out.push_back(n);
        return out;
      }
      case ExprKind::unary: {
        Collection in = eval(*e.args[0], f);
        if (e.op == "+") return in;
        if (in.empty()) return {};
        if (in.size() == 1 && is_quantity(in[0])) throw FhirPathError("unsupported: unary '-' on a quantity");
        if (in.size() != 1 || !is_number(in[0])) throw FhirPathError("unary '-' needs a single number");
        if (is_integer(in[0])) return {make_int(-in[0].value->get<long long>())};
        std::string t = number_string(*in[0].value);
        t = t[0] == '-' ? t.substr(1) : "-" + t;
        return {make_value(make_decimal(t), "System.Decimal")};
      }
      case ExprKind::binary:
        return binary(e, f);
    }
    return {};
  }

 private:
  Env& env_;
  int depth_ = 0;

  static const Collection& focus_collection(const Focus& f) { return *f.input; }

  Collection constant(const std::string& name) {
    if (name == "resource" || name == "rootResource") return env_.root_node;
    if (name == "context") return env_.context;
    if (name == "ucum") return {make_string("http://unitsofmeasure.org")};
    if (name == "sct") return {make_string("http://snomed.info/sct")};
    if (name == "loinc") return {make_string("http://loinc.org")};
    if (name.rfind("vs-", 0) == 0) return {make_string("http://hl7.org/fhir/ValueSet/" + name.substr(3))};
    if (name.rfind("ext-", 0) == 0) return {make_string("http://hl7.org/fhir/StructureDefinition/" + name.substr(4))};
    throw FhirPathError("unknown external constant %" + name);
  }

  // Evaluates an argument for each item with $this = item.
  Collection eval_with(const Expr& arg, const Node& item, long long index, const Collection* total = nullptr) {
    Collection in{item};
    Focus f{&in, &item, index, total};
    return eval(arg, f);
  }

  // Evaluates an argument in the caller's context (not per item).
  Collection eval_arg(const Expr& arg, const Focus& f) { return eval(arg, f); }

  static void arity(const Expr& e, std::size_t lo, std::size_t hi) {
    if (e.args.size() < lo || e.args.size() > hi)
      throw FhirPathError(e.name + "() takes " +
                          (lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi)) +
                          " argument(s), got " + std::to_string(e.args.size()));
  }

  static const Node& single(const Collection& c, const std::string& fn) {
    if (c.size() != 1) throw FhirPathError(fn + "(): expected a single input item, got " + std::to_string(c.size()));
    return c[0];
  }

  std::optional<std::string> string_arg(const Expr& e, std::size_t i, const Focus& f) {
    Collection a = eval_arg(*e.args[i], f);
    if (a.empty()) return std::nullopt;
    if (a.size() != 1) throw FhirPathError(e.name + "(): argument must be a single value");
    auto s = to_text(a[0]);
    if (!s) throw FhirPathError(e.name + "(): argument must be a string");
    return s;
  }

  std::optional<long long> int_arg(const Expr& e, std::size_t i, const Focus& f) {
    Collection a = eval_arg(*e.args[i], f);
    if (a.empty()) return std::nullopt;
    if (a.size() != 1 || !is_integer(a[0])) throw FhirPathError(e.name + "(): argument must be an integer");
    return a[0].value->get<long long>();
  }

  // The input as a single string (empty input -> nullopt).
  static std::optional<std::string> string_input(const Collection& in, const std::string& fn) {
    if (in.empty()) return std::nullopt;
    const Node& n = single(in, fn);
    auto s = str_of(n);
    if (!s) throw FhirPathError(fn + "(): input is not a string");
    return s;
  }

  Collection call(const Expr& e, const Collection& in, const Focus& f) {
    const std::string& fn = e.name;
    if (fn == "empty") {
      arity(e, 0, 0);
      return single_bool(in.empty());
    }
    if (fn == "exists") {
      arity(e, 0, 1);
      if (e.args.empty()) return single_bool(!in.empty());
      return single_bool(!where(e, in).empty());
    }
    if (fn == "where") {
      arity(e, 1, 1);
      return where(e, in);
    }
    if (fn == "all") {
      arity(e, 1, 1);
      for (std::size_t i = 0; i < in.size(); ++i) {
        auto r = truth(eval_with(*e.args[0], in[i], static_cast<long long>(i)), "all()");
        if (!r || !*r) return single_bool(false);
      }
      return single_bool(true);
    }
    if (fn == "allTrue" || fn == "anyTrue" || fn == "allFalse" || fn == "anyFalse") {
      arity(e, 0, 0);
      bool want = fn == "allTrue" || fn == "anyTrue";
      bool all = fn.rfind("all", 0) == 0;
      for (const auto& n : in) {
        auto b = as_bool(n);
        if (!b) throw FhirPathError(fn + "(): input must be booleans");
        if (all && *b != want) return single_bool(false);
        if (!all && *b == want) return single_bool(true);
      }
      return single_bool(all);
    }
    if (fn == "select") {
      arity(e, 1, 1);
      Collection out;
      for (std::size_t i = 0; i < in.size(); ++i) {
        auto r = eval_with(*e.args[0], in[i], static_cast<long long>(i));
        out.insert(out.end(), r.begin(), r.end());
      }
      return out;
    }
    if (fn == "repeat") {
      arity(e, 1, 1);
      Collection out, frontier = in;
      std::size_t guard = 0;
      while (!frontier.empty()) {
        Collection next;
        for (const auto& n : frontier) {
          for (auto& r : eval_with(*e.args[0], n, -1)) {
            if (!contains_item(out, r)) {
              out.push_back(r);
              next.push_back(r);
            }
          }
        }
        frontier = std::move(next);
        if (++guard > 10000 || out.size() > 100000) throw FhirPathError("repeat(): too many iterations");
      }
      return out;
    }
    if (fn == "ofType" || fn == "as") {
      arity(e, 1, 1);
      const std::string& t = e.args[0]->name;
      Collection out;
      for (const auto& n : in)
        if (type_matches(n, t)) out.push_back(n);
      return out;
    }
    if (fn == "is") {
      arity(e, 1, 1);
      if (in.empty()) return {};
      return single_bool(type_matches(single(in, fn), e.args[0]->name, true));
    }
    if (fn == "count") {
      arity(e, 0, 0);
      return {make_int(static_cast<long long>(in.size()))};
    }
    if (fn == "distinct") {
      arity(e, 0, 0);
      return distinct(in);
    }
    if (fn == "isDistinct") {
      arity(e, 0, 0);
      return single_bool(distinct(in).size() == in.size());
    }
    if (fn == "single") {
      arity(e, 0, 0);
      if (in.size() > 1) throw FhirPathError("single(): input has " + std::to_string(in.size()) + " items");
      return in;
    }
    if (fn == "first") {
      arity(e, 0, 0);
      return in.empty() ? Collection{} : Collection{in.front()};
    }
    if (fn == "last") {
      arity(e, 0, 0);
      return in.empty() ? Collection{} : Collection{in.back()};
    }
    if (fn == "tail") {
      arity(e, 0, 0);
      return in.size() <= 1 ? Collection{} : Collection(in.begin() + 1, in.end());
    }
    if (fn == "skip" || fn == "take") {
      arity(e, 1, 1);
      auto k = int_arg(e, 0, f);
      if (!k) return {};
      std::size_t n = *k < 0 ? 0 : std::min(static_cast<std::size_t>(*k), in.size());
      if (fn == "skip") return Collection(in.begin() + static_cast<std::ptrdiff_t>(n), in.end());
      return Collection(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
    }
    if (fn == "union" || fn == "combine" || fn == "intersect" || fn == "exclude" || fn == "subsetOf" ||
        fn == "supersetOf") {
      arity(e, 1, 1);
      Collection other = eval_arg(*e.args[0], f);
      if (fn == "union") {
        Collection all = in;
        all.insert(all.end(), other.begin(), other.end());
        return distinct(all);
      }
      if (fn == "combine") {
        Collection all = in;
        all.insert(all.end(), other.begin(), other.end());
        return all;
      }
      if (fn == "intersect") {
        Collection out;
        for (const auto& n : in)
          if (contains_item(other, n) && !contains_item(out, n)) out.push_back(n);
        return out;
      }
      if (fn == "exclude") {
        Collection out;
        for (const auto& n : in)
          if (!contains_item(other, n)) out.push_back(n);
        return out;
      }
      const Collection& sub = fn == "subsetOf" ? in : other;
      const Collection& sup = fn == "subsetOf" ? other : in;
      for (const auto& n : sub)
        if (!contains_item(sup, n)) return single_bool(false);
      return single_bool(true);
    }
    if (fn == "iif") {
      arity(e, 2, 3);
      // with an explicit input, the arguments see it as $this
      Focus g = f;
      if (e.base) {
        if (in.size() > 1) throw FhirPathError("iif(): input has more than one item");
        g = Focus{&in, in.empty() ? nullptr : &in[0], -1, nullptr};
      }
      Collection cond = eval_arg(*e.args[0], g);
      if (cond.size() > 1 || (cond.size() == 1 && !as_bool(cond[0])))
        throw FhirPathError("iif(): criterion is not a boolean");
      auto c = truth(cond, "iif()");
      if (c && *c) return eval_arg(*e.args[1], g);
      if (e.args.size() == 3) return eval_arg(*e.args[2], g);
      return {};
    }
    if (fn == "not") {
      arity(e, 0, 0);
      auto b = truth(in, "not()");
      if (!b) return {};
      return single_bool(!*b);
    }
    if (fn == "hasValue") {
      arity(e, 0, 0);
      return single_bool(in.size() == 1 && is_primitive_value(in[0]));
    }
    if (fn == "getValue") {
      arity(e, 0, 0);
      if (in.size() == 1 && is_primitive_value(in[0])) return in;
      return {};
    }
    if (fn == "children" || fn == "descendants") {
      arity(e, 0, 0);
      Collection out;
      for (const auto& n : in) all_children(n, out);
      if (fn == "children") return out;
      Collection result;
      std::size_t guard = 0;
      while (!out.empty()) {
        Collection next;
        for (const auto& n : out) {
          result.push_back(n);
          all_children(n, next);
        }
        out = std::move(next);
        if (++guard > 1000 || result.size() > 1000000) throw FhirPathError("descendants(): too deep");
      }
      return result;
    }
    if (fn == "trace") {
      arity(e, 1, 2);
      return in;
    }
    if (fn == "extension") {
      arity(e, 1, 1);
      auto url = string_arg(e, 0, f);
      Collection exts;
      for (const auto& n : in) children_named(n, "extension", exts);
      if (!url) return {};
      Collection out;
      for (const auto& x : exts) {
        if (x.value && x.value->is_object()) {
          auto u = x.value->find("url");
          if (u != x.value->end() && u->is_string() && u->get<std::string>() == *url) out.push_back(x);
        }
      }
      return out;
    }
    if (fn == "resolve") {
      arity(e, 0, 0);
      Collection out;
      for (const auto& n : in) resolve(n, out);
      return out;
    }
    if (fn == "toString") {
      arity(e, 0, 0);
      if (in.empty()) return {};
      auto s = to_text(single(in, fn));
      if (!s) return {};
      return {make_string(*s)};
    }
    if (fn == "toInteger" || fn == "convertsToInteger") {
      arity(e, 0, 0);
      if (in.empty()) return {};
      const Node& n = single(in, fn);
      std::optional<long long> v;
      if (is_integer(n))
        v = n.value->get<long long>();
      else if (n.value && n.value->is_boolean())
        v = n.value->get<bool>() ? 1 : 0;
      else if (auto s = str_of(n)) {
        long long x = 0;
        const char* b = s->data();
        if (!s->empty() && (*b == '+' || *b == '-')) ++b;
        auto r = std::from_chars(b, s->data() + s->size(), x);
        if (r.ec == std::errc() && r.ptr == s->data() + s->size() && b != s->data() + s->size())
          v = (*s)[0] == '-' ? -x : x;
      }
      if (fn == "convertsToInteger") return single_bool(v.has_value());
      if (!v) return {};
      return {make_int(*v)};
    }
    if (fn == "toDecimal" || fn == "convertsToDecimal") {
      arity(e, 0, 0);
      if (in.empty()) return {};
      const Node& n = single(in, fn);
      std::optional<std::string> v;
      if (is_number(n))
        v = number_string(*n.value);
      else if (n.value && n.value->is_boolean())
        v = n.value->get<bool>() ? "1.0" : "0.0";
      else if (auto s = str_of(n)) {
        double d = 0;
        const char* b = s->data();
        if (!s->empty() && (*b == '+' || *b == '-')) ++b;
        auto r = std::from_chars(b, s->data() + s->size(), d, std::chars_format::fixed);
        if (r.ec == std::errc() && r.ptr == s->data() + s->size() && b != s->data() + s->size()) v = *s;
      }
      if (fn == "convertsToDecimal") return single_bool(v.has_value());
      if (!v) return {};
      if (v->find('.') == std::string::npos) *v += ".0";
      if ((*v)[0] == '+') v->erase(0, 1);
      return {make_value(make_decimal(*v), "System.Decimal")};
    }
    if (fn == "toBoolean" || fn == "convertsToBoolean") {
      arity(e, 0, 0);
      if (in.empty()) return {};
      const Node& n = single(in, fn);
      std::optional<bool> v;
      if (auto b = as_bool(n))
        v = b;
      else if (is_number(n)) {
        double d = *number_value(*n.value);
        if (d == 1)
          v = true;
        else if (d == 0)
          v = false;
      } else if (auto s = str_of(n)) {
        std::string l = *s;
        for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (l == "true" || l == "t" || l == "yes" || l == "y" || l == "1" || l == "1.0") v = true;
        if (l == "false" || l == "f" || l == "no" || l == "n" || l == "0" || l == "0.0") v = false;
      }
      if (fn == "convertsToBoolean") return single_bool(v.has_value());
      if (!v) return {};
      return single_bool(*v);
    }
    if (fn == "convertsToString") {
      arity(e, 0, 0);
      if (in.empty()) return {};
      return single_bool(to_text(single(in, fn)).has_value());
    }
    if (fn == "abs" || fn == "ceiling" || fn == "floor" || fn == "round" || fn == "truncate") {
      arity(e, 0, fn == "round" ? 1 : 0);
      if (in.empty()) return {};
      const Node& n = single(in, fn);
      if (!is_number(n)) throw FhirPathError(fn + "(): input is not a number");
      if (is_integer(n)) {
        long long v = n.value->get<long long>();
        return {make_int(fn == "abs" ? (v < 0 ? -v : v) : v)};
      }
      double d = *number_value(*n.value);
      if (fn == "abs") {
        std::string t = number_string(*n.value);
        if (t[0] == '-') t.erase(0, 1);
        return {make_value(make_decimal(t), "System.Decimal")};
      }
      if (fn == "round") {
        long long prec = 0;
        if (!e.args.empty()) {
          auto p = int_arg(e, 0, f);
          if (!p || *p < 0) throw FhirPathError("round(): precision must be a non-negative integer");
          prec = *p;
        }
        double s = std::pow(10.0, static_cast<double>(prec));
        double r = std::round(d * s) / s;
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(prec), r);
        std::string t = buf;
        if (prec == 0) t += ".0";
        return {make_value(make_decimal(t), "System.Decimal")};
      }
      double r = fn == "ceiling" ? std::ceil(d) : fn == "floor" ? std::floor(d) : std::trunc(d);
      return {make_int(static_cast<long long>(r))};
    }
    // String functions
    if (fn == "startsWith" || fn == "endsWith" || fn == "contains") {
      arity(e, 1, 1);
      auto s = string_input(in, fn);
      auto a = string_arg(e, 0, f);
      if (!s || !a) return {};
      bool r = fn == "contains"     ? s->find(*a) != std::string::npos
               : fn == "startsWith" ? s->rfind(*a, 0) == 0
                                    : (s->size() >= a->size() && s->compare(s->size() - a->size(), a->size(), *a) == 0);
      return single_bool(r);
    }
    if (fn == "indexOf") {
      arity(e, 1, 1);
      auto s = string_input(in, fn);
      auto a = string_arg(e, 0, f);
      if (!s || !a) return {};
      auto p = s->find(*a);
      return {make_int(p == std::string::npos ? -1 : static_cast<long long>(p))};
    }
    if (fn == "substring") {
      arity(e, 1, 2);
      auto s = string_input(in, fn);
      auto start = int_arg(e, 0, f);
      if (!s || !start) return {};
      if (*start < 0 || static_cast<std::size_t>(*start) >= s->size()) return {};
      std::size_t len = std::string::npos;
      if (e.args.size() == 2) {
        auto l = int_arg(e, 1, f);
        if (l) len = *l < 0 ? 0 : static_cast<std::size_t>(*l);
      }
      return {make_string(s->substr(static_cast<std::size_t>(*start), len))};
    }
    if (fn == "upper" || fn == "lower" || fn == "trim") {
      arity(e, 0, 0);
      auto s = string_input(in, fn);
      if (!s) return {};
      if (fn == "trim") {
        auto b = s->find_first_not_of(" \t\r\n");
        if (b == std::string::npos) return {make_string("")};
        auto en = s->find_last_not_of(" \t\r\n");
        return {make_string(s->substr(b, en - b + 1))};
      }
      for (auto& c : *s)
        c = static_cast<char>(fn == "upper" ? std::toupper(static_cast<unsigned char>(c))
                                            : std::tolower(static_cast<unsigned char>(c)));
      return {make_string(*s)};
    }
    if (fn == "length") {
      arity(e, 0, 0);
      auto s = string_input(in, fn);
      if (!s) return {};
      long long n = 0;
      for (unsigned char c : *s)
        if ((c & 0xC0) != 0x80) ++n;
      return {make_int(n)};
    }
    if (fn == "replace") {
      arity(e, 2, 2);
      auto s = string_input(in, fn);
      auto pat = string_arg(e, 0, f);
      auto rep = string_arg(e, 1, f);
      if (!s || !pat || !rep) return {};
      std::string out;
      if (pat->empty()) {
        out = *rep;
        for (char c : *s) {
          out += c;
          out += *rep;
        }
        return {make_string(out)};
      }
      std::size_t pos = 0;
      while (true) {
        auto h = s->find(*pat, pos);
        if (h == std::string::npos) break;
        out.append(*s, pos, h - pos);
        out += *rep;
        pos = h + pat->size();
      }
      out.append(*s, pos, std::string::npos);
      return {make_string(out)};
    }
    if (fn == "toChars") {
      arity(e, 0, 0);
      auto s = string_input(in, fn);
      if (!s) return {};
      Collection out;
      for (std::size_t i = 0; i < s->size();) {
        std::size_t j = i + 1;
        while (j < s->size() && (static_cast<unsigned char>((*s)[j]) & 0xC0) == 0x80) ++j;
        out.push_back(make_string(s->substr(i, j - i)));
        i = j;
      }
      return out;
    }
    if (fn == "join") {
      arity(e, 0, 1);
      std::string sep;
      if (!e.args.empty()) sep = string_arg(e, 0, f).value_or("");
      std::string out;
      for (std::size_t i = 0; i < in.size(); ++i) {
        auto s = str_of(in[i]);
        if (!s) throw FhirPathError("join(): input must be strings");
        if (i) out += sep;
        out += *s;
      }
      return {make_string(out)};
    }
    if (fn == "power" || fn == "exp" || fn == "sqrt" || fn == "ln" || fn == "log") {
      bool binary_fn = fn == "power" || fn == "log";
      arity(e, binary_fn ? 1 : 0, binary_fn ? 1 : 0);
      if (in.empty()) return {};
      const Node& n = single(in, fn);
      if (!is_number(n)) throw FhirPathError(fn + "(): input is not a number");
      double x = *number_value(*n.value);
      double y = 0;
      bool y_int = true;
      if (binary_fn) {
        Collection a = eval_arg(*e.args[0], f);
        if (a.empty()) return {};
        if (a.size() != 1 || !is_number(a[0])) throw FhirPathError(fn + "(): argument must be a number");
        y = *number_value(*a[0].value);
        y_int = is_integer(a[0]);
      }
      double r = fn == "power"  ? std::pow(x, y)
                 : fn == "exp"  ? std::exp(x)
                 : fn == "sqrt" ? std::sqrt(x)
                 : fn == "ln"   ? std::log(x)
                                : std::log(x) / std::log(y);
      if (std::isnan(r) || std::isinf(r)) return {};
      if (fn == "power" && is_integer(n) && y_int && std::fabs(r) < 9e15) return {make_int(static_cast<long long>(r))};
      return {make_decimal_node(r)};
    }
    if (fn == "split") {
      arity(e, 1, 1);
      auto s = string_input(in, fn);
      auto sep = string_arg(e, 0, f);
      if (!s || !sep) return {};
      Collection out;
      if (sep->empty()) {
        out.push_back(make_string(*s));
        return out;
      }
      std::size_t pos = 0;
      while (true) {
        auto h = s->find(*sep, pos);
        out.push_back(make_string(s->substr(pos, h == std::string::npos ? std::string::npos : h - pos)));
        if (h == std::string::npos) break;
        pos = h + sep->size();
      }
      return out;
    }
    if (fn == "aggregate") {
      arity(e, 1, 2);
      Collection total;
      if (e.args.size() == 2) total = eval_arg(*e.args[1], f);
      for (std::size_t i = 0; i < in.size(); ++i) {
        Collection next = eval_with(*e.args[0], in[i], static_cast<long long>(i), &total);
        total = std::move(next);
      }
      return total;
    }
    if (fn == "now" || fn == "today") {
      arity(e, 0, 0);
      std::string t = format_instant(now_millis());  // 2024-05-01T12:34:56.789Z
      if (fn == "today") return {make_value(Json(t.substr(0, 10)), "System.Date")};
      t.pop_back();
      return {make_value(Json(t + "+00:00"), "System.DateTime")};
    }
    if (fn == "toDate" || fn == "toDateTime" || fn == "toTime" || fn == "convertsToDate" ||
        fn == "convertsToDateTime" || fn == "convertsToTime") {
      arity(e, 0, 0);
      if (in.empty()) return {};
      const Node& n = single(in, fn);
      bool converts = fn.rfind("convertsTo", 0) == 0;
      std::string target = converts ? fn.substr(10) : fn.substr(2);
      std::string type = "System." + target;
      std::optional<std::string> v;
      if (auto s = str_of(n)) {
        bool time = target == "Time";
        std::string text = *s;
        if (time && !text.empty() && text[0] == 'T') text.erase(0, 1);
        auto t = parse_temporal(text, time);
        if (t && !(time && t->has_tz)) {
          bool has_time_part = !time && text.find('T') != std::string::npos;
          if (target == "Date") {
            if (!has_time_part && !t->has_tz)
              v = text;
            else if (is_temporal_type(n.type) && text.size() >= 10)
              v = text.substr(0, 10);
          } else {
            v = text;
          }
        }
      }
      if (converts) return single_bool(v.has_value());
      if (!v) return {};
      return {make_value(Json(*v), type)};
    }
    throw FhirPathError("unsupported FHIRPath function '" + fn + "()'");
  }

  Collection where(const Expr& e, const Collection& in) {
    Collection out;
    for (std::size_t i = 0; i < in.size(); ++i) {
      auto r = truth(eval_with(*e.args[0], in[i], static_cast<long long>(i)), "where()");
      if (r && *r) out.push_back(in[i]);
    }
    return out;
  }

  // resolve(): "#id" -> the contained resource; "[base/]Type/id[/_history/v]" -> a stand-in.
  void resolve(const Node& n, Collection& out) {
    std::string ref;
    if (auto s = str_of(n)) {
      ref = *s;
    } else if (n.value && n.value->is_object()) {
      auto r = n.value->find("reference");
      if (r == n.value->end() || !r->is_string()) return;
      ref = r->get<std::string>();
    } else {
      return;
    }
    if (!ref.empty() && ref[0] == '#') {
      if (!env_.root || !env_.root->is_object()) return;
      auto c = env_.root->find("contained");
      if (c == env_.root->end() || !c->is_array()) return;
      for (const auto& r : *c) {
        if (r.is_object() && r.contains("id") && r["id"].is_string() && r["id"].get<std::string>() == ref.substr(1))
          out.push_back(resource_node(r));
      }
      return;
    }
    auto h = ref.find("/_history/");
    if (h != std::string::npos) ref.resize(h);
    auto slash = ref.rfind('/');
    if (slash == std::string::npos || slash == 0) return;
    auto prev = ref.rfind('/', slash - 1);
    std::string type =
        ref.substr(prev == std::string::npos ? 0 : prev + 1, slash - (prev == std::string::npos ? 0 : prev + 1));
    std::string id = ref.substr(slash + 1);
    if (!model().is_resource_type(type) || id.empty()) return;
    Json stub = Json::object();
    stub["resourceType"] = type;
    stub["id"] = id;
    Node r = make_value(std::move(stub), type);
    r.context = model().find_context(type);
    out.push_back(std::move(r));
  }

  Collection binary(const Expr& e, const Focus& f) {
    const std::string& op = e.op;
    if (op == "and" || op == "or" || op == "xor" || op == "implies") {
      auto a = truth(eval(*e.args[0], f), op.c_str());
      if (op == "and" && a && !*a) return single_bool(false);
      if (op == "or" && a && *a) return single_bool(true);
      if (op == "implies" && a && !*a) return single_bool(true);
      auto b = truth(eval(*e.args[1], f), op.c_str());
      if (op == "and") {
        if (b && !*b) return single_bool(false);
        if (a && b) return single_bool(true);
        return {};
      }
      if (op == "or") {
        if (b && *b) return single_bool(true);
        if (a && b) return single_bool(false);
        return {};
      }
      if (op == "xor") {
        if (!a || !b) return {};
        return single_bool(*a != *b);
      }
      // implies: a is true or unknown
      if (b && *b) return single_bool(true);
      if (a && b) return single_bool(false);
      return {};
    }
    Collection l = eval(*e.args[0], f);
    Collection r = eval(*e.args[1], f);
    if (op == "|") {
      l.insert(l.end(), r.begin(), r.end());
      return distinct(l);
    }
    if (op == "in" || op == "contains") {
      const Collection& item = op == "in" ? l : r;
      const Collection& coll = op == "in" ? r : l;
      if (item.empty()) return {};
      if (item.size() > 1) throw FhirPathError("'" + op + "' needs a single item");
      return single_bool(contains_item(coll, item[0]));
    }
    if (op == "=" || op == "!=") {
      if (l.empty() || r.empty()) return {};
      if (l.size() != r.size()) return single_bool(op == "!=");
      bool eq = true;
      for (std::size_t i = 0; i < l.size(); ++i) {
        auto x = item_equal(l[i], r[i]);
        if (!x) return {};
        if (!*x) eq = false;
      }
      return single_bool(op == "=" ? eq : !eq);
    }
    if (op == "~" || op == "!~") {
      bool eq;
      if (l.empty() && r.empty())
        eq = true;
      else if (l.size() != r.size())
        eq = false;
      else {
        eq = true;
        for (const auto& x : l) {
          bool found = false;
          for (const auto& y : r)
            if (item_equivalent(x, y)) found = true;
          if (!found) eq = false;
        }
      }
      return single_bool(op == "~" ? eq : !eq);
    }
    if (op == "&") {
      if (l.size() > 1 || r.size() > 1) throw FhirPathError("operator '&' needs single items");
      return {make_string((l.empty() ? std::string() : to_text(l[0]).value_or("")) +
                          (r.empty() ? std::string() : to_text(r[0]).value_or("")))};
    }
    if (l.empty() || r.empty()) return {};
    if (l.size() > 1 || r.size() > 1) throw FhirPathError("operator '" + op + "' needs single items");
    const Node& a = l[0];
    const Node& b = r[0];
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (is_number(a) && is_number(b)) {
        c = compare_numbers(*number_value(*a.value), *number_value(*b.value));
      } else if (a.value && b.value && a.value->is_string() && b.value->is_string()) {
        const auto& x = a.value->get_ref<const std::string&>();
        const auto& y = b.value->get_ref<const std::string&>();
        if (is_temporal_type(a.type) || is_temporal_type(b.type)) {
          auto tc = compare_temporal(a, b);
          if (!tc) return {};
          c = *tc;
        } else {
          c = x.compare(y);
        }
        c = c < 0 ? -1 : c > 0 ? 1 : 0;
      } else if (is_quantity(a) && is_quantity(b)) {
        auto qc = compare_quantities(a, b);
        if (!qc) return {};
        c = *qc;
      } else {
        throw FhirPathError("operator '" + op + "': operands are not comparable");
      }
      bool res = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
      return single_bool(res);
    }
    if (op == "+" && a.value && b.value && a.value->is_string() && b.value->is_string() && !is_temporal_type(a.type)) {
      return {make_string(a.value->get<std::string>() + b.value->get<std::string>())};
    }
    if (is_quantity(a) || is_quantity(b) || is_temporal_type(a.type) || is_temporal_type(b.type))
      throw FhirPathError("unsupported: arithmetic '" + op + "' on quantities or dates");
    if (!is_number(a) || !is_number(b)) throw FhirPathError("operator '" + op + "' needs numbers");
    bool ints = is_integer(a) && is_integer(b);
    if (ints && op != "/") {
      long long x = a.value->get<long long>(), y = b.value->get<long long>();
      long long res = 0;
      if (op == "+") {
        if (__builtin_add_overflow(x, y, &res)) return {};
      } else if (op == "-") {
        if (__builtin_sub_overflow(x, y, &res)) return {};
      } else if (op == "*") {
        if (__builtin_mul_overflow(x, y, &res)) return {};
      } else if (op == "div" || op == "mod") {
        if (y == 0 || (x == LLONG_MIN && y == -1)) return {};
        res = op == "div" ? x / y : x % y;
      }
      return {make_int(res)};
    }
    double x = *number_value(*a.value), y = *number_value(*b.value);
    if (op == "+") return {make_decimal_node(x + y)};
    if (op == "-") return {make_decimal_node(x - y)};
    if (op == "*") return {make_decimal_node(x * y)};
    if (y == 0) return {};
    if (op == "/") return {make_decimal_node(x / y)};
    if (op == "div") return {make_int(static_cast<long long>(std::trunc(x / y)))};
    if (op == "mod") return {make_decimal_node(std::fmod(x, y))};
    throw FhirPathError("unsupported operator '" + op + "'");
  }
};

}  // namespace

Node resource_node(const Json& resource) {
  Node n;
  n.value = &resource;
  if (resource.is_object()) {
    auto rt = resource.find("resourceType");
    if (rt != resource.end() && rt->is_string()) {
      n.type = rt->get<std::string>();
      n.context = model().find_context(n.type);
    }
  }
  return n;
}

std::optional<std::string> primitive_text(const Node& node) {
  return to_text(node);
}

Expression Expression::parse(std::string_view text) {
  Expression e;
  e.text_ = std::string(text);
  Parser p(tokenize(text));
  e.root_ = p.parse_all();
  return e;
}

Collection Expression::evaluate(const Json& resource) const {
  return evaluate(Collection{resource_node(resource)}, resource);
}

Collection Expression::evaluate(const Collection& input, const Json& root_resource) const {
  Env env;
  env.root = &root_resource;
  env.root_node = {resource_node(root_resource)};
  env.context = input;
  Evaluator ev(env);
  Focus f{&input, nullptr, -1, nullptr};
  return ev.eval(*root_, f);
}

}  // namespace kasama::resources::fhirpath
