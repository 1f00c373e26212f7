#!/usr/bin/env python3
"""Derives conformance/r4/type-model.json from the official FHIR R4 StructureDefinitions.

The server needs the element tree of every resource and datatype (names, types, cardinality,
bindings, a few flags) for validation, JSON<->XML conversion and search, but not the
narrative, mappings and invariants that make the originals 37 MB. This keeps the former
and drops the latter, so the derived file is small enough to commit and to load at start-up.

It also writes conformance/r4/required-codes.json: the codes of every value set that a
required binding on a code, Coding or CodeableConcept element names, expanded from the
ValueSets and CodeSystems in valuesets.json, so that the validator can check those codes
without a terminology server. Value sets whose contents cannot be known from those files
(SNOMED CT, LOINC, UCUM, MIME types, filters...) are listed as skipped, with the reason.

Usage: tools/gen_type_model.py [--fhir-dir DIR] [--out FILE] [--codes-out FILE]
Defaults: ../shared/fhir-r4 next to the project, conformance/r4/type-model.json and
conformance/r4/required-codes.json in it.
Standard library only; the output is deterministic (same input -> same bytes).
"""

import argparse
import json
import os
import sys

FHIR_VERSION = "4.0.1"
SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
FHIR_TYPE_EXT = SD_PREFIX + "structuredefinition-fhir-type"
REGEX_EXT = SD_PREFIX + "regex"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."

# How each primitive is written in JSON (json.html): only these are not JSON strings.
JSON_BOOLEAN = {"boolean"}
JSON_NUMBER = {"integer", "positiveInt", "unsignedInt", "decimal"}

ABOUT = (
    "Derived by tools/gen_type_model.py from the HL7 FHIR R4 4.0.1 StructureDefinitions "
    "(profiles-types.json, profiles-resources.json; CC0). Do not edit by hand. "
    "types[name]: kind primitive|datatype|resource, abstract, base, constraintOn (profiles "
    "such as SimpleQuantity), json (primitives: boolean|number|string), regex and maxLength "
    "(primitives, from their .value element), elements (snapshot order, root and primitive "
    ".value omitted). Element: path (last segment is the JSON name; a [x] suffix marks a "
    "choice whose JSON names are name + capitalised type code), min (omitted when 0), max "
    "('1', '*' or a number), types [{code, targets (Reference/canonical target type names), "
    "profile}], contentReference (path whose children are reused), binding {strength, "
    "valueSet}, flags modifier, summary, xmlAttr (an XML attribute, so no _x extensions), xhtml."
)


CODES_ABOUT = (
    "Derived by tools/gen_type_model.py from the HL7 FHIR R4 4.0.1 ValueSets and CodeSystems "
    "(valuesets.json; CC0). Do not edit by hand. valueSets[url] (url without |version): the "
    "codes of a value set bound with strength required to a code, Coding or CodeableConcept "
    "element of type-model.json, as {system: [code, ...]} in definition order. An include of a "
    "whole code system takes all its concepts (nested ones too) except those marked "
    "notSelectable; an include with a concept list takes those; an include of other value "
    "sets takes their codes (intersected when several, or with a system). skipped[url]: value "
    "sets that are bound but whose contents are not knowable from the core definitions "
    "(external terminologies, filters, code systems not included or not complete), with the "
    "reason; their codes are not checked."
)


class NotExpandable(Exception):
    """A value set whose codes cannot be known from the core definitions alone."""


