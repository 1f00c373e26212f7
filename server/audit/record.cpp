#include "server/audit/record.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "resources/fhir_time.hpp"
#include "server/storage/hash.hpp"

namespace kasama::audit {

using resources::Json;

const std::string kGenesis(64, '0');

namespace {

void field(std::string& out, std::string_view v) {
  out += std::to_string(v.size());
  out += ':';
  out += v;
}

bool id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

bool type_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

// The JSON string value after `"key"` at pos (allowing whitespace around ':'), or empty.
std::string_view string_value(std::string_view s, std::size_t pos) {
  while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) ++pos;
  if (pos >= s.size() || s[pos] != ':') return {};
  ++pos;
  while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) ++pos;
  if (pos >= s.size() || s[pos] != '"') return {};
  const std::size_t start = ++pos;
  while (pos < s.size() && s[pos] != '"' && s[pos] != '\\') ++pos;
  if (pos >= s.size() || s[pos] != '"') return {};  // escapes never occur in ids and types
  return s.substr(start, pos - start);
}

// Letters only, starting upper case, at most 64: what a resource type name can be (a body may
// name anything; only such names reach the record's ASCII columns).
bool resource_type_name(std::string_view t) {
  return !t.empty() && t.size() <= 64 && t[0] >= 'A' && t[0] <= 'Z' && std::all_of(t.begin(), t.end(), type_char);
}

// "…/Type/id[/_history/v]" or "Type/id" → (Type, id); empty when it is not such a reference.
std::pair<std::string_view, std::string_view> type_and_id(std::string_view ref) {
  if (const auto h = ref.find("/_history/"); h != std::string_view::npos) ref = ref.substr(0, h);
  const auto slash = ref.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  std::string_view id = ref.substr(slash + 1);
  std::string_view before = ref.substr(0, slash);
  const auto prev = before.rfind('/');
  std::string_view type = prev == std::string_view::npos ? before : before.substr(prev + 1);
  if (type.empty() || id.empty() || id.size() > 64 || !std::isupper(static_cast<unsigned char>(type[0]))) return {};
  for (char c : type) {
    if (!type_char(c)) return {};
  }
  for (char c : id) {
    if (!id_char(c)) return {};
  }
  return {type, id};
}

// Calls fn(value) for every "key": "value" in s.
template <typename Fn>
void each_value(std::string_view s, std::string_view quoted_key, Fn fn) {
  std::size_t pos = 0;
  while ((pos = s.find(quoted_key, pos)) != std::string_view::npos) {
    pos += quoted_key.size();
    const std::string_view v = string_value(s, pos);
    if (!v.empty()) fn(v);
  }
}

}  // namespace

std::string canonical(const AuditRow& r) {
  std::string out;
  out.reserve(256 + r.path.size() + r.patients.size() + r.entities.size() + r.detail.size());
  field(out, std::to_string(r.id));
  field(out, std::to_string(r.tenant));
  field(out, std::to_string(r.recorded));
  field(out, r.request_id);
  field(out, r.interaction);
  field(out, r.action);
  field(out, r.method);
  field(out, r.path);
  field(out, std::to_string(r.status));
  field(out, std::to_string(r.outcome));
  field(out, r.denied ? "1" : "0");
  field(out, r.account_id);
  field(out, r.role);
  field(out, r.institution_id);
  field(out, r.fhir_user);
  field(out, r.client_id);
  field(out, r.terminal_id);
  field(out, r.peer);
  field(out, r.patient_context);
  field(out, r.patients);
  field(out, r.entities);
  field(out, r.detail);
  return out;
}

