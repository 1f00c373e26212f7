#include "server/auth/api.hpp"

#include <map>

#include "resources/fhir_time.hpp"
#include "resources/references.hpp"
#include "server/access/policy.hpp"
#include "server/audit/report.hpp"
#include "server/audit/trail.hpp"
#include "server/interactions/support.hpp"
#include "server/log.hpp"

namespace kasama::server {

using auth::AuthError;
using auth::Principal;

namespace {

constexpr std::string_view kCookie = "kasama_session";

std::map<std::string, std::string> form_of(const RestRequest& req) {
  std::map<std::string, std::string> out;
  std::vector<std::string> ignored;
  std::vector<std::pair<std::string, std::string>> params;
  try {
    split_url("?" + req.body, ignored, params);
  } catch (const std::exception&) {
    throw AuthError(400, "invalid_request", "the form body is malformed");
  }
  for (auto& [k, v] : params) {
    // A parameter given twice is refused (RFC 6749 §3.1, §3.2).
    if (!out.emplace(k, v).second) throw AuthError(400, "invalid_request", "parameter " + k + " is repeated", k);
  }
  return out;
}

Json body_json(const RestRequest& req) {
  if (req.body.empty()) return Json::object();
  auto parsed = resources::parse_json(req.body);
  if (!parsed.ok || !parsed.value.is_object()) {
    throw AuthError(400, "invalid", "the body must be a JSON object");
  }
  return parsed.value;
}

std::string jstr(const Json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

RestResponse json_response(int status, const Json& body) {
  RestResponse r;
  r.status = status;
  r.body = resources::dump_json(body);
  r.content_type = "application/json; charset=utf-8";
  r.headers.emplace_back("Pragma", "no-cache");
  return r;
}

RestResponse error_json(const AuthError& e) {
  Json body = {{"error", e.error}, {"error_description", e.what()}};
  if (!e.field.empty()) body["field"] = e.field;
  if (e.retry_after_ms > 0) body["retry_after_ms"] = e.retry_after_ms;
  RestResponse r = json_response(e.status == 302 ? 400 : e.status, body);
  if (e.retry_after_ms > 0) r.headers.emplace_back("Retry-After", std::to_string((e.retry_after_ms + 999) / 1000));
  if (e.status == 401 && e.error == "invalid_client")
    r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"kasama\"");
  return r;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

RestResponse html_response(int status, const std::string& title, const std::string& body) {
  RestResponse r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body =
      "<!doctype html><html lang=\"ja\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
      "content=\"width=device-width, initial-scale=1\"><title>" +
      html_escape(title) +
      "</title><style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;color:#222}"
      "h1{font-size:1.3em}label{display:block;margin:.8em 0 .2em}input[type=text],input[type=password]{width:100%;"
      "padding:.4em;font-size:1em}button{margin-top:1em;padding:.5em 1.2em;font-size:1em}.en{color:#555;"
      "font-size:.9em}.error{color:#a00;border:1px solid #a00;padding:.5em}table{border-collapse:collapse}"
      "td,th{border:1px solid #999;padding:.3em .6em;text-align:left}@media print{button{display:none}}</style>"
      "</head><body>" +
      body + "</body></html>";
  // No framing (clickjacking of the consent page) and no inline script from elsewhere.
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http://localhost:* "
                         "http://127.0.0.1:*; frame-ancestors 'none'");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

RestResponse redirect(const std::string& location, int status = 302) {
  RestResponse r;
  r.status = status;
  r.location = location;
  return r;
}

std::string hidden(const std::string& name, const std::string& value) {
  return "<input type=\"hidden\" name=\"" + html_escape(name) + "\" value=\"" + html_escape(value) + "\">";
}

std::string error_box(const std::string& message) {
  return message.empty() ? std::string() : "<p class=\"error\" role=\"alert\">" + html_escape(message) + "</p>";
}

// Where a login may send the browser next: only this server's own /auth pages.
std::string safe_next(const std::string& next) {
  if (next.starts_with("/auth/") && next.find_first_of("\\\r\n") == std::string::npos) {
    return next;
  }
  return "/auth/login";
}

std::string csrf_for(const std::string& session_token_hash) {
  return auth::base64url_encode(auth::sha256("csrf|" + session_token_hash)).substr(0, 32);
}

std::string cookie_value(const RestRequest& req, std::string_view name = kCookie) {
  const std::string* c = req.header("cookie");
  if (!c) return {};
  std::string_view s = *c;
  while (!s.empty()) {
    const auto semi = s.find(';');
    std::string_view part = s.substr(0, semi);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.starts_with(name) && part.size() > name.size() && part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    if (semi == std::string_view::npos) break;
    s.remove_prefix(semi + 1);
  }
  return {};
}

std::string session_cookie(const std::string& token, int max_age) {
  return std::string(kCookie) + "=" + token + "; Path=/; Max-Age=" + std::to_string(max_age) +
         "; Secure; HttpOnly; SameSite=Lax";
}

std::string with_query(const std::string& base, const std::vector<std::pair<std::string, std::string>>& q) {
  std::string out = base;
  char sep = base.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [k, v] : q) {
    if (v.empty()) continue;
    out += sep;
    out += percent_encode(k) + "=" + percent_encode(v);
    sep = '&';
  }
  return out;
}

// The login form carries a value that must match a cookie set with it (double submit): a
// page elsewhere cannot post it, so nobody can be logged into someone else's account.
constexpr std::string_view kLoginCookie = "kasama_login";

RestResponse login_page(const std::string& next, const std::string& error, int status = 200) {
  const std::string nonce = auth::random_token(18);
  RestResponse page = html_response(
      status, "ログイン / Log in",
      "<h1>笠間市介護・健診クラウド ログイン<br><span class=\"en\">Kasama care &amp; checkup cloud: log "
      "in</span></h1>" +
          error_box(error) + "<form method=\"post\" action=\"/auth/login\">" + hidden("next", next) +
          hidden("login_csrf", nonce) +
          "<label for=\"id\">ID <span class=\"en\">(login ID)</span></label>"
          "<input type=\"text\" id=\"id\" name=\"id\" autocomplete=\"username\" required>"
          "<label for=\"password\">パスワード <span class=\"en\">Password</span></label>"
          "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>"
          "<label for=\"totp\">確認コード(設定済みの方) <span class=\"en\">One-time code, if you use a second "
          "factor</span></label><input type=\"text\" id=\"totp\" name=\"totp\" inputmode=\"numeric\" "
          "autocomplete=\"one-time-code\">"
          "<button type=\"submit\" id=\"login\">ログイン / Log in</button></form>"
          "<p class=\"en\">パスワードを忘れた方は運営事務局へお問い合わせください。 If you lost your password, ask the "
          "secretariat (運営事務局) to reset it.</p>");
  page.headers.emplace_back("Set-Cookie", std::string(kLoginCookie) + "=" + nonce +
                                              "; Path=/auth; Max-Age=3600; Secure; HttpOnly; SameSite=Lax");
  return page;
}

RestResponse password_page(const Principal& p, const std::string& next, const std::string& error, int status = 200) {
  return html_response(
      status, "パスワード変更 / Change password",
      "<h1>初期パスワードの変更<br><span class=\"en\">Change your initial password</span></h1>"
      "<p>初期パスワードは最初のログインで変更が必要です。<br><span class=\"en\">The initial password must be changed "
      "before anything else.</span></p>" +
          error_box(error) + "<form method=\"post\" action=\"/auth/password\">" + hidden("next", next) +
          hidden("csrf", csrf_for(p.token_hash)) +
          "<label for=\"current\">現在のパスワード <span class=\"en\">Current password</span></label>"
          "<input type=\"password\" id=\"current\" name=\"current\" autocomplete=\"current-password\" required>"
          "<label for=\"new\">新しいパスワード(英字・数字・記号を含む13文字以上) <span class=\"en\">New password: at "
          "least 13 characters mixing letters, digits and symbols</span></label>"
          "<input type=\"password\" id=\"new\" name=\"new\" autocomplete=\"new-password\" required>"
          "<button type=\"submit\" id=\"change\">変更する / Change</button></form>");
}

RestResponse totp_page(const Principal& p, const std::string& next, const Json& setup, const std::string& error) {
  return html_response(
      200, "二要素認証の設定 / Set up a second factor",
      "<h1>二要素認証(TOTP)の設定<br><span class=\"en\">Set up the second factor (TOTP)</span></h1>"
      "<p>管理権限のある役割では必須です。認証アプリに次の鍵を登録し、表示された6桁のコードを入力してください。<br>"
      "<span class=\"en\">Required for administrative roles. Add this key to an authenticator app and enter the "
      "6-digit code it shows.</span></p>" +
          error_box(error) + "<p>鍵 / Key: <code id=\"totp-secret\">" + html_escape(jstr(setup, "secret")) +
          "</code></p><p class=\"en\"><code>" + html_escape(jstr(setup, "uri")) +
          "</code></p><form method=\"post\" action=\"/auth/totp/confirm\">" + hidden("next", next) +
          hidden("csrf", csrf_for(p.token_hash)) +
          "<label for=\"code\">確認コード <span class=\"en\">Code</span></label>"
          "<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" required>"
          "<button type=\"submit\">設定する / Confirm</button></form>");
}

std::string scope_label(const auth::ResourceScope& s) {
  std::string who = s.context == auth::ScopeContext::kPatient ? "選択した方の記録 / the chosen resident's records"
                    : s.context == auth::ScopeContext::kUser ? "あなたの権限の範囲 / what your account may see"
                                                             : "system";
  std::string what;
  if (s.perms & (auth::kRead | auth::kSearch)) what += "閲覧 read";
  if (s.perms & (auth::kCreate | auth::kUpdate | auth::kDelete))
    what += std::string(what.empty() ? "" : ", ") + "更新 write";
  return (s.type == "*" ? std::string("すべての種類 / all types") : s.type) + ": " + what + " (" + who + ")";
}

const std::string* param_of(const RestRequest& req, const char* k) {
  return req.param(k);
}

}  // namespace

bool AuthApi::owns(std::string_view path) {
  return path.starts_with("/auth/") || path == "/auth" || path.starts_with("/admin/") ||
         path == "/fhir/.well-known/smart-configuration" || path == "/fhir/.well-known/openid-configuration";
}

std::optional<Principal> AuthApi::session(const RestRequest& req, bool cookie_allowed) {
  std::shared_ptr<const Principal> p;
  if (const std::string* h = req.header("authorization"); h && h->starts_with("Bearer ")) {
    p = auth_.check_token(h->substr(7), "session");
  } else if (cookie_allowed) {
    const std::string c = cookie_value(req);
    if (!c.empty()) p = auth_.check_token(c, "session");
  }
  if (!p) return std::nullopt;
  if (req.audit) req.audit->principal = p;  // the audit record names who
  return *p;
}

RestResponse AuthApi::handle(RestRequest& req) {
  const std::string path = "/" + req.path();
  try {
    if (path == "/fhir/.well-known/smart-configuration" && req.method == "GET") return smart_configuration(req);
    if (path == "/fhir/.well-known/openid-configuration" && req.method == "GET") return openid_configuration(req);
    if (path == "/auth/jwks" && req.method == "GET") return json_response(200, auth_.jwks());
    if (path == "/auth/token" && req.method == "POST") return token(req);
    if (path == "/auth/introspect" && req.method == "POST") return introspect(req);
    if (path == "/auth/revoke" && req.method == "POST") return revoke(req);
    if (path == "/auth/authorize" && (req.method == "GET" || req.method == "POST")) return authorize(req);
    if (path == "/auth/login" && (req.method == "GET" || req.method == "POST")) return login(req);
    if (path == "/auth/password" && req.method == "POST") return password(req);
    if (path == "/auth/totp" && req.method == "POST") return totp(req, false);
    if (path == "/auth/totp/confirm" && req.method == "POST") return totp(req, true);
    if (path == "/auth/logout" && req.method == "POST") return logout(req);
    if (path.starts_with("/admin/")) return admin(req);
    return json_response(404, Json{{"error", "not-found"}, {"error_description", "no endpoint " + path}});
  } catch (const AuthError& e) {
    return error_json(e);
  }
}

RestResponse AuthApi::smart_configuration(const RestRequest& req) const {
  const std::string& o = req.origin;
  Json body = {
      {"issuer", req.base_url},
      {"jwks_uri", o + "/auth/jwks"},
      {"authorization_endpoint", o + "/auth/authorize"},
      {"token_endpoint", o + "/auth/token"},
      {"token_endpoint_auth_methods_supported", {"client_secret_basic", "private_key_jwt"}},
      {"token_endpoint_auth_signing_alg_values_supported", {"RS384", "ES384"}},
      {"grant_types_supported", {"authorization_code", "refresh_token", "client_credentials"}},
      {"introspection_endpoint", o + "/auth/introspect"},
      {"revocation_endpoint", o + "/auth/revoke"},
      {"scopes_supported",
       {"openid", "fhirUser", "profile", "launch/patient", "offline_access", "online_access", "patient/*.rs",
        "patient/*.read", "user/*.cruds", "user/*.read", "user/*.write", "system/*.cruds", "system/*.rs",
        "system/*.read"}},
      {"response_types_supported", {"code"}},
      {"code_challenge_methods_supported", {"S256"}},
      {"capabilities",
       {"launch-standalone", "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
        "context-standalone-patient", "permission-offline", "permission-online", "permission-patient",
        "permission-user", "permission-v1", "permission-v2", "sso-openid-connect"}}};
  return json_response(200, body);
}

RestResponse AuthApi::openid_configuration(const RestRequest& req) const {
  const std::string& o = req.origin;
  Json body = {{"issuer", req.base_url},
               {"jwks_uri", o + "/auth/jwks"},
               {"authorization_endpoint", o + "/auth/authorize"},
               {"token_endpoint", o + "/auth/token"},
               {"response_types_supported", {"code"}},
               {"subject_types_supported", {"public"}},
               {"id_token_signing_alg_values_supported", {"RS256"}},
               {"scopes_supported", {"openid", "fhirUser", "profile"}},
               {"claims_supported", {"iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "name"}}};
  return json_response(200, body);
}

RestResponse AuthApi::token(const RestRequest& req) {
  auto resp = json_response(
      200, auth_.token(form_of(req), req.header("authorization"), req.origin + "/auth/token", req.base_url).body);
  return resp;
}

RestResponse AuthApi::introspect(const RestRequest& req) {
  return json_response(200, auth_.introspect(form_of(req), req.header("authorization"), req.origin + "/auth/token"));
}

RestResponse AuthApi::revoke(const RestRequest& req) {
  auth_.revoke(form_of(req), req.header("authorization"), req.origin + "/auth/token");
  return json_response(200, Json::object());
}

namespace {
// The ID a login tried, for its audit record: printable ASCII, bounded.
void note_login_attempt(const RestRequest& req, const std::string& id) {
  if (!req.audit) return;
  req.audit->detail = "login id '" + resources::printable_ascii(id, 64) + "'";
}
}  // namespace

RestResponse AuthApi::login(const RestRequest& req) {
  const std::string* ct = req.header("content-type");
  const bool json = ct && ct->find("json") != std::string::npos;
  if (req.method == "GET") {
    const std::string* next = param_of(req, "next");
    return login_page(safe_next(next ? *next : ""), "");
  }
  if (json) {
    const Json b = body_json(req);
    note_login_attempt(req, jstr(b, "id"));
    auto r = auth_.login(jstr(b, "id"), jstr(b, "password"), jstr(b, "totp"), req.peer);
    if (req.audit) req.audit->principal = std::make_shared<const Principal>(r.principal);
    return json_response(200, Json{{"session_token", r.session_token},
                                   {"account", r.principal.account_id},
                                   {"role", r.principal.role},
                                   {"mustChangePassword", r.principal.must_change_password},
                                   {"secondFactorRequired", r.principal.needs_second_factor},
                                   {"expires_in", auth_.settings().session_lifetime.count()},
                                   {"idle_timeout", auth_.settings().idle.count()}});
  }
  auto form = form_of(req);
  const std::string next = safe_next(form["next"]);
  const std::string expected = cookie_value(req, kLoginCookie);
  if (expected.empty() || !auth::constant_time_equal(form["login_csrf"], expected)) {
    return login_page(
        next, "ページの有効期限が切れました。もう一度ログインしてください / the page expired: log in again", 403);
  }
  note_login_attempt(req, form["id"]);
  try {
    auto r = auth_.login(form["id"], form["password"], form["totp"], req.peer);
    if (req.audit) req.audit->principal = std::make_shared<const Principal>(r.principal);
    RestResponse resp = redirect(next, 303);
    resp.headers.emplace_back(
        "Set-Cookie", session_cookie(r.session_token, static_cast<int>(auth_.settings().session_lifetime.count())));
    return resp;
  } catch (const AuthError& e) {
    return login_page(next, e.what(), e.status == 429 ? 429 : 401);
  }
}

RestResponse AuthApi::password(const RestRequest& req) {
  const std::string* ct = req.header("content-type");
  if (ct && ct->find("json") != std::string::npos) {
    auto p = session(req, false);
    if (!p) throw AuthError(401, "invalid_token", "ログインが必要です / log in first");
    const Json b = body_json(req);
    auth_.change_password(*p, jstr(b, "current"), jstr(b, "new"));
    return json_response(200, Json{{"changed", true}});
  }
  auto form = form_of(req);
  const std::string next = safe_next(form["next"]);
  auto p = session(req, true);
  if (!p) return login_page(next, "ログインが必要です / please log in", 401);
  if (form["csrf"] != csrf_for(p->token_hash)) throw AuthError(403, "forbidden", "the form is stale: reload it");
  try {
    auth_.change_password(*p, form["current"], form["new"]);
  } catch (const AuthError& e) {
    return password_page(*p, next, e.what(), 400);
  }
  return redirect(next, 303);
}

RestResponse AuthApi::totp(const RestRequest& req, bool confirm) {
  const std::string* ct = req.header("content-type");
  const bool json = ct && ct->find("json") != std::string::npos;
  auto p = session(req, !json);
  if (!p) throw AuthError(401, "invalid_token", "ログインが必要です / log in first");
  if (json) {
    if (!confirm) return json_response(200, auth_.start_totp(*p));
    auth_.confirm_totp(*p, jstr(body_json(req), "code"));
    return json_response(200, Json{{"secondFactor", true}});
  }
  auto form = form_of(req);
  const std::string next = safe_next(form["next"]);
  if (form["csrf"] != csrf_for(p->token_hash)) throw AuthError(403, "forbidden", "the form is stale: reload it");
  if (!confirm) return totp_page(*p, next, auth_.start_totp(*p), "");
  try {
    auth_.confirm_totp(*p, form["code"]);
  } catch (const AuthError& e) {
    return totp_page(*p, next, auth_.start_totp(*p), e.what());
  }
  return redirect(next, 303);
}

RestResponse AuthApi::logout(const RestRequest& req) {
  if (auto p = session(req, true)) {
    const std::string* h = req.header("authorization");
    auth_.logout(h && h->starts_with("Bearer ") ? h->substr(7) : cookie_value(req));
  }
  RestResponse r = json_response(200, Json{{"loggedOut", true}});
  r.headers.emplace_back("Set-Cookie", session_cookie("", 0));
  return r;
}

RestResponse AuthApi::authorize(const RestRequest& req) {
  // GET carries the request in the query; POST (the consent form) in the body.
  std::map<std::string, std::string> in;
  if (req.method == "GET") {
    for (const auto& [k, v] : req.params) {
      if (!in.emplace(k, v).second) {
        return html_response(400, "エラー / Error", error_box("parameter " + k + " is repeated"));
      }
    }
  } else {
    in = form_of(req);
  }
  auth::AuthService::AuthorizeRequest ar{
      in["response_type"], in["client_id"],      in["redirect_uri"],          in["scope"], in["state"],
      in["aud"],           in["code_challenge"], in["code_challenge_method"], in["nonce"], in["launch"]};
  std::string self = "/auth/authorize";
  {
    std::vector<std::pair<std::string, std::string>> q;
    for (const char* k : {"response_type", "client_id", "redirect_uri", "scope", "state", "aud", "code_challenge",
                          "code_challenge_method", "nonce", "launch"}) {
      q.emplace_back(k, in[k]);
    }
    self = with_query(self, q);
  }
  auto p = session(req, true);
  if (!p) return login_page(self, "");
  if (p->must_change_password) return password_page(*p, self, "");
  if (p->needs_second_factor) return totp_page(*p, self, auth_.start_totp(*p), "");
  auth::AuthService::AuthorizeCheck check;
  const auto back_with_error = [&](const AuthError& e) {
    return redirect(
        with_query(ar.redirect_uri, {{"error", e.error}, {"error_description", e.what()}, {"state", ar.state}}));
  };
  try {
    check = auth_.check_authorize(ar, *p, req.base_url);
  } catch (const AuthError& e) {
    if (e.status == 302) return back_with_error(e);
    return html_response(
        400, "エラー / Error",
        "<h1>認可できません<br><span class=\"en\">This request cannot be authorized</span></h1>" + error_box(e.what()));
  }
  if (req.method == "POST") {
    if (in["csrf"] != csrf_for(p->token_hash)) {
      return html_response(403, "エラー / Error",
                           error_box("the form is stale: reload the app / フォームが古くなっています"));
    }
    if (in["decision"] != "approve") {
      return back_with_error(AuthError(302, "access_denied", "the user declined"));
    }
    std::string patient = in["patient"];
    if (patient.empty() && check.patients.size() == 1) patient = check.patients.front().first;
    try {
      const std::string code = auth_.issue_code(ar, *p, check, patient);
      log_info("authorization code issued: account " + p->account_id + ", client " + ar.client_id);
      return redirect(with_query(ar.redirect_uri, {{"code", code}, {"state", ar.state}}));
    } catch (const AuthError& e) {
      return back_with_error(e);
    }
  }
  std::string items;
  for (const auto& s : check.granted.resources) items += "<li>" + html_escape(scope_label(s)) + "</li>";
  if (check.granted.offline_access) items += "<li>ログアウト後も継続して利用 / keep access after you log out</li>";
  std::string patients;
  if (!check.patients.empty()) {
    patients = "<fieldset><legend>どなたの記録を使いますか / Whose records should the app use?</legend>";
    bool first = true;
    for (const auto& [id, label] : check.patients) {
      patients += "<label><input type=\"radio\" name=\"patient\" value=\"" + html_escape(id) + "\"" +
                  (first ? " checked" : "") + "> " + html_escape(label) + " (Patient/" + html_escape(id) + ")</label>";
      first = false;
    }
    patients += "</fieldset>";
  }
  std::string fields;
  for (const auto& [k, v] : in) {
    if (k != "csrf" && k != "decision" && k != "patient") fields += hidden(k, v);
  }
  return html_response(
      200, "アクセスの許可 / Authorize access",
      "<h1>アクセスの許可<br><span class=\"en\">Authorize access</span></h1><p><strong>" +
          html_escape(check.client.name) + "</strong> (端末 / terminal " + html_escape(check.client.terminal_id) +
          ") が次の利用を求めています。<br><span class=\"en\">asks for the following access:</span></p><ul>" + items +
          "</ul><form method=\"post\" action=\"/auth/authorize\">" + fields + hidden("csrf", csrf_for(p->token_hash)) +
          patients +
          "<button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">許可する / Allow</button> "
          "<button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">許可しない / Deny</button></form>"
          "<p class=\"en\">ログイン中 / Logged in as " +
          html_escape(p->name) + " (" + html_escape(p->account_id) + ")</p>");
}

RestResponse AuthApi::certificate(const std::string& token) {
  auto cert = auth_.take_certificate(token);
  if (!cert) {
    return html_response(
        410, "登録済証 / Registration certificate",
        "<h1>登録済証は表示済みです<br><span class=\"en\">This certificate was shown already or has "
        "expired</span></h1><p>パスワードが分からない場合は運営事務局にリセットを依頼してください。<br>"
        "<span class=\"en\">If the password is lost, ask the secretariat for a reset.</span></p>");
  }
  const Json& c = *cert;
  std::string inst = jstr(c, "institutionName");
  return html_response(
      200, "登録済証 / Registration certificate",
      "<h1>笠間市介護・健診クラウドシステム 登録済証<br><span class=\"en\">Kasama care &amp; checkup cloud: "
      "registration certificate</span></h1><table>"
      "<tr><th>氏名 <span class=\"en\">Name</span></th><td id=\"cert-name\">" +
          html_escape(jstr(c, "name")) + "</td></tr><tr><th>ID</th><td id=\"cert-id\"><code>" +
          html_escape(jstr(c, "accountId")) +
          "</code></td></tr><tr><th>初期パスワード <span class=\"en\">Initial password</span></th>"
          "<td id=\"cert-password\"><code>" +
          html_escape(jstr(c, "password")) + "</code></td></tr><tr><th>役割 <span class=\"en\">Role</span></th><td>" +
          html_escape(jstr(c, "role")) + "</td></tr>" +
          (inst.empty()
               ? std::string()
               : "<tr><th>利用機関 <span class=\"en\">Institution</span></th><td>" + html_escape(inst) + "</td></tr>") +
          "<tr><th>発行日時 <span class=\"en\">Issued</span></th><td>" + html_escape(jstr(c, "issuedAt")) +
          "</td></tr></table>"
          "<p>初回ログイン時に初期パスワードの変更が必要です。この登録済証は一度だけ表示されます。<br>"
          "<span class=\"en\">You must change the initial password at your first login. This certificate is "
          "shown only once.</span></p><p>ID・パスワードを他人と共有しないでください。<br><span class=\"en\">Never "
          "share your ID or password.</span></p><p class=\"en\">ブラウザの印刷機能で印刷してください。 Print this page "
          "with the browser (Ctrl+P).</p>");
}

void AuthApi::sync_organization(const RestRequest& req, const Json& inst) {
  Json org = {{"resourceType", "Organization"},
              {"id", jstr(inst, "id")},
              {"active", jstr(inst, "state") == "active"},
              {"name", jstr(inst, "name")}};
  const Json& d = inst.contains("details") ? inst["details"] : Json::object();
  if (!jstr(d, "medicalInstitutionCode").empty()) {
    // 保険医療機関番号 (JP Core's identifier system for medical institution codes).
    org["identifier"] =
        Json::array({Json{{"system", "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no"},
                          {"value", jstr(d, "medicalInstitutionCode")}}});
  }
  org["meta"] =
      Json{{"tag", Json::array({Json{{"system", "http://kasama-fhir.example/fhir/CodeSystem/institution-state"},
                                     {"code", jstr(inst, "state")}}})}};
  RestRequest put;
  put.method = "PUT";
  put.segments = {"Organization", jstr(inst, "id")};
  put.body = resources::dump_json(org);
  put.headers.emplace_back("content-type", "application/fhir+json");
  put.base_url = req.base_url;
  put.request_id = req.request_id;
  put.principal = std::make_shared<const Principal>(auth::internal_principal());
  RestResponse r = fhir_.handle(put);
  if (r.status >= 300) log_warn("Organization for institution " + jstr(inst, "id") + ": " + r.body);
}

RestResponse AuthApi::admin(RestRequest& req) {
  const auto& s = req.segments;  // admin, …
  const std::string m = req.method;
  const auto q = [&](const char* k) {
    const std::string* v = req.param(k);
    return v ? *v : std::string();
  };
  const auto issued_json = [&](std::pair<Json, auth::Issued> r) {
    Json out = {{"account", r.first},
                {"initialPassword", r.second.password},
                {"certificateUrl", req.origin + "/admin/certificates/" + r.second.certificate_token}};
    return out;
  };
  // Public: applications, and certificates (the one-time token is the capability).
  if (s.size() == 2 && s[1] == "institutions" && m == "POST") {
    return json_response(201, auth_.apply_institution(body_json(req)));
  }
  if (s.size() == 3 && s[1] == "applications" && s[2] == "citizen" && m == "POST") {
    return json_response(201, auth_.apply_citizen(body_json(req)));
  }
  if (s.size() == 3 && s[1] == "certificates" && m == "GET") return certificate(s[2]);

  auto p = session(req, false);
  if (!p) {
    RestResponse r =
        error_json(AuthError(401, "invalid_token", "ログインが必要です / log in first (Bearer session token)"));
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"kasama-admin\"");
    return r;
  }
  const Principal& by = *p;
  if (s.size() == 2 && s[1] == "me" && m == "GET") {
    Json me = auth_.get_account(by, by.account_id);
    me["mustChangePassword"] = by.must_change_password;
    me["secondFactorRequired"] = by.needs_second_factor;
    return json_response(200, me);
  }
  if (s.size() >= 2 && s[1] == "institutions") {
    if (s.size() == 2 && m == "GET") return json_response(200, auth_.list_institutions(by, q("state")));
    if (s.size() == 4 && m == "POST") {
      const Json b = body_json(req);
      Json out;
      if (s[3] == "approve" || s[3] == "reject") {
        out = auth_.decide_institution(by, s[2], s[3] == "approve", jstr(b, "reason"),
                                       b.contains("categories") ? b["categories"] : Json());
      } else if (s[3] == "access") {
        return json_response(200, auth_.set_institution_access(by, s[2], b.contains("categories") ? b["categories"] : Json()));
      } else if (s[3] == "deregister") {
        out = auth_.deregister_institution(by, s[2], jstr(b, "reason"));
      } else {
        throw AuthError(404, "not-found", "no action " + s[3]);
      }
      if (s[3] != "reject") sync_organization(req, out);
      return json_response(200, out);
    }
  }
  if (s.size() >= 2 && s[1] == "accounts") {
    if (s.size() == 2 && m == "GET") {
      return json_response(200, auth_.list_accounts(by, q("role"), q("institution"), q("state")));
    }
    if (s.size() == 2 && m == "POST")
      return json_response(201, issued_json(auth_.create_city_account(by, body_json(req))));
    if (s.size() == 3 && s[2] == "requests" && m == "POST") {
      return json_response(201, auth_.request_staff_account(by, body_json(req)));
    }
    if (s.size() == 3 && m == "GET") return json_response(200, auth_.get_account(by, s[2]));
    if (s.size() == 4 && m == "POST") {
      const Json b = body_json(req);
      if (s[3] == "issue") {
        return json_response(200, issued_json(auth_.issue_account(by, s[2], jstr(b, "fhirUser"))));
      }
      if (s[3] == "reject") return json_response(200, auth_.reject_request(by, s[2], jstr(b, "reason")));
      if (s[3] == "reset-password") return json_response(200, issued_json(auth_.reset_password(by, s[2])));
      if (s[3] == "deregister") return json_response(200, auth_.deregister_account(by, s[2], jstr(b, "reason")));
      if (s[3] == "revoke-admin-right") return json_response(200, auth_.revoke_admin_right(by, s[2]));
      if (s[3] == "reinstate") return json_response(200, auth_.reinstate_account(by, s[2], jstr(b, "reason")));
      if (s[3] == "access") {
        return json_response(200, auth_.set_account_access(by, s[2], b.contains("categories") ? b["categories"] : Json()));
      }
      if (s[3] == "proxies") {
        const bool active = !b.contains("active") || (b["active"].is_boolean() && b["active"].get<bool>());
        return json_response(200, auth_.set_proxy(by, s[2], jstr(b, "patient"), jstr(b, "relationship"), active));
      }
    }
  }
  if (s.size() >= 2 && s[1] == "opt-outs") return opt_outs(req, by);
  if (s.size() == 3 && s[1] == "reports" && m == "GET") return reports(req, by);
  if (s.size() >= 2 && s[1] == "incidents") {
    if (s.size() == 2 && m == "GET") return json_response(200, auth_.list_incidents(by, q("state")));
    if (s.size() == 4 && s[3] == "close" && m == "POST") {
      std::int64_t id = 0;
      try {
        id = std::stoll(s[2]);
      } catch (const std::exception&) {
        throw AuthError(404, "not-found", "no incident " + s[2]);
      }
      const Json b = body_json(req);
      return json_response(200, auth_.close_incident(by, id, jstr(b, "cause"), jstr(b, "measures")));
    }
  }
  if (s.size() >= 2 && s[1] == "admin-rights") {
    if (s.size() == 2 && m == "GET") return json_response(200, auth_.list_admin_grants(by, q("state")));
    if (s.size() == 2 && m == "POST") {
      const Json b = body_json(req);
      return json_response(201, auth_.request_admin_right(by, jstr(b, "account"), jstr(b, "reason")));
    }
    if (s.size() == 4 && m == "POST" && (s[3] == "approve" || s[3] == "reject")) {
      std::int64_t id = 0;
      try {
        id = std::stoll(s[2]);
      } catch (const std::exception&) {
        throw AuthError(404, "not-found", "no admin-right request " + s[2]);
      }
      return json_response(200, auth_.decide_admin_right(by, id, s[3] == "approve"));
    }
  }
  if (s.size() >= 2 && s[1] == "clients") {
    if (s.size() == 2 && m == "GET") return json_response(200, auth_.list_clients(by, q("institution")));
    if (s.size() == 2 && m == "POST") return json_response(201, auth_.register_client(by, body_json(req)));
    if (s.size() == 4 && s[3] == "deregister" && m == "POST") {
      return json_response(200, auth_.deregister_client(by, s[2]));
    }
    if (s.size() == 4 && s[3] == "reinstate" && m == "POST") {
      return json_response(200, auth_.reinstate_client(by, s[2], jstr(body_json(req), "reason")));
    }
  }
  throw AuthError(404, "not-found", "no endpoint " + m + " /" + req.path());
}


RestResponse AuthApi::fhir_as_server(const RestRequest& req, const std::string& method, std::vector<std::string> segments,
                                     const std::string& body, std::vector<std::pair<std::string, std::string>> params) {
  RestRequest r;
  r.method = method;
  r.segments = std::move(segments);
  r.params = std::move(params);
  r.body = body;
  if (!body.empty()) r.headers.emplace_back("content-type", "application/fhir+json");
  r.base_url = req.base_url;
  r.request_id = req.request_id;
  r.principal = std::make_shared<const Principal>(auth::internal_principal());
  return fhir_.handle(r);
}

namespace {

// An opt-out Consent as the secretariat's API shows it.
Json opt_out_json(const Json& consent) {
  Json out = {{"id", jstr(consent, "id")},
              {"status", jstr(consent, "status")},
              {"patient", consent.contains("patient") ? jstr(consent["patient"], "reference") : std::string()},
              {"recorded", jstr(consent, "dateTime")},
              {"version", consent.contains("meta") ? jstr(consent["meta"], "versionId") : std::string()}};
  Json institutions = Json::array();
  Json period = Json::object();
  if (auto p = consent.find("provision"); p != consent.end() && p->is_object()) {
    if (auto a = p->find("actor"); a != p->end() && a->is_array()) {
      for (const auto& x : *a)
        if (x.contains("reference")) institutions.push_back(jstr(x["reference"], "reference"));
    }
    if (auto per = p->find("period"); per != p->end() && per->is_object()) period = *per;
  }
  out["institutions"] = institutions;  // empty: every institution
  out["period"] = period;
  return out;
}

[[noreturn]] void fhir_failed(const RestResponse& r, const std::string& what) {
  auto parsed = resources::parse_json(r.body);
  std::string why = what;
  if (parsed.ok && parsed.value.contains("issue") && !parsed.value["issue"].empty())
    why += ": " + jstr(parsed.value["issue"][0], "diagnostics");
  throw AuthError(r.status == 404 || r.status == 410 ? 404 : (r.status >= 500 ? 500 : 400),
                  r.status == 404 || r.status == 410 ? "not-found" : "invalid", why);
}

}  // namespace

RestResponse AuthApi::opt_outs(const RestRequest& req, const Principal& by) {
  const auto& s = req.segments;  // admin, opt-outs[, id, withdraw]
  const bool reading = req.method == "GET";
  if (by.role != "secretariat" && !(reading && (by.role == "ops-manager" || by.role == "auditor"))) {
    throw AuthError(403, "forbidden",
                    "住民のオプトアウトは運営事務局が管理します / the secretariat manages residents' opt-outs (R-21)");
  }
  // A usable session: the initial password changed, a second factor where one is required.
  auth_.require(by, {"secretariat", "ops-manager", "auditor"});
  if (s.size() == 2 && reading) {
    const std::string* patient = req.param("patient");
    if (!patient || !resources::is_valid_id(*patient))
      throw AuthError(400, "invalid", "対象者(patient)の ID が必要です / patient (a Patient id) is required", "patient");
    RestResponse r = fhir_as_server(req, "GET", {"Consent"}, "",
                                    {{"patient", "Patient/" + *patient}, {"_count", "1000"}, {"_sort", "-_lastUpdated"}});
    if (r.status != 200) fhir_failed(r, "Consent search failed");
    Json out = Json::array();
    auto parsed = resources::parse_json(r.body);
    if (parsed.ok && parsed.value.contains("entry")) {
      for (const auto& e : parsed.value["entry"])
        if (e.contains("resource") && access::under_opt_out_policy(e["resource"])) out.push_back(opt_out_json(e["resource"]));
    }
    return json_response(200, out);
  }
  if (s.size() == 2 && req.method == "POST") {
    const Json b = body_json(req);
    const std::string patient = jstr(b, "patient");
    if (!resources::is_valid_id(patient))
      throw AuthError(400, "invalid", "対象者(patient)の ID が必要です / patient (a Patient id) is required", "patient");
    RestResponse pr = fhir_as_server(req, "GET", {"Patient", patient}, "");
    if (pr.status != 200) fhir_failed(pr, "Patient/" + patient + " is not known");
    Json provision = {{"type", "deny"}};
    Json actors = Json::array();
    if (b.contains("institutions")) {
      if (!b["institutions"].is_array())
        throw AuthError(400, "invalid", "institutions is a list of institution ids (empty: every institution)",
                        "institutions");
      for (const auto& i : b["institutions"]) {
        const std::string id = i.is_string() ? i.get<std::string>() : std::string();
        if (id.empty() || !auth_.institution(id))
          throw AuthError(400, "invalid", "利用機関がありません / no institution '" + id + "'", "institutions");
        actors.push_back({{"role",
                           {{"coding", Json::array({{{"system",
                                                      "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"},
                                                     {"code", "IRCP"},
                                                     {"display", "information recipient"}}})}}},
                          {"reference", {{"reference", "Organization/" + id}}}});
      }
    }
    if (!actors.empty()) provision["actor"] = actors;
    Json period = Json::object();
    for (const char* k : {"start", "end"}) {
      const std::string v = jstr(b, k);
      if (v.empty()) continue;
      if (!resources::parse_fhir_time_range(v))
        throw AuthError(400, "invalid", std::string(k) + " is a FHIR dateTime (2026-04-01 or 2026-04-01T09:00:00+09:00)",
                        k);
      period[k] = v;
    }
    if (!period.empty()) provision["period"] = period;
    Json consent = {
        {"resourceType", "Consent"},
        {"status", "active"},
        {"scope",
         {{"coding", Json::array({{{"system", "http://terminology.hl7.org/CodeSystem/consentscope"},
                                   {"code", "patient-privacy"}}})}}},
        {"category", Json::array({{{"coding", Json::array({{{"system", "http://loinc.org"}, {"code", "59284-0"}}})},
                                   {"text", "情報提供の停止(オプトアウト) / opt-out of data sharing"}}})},
        {"patient", {{"reference", "Patient/" + patient}}},
        {"dateTime", resources::format_instant(resources::now_millis())},
        {"policy", Json::array({{{"uri", access::kOptOutPolicy}}})},
        {"provision", provision}};
    if (!jstr(b, "reason").empty())
      consent["extension"] = Json::array(
          {{{"url", "http://kasama-fhir.example/fhir/StructureDefinition/opt-out-reason"}, {"valueString", jstr(b, "reason")}}});
    RestResponse r = fhir_as_server(req, "POST", {"Consent"}, resources::dump_json(consent));
    if (r.status != 201) fhir_failed(r, "the opt-out could not be recorded");
    auto parsed = resources::parse_json(r.body);
    log_info("opt-out recorded for Patient/" + patient + " by " + by.account_id);
    return json_response(201, opt_out_json(parsed.ok ? parsed.value : consent));
  }
  if (s.size() == 4 && s[3] == "withdraw" && req.method == "POST") {
    RestResponse cur = fhir_as_server(req, "GET", {"Consent", s[2]}, "");
    if (cur.status != 200) fhir_failed(cur, "no opt-out " + s[2]);
    auto parsed = resources::parse_json(cur.body);
    if (!parsed.ok || !access::under_opt_out_policy(parsed.value)) throw AuthError(404, "not-found", "no opt-out " + s[2]);
    Json consent = parsed.value;
    if (jstr(consent, "status") != "active")
      throw AuthError(409, "conflict", "the opt-out is " + jstr(consent, "status") + ", not active");
    consent["status"] = "inactive";
    RestResponse r = fhir_as_server(req, "PUT", {"Consent", s[2]}, resources::dump_json(consent));
    if (r.status != 200) fhir_failed(r, "the opt-out could not be withdrawn");
    auto done = resources::parse_json(r.body);
    log_info("opt-out " + s[2] + " withdrawn by " + by.account_id);
    return json_response(200, opt_out_json(done.ok ? done.value : consent));
  }
  throw AuthError(404, "not-found", "no endpoint " + req.method + " /" + req.path());
}

RestResponse AuthApi::reports(const RestRequest& req, const Principal& by) {
  const std::string kind = req.segments[2];
  if (kind != "monthly" && kind != "usage") throw AuthError(404, "not-found", "no report " + kind);
  const bool monthly = kind == "monthly";
  // The monthly review is the city's (SM 3.2(6)(7), OM 8); the owner may ask any institution
  // for its usage (OM 7.4), an institution manager sees their own.
  if (monthly) {
    auth_.require(by, {"auditor", "sysadmin", "ops-manager", "owner"});
  } else {
    auth_.require(by, {"auditor", "sysadmin", "ops-manager", "owner", "org-manager"});
  }
  const std::string* month_text = req.param("month");
  auto month = month_text ? audit::parse_report_month(*month_text) : std::nullopt;
  if (!month) throw AuthError(400, "invalid", "対象月を YYYY-MM で指定してください / month is YYYY-MM", "month");
  std::string institution;
  if (!monthly) {
    const std::string* i = req.param("institution");
    institution = by.role == "org-manager" ? by.institution_id : (i ? *i : std::string());
    if (by.role == "org-manager" && i && *i != by.institution_id)
      throw AuthError(403, "forbidden", "自機関の報告のみ参照できます / only your own institution's report");
    if (institution.empty() || !auth_.institution(institution))
      throw AuthError(400, "invalid", "利用機関を指定してください / institution is required", "institution");
  }
  auto& svc = fhir_.services();
  if (svc.audit) {
    svc.audit->flush();  // what was appended before this request is counted
    if (monthly) svc.audit->seal_now();
  }
  audit::ReportBuilder builder(*month, institution, 9 * 60, 7 * 60, 22 * 60, by.role == "org-manager");
  Json chain;
  {
    auto conn = svc.pool.acquire();
    storage::AuditStore store(svc.config.tenant);
    storage::AuditQuery q;
    q.from = month->from_ms;
    q.to = month->to_ms;
    q.institution = institution;
    q.limit = 5000;
    for (;;) {
      auto rows = store.search(*conn, q);
      for (const auto& r : rows) builder.add(r);
      if (rows.size() < q.limit) break;
      q.before_id = rows.back().id;
    }
    if (monthly) {
      const auto v = audit::verify_chain(*conn, svc.config.tenant);
      chain = {{"ok", v.ok}, {"checked", v.checked}, {"headId", v.head_id}, {"unsealed", v.unsealed}};
      if (!v.ok) {
        chain["firstBrokenId"] = v.first_broken;
        chain["problem"] = v.problem;
      }
    }
  }
  Json out = builder.json();
  if (monthly) out["chain"] = chain;
  // Incidents raised in the month (the institution's, for a usage report).
  Json incidents = auth_.incidents_between(month->from_ms, month->to_ms, institution);
  out["incidents"] = incidents;
  out["generated"] = resources::format_instant(resources::now_millis());
  out["generatedBy"] = by.account_id;
  const std::string* format = req.param("format");
  const std::string* accept = req.header("accept");
  if ((format && *format == "html") || (!format && accept && accept->find("text/html") != std::string::npos)) {
    RestResponse r;
    r.status = 200;
    r.body = audit::report_html(out);
    r.content_type = "text/html; charset=utf-8";
    return r;
  }
  return json_response(200, out);
}

}  // namespace kasama::server