class Terminology:
    """The ValueSets and CodeSystems of valuesets.json, indexed by canonical URL."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            bundle = json.load(f)
        self.value_sets = {}
        self.code_systems = {}
        for entry in bundle.get("entry", []):
            res = entry.get("resource", {})
            if res.get("resourceType") == "ValueSet":
                self.value_sets[res["url"]] = res
            elif res.get("resourceType") == "CodeSystem":
                self.code_systems[res["url"]] = res
        self._cache = {}

    def expand(self, url, stack=()):
        """{system: [codes]} of a value set; raises NotExpandable with the reason."""
        url = url.split("|", 1)[0]
        if url in self._cache:
            return self._cache[url]
        if url in stack:
            raise NotExpandable(f"value set {url} includes itself")
        vs = self.value_sets.get(url)
        if vs is None:
            raise NotExpandable(f"value set {url} is not in the core definitions")
        if vs.get("version") != FHIR_VERSION:
            # The redistributed file carries an R5 (5.0.0) DetectedIssue status value set
            # in place of R4's; its codes are not R4's, so it is not trusted.
            raise NotExpandable(f"value set {url} is version {vs.get('version')}, not {FHIR_VERSION}")
        compose = vs.get("compose")
        if not compose or not compose.get("include"):
            raise NotExpandable(f"value set {url} has no compose.include")
        codes = {}
        for inc in compose["include"]:
            add_codes(codes, self.include(inc, url, stack + (url,)))
        for exc in compose.get("exclude", []):
            for system, excluded in self.include(exc, url, stack + (url,)).items():
                if system in codes:
                    gone = set(excluded)
                    codes[system] = [c for c in codes[system] if c not in gone]
        codes = {system: cs for system, cs in codes.items() if cs}
        if not codes:
            raise NotExpandable(f"value set {url} has no codes")
        self._cache[url] = codes
        return codes

    def include(self, inc, url, stack):
        """The codes one compose.include (or exclude) selects."""
        if inc.get("filter"):
            raise NotExpandable(f"value set {url} selects codes of {inc.get('system')} by filter")
        selected = None
        system = inc.get("system")
        if system:
            if inc.get("concept"):
                selected = {system: unique(c["code"] for c in inc["concept"])}
            else:
                selected = {system: self.all_codes(system, url)}
            if inc.get("version") and inc["version"] != self.code_systems.get(system, {}).get("version"):
                raise NotExpandable(f"value set {url} needs version {inc['version']} of {system}")
        for other in inc.get("valueSet", []):
            codes = self.expand(other, stack)
            selected = codes if selected is None else intersect(selected, codes)
        if selected is None:
            raise NotExpandable(f"value set {url} has an include with neither system nor valueSet")
        return selected

    def all_codes(self, system, url):
        cs = self.code_systems.get(system)
        if cs is None:
            raise NotExpandable(f"value set {url} needs code system {system}, which is not in the core definitions")
        if cs.get("content") != "complete":
            raise NotExpandable(f"value set {url} needs code system {system}, whose content is {cs.get('content')}")
        if system.startswith("http://hl7.org/fhir/") and cs.get("version") != FHIR_VERSION:
            raise NotExpandable(f"value set {url} needs code system {system} version {cs.get('version')}, not {FHIR_VERSION}")
        out = []

        def walk(concepts):
            for c in concepts:
                # Abstract grouping codes (item-type 'question') are not for use in instances.
                abstract = any(p.get("code") == "notSelectable" and p.get("valueBoolean")
                               for p in c.get("property", []))
                if not abstract:
                    out.append(c["code"])
                walk(c.get("concept", []))

        walk(cs.get("concept", []))
        return unique(out)


def unique(codes):
    seen = set()
    return [c for c in codes if not (c in seen or seen.add(c))]


def add_codes(into, codes):
    for system, cs in codes.items():
        into[system] = unique(into.get(system, []) + cs)


def intersect(a, b):
    return {system: [c for c in cs if c in set(b.get(system, []))] for system, cs in a.items() if system in b}


CODED_TYPES = {"code", "Coding", "CodeableConcept"}


def required_codes(types, terminology):
    """The document of required-codes.json for the required bindings in `types`."""
    bound = set()
    for t in types.values():
        for el in t.get("elements", []):
            b = el.get("binding")
            if not b or b["strength"] != "required" or not b.get("valueSet"):
                continue
            if any(ty["code"] in CODED_TYPES for ty in el.get("types", [])):
                bound.add(b["valueSet"].split("|", 1)[0])
    value_sets = {}
    skipped = {}
    for url in sorted(bound):
        try:
            value_sets[url] = terminology.expand(url)
        except NotExpandable as e:
            skipped[url] = str(e)
    return {"about": CODES_ABOUT, "fhirVersion": FHIR_VERSION, "valueSets": value_sets, "skipped": skipped}


def write_json(path, doc):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.write("\n")
    return len(text) + 1


def load_sds(path):
    with open(path, encoding="utf-8") as f:
        bundle = json.load(f)
    for entry in bundle.get("entry", []):
        res = entry.get("resource", {})
        if res.get("resourceType") == "StructureDefinition":
            yield res


def extension_value(obj, url, key):
    for ext in obj.get("extension", []):
        if ext.get("url") == url:
            return ext.get(key)
    return None


def type_code(t, element_path, base_path):
    """The FHIR type name of one ElementDefinition.type entry.

    Elements whose value is really a primitive's `value` use FHIRPath system types in R4
    (System.String...) with the FHIR type in an extension; map those back.
    """
    code = t["code"]
    if code.startswith(SYSTEM_PREFIX):
        # Resource.id is declared System.String/"string" but json.html and the spec's
        # resource pages define it as type id (the value that appears in URLs).
        if base_path == "Resource.id":
            return "id"
        fhir_type = extension_value(t, FHIR_TYPE_EXT, "valueUrl")
        if fhir_type:
            return fhir_type
        # Only xhtml.id lacks the extension; it is an Element.id like every other.
        fallback = {"String": "string", "Boolean": "boolean", "Integer": "integer",
                    "Decimal": "decimal", "Date": "date", "DateTime": "dateTime", "Time": "time"}
        return fallback[code[len(SYSTEM_PREFIX):]]
    return code


def type_name_from_url(url):
    """The core type a targetProfile/profile URL names, or None for non-core URLs.

    The redistributed copy adds two vendor targets (medplum Bot, ClientApplication) to
    AuditEvent.source.observer; they are not R4 types, so they are dropped.
    """
    if not url.startswith(SD_PREFIX):
        return None
    return url[len(SD_PREFIX):]


def convert_element(el, known_types):
    out = {"path": el["path"]}
    if el.get("min", 0):
        out["min"] = el["min"]
    out["max"] = el["max"]
    types = []
    for t in el.get("type", []):
        entry = {"code": type_code(t, el["path"], el.get("base", {}).get("path", ""))}
        targets = [type_name_from_url(u) for u in t.get("targetProfile", [])]
        targets = [n for n in targets if n in known_types]
        if targets:
            entry["targets"] = targets
        profiles = [n for n in (type_name_from_url(u) for u in t.get("profile", [])) if n in known_types]
        if profiles:
            entry["profile"] = profiles[0]
        types.append(entry)
    if types:
        out["types"] = types
    if "contentReference" in el:
        out["contentReference"] = el["contentReference"].lstrip("#")
    binding = el.get("binding")
    if binding:
        b = {"strength": binding["strength"]}
        if binding.get("valueSet"):
            b["valueSet"] = binding["valueSet"]
        out["binding"] = b
    if el.get("isModifier"):
        out["modifier"] = True
    if el.get("isSummary"):
        out["summary"] = True
    rep = el.get("representation", [])
    if "xmlAttr" in rep:
        out["xmlAttr"] = True
    if "xhtml" in rep or any(t.get("code") == "xhtml" for t in el.get("type", [])):
        out["xhtml"] = True
    return out


def convert_sd(sd, known_types):
    kind = {"primitive-type": "primitive", "complex-type": "datatype", "resource": "resource"}[sd["kind"]]
    out = {"kind": kind}
    if sd.get("abstract"):
        out["abstract"] = True
    base = sd.get("baseDefinition")
    if base:
        out["base"] = type_name_from_url(base)
    if sd.get("derivation") == "constraint":
        out["constraintOn"] = sd["type"]
    root = sd["type"]
    elements = []
    for el in sd["snapshot"]["element"]:
        path = el["path"]
        if path == root:
            continue
        if kind == "primitive" and path == root + ".value":
            # The primitive's own value: its regex and limits describe the type itself.
            regex = None
            for t in el.get("type", []):
                regex = regex or extension_value(t, REGEX_EXT, "valueString")
            if regex:
                out["regex"] = regex
            if "maxLength" in el:
                out["maxLength"] = el["maxLength"]
            continue
        if "sliceName" in el:
            continue  # core snapshots carry no slices, but a derived input might
        elements.append(convert_element(el, known_types))
    if kind == "primitive":
        out["json"] = "boolean" if root in JSON_BOOLEAN else "number" if root in JSON_NUMBER else "string"
    if elements:
        out["elements"] = elements
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    project = os.path.dirname(here)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fhir-dir", default=os.path.join(project, "..", "shared", "fhir-r4"))
    parser.add_argument("--out", default=os.path.join(project, "conformance", "r4", "type-model.json"))
    parser.add_argument("--codes-out", default=os.path.join(project, "conformance", "r4", "required-codes.json"))
    args = parser.parse_args()

    sds = []
    for name in ("profiles-types.json", "profiles-resources.json"):
        for sd in load_sds(os.path.join(args.fhir_dir, name)):
            if sd.get("kind") not in ("primitive-type", "complex-type", "resource"):
                continue  # logical models (MetadataResource) have no instances
            if sd.get("fhirVersion") != FHIR_VERSION:
                # The redistributed bundle also carries R4B additions (SubscriptionStatus 4.3.0).
                continue
            sds.append(sd)
    sds.sort(key=lambda sd: sd["name"])
    known = {sd["name"] for sd in sds}

    types = {}
    for sd in sds:
        if sd["name"] in types:
            raise SystemExit(f"duplicate type {sd['name']}")
        types[sd["name"]] = convert_sd(sd, known)

    # Every type code an element uses must be defined here, or lookups would dangle.
    for name, t in types.items():
        for el in t.get("elements", []):
            for ty in el.get("types", []):
                if ty["code"] not in types:
                    raise SystemExit(f"{el['path']}: unknown type {ty['code']}")

    def listed(kind):
        return sorted(n for n, t in types.items()
                      if t["kind"] == kind and not t.get("abstract") and "constraintOn" not in t)

    model = {
        "about": ABOUT,
        "fhirVersion": FHIR_VERSION,
        "resources": listed("resource"),
        "datatypes": listed("datatype"),
        "primitives": listed("primitive"),
        "abstract": sorted(n for n, t in types.items() if t.get("abstract")),
        "profiles": sorted(n for n, t in types.items() if "constraintOn" in t),
        "types": types,
    }
    size = write_json(args.out, model)
    print(f"wrote {args.out}: {len(types)} types, {size} bytes", file=sys.stderr)

    codes = required_codes(types, Terminology(os.path.join(args.fhir_dir, "valuesets.json")))
    size = write_json(args.codes_out, codes)
    print(f"wrote {args.codes_out}: {len(codes['valueSets'])} value sets expanded, "
          f"{len(codes['skipped'])} skipped, {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
