#pragma once
// The access decision's data side: what an institution-bound caller may see,
// as a Filter that every data path applies — in SQL for searches, includes, chains, _has,
// counts and history listings, and on the version itself for reads, vreads and writes —
// and the opt-outs (Consents under the city's opt-out policy) it is made from.
//
// Who is filtered: institution staff (practitioner, org-manager) and institution terminals
// (system tokens of a client registered for an institution). The city's roles are held by
// their SMART ceilings, residents and proxies by their patient context (their own record:
// opt-out never hides residents' data from themselves), the server itself by nothing.
// The request-level checks (scopes, roles, patient context) are in
// server/interactions/authorize.cpp; both are documented in server/access/README.md.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/access/category.hpp"
#include "server/auth/principal.hpp"
#include "server/storage/db.hpp"

namespace kasama::access {

// The city's opt-out policy (OM 3.1(1)⑤, 3.1(3)): a Consent that names it in policy.uri,
// with scope patient-privacy, status active and provision.type deny, stops the resident's
// data from reaching the institutions of provision.actor (Organization/{institution id};
// none named: every institution) within provision.period.
inline constexpr const char* kOptOutPolicy = "http://kasama-fhir.example/fhir/policy/opt-out";

struct OptOut {
  std::string patient_id;
  std::string institution_id;  // "" = every institution
  std::int64_t start_ms = 0, end_ms = 0;
};
inline constexpr std::int64_t kForever = std::int64_t{1} << 60;

// Whether a Consent names the opt-out policy (whatever its status): such Consents are the
// secretariat's to write.
bool under_opt_out_policy(const Json& consent);

// The opt-outs a Consent's content states (none unless it is one under the policy).
// base_url: absolute references below it are local.
std::vector<OptOut> opt_outs_of(const Json& consent, const std::string& base_url);

// What one caller may see and write, for one request.
struct Filter {
  Range range;  // directory is always readable
  // Opted out of this institution now; sorted; shared by the requests of one snapshot.
  std::shared_ptr<const std::vector<std::string>> hidden;
  const std::vector<std::string>& hidden_patients() const {
    static const std::vector<std::string> none;
    return hidden ? *hidden : none;
  }

  bool reads(Category c) const { return (range.read & bit(c)) != 0; }
  bool writes(Category c) const { return (range.write & bit(c)) != 0; }
  bool hides(const std::vector<std::string>& subjects) const;
  bool hides_patient(const std::string& id) const;
  // A boolean SQL expression over a version: its category column, and its pk and version
  // columns for the subjects. quote: the connection's quoting.
  std::string sql(const std::string& category_col, const std::string& pk_col, const std::string& version_col,
                  const std::function<std::string(std::string_view)>& quote) const;
};

// The opt-outs of every Consent, kept in memory: reloaded after any change made through this
// process, and at most ttl after a change made by another process on the same database.
class OptOutRegistry {
 public:
  OptOutRegistry(storage::ConnectionPool& pool, unsigned tenant, std::chrono::milliseconds ttl)
      : pool_(pool), tenant_(tenant), ttl_(ttl) {}
  // Patients opted out of the institution at time now (ms), sorted; computed once per
  // snapshot and institution until the next start or end of an opt-out period.
  std::shared_ptr<const std::vector<std::string>> hidden_for(const std::string& institution, std::int64_t now);
  void changed();  // a Consent was written: reload before the next decision

 private:
  struct Snapshot {
    std::vector<OptOut> rows;
    std::int64_t loaded_at = 0;
    std::uint64_t epoch = 0;
    struct Hidden {
      std::shared_ptr<const std::vector<std::string>> patients;
      std::int64_t from = 0, until = 0;  // valid for now in [from, until)
    };
    mutable std::mutex mu;
    mutable std::map<std::string, Hidden> by_institution;
  };
  std::shared_ptr<const Snapshot> snapshot(std::int64_t now);

  storage::ConnectionPool& pool_;
  unsigned tenant_;
  std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::shared_ptr<const Snapshot> snap_;
  std::uint64_t epoch_ = 1;
};

// The caller's filter, or null when nothing is filtered for them (see the top).
std::shared_ptr<const Filter> filter_for(const auth::Principal& p, OptOutRegistry& optouts, std::int64_t now);

}  // namespace kasama::access
