#!/usr/bin/env python3
"""Derives conformance/r4/type-model.json from the official FHIR R4 StructureDefinitions.

The server needs the element tree of every resource and datatype (names, types, cardinality,
bindings, a few flags) for validation, JSON<->XML conversion and search, but not the
narrative, mappings and invariants that make the originals 37 MB. This keeps the former
and drops the latter, so the derived file is small enough to commit and to load at start-up.

Usage: tools/gen_type_model.py [--fhir-dir DIR] [--out FILE]
Defaults: ../shared/fhir-r4 next to the project, conformance/r4/type-model.json in it.
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
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    text = json.dumps(model, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.write("\n")
    print(f"wrote {args.out}: {len(types)} types, {len(text)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
