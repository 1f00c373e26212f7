#pragma once
// Abnormal-access detection (R-32, SM 3.2(5)): every audit record is observed as it is
// written, and rules as data (conformance/kasama/anomaly-rules.json) count, per subject (the
// account; a terminal when no account is behind the token) within a sliding window, the
// distinct residents touched, the search pages followed, the denials, the failed logins, or
// the requests outside working hours. A rule that fires yields a Hit; what is done with it
// (suspend the account or terminal, record an incident, refuse the request) is the caller's
// (server/auth AuthService::record_anomaly, FhirService::audit). All state is in memory:
// a restart starts the windows afresh.
#include <cstdint>
#include <deque>
#include <map>
#include <unordered_map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "resources/json.hpp"
#include "server/storage/audit_store.hpp"

namespace kasama::audit {

struct AnomalyRule {
  std::string id;
  // distinct-patients, distinct-patients-baseline, pages, denials, login-failures, off-hours
  std::string kind;
  std::int64_t window_ms = 3'600'000;
  std::size_t threshold = 0;
  int level = 1;            // SM 4.3
  bool suspend = false;     // else: record only
  std::set<std::string> roles;  // empty: every role
  int from_minute = 0, to_minute = 24 * 60, utc_offset_minutes = 0;  // off-hours: working hours, local
  // distinct-patients-baseline: the residents of the current window (fixed windows) against
  // the mean of the subject's last `history` windows with any activity; fires above
  // factor × that mean and above threshold, once the subject has min_history windows.
  double factor = 0;
  std::size_t history = 0, min_history = 0;
};

struct AnomalyHit {
  std::string rule;
  int level = 1;
  bool suspend = false;
  std::string subject;  // account id, or "client:<client id>", or "login:<id>"
  std::string account_id, client_id, terminal_id, institution_id;
  std::size_t count = 0;  // what the rule counted when it fired
  std::string detail;     // for people: Japanese and English
};

// The rules of a document like conformance/kasama/anomaly-rules.json; throws
// std::runtime_error naming what is wrong.
std::vector<AnomalyRule> parse_anomaly_rules(const resources::Json& doc);
std::vector<AnomalyRule> load_anomaly_rules(const std::string& path);

class AnomalyDetector {
 public:
  explicit AnomalyDetector(std::vector<AnomalyRule> rules) : rules_(std::move(rules)), windows_(rules_.size()) {}
  // The hits this record causes (usually none). Thread-safe.
  std::vector<AnomalyHit> observe(const storage::AuditRow& row);
  // Forgets a subject's windows (after reinstatement: it starts afresh).
  void reset(const std::string& subject);
  const std::vector<AnomalyRule>& rules() const { return rules_; }

 private:
  struct Window {
    std::deque<std::pair<std::int64_t, std::string>> events;  // (time, key)
    std::map<std::string, std::int64_t> last;                 // distinct keys: key -> latest time
    std::int64_t quiet_until = 0;                             // fired: no second hit until then
    // baseline rules: the fixed window being counted, its residents, earlier windows' counts
    std::int64_t bucket = -1;
    std::set<std::string> current;
    std::deque<std::size_t> past;
  };
  // The baseline rule's count for the current window; baseline: the mean of the past ones
  // (0 while there are fewer than min_history).
  std::size_t count_baseline(Window& w, const AnomalyRule& r, std::int64_t now, const std::vector<std::string>& keys,
                             double& baseline);
  std::size_t count(Window& w, const AnomalyRule& r, std::int64_t now, const std::string& key);

  std::vector<AnomalyRule> rules_;
  std::mutex mu_;
  std::vector<std::unordered_map<std::string, Window>> windows_;  // per rule: subject -> window
};

}  // namespace kasama::audit