namespace {

// One length-prefixed field at pos; false when the bytes do not hold one.
bool next_field(std::string_view in, std::size_t& pos, std::string& out) {
  std::size_t len = 0;
  const std::size_t start = pos;
  while (pos < in.size() && in[pos] >= '0' && in[pos] <= '9' && pos - start < 9) len = len * 10 + (in[pos++] - '0');
  if (pos == start || pos >= in.size() || in[pos] != ':') return false;
  if (pos - start > 1 && in[start] == '0') return false;  // canonical() writes no leading zeros
  ++pos;
  if (in.size() - pos < len) return false;
  out.assign(in.substr(pos, len));
  pos += len;
  return true;
}

bool to_number(const std::string& s, std::int64_t& out) {
  if (s.empty() || s.size() > 18 || (s.size() > 1 && s[0] == '0')) return false;  // only what canonical() writes
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::optional<AuditRow> decode_canonical(std::string_view in) {
  AuditRow r;
  std::size_t pos = 0;
  std::string f[22];
  for (auto& x : f) {
    if (!next_field(in, pos, x)) return std::nullopt;
  }
  if (pos != in.size()) return std::nullopt;
  std::int64_t id = 0, tenant = 0, recorded = 0, status = 0, outcome = 0;
  if (!to_number(f[0], id) || !to_number(f[1], tenant) || tenant > 65535 || !to_number(f[2], recorded) ||
      !to_number(f[8], status) || !to_number(f[9], outcome) || (f[10] != "0" && f[10] != "1")) {
    return std::nullopt;
  }
  r.tenant = static_cast<unsigned>(tenant);
  r.id = static_cast<std::uint64_t>(id);
  r.recorded = recorded;
  r.request_id = std::move(f[3]);
  r.interaction = std::move(f[4]);
  r.action = std::move(f[5]);
  r.method = std::move(f[6]);
  r.path = std::move(f[7]);
  r.status = static_cast<int>(status);
  r.outcome = static_cast<int>(outcome);
  r.denied = f[10] == "1";
  r.account_id = std::move(f[11]);
  r.role = std::move(f[12]);
  r.institution_id = std::move(f[13]);
  r.fhir_user = std::move(f[14]);
  r.client_id = std::move(f[15]);
  r.terminal_id = std::move(f[16]);
  r.peer = std::move(f[17]);
  r.patient_context = std::move(f[18]);
  r.patients = std::move(f[19]);
  r.entities = std::move(f[20]);
  r.detail = std::move(f[21]);
  return r;
}

std::string digest_entry(const AuditRow& row) {
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(row.id));
  return std::string(id, 16) + storage::sha256_hex(canonical(row));
}

std::string block_hash(const std::string& prev_hash_hex, const storage::SealRow& s) {
  return storage::sha256_hex(prev_hash_hex + std::to_string(s.first_id) + ":" + std::to_string(s.last_id) + ":" +
                             std::to_string(s.prev_id) + ":" + std::to_string(s.events) + ":" + s.digests);
}

void Touched::entity(std::string_view type, std::string_view id, bool touched) {
  if (type.empty() || id.empty()) return;
  if (type == "Patient" && touched) patient(id);
  if (entities.size() >= kMaxEntities) {
    truncated = true;
    return;
  }
  std::string key;
  key.reserve(type.size() + 1 + id.size());
  key.append(type).append("/").append(id);
  entities.insert(std::move(key));
}

void Touched::patient(std::string_view id) {
  if (id.empty()) return;
  if (patients.size() >= kMaxPatients) {
    truncated = true;
    return;
  }
  patients.emplace(id);
}

namespace {
std::string joined(const std::set<std::string>& s) {
  std::string out;
  for (const auto& v : s) {
    if (!out.empty()) out += ' ';
    out += v;
  }
  return out;
}
}  // namespace

std::string Touched::entities_text() const {
  return joined(entities);
}
std::string Touched::patients_text() const {
  return joined(patients);
}

void scan_body(std::string_view s, Touched& out) {
  if (s.empty() || s.front() != '{') return;
  // Search and history entries name their resources by fullUrl.
  each_value(s, "\"fullUrl\"", [&](std::string_view v) {
    auto [type, id] = type_and_id(v);
    if (!type.empty()) out.entity(type, id);
  });
  // Every resource in the body (a batch-response entry has no fullUrl): its resourceType and
  // the first "id" before the next resourceType.
  constexpr std::string_view kRt = "\"resourceType\"";
  std::size_t pos = s.find(kRt);
  while (pos != std::string_view::npos) {
    const std::string_view type = string_value(s, pos + kRt.size());
    const std::size_t next = s.find(kRt, pos + kRt.size());
    // Only up to the next resourceType: a body of many id-less resources stays linear.
    const std::string_view span = s.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    const std::size_t idk = span.find("\"id\"");
    if (resource_type_name(type) && type != "Bundle" && type != "OperationOutcome" && type != "Parameters" &&
        idk != std::string_view::npos) {
      const std::string_view id = string_value(span, idk + 4);
      if (!id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), id_char)) out.entity(type, id);
    }
    pos = next;
  }
  // A write's answer, or each entry's in a transaction-response: where the resource is.
  each_value(s, "\"location\"", [&](std::string_view v) {
    auto [type, id] = type_and_id(v);
    if (!type.empty()) out.entity(type, id);
  });
  // Whose data: every reference to a Patient (subject, patient, beneficiary, …).
  each_value(s, "\"reference\"", [&](std::string_view v) {
    auto [type, id] = type_and_id(v);
    if (type == "Patient") out.patient(id);
  });
}

