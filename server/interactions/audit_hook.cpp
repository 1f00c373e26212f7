// Each FHIR request's audit record: who (account, role, institution, client and its
// terminal ID, network address), what (interaction, method, path and query), when, whose
// data (every Patient the request or its answer touched) and the outcome, denials and
// failures included. Writes commit theirs in their own transaction (service.cpp); every
// other request's record is appended here before its response leaves.
#include <chrono>
#include <set>

#include "resources/json.hpp"
#include "server/audit/record.hpp"
#include "server/auth/auth_service.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/service.hpp"
#include "server/log.hpp"

namespace kasama::server {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string path_and_query(const RestRequest& req) {
  std::string out = req.path();
  // A registration certificate's one-time token is a secret: not in the trail.
  if (out.rfind("admin/certificates/", 0) == 0) out = "admin/certificates/…";
  // Below /auth and /admin only parameters known to hold no secret keep their values (a
  // client might put a password or a client secret in a query string).
  const bool account_path = out.rfind("auth", 0) == 0 || out.rfind("admin", 0) == 0;
  static const std::set<std::string> kPlain = {"response_type", "client_id",  "redirect_uri",          "scope",
                                               "aud",           "state",      "code_challenge_method", "next",
                                               "role",          "institution"};
  for (std::size_t i = 0; i < req.params.size(); ++i) {
    out += i ? '&' : '?';
    out += req.params[i].first;
    out += '=';
    out += !account_path || kPlain.count(req.params[i].first) ? req.params[i].second : std::string("…");
  }
  return std::string(resources::utf8_prefix(resources::sanitize_utf8(out), 2000));
}

// For the ASCII columns: anything else becomes '?', and the length is bounded.
using resources::printable_ascii;

}  // namespace

storage::AuditRow audit_row(const RestRequest& req, const RestResponse& resp) {
  storage::AuditRow row;
  row.recorded = now_ms();
  row.request_id = printable_ascii(req.request_id, 64);
  const AuditNotes* notes = req.audit;
  // Routed already (FhirService::handle) unless it is a batch entry or failed before that.
  std::string type, id;
  if (notes && !notes->interaction.empty()) {
    row.interaction = notes->interaction;
    type = notes->type;
    id = notes->id;
  } else {
    try {
      const Route r = route(req);
      row.interaction = audit_interaction(r.kind);
      type = r.type;
      id = r.id;
    } catch (const std::exception&) {
      row.interaction = "unknown";
    }
  }
  row.method = printable_ascii(req.method, 8);
  row.path = path_and_query(req);
  row.action = audit::action_of(row.interaction, row.method);
  row.status = resp.status;
  row.outcome = resp.status < 400 ? 0 : resp.status < 500 ? 4 : 8;
  row.denied = (notes && notes->denied) || resp.status == 401 || resp.status == 403;
  // Diagnostics may quote what the client sent: made valid UTF-8 before MariaDB sees it.
  if (notes) row.detail = std::string(resources::utf8_prefix(resources::sanitize_utf8(notes->detail), 1000));
  const auth::Principal* p = req.principal.get();
  if (!p && notes) p = notes->principal.get();
  if (p) {
    row.account_id = printable_ascii(p->account_id, 64);
    row.role = printable_ascii(p->role, 16);
    // A terminal's own token has no account: its institution is the terminal's.
    row.institution_id = printable_ascii(p->institution_id.empty() ? p->access_institution : p->institution_id, 64);
    row.fhir_user = printable_ascii(p->fhir_user, 200);
    row.client_id = printable_ascii(p->client_id, 64);
    row.terminal_id = printable_ascii(p->terminal_id, 64);
    row.patient_context = printable_ascii(p->patient, 64);
  }
  row.peer = printable_ascii(req.peer, 64);

  audit::Touched touched;
  if (!type.empty() && !id.empty()) touched.entity(type, id, resp.status < 400);
  if (resp.status < 400) {
    if (!resp.location.empty()) audit::scan_body("{\"location\":\"" + resp.location + "\"}", touched);
    audit::scan_body(resp.body, touched);
    // What a write sent: the resource (or a transaction's entries) and whose it is.
    if (req.method != "GET" && req.method != "HEAD" && !req.body.empty()) audit::scan_body(req.body, touched);
  }
  row.patients = touched.patients_text();
  row.entities = touched.entities_text();
  if (touched.truncated) row.detail += row.detail.empty() ? "(touched list truncated)" : " (touched list truncated)";
  return row;
}

std::optional<std::int64_t> handle_anomalies(Services& svc, const storage::AuditRow& row) {
  if (!svc.anomaly) return std::nullopt;
  std::optional<std::int64_t> suspended_here;
  for (const auto& h : svc.anomaly->observe(row)) {
    if (!svc.auth) continue;
    storage::IncidentRow inc;
    inc.level = h.level;
    inc.source = "anomaly";
    inc.rule = h.rule;
    inc.account_id = h.account_id;
    // A user's hit suspends the user; a terminal's own token, the terminal.
    inc.client_id = h.client_id;
    inc.terminal_id = h.terminal_id;
    inc.institution_id = h.institution_id;
    inc.detail = h.detail;
    try {
      const std::int64_t pk = svc.auth->record_incident(inc, h.suspend);
      if (h.suspend) suspended_here = pk;
    } catch (const std::exception& e) {
      log_error("abnormal access " + h.rule + " for " + h.subject + ": the incident could not be recorded: " + e.what());
    }
  }
  return suspended_here;
}

void FhirService::audit(RestRequest& req, RestResponse& resp) {
  if (!req.audit || req.audit->written || !svc_.audit || !svc_.audit->enabled()) return;
  if (!req.principal && svc_.auth) {
    const std::string* h = req.header("authorization");
    if (h && h->size() > 7 && (h->compare(0, 7, "Bearer ") == 0 || h->compare(0, 7, "bearer ") == 0)) {
      try {
        req.principal = svc_.auth->check_token(h->substr(7), "access");
      } catch (const std::exception&) {
      }
    }
  }
  try {
    storage::AuditRow row = audit_row(req, resp);
    if (svc_.anomaly) {
      // a hit that suspends this request's account or terminal also refuses this very
      // request, so that the request that crossed the threshold gives nothing away.
      if (auto incident = handle_anomalies(svc_, row); incident && resp.status < 400) {
        resp = RestResponse{};
        resp.status = 403;
        resp.body_is_outcome = true;
        resp.body = outcome_json(
            "error", "suspended",
            "異常なアクセスを検知したため利用を停止しました。運営管理責任者にお問い合わせください / abnormal access "
            "was detected (incident " + std::to_string(*incident) +
                "): the account or terminal is suspended; contact the operations manager");
        req.audit->denied = true;
        req.audit->detail = "abnormal access: incident " + std::to_string(*incident);
        row = audit_row(req, resp);
      }
    }
    svc_.audit->append(row);
  } catch (const std::exception& e) {
    log_error("request " + req.request_id + ": " + e.what());
    resp = RestResponse{};
    resp.status = 503;
    resp.body_is_outcome = true;
    resp.body =
        outcome_json("error", "transient",
                     "監査記録を書き込めないため応答できません。しばらくしてから再試行してください / The audit "
                     "record could not be written, so the request cannot be answered; retry later (request id " +
                         req.request_id + ")");
  }
}

}  // namespace kasama::server
