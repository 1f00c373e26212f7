// Abnormal-access rules (R-32): each kind counts what it should, for the right subject and
// roles, within its window; a rule fires once per window; reset starts a subject afresh;
// the shipped rules parse and malformed ones are refused.
#define BOOST_TEST_MODULE anomaly
#include <boost/test/unit_test.hpp>

#include "resources/paths.hpp"
#include "server/audit/anomaly.hpp"

using namespace kasama;
using audit::AnomalyDetector;
using storage::AuditRow;

namespace {

resources::Json j(const char* text) {
  auto p = resources::parse_json(text);
  BOOST_REQUIRE_MESSAGE(p.ok, text);
  return p.value;
}

AnomalyDetector detector(const char* rules) { return AnomalyDetector(audit::parse_anomaly_rules(j(rules))); }

constexpr std::int64_t kT0 = 1'800'000'000'000;  // 2027-01-15T08:00Z, 17:00 in Japan

AuditRow read_by(const std::string& account, const std::string& role, const std::string& patients, std::int64_t t,
                 int n = 0) {
  AuditRow r;
  r.recorded = t;
  r.request_id = "r" + std::to_string(t) + "-" + std::to_string(n);
  r.interaction = "read";
  r.method = "GET";
  r.path = "Patient/x";
  r.status = 200;
  r.account_id = account;
  r.role = role;
  r.patients = patients;
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(r32_the_shipped_rules_parse) {
  const auto rules = audit::load_anomaly_rules(resources::conformance_dir() + "/kasama/anomaly-rules.json");
  BOOST_TEST(rules.size() >= 5u);
  for (const char* kind : {"distinct-patients", "pages", "denials", "login-failures", "off-hours"}) {
    BOOST_TEST_CONTEXT(kind) {
      BOOST_TEST(std::any_of(rules.begin(), rules.end(), [&](const auto& r) { return r.kind == kind; }));
    }
  }
}

BOOST_AUTO_TEST_CASE(r32_distinct_residents_per_window_fire_once_and_reset_starts_afresh) {
  auto d = detector(R"({"rules":[{"id":"r","kind":"distinct-patients","window":60,"threshold":3,"level":5,
                                  "action":"suspend","roles":["practitioner"]}]})");
  // The same resident again and again is one resident.
  for (int i = 0; i < 10; ++i) BOOST_TEST(d.observe(read_by("u1", "practitioner", "p1", kT0 + i, i)).empty());
  BOOST_TEST(d.observe(read_by("u1", "practitioner", "p2 p3", kT0 + 20)).empty());
  // Other roles and other subjects do not count here.
  BOOST_TEST(d.observe(read_by("c1", "secretariat", "p4 p5 p6 p7", kT0 + 21)).empty());
  BOOST_TEST(d.observe(read_by("u2", "practitioner", "p4", kT0 + 22)).empty());
  auto hits = d.observe(read_by("u1", "practitioner", "p4", kT0 + 30));
  BOOST_REQUIRE(hits.size() == 1u);
  BOOST_TEST(hits[0].rule == "r");
  BOOST_TEST(hits[0].suspend);
  BOOST_TEST(hits[0].level == 5);
  BOOST_TEST(hits[0].account_id == "u1");
  BOOST_TEST(hits[0].count == 4u);
  BOOST_TEST(d.observe(read_by("u1", "practitioner", "p5", kT0 + 40)).empty());  // quiet for a window
  // A failed request touched nobody.
  auto failed = read_by("u2", "practitioner", "p8 p9 p10", kT0 + 41);
  failed.status = 404;
  BOOST_TEST(d.observe(failed).empty());
  d.reset("u1");
  BOOST_TEST(d.observe(read_by("u1", "practitioner", "p1 p2 p3", kT0 + 50)).empty());
  // Outside the window the old residents no longer count.
  BOOST_TEST(d.observe(read_by("u1", "practitioner", "p9", kT0 + 50 + 3'600'000)).empty());
}

