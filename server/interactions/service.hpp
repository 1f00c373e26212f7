#pragma once
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

 private:
  // The bearer token → req.principal; 401 with WWW-Authenticate when missing or invalid.
  void authenticate(RestRequest& req);
  Services& svc_;
};

RestResponse process_bundle(FhirService& service, const RestRequest& req);

// Runs body in a fresh Context inside a database transaction, checks referential integrity
// and commits; runs it again from the start on deadlock or RetryTransaction.
RestResponse in_transaction(Services& svc, bool transaction_bundle, const std::function<RestResponse(Context&)>& body);

}  // namespace kasama::server
