#include "server/auth/auth_service.hpp"

#include <algorithm>
#include <variant>

#include "resources/fhir_time.hpp"
#include "server/log.hpp"

namespace kasama::auth {

using server::log_info;
using server::log_error;
using server::log_warn;
using storage::AccountRow;
using storage::ClientRow;
using storage::Connection;
using storage::InstitutionRow;

namespace {

// Marks a change to what token checks depend on, once the change has committed (the guard
// lives longer than the transaction in the function that declares it).
struct EpochBump {
  std::atomic<std::uint64_t>& epoch;
  bool armed = true;  // false: only when the function finds it has changed something
  ~EpochBump() {
    if (armed) epoch.fetch_add(1, std::memory_order_release);
  }
};

constexpr std::string_view kCityRoles[] = {"owner", "ops-manager", "secretariat", "sysadmin", "auditor"};

// Default and shared login IDs are refused (R-10); generated IDs never collide with these.
constexpr std::string_view kSharedIds[] = {"admin",   "administrator", "root",   "guest",  "test",     "user",
                                           "system",  "operator",      "demo",   "kasama", "owner",    "sysadmin",
                                           "support", "manager",       "public", "staff",  "anonymous"};

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string required_str(const Json& j, const char* key, std::size_t max = 256) {
  std::string v = str(j, key);
  if (v.empty()) {
    throw AuthError(400, "invalid", std::string("「") + key + "」が必要です / '" + key + "' is required", key);
  }
  if (v.size() > max) {
    throw AuthError(400, "invalid", std::string("「") + key + "」が長すぎます / '" + key + "' is too long", key);
  }
  return v;
}

Json parse_details(const std::string& text) {
  auto parsed = resources::parse_json(text);
  return parsed.ok && parsed.value.is_object() ? parsed.value : Json::object();
}

// An access range as given (R-20), normalized: {"care": "read-write", …}; 400 naming the
// member that is not a category or a mode.
Json checked_range(const Json& j, const std::string& field) {
  const auto& cats = access::Categories::instance();
  try {
    return cats.range_json(cats.parse_range(j));
  } catch (const std::invalid_argument& e) {
    std::string known;
    for (std::size_t c = 1; c <= cats.size(); ++c) known += (known.empty() ? "" : ", ") + cats.code(static_cast<access::Category>(c));
    throw AuthError(400, "invalid",
                    "情報区分と権限(read / read-write)を指定してください / give information categories (" + known +
                        ") with read or read-write",
                    e.what() == std::string("categories") ? field : field + std::string(e.what()).substr(10));
  }
}

// A row's JSON details with reason recorded under key (unchanged when there is none).
std::string with_reason(const std::string& details, const char* key, const std::string& reason) {
  if (reason.empty()) return details;
  Json d = parse_details(details);
  d[key] = reason;
  return resources::dump_json(d);
}

std::string iso(std::int64_t ms) {
  return resources::format_instant(ms);
}
Json iso_or_null(const std::optional<std::int64_t>& ms) {
  return ms ? Json(iso(*ms)) : Json(nullptr);
}

bool valid_local_id(std::string_view id) {
  if (id.size() < 3 || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
  });
}

std::string role_prefix(std::string_view role) {
  if (role == "citizen") return "r-";
  if (is_city_role(role)) return "c-";
  return "s-";
}

// The fhirUser reference an account may carry: Practitioner, PractitionerRole, Patient,
// RelatedPerson (Person for city staff without a clinical record).
bool valid_fhir_user(std::string_view ref) {
  static constexpr std::string_view kTypes[] = {"Practitioner/", "PractitionerRole/", "Patient/", "RelatedPerson/",
                                                "Person/"};
  for (auto t : kTypes) {
    if (ref.starts_with(t) && ref.size() > t.size() && ref.size() <= t.size() + 64) {
      return std::all_of(ref.begin() + static_cast<std::ptrdiff_t>(t.size()), ref.end(),
                         [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'; });
    }
  }
  return false;
}

std::string url_decode(std::string_view s) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) throw std::invalid_argument("bad escape");
      const int h = hex(s[i + 1]), l = hex(s[i + 2]);
      if (h < 0 || l < 0) throw std::invalid_argument("bad escape");
      out += static_cast<char>(h * 16 + l);
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

const std::string* form_value(const std::map<std::string, std::string>& form, const char* key) {
  auto it = form.find(key);
  return it == form.end() ? nullptr : &it->second;
}

// https://host[:port]/…, or http://localhost or 127.0.0.1 with an optional port, and no
// fragment (RFC 6749 §3.1.2). The host is compared exactly: http://localhost.evil.example is not
// localhost.
bool acceptable_redirect_uri(const std::string& u) {
  if (u.size() > 2000 || u.find('#') != std::string::npos) return false;
  std::string_view rest;
  bool https = false;
  if (u.starts_with("https://")) {
    rest = std::string_view(u).substr(8);
    https = true;
  } else if (u.starts_with("http://")) {
    rest = std::string_view(u).substr(7);
  } else {
    return false;
  }
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  std::string_view host =
      authority.substr(0, authority.rfind(':') == std::string_view::npos ? authority.size() : authority.rfind(':'));
  if (host.empty()) return false;
  if (https) return true;
  return host == "localhost" || host == "127.0.0.1";
}

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

bool is_role(std::string_view role) {
  return std::any_of(std::begin(kRoles), std::end(kRoles), [&](const char* r) { return role == r; });
}

bool is_city_role(std::string_view role) {
  return std::find(std::begin(kCityRoles), std::end(kCityRoles), role) != std::end(kCityRoles);
}

bool needs_second_factor(std::string_view role) {
  return role == "owner" || role == "ops-manager" || role == "sysadmin";
}

ScopeSet role_ceiling(std::string_view role) {
  // What each role may ever hold over FHIR; the access module (issue 5) narrows further by
  // institution range, category, consent and proxy relation.
  // Staff get online_access (refresh tokens ending with the login session's lifetime), not
  // offline_access: their work stays under R-17's session rules.
  std::string s = "openid fhirUser profile online_access";
  if (role == "citizen") {
    s += " offline_access launch/patient patient/*.rs";
  } else if (role == "practitioner" || role == "secretariat") {
    s += " user/*.cruds";
  } else if (role == "org-manager") {
    s += " user/*.rs";
  } else if (role == "auditor") {
    s += " user/AuditEvent.rs";
  } else {  // owner, ops-manager, sysadmin: the registry of people and places, not records
    s += " user/Organization.rs user/Practitioner.rs user/PractitionerRole.rs";
  }
  return ScopeSet::parse(s);
}

std::string password_problem(std::string_view pw, bool second_factor) {
  bool letter = false, digit = false, symbol = false;
  for (unsigned char c : pw) {
    if (std::isalpha(c)) {
      letter = true;
    } else if (std::isdigit(c)) {
      digit = true;
    } else if (c >= 0x21 && c < 0x7f) {
      symbol = true;
    } else if (c < 0x20 || c == 0x7f) {
      return "パスワードに制御文字は使えません / control characters are not allowed in a password";
    }
  }
  if (pw.size() > 128) return "パスワードは128文字以内です / a password has at most 128 characters";
  if (pw.size() >= 13 && letter && digit && symbol) return {};
  if (second_factor && pw.size() >= 8 && letter && digit) return {};
  return second_factor
             ? "パスワードは英字・数字・記号を含む13文字以上、または英字・数字を含む8文字以上にしてください / "
               "use at least 13 characters mixing letters, digits and symbols (or at least 8 with letters "
               "and digits, since you use a second factor)"
             : "パスワードは英字・数字・記号を含む13文字以上にしてください / use at least 13 characters "
               "mixing letters, digits and symbols (8 are enough once a second factor is set up)";
}

std::string generate_password() {
  // No look-alikes (0/O, 1/l/I) so it can be typed from the printed certificate.
  static constexpr std::string_view kLetters = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
  static constexpr std::string_view kDigits = "23456789";
  static constexpr std::string_view kSymbols = "!#%+-=?@";
  for (;;) {
    const std::string bytes = random_bytes(16);
    std::string pw;
    for (std::size_t i = 0; i < 16; ++i) {
      const auto b = static_cast<unsigned char>(bytes[i]);
      if (i % 6 == 5) {
        pw += kSymbols[b % kSymbols.size()];
      } else if (i % 4 == 3) {
        pw += kDigits[b % kDigits.size()];
      } else {
        pw += kLetters[b % kLetters.size()];
      }
    }
    if (password_problem(pw, false).empty()) return pw;
  }
}

AuthService::AuthService(storage::ConnectionPool& pool, unsigned tenant, AuthSettings settings)
    : pool_(pool), store_(tenant), settings_(std::move(settings)) {
  storage::with_transaction(pool_, [&](Connection& c) {
    if (auto k = store_.signing_key(c)) {
      signing_kid_ = k->first;
      signing_key_ = Key::from_pem(k->second);
    } else {
      signing_key_ = Key::generate_rsa(2048);
      signing_kid_ = base64url_encode(sha256(signing_key_.public_pem())).substr(0, 16);
      store_.insert_signing_key(c, signing_kid_, signing_key_.private_pem(), now_ms());
    }
  });
}

std::int64_t AuthService::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void AuthService::require(const Principal& p, std::initializer_list<std::string_view> roles) const {
  if (p.kind != "session") {
    throw AuthError(401, "invalid_token", "ログインが必要です / log in first");
  }
  if (p.must_change_password) {
    throw AuthError(403, "password-change-required",
                    "初期パスワードを変更してください / change your initial password before anything else (R-13)");
  }
  if (p.needs_second_factor) {
    throw AuthError(403, "second-factor-required",
                    "二要素認証(TOTP)を設定してください / set up the second factor (TOTP) before anything else");
  }
  if (std::find(roles.begin(), roles.end(), p.role) == roles.end()) {
    throw AuthError(403, "forbidden", "この操作の権限がありません / your role (" + p.role + ") may not do this");
  }
}

// --- bootstrap ------------------------------------------------------------------------

Issued AuthService::bootstrap_owner(const std::string& name) {
  if (name.empty() || name.size() > 256) throw AuthError(400, "invalid", "a name is required", "name");
  return storage::with_transaction(pool_, [&](Connection& c) {
    if (!store_.accounts(c, "owner", "", "").empty()) {
      throw AuthError(409, "conflict",
                      "事業責任者のアカウントは既にあります / an owner account exists already: bootstrap runs once");
    }
    AccountRow a;
    a.id = new_account_id(c, "owner");
    a.name = name;
    a.role = "owner";
    a.state = "requested";
    a.details = "{}";
    a.created_at = now_ms();
    a.created_by = "bootstrap";
    store_.insert_account(c, a);
    return issue_in(c, a, "bootstrap");
  });
}

std::string AuthService::new_account_id(Connection& c, std::string_view role) {
  static constexpr std::string_view kAlphabet = "abcdefghjkmnpqrstuvwxyz23456789";
  for (;;) {
    const std::string bytes = random_bytes(8);
    std::string id = role_prefix(role);
    for (unsigned char b : bytes) id += kAlphabet[b % kAlphabet.size()];
    if (!store_.account(c, id)) return id;
  }
}

Issued AuthService::issue_in(Connection& c, AccountRow& a, const std::string& by) {
  Issued out;
  out.account_id = a.id;
  out.password = generate_password();
  a.password_hash = hash_password(out.password);
  a.password_initial = true;
  a.password_set_at = now_ms();
  a.totp_secret.clear();  // a reset starts the second factor afresh too
  a.totp_last_step = 0;
  a.state = "active";
  if (!a.issued_at) {
    a.issued_at = now_ms();
    a.issued_by = by;
  }
  store_.update_account(c, a);
  store_.revoke_account_tokens(c, a.id);  // a reset ends every session and token
  out.certificate_token = random_token(24);
  Json cert = {{"accountId", a.id},
               {"name", a.name},
               {"role", a.role},
               {"institution", a.institution_id},
               {"password", out.password},
               {"issuedAt", iso(now_ms())},
               {"issuedBy", by}};
  if (!a.institution_id.empty()) {
    if (auto inst = store_.institution(c, a.institution_id)) cert["institutionName"] = inst->name;
  }
  std::lock_guard lock(mu_);
  // Certificates not fetched within an hour are dropped: the password then has to be reset.
  const std::int64_t now = now_ms();
  std::erase_if(certificates_, [&](const auto& kv) { return kv.second.second < now; });
  certificates_[out.certificate_token] = {std::move(cert), now + 3600 * 1000};
  return out;
}

std::optional<Json> AuthService::take_certificate(const std::string& token) {
  std::lock_guard lock(mu_);
  auto it = certificates_.find(token);
  if (it == certificates_.end() || it->second.second < now_ms()) return std::nullopt;
  Json cert = std::move(it->second.first);
  certificates_.erase(it);
  return cert;
}

// --- login, sessions, tokens ----------------------------------------------------------

// Login throttling, all in memory (a restart forgets it, which favours the real user):
//  - per source and account: each failure makes the next attempt from that source wait
//    250 ms, doubling up to 4 s; after 10 failures that source is locked for 1 minute,
//    doubling up to 15. Early attempts are refused at once (no sleeping thread, no hash).
//  - per source, whatever the account: more than 50 failures in 10 minutes block the source
//    for 5 minutes (password spraying, and the hashing it would cost).
//  - per account, from anywhere: after 20 failures in a row, sources that have not logged
//    into the account before may try once per 5 s. Sources that have, the real user's, are
//    not held up: an attacker cannot lock anyone out.
void AuthService::login_failed(const std::string& account_in, const std::string& peer, std::string_view why) {
  // What is no ID at all is counted under one name: the maps hold no attacker-chosen text.
  const std::string account_id = valid_local_id(account_in) ? account_in : std::string("<malformed>");
  unsigned failures = 0;
  const std::int64_t now = now_ms();
  {
    std::lock_guard lock(mu_);
    auto& t = throttle_[account_id + "|" + peer];
    failures = ++t.failures;
    t.last = now;
    const std::int64_t wait = failures >= 10 ? std::min<std::int64_t>(60000LL << std::min(failures - 10, 4U), 900000)
                                             : std::min<std::int64_t>(250LL << std::min(failures - 1, 4U), 4000);
    t.next_allowed = now + wait;
    auto& src = peers_[peer];
    if (now - src.window_start > 10 * 60 * 1000) src = PeerBudget{now, 0, src.blocked_until};
    if (++src.failures > 50) {
      src.blocked_until = now + 5 * 60 * 1000;
      log_warn("login source " + peer + " blocked for 5 minutes: " + std::to_string(src.failures) +
               " failed logins in 10 minutes");
    }
    auto& acc = accounts_[account_id];
    acc.last = now;
    if (++acc.failures >= 20) acc.next_new_source = now + 5000;
    // Bounded: forget what has been quiet for an hour, at most once a minute.
    if (throttle_.size() + peers_.size() + accounts_.size() > 100000 && now - last_prune_ > 60000) {
      last_prune_ = now;
      const std::int64_t cut = now - 3600 * 1000;
      std::erase_if(throttle_, [&](const auto& kv) { return kv.second.last < cut; });
      std::erase_if(peers_,
                    [&](const auto& kv) { return kv.second.window_start < cut && kv.second.blocked_until < now; });
      std::erase_if(accounts_, [&](const auto& kv) { return kv.second.last < cut; });
    }
  }
  log_warn("login failed for '" + account_id.substr(0, 64) + "' from " + peer + " (" + std::to_string(failures) +
           " in a row from there): " + std::string(why));
}

LoginResult AuthService::login(const std::string& account_in, const std::string& password, const std::string& totp,
                               const std::string& peer) {
  const std::string account_id = valid_local_id(account_in) ? account_in : std::string("<malformed>");
  const std::string key = account_id + "|" + peer;
  const std::int64_t now = now_ms();
  {
    std::lock_guard lock(mu_);
    const auto refuse = [&](bool locked, std::int64_t until, std::string_view why) {
      log_warn("login attempt for '" + account_id.substr(0, 64) + "' from " + peer + " refused: " + std::string(why));
      AuthError e(429, locked ? "locked" : "slow_down",
                  locked
                      ? "ログイン失敗が続いたため一時的にロックしています。しばらくしてからお試しください / too many "
                        "failed logins from here: locked for a while"
                      : "ログインの再試行が早すぎます / retry a little later");
      e.retry_after_ms = until - now;
      return e;
    };
    if (auto it = peers_.find(peer); it != peers_.end() && now < it->second.blocked_until) {
      throw refuse(true, it->second.blocked_until, "source blocked");
    }
    if (auto it = throttle_.find(key); it != throttle_.end() && now < it->second.next_allowed) {
      throw refuse(it->second.failures >= 10, it->second.next_allowed,
                   std::to_string(it->second.failures) + " failures from this source");
    }
    if (auto it = accounts_.find(account_id); it != accounts_.end() && now < it->second.next_new_source) {
      auto good = known_good_.find(account_id);
      if (good == known_good_.end() ||
          std::find(good->second.begin(), good->second.end(), peer) == good->second.end()) {
        throw refuse(false, it->second.next_new_source, "account under repeated failures; unknown source");
      }
    }
    // Until this attempt is decided, the next one from this source waits as if it failed:
    // attempts sent all at once get one password check, not one each.
    auto& t = throttle_[key];
    t.next_allowed = now + std::min<std::int64_t>(250LL << std::min(t.failures, 4U), 4000);
    t.last = now;
  }
  const auto fail = [&](std::string_view why) -> AuthError {
    login_failed(account_id, peer, why);
    return AuthError(401, "invalid_grant", "IDまたはパスワードが違います / wrong ID or password");
  };
  // IDs are [a-z0-9._-]: anything else (spaces that the collation would ignore, case) is no ID.
  if (account_id == "<malformed>" || password.empty() || password.size() > 1024) {
    throw fail("malformed ID or password");
  }
  auto result = storage::with_transaction(pool_, [&](Connection& c) -> std::optional<LoginResult> {
    auto a = store_.account(c, account_id, true);
    if (!a || a->state != "active" || a->password_hash.empty()) {
      // Same work as a real check, so that timing does not tell which IDs exist.
      verify_password(password,
                      "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                      "WmVyb3plcm96ZXJvemVyb3plcm96ZXJvemVyb3plcm8");
      return std::nullopt;
    }
    if (!verify_password(password, a->password_hash)) return std::nullopt;
    if (!a->totp_secret.empty()) {
      auto step = totp.empty() ? std::nullopt : totp_verify(a->totp_secret, totp, now / 1000);
      if (!step || *step <= a->totp_last_step) return std::nullopt;
      a->totp_last_step = *step;  // each code counts once
      store_.update_account(c, *a);
    }
    LoginResult r;
    r.session_token = new_token(c, "session", a->id, "", "", "", "", settings_.session_lifetime);
    r.principal.kind = "session";
    r.principal.account_id = a->id;
    r.principal.name = a->name;
    r.principal.role = a->role;
    r.principal.institution_id = a->institution_id;
    r.principal.fhir_user = a->fhir_user;
    r.principal.admin_right = a->admin_right;
    r.principal.must_change_password = a->password_initial;
    r.principal.needs_second_factor = (needs_second_factor(a->role) || a->admin_right) && a->totp_secret.empty();
    return r;
  });
  if (!result) throw fail("wrong ID, password or second factor, or account not active");
  {
    std::lock_guard lock(mu_);
    throttle_.erase(key);
    accounts_.erase(account_id);
    auto& good = known_good_[account_id];
    if (std::find(good.begin(), good.end(), peer) == good.end()) {
      if (good.size() >= 16) good.erase(good.begin());
      good.push_back(peer);
    }
  }
  log_info("login: " + account_id + " from " + peer);
  return std::move(*result);
}

std::string AuthService::new_token(Connection& c, const std::string& kind, const std::string& account_id,
                                   const std::string& client_id, const std::string& scope, const std::string& patient,
                                   const std::string& family, std::chrono::seconds lifetime) {
  const std::string token = random_token(32);
  storage::AuthTokenRow t;
  t.token_hash = sha256(token);
  t.kind = kind;
  t.account_id = account_id;
  t.client_id = client_id;
  t.scope = scope;
  t.patient_id = patient;
  t.family = family;
  t.created_at = now_ms();
  t.expires_at = t.created_at + std::chrono::duration_cast<std::chrono::milliseconds>(lifetime).count();
  t.last_used = t.created_at;
  store_.insert_token(c, t);
  return token;
}

namespace {

// An institution's granted range: details.access (set at approval or later by the owner).
access::Range institution_range(const std::string& details) {
  Json d = parse_details(details);
  auto it = d.find("access");
  if (it == d.end()) return {};
  try {
    return access::Categories::instance().parse_range(*it);
  } catch (const std::invalid_argument&) {
    return {};  // validated when written; never wider than nothing
  }
}

// The access range of a token: the institution's (the account's, and the terminal's when it
// belongs to another one), narrowed by the user's own range when the secretariat set one.
void set_range(Principal& p, const storage::TokenContext& x) {
  const bool user = !x.token.account_id.empty();
  if (user && (is_city_role(x.role) || x.role == "citizen")) return;
  std::string inst = user ? x.institution_id : x.client_institution_id;
  if (inst.empty()) inst = x.client_institution_id;
  if (inst.empty()) {
    if (!user) return;
    // Staff without an institution are not expected; they see only the directory.
    p.institution_scoped = true;
    return;
  }
  p.institution_scoped = true;
  p.access_institution = inst;
  p.range = institution_range(user && !x.institution_id.empty() ? x.account_institution_details
                                                                 : x.client_institution_details);
  if (user && !x.client_institution_id.empty() && x.client_institution_id != inst)
    p.range = p.range.intersect(institution_range(x.client_institution_details));
  if (user) {
    Json d = parse_details(x.account_details);
    if (auto it = d.find("access"); it != d.end()) {
      try {
        p.range = p.range.intersect(access::Categories::instance().parse_range(*it));
      } catch (const std::invalid_argument&) {
        p.range = {};
      }
    }
  }
}

Principal principal_of(const storage::TokenContext& x, const std::string& hash) {
  Principal p;
  p.kind = x.token.kind;
  p.token_hash = hash;
  p.account_id = x.token.account_id;
  p.name = x.name;
  p.role = x.token.account_id.empty() ? "system" : x.role;
  p.institution_id = x.institution_id;
  p.fhir_user = x.fhir_user;
  p.admin_right = x.admin_right;
  p.must_change_password = x.password_initial;
  p.needs_second_factor = !p.account_id.empty() && (needs_second_factor(p.role) || p.admin_right) && !x.has_totp;
  p.client_id = x.token.client_id;
  p.terminal_id = x.terminal_id;
  p.patient = x.token.patient_id;
  p.scope_text = x.token.scope;
  p.scopes = ScopeSet::parse(x.token.scope);
  set_range(p, x);
  return p;
}

}  // namespace

std::shared_ptr<const Principal> AuthService::check_token(const std::string& token, std::string_view kind, bool touch) {
  if (token.empty() || token.size() > 200) return nullptr;
  const std::string hash = sha256(token);
  const std::int64_t now = now_ms();
  // The epoch is read before the database is: a change committed after this point bumps it,
  // and what is cached now is thrown away at the next check.
  const std::uint64_t epoch = epoch_.load(std::memory_order_acquire);
  const std::int64_t ttl = settings_.token_cache_ttl.count();
  std::shared_ptr<CachedToken> e;
  {
    std::shared_lock lock(cache_mu_);
    auto it = token_cache_.find(hash);
    if (it != token_cache_.end() && it->second->epoch == epoch && now - it->second->filled_at < ttl) e = it->second;
  }
  if (!e) {
    std::optional<storage::TokenContext> x;
    {
      auto conn = pool_.acquire();
      x = store_.token_context(*conn, hash);
    }
    if (!x) return nullptr;
    e = std::make_shared<CachedToken>();
    e->principal = std::make_shared<const Principal>(principal_of(*x, hash));
    e->last_used.store(x->token.last_used);
    e->last_written.store(x->token.last_used);
    e->ctx = std::move(*x);
    e->filled_at = now;
    e->epoch = epoch;
    std::unique_lock lock(cache_mu_);
    if (token_cache_.size() >= 200000) token_cache_.clear();  // bounded; refilled on demand
    token_cache_[hash] = e;
  }
  const storage::TokenContext& x = e->ctx;
  const Principal& p = *e->principal;
  if (x.token.revoked || x.token.kind != kind) return nullptr;
  if (now >= x.token.expires_at) return nullptr;
  const std::int64_t idle_ms = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.idle).count();
  // Backend (client_credentials) tokens have a short absolute lifetime instead; user tokens
  // and sessions lock when idle (R-17).
  if (!p.account_id.empty() && now - e->last_used.load() > idle_ms) return nullptr;
  if (!p.account_id.empty()) {
    if (x.account_state != "active") return nullptr;  // deregistered or revoked (R-15)
    if (!x.institution_id.empty() && x.account_institution_state != "active") return nullptr;
  }
  if (!p.client_id.empty()) {
    if (x.client_state != "active") return nullptr;  // deregistered terminal (R-18)
    if (!x.client_institution_state.empty() && x.client_institution_state != "active") return nullptr;
  }
  // A patient context other than the citizen's own record holds only while the proxy
  // relation behind it is active (R-22).
  if (!p.patient.empty() && p.role == "citizen" && p.fhir_user != "Patient/" + p.patient && !x.proxy_active) {
    return nullptr;
  }
  if (kind == "access" && !p.account_id.empty() && (p.must_change_password || p.needs_second_factor)) {
    return nullptr;
  }
  // The idle clock is written lazily: at most every 30 s (a quarter of the idle limit when
  // that is shorter), so a token in use never looks idle after a restart and reads cost no
  // write each. One request wins the right to write.
  if (!touch) return e->principal;  // a look (introspection), not a use
  std::int64_t written = e->last_written.load();
  if (now - written > std::min<std::int64_t>(30000, idle_ms / 4) &&
      e->last_written.compare_exchange_strong(written, now)) {
    auto conn = pool_.acquire();
    store_.touch_token(*conn, hash, now);
  }
  std::int64_t used = e->last_used.load();
  while (used < now && !e->last_used.compare_exchange_weak(used, now)) {
  }
  return e->principal;
}

void AuthService::logout(const std::string& session_token) {
  EpochBump changed{epoch_};
  auto conn = pool_.acquire();
  store_.revoke_token(*conn, sha256(session_token));
}

// --- the account's own changes ----------------------------------------------------------

void AuthService::change_password(const Principal& p, const std::string& current, const std::string& next) {
  EpochBump changed{epoch_};
  if (p.kind != "session" || p.account_id.empty()) throw AuthError(401, "invalid_token", "log in first");
  // The current password is guessed here too (with a stolen session): throttled like logins.
  const std::string key = p.account_id + "|password-change";
  const std::int64_t now = now_ms();
  {
    std::lock_guard lock(mu_);
    if (auto it = throttle_.find(key); it != throttle_.end() && now < it->second.next_allowed) {
      AuthError e(429, "slow_down", "再試行が早すぎます / retry a little later");
      e.retry_after_ms = it->second.next_allowed - now;
      throw e;
    }
  }
  storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, p.account_id, true);
    if (!a || a->state != "active") throw AuthError(401, "invalid_token", "log in first");
    if (!verify_password(current, a->password_hash)) {
      {
        std::lock_guard lock(mu_);
        auto& t = throttle_[key];
        ++t.failures;
        t.last = now;
        t.next_allowed = now + (t.failures >= 10 ? 900000 : std::min<std::int64_t>(250LL << (t.failures - 1), 4000));
      }
      log_warn("password change for " + p.account_id + ": wrong current password");
      throw AuthError(400, "invalid", "現在のパスワードが違います / the current password is wrong", "current");
    }
    if (current == next) {
      throw AuthError(400, "invalid", "新しいパスワードは現在のものと別にしてください / choose a new password", "new");
    }
    const std::string problem = password_problem(next, !a->totp_secret.empty());
    if (!problem.empty()) throw AuthError(400, "invalid", problem, "new");
    a->password_hash = hash_password(next);
    a->password_initial = false;
    a->password_set_at = now;
    store_.update_account(c, *a);
    // Every other session and token of the account ends with the old password.
    store_.revoke_account_tokens_except(c, a->id, p.token_hash);
  });
  {
    std::lock_guard lock(mu_);
    throttle_.erase(key);
  }
  log_info("password changed: " + p.account_id);
}

