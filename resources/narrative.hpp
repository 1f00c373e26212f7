#pragma once
// The rules for narrative XHTML (Narrative.div, type xhtml): narrative.html, datatypes.html
// #xhtml and the invariants on Narrative.div in the R4 definitions (profiles-types.json):
// - the value is well-formed XML whose root is a <div> in the XHTML namespace;
// - txt-1: only the basic XHTML formatting elements and attributes (the lists below are the
//   ones txt-1's XPath names), so no script, style, head, body, form, iframe, object, base,
//   link, meta..., no event attributes (onclick...), no attributes in other namespaces
//   (xlink:href); xml:lang is allowed as the XML spelling of lang;
// - txt-2: some non-whitespace text, or an <img> with a src;
// - no active content: href/src/cite/longdesc are not javascript: or vbscript: URLs, and
//   there are no processing instructions (<?xml-stylesheet?>) and no DOCTYPE.
// Parsing uses libxml2 without network access, DTD loading or entity substitution, and a
// value with a DOCTYPE is refused before parsing, so no external or custom entity is ever read.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kasama::resources {

inline constexpr std::size_t kMaxNarrativeProblems = 10;

// What is wrong with an xhtml value, one plain-English message per problem (each distinct
// problem once, at most kMaxNarrativeProblems); empty when the narrative is valid.
std::vector<std::string> check_narrative(std::string_view xhtml);

// The names txt-1 allows, sorted: element local names (in the XHTML namespace) and attribute
// names (without namespace).
std::span<const std::string_view> narrative_element_names();
std::span<const std::string_view> narrative_attribute_names();
bool is_narrative_element(std::string_view local_name);
bool is_narrative_attribute(std::string_view name);

}  // namespace kasama::resources
