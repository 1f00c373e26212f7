#include "resources/narrative.hpp"

#include <algorithm>
#include <climits>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>  // xmlCreateMemoryParserCtxt
#include <libxml/xmlerror.h>

namespace kasama::resources {
namespace {

constexpr std::string_view kXhtmlNamespace = "http://www.w3.org/1999/xhtml";
constexpr std::string_view kXmlNamespace = "http://www.w3.org/XML/1998/namespace";

// The names in txt-1's XPath on Narrative.div (profiles-types.json), in the same order
// (sorted): the elements...
constexpr std::string_view kElements[] = {
    "a",   "abbr", "acronym", "b",     "big", "blockquote", "br",  "caption", "cite", "code",  "col",  "colgroup",
    "dd",  "dfn",  "div",     "dl",    "dt",  "em",         "h1",  "h2",      "h3",   "h4",    "h5",   "h6",
    "hr",  "i",    "img",     "li",    "ol",  "p",          "pre", "q",       "samp", "small", "span", "strong",
    "sub", "sup",  "table",   "tbody", "td",  "tfoot",      "th",  "thead",   "tr",   "tt",    "ul",   "var",
};
// ...and the attributes.
constexpr std::string_view kAttributes[] = {
    "abbr",        "accesskey",  "align",  "alt",     "axis",    "bgcolor", "border",   "cellhalign", "cellpadding",
    "cellspacing", "cellvalign", "char",   "charoff", "charset", "cite",    "class",    "colspan",    "compact",
    "coords",      "dir",        "frame",  "headers", "height",  "href",    "hreflang", "hspace",     "id",
    "lang",        "longdesc",   "name",   "nowrap",  "rel",     "rev",     "rowspan",  "rules",      "scope",
    "shape",       "span",       "src",    "start",   "style",   "summary", "tabindex", "title",      "type",
    "valign",      "value",      "vspace", "width",
};
static_assert(std::is_sorted(std::begin(kElements), std::end(kElements)));
static_assert(std::is_sorted(std::begin(kAttributes), std::end(kAttributes)));

// Attributes holding a URL a browser would follow or load.
bool is_url_attribute(std::string_view name) {
  return name == "href" || name == "src" || name == "cite" || name == "longdesc";
}

std::string_view view(const xmlChar* s) {
  return s == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(s));
}

bool is_xml_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool has_non_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return !is_xml_space(c); });
}

// Whether a URL runs script when followed: browsers ignore leading spaces and control
// characters and tabs/newlines anywhere in the scheme, and schemes are case-insensitive.
bool is_script_url(std::string_view url) {
  char scheme[12];
  std::size_t n = 0;
  for (char ch : url) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20) continue;
    if (c == ':') {
      const std::string_view s(scheme, n);
      return s == "javascript" || s == "vbscript";
    }
    if (n == sizeof scheme) return false;
    scheme[n++] = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return false;
}

void init_libxml2() {
  // xmlInitParser is not safe to race; a function-local static makes the first call do it.
  static const bool initialised = [] {
    xmlInitParser();
    return true;
  }();
  (void)initialised;
}

std::string_view view(const xmlChar* s, int len) {
  return s == nullptr || len <= 0 ? std::string_view()
                                  : std::string_view(reinterpret_cast<const char*>(s), static_cast<std::size_t>(len));
}

// Streams the parser's SAX events through the txt-1/txt-2 checks; no tree is built.
class Checker {
 public:
  explicit Checker(std::vector<std::string>& problems) : problems_(problems) {}

