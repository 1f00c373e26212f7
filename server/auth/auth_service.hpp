#pragma once
// Who is calling, and what they may become: accounts and institutions through their
// lifecycle (R-10 … R-16), passwords, second factor and brute-force throttling, sessions and
// tokens with idle and absolute lifetimes, clients as terminals, and the OAuth
// 2.0 / SMART App Launch grants. HTTP lives in auth/api.cpp; SQL in storage/auth_store.
//
// Every token check reads the token, its account, client and institution from the database
// (one short indexed query each), so a revocation or deregistration is seen by the very next
// request, also on another server instance sharing the database.
#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "resources/json.hpp"
#include "server/auth/crypto.hpp"
#include "server/auth/principal.hpp"
#include "server/auth/scopes.hpp"
#include "server/storage/auth_store.hpp"
#include "server/storage/db.hpp"

namespace kasama::auth {

using resources::Json;

// The roles of REQUIREMENTS.md (participants table).
inline constexpr const char* kRoles[] = {"owner",   "ops-manager", "secretariat",  "sysadmin",
                                         "auditor", "org-manager", "practitioner", "citizen"};
bool is_role(std::string_view role);
bool is_city_role(std::string_view role);         // owner, ops-manager, secretariat, sysadmin, auditor
bool needs_second_factor(std::string_view role);  // owner, ops-manager, sysadmin (and admin-right holders)
// What a role may ever be granted as SMART scopes (the ceiling that requests are narrowed to).
ScopeSet role_ceiling(std::string_view role);

// A failure that ends an auth request. error: the OAuth error code (invalid_request,
// invalid_client, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope,
// access_denied, invalid_token) or, for the account API, a short code (forbidden, not-found,
// conflict, invalid). message: for people, Japanese and English.
class AuthError : public std::runtime_error {
 public:
  AuthError(int status, std::string error, const std::string& message, std::string field = "")
      : std::runtime_error(message), status(status), error(std::move(error)), field(std::move(field)) {}
  int status;
  std::string error;
  std::string field;                // the parameter or member at fault
  std::int64_t retry_after_ms = 0;  // 429: when to try again
};

struct AuthSettings {
  std::chrono::seconds idle{15 * 60};  // sessions and access tokens
  std::chrono::seconds session_lifetime{8 * 3600};
  std::chrono::seconds access_lifetime{3600};  // user access tokens (absolute)
  std::chrono::seconds backend_lifetime{300};  // client_credentials tokens
  std::chrono::seconds refresh_lifetime{30 * 24 * 3600};
  std::chrono::seconds code_lifetime{60};
  std::chrono::seconds assertion_max{300};  // private_key_jwt: exp - now at most
  // Token checks are cached in memory; any change made through this process invalidates the
  // cache at once. The time-to-live bounds how long a change made by another server process
  // on the same database can go unseen.
  std::chrono::milliseconds token_cache_ttl{1000};
  std::string issuer;  // token endpoint audience and id_token iss; derived when empty
};

struct Issued {  // an account issued or a password reset: shown once (登録済証)
  std::string account_id, password, certificate_token;
};

struct LoginResult {
  std::string session_token;
  Principal principal;
};

struct TokenResponse {
  Json body;  // the OAuth token response
};

class AuthService {
 public:
  AuthService(storage::ConnectionPool& pool, unsigned tenant, AuthSettings settings = {});

  const AuthSettings& settings() const { return settings_; }
  // Throws AuthError unless p is a usable session (password changed, second factor set up)
  // of one of the roles.
  void require(const Principal& p, std::initializer_list<std::string_view> roles) const;
  std::int64_t now_ms() const;

  // --- bootstrap and demo ------------------------------------------------------------
  // The first owner: refused once any owner exists. Prints nothing; returns the account and
  // its one-time initial password.
  Issued bootstrap_owner(const std::string& name);

  // --- tokens and sessions -----------------------------------------------------------
  // Password (+ TOTP when enrolled) login; throttled. peer: the client address.
  LoginResult login(const std::string& account_id, const std::string& password, const std::string& totp,
                    const std::string& peer);
  // A session or access token → principal; nullopt when unknown, expired, idle too long,
  // revoked, or its account, client or institution is no longer active.
  // touch: the token is being used (its idle clock restarts); false for a mere look.
  std::shared_ptr<const Principal> check_token(const std::string& token, std::string_view kind, bool touch = true);
  void logout(const std::string& session_token);

  // --- the account's own changes (session principal) ---------------------------------
  void change_password(const Principal& p, const std::string& current, const std::string& next);
  Json start_totp(const Principal& p);  // secret (base32) and otpauth URI; enrolment pending until confirmed
  void confirm_totp(const Principal& p, const std::string& code);