BOOST_AUTO_TEST_CASE(r32_terminals_pages_denials_and_login_failures) {
  auto d = detector(R"({"rules":[
    {"id":"pages","kind":"pages","window":10,"threshold":2,"level":5,"action":"suspend","roles":["system"]},
    {"id":"denials","kind":"denials","window":10,"threshold":2,"level":1,"action":"suspend"},
    {"id":"logins","kind":"login-failures","window":10,"threshold":2,"level":1,"action":"suspend"}]})");
  for (int i = 0; i < 2; ++i) {
    auto r = read_by("", "system", "", kT0 + i, i);
    r.client_id = "cl";
    r.path = "Practitioner?_count=1&_cursor=abc";
    BOOST_TEST(d.observe(r).empty());
  }
  auto page = read_by("", "system", "", kT0 + 5);
  page.client_id = "cl";
  page.terminal_id = "T-1";
  page.path = "Practitioner?_count=1&_cursor=abd";
  auto hits = d.observe(page);
  BOOST_REQUIRE(hits.size() == 1u);
  BOOST_TEST(hits[0].subject == "client:cl");
  BOOST_TEST(hits[0].terminal_id == "T-1");

  for (int i = 0; i < 3; ++i) {
    auto r = read_by("u3", "practitioner", "", kT0 + 10 + i, i);
    r.status = 403;
    r.denied = true;
    auto h = d.observe(r);
    BOOST_TEST(h.size() == (i == 2 ? 1u : 0u));
  }
  // Failed logins count per ID tried, never suspend (an attacker must not lock users out).
  for (int i = 0; i < 3; ++i) {
    AuditRow r;
    r.recorded = kT0 + 20 + i;
    r.request_id = "l" + std::to_string(i);
    r.interaction = "auth";
    r.path = "auth/login";
    r.status = 401;
    r.denied = true;
    r.detail = "login id 's-abc'";
    auto h = d.observe(r);
    const bool last = i == 2;
    BOOST_TEST(h.size() == (last ? 1u : 0u));
    if (last) {
      BOOST_TEST(h[0].account_id == "s-abc");
      BOOST_TEST(!h[0].suspend);
    }
  }
}

BOOST_AUTO_TEST_CASE(r32_far_above_the_users_own_baseline) {
  // Hourly windows; the mean of up to 5 earlier active hours, at least 3; 4 × and above 5.
  auto d = detector(R"({"rules":[{"id":"b","kind":"distinct-patients-baseline","window":60,"factor":4,"history":5,
                                  "minHistory":3,"threshold":5,"level":5,"action":"suspend"}]})");
  const std::int64_t hour = 3'600'000, t0 = (kT0 / hour) * hour;
  int n = 0;
  auto residents = [&](const std::string& who, std::int64_t at, int count) {
    std::vector<audit::AnomalyHit> all;
    for (int i = 0; i < count; ++i) {
      auto h = d.observe(read_by(who, "practitioner", "p" + std::to_string(n++), at + i));
      all.insert(all.end(), h.begin(), h.end());
    }
    return all;
  };
  // Without history nothing fires, however many.
  BOOST_TEST(residents("u", t0, 50).empty());
  BOOST_TEST(residents("u", t0 + hour, 3).empty());
  BOOST_TEST(residents("u", t0 + 2 * hour, 3).empty());
  // Baseline now (50 + 3 + 3) / 3 ≈ 18.7: 4 × is 74.7, so 60 residents do not fire…
  BOOST_TEST(residents("u", t0 + 3 * hour, 60).empty());
  // … and a user whose hours were quiet does when they read far more than usual.
  auto v = std::string("v");
  for (int h = 0; h < 4; ++h) BOOST_TEST(residents(v, t0 + h * hour, 2).empty());
  const auto hits = residents(v, t0 + 4 * hour, 9);  // mean 2: above 8 and above 5 at the 9th
  BOOST_REQUIRE(hits.size() == 1u);
  BOOST_TEST(hits[0].count == 9u);
  BOOST_TEST(hits[0].detail.find("usual 2.0") != std::string::npos);
  BOOST_TEST(residents(v, t0 + 4 * hour + 100, 20).empty());  // quiet until the hour ends
}

BOOST_AUTO_TEST_CASE(r32_off_hours_in_local_time) {
  // Working hours 09:00-17:00 in Japan (UTC+9): kT0 is 17:00 JST, just outside.
  auto d = detector(R"({"rules":[{"id":"oh","kind":"off-hours","window":60,"from":"09:00","to":"17:00",
                                  "utcOffset":"+09:00","level":1,"action":"record"}]})");
  BOOST_TEST(d.observe(read_by("u", "practitioner", "", kT0 - 60'000)).empty());  // 16:59
  auto h = d.observe(read_by("u", "practitioner", "", kT0));                    // 17:00
  BOOST_REQUIRE(h.size() == 1u);
  BOOST_TEST(!h[0].suspend);
  // Overnight shifts: from 22:00 to 06:00 is the working span.
  auto night = detector(R"({"rules":[{"id":"oh","kind":"off-hours","window":60,"from":"22:00","to":"06:00",
                                      "utcOffset":"+09:00","level":1,"action":"record"}]})");
  BOOST_TEST(night.observe(read_by("u", "practitioner", "", kT0 + 6 * 3'600'000)).empty());  // 23:00 JST
  BOOST_TEST(night.observe(read_by("u", "practitioner", "", kT0)).size() == 1u);            // 17:00 JST
}