  // Parses and checks; the problems are in the vector given to the constructor.
  void run(std::string_view xhtml) {
    xmlSAXHandler sax{};
    sax.initialized = XML_SAX2_MAGIC;
    sax.startElementNs = &Checker::on_start;
    sax.endElementNs = &Checker::on_end;
    sax.characters = &Checker::on_text;
    sax.ignorableWhitespace = &Checker::on_text;
    sax.cdataBlock = &Checker::on_text;
    sax.processingInstruction = &Checker::on_pi;
    sax.internalSubset = &Checker::on_doctype;
    sax.serror = &Checker::on_error;

    xmlParserCtxt* ctxt = xmlCreateMemoryParserCtxt(xhtml.data(), static_cast<int>(xhtml.size()));
    if (ctxt == nullptr) {
      problems_.push_back("the narrative could not be checked (out of memory)");
      return;
    }
    xmlSAXHandler* own = ctxt->sax;
    ctxt->sax = &sax;
    ctxt->userData = this;
    ctxt_ = ctxt;
    // No XML_PARSE_NOENT (entity substitution), DTDLOAD, DTDATTR, XINCLUDE or HUGE (which
    // lifts the depth and size limits); no network; the text is UTF-8 whatever an XML
    // declaration says.
    xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC);
    xmlParseDocument(ctxt);
    const bool well_formed = ctxt->wellFormed != 0 && ctxt->nsWellFormed != 0 && !error_.seen;
    ctxt->sax = own;
    xmlFreeParserCtxt(ctxt);
    ctxt_ = nullptr;
    if (!well_formed && !stopped_) {
      // What was seen before the error may be a consequence of it; the error is the problem.
      problems_.clear();
      problems_.push_back(parse_error_message());
      return;
    }
    if (!seen_root_) {
      report("the narrative has no root element; it must be a <div> in the XHTML namespace");
    } else if (!has_content_) {
      report("the narrative has no content: it must contain some non-whitespace text or an image (txt-2)");
    }
  }

 private:
  static Checker& self(void* ctx) { return *static_cast<Checker*>(ctx); }

  void report(std::string message) {
    if (problems_.size() >= kMaxNarrativeProblems) return;
    if (std::find(problems_.begin(), problems_.end(), message) != problems_.end()) return;
    problems_.push_back(std::move(message));
    if (problems_.size() >= kMaxNarrativeProblems && ctxt_ != nullptr) {
      stopped_ = true;
      xmlStopParser(ctxt_);
    }
  }

  static std::string qualified(const xmlChar* prefix, const xmlChar* name) {
    std::string out;
    if (prefix != nullptr) {
      out += view(prefix);
      out += ':';
    }
    out += view(name);
    return out;
  }

  static void on_start(void* ctx, const xmlChar* localname, const xmlChar* prefix, const xmlChar* uri, int,
                       const xmlChar**, int nb_attributes, int, const xmlChar** attributes) {
    Checker& c = self(ctx);
    const std::string_view name = view(localname);
    const bool xhtml = view(uri) == kXhtmlNamespace;
    auto tag = [&] { return "<" + qualified(prefix, localname) + ">"; };
    // An element that is not allowed is reported once; its attributes are then moot.
    bool allowed = true;
    if (c.depth_++ == 0) {
      c.seen_root_ = true;
      if (name != "div" || !xhtml) {
        c.report("the root element must be a <div> in the XHTML namespace (<div xmlns=\"" +
                 std::string(kXhtmlNamespace) + "\">), not " + tag() + namespace_note(uri));
        allowed = false;
      }
    } else if (!xhtml) {
      c.report(tag() + " is not an XHTML element (" + namespace_note(uri).substr(1) + ")");
      allowed = false;
    } else if (!is_narrative_element(name)) {
      c.report(tag() + " is not allowed in narrative");
      allowed = false;
    }
    if (!allowed) return;
    // attributes: localname, prefix, URI, value, end for each.
    for (int i = 0; i < nb_attributes; ++i) {
      const xmlChar* const* a = attributes + 5 * i;
      const std::string_view attr = view(a[0]);
      const std::string_view value(reinterpret_cast<const char*>(a[3]), static_cast<std::size_t>(a[4] - a[3]));
      if (a[2] != nullptr) {
        if (view(a[2]) == kXmlNamespace && attr == "lang") continue;
        c.report("attribute " + qualified(a[1], a[0]) + " on " + tag() + " is not allowed in narrative");
        continue;
      }
      if (!is_narrative_attribute(attr)) {
        const bool event = attr.size() > 2 && (attr[0] == 'o' || attr[0] == 'O') && (attr[1] == 'n' || attr[1] == 'N');
        c.report(std::string(event ? "event attribute " : "attribute ") + std::string(attr) + " on " + tag() +
                 " is not allowed in narrative");
        continue;
      }
      if (is_url_attribute(attr) && is_script_url(value)) {
        c.report("the " + std::string(attr) + " of " + tag() + " is a script URL, which is not allowed in narrative");
      }
      if (attr == "src" && name == "img") c.has_content_ = true;
    }
  }

  static std::string namespace_note(const xmlChar* uri) {
    if (uri == nullptr) return " without a namespace";
    if (view(uri) != kXhtmlNamespace) return " in namespace " + std::string(view(uri));
    return {};
  }

  static void on_end(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) { --self(ctx).depth_; }

  static void on_text(void* ctx, const xmlChar* text, int len) {
    Checker& c = self(ctx);
    if (!c.has_content_ && has_non_space(view(text, len))) c.has_content_ = true;
  }

  static void on_pi(void* ctx, const xmlChar* target, const xmlChar*) {
    self(ctx).report("processing instructions (<?" + std::string(view(target)) +
                     " ...?>) are not allowed in narrative");
  }

  // check_narrative refuses a DOCTYPE before parsing; this stops the parser should one get
  // through all the same, before any declaration in it is read.
  static void on_doctype(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
    Checker& c = self(ctx);
    c.report("a DOCTYPE is not allowed in narrative");
    c.stopped_ = true;
    if (c.ctxt_ != nullptr) xmlStopParser(c.ctxt_);
  }

  // The first error is kept: later ones ("Premature end of data") are its consequences.
  static void on_error(void* ctx, xmlErrorPtr error) {
    Checker& c = self(ctx);
    if (c.error_.seen || error == nullptr || error->level < XML_ERR_ERROR) return;
    c.error_.seen = true;
    c.error_.message = error->message != nullptr ? error->message : "";
    c.error_.line = error->line;
    c.error_.column = error->int2;
  }

  std::string parse_error_message() const {
    std::string out = "the narrative is not well-formed XML";
    std::string what = error_.message;
    while (!what.empty() && is_xml_space(what.back())) what.pop_back();
    if (what.empty()) return out;
    if (what.size() > 200) what = what.substr(0, 200) + "...";
    out += ": " + what;
    if (error_.line > 0) {
      out += " (line " + std::to_string(error_.line) +
             (error_.column > 0 ? ", column " + std::to_string(error_.column) : "") + ")";
    }
    return out;
  }

  struct Error {
    bool seen = false;
    std::string message;
    int line = 0;
    int column = 0;
  };

  std::vector<std::string>& problems_;
  xmlParserCtxt* ctxt_ = nullptr;
  Error error_;
  int depth_ = 0;
  bool seen_root_ = false;
  bool has_content_ = false;
  bool stopped_ = false;  // by the checker: enough problems, or a DOCTYPE
};

}  // namespace

std::span<const std::string_view> narrative_element_names() {
  return kElements;
}
std::span<const std::string_view> narrative_attribute_names() {
  return kAttributes;
}

bool is_narrative_element(std::string_view local_name) {
  return std::binary_search(std::begin(kElements), std::end(kElements), local_name);
}

bool is_narrative_attribute(std::string_view name) {
  return std::binary_search(std::begin(kAttributes), std::end(kAttributes), name);
}

std::vector<std::string> check_narrative(std::string_view xhtml) {
  std::vector<std::string> problems;
  // A DTD could declare entities (external ones read files or URLs, nested ones expand
  // without bound); narrative never needs one, so it is refused before parsing.
  if (xhtml.find("<!DOCTYPE") != std::string_view::npos) {
    problems.push_back("a DOCTYPE is not allowed in narrative");
    return problems;
  }
  if (xhtml.size() > static_cast<std::size_t>(INT_MAX)) {
    problems.push_back("the narrative is too large to check");
    return problems;
  }
  init_libxml2();
  Checker(problems).run(xhtml);
  return problems;
}

}  // namespace kasama::resources
