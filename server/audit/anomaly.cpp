#include "server/audit/anomaly.hpp"

#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace kasama::audit {

namespace {

using resources::string_member;

// A number member (JSON decimals are kept as their text: number_value reads both kinds).
double number(const resources::Json& j, const char* k, double def, const std::string& rule) {
  auto it = j.find(k);
  if (it == j.end()) return def;
  auto v = resources::number_value(*it);
  if (!v) throw std::runtime_error("anomaly rule " + rule + ": " + k + " must be a number");
  return *v;
}

// "HH:MM" -> minutes of the day.
int minutes(const std::string& hhmm, const std::string& rule) {
  int h = -1, m = -1;
  char colon = 0;
  std::istringstream in(hhmm);
  in >> h >> colon >> m;
  if (!in || colon != ':' || h < 0 || h > 24 || m < 0 || m > 59 || h * 60 + m > 24 * 60)
    throw std::runtime_error("anomaly rule " + rule + ": '" + hhmm + "' is not HH:MM");
  return h * 60 + m;
}

int utc_offset(const std::string& text, const std::string& rule) {
  if (text.empty()) return 0;
  if (text.size() != 6 || (text[0] != '+' && text[0] != '-'))
    throw std::runtime_error("anomaly rule " + rule + ": utcOffset is +HH:MM or -HH:MM");
  const int m = minutes(text.substr(1), rule);
  return text[0] == '-' ? -m : m;
}

const std::set<std::string> kKinds = {"distinct-patients", "distinct-patients-baseline", "pages", "denials",
                                      "login-failures", "off-hours"};

// The ID a failed login tried (server/auth/api.cpp writes "login id '…'").
std::string login_id(const std::string& detail) {
  const std::string mark = "login id '";
  auto p = detail.find(mark);
  if (p == std::string::npos) return {};
  p += mark.size();
  auto e = detail.find('\'', p);
  return e == std::string::npos ? std::string() : detail.substr(p, e - p);
}

}  // namespace