Json AuthService::start_totp(const Principal& p) {
  if (p.kind != "session" || p.account_id.empty()) throw AuthError(401, "invalid_token", "log in first");
  if (p.must_change_password) {
    throw AuthError(403, "password-change-required",
                    "初期パスワードを変更してください / change your initial password first (R-13)");
  }
  if (!p.needs_second_factor) {
    auto conn = pool_.acquire();
    auto a = store_.account(*conn, p.account_id);
    if (a && !a->totp_secret.empty()) {
      // Replacing a second factor with only a session would let a stolen session keep the
      // account: a new one comes after a password reset by the secretariat.
      throw AuthError(
          409, "conflict",
          "二要素認証は設定済みです。変更は運営事務局のパスワードリセット後に行えます / a second factor is set "
          "up already; to replace it, ask the secretariat for a password reset");
    }
  }
  const std::string secret = random_bytes(20);
  {
    std::lock_guard lock(mu_);
    pending_totp_[p.account_id] = secret;
  }
  return Json{{"secret", base32_encode(secret)}, {"uri", otpauth_uri("Kasama", p.account_id, secret)}};
}

void AuthService::confirm_totp(const Principal& p, const std::string& code) {
  EpochBump changed{epoch_};
  if (p.kind != "session" || p.account_id.empty()) throw AuthError(401, "invalid_token", "log in first");
  std::string secret;
  {
    std::lock_guard lock(mu_);
    auto it = pending_totp_.find(p.account_id);
    if (it == pending_totp_.end()) throw AuthError(409, "conflict", "start the second-factor setup first");
    secret = it->second;
  }
  auto step = totp_verify(secret, code, now_ms() / 1000);
  if (!step) throw AuthError(400, "invalid", "確認コードが違います / the code does not match", "code");
  storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, p.account_id, true);
    if (!a) throw AuthError(401, "invalid_token", "log in first");
    a->totp_secret = secret;
    a->totp_last_step = *step;
    store_.update_account(c, *a);
  });
  std::lock_guard lock(mu_);
  pending_totp_.erase(p.account_id);
}

