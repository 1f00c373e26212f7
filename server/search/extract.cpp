#include "server/search/extract.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <tuple>

#include "resources/fhir_time.hpp"
#include "resources/fhirpath.hpp"
#include "resources/references.hpp"
#include "resources/type_model.hpp"
#include "server/search/normalize.hpp"

namespace kasama::search {

namespace fp = resources::fhirpath;
using resources::Json;
using storage::IndexRows;

struct CompiledParam {
  const SearchParam* param = nullptr;
  std::optional<fp::Expression> expr;
  // composite: the components' parameters and expressions (relative to the composite value)
  std::vector<const SearchParam*> component_params;
  std::vector<fp::Expression> component_exprs;
  // token on a `code` element with a required binding to one code system: that system is
  // implied (search.html#token: "the system is implied by the binding")
  std::string implied_system;
};

namespace {

constexpr std::size_t kStringChars = 255;

const Json* member(const Json& obj, const char* name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

std::string text_of(const Json* v) {
  if (!v) return {};
  if (v->is_string()) return v->get<std::string>();
  if (auto n = resources::number_text(*v)) return *n;
  if (v->is_boolean()) return v->get<bool>() ? "true" : "false";
  return {};
}

bool is_primitive_type(const std::string& t) {
  static const std::set<std::string> kPrimitive = {"string",
                                                   "code",
                                                   "id",
                                                   "uri",
                                                   "url",
                                                   "canonical",
                                                   "oid",
                                                   "uuid",
                                                   "markdown",
                                                   "integer",
                                                   "positiveInt",
                                                   "unsignedInt",
                                                   "decimal",
                                                   "boolean",
                                                   "date",
                                                   "dateTime",
                                                   "instant",
                                                   "time",
                                                   "base64Binary",
                                                   "xhtml",
                                                   "System.String",
                                                   "System.Boolean",
                                                   "System.Integer",
                                                   "System.Decimal"};
  return kPrimitive.count(t) > 0;
}

// The value of one node as the rows of one parameter kind.
struct Emitter {
  std::string_view base_url;
  IndexRows& rows;
  std::string implied_system;  // for `code` values of the current parameter

  void token(const std::string& param, const std::string& system, const std::string& value) {
    if (value.empty() && system.empty()) return;
    rows.tokens.push_back({param, system, value});
  }
  void text(const std::string& param, const std::string& value) {
    if (value.empty()) return;
    rows.strings.push_back({param, truncate_chars(fold_text(value), kStringChars), value});
  }
  void coding(const std::string& param, const Json& c) {
    token(param, text_of(member(c, "system")), text_of(member(c, "code")));
    text(param + ":text", text_of(member(c, "display")));
  }

  void as_token(const std::string& param, const fp::Node& n) {
    if (!n.value) return;
    const Json& v = *n.value;
    if (n.type == "Coding") {
      coding(param, v);
    } else if (n.type == "CodeableConcept") {
      if (auto cs = member(v, "coding"); cs && cs->is_array())
        for (const auto& c : *cs) coding(param, c);
      text(param + ":text", text_of(member(v, "text")));
    } else if (n.type == "Identifier") {
      const std::string value = text_of(member(v, "value"));
      token(param, text_of(member(v, "system")), value);
      if (auto type = member(v, "type")) {
        if (auto cs = member(*type, "coding"); cs && cs->is_array() && !value.empty())
          for (const auto& c : *cs)
            token(param + ":of-type", text_of(member(c, "system")), text_of(member(c, "code")) + "|" + value);
        text(param + ":text", text_of(member(*type, "text")));
      }
    } else if (n.type == "ContactPoint") {
      token(param, "", text_of(member(v, "value")));
    } else if (n.type == "code") {
      token(param, implied_system, text_of(&v));
    } else if (is_primitive_type(n.type) || n.type.empty()) {
      token(param, "", text_of(&v));
    }
  }

  void as_string(const std::string& param, const fp::Node& n) {
    if (!n.value) return;
    const Json& v = *n.value;
    auto each = [&](const char* name) {
      const Json* m = member(v, name);
      if (!m) return;
      if (m->is_array()) {
        for (const auto& x : *m) text(param, text_of(&x));
      } else {
        text(param, text_of(m));
      }
    };
    if (n.type == "HumanName") {
      for (const char* f : {"family", "given", "prefix", "suffix", "text"}) each(f);
    } else if (n.type == "Address") {
      for (const char* f : {"line", "city", "district", "state", "postalCode", "country", "text"}) each(f);
    } else if (v.is_string()) {
      text(param, v.get<std::string>());
    }
  }

  static std::optional<resources::TimeRange> range_of(const Json* v) {
    if (!v || !v->is_string()) return std::nullopt;
    return resources::parse_fhir_time_range(v->get<std::string>());
  }

  void as_date(const std::string& param, const fp::Node& n) {
    if (!n.value) return;
    const Json& v = *n.value;
    if (n.type == "Period") {
      auto s = range_of(member(v, "start"));
      auto e = range_of(member(v, "end"));
      if (!s && !e) return;
      rows.dates.push_back({param, s ? s->lo : storage::DateRow::kOpenLow, e ? e->hi : storage::DateRow::kOpenHigh});
    } else if (n.type == "Timing") {
      if (auto ev = member(v, "event"); ev && ev->is_array())
        for (const auto& x : *ev)
          if (auto r = range_of(&x)) rows.dates.push_back({param, r->lo, r->hi});
      if (auto rep = member(v, "repeat"))
        if (auto bp = member(*rep, "boundsPeriod")) as_date(param, fp::Node{bp, nullptr, "Period", nullptr, nullptr});
    } else if (auto r = range_of(&v)) {
      rows.dates.push_back({param, r->lo, r->hi});
    }
  }

  void as_number(const std::string& param, const fp::Node& n) {
    if (!n.value) return;
    if (auto d = resources::number_value(*n.value); d && std::isfinite(*d)) rows.numbers.push_back({param, *d});
  }

  void as_quantity(const std::string& param, const fp::Node& n) {
    if (!n.value || !n.value->is_object()) return;
    const Json& v = *n.value;
    auto value = member(v, "value");
    auto d = value ? resources::number_value(*value) : std::nullopt;
    if (!d || !std::isfinite(*d)) return;
    if (n.type == "Money") {
      rows.quantities.push_back({param, *d, "urn:iso:std:iso:4217", text_of(member(v, "currency"))});
      return;
    }
    std::string code = text_of(member(v, "code"));
    if (code.empty()) code = text_of(member(v, "unit"));
    rows.quantities.push_back({param, *d, text_of(member(v, "system")), code});
  }

  void as_uri(const std::string& param, const fp::Node& n) {
    if (n.value && n.value->is_string()) rows.uris.push_back({param, n.value->get<std::string>()});
  }

  void reference_text(const std::string& param, const std::string& ref) {
    if (ref.empty() || ref[0] == '#') return;
    if (auto local = resources::parse_local_reference(ref, base_url)) {
      rows.references.push_back({param, local->type, local->id, {}});
    } else {
      rows.references.push_back({param, {}, {}, std::string(resources::utf8_prefix(ref, 512))});
    }
  }

  void as_reference(const std::string& param, const fp::Node& n) {
    if (!n.value) return;
    const Json& v = *n.value;
    if (n.type == "Reference") {
      reference_text(param, text_of(member(v, "reference")));
      if (auto id = member(v, "identifier"))
        token(param + ":identifier", text_of(member(*id, "system")), text_of(member(*id, "value")));
    } else if (v.is_string()) {
      reference_text(param, v.get<std::string>());  // canonical, uri
    }
  }
};

}  // namespace

namespace {

std::string implied_system_of(const std::string& expression) {
  for (char c : expression)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.') return {};
  const auto* el = resources::TypeModel::instance().find_element(expression);
  if (!el || el->types.size() != 1 || el->types[0].code != "code" || !el->required_codes) return {};
  if (el->required_codes->systems.size() != 1) return {};
  return el->required_codes->systems[0].url;
}

}  // namespace

const Extractor& Extractor::instance() {
  static const Extractor e(Registry::instance());
  return e;
}

const std::vector<std::shared_ptr<CompiledParam>>& Extractor::compiled(std::string_view type) const {
  {
    std::shared_lock lock(mu_);
    auto it = by_type_.find(std::string(type));
    if (it != by_type_.end()) return it->second;
  }
  std::vector<std::shared_ptr<CompiledParam>> list;
  std::vector<std::string> failed;
  for (const SearchParam* p : registry_.for_type(type)) {
    if (p->code == "_id" || p->code == "_lastUpdated" || p->expression.empty()) continue;
    if (p->type == ParamType::kSpecial) continue;
    auto cp = std::make_shared<CompiledParam>();
    cp->param = p;
    cp->implied_system = implied_system_of(p->expression);
    try {
      cp->expr = fp::Expression::parse(p->expression);
      if (p->type == ParamType::kComposite) {
        if (!unsupported_reason(*p).empty()) continue;  // two-part composites starting with a token only
        for (const auto& c : p->components) {
          const SearchParam* cpp = registry_.by_url(c.definition);
          if (!cpp) throw fp::FhirPathError("component " + c.definition + " unknown");
          cp->component_params.push_back(cpp);
          cp->component_exprs.push_back(fp::Expression::parse(c.expression));
        }
      }
    } catch (const fp::FhirPathError& e) {
      failed.push_back(std::string(type) + "." + p->code + ": " + e.what());
      continue;
    }
    list.push_back(std::move(cp));
  }
  std::unique_lock lock(mu_);
  failures_.insert(failures_.end(), failed.begin(), failed.end());
  return by_type_.emplace(std::string(type), std::move(list)).first->second;
}

std::vector<std::string> Extractor::evaluation_error_samples() const {
  std::shared_lock lock(mu_);
  return eval_samples_;
}

std::vector<std::string> Extractor::failures() const {
  std::shared_lock lock(mu_);
  return failures_;
}

namespace {

// Composite rows: each value of the first (token) component paired with each of the second.
void composite_rows(const CompiledParam& cp, const fp::Node& node, const Json& resource, std::string_view base_url,
                    IndexRows& out) {
  IndexRows first, second;
  Emitter e1{base_url, first, {}}, e2{base_url, second, {}};
  const fp::Collection input{node};
  for (const auto& n : cp.component_exprs[0].evaluate(input, resource)) e1.as_token("c", n);
  const SearchParam* p2 = cp.component_params[1];
  for (const auto& n : cp.component_exprs[1].evaluate(input, resource)) {
    switch (p2->type) {
      case ParamType::kToken:
        e2.as_token("c", n);
        break;
      case ParamType::kQuantity:
        e2.as_quantity("c", n);
        break;
      case ParamType::kDate:
        e2.as_date("c", n);
        break;
      case ParamType::kString:
        e2.as_string("c", n);
        break;
      case ParamType::kNumber:
        e2.as_number("c", n);
        break;
      case ParamType::kReference:
        e2.as_reference("c", n);
        break;
      default:
        break;
    }
  }
  const std::string& code = cp.param->code;
  for (const auto& t : first.tokens) {
    if (t.param != "c") continue;
    auto row = [&] {
      storage::CompositeRow r;
      r.param = code;
      r.system1 = t.system;
      r.code1 = t.value;
      return r;
    };
    for (const auto& s : second.tokens) {
      if (s.param != "c") continue;
      auto r = row();
      r.system2 = s.system;
      r.code2 = s.value;
      out.composites.push_back(std::move(r));
    }
    for (const auto& q : second.quantities) {
      auto r = row();
      r.system2 = q.system;
      r.code2 = q.code;
      r.number2 = q.value;
      out.composites.push_back(std::move(r));
    }
    for (const auto& d : second.dates) {
      auto r = row();
      r.lo2 = d.lo;
      r.hi2 = d.hi;
      out.composites.push_back(std::move(r));
    }
    for (const auto& s : second.strings) {
      if (s.param != "c") continue;
      auto r = row();
      r.text2 = s.folded;
      out.composites.push_back(std::move(r));
    }
    for (const auto& n : second.numbers) {
      auto r = row();
      r.number2 = n.value;
      out.composites.push_back(std::move(r));
    }
    for (const auto& ref : second.references) {
      auto r = row();
      r.code2 = ref.url.empty() ? ref.target_type + "/" + ref.target_id : ref.url;
      out.composites.push_back(std::move(r));
    }
  }
}

template <class T>
void dedupe(std::vector<T>& v, auto key) {
  std::sort(v.begin(), v.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
  v.erase(std::unique(v.begin(), v.end(), [&](const T& a, const T& b) { return key(a) == key(b); }), v.end());
}

}  // namespace

IndexRows Extractor::extract(std::string_view type, const Json& resource, std::string_view base_url) const {
  IndexRows rows;
  Emitter e{base_url, rows, {}};
  for (const auto& cp : compiled(type)) {
    const SearchParam& p = *cp->param;
    e.implied_system = cp->implied_system;
    fp::Collection values;
    try {
      values = cp->expr->evaluate(resource);
      for (const auto& n : values) {
        switch (p.type) {
          case ParamType::kToken:
            e.as_token(p.code, n);
            break;
          case ParamType::kString:
            e.as_string(p.code, n);
            break;
          case ParamType::kDate:
            e.as_date(p.code, n);
            break;
          case ParamType::kNumber:
            e.as_number(p.code, n);
            break;
          case ParamType::kQuantity:
            e.as_quantity(p.code, n);
            break;
          case ParamType::kUri:
            e.as_uri(p.code, n);
            break;
          case ParamType::kReference:
            e.as_reference(p.code, n);
            break;
          case ParamType::kComposite:
            composite_rows(*cp, n, resource, base_url, rows);
            break;
          case ParamType::kSpecial:
            break;
        }
      }
    } catch (const fp::FhirPathError& err) {
      // A value the expression cannot handle (say, a type error on odd data) leaves this
      // parameter unindexed for this resource; the write itself is not refused.
      if (eval_errors_.fetch_add(1) < 20) {
        std::unique_lock lock(mu_);
        eval_samples_.push_back(std::string(type) + "." + p.code + ": " + err.what());
      }
      continue;
    }
  }
  dedupe(rows.tokens, [](const storage::TokenRow& r) { return std::tie(r.param, r.system, r.value); });
  dedupe(rows.strings, [](const storage::StringRow& r) { return std::tie(r.param, r.folded, r.exact); });
  dedupe(rows.dates, [](const storage::DateRow& r) { return std::tie(r.param, r.lo, r.hi); });
  dedupe(rows.numbers, [](const storage::NumberRow& r) { return std::tie(r.param, r.value); });
  dedupe(rows.quantities, [](const storage::QuantityRow& r) { return std::tie(r.param, r.value, r.system, r.code); });
  dedupe(rows.uris, [](const storage::UriRow& r) { return std::tie(r.param, r.value); });
  dedupe(rows.references,
         [](const storage::ReferenceRow& r) { return std::tie(r.param, r.target_type, r.target_id, r.url); });
  dedupe(rows.composites, [](const storage::CompositeRow& r) {
    return std::tie(r.param, r.system1, r.code1, r.system2, r.code2, r.text2, r.number2, r.lo2, r.hi2);
  });
  return rows;
}

}  // namespace kasama::search