std::string action_of(std::string_view interaction, std::string_view method) {
  if (interaction == "create") return "C";
  if (interaction == "read" || interaction == "vread" || interaction == "search-type" ||
      interaction == "search-system" || interaction == "search-compartment" || interaction == "history-instance" ||
      interaction == "history-type" || interaction == "history-system" || interaction == "capabilities") {
    return "R";
  }
  if (interaction == "update" || interaction == "patch") return "U";
  if (interaction == "delete") return "D";
  if (interaction == "operation" || interaction == "batch" || interaction == "transaction") return "E";
  if (method == "GET" || method == "HEAD") return "R";
  if (method == "PUT" || method == "PATCH") return "U";
  if (method == "DELETE") return "D";
  return "E";
}

namespace {

Json coding(const char* system, const std::string& code, const char* display = nullptr) {
  Json c = {{"system", system}, {"code", code}};
  if (display) c["display"] = display;
  return c;
}

const char* outcome_text(int outcome) {
  switch (outcome) {
    case 0:
      return "success";
    case 4:
      return "minor failure";
    case 8:
      return "serious failure";
    default:
      return "major failure";
  }
}

}  // namespace

Json to_audit_event(const AuditRow& r) {
  Json ev = {{"resourceType", "AuditEvent"}, {"id", std::to_string(r.id)}};
  ev["meta"] = {
      {"lastUpdated", resources::format_instant(r.recorded)},
      {"profile", Json::array({"https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Read"})}};
  // BALP's profile for reads; other interactions are the same shape with their own action.
  if (r.action != "R") ev["meta"].erase("profile");
  if (r.interaction == "auth") {
    ev["type"] = coding("http://dicom.nema.org/resources/ontology/DCM", "110114", "User Authentication");
    ev["subtype"] = Json::array({coding("urn:kasama:audit-subtype", "auth")});
  } else if (r.interaction == "admin") {
    ev["type"] = coding("http://dicom.nema.org/resources/ontology/DCM", "110100", "Application Activity");
    ev["subtype"] = Json::array({coding("urn:kasama:audit-subtype", "admin")});
  } else {
    ev["type"] = coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation");
    if (r.interaction != "unknown") {
      ev["subtype"] = Json::array({coding("http://hl7.org/fhir/restful-interaction", r.interaction)});
    }
  }
  ev["action"] = r.action;
  ev["recorded"] = resources::format_instant(r.recorded);
  ev["outcome"] = std::to_string(r.outcome);
  std::string desc = std::to_string(r.status) + " " + outcome_text(r.outcome);
  if (r.denied) desc += " (denied)";
  if (!r.detail.empty()) desc += ": " + r.detail;
  ev["outcomeDesc"] = desc;

  Json agents = Json::array();
  if (!r.account_id.empty() || r.client_id.empty()) {
    Json user = {{"type",
                  {{"coding", Json::array({coding("http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                                                  "humanuser", "human user")})}}},
                 {"requestor", true}};
    Json who = {{"identifier",
                 {{"system", "urn:kasama:account"}, {"value", r.account_id.empty() ? "anonymous" : r.account_id}}}};
    if (!r.fhir_user.empty()) who["reference"] = r.fhir_user;
    user["who"] = who;
    if (!r.role.empty()) user["role"] = Json::array({{{"coding", Json::array({coding("urn:kasama:role", r.role)})}}});
    if (!r.institution_id.empty()) {
      user["location"] = {{"reference", "Organization/" + r.institution_id}};
    }
    if (!r.peer.empty() && r.client_id.empty()) user["network"] = {{"address", r.peer}, {"type", "2"}};
    agents.push_back(std::move(user));
  }
  if (!r.client_id.empty()) {
    Json client = {
        {"type",
         {{"coding",
           Json::array({coding("http://dicom.nema.org/resources/ontology/DCM", "110153", "Source Role ID")})}}},
        {"who", {{"identifier", {{"system", "urn:kasama:client"}, {"value", r.client_id}}}}},
        {"requestor", r.account_id.empty()}};
    if (!r.terminal_id.empty()) client["altId"] = r.terminal_id;  // the terminal ID (R-18)
    if (!r.peer.empty()) client["network"] = {{"address", r.peer}, {"type", "2"}};
    agents.push_back(std::move(client));
  }
  agents.push_back({{"type",
                     {{"coding", Json::array({coding("http://dicom.nema.org/resources/ontology/DCM", "110152",
                                                     "Destination Role ID")})}}},
                    {"who", {{"display", "kasama-server"}}},
                    {"requestor", false}});
  ev["agent"] = std::move(agents);
  ev["source"] = {
      {"observer", {{"display", "kasama-server"}}},
      {"type",
       Json::array({coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")})}};

  Json entities = Json::array();
  const auto words = [](const std::string& text, auto fn) {
    std::size_t pos = 0;
    while (pos < text.size()) {
      auto end = text.find(' ', pos);
      if (end == std::string::npos) end = text.size();
      if (end > pos) fn(text.substr(pos, end - pos));
      pos = end + 1;
    }
  };
  words(r.patients, [&](const std::string& id) {
    entities.push_back({{"what", {{"reference", "Patient/" + id}}},
                        {"type", coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person")},
                        {"role", coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient")}});
  });
  words(r.entities, [&](const std::string& ref) {
    if (ref.rfind("Patient/", 0) == 0) return;  // listed as the patient above
    entities.push_back(
        {{"what", {{"reference", ref}}},
         {"type", coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object")}});
  });
  const auto q = r.path.find('?');
  if (q != std::string::npos || r.interaction.rfind("search", 0) == 0) {
    entities.push_back(
        {{"type", coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object")},
         {"role", coding("http://terminology.hl7.org/CodeSystem/object-role", "24", "Query")},
         {"description", r.method + " " + r.path}});
  } else {
    entities.push_back(
        {{"type", coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object")},
         {"description", r.method + " " + r.path}});
  }
  entities.push_back({{"what", {{"identifier", {{"value", r.request_id}}}}},
                      {"type", coding("https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId",
                                      "X-Request-Id")}});
  if (!r.patient_context.empty()) {
    entities.push_back({{"what", {{"reference", "Patient/" + r.patient_context}}},
                        {"type", coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person")},
                        {"role", coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient")},
                        {"description", "SMART patient context"}});
  }
  ev["entity"] = std::move(entities);
  return ev;
}

}  // namespace kasama::audit