// --- institutions -----------------------------------------------------------------------

Json AuthService::institution_json(const InstitutionRow& r) const {
  Json d = parse_details(r.details);
  return Json{{"id", r.id},
              {"name", r.name},
              {"state", r.state},
              {"details", d},
              {"appliedAt", iso(r.applied_at)},
              {"decidedAt", iso_or_null(r.decided_at)},
              {"decidedBy", r.decided_by.empty() ? Json(nullptr) : Json(r.decided_by)},
              {"endedAt", iso_or_null(r.ended_at)}};
}

std::optional<InstitutionRow> AuthService::institution(const std::string& id) {
  auto conn = pool_.acquire();
  return store_.institution(*conn, id);
}

Json AuthService::apply_institution(const Json& app) {
  if (!app.is_object()) throw AuthError(400, "invalid", "a JSON object is required");
  InstitutionRow r;
  r.name = required_str(app, "name");
  const Json manager = app.contains("manager") ? app["manager"] : Json();
  if (!manager.is_object() || str(manager, "name").empty()) {
    throw AuthError(400, "invalid",
                    "利用機関管理責任者の氏名(manager.name)が必要です / the institution manager's name is required",
                    "manager.name");
  }
  Json details = Json::object();
  for (const char* k : {"kind", "address", "phone", "email", "medicalInstitutionCode", "insurerNumber"}) {
    if (app.contains(k) && app[k].is_string()) details[k] = app[k];
  }
  details["manager"] = Json{{"name", str(manager, "name")}};
  if (app.contains("categories")) details["categories"] = checked_range(app["categories"], "categories");
  r.details = resources::dump_json(details);
  r.state = "applied";
  r.applied_at = now_ms();
  storage::with_transaction(pool_, [&](Connection& c) {
    for (;;) {
      r.id = "org-" + base32_encode(random_bytes(5));
      std::transform(r.id.begin(), r.id.end(), r.id.begin(), [](unsigned char ch) { return std::tolower(ch); });
      if (!store_.institution(c, r.id)) break;
    }
    store_.insert_institution(c, r);
  });
  log_info("institution application " + r.id + ": " + r.name);
  return institution_json(r);
}