  // --- institutions (R-11) -----------------------------------------------------------
  Json apply_institution(const Json& application);  // public: state applied
  // categories: the access range granted on approval; null = the one applied for.
  Json decide_institution(const Principal& by, const std::string& id, bool approve, const std::string& reason,
                          const Json& categories = Json());
  // The owner changes an institution's access range; the next request of its staff and
  // terminals sees it.
  Json set_institution_access(const Principal& by, const std::string& id, const Json& categories);
  Json deregister_institution(const Principal& by, const std::string& id, const std::string& reason);
  Json list_institutions(const Principal& by, const std::string& state);
  Json institution_json(const storage::InstitutionRow& r) const;
  std::optional<storage::InstitutionRow> institution(const std::string& id);

  // --- accounts (R-10 … R-16) --------------------------------------------------------
  // City roles: created and issued at once by the owner (or an ops-manager, not owner).
  std::pair<Json, Issued> create_city_account(const Principal& by, const Json& body);
  // Staff: requested by the institution's org-manager (state requested).
  Json request_staff_account(const Principal& by, const Json& body);
  // Citizens apply for themselves (public; state requested).
  Json apply_citizen(const Json& body);
  // The ops-manager issues a requested account: ID + initial password + certificate.
  // fhir_user (optional): the person's FHIR record, verified by the ops-manager.
  std::pair<Json, Issued> issue_account(const Principal& by, const std::string& id, const std::string& fhir_user = "");
  Json reject_request(const Principal& by, const std::string& id, const std::string& reason);
  // Lost password: only the secretariat; a new initial password.
  std::pair<Json, Issued> reset_password(const Principal& by, const std::string& id);
  // Deregistration (on request, staff leaving) and immediate revocation.
  Json deregister_account(const Principal& by, const std::string& id, const std::string& reason);
  Json list_accounts(const Principal& by, const std::string& role, const std::string& institution,
                     const std::string& state);
  Json account_json(const storage::AccountRow& a) const;
  Json get_account(const Principal& by, const std::string& id);
  // Proxy relation for a citizen account (secretariat; R-22).
  // The secretariat sets a staff member's own read/write range within the institution's
  // (OM 4.2(2)); null clears it (the institution's whole range).
  Json set_account_access(const Principal& by, const std::string& id, const Json& categories);
  Json set_proxy(const Principal& by, const std::string& account_id, const std::string& patient_id,
                 const std::string& relationship, bool active);

  // --- admin rights (R-16) -----------------------------------------------------------
  Json request_admin_right(const Principal& by, const std::string& account_id, const std::string& reason);
  Json decide_admin_right(const Principal& by, std::int64_t grant, bool approve);
  Json revoke_admin_right(const Principal& by, const std::string& account_id);
  Json list_admin_grants(const Principal& by, const std::string& state);

  // --- certificates (登録済証), shown once ---------------------------------------------
  // The certificate data for a one-time token; nullopt when unknown or already shown.
  std::optional<Json> take_certificate(const std::string& token);

  // --- clients (R-18) ----------------------------------------------------------------
  // Registered by the secretariat for an approved institution (or none, for residents'
  // apps). Returns the client and, for confidential clients, the secret (shown once).
  Json register_client(const Principal& by, const Json& body);
  Json deregister_client(const Principal& by, const std::string& client_id);
  Json list_clients(const Principal& by, const std::string& institution);
  Json client_json(const storage::ClientRow& c) const;

  // --- abnormal access and incidents (R-32, R-42) --------------------------------------
  // Records an incident; with suspend, also stops its account (or, when it has none, its
  // terminal) at once: its tokens are revoked and it cannot log in until reinstated.
  // Returns the incident's number.
  std::int64_t record_incident(storage::IncidentRow incident, bool suspend);
  Json list_incidents(const Principal& by, const std::string& state);
  // The incidents detected in [from, to) ms (of one institution, when given), oldest first:
  // for the reports, whose endpoint checks who may read them.
  Json incidents_between(std::int64_t from, std::int64_t to, const std::string& institution);
  Json close_incident(const Principal& by, std::int64_t pk, const std::string& cause, const std::string& measures);
  // The ops-manager or the sysadmin ends a suspension (an audited /admin call).
  Json reinstate_account(const Principal& by, const std::string& id, const std::string& reason);
  Json reinstate_client(const Principal& by, const std::string& client_id, const std::string& reason);
  // Called with the subject ("account id" or "client:<id>") reinstated: the detector
  // forgets its windows (wired in main).
  std::function<void(const std::string&)> on_reinstate;

