#pragma once
// Reports over the audit trail (R-33; SM 3.2(6)(7), OM 7.4, OM 8): the monthly access-log
// review and the per-institution usage report, built in one pass over a month's records, as
// JSON and as an HTML page (Japanese with English) with charts an auditor can read without
// any script. The month is the city's: from the 1st 00:00 in Japan (UTC+9).
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "resources/json.hpp"
#include "server/storage/audit_store.hpp"

namespace kasama::audit {

struct ReportMonth {
  int year = 0, month = 0;
  std::int64_t from_ms = 0, to_ms = 0;  // [from, to)
  std::string text;                     // "2026-12"
};
// "YYYY-MM" → the month in Japan time; nullopt when it is no such month.
std::optional<ReportMonth> parse_report_month(const std::string& text, int utc_offset_minutes = 9 * 60);

class ReportBuilder {
 public:
  // institution: only that institution's records (the usage report); empty = all.
  // Working hours in local minutes [from, to): requests of staff outside them are off-hours.
  // institution_view: the report is for the institution's own people, who must not tell a
  // resource hidden from them from one that is not there: what access control hid counts as
  // not found (a failure), not as a denial or an opt-out hit.
  ReportBuilder(ReportMonth month, std::string institution = "", int utc_offset_minutes = 9 * 60,
                int work_from = 7 * 60, int work_to = 22 * 60, bool institution_view = false);
  void add(const storage::AuditRow& r);
  // The report; chain and incidents are added by the caller (JSON they already have).
  resources::Json json() const;

 private:
  struct Tally {
    std::uint64_t requests = 0, denied = 0, failed = 0, opt_out_hits = 0, off_hours = 0, writes = 0;
    std::set<std::string> residents, accounts;
    std::string role, institution;  // per user
  };
  void count(Tally& t, const storage::AuditRow& r, bool off_hours, bool opt_out, const std::vector<std::string>& patients);

  ReportMonth month_;
  std::string institution_;
  int offset_, work_from_, work_to_;
  bool institution_view_;
  Tally total_;
  std::map<std::string, Tally> by_institution_, by_user_, by_terminal_;
  std::map<int, Tally> by_day_;
  std::map<std::string, std::uint64_t> by_interaction_;
};

// The report JSON as a page: summary, chain verification, requests per day (SVG bars), per
// institution, per user, interactions, incidents. Every text from the records is escaped.
std::string report_html(const resources::Json& report);

}  // namespace kasama::audit