Json AuthService::decide_institution(const Principal& by, const std::string& id, bool approve,
                                     const std::string& reason, const Json& categories) {
  EpochBump changed{epoch_};
  require(by, {"owner"});
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto r = store_.institution(c, id, true);
    if (!r) throw AuthError(404, "not-found", "no institution " + id);
    if (r->state != "applied") {
      throw AuthError(409, "conflict", "申請中ではありません / the institution is " + r->state + ", not applied");
    }
    r->state = approve ? "active" : "rejected";
    r->decided_at = now_ms();
    r->decided_by = by.account_id;
    Json d = parse_details(r->details);
    if (!reason.empty()) d["decisionReason"] = reason;
    if (approve) {
      // The range granted: as given by the owner, else as applied for (R-20).
      const Json& asked = d.contains("categories") ? d["categories"] : Json::object();
      d["access"] = checked_range(categories.is_null() ? asked : categories, "categories");
    }
    r->details = resources::dump_json(d);
    store_.update_institution(c, *r);
    Json out = institution_json(*r);
    if (approve) {
      // The manager named in the application: an account request for the ops-manager to issue.
      AccountRow m;
      m.id = new_account_id(c, "org-manager");
      m.name = d.contains("manager") ? str(d["manager"], "name") : std::string();
      if (m.name.empty()) m.name = r->name + " manager";
      m.role = "org-manager";
      m.institution_id = r->id;
      m.state = "requested";
      m.details = "{}";
      m.created_at = now_ms();
      m.created_by = by.account_id;
      store_.insert_account(c, m);
      out["managerAccountRequest"] = m.id;
    }
    log_info("institution " + id + (approve ? " approved" : " rejected") + " by " + by.account_id);
    return out;
  });
}

Json AuthService::set_institution_access(const Principal& by, const std::string& id, const Json& categories) {
  EpochBump changed{epoch_};
  require(by, {"owner"});
  const Json range = checked_range(categories, "categories");
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto r = store_.institution(c, id, true);
    if (!r) throw AuthError(404, "not-found", "no institution " + id);
    if (r->state != "active") throw AuthError(409, "conflict", "the institution is " + r->state + ", not active");
    Json d = parse_details(r->details);
    d["access"] = range;
    r->details = resources::dump_json(d);
    store_.update_institution(c, *r);
    log_info("institution " + id + " access range set by " + by.account_id + ": " + resources::dump_json(range));
    return institution_json(*r);
  });
}

Json AuthService::deregister_institution(const Principal& by, const std::string& id, const std::string& reason) {
  EpochBump changed{epoch_};
  require(by, {"owner"});
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto r = store_.institution(c, id, true);
    if (!r) throw AuthError(404, "not-found", "no institution " + id);
    if (r->state != "active") throw AuthError(409, "conflict", "the institution is " + r->state + ", not active");
    r->state = "deregistered";
    r->ended_at = now_ms();
    r->ended_by = by.account_id;
    r->details = with_reason(r->details, "deregistrationReason", reason);
    store_.update_institution(c, *r);
    // Its staff and terminals stop at once: token checks see the institution's state.
    log_info("institution " + id + " deregistered by " + by.account_id);
    return institution_json(*r);
  });
}

Json AuthService::list_institutions(const Principal& by, const std::string& state) {
  require(by, {"owner", "ops-manager", "secretariat", "sysadmin", "auditor"});
  auto conn = pool_.acquire();
  Json out = Json::array();
  for (const auto& r : store_.institutions(*conn, state)) out.push_back(institution_json(r));
  return out;
}

// --- accounts -------------------------------------------------------------------------

Json AuthService::account_json(const AccountRow& a) const {
  return Json{{"id", a.id},
              {"name", a.name},
              {"role", a.role},
              {"institution", a.institution_id.empty() ? Json(nullptr) : Json(a.institution_id)},
              {"fhirUser", a.fhir_user.empty() ? Json(nullptr) : Json(a.fhir_user)},
              {"state", a.state},
              {"initialPassword", a.password_initial},
              {"secondFactor", !a.totp_secret.empty()},
              {"adminRight", a.admin_right},
              {"details", parse_details(a.details)},
              {"createdAt", iso(a.created_at)},
              {"createdBy", a.created_by.empty() ? Json(nullptr) : Json(a.created_by)},
              {"issuedAt", iso_or_null(a.issued_at)},
              {"issuedBy", a.issued_by.empty() ? Json(nullptr) : Json(a.issued_by)},
              {"endedAt", iso_or_null(a.ended_at)}};
}

namespace {

// An optional login ID chosen by the requester: individual, never a default or shared name.
std::string chosen_id(const Json& body) {
  std::string id = str(body, "loginId");
  if (id.empty()) return id;
  if (!valid_local_id(id)) {
    throw AuthError(400, "invalid",
                    "ログインIDは英小文字・数字・-._ の3〜64文字です / a login ID is 3-64 of [a-z0-9-._]", "loginId");
  }
  for (auto shared : kSharedIds) {
    if (id == shared) {
      throw AuthError(
          400, "invalid",
          "共用・既定のID(" + id + ")は使えません / shared or default IDs such as '" + id + "' are not allowed (R-10)",
          "loginId");
    }
  }
  return id;
}

}  // namespace

std::pair<Json, Issued> AuthService::create_city_account(const Principal& by, const Json& body) {
  require(by, {"owner", "ops-manager"});
  const std::string role = required_str(body, "role", 16);
  if (!is_city_role(role)) {
    throw AuthError(400, "invalid", "role must be one of owner, ops-manager, secretariat, sysadmin, auditor", "role");
  }
  if (role == "owner" && by.role != "owner") {
    throw AuthError(403, "forbidden",
                    "事業責任者のアカウントは事業責任者のみ発行できます / only an owner issues owners");
  }
  const std::string name = required_str(body, "name");
  const std::string fhir_user = str(body, "fhirUser");
  if (!fhir_user.empty() && !valid_fhir_user(fhir_user)) {
    throw AuthError(400, "invalid", "fhirUser must be Practitioner/id, Person/id, …", "fhirUser");
  }
  const std::string wanted = chosen_id(body);
  return storage::with_transaction(pool_, [&](Connection& c) {
    AccountRow a;
    a.id = wanted.empty() ? new_account_id(c, role) : wanted;
    if (!wanted.empty() && store_.account(c, wanted)) throw AuthError(409, "conflict", "the ID is taken", "loginId");
    a.name = name;
    a.role = role;
    a.fhir_user = fhir_user;
    a.state = "requested";
    a.details = "{}";
    a.created_at = now_ms();
    a.created_by = by.account_id;
    store_.insert_account(c, a);
    Issued issued = issue_in(c, a, by.account_id);
    log_info("account " + a.id + " (" + role + ") issued by " + by.account_id);
    return std::make_pair(account_json(a), issued);
  });
}

Json AuthService::request_staff_account(const Principal& by, const Json& body) {
  require(by, {"org-manager"});
  const std::string role = str(body, "role").empty() ? "practitioner" : str(body, "role");
  if (role != "practitioner" && role != "org-manager") {
    throw AuthError(400, "invalid", "staff accounts are practitioner or org-manager", "role");
  }
  const std::string name = required_str(body, "name");
  const std::string fhir_user = str(body, "fhirUser");
  if (!fhir_user.empty() && !((fhir_user.starts_with("Practitioner/") || fhir_user.starts_with("PractitionerRole/")) &&
                              valid_fhir_user(fhir_user))) {
    throw AuthError(400, "invalid", "fhirUser must be Practitioner/id or PractitionerRole/id", "fhirUser");
  }
  const std::string wanted = chosen_id(body);
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto inst = store_.institution(c, by.institution_id);
    if (!inst || inst->state != "active") throw AuthError(403, "forbidden", "your institution is not active");
    AccountRow a;
    a.id = wanted.empty() ? new_account_id(c, role) : wanted;
    if (!wanted.empty() && store_.account(c, wanted)) throw AuthError(409, "conflict", "the ID is taken", "loginId");
    a.name = name;
    a.role = role;
    a.institution_id = by.institution_id;
    a.fhir_user = fhir_user;
    a.state = "requested";
    a.details = "{}";
    a.created_at = now_ms();
    a.created_by = by.account_id;
    store_.insert_account(c, a);
    log_info("staff account " + a.id + " requested by " + by.account_id);
    return account_json(a);
  });
}

Json AuthService::apply_citizen(const Json& body) {
  if (!body.is_object()) throw AuthError(400, "invalid", "a JSON object is required");
  const std::string name = required_str(body, "name");
  const std::string kind = str(body, "kind").empty() ? "resident" : str(body, "kind");
  if (kind != "resident" && kind != "proxy") throw AuthError(400, "invalid", "kind is resident or proxy", "kind");
  Json details = {{"kind", kind}};
  for (const char* k : {"patient", "relationship", "address", "phone", "email", "birthDate", "insuredNumber"}) {
    if (body.contains(k) && body[k].is_string() && body[k].get<std::string>().size() <= 256) details[k] = body[k];
  }
  if (kind == "proxy" && (str(body, "patient").empty() || str(body, "relationship").empty())) {
    throw AuthError(400, "invalid",
                    "代諾者の申請には対象者(patient)と続柄(relationship)が必要です / a proxy names the "
                    "resident (patient) and the relationship",
                    "patient");
  }
  return storage::with_transaction(pool_, [&](Connection& c) {
    AccountRow a;
    a.id = new_account_id(c, "citizen");
    a.name = name;
    a.role = "citizen";
    a.state = "requested";
    a.details = resources::dump_json(details);
    a.created_at = now_ms();
    a.created_by = "";
    store_.insert_account(c, a);
    log_info("citizen application " + a.id);
    return account_json(a);
  });
}

std::pair<Json, Issued> AuthService::issue_account(const Principal& by, const std::string& id,
                                                   const std::string& fhir_user) {
  EpochBump changed{epoch_};
  require(by, {"ops-manager"});
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, id, true);
    if (!a) throw AuthError(404, "not-found", "no account " + id);
    if (a->state != "requested") throw AuthError(409, "conflict", "the account is " + a->state + ", not requested");
    if (!fhir_user.empty()) {
      // The record the person is, as the ops-manager verified it: a resident is a Patient, a
      // proxy a RelatedPerson, staff a Practitioner or PractitionerRole.
      const bool citizen = a->role == "citizen";
      const bool fits =
          valid_fhir_user(fhir_user) &&
          (citizen ? fhir_user.starts_with("Patient/") || fhir_user.starts_with("RelatedPerson/")
                   : fhir_user.starts_with("Practitioner/") || fhir_user.starts_with("PractitionerRole/") ||
                         (is_city_role(a->role) && fhir_user.starts_with("Person/")));
      if (!fits) {
        throw AuthError(400, "invalid",
                        citizen ? "a citizen's fhirUser is Patient/id or RelatedPerson/id"
                                : "staff's fhirUser is Practitioner/id or PractitionerRole/id",
                        "fhirUser");
      }
      a->fhir_user = fhir_user;
    }
    if (!a->institution_id.empty()) {
      auto inst = store_.institution(c, a->institution_id);
      if (!inst || inst->state != "active") throw AuthError(409, "conflict", "the institution is not active");
    }
    if (a->role == "citizen") {
      // The resident's own record, or the proxy relation the application names (R-22).
      Json d = parse_details(a->details);
      const std::string patient = str(d, "patient");
      if (str(d, "kind") == "proxy" && !patient.empty()) {
        storage::ProxyRow p{a->id, patient, str(d, "relationship"), now_ms(), std::nullopt};
        store_.upsert_proxy(c, p);
      } else if (!patient.empty() && a->fhir_user.empty()) {
        a->fhir_user = "Patient/" + patient;
      }
    }
    Issued issued = issue_in(c, *a, by.account_id);
    log_info("account " + a->id + " issued by " + by.account_id);
    return std::make_pair(account_json(*a), issued);
  });
}