  // --- OAuth 2.0 / SMART --------------------------------------------------------------
  struct AuthorizeRequest {
    std::string response_type, client_id, redirect_uri, scope, state, aud, code_challenge, code_challenge_method, nonce,
        launch;
  };
  struct AuthorizeCheck {
    storage::ClientRow client;
    ScopeSet granted;
    std::vector<std::pair<std::string, std::string>> patients;  // choices for launch/patient: id, label
  };
  // Validates a request to /authorize for a logged-in user. Errors before the redirect URI is
  // known to be the client's are AuthError with redirect=false semantics (status 400).
  AuthorizeCheck check_authorize(const AuthorizeRequest& req, const Principal& user, const std::string& fhir_base);
  // After the user approved: the code for the redirect.
  std::string issue_code(const AuthorizeRequest& req, const Principal& user, const AuthorizeCheck& check,
                         const std::string& patient);
  // POST /token. form: the decoded body; authorization: the Authorization header, if any.
  TokenResponse token(const std::map<std::string, std::string>& form, const std::string* authorization,
                      const std::string& token_endpoint, const std::string& fhir_base);
  Json introspect(const std::map<std::string, std::string>& form, const std::string* authorization,
                  const std::string& token_endpoint);
  void revoke(const std::map<std::string, std::string>& form, const std::string* authorization,
              const std::string& token_endpoint);
  Json jwks() const;

  // Housekeeping: drops expired tokens, codes and assertion ids.
  std::uint64_t purge();

 private:
  struct Throttle {
    unsigned failures = 0;
    std::int64_t last = 0;          // ms of the last failure
    std::int64_t next_allowed = 0;  // ms before which attempts from this source are refused
  };
  storage::ClientRow authenticate_client(const std::map<std::string, std::string>& form,
                                         const std::string* authorization, const std::string& token_endpoint,
                                         bool required);
  std::string new_token(storage::Connection& c, const std::string& kind, const std::string& account_id,
                        const std::string& client_id, const std::string& scope, const std::string& patient,
                        const std::string& family, std::chrono::seconds lifetime);
  Json token_body(storage::Connection& c, const storage::ClientRow& client, const storage::AccountRow* account,
                  const ScopeSet& scopes, const std::string& patient, const std::string& nonce,
                  const std::string& family, bool with_refresh, const std::string& fhir_base,
                  std::int64_t refresh_expires_at = 0);
  std::string id_token(const storage::AccountRow& a, const std::string& client_id, const std::string& nonce,
                       const std::string& fhir_base);
  std::string new_account_id(storage::Connection& c, std::string_view role);
  Issued issue_in(storage::Connection& c, storage::AccountRow& a, const std::string& by);
  void login_failed(const std::string& account_id, const std::string& peer, std::string_view why);

  storage::ConnectionPool& pool_;
  storage::AuthStore store_;
  AuthSettings settings_;
  Key signing_key_;
  std::string signing_kid_;
  std::mutex mu_;
  struct PeerBudget {
    std::int64_t window_start = 0;
    unsigned failures = 0;
    std::int64_t blocked_until = 0;
  };
  struct AccountFailures {
    unsigned failures = 0;  // in a row, from any source
    std::int64_t last = 0;
    std::int64_t next_new_source = 0;  // before this, sources not in known_good_ wait
  };
  std::unordered_map<std::string, Throttle> throttle_;                    // account|peer
  std::unordered_map<std::string, PeerBudget> peers_;                     // peer
  std::unordered_map<std::string, AccountFailures> accounts_;             // account
  std::unordered_map<std::string, std::vector<std::string>> known_good_;  // account → peers that logged in
  std::int64_t last_prune_ = 0;
  std::unordered_map<std::string, std::pair<Json, std::int64_t>> certificates_;  // token → data, expiry
  std::unordered_map<std::string, std::string> pending_totp_;                    // account → secret
  struct CachedToken {
    storage::TokenContext ctx;
    std::shared_ptr<const Principal> principal;  // built once from ctx; time-dependent checks run per request
    std::int64_t filled_at = 0;
    std::uint64_t epoch = 0;
    std::atomic<std::int64_t> last_used{0};     // ms; at least the database's
    std::atomic<std::int64_t> last_written{0};  // ms; the last_used the database has
  };
  std::shared_mutex cache_mu_;
  std::unordered_map<std::string, std::shared_ptr<CachedToken>> token_cache_;  // token hash → last check
  std::atomic<std::uint64_t> epoch_{1};                                        // bumped after every committed change
};

// The password policy (MHLW guideline 6.0): at least 13 characters mixing letters, digits
// and symbols, or at least 8 with a second factor. Returns what is wrong, or empty.
std::string password_problem(std::string_view password, bool second_factor);
std::string generate_password();  // 16 characters meeting the policy

}  // namespace kasama::auth