std::vector<AnomalyRule> parse_anomaly_rules(const resources::Json& doc) {
  std::vector<AnomalyRule> out;
  auto rules = doc.find("rules");
  if (rules == doc.end() || !rules->is_array()) throw std::runtime_error("anomaly rules: 'rules' must be a list");
  std::set<std::string> ids;
  for (const auto& j : *rules) {
    AnomalyRule r;
    r.id = string_member(j, "id");
    if (r.id.empty() || !ids.insert(r.id).second) throw std::runtime_error("anomaly rules: empty or repeated id '" + r.id + "'");
    r.kind = string_member(j, "kind");
    if (!kKinds.count(r.kind)) throw std::runtime_error("anomaly rule " + r.id + ": unknown kind '" + r.kind + "'");
    const double window = number(j, "window", 0, r.id);
    if (window <= 0 || window > 7 * 24 * 60) throw std::runtime_error("anomaly rule " + r.id + ": window is 1 … 10080 minutes");
    r.window_ms = static_cast<std::int64_t>(window * 60'000);
    const double threshold = number(j, "threshold", r.kind == "off-hours" ? 0 : -1, r.id);
    if (threshold < 0) throw std::runtime_error("anomaly rule " + r.id + ": threshold is a count >= 0");
    r.threshold = static_cast<std::size_t>(threshold);
    r.level = static_cast<int>(number(j, "level", 1, r.id));
    if (r.level < 1 || r.level > 5) throw std::runtime_error("anomaly rule " + r.id + ": level is 1 … 5 (SM 4.3)");
    const std::string action = string_member(j, "action");
    if (action != "suspend" && action != "record")
      throw std::runtime_error("anomaly rule " + r.id + ": action is suspend or record");
    r.suspend = action == "suspend";
    if (auto roles = j.find("roles"); roles != j.end() && roles->is_array()) {
      for (const auto& x : *roles)
        if (x.is_string()) r.roles.insert(x.get<std::string>());
    }
    if (r.kind == "distinct-patients-baseline") {
      r.factor = number(j, "factor", 0, r.id);
      const double history = number(j, "history", 0, r.id), min_history = number(j, "minHistory", 0, r.id);
      if (r.factor < 1.0 || history < 1 || history > 10000 || min_history < 1 || min_history > history)
        throw std::runtime_error("anomaly rule " + r.id +
                                 ": a baseline rule needs factor >= 1, history 1 … 10000 and minHistory 1 … history");
      r.history = static_cast<std::size_t>(history);
      r.min_history = static_cast<std::size_t>(min_history);
    }
    if (r.kind == "off-hours") {
      r.from_minute = minutes(string_member(j, "from"), r.id);
      r.to_minute = minutes(string_member(j, "to"), r.id);
      r.utc_offset_minutes = utc_offset(string_member(j, "utcOffset"), r.id);
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<AnomalyRule> load_anomaly_rules(const std::string& path) {
  return parse_anomaly_rules(resources::load_json_file(path));
}

namespace {
constexpr std::size_t kMaxSubjects = 100'000;  // per rule
}  // namespace

std::size_t AnomalyDetector::count(Window& w, const AnomalyRule& r, std::int64_t now, const std::string& key) {
  while (!w.events.empty() && w.events.front().first <= now - r.window_ms) {
    const auto& [t, k] = w.events.front();
    if (auto it = w.last.find(k); it != w.last.end() && it->second == t) w.last.erase(it);
    w.events.pop_front();
  }
  if (!key.empty()) {
    w.events.emplace_back(now, key);
    w.last[key] = now;
  }
  // Bounded: far past the threshold nothing more is learnt (a "record" rule keeps counting).
  while (w.events.size() > 4 * r.threshold + 64) {
    const auto& [t, k] = w.events.front();
    if (auto it = w.last.find(k); it != w.last.end() && it->second == t) w.last.erase(it);
    w.events.pop_front();
  }
  return r.kind == "distinct-patients" ? w.last.size() : w.events.size();
}

std::size_t AnomalyDetector::count_baseline(Window& w, const AnomalyRule& r, std::int64_t now,
                                            const std::vector<std::string>& keys, double& baseline) {
  const std::int64_t bucket = now / r.window_ms;
  if (bucket != w.bucket) {
    if (w.bucket >= 0 && !w.current.empty()) {
      w.past.push_back(w.current.size());
      while (w.past.size() > r.history) w.past.pop_front();
    }
    w.bucket = bucket;
    w.current.clear();
  }
  for (const auto& k : keys)
    if (w.current.size() < 4 * r.threshold + 100000) w.current.insert(k);
  baseline = 0;
  if (w.past.size() >= r.min_history) {
    double sum = 0;
    for (auto n : w.past) sum += static_cast<double>(n);
    baseline = sum / static_cast<double>(w.past.size());
  }
  return w.current.size();
}

std::vector<AnomalyHit> AnomalyDetector::observe(const storage::AuditRow& row) {
  std::vector<AnomalyHit> hits;
  if (rules_.empty()) return hits;
  const bool login = row.interaction == "auth" && row.path.rfind("auth/login", 0) == 0;
  const bool login_failed = login && (row.status == 401 || row.status == 403);
  std::string subject;
  if (!row.account_id.empty() && !login) {
    subject = row.account_id;
  } else if (!row.client_id.empty()) {
    subject = "client:" + row.client_id;
  }
  const std::int64_t now = row.recorded;
  // What each rule counts of this record, worked out before the lock is taken.
  struct Counted {
    std::size_t rule;
    std::string who;
    std::vector<std::string> keys;
  };
  std::vector<Counted> counted;
  std::vector<std::string> patients;
  bool split = false;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const auto& r = rules_[i];
    Counted c{i, subject, {}};
    if (r.kind == "login-failures") {
      if (!login_failed) continue;
      const std::string id = login_id(row.detail);
      if (id.empty()) continue;
      c.who = "login:" + id;
      c.keys.push_back(row.request_id.empty() ? std::to_string(now) : row.request_id);
    } else {
      if (c.who.empty()) continue;
      if (!r.roles.empty() && !r.roles.count(row.role)) continue;
      if (r.kind == "distinct-patients" || r.kind == "distinct-patients-baseline") {
        if (row.status >= 400 || row.patients.empty()) continue;
        if (!split) {
          split = true;
          std::string_view all = row.patients;
          while (!all.empty()) {
            const auto sp = all.find(' ');
            const auto part = all.substr(0, sp);
            if (!part.empty()) patients.emplace_back(part);
            if (sp == std::string_view::npos) break;
            all.remove_prefix(sp + 1);
          }
        }
        c.keys = patients;
      } else if (r.kind == "pages") {
        if (row.status >= 400 || row.path.find("_cursor=") == std::string::npos) continue;
        c.keys.push_back(row.request_id);
      } else if (r.kind == "denials") {
        // Refusals only: a resource hidden by access control answered "not known" (404) is
        // not counted, or the suspension would tell the caller it exists.
        if (!row.denied || row.status == 404) continue;
        c.keys.push_back(row.request_id);
      } else if (r.kind == "off-hours") {
        const std::int64_t local = (now / 60'000 + r.utc_offset_minutes) % (24 * 60);
        const bool working = r.from_minute <= r.to_minute ? (local >= r.from_minute && local < r.to_minute)
                                                          : (local >= r.from_minute || local < r.to_minute);
        if (working) continue;
        c.keys.push_back(row.request_id);
      }
    }
    if (!c.keys.empty()) counted.push_back(std::move(c));
  }
  if (counted.empty()) return hits;
  std::lock_guard lock(mu_);
  for (auto& c : counted) {
    const auto& r = rules_[c.rule];
    const std::string& who = c.who;
    const auto& keys = c.keys;
    auto& per_rule = windows_[c.rule];
    if (per_rule.size() > kMaxSubjects && !per_rule.count(who)) {
      // Bounded (failed logins may name any ID): subjects with nothing in their window go.
      for (auto it = per_rule.begin(); it != per_rule.end();) {
        const Window& x = it->second;
        const bool idle = r.kind == "distinct-patients-baseline"
                              ? x.bucket < now / r.window_ms - static_cast<std::int64_t>(r.history)
                              : (x.events.empty() || x.events.back().first <= now - r.window_ms);
        it = idle && x.quiet_until <= now ? per_rule.erase(it) : std::next(it);
      }
      if (per_rule.size() > kMaxSubjects) continue;  // still full: this record is not counted here
    }
    Window& w = per_rule[who];
    std::size_t n = 0;
    double baseline = 0;
    if (r.kind == "distinct-patients-baseline") {
      n = count_baseline(w, r, now, keys, baseline);
      if (baseline <= 0 || static_cast<double>(n) <= r.factor * baseline || n <= r.threshold || now < w.quiet_until)
        continue;
      w.quiet_until = (w.bucket + 1) * r.window_ms;
    } else {
      for (const auto& k : keys) n = count(w, r, now, k.empty() ? std::to_string(now) : k);
      if (n <= r.threshold || now < w.quiet_until) continue;
      w.quiet_until = now + r.window_ms;
    }
    AnomalyHit h;
    h.rule = r.id;
    h.level = r.level;
    h.suspend = r.suspend && r.kind != "login-failures";
    h.subject = who;
    h.account_id = r.kind == "login-failures" ? who.substr(6) : row.account_id;
    h.client_id = row.client_id;
    h.terminal_id = row.terminal_id;
    h.institution_id = row.institution_id;
    h.count = n;
    const std::string window = std::to_string(r.window_ms / 60'000);
    if (r.kind == "distinct-patients-baseline") {
      char mean[32];
      std::snprintf(mean, sizeof mean, "%.1f", baseline);
      h.detail = std::to_string(n) + " 人の住民の情報に " + window + " 分間でアクセス(通常の " + mean + " 人の " +
                 std::to_string(static_cast<int>(r.factor)) + " 倍超) / " + std::to_string(n) + " distinct residents in " +
                 window + " minutes, above " + std::to_string(static_cast<int>(r.factor)) + " x the usual " + mean;
    } else if (r.kind == "distinct-patients") {
      h.detail = std::to_string(n) + " 人の住民の情報に " + window + " 分間でアクセス / " + std::to_string(n) +
                 " distinct residents in " + window + " minutes (threshold " + std::to_string(r.threshold) + ")";
    } else if (r.kind == "pages") {
      h.detail = "検索結果の大量取得 / " + std::to_string(n) + " search pages in " + window + " minutes (threshold " +
                 std::to_string(r.threshold) + ")";
    } else if (r.kind == "denials") {
      h.detail = "拒否の繰り返し / " + std::to_string(n) + " denied requests in " + window + " minutes (threshold " +
                 std::to_string(r.threshold) + ")";
    } else if (r.kind == "login-failures") {
      h.detail = "ログイン失敗の繰り返し / " + std::to_string(n) + " failed logins for this ID in " + window +
                 " minutes (threshold " + std::to_string(r.threshold) + ")";
    } else {
      h.detail = "時間外のアクセス / access outside working hours (request " + row.request_id + ")";
    }
    hits.push_back(std::move(h));
  }
  return hits;
}

void AnomalyDetector::reset(const std::string& subject) {
  std::lock_guard lock(mu_);
  for (auto& per_rule : windows_) per_rule.erase(subject);
}

}  // namespace kasama::audit
