#include "server/ops/demo_accounts.hpp"

#include <sys/stat.h>

#include <fstream>

#include "server/log.hpp"
#include "server/ops/reindex.hpp"

namespace kasama::server {

namespace {

using auth::Principal;

Principal acting(const std::string& id, const std::string& role, const std::string& institution = "") {
  Principal p;
  p.kind = "session";
  p.account_id = id;
  p.role = role;
  p.institution_id = institution;
  return p;
}

Json issued(const std::pair<Json, auth::Issued>& r) {
  return Json{{"id", r.second.account_id},
              {"password", r.second.password},
              {"name", r.first["name"]},
              {"role", r.first["role"]},
              {"institution", r.first["institution"]}};
}

// The first Patient of the demo records, for the resident's account (empty without records).
std::string first_patient(FhirService& fhir, const std::string& base_url) {
  RestRequest req;
  req.method = "GET";
  req.segments = {"Patient"};
  req.params = {{"_count", "1"}, {"_sort", "_lastUpdated"}};
  req.base_url = base_url;
  req.request_id = "demo-accounts";
  req.principal = std::make_shared<const Principal>(auth::internal_principal());
  RestResponse r = fhir.handle(req);
  auto parsed = resources::parse_json(r.body);
  if (!parsed.ok || !parsed.value.contains("entry") || parsed.value["entry"].empty()) return {};
  return parsed.value["entry"][0]["resource"].value("id", "");
}

}  // namespace

bool create_demo_accounts(auth::AuthService& auth, FhirService& fhir, const std::string& path,
                          const std::string& origin) {
  Json out = Json::object();
  try {
    auto owner = auth.bootstrap_owner("笠間 一郎 (Kasama Ichiro, demo owner)");
    out["owner"] = {{"id", owner.account_id}, {"password", owner.password}, {"role", "owner"}};
  } catch (const auth::AuthError&) {
    return false;  // an owner exists: the demo was created on an earlier start
  }
  const Principal owner = acting(out["owner"]["id"], "owner");
  const auto city = [&](const char* role, const char* name) {
    return issued(auth.create_city_account(owner, Json{{"role", role}, {"name", name}}));
  };
  out["ops-manager"] = city("ops-manager", "友部 花子 (Tomobe Hanako, demo operations manager)");
  out["secretariat"] = city("secretariat", "岩間 次郎 (Iwama Jiro, demo secretariat)");
  out["sysadmin"] = city("sysadmin", "稲田 三郎 (Inada Saburo, demo system administrator)");
  out["auditor"] = city("auditor", "大原 久美 (Ohara Kumi, demo auditor)");
  const Principal ops = acting(out["ops-manager"]["id"], "ops-manager");
  const Principal secretariat = acting(out["secretariat"]["id"], "secretariat");

  // A care institution: application, owner approval, its manager issued by the ops-manager.
  Json inst = auth.apply_institution(Json{{"name", "笠間ケアセンター (Kasama Care Center, demo)"},
                                          {"kind", "care"},
                                          {"address", "茨城県笠間市中央三丁目2番1号"},
                                          {"manager", {{"name", "池野 誠 (Ikeno Makoto, demo institution manager)"}}}});
  const std::string inst_id = inst["id"];
  // The demo vendor systems (and the test suites that use them) read and write every
  // category; the access-control tests make institutions with narrower ranges.
  const auto& cats = access::Categories::instance();
  Json decided = auth.decide_institution(owner, inst_id, true, "demo", cats.range_json(cats.full_range()));
  out["institution"] = {{"id", inst_id}, {"name", inst["name"]}};
  out["org-manager"] = issued(auth.issue_account(ops, decided["managerAccountRequest"]));
  const Principal manager = acting(out["org-manager"]["id"], "org-manager", inst_id);
  Json staff = auth.request_staff_account(manager, Json{{"name", "北山 桜 (Kitayama Sakura, demo care worker)"}});
  out["practitioner"] = issued(auth.issue_account(ops, staff["id"]));

  // Residents: one for themselves, one proxy (family) for the same resident.
  const std::string patient = first_patient(fhir, origin + "/fhir");
  Json resident_app = {{"name", "笠間 花子 (Kasama Hanako, demo resident)"}, {"kind", "resident"}};
  if (!patient.empty()) resident_app["patient"] = patient;
  out["citizen"] = issued(auth.issue_account(ops, auth.apply_citizen(resident_app)["id"]));
  if (!patient.empty()) {
    Json proxy_app = {{"name", "笠間 太郎 (Kasama Taro, demo proxy: son)"},
                      {"kind", "proxy"},
                      {"patient", patient},
                      {"relationship", "子 / son"}};
    out["proxy"] = issued(auth.issue_account(ops, auth.apply_citizen(proxy_app)["id"]));
    out["patient"] = patient;
  }

  // Terminals: a vendor system (private_key_jwt, ES384), a confidential client
  // (client_secret_basic), and a residents' app (public, PKCE).
  const auth::Key key = auth::Key::generate_ec_p384();
  const std::string kid = "demo-backend-1";
  Json backend =
      auth.register_client(secretariat, Json{{"name", "Demo care-record system (backend)"},
                                             {"kind", "backend"},
                                             {"institution", inst_id},
                                             {"scope", "system/*.cruds"},
                                             {"jwks", {{"keys", Json::array({key.public_jwk(kid, "ES384")})}}}});
  out["backend-client"] = {
      {"clientId", backend["clientId"]},    {"terminalId", backend["terminalId"]},    {"kid", kid}, {"alg", "ES384"},
      {"privateKeyPem", key.private_pem()}, {"tokenEndpoint", origin + "/auth/token"}};
  Json confidential = auth.register_client(secretariat, Json{{"name", "Demo institution system (client secret)"},
                                                             {"kind", "confidential"},
                                                             {"institution", inst_id},
                                                             {"scope", "system/*.cruds user/*.cruds"},
                                                             {"redirectUris", {"https://localhost/demo-callback"}}});
  out["confidential-client"] = {{"clientId", confidential["clientId"]},
                                {"terminalId", confidential["terminalId"]},
                                {"clientSecret", confidential["clientSecret"]}};
  Json app = auth.register_client(secretariat, Json{{"name", "Demo residents' app (public)"},
                                                    {"kind", "public"},
                                                    {"redirectUris", {"http://localhost:8765/callback"}}});
  out["public-client"] = {{"clientId", app["clientId"]},
                          {"terminalId", app["terminalId"]},
                          {"redirectUri", "http://localhost:8765/callback"}};
  out["fhirBase"] = origin + "/fhir";
  out["note"] =
      "Demo only (embedded default). Passwords are initial passwords: each must be changed at first login (R-13). "
      "owner, ops-manager and sysadmin must also set up TOTP.";
  {
    std::ofstream f(path, std::ios::trunc);
    f << resources::dump_json(out, 2) << "\n";
  }
  ::chmod(path.c_str(), 0600);
  log_info("demo accounts and clients created; credentials in " + path);
  return true;
}

}  // namespace kasama::server