Json AuthService::reject_request(const Principal& by, const std::string& id, const std::string& reason) {
  EpochBump changed{epoch_};
  require(by, {"ops-manager"});
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, id, true);
    if (!a) throw AuthError(404, "not-found", "no account " + id);
    if (a->state != "requested") throw AuthError(409, "conflict", "the account is " + a->state + ", not requested");
    a->state = "rejected";
    a->ended_at = now_ms();
    a->ended_by = by.account_id;
    a->details = with_reason(a->details, "rejectionReason", reason);
    store_.update_account(c, *a);
    return account_json(*a);
  });
}

std::pair<Json, Issued> AuthService::reset_password(const Principal& by, const std::string& id) {
  EpochBump changed{epoch_};
  require(by, {"secretariat"});
  if (id == by.account_id) {
    throw AuthError(403, "forbidden", "自分のパスワードはリセットできません / you cannot reset your own password");
  }
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, id, true);
    if (!a) throw AuthError(404, "not-found", "no account " + id);
    if (a->state != "active") throw AuthError(409, "conflict", "the account is " + a->state + ", not active");
    Issued issued = issue_in(c, *a, by.account_id);
    log_info("password of " + a->id + " reset by " + by.account_id);
    return std::make_pair(account_json(*a), issued);
  });
}

Json AuthService::deregister_account(const Principal& by, const std::string& id, const std::string& reason) {
  EpochBump changed{epoch_};
  // The ops-manager revokes any ID at once (OM 6.2); an org-manager deregisters the staff of
  // their institution; the secretariat a citizen on request; anyone their own account.
  if (by.account_id != id) require(by, {"ops-manager", "org-manager", "secretariat"});
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, id, true);
    if (!a) throw AuthError(404, "not-found", "no account " + id);
    if (by.role == "org-manager" && by.account_id != id && a->institution_id != by.institution_id) {
      throw AuthError(403, "forbidden", "the account is not of your institution");
    }
    if (by.role == "secretariat" && by.account_id != id && a->role != "citizen") {
      throw AuthError(403, "forbidden", "the secretariat deregisters citizens' accounts");
    }
    if (a->state == "deregistered") throw AuthError(409, "conflict", "the account is deregistered already");
    a->state = "deregistered";
    a->admin_right = false;
    a->ended_at = now_ms();
    a->ended_by = by.account_id;
    a->details = with_reason(a->details, "deregistrationReason", reason);
    store_.update_account(c, *a);
    store_.revoke_account_tokens(c, a->id);
    log_info("account " + id + " deregistered by " + by.account_id);
    return account_json(*a);
  });
}

Json AuthService::list_accounts(const Principal& by, const std::string& role, const std::string& institution,
                                const std::string& state) {
  require(by, {"owner", "ops-manager", "secretariat", "sysadmin", "auditor", "org-manager"});
  const std::string inst = by.role == "org-manager" ? by.institution_id : institution;
  auto conn = pool_.acquire();
  Json out = Json::array();
  for (const auto& a : store_.accounts(*conn, role, inst, state)) out.push_back(account_json(a));
  return out;
}

Json AuthService::get_account(const Principal& by, const std::string& id) {
  if (by.account_id != id) require(by, {"owner", "ops-manager", "secretariat", "sysadmin", "auditor", "org-manager"});
  auto conn = pool_.acquire();
  auto a = store_.account(*conn, id);
  if (!a || (by.role == "org-manager" && by.account_id != id && a->institution_id != by.institution_id)) {
    throw AuthError(404, "not-found", "no account " + id);
  }
  Json out = account_json(*a);
  Json proxies = Json::array();
  for (const auto& p : store_.proxies(*conn, id)) {
    proxies.push_back(Json{{"patient", p.patient_id},
                           {"relationship", p.relationship},
                           {"start", iso(p.started_at)},
                           {"end", iso_or_null(p.ended_at)},
                           {"active", !p.ended_at.has_value()}});
  }
  out["proxyFor"] = proxies;
  return out;
}

Json AuthService::set_account_access(const Principal& by, const std::string& id, const Json& categories) {
  EpochBump changed{epoch_};
  require(by, {"secretariat"});
  const Json range = categories.is_null() ? Json() : checked_range(categories, "categories");
  storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, id, true);
    if (!a || (a->role != "practitioner" && a->role != "org-manager"))
      throw AuthError(404, "not-found", "no institution staff account " + id);
    Json d = parse_details(a->details);
    if (range.is_null()) {
      d.erase("access");
    } else {
      d["access"] = range;
    }
    a->details = resources::dump_json(d);
    store_.update_account(c, *a);
  });
  log_info("account " + id + " access range " + (range.is_null() ? std::string("cleared") : resources::dump_json(range)) +
           " by " + by.account_id);
  return get_account(by, id);
}

Json AuthService::set_proxy(const Principal& by, const std::string& account_id, const std::string& patient_id,
                            const std::string& relationship, bool active) {
  EpochBump changed{epoch_};
  require(by, {"secretariat"});
  if (!valid_fhir_user("Patient/" + patient_id)) throw AuthError(400, "invalid", "patient must be an id", "patient");
  storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, account_id, true);
    if (!a || a->role != "citizen") throw AuthError(404, "not-found", "no citizen account " + account_id);
    storage::ProxyRow p{account_id, patient_id, relationship.empty() ? "proxy" : relationship, now_ms(),
                        active ? std::nullopt : std::optional<std::int64_t>(now_ms())};
    for (const auto& old : store_.proxies(c, account_id)) {
      if (old.patient_id == patient_id && active && !old.ended_at) p.started_at = old.started_at;
    }
    store_.upsert_proxy(c, p);
    // Tokens given under the relation end with it; a relation recorded again later does not
    // bring them back (R-22).
    if (!active) store_.revoke_patient_tokens(c, account_id, patient_id);
  });
  log_info("proxy relation " + account_id + " -> Patient/" + patient_id + (active ? " active" : " ended") + " by " +
           by.account_id);
  return get_account(by, account_id);
}

// --- admin rights (R-16) --------------------------------------------------------------------

namespace {
Json grant_json(const storage::AdminGrantRow& g) {
  return Json{{"id", g.pk},
              {"account", g.account_id},
              {"state", g.state},
              {"reason", g.reason},
              {"requestedAt", resources::format_instant(g.requested_at)},
              {"requestedBy", g.requested_by},
              {"decidedAt", g.decided_at ? Json(resources::format_instant(*g.decided_at)) : Json(nullptr)},
              {"decidedBy", g.decided_by.empty() ? Json(nullptr) : Json(g.decided_by)}};
}
}  // namespace

Json AuthService::request_admin_right(const Principal& by, const std::string& account_id, const std::string& reason) {
  require(by, {"owner", "ops-manager", "sysadmin"});
  if (reason.empty()) throw AuthError(400, "invalid", "a reason is required (SM 3.2(3))", "reason");
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, account_id);
    if (!a || a->state != "active") throw AuthError(404, "not-found", "no active account " + account_id);
    if (a->role == "citizen") throw AuthError(400, "invalid", "citizens never hold admin rights", "account");
    storage::AdminGrantRow g;
    g.account_id = account_id;
    g.state = "requested";
    g.reason = reason.substr(0, 1000);
    g.requested_at = now_ms();
    g.requested_by = by.account_id;
    g.pk = store_.insert_admin_grant(c, g);
    return grant_json(g);
  });
}

Json AuthService::decide_admin_right(const Principal& by, std::int64_t grant, bool approve) {
  EpochBump changed{epoch_};
  require(by, {"sysadmin"});
  return storage::with_transaction(pool_, [&](Connection& c) {
    // One approval at a time: each counts the holders only after the previous has committed
    // (row locks on the accounts would not do: under READ COMMITTED nothing locks the gap).
    store_.lock(c, "admin-rights");
    auto g = store_.admin_grant(c, grant, true);
    if (!g) throw AuthError(404, "not-found", "no admin-right request " + std::to_string(grant));
    if (g->state != "requested") throw AuthError(409, "conflict", "the request is " + g->state);
    if (g->account_id == by.account_id || g->requested_by == by.account_id) {
      throw AuthError(403, "forbidden",
                      "自分に関わる申請は承認できません / another sysadmin must approve a request you made or that is "
                      "for you");
    }
    if (approve) {
      const auto holders = store_.admin_holders(c);
      auto a = store_.account(c, g->account_id, true);
      if (!a || a->state != "active") throw AuthError(409, "conflict", "the account is no longer active");
      if (!a->admin_right && holders.size() >= 2) {
        throw AuthError(409, "admin-limit",
                        "管理者権限は同時に2名までです / at most two accounts hold admin rights at a time (R-16); "
                        "holders now: " +
                            holders[0] + ", " + holders[1]);
      }
      a->admin_right = true;
      store_.update_account(c, *a);
    }
    g->state = approve ? "active" : "rejected";
    g->decided_at = now_ms();
    g->decided_by = by.account_id;
    store_.update_admin_grant(c, *g);
    log_info("admin right for " + g->account_id + (approve ? " approved" : " refused") + " by " + by.account_id);
    return grant_json(*g);
  });
}

Json AuthService::revoke_admin_right(const Principal& by, const std::string& account_id) {
  EpochBump changed{epoch_};
  require(by, {"sysadmin", "ops-manager"});
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, account_id, true);
    if (!a || !a->admin_right) throw AuthError(404, "not-found", account_id + " holds no admin right");
    a->admin_right = false;
    store_.update_account(c, *a);
    for (auto& g : store_.admin_grants(c, "active")) {
      if (g.account_id != account_id) continue;
      g.state = "revoked";
      g.decided_at = now_ms();
      g.decided_by = by.account_id;
      store_.update_admin_grant(c, g);
    }
    log_info("admin right of " + account_id + " revoked by " + by.account_id);
    return account_json(*a);
  });
}

Json AuthService::list_admin_grants(const Principal& by, const std::string& state) {
  require(by, {"owner", "ops-manager", "sysadmin", "auditor"});
  auto conn = pool_.acquire();
  Json out = Json::array();
  for (const auto& g : store_.admin_grants(*conn, state)) out.push_back(grant_json(g));
  return out;
}

