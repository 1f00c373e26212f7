#include "server/audit/report.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "resources/fhir_time.hpp"

namespace kasama::audit {

using resources::Json;

std::optional<ReportMonth> parse_report_month(const std::string& text, int utc_offset_minutes) {
  int y = 0, m = 0;
  char dash = 0, extra = 0;
  if (text.size() != 7 || std::sscanf(text.c_str(), "%4d%c%2d%c", &y, &dash, &m, &extra) != 3 || dash != '-' ||
      y < 2000 || y > 2999 || m < 1 || m > 12)
    return std::nullopt;
  ReportMonth out;
  out.year = y;
  out.month = m;
  out.text = text;
  const std::int64_t offset_ms = std::int64_t{utc_offset_minutes} * 60'000;
  out.from_ms = resources::days_from_civil(y, static_cast<unsigned>(m), 1) * 86'400'000 - offset_ms;
  const int ny = m == 12 ? y + 1 : y, nm = m == 12 ? 1 : m + 1;
  out.to_ms = resources::days_from_civil(ny, static_cast<unsigned>(nm), 1) * 86'400'000 - offset_ms;
  return out;
}

ReportBuilder::ReportBuilder(ReportMonth month, std::string institution, int utc_offset_minutes, int work_from,
                             int work_to, bool institution_view)
    : month_(std::move(month)),
      institution_(std::move(institution)),
      offset_(utc_offset_minutes),
      work_from_(work_from),
      work_to_(work_to),
      institution_view_(institution_view) {}

void ReportBuilder::count(Tally& t, const storage::AuditRow& r, bool off_hours, bool opt_out,
                          const std::vector<std::string>& patients) {
  ++t.requests;
  if (r.denied) ++t.denied;
  if (!r.denied && r.outcome != 0) ++t.failed;
  if (opt_out) ++t.opt_out_hits;
  if (off_hours) ++t.off_hours;
  if (r.action == "C" || r.action == "U" || r.action == "D") ++t.writes;
  // Bounded: a report never holds more residents per row than the city has (~73,000).
  if (t.residents.size() < 200'000) t.residents.insert(patients.begin(), patients.end());
  if (!r.account_id.empty() && t.accounts.size() < 100'000) t.accounts.insert(r.account_id);
}

void ReportBuilder::add(const storage::AuditRow& row) {
  if (row.recorded < month_.from_ms || row.recorded >= month_.to_ms) return;
  if (!institution_.empty() && row.institution_id != institution_) return;
  storage::AuditRow hidden_as_missing;
  const bool hidden = row.detail.rfind("hidden:", 0) == 0;
  if (institution_view_ && hidden) {
    hidden_as_missing = row;
    hidden_as_missing.denied = false;
    hidden_as_missing.detail.clear();
  }
  const storage::AuditRow& r = institution_view_ && hidden ? hidden_as_missing : row;
  std::vector<std::string> patients;
  if (r.status < 400) {
    std::istringstream in(r.patients);
    for (std::string p; in >> p;) patients.push_back(p);
  }
  const std::int64_t local_min = (r.recorded / 60'000 + offset_) % (24 * 60);
  const bool staff = r.role == "practitioner" || r.role == "org-manager";
  const bool off_hours = staff && (local_min < work_from_ || local_min >= work_to_);
  const bool opt_out = r.detail.rfind("hidden: the resident opted out", 0) == 0;
  count(total_, r, off_hours, opt_out, patients);
  const int day = static_cast<int>((r.recorded - month_.from_ms) / 86'400'000) + 1;
  count(by_day_[day], r, off_hours, opt_out, patients);
  if (!r.institution_id.empty()) count(by_institution_[r.institution_id], r, off_hours, opt_out, patients);
  const std::string user = !r.account_id.empty() ? r.account_id : (!r.client_id.empty() ? "client:" + r.client_id : "");
  if (!user.empty()) {
    Tally& u = by_user_[user];
    count(u, r, off_hours, opt_out, patients);
    if (u.role.empty()) u.role = r.role;
    if (u.institution.empty()) u.institution = r.institution_id;
  }
  if (!r.terminal_id.empty()) count(by_terminal_[r.terminal_id], r, off_hours, opt_out, patients);
  ++by_interaction_[r.interaction.empty() ? "unknown" : r.interaction];
}

namespace {

Json tally_json(const std::string& key_name, const std::string& key, const auto& t) {
  Json j = {{"requests", t.requests},         {"denied", t.denied},       {"failed", t.failed},
            {"writes", t.writes},             {"optOutHits", t.opt_out_hits}, {"offHours", t.off_hours},
            {"residents", t.residents.size()}, {"users", t.accounts.size()}};
  if (!key_name.empty()) j[key_name] = key;
  return j;
}

}  // namespace

Json ReportBuilder::json() const {
  Json out = {{"month", month_.text},
              {"from", resources::format_instant(month_.from_ms)},
              {"to", resources::format_instant(month_.to_ms)},
              {"institution", institution_.empty() ? Json(nullptr) : Json(institution_)},
              {"summary", tally_json("", "", total_)}};
  Json days = Json::array();
  for (const auto& [d, t] : by_day_) days.push_back(tally_json("day", std::to_string(d), t));
  out["days"] = days;
  Json inst = Json::array();
  for (const auto& [k, t] : by_institution_) inst.push_back(tally_json("institution", k, t));
  out["institutions"] = inst;
  std::vector<std::pair<std::string, const Tally*>> users;
  for (const auto& [k, t] : by_user_) users.emplace_back(k, &t);
  std::sort(users.begin(), users.end(), [](const auto& a, const auto& b) {
    return a.second->residents.size() != b.second->residents.size() ? a.second->residents.size() > b.second->residents.size()
                                                                      : a.first < b.first;
  });
  Json u = Json::array();
  for (std::size_t i = 0; i < users.size() && i < 500; ++i) {
    Json j = tally_json("user", users[i].first, *users[i].second);
    j["role"] = users[i].second->role;
    j["userInstitution"] = users[i].second->institution;
    u.push_back(j);
  }
  out["users"] = u;
  out["usersListed"] = u.size();
  out["usersTotal"] = users.size();
  Json terms = Json::array();
  for (const auto& [k, t] : by_terminal_) terms.push_back(tally_json("terminal", k, t));
  out["terminals"] = terms;
  Json inter = Json::object();
  for (const auto& [k, n] : by_interaction_) inter[k] = n;
  out["interactions"] = inter;
  return out;
}

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string text_of(const Json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "—";
  return resources::dump_json(j);
}

std::string num(const Json& j, const char* k) {
  auto it = j.find(k);
  return it == j.end() ? "0" : text_of(*it);
}

// Requests (and denials) per day as SVG bars.
std::string day_chart(const Json& days) {
  std::uint64_t max = 1;
  for (const auto& d : days) max = std::max<std::uint64_t>(max, d.value("requests", std::uint64_t{0}));
  const int w = 22, h = 160, left = 40;
  std::ostringstream s;
  s << "<svg class=\"chart\" role=\"img\" aria-label=\"日別リクエスト数 / requests per day\" width=\"" << left + 31 * w + 10
    << "\" height=\"" << h + 40 << "\" xmlns=\"http://www.w3.org/2000/svg\">";
  s << "<line x1=\"" << left << "\" y1=\"" << h << "\" x2=\"" << left + 31 * w << "\" y2=\"" << h
    << "\" stroke=\"#444\"/>";
  s << "<text x=\"0\" y=\"12\" font-size=\"11\">" << max << "</text><text x=\"0\" y=\"" << h
    << "\" font-size=\"11\">0</text>";
  for (const auto& d : days) {
    const int day = std::stoi(d.value("day", "1"));
    const auto req = d.value("requests", std::uint64_t{0});
    const auto den = d.value("denied", std::uint64_t{0});
    const int bh = static_cast<int>(static_cast<double>(req) / static_cast<double>(max) * (h - 10));
    const int dh = static_cast<int>(static_cast<double>(den) / static_cast<double>(max) * (h - 10));
    const int x = left + (day - 1) * w + 2;
    s << "<rect class=\"bar\" data-day=\"" << day << "\" x=\"" << x << "\" y=\"" << h - bh << "\" width=\"" << w - 4
      << "\" height=\"" << bh << "\" fill=\"#4a78b5\"><title>" << day << "日: " << req << " requests, " << den
      << " denied</title></rect>";
    if (dh > 0)
      s << "<rect class=\"denied\" x=\"" << x << "\" y=\"" << h - dh << "\" width=\"" << w - 4 << "\" height=\"" << dh
        << "\" fill=\"#c0392b\"/>";
    s << "<text x=\"" << x << "\" y=\"" << h + 14 << "\" font-size=\"10\">" << day << "</text>";
  }
  s << "</svg>";
  return s.str();
}

std::string table(const Json& rows, const std::vector<std::pair<const char*, const char*>>& cols) {
  std::ostringstream s;
  s << "<table><thead><tr>";
  for (const auto& [key, label] : cols) s << "<th>" << label << "</th>";
  s << "</tr></thead><tbody>";
  for (const auto& r : rows) {
    s << "<tr>";
    for (const auto& [key, label] : cols) s << "<td>" << esc(num(r, key)) << "</td>";
    s << "</tr>";
  }
  if (rows.empty()) s << "<tr><td colspan=\"" << cols.size() << "\">なし / none</td></tr>";
  s << "</tbody></table>";
  return s.str();
}

}  // namespace

std::string report_html(const Json& r) {
  const bool usage = r.contains("institution") && !r["institution"].is_null();
  const std::string title = usage ? "利用状況報告 / Institution usage report" : "月次アクセスログ点検報告 / Monthly access-log review";
  const Json& sum = r["summary"];
  std::ostringstream s;
  s << "<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>" << esc(title) << " "
    << esc(text_of(r["month"])) << "</title><style>"
    << "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}"
    << "th,td{border:1px solid #999;padding:.25em .6em;text-align:right}th{background:#eef}"
    << "td:first-child{text-align:left}.ok{color:#1a7f37;font-weight:bold}.ng{color:#c0392b;font-weight:bold}"
    << "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}"
    << "</style></head><body>";
  s << "<h1>" << esc(title) << "</h1>";
  s << "<p>笠間市介護・健診クラウドシステム / Kasama care and checkup cloud — 対象月 / month: <b>"
    << esc(text_of(r["month"])) << "</b> (日本時間 / Japan time; " << esc(text_of(r["from"])) << " – "
    << esc(text_of(r["to"])) << " UTC)";
  if (usage) s << " — 利用機関 / institution: <b>" << esc(text_of(r["institution"])) << "</b>";
  s << "</p>";
  if (r.contains("chain")) {
    const Json& c = r["chain"];
    const bool ok = c.value("ok", false);
    s << "<h2>監査記録の改ざん検証 / Audit chain verification</h2><p class=\"" << (ok ? "ok" : "ng") << "\" id=\"chain\">"
      << (ok ? "改ざんは検出されませんでした / the chain holds" : "改ざんを検出しました / the chain is broken") << "</p>";
    s << "<dl><dt>検証件数 / checked</dt><dd>" << esc(num(c, "checked")) << "</dd><dt>末尾 / head</dt><dd>"
      << esc(num(c, "headId")) << "</dd>";
    if (!ok)
      s << "<dt>最初の異常 / first broken</dt><dd>" << esc(num(c, "firstBrokenId")) << ": " << esc(num(c, "problem"))
        << "</dd>";
    s << "</dl>";
  }
  s << "<h2>概要 / Summary</h2><dl id=\"summary\">"
    << "<dt>リクエスト / requests</dt><dd>" << esc(num(sum, "requests")) << "</dd>"
    << "<dt>拒否 / denied</dt><dd>" << esc(num(sum, "denied")) << "</dd>"
    << "<dt>エラー / failed</dt><dd>" << esc(num(sum, "failed")) << "</dd>"
    << "<dt>書き込み / writes</dt><dd>" << esc(num(sum, "writes")) << "</dd>"
    << "<dt>アクセスされた住民 / residents touched</dt><dd>" << esc(num(sum, "residents")) << "</dd>"
    << "<dt>利用者 / users</dt><dd>" << esc(num(sum, "users")) << "</dd>"
    << "<dt>オプトアウトによる非表示 / opt-out hits</dt><dd>" << esc(num(sum, "optOutHits")) << "</dd>"
    << "<dt>時間外アクセス / off-hours requests</dt><dd>" << esc(num(sum, "offHours")) << "</dd></dl>";
  s << "<h2>日別リクエスト数 / Requests per day</h2>" << day_chart(r["days"])
    << "<p>青: リクエスト、赤: 拒否 / blue: requests, red: denied</p>";
  if (!usage) {
    s << "<h2>利用機関別 / Per institution</h2>"
      << table(r["institutions"], {{"institution", "利用機関 / institution"},
                                   {"requests", "リクエスト / requests"},
                                   {"denied", "拒否 / denied"},
                                   {"residents", "住民 / residents"},
                                   {"users", "利用者 / users"},
                                   {"optOutHits", "オプトアウト / opt-out hits"},
                                   {"offHours", "時間外 / off-hours"}});
  }
  s << "<h2>利用者別(アクセス住民数の多い順) / Per user (most residents first)</h2>"
    << table(r["users"], {{"user", "利用者 / user"},
                          {"role", "役割 / role"},
                          {"userInstitution", "機関 / institution"},
                          {"requests", "リクエスト / requests"},
                          {"denied", "拒否 / denied"},
                          {"residents", "住民 / residents"},
                          {"offHours", "時間外 / off-hours"}});
  s << "<h2>端末別 / Per terminal</h2>"
    << table(r["terminals"], {{"terminal", "端末 ID / terminal"}, {"requests", "リクエスト / requests"}, {"denied", "拒否 / denied"}, {"residents", "住民 / residents"}});
  Json inter = Json::array();
  for (const auto& [k, v] : r["interactions"].items()) inter.push_back({{"interaction", k}, {"requests", v}});
  s << "<h2>操作別 / Per interaction</h2>" << table(inter, {{"interaction", "操作 / interaction"}, {"requests", "件数 / count"}});
  if (r.contains("incidents")) {
    s << "<h2>異常アクセスとインシデント / Abnormal access and incidents</h2>"
      << table(r["incidents"], {{"id", "番号 / no."},
                                {"level", "レベル / level"},
                                {"rule", "規則 / rule"},
                                {"action", "措置 / action"},
                                {"account", "利用者 / account"},
                                {"terminal", "端末 / terminal"},
                                {"detail", "内容 / detail"},
                                {"state", "状態 / state"}});
  }
  s << "<p>作成 / generated: " << esc(text_of(r.value("generated", Json(nullptr)))) << "</p></body></html>";
  return s.str();
}

}  // namespace kasama::audit
