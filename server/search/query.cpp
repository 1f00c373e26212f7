#include "server/search/query.hpp"

#include "server/search/escapes.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>

#include "resources/references.hpp"
#include "resources/type_model.hpp"

namespace kasama::search {

namespace {

constexpr std::array<std::string_view, 11> kResultParams = {"_count",  "_sort",      "_include",      "_revinclude",
                                                            "_total",  "_summary",   "_elements",     "_format",
                                                            "_pretty", "_contained", "_containedType"};

constexpr std::array<std::pair<std::string_view, Prefix>, 9> kPrefixes = {{{"eq", Prefix::kEq},
                                                                           {"ne", Prefix::kNe},
                                                                           {"gt", Prefix::kGt},
                                                                           {"lt", Prefix::kLt},
                                                                           {"ge", Prefix::kGe},
                                                                           {"le", Prefix::kLe},
                                                                           {"sa", Prefix::kSa},
                                                                           {"eb", Prefix::kEb},
                                                                           {"ap", Prefix::kAp}}};

// FHIR decimal (ASCII digits only): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_decimal(std::string_view s) {
  std::size_t i = 0;
  auto digit = [&](std::size_t k) { return k < s.size() && s[k] >= '0' && s[k] <= '9'; };
  if (i < s.size() && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == s.size();
}

// A decimal the engine can compare: finite as a double, exponent within +-300.
bool in_range(std::string_view s) {
  const std::string text(s);
  if (!std::isfinite(std::strtod(text.c_str(), nullptr))) return false;
  auto e = text.find_first_of("eE");
  if (e == std::string::npos) return true;
  const long exp = std::strtol(text.c_str() + e + 1, nullptr, 10);
  return exp >= -300 && exp <= 300;
}

std::string_view take_prefix(std::string_view v, Prefix& prefix) {
  prefix = Prefix::kEq;
  if (v.size() > 2) {
    for (const auto& [name, p] : kPrefixes) {
      if (v.substr(0, 2) == name) {
        prefix = p;
        return v.substr(2);
      }
    }
  }
  return v;
}

bool allowed_modifier(ParamType type, std::string_view m) {
  auto in = [&](std::initializer_list<std::string_view> list) {
    return std::find(list.begin(), list.end(), m) != list.end();
  };
  switch (type) {
    case ParamType::kString:
      return in({"exact", "contains", "missing", "text"});
    case ParamType::kToken:
      return in({"text", "not", "above", "below", "in", "not-in", "of-type", "missing"});
    case ParamType::kReference:
      return in({"identifier", "missing", "above", "below"});  // type names: checked by the caller
    case ParamType::kDate:
    case ParamType::kNumber:
    case ParamType::kQuantity:
      return m == "missing";
    case ParamType::kUri:
      return in({"above", "below", "missing"});
    case ParamType::kComposite:
    case ParamType::kSpecial:
      return false;
  }
  return false;
}

struct Parser {
  std::string_view type;
  bool lenient;
  ParsedQuery& out;

  void fail(std::string code, std::string message, std::string parameter) {
    if (!out.error) out.error = QueryError{400, std::move(code), std::move(message), std::move(parameter)};
  }

  // A token "system|code" (escaped text) into v.
  static void split_token(std::string_view escaped, Value& v) {
    auto parts = split_keeping_escapes(escaped, '|');
    if (parts.size() == 1) {
      v.code = unescape(parts[0]);
    } else {
      v.has_system = true;
      v.system = unescape(parts[0]);
      std::string rest;  // a second bar belongs to the code
      for (std::size_t i = 1; i < parts.size(); ++i) rest += (i > 1 ? "|" : "") + parts[i];
      v.code = unescape(rest);
    }
  }