// --- clients (R-18) -------------------------------------------------------------------------

Json AuthService::client_json(const ClientRow& c) const {
  Json d = parse_details(c.details);
  Json out = {{"clientId", c.client_id},
              {"terminalId", c.terminal_id},
              {"name", c.name},
              {"kind", c.kind},
              {"institution", c.institution_id.empty() ? Json(nullptr) : Json(c.institution_id)},
              {"state", c.state},
              {"redirectUris", d.contains("redirectUris") ? d["redirectUris"] : Json::array()},
              {"scope", str(d, "scope")},
              {"createdAt", iso(c.created_at)},
              {"createdBy", c.created_by},
              {"endedAt", iso_or_null(c.ended_at)}};
  if (d.contains("jwks")) out["jwks"] = d["jwks"];
  return out;
}

Json AuthService::register_client(const Principal& by, const Json& body) {
  require(by, {"secretariat"});
  if (!body.is_object()) throw AuthError(400, "invalid", "a JSON object is required");
  ClientRow r;
  r.name = required_str(body, "name");
  r.kind = required_str(body, "kind", 16);
  if (r.kind != "public" && r.kind != "confidential" && r.kind != "backend") {
    throw AuthError(400, "invalid",
                    "kind is public (PKCE), confidential (client_secret_basic) or backend "
                    "(private_key_jwt)",
                    "kind");
  }
  r.institution_id = str(body, "institution");
  if (r.institution_id.empty() && r.kind != "public") {
    throw AuthError(400, "invalid",
                    "機関の端末は承認済みの利用機関に登録します / a confidential or backend client belongs to an "
                    "approved institution",
                    "institution");
  }
  Json details = Json::object();
  Json uris = body.contains("redirectUris") ? body["redirectUris"] : Json::array();
  if (!uris.is_array()) throw AuthError(400, "invalid", "redirectUris is an array of URLs", "redirectUris");
  for (const auto& u : uris) {
    if (!u.is_string() || !acceptable_redirect_uri(u.get<std::string>())) {
      throw AuthError(400, "invalid",
                      "redirect URIs are absolute https URLs (http only on localhost), without a fragment",
                      "redirectUris");
    }
  }
  if (r.kind != "backend" && uris.empty()) {
    throw AuthError(400, "invalid", "an app needs at least one redirect URI", "redirectUris");
  }
  details["redirectUris"] = uris;
  // The ceiling of what tokens of this client may carry; backend clients need one.
  const std::string scope = str(body, "scope");
  if (!scope.empty()) {
    const ScopeSet s = ScopeSet::parse(scope);
    if (!s.unknown.empty()) throw AuthError(400, "invalid", "unknown scope '" + s.unknown.front() + "'", "scope");
    if (r.kind == "public" && s.has_context(ScopeContext::kSystem)) {
      throw AuthError(400, "invalid", "system/ scopes are for backend and confidential clients", "scope");
    }
    details["scope"] = s.text();
  } else if (r.kind == "backend") {
    details["scope"] = "system/*.rs";
  }
  if (r.kind == "backend") {
    if (!body.contains("jwks") || !body["jwks"].is_object() || !body["jwks"].contains("keys") ||
        !body["jwks"]["keys"].is_array() || body["jwks"]["keys"].empty()) {
      throw AuthError(400, "invalid", "a backend client registers its public keys as a JWK Set (jwks.keys)", "jwks");
    }
    for (const auto& k : body["jwks"]["keys"]) {
      try {
        (void)Key::from_jwk(k);
      } catch (const std::exception& e) {
        throw AuthError(400, "invalid", std::string("jwks: ") + e.what(), "jwks");
      }
    }
    details["jwks"] = body["jwks"];
  }
  std::string secret;
  Json out;
  storage::with_transaction(pool_, [&](Connection& c) {
    if (!r.institution_id.empty()) {
      auto inst = store_.institution(c, r.institution_id);
      if (!inst || inst->state != "active") {
        throw AuthError(409, "conflict", "利用機関が承認されていません / the institution is not approved (R-18)",
                        "institution");
      }
    }
    r.client_id = "cl-" + random_token(12);
    // The terminal ID printed on audit records (R-18); the unique key catches the rare clash.
    r.terminal_id = "T-" + base32_encode(random_bytes(5));
    if (r.kind == "confidential") {
      secret = random_token(32);
      r.secret_hash = sha256(secret);
    }
    r.state = "active";
    r.details = resources::dump_json(details);
    r.created_at = now_ms();
    r.created_by = by.account_id;
    store_.insert_client(c, r);
    out = client_json(r);
  });
  if (!secret.empty()) out["clientSecret"] = secret;
  log_info("client " + r.client_id + " (terminal " + r.terminal_id + ") registered by " + by.account_id);
  return out;
}

Json AuthService::deregister_client(const Principal& by, const std::string& client_id) {
  EpochBump changed{epoch_};
  require(by, {"secretariat", "ops-manager"});
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto r = store_.client(c, client_id, true);
    if (!r) throw AuthError(404, "not-found", "no client " + client_id);
    if (r->state != "active") throw AuthError(409, "conflict", "the client is " + r->state);
    r->state = "deregistered";
    r->ended_at = now_ms();
    r->ended_by = by.account_id;
    store_.update_client(c, *r);
    store_.revoke_client_tokens(c, client_id);
    log_info("client " + client_id + " deregistered by " + by.account_id);
    return client_json(*r);
  });
}

Json AuthService::list_clients(const Principal& by, const std::string& institution) {
  require(by, {"secretariat", "ops-manager", "owner", "sysadmin", "auditor", "org-manager"});
  auto conn = pool_.acquire();
  Json out = Json::array();
  const std::string inst = by.role == "org-manager" ? by.institution_id : institution;
  for (const auto& r : store_.clients(*conn, inst)) out.push_back(client_json(r));
  return out;
}

// --- abnormal access and incidents ----------------------------------------------------------

namespace {
Json incident_json(const storage::IncidentRow& r) {
  return Json{{"id", r.pk},
              {"level", r.level},
              {"source", r.source},
              {"rule", r.rule},
              {"state", r.state},
              {"action", r.action},
              {"account", r.account_id.empty() ? Json(nullptr) : Json(r.account_id)},
              {"client", r.client_id.empty() ? Json(nullptr) : Json(r.client_id)},
              {"terminal", r.terminal_id.empty() ? Json(nullptr) : Json(r.terminal_id)},
              {"institution", r.institution_id.empty() ? Json(nullptr) : Json(r.institution_id)},
              {"detail", r.detail},
              {"detectedAt", resources::format_instant(r.detected_at)},
              {"closedAt", r.closed_at ? Json(resources::format_instant(*r.closed_at)) : Json(nullptr)},
              {"closedBy", r.closed_by.empty() ? Json(nullptr) : Json(r.closed_by)},
              {"cause", r.cause.empty() ? Json(nullptr) : Json(r.cause)},
              {"measures", r.measures.empty() ? Json(nullptr) : Json(r.measures)}};
}
}  // namespace

std::int64_t AuthService::record_incident(storage::IncidentRow incident, bool suspend) {
  EpochBump changed{epoch_};
  incident.state = "open";
  incident.detected_at = now_ms();
  incident.action = "recorded";
  const std::int64_t pk = storage::with_transaction(pool_, [&](Connection& c) {
    if (suspend && !incident.account_id.empty()) {
      auto a = store_.account(c, incident.account_id, true);
      if (a && a->state == "active") {
        a->state = "suspended";
        a->details = with_reason(a->details, "suspensionReason", incident.rule + ": " + incident.detail);
        store_.update_account(c, *a);
        store_.revoke_account_tokens(c, a->id);
        incident.action = "suspended";
      }
    } else if (suspend && !incident.client_id.empty()) {
      auto r = store_.client(c, incident.client_id, true);
      if (r && r->state == "active") {
        r->state = "suspended";
        store_.update_client(c, *r);
        store_.revoke_client_tokens(c, r->client_id);
        incident.action = "suspended";
      }
    }
    return store_.insert_incident(c, incident);
  });
  log_error("incident " + std::to_string(pk) + " (level " + std::to_string(incident.level) + ", " + incident.rule +
            "): " + incident.detail + "; account " + (incident.account_id.empty() ? "-" : incident.account_id) +
            ", client " + (incident.client_id.empty() ? "-" : incident.client_id) + "; " + incident.action);
  return pk;
}

Json AuthService::list_incidents(const Principal& by, const std::string& state) {
  require(by, {"sysadmin", "ops-manager", "owner", "auditor"});
  auto conn = pool_.acquire();
  Json out = Json::array();
  for (const auto& r : store_.incidents(*conn, state, 1000)) out.push_back(incident_json(r));
  return out;
}

Json AuthService::incidents_between(std::int64_t from, std::int64_t to, const std::string& institution) {
  auto conn = pool_.acquire();
  Json out = Json::array();
  for (const auto& r : store_.incidents_between(*conn, from, to, institution)) out.push_back(incident_json(r));
  return out;
}

Json AuthService::close_incident(const Principal& by, std::int64_t pk, const std::string& cause,
                                 const std::string& measures) {
  require(by, {"sysadmin", "ops-manager"});
  if (cause.empty() || measures.empty())
    throw AuthError(400, "invalid", "原因と対策を記入してください / an incident is closed with its cause and measures (SM 4.8)",
                    cause.empty() ? "cause" : "measures");
  return storage::with_transaction(pool_, [&](Connection& c) {
    auto r = store_.incident(c, pk, true);
    if (!r) throw AuthError(404, "not-found", "no incident " + std::to_string(pk));
    if (r->state != "open") throw AuthError(409, "conflict", "the incident is " + r->state);
    r->state = "closed";
    r->closed_at = now_ms();
    r->closed_by = by.account_id;
    r->cause = cause;
    r->measures = measures;
    store_.close_incident(c, *r);
    log_info("incident " + std::to_string(pk) + " closed by " + by.account_id);
    return incident_json(*r);
  });
}

Json AuthService::reinstate_account(const Principal& by, const std::string& id, const std::string& reason) {
  EpochBump changed{epoch_};
  require(by, {"ops-manager", "sysadmin"});
  if (reason.empty()) throw AuthError(400, "invalid", "理由を記入してください / a reason is required", "reason");
  storage::with_transaction(pool_, [&](Connection& c) {
    auto a = store_.account(c, id, true);
    if (!a) throw AuthError(404, "not-found", "no account " + id);
    if (a->state != "suspended") throw AuthError(409, "conflict", "the account is " + a->state + ", not suspended");
    a->state = "active";
    a->details = with_reason(a->details, "reinstatementReason", reason);
    store_.update_account(c, *a);
  });
  if (on_reinstate) on_reinstate(id);
  log_info("account " + id + " reinstated by " + by.account_id + ": " + reason);
  return get_account(by, id);
}

