#pragma once
#include <optional>
// The one place every FHIR request passes through, before and after storage: routing,
// the transaction around each write (retried on deadlock or a lost conditional-create
// race), batch and transaction Bundles. Access decisions and audit records hook in here.
#include <functional>

#include "server/interactions/context.hpp"
#include "server/interactions/interactions.hpp"
#include "server/interactions/rest.hpp"

namespace kasama::server {

class FhirService {
 public:
  explicit FhirService(Services& services) : svc_(services) {}

  RestResponse handle(RestRequest& req);

  // One interaction inside ctx (its transaction, if any, is the caller's).
  RestResponse dispatch(Context& ctx, const RestRequest& req, const Route& r);
  // A single write in its own transaction, retried as needed.
  RestResponse run_write(const RestRequest& req, const Route& r);
  // A read outside any transaction.
  RestResponse run_read(const RestRequest& req, const Route& r);

  Services& services() { return svc_; }

  // The request's audit record, after its response was made: appended, and waited
  // for, unless the write's transaction holds it already. When it cannot be written the
  // response becomes a 503: nothing is answered unaudited. A request refused before its token
  // was looked at (a malformed path, an unknown type, 406, 415) is still recorded under the
  // token's account and terminal when the token is valid.
  void audit(RestRequest& req, RestResponse& resp);

 private:
  // The bearer token → req.principal; 401 with WWW-Authenticate when missing or invalid.
  void authenticate(RestRequest& req);
  Services& svc_;
};

RestResponse process_bundle(FhirService& service, const RestRequest& req);

// Binds the request's caller to a context: the access filter (server/access), the principal
// and the audit notes. dispatch does it; a transaction does it before resolving anything.
void bind_caller(Context& ctx, const RestRequest& req);

// Runs body in a fresh Context inside a database transaction, checks referential integrity
// and commits; runs it again from the start on deadlock or RetryTransaction. With audited,
// that request's audit record is written in the same transaction.
RestResponse in_transaction(Services& svc, bool transaction_bundle, const std::function<RestResponse(Context&)>& body,
                            const RestRequest* audited = nullptr);

// The audit record of a request with its outcome (interactions/audit_hook.cpp).
storage::AuditRow audit_row(const RestRequest& req, const RestResponse& resp);
// feeds one audit record to the abnormal-access rules and records the incidents it
// causes (suspending as the rule says); the incident number when this record's own account
// or terminal was suspended.
std::optional<std::int64_t> handle_anomalies(Services& svc, const storage::AuditRow& row);

}  // namespace kasama::server
