#pragma once
// The HTTPS endpoints of identity, outside the FHIR base: OAuth 2.0 / SMART (/auth/…), the
// account and institution API for the console and the CLI (/admin/…, JSON), and SMART
// discovery (/fhir/.well-known/…). Requests and responses are the protocol-neutral
// RestRequest/RestResponse the http layer builds; the endpoints are listed in docs/auth.md.
#include <string_view>

#include "server/auth/auth_service.hpp"
#include "server/interactions/service.hpp"

namespace kasama::server {

class AuthApi {
 public:
  AuthApi(auth::AuthService& auth, FhirService& fhir) : auth_(auth), fhir_(fhir) {}

  // Whether a request path (without the query) is one of ours.
  static bool owns(std::string_view path);
  // req.segments: the whole path's segments; req.params: the query; req.origin set.
  RestResponse handle(RestRequest& req);

 private:
  RestResponse smart_configuration(const RestRequest& req) const;
  RestResponse openid_configuration(const RestRequest& req) const;
  RestResponse token(const RestRequest& req);
  RestResponse introspect(const RestRequest& req);
  RestResponse revoke(const RestRequest& req);
  RestResponse authorize(const RestRequest& req);
  RestResponse login(const RestRequest& req);
  RestResponse password(const RestRequest& req);
  RestResponse totp(const RestRequest& req, bool confirm);
  RestResponse logout(const RestRequest& req);
  RestResponse admin(RestRequest& req);
  RestResponse certificate(const std::string& token);
  // After an institution decision: its Organization resource, active while approved.
  void sync_organization(const RestRequest& req, const Json& institution);
  // The secretariat records and withdraws residents' opt-outs as Consents.
  RestResponse opt_outs(const RestRequest& req, const auth::Principal& by);
  // The monthly access-log review and the institution usage report: JSON or HTML.
  RestResponse reports(const RestRequest& req, const auth::Principal& by);
  RestResponse fhir_as_server(const RestRequest& req, const std::string& method, std::vector<std::string> segments,
                              const std::string& body, std::vector<std::pair<std::string, std::string>> params = {});

  std::optional<auth::Principal> session(const RestRequest& req, bool cookie_allowed);

  auth::AuthService& auth_;
  FhirService& fhir_;
};

}  // namespace kasama::server