Json AuthService::reinstate_client(const Principal& by, const std::string& client_id, const std::string& reason) {
  EpochBump changed{epoch_};
  require(by, {"ops-manager", "sysadmin"});
  if (reason.empty()) throw AuthError(400, "invalid", "理由を記入してください / a reason is required", "reason");
  Json out = storage::with_transaction(pool_, [&](Connection& c) {
    auto r = store_.client(c, client_id, true);
    if (!r) throw AuthError(404, "not-found", "no client " + client_id);
    if (r->state != "suspended") throw AuthError(409, "conflict", "the client is " + r->state + ", not suspended");
    r->state = "active";
    store_.update_client(c, *r);
    return client_json(*r);
  });
  if (on_reinstate) on_reinstate("client:" + client_id);
  log_info("client " + client_id + " reinstated by " + by.account_id + ": " + reason);
  return out;
}

// --- OAuth --------------------------------------------------------------------------------

AuthService::AuthorizeCheck AuthService::check_authorize(const AuthorizeRequest& req, const Principal& user,
                                                         const std::string& fhir_base) {
  AuthorizeCheck out;
  auto conn = pool_.acquire();
  auto client = store_.client(*conn, req.client_id);
  if (!client || client->state != "active") {
    throw AuthError(400, "invalid_client", "登録されていない端末です / unknown or deregistered client (R-18)",
                    "client_id");
  }
  if (client->kind == "backend") {
    throw AuthError(400, "unauthorized_client", "a backend client uses client_credentials", "client_id");
  }
  const Json d = parse_details(client->details);
  bool uri_ok = false;
  if (d.contains("redirectUris")) {
    for (const auto& u : d["redirectUris"])
      uri_ok = uri_ok || (u.is_string() && u.get<std::string>() == req.redirect_uri);
  }
  if (!uri_ok) {
    throw AuthError(400, "invalid_request", "redirect_uri is not registered for this client", "redirect_uri");
  }
  out.client = *client;
  // From here on, errors go back to the client's redirect URI (the API layer does that).
  if (req.response_type != "code") {
    throw AuthError(302, "unsupported_response_type", "response_type must be code", "response_type");
  }
  if (req.code_challenge.empty() || req.code_challenge_method != "S256") {
    throw AuthError(302, "invalid_request", "PKCE with code_challenge_method=S256 is required",
                    "code_challenge_method");
  }
  if (req.code_challenge.size() != 43) {
    throw AuthError(302, "invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)",
                    "code_challenge");
  }
  if (strip_slash(req.aud) != strip_slash(fhir_base)) {
    throw AuthError(302, "invalid_request", "aud must be this server's FHIR base URL (" + fhir_base + ")", "aud");
  }
  if (!client->institution_id.empty()) {
    if (client->institution_id != user.institution_id) {
      throw AuthError(302, "access_denied", "this terminal belongs to another institution (R-18)", "client_id");
    }
    if (auto inst = store_.institution(*conn, client->institution_id); !inst || inst->state != "active") {
      throw AuthError(302, "access_denied", "the institution is not active", "client_id");
    }
  } else if (!user.institution_id.empty()) {
    throw AuthError(302, "access_denied", "institution staff use their institution's registered terminals (R-18)",
                    "client_id");
  }
  ScopeSet ceiling = role_ceiling(user.role);
  if (d.contains("scope") && d["scope"].is_string()) {
    // The registration narrows the resource scopes; OpenID, launch and refresh scopes follow the role.
    ScopeSet c = ScopeSet::parse(d["scope"].get<std::string>());
    c.openid = c.fhir_user = c.profile = c.launch_patient = c.offline_access = c.online_access = true;
    ceiling = narrow(ceiling, c);
  }
  out.granted = narrow(ScopeSet::parse(req.scope), ceiling);
  if (out.granted.resources.empty()) {
    throw AuthError(302, "invalid_scope", "none of the requested scopes may be granted to your role", "scope");
  }
  if (user.role == "citizen") {
    // The citizen's own record and each resident they are an active proxy for (R-22).
    if (user.fhir_user.starts_with("Patient/")) out.patients.emplace_back(user.fhir_user.substr(8), "本人 / yourself");
    for (const auto& p : store_.proxies(*conn, user.account_id)) {
      if (!p.ended_at) out.patients.emplace_back(p.patient_id, p.relationship);
    }
    if (out.patients.empty()) {
      throw AuthError(302, "access_denied", "no resident record is linked to this account yet", "patient");
    }
  }
  return out;
}

std::string AuthService::issue_code(const AuthorizeRequest& req, const Principal& user, const AuthorizeCheck& check,
                                    const std::string& patient) {
  if (user.role == "citizen") {
    const bool ok =
        std::any_of(check.patients.begin(), check.patients.end(), [&](const auto& p) { return p.first == patient; });
    if (!ok) throw AuthError(400, "invalid_request", "choose one of the residents offered", "patient");
  }
  const std::string code = random_token(32);
  storage::CodeRow r;
  r.code_hash = sha256(code);
  r.client_id = req.client_id;
  r.account_id = user.account_id;
  r.redirect_uri = req.redirect_uri;
  r.scope = check.granted.text();
  r.challenge = req.code_challenge;
  r.patient_id = user.role == "citizen" ? patient : "";
  r.nonce = req.nonce.substr(0, 500);
  r.session_hash = user.token_hash;
  r.created_at = now_ms();
  r.expires_at = r.created_at + std::chrono::duration_cast<std::chrono::milliseconds>(settings_.code_lifetime).count();
  auto conn = pool_.acquire();
  store_.insert_code(*conn, r);
  return code;
}