  // One escaped OR part of a value of param p; false (with out.error set) when bad.
  bool parse_value(const SearchParam& p, const std::string& modifier, std::string_view escaped,
                   const std::string& pname, Value& v) {
    auto bad = [&](const std::string& why) {
      fail("value", "invalid value '" + unescape(escaped) + "' for " + pname + ": " + why, pname);
      return false;
    };
    v.text = unescape(escaped);
    if (modifier == "missing") {
      if (v.text == "true") {
        v.missing = true;
      } else if (v.text != "false") {
        return bad("expected true or false");
      }
      return true;
    }
    if (v.text.empty()) return bad("empty value");
    switch (p.type) {
      case ParamType::kNumber: {
        std::string_view n = take_prefix(escaped, v.prefix);
        if (!is_decimal(n)) return bad("not a decimal number");
        if (!in_range(n)) return bad("number out of range");
        v.number = std::string(n);
        v.text = v.number;
        return true;
      }
      case ParamType::kDate: {
        std::string rest = unescape(take_prefix(escaped, v.prefix));
        v.range = resources::parse_fhir_time_range(rest);
        if (!v.range) return bad("not a FHIR date, dateTime or instant");
        v.text = rest;
        return true;
      }
      case ParamType::kQuantity: {
        std::string_view rest = take_prefix(escaped, v.prefix);
        auto parts = split_keeping_escapes(rest, '|');
        if (parts.size() != 1 && parts.size() != 3) return bad("expected number or number|system|code");
        if (!is_decimal(parts[0])) return bad("not a decimal number");
        if (!in_range(parts[0])) return bad("number out of range");
        v.number = parts[0];
        if (parts.size() == 3) {
          v.system = unescape(parts[1]);
          v.has_system = !v.system.empty();
          v.code = unescape(parts[2]);
        }
        v.text = unescape(rest);
        return true;
      }
      case ParamType::kToken:
        if (modifier == "text" || modifier == "in" || modifier == "not-in") return true;
        if (modifier == "of-type") {
          auto parts = split_keeping_escapes(escaped, '|');
          if (parts.size() != 3 || parts[2].empty()) return bad("expected system|code|value");
          v.has_system = true;
          v.system = unescape(parts[0]);
          v.code = unescape(parts[1]);
          v.text = unescape(parts[2]);
          return true;
        }
        split_token(escaped, v);
        return true;
      case ParamType::kReference: {
        if (modifier == "identifier") {
          split_token(escaped, v);
          return true;
        }
        const std::string& s = v.text;
        const bool typed = !modifier.empty() && modifier != "above" && modifier != "below";
        if (s.find("://") != std::string::npos || s.rfind("urn:", 0) == 0) {
          v.url = s;
          return true;
        }
        // "id", "Type/id" or "Type/id/_history/vid"
        auto valid_id = [](std::string_view id) {
          auto h = id.find("/_history/");
          if (h != std::string_view::npos) {
            return resources::is_valid_id(id.substr(0, h)) && resources::is_valid_id(id.substr(h + 10));
          }
          return resources::is_valid_id(id);
        };
        auto slash = s.find('/');
        if (slash == std::string::npos) {
          if (!resources::is_valid_id(s)) return bad("not a resource id");
          v.ref_id = s;
          if (typed) v.ref_type = modifier;
        } else {
          v.ref_type = s.substr(0, slash);
          v.ref_id = s.substr(slash + 1);
          if (!valid_id(v.ref_id) || !resources::TypeModel::instance().is_resource_type(v.ref_type))
            return bad("expected Type/id, id or an absolute URL");
          if (typed && v.ref_type != modifier) return bad("type differs from the modifier :" + modifier);
          if (!p.targets.empty() && std::find(p.targets.begin(), p.targets.end(), v.ref_type) == p.targets.end())
            return bad(v.ref_type + " is not a target of " + p.code);
        }
        return true;
      }
      case ParamType::kComposite: {
        auto parts = split_keeping_escapes(escaped, '$');
        if (parts.size() != p.components.size())
          return bad("expected " + std::to_string(p.components.size()) + " parts joined by '$'");
        for (std::size_t i = 0; i < parts.size(); ++i) {
          const SearchParam* cp = Registry::instance().by_url(p.components[i].definition);
          if (!cp) {
            fail("not-supported", "composite component " + p.components[i].definition + " is unknown", pname);
            return false;
          }
          Value cv;
          if (!parse_value(*cp, "", parts[i], pname, cv)) return false;
          v.components.push_back(std::move(cv));
        }
        return true;
      }
      case ParamType::kString:
      case ParamType::kUri:
      case ParamType::kSpecial:
        return true;
    }
    return true;
  }

  // "_has:Source:param:rest" (rest may be another _has) or a plain clause.
  bool parse_any(std::string_view on_type, const std::string& full_name, std::string_view name,
                 const std::string& value, Clause& clause) {
    if (name != "_has" && name.rfind("_has:", 0) != 0) return parse_clause(on_type, full_name, name, value, clause);
    auto bad = [&](const std::string& why) {
      fail("invalid", "invalid _has parameter '" + full_name + "': " + why, full_name);
      return false;
    };
    std::string_view rest = name.substr(std::min<std::size_t>(name.size(), 5));
    auto c1 = rest.find(':');
    if (c1 == std::string_view::npos) return bad("expected _has:Type:reference:parameter");
    auto c2 = rest.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return bad("expected _has:Type:reference:parameter");
    std::string source(rest.substr(0, c1));
    std::string ref(rest.substr(c1 + 1, c2 - c1 - 1));
    std::string_view inner = rest.substr(c2 + 1);
    if (!resources::TypeModel::instance().is_resource_type(source))
      return bad("'" + source + "' is not a resource type");
    const SearchParam* rp = Registry::instance().find(source, ref);
    if (!rp || rp->type != ParamType::kReference) return bad("'" + ref + "' is not a reference parameter of " + source);
    if (!rp->targets.empty() &&
        std::find(rp->targets.begin(), rp->targets.end(), std::string(on_type)) == rp->targets.end())
      return bad(source + "." + ref + " does not refer to " + std::string(on_type));
    if (inner.empty()) return bad("no parameter after the reference");
    auto has = std::make_shared<Has>();
    has->source_type = source;
    has->ref_param = rp;
    if (!parse_any(source, full_name, inner, value, has->inner)) return false;
    clause.name = full_name;
    clause.has = std::move(has);
    return true;
  }