BOOST_AUTO_TEST_CASE(r32_malformed_rules_are_refused) {
  const char* bad[] = {
      R"({})",
      R"({"rules":[{"id":"a","kind":"nonsense","window":1,"threshold":1,"action":"record"}]})",
      R"({"rules":[{"id":"a","kind":"pages","window":0,"threshold":1,"action":"record"}]})",
      R"({"rules":[{"id":"a","kind":"pages","window":1,"action":"record"}]})",
      R"({"rules":[{"id":"a","kind":"pages","window":1,"threshold":1,"action":"explode"}]})",
      R"({"rules":[{"id":"a","kind":"pages","window":1,"threshold":1,"level":9,"action":"record"}]})",
      R"({"rules":[{"id":"a","kind":"off-hours","window":1,"from":"7","to":"22:00","action":"record"}]})",
      R"({"rules":[{"id":"a","kind":"distinct-patients-baseline","window":60,"threshold":1,"factor":0.5,"history":3,
                  "minHistory":1,"action":"record"}]})",
      R"({"rules":[{"id":"a","kind":"pages","window":1,"threshold":1,"action":"record"},
                  {"id":"a","kind":"pages","window":1,"threshold":1,"action":"record"}]})",
  };
  for (const char* b : bad) {
    BOOST_TEST_CONTEXT(b) { BOOST_CHECK_THROW(audit::parse_anomaly_rules(j(b)), std::runtime_error); }
  }
}

// --- reports (R-33) -------------------------------------------------------------------------

#include "server/audit/report.hpp"

BOOST_AUTO_TEST_CASE(r33_reports_count_each_record_once_and_hide_from_institutions_what_access_control_hid) {
  const auto month = audit::parse_report_month("2027-01");
  BOOST_REQUIRE(month);
  BOOST_TEST(month->from_ms == 1'798'729'200'000);  // 2027-01-01T00:00+09:00
  BOOST_TEST(!audit::parse_report_month("2027-13"));
  BOOST_TEST(!audit::parse_report_month("2027-1"));
  auto rows = std::vector<AuditRow>{};
  for (int i = 0; i < 3; ++i) {
    auto r = read_by("u", "practitioner", "p" + std::to_string(i % 2), month->from_ms + 3'600'000 * (i + 1), i);
    r.institution_id = "org-a";
    rows.push_back(r);
  }
  auto hidden = read_by("u", "practitioner", "", month->from_ms + 100, 9);
  hidden.institution_id = "org-a";
  hidden.status = 404;
  hidden.outcome = 4;
  hidden.denied = true;
  hidden.detail = "hidden: the resident opted out (R-21)";
  rows.push_back(hidden);
  auto outside = read_by("u", "practitioner", "p9", month->to_ms, 10);  // the next month
  outside.institution_id = "org-a";
  rows.push_back(outside);
  audit::ReportBuilder city(*month), own(*month, "org-a", 9 * 60, 7 * 60, 22 * 60, true);
  for (const auto& r : rows) {
    city.add(r);
    own.add(r);
  }
  const auto c = city.json(), o = own.json();
  BOOST_TEST(c["summary"]["requests"] == 4);
  BOOST_TEST(c["summary"]["residents"] == 2);
  BOOST_TEST(c["summary"]["denied"] == 1);
  BOOST_TEST(c["summary"]["optOutHits"] == 1);
  // The institution's own report: the hidden read is a failure, like a read of nothing.
  BOOST_TEST(o["summary"]["requests"] == 4);
  BOOST_TEST(o["summary"]["denied"] == 0);
  BOOST_TEST(o["summary"]["optOutHits"] == 0);
  BOOST_TEST(o["summary"]["failed"] == 1);
  // Rendered: escaped, with a bar per active day.
  auto html = audit::report_html(c);
  BOOST_TEST(html.find("月次アクセスログ点検報告") != std::string::npos);
  BOOST_TEST(html.find("class=\"bar\"") != std::string::npos);
  auto evil = c;
  evil["users"][0]["user"] = "<script>x</script>";
  BOOST_TEST(audit::report_html(evil).find("<script>") == std::string::npos);
}