ClientRow AuthService::authenticate_client(const std::map<std::string, std::string>& form,
                                           const std::string* authorization, const std::string& token_endpoint,
                                           bool required) {
  const auto bad = [](const std::string& why) { return AuthError(401, "invalid_client", why); };
  auto conn = pool_.acquire();
  const auto active = [&](const std::string& id) {
    auto c = store_.client(*conn, id);
    if (!c || c->state != "active") throw bad("登録されていない端末です / unknown or deregistered client (R-18)");
    if (!c->institution_id.empty()) {
      auto inst = store_.institution(*conn, c->institution_id);
      if (!inst || inst->state != "active") throw bad("the client's institution is not active (R-18)");
    }
    return *c;
  };
  if (authorization && authorization->size() > 6 && authorization->substr(0, 6) == "Basic ") {
    std::string decoded;
    try {
      decoded = base64_decode(std::string_view(*authorization).substr(6));
    } catch (const std::exception&) {
      throw bad("malformed Basic credentials");
    }
    const auto colon = decoded.find(':');
    if (colon == std::string::npos) throw bad("malformed Basic credentials");
    std::string id, secret;
    try {
      id = url_decode(decoded.substr(0, colon));
      secret = url_decode(decoded.substr(colon + 1));
    } catch (const std::exception&) {
      throw bad("malformed Basic credentials");
    }
    ClientRow c = active(id);
    if (c.kind != "confidential" || c.secret_hash.empty() || !constant_time_equal(sha256(secret), c.secret_hash)) {
      throw bad("client authentication failed");
    }
    return c;
  }
  const std::string* type = form_value(form, "client_assertion_type");
  const std::string* assertion = form_value(form, "client_assertion");
  if (type || assertion) {
    if (!type || *type != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || !assertion) {
      throw bad("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    }
    DecodedJwt jwt;
    try {
      jwt = decode_jwt(*assertion);
    } catch (const std::exception& e) {
      throw bad(std::string("client_assertion: ") + e.what());
    }
    const std::string alg = str(jwt.header, "alg");
    if (alg != "RS384" && alg != "ES384") throw bad("client_assertion alg must be RS384 or ES384");
    const std::string iss = str(jwt.payload, "iss"), sub = str(jwt.payload, "sub");
    if (iss.empty() || iss != sub) throw bad("client_assertion iss and sub must both be the client_id");
    ClientRow c = active(iss);
    if (c.kind != "backend") throw bad("this client does not authenticate with private_key_jwt");
    const Json d = parse_details(c.details);
    const std::string kid = str(jwt.header, "kid");
    bool verified = false;
    if (d.contains("jwks") && d["jwks"].contains("keys")) {
      for (const auto& k : d["jwks"]["keys"]) {
        if (!kid.empty() && str(k, "kid") != kid) continue;
        try {
          if (verify_jwt_signature(jwt, Key::from_jwk(k))) verified = true;
        } catch (const std::exception&) {
        }
        if (verified) break;
      }
    }
    if (!verified) throw bad("client_assertion signature does not verify with the client's registered keys");
    bool aud_ok = false;
    const Json& aud = jwt.payload.contains("aud") ? jwt.payload["aud"] : Json();
    if (aud.is_string()) aud_ok = aud.get<std::string>() == token_endpoint;
    if (aud.is_array()) {
      for (const auto& a : aud) aud_ok = aud_ok || (a.is_string() && a.get<std::string>() == token_endpoint);
    }
    if (!aud_ok) throw bad("client_assertion aud must be the token endpoint " + token_endpoint);
    const std::int64_t now = now_ms() / 1000;
    if (!jwt.payload.contains("exp") || !jwt.payload["exp"].is_number()) throw bad("client_assertion needs exp");
    const auto exp = jwt.payload["exp"].get<double>();
    if (exp < static_cast<double>(now) - 30) throw bad("client_assertion has expired");
    if (exp > static_cast<double>(now + settings_.assertion_max.count() + 30)) {
      throw bad("client_assertion exp is more than 5 minutes ahead");
    }
    const std::string jti = str(jwt.payload, "jti");
    if (jti.empty() || jti.size() > 512) throw bad("client_assertion needs a jti");
    if (!store_.remember_jti(*conn, c.client_id, sha256(jti), static_cast<std::int64_t>(exp) * 1000 + 60000)) {
      log_warn("client assertion replayed: client " + c.client_id);
      throw bad("client_assertion jti was used before (replay)");
    }
    return c;
  }
  const std::string* id = form_value(form, "client_id");
  if (!id) {
    if (required) throw bad("client authentication is required");
    return {};
  }
  ClientRow c = active(*id);
  if (c.kind != "public") throw bad("this client must authenticate (client_secret_basic or private_key_jwt)");
  return c;
}

std::string AuthService::id_token(const AccountRow& a, const std::string& client_id, const std::string& nonce,
                                  const std::string& fhir_base) {
  const std::int64_t now = now_ms() / 1000;
  Json claims = {{"iss", fhir_base}, {"sub", a.id}, {"aud", client_id}, {"iat", now}, {"exp", now + 3600}};
  if (!a.fhir_user.empty()) claims["fhirUser"] = fhir_base + "/" + a.fhir_user;
  claims["name"] = a.name;
  if (!nonce.empty()) claims["nonce"] = nonce;
  return sign_jwt(claims, signing_key_, "RS256", signing_kid_);
}

Json AuthService::token_body(Connection& c, const ClientRow& client, const AccountRow* account, const ScopeSet& scopes,
                             const std::string& patient, const std::string& nonce, const std::string& family,
                             bool with_refresh, const std::string& fhir_base, std::int64_t refresh_expires_at) {
  const std::string scope = scopes.text();
  const auto lifetime = account ? settings_.access_lifetime : settings_.backend_lifetime;
  std::string refresh, fam = family;
  if (with_refresh) {
    refresh = random_token(32);
    if (fam.empty()) fam = sha256(refresh);
    storage::AuthTokenRow t;
    t.token_hash = sha256(refresh);
    t.kind = "refresh";
    t.account_id = account ? account->id : "";
    t.client_id = client.client_id;
    t.scope = scope;
    t.patient_id = patient;
    t.family = fam;
    t.created_at = now_ms();
    // online_access: the refresh tokens of a grant live as long as a login session would;
    // offline_access (residents' apps): 30 days. Rotation never extends the grant's end.
    const auto life = scopes.offline_access ? settings_.refresh_lifetime : settings_.session_lifetime;
    t.expires_at = refresh_expires_at > 0
                       ? refresh_expires_at
                       : t.created_at + std::chrono::duration_cast<std::chrono::milliseconds>(life).count();
    t.last_used = t.created_at;
    store_.insert_token(c, t);
  }
  const std::string access =
      new_token(c, "access", account ? account->id : "", client.client_id, scope, patient, fam, lifetime);
  Json body = {{"access_token", access}, {"token_type", "Bearer"}, {"expires_in", lifetime.count()}, {"scope", scope}};
  if (!patient.empty()) {
    body["patient"] = patient;
    body["need_patient_banner"] = true;
  }
  if (!refresh.empty()) body["refresh_token"] = refresh;
  if (account && scopes.openid && (scopes.fhir_user || scopes.profile)) {
    body["id_token"] = id_token(*account, client.client_id, nonce, fhir_base);
  }
  return body;
}

TokenResponse AuthService::token(const std::map<std::string, std::string>& form, const std::string* authorization,
                                 const std::string& token_endpoint, const std::string& fhir_base) {
  const std::string* grant = form_value(form, "grant_type");
  if (!grant) throw AuthError(400, "invalid_request", "grant_type is required", "grant_type");
  if (*grant == "client_credentials") {
    ClientRow client = authenticate_client(form, authorization, token_endpoint, true);
    if (client.kind == "public") {
      throw AuthError(400, "unauthorized_client", "a public client cannot use client_credentials", "grant_type");
    }
    const Json d = parse_details(client.details);
    ScopeSet ceiling = ScopeSet::parse(str(d, "scope"));
    const std::string* scope = form_value(form, "scope");
    ScopeSet requested = ScopeSet::parse(scope ? *scope : str(d, "scope"));
    ScopeSet granted = narrow(requested, ceiling);
    granted.resources.erase(std::remove_if(granted.resources.begin(), granted.resources.end(),
                                           [](const ResourceScope& r) { return r.context != ScopeContext::kSystem; }),
                            granted.resources.end());
    granted.openid = granted.fhir_user = granted.launch_patient = granted.offline_access = granted.online_access =
        granted.profile = false;
    if (granted.resources.empty()) {
      throw AuthError(400, "invalid_scope", "none of the requested system/ scopes is registered for this client",
                      "scope");
    }
    return storage::with_transaction(pool_, [&](Connection& c) {
      return TokenResponse{token_body(c, client, nullptr, granted, "", "", "", false, fhir_base)};
    });
  }
  if (*grant == "authorization_code") {
    ClientRow client = authenticate_client(form, authorization, token_endpoint, true);
    EpochBump changed{epoch_, false};  // armed when a reused code revokes what it gave
    const std::string* code = form_value(form, "code");
    const std::string* verifier = form_value(form, "code_verifier");
    const std::string* redirect = form_value(form, "redirect_uri");
    if (!code) throw AuthError(400, "invalid_request", "code is required", "code");
    if (!verifier) throw AuthError(400, "invalid_request", "code_verifier is required (PKCE)", "code_verifier");
    // Errors after the code is found are returned, not thrown, so that the transaction
    // commits: the code is spent, and a reused code's tokens stay revoked.
    auto result = storage::with_transaction(pool_, [&](Connection& c) -> std::variant<TokenResponse, AuthError> {
      auto r = store_.code_for_update(c, sha256(*code));
      if (!r || r->client_id != client.client_id) return AuthError(400, "invalid_grant", "unknown code", "code");
      if (r->used) {
        // A code used twice: someone has it who should not. Everything issued from it ends.
        store_.revoke_family(c, r->code_hash);
        changed.armed = true;
        log_warn("authorization code reused: client " + client.client_id + ", account " + r->account_id);
        return AuthError(400, "invalid_grant", "the code was used already", "code");
      }
      store_.mark_code_used(c, r->code_hash);
      if (r->expires_at < now_ms()) return AuthError(400, "invalid_grant", "the code has expired", "code");
      if (!redirect || *redirect != r->redirect_uri) {
        return AuthError(400, "invalid_grant", "redirect_uri differs from the authorization request", "redirect_uri");
      }
      if (!pkce_s256_matches(*verifier, r->challenge)) {
        return AuthError(400, "invalid_grant", "code_verifier does not match the code_challenge", "code_verifier");
      }
      auto a = store_.account(c, r->account_id);
      if (!a || a->state != "active") return AuthError(400, "invalid_grant", "the account is not active", "code");
      const ScopeSet scopes = ScopeSet::parse(r->scope);
      return TokenResponse{token_body(c, client, &*a, scopes, r->patient_id, r->nonce, r->code_hash,
                                      scopes.offline_access || scopes.online_access, fhir_base)};
    });
    if (auto* e = std::get_if<AuthError>(&result)) throw *e;
    return std::get<TokenResponse>(std::move(result));
  }
  if (*grant == "refresh_token") {
    ClientRow client = authenticate_client(form, authorization, token_endpoint, true);
    EpochBump changed{epoch_, false};  // armed when a reused refresh token revokes its family
    const std::string* refresh = form_value(form, "refresh_token");
    if (!refresh) throw AuthError(400, "invalid_request", "refresh_token is required", "refresh_token");
    const std::string* scope = form_value(form, "scope");
    // Rotation: the old refresh token ends here; a second use of it ends the whole family.
    auto result = storage::with_transaction(pool_, [&](Connection& c) -> std::variant<TokenResponse, AuthError> {
      auto t = store_.token(c, sha256(*refresh), true);
      if (!t || t->kind != "refresh" || t->client_id != client.client_id) {
        return AuthError(400, "invalid_grant", "unknown refresh token", "refresh_token");
      }
      if (t->revoked) {
        store_.revoke_family(c, t->family);
        changed.armed = true;
        log_warn("rotated refresh token reused: client " + client.client_id + ", account " + t->account_id);
        return AuthError(400, "invalid_grant", "the refresh token was used already", "refresh_token");
      }
      if (t->expires_at < now_ms()) return AuthError(400, "invalid_grant", "the refresh token has expired");
      const ScopeSet held = ScopeSet::parse(t->scope);
      ScopeSet next = held;
      if (scope) {
        next = ScopeSet::parse(*scope);
        if (!next.unknown.empty() || !covered_by(next, held)) {
          return AuthError(400, "invalid_scope", "a refresh can only narrow the scopes granted", "scope");
        }
      }
      auto a = store_.account(c, t->account_id);
      if (!a || a->state != "active") return AuthError(400, "invalid_grant", "the account is not active");
      if (!a->institution_id.empty()) {
        auto inst = store_.institution(c, a->institution_id);
        if (!inst || inst->state != "active") return AuthError(400, "invalid_grant", "the institution is not active");
      }
      store_.revoke_token(c, t->token_hash);
      return TokenResponse{
          token_body(c, client, &*a, next, t->patient_id, "", t->family, true, fhir_base, t->expires_at)};
    });
    if (auto* e = std::get_if<AuthError>(&result)) throw *e;
    return std::get<TokenResponse>(std::move(result));
  }
  throw AuthError(400, "unsupported_grant_type",
                  "grant_type must be authorization_code, refresh_token or client_credentials", "grant_type");
}

Json AuthService::introspect(const std::map<std::string, std::string>& form, const std::string* authorization,
                             const std::string& token_endpoint) {
  ClientRow caller = authenticate_client(form, authorization, token_endpoint, true);
  if (caller.kind == "public") throw AuthError(401, "invalid_client", "introspection needs an authenticated client");
  const std::string* token = form_value(form, "token");
  if (!token) throw AuthError(400, "invalid_request", "token is required", "token");
  for (const char* kind : {"access", "refresh"}) {
    std::optional<Principal> p;
    if (std::string_view(kind) == "access") {
      if (auto a = check_token(*token, "access", false)) p = *a;
    } else {
      auto conn = pool_.acquire();
      auto t = store_.token(*conn, sha256(*token));
      if (t && t->kind == "refresh" && !t->revoked && t->expires_at > now_ms()) {
        p = Principal{};
        p->client_id = t->client_id;
        p->account_id = t->account_id;
        p->scope_text = t->scope;
        p->patient = t->patient_id;
      }
    }
    if (!p) continue;
    // A client learns only about its own tokens (RFC 7662 §4: no token scanning).
    if (p->client_id != caller.client_id) break;
    Json out = {{"active", true}, {"client_id", p->client_id}, {"scope", p->scope_text}, {"token_type", "Bearer"}};
    if (!p->account_id.empty()) out["sub"] = p->account_id;
    if (!p->patient.empty()) out["patient"] = p->patient;
    if (!p->fhir_user.empty()) out["fhirUser"] = p->fhir_user;
    if (!p->terminal_id.empty()) out["terminal_id"] = p->terminal_id;
    auto conn = pool_.acquire();
    if (auto row = store_.token(*conn, sha256(*token))) {
      out["exp"] = row->expires_at / 1000;
      out["iat"] = row->created_at / 1000;
    }
    return out;
  }
  return Json{{"active", false}};
}

void AuthService::revoke(const std::map<std::string, std::string>& form, const std::string* authorization,
                         const std::string& token_endpoint) {
  ClientRow caller = authenticate_client(form, authorization, token_endpoint, true);
  const std::string* token = form_value(form, "token");
  if (!token) throw AuthError(400, "invalid_request", "token is required", "token");
  EpochBump changed{epoch_, false};
  storage::with_transaction(pool_, [&](Connection& c) {
    auto t = store_.token(c, sha256(*token), true);
    if (!t || t->client_id != caller.client_id) return;  // RFC 7009: unknown tokens answer 200 too
    changed.armed = true;
    if (t->kind == "refresh" && !t->family.empty()) {
      store_.revoke_family(c, t->family);  // a revoked refresh token ends its access tokens too
    } else {
      store_.revoke_token(c, t->token_hash);
    }
  });
}

Json AuthService::jwks() const {
  return Json{{"keys", Json::array({signing_key_.public_jwk(signing_kid_, "RS256")})}};
}

std::uint64_t AuthService::purge() {
  auto conn = pool_.acquire();
  return store_.purge_expired(*conn, now_ms());
}

}  // namespace kasama::auth