  // name is "code[:modifier][.chain...]"; returns false when the parameter is dropped
  // (lenient) or failed (out.error).
  bool parse_clause(std::string_view on_type, const std::string& full_name, std::string_view name,
                    const std::string& value, Clause& clause) {
    std::string_view head = name;
    std::string_view chain_rest;
    bool chained = false;
    if (auto dot = name.find('.'); dot != std::string_view::npos) {
      head = name.substr(0, dot);
      chain_rest = name.substr(dot + 1);
      chained = true;
    }
    std::string_view code = head;
    std::string modifier;
    bool has_modifier = false;
    if (auto colon = head.find(':'); colon != std::string_view::npos) {
      code = head.substr(0, colon);
      modifier = std::string(head.substr(colon + 1));
      has_modifier = true;
    }
    const SearchParam* p = Registry::instance().find(on_type, code);
    if (!p) {
      if (lenient) {
        out.ignored.emplace_back(full_name, value);
        return false;
      }
      fail("not-supported", "unknown search parameter '" + std::string(code) + "' for " + std::string(on_type),
           full_name);
      return false;
    }
    clause.param = p;
    clause.name = std::string(head);
    clause.modifier = modifier;
    if (has_modifier) {
      bool ok = allowed_modifier(p->type, modifier);
      if (!ok && p->type == ParamType::kReference && resources::TypeModel::instance().is_resource_type(modifier))
        ok = p->targets.empty() || std::find(p->targets.begin(), p->targets.end(), modifier) != p->targets.end();
      if (!ok) {
        fail("value", "unknown or unsupported modifier '" + std::string(head) + "'", full_name);
        return false;
      }
    }
    if (chained) {
      if (p->type != ParamType::kReference) {
        fail("value", "'" + std::string(code) + "' is not a reference parameter, so it cannot be chained", full_name);
        return false;
      }
      std::string target;
      if (has_modifier && modifier != "identifier" && modifier != "missing" && modifier != "above" &&
          modifier != "below") {
        target = modifier;
      } else if (has_modifier) {
        fail("value", "modifier :" + modifier + " cannot be chained", full_name);
        return false;
      } else if (p->targets.size() == 1) {
        target = p->targets.front();
      } else {
        fail("invalid",
             "chained parameter '" + std::string(code) + "' has several target types: name one as '" +
                 std::string(code) + ":Type." + std::string(chain_rest) + "'",
             full_name);
        return false;
      }
      auto chain = std::make_shared<Chain>();
      chain->target_type = target;
      if (!parse_any(target, full_name, chain_rest, value, chain->inner)) return false;
      clause.chain = std::move(chain);
      return true;
    }
    // "\," is a comma of the value; other escapes stay for parse_value to read.
    for (const auto& part : split_list(value, ',')) {
      Value v;
      if (!parse_value(*p, modifier, part, full_name, v)) return false;
      clause.values.push_back(std::move(v));
    }
    return true;
  }
};

}  // namespace

const char* prefix_name(Prefix prefix) {
  for (const auto& [name, p] : kPrefixes)
    if (p == prefix) return name.data();
  return "eq";
}

bool is_result_parameter(std::string_view name) {
  return std::find(kResultParams.begin(), kResultParams.end(), name) != kResultParams.end();
}

ParsedQuery parse_search(std::string_view type, const std::vector<std::pair<std::string, std::string>>& params,
                         bool lenient) {
  ParsedQuery out;
  Parser parser{type, lenient, out};
  for (const auto& [name, value] : params) {
    if (out.error) break;
    std::string_view base = std::string_view(name).substr(0, name.find(':'));
    if (is_result_parameter(base)) {
      out.result.emplace_back(name, value);
      continue;
    }
    Clause clause;
    if (parser.parse_any(type, name, name, value, clause)) out.clauses.push_back(std::move(clause));
  }
  if (out.error) out.clauses.clear();
  return out;
}

}  // namespace kasama::search
