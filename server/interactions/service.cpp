#include "server/interactions/service.hpp"

#include "resources/fhir_time.hpp"
#include "server/access/policy.hpp"
#include "server/auth/auth_service.hpp"
#include "server/interactions/authorize.hpp"
#include "server/interactions/support.hpp"
#include "server/ops/reindex.hpp"

namespace kasama::server {

void bind_caller(Context& ctx, const RestRequest& req) {
  // What the caller may see and write (server/access), decided once per request and context.
  if (req.principal && !ctx.access)
    ctx.access = access::filter_for(*req.principal, ctx.svc.optouts, resources::now_millis());
  if (req.principal) ctx.principal = req.principal.get();
  if (req.audit) ctx.audit_notes = req.audit;
}

RestResponse FhirService::dispatch(Context& ctx, const RestRequest& req, const Route& route_in) {
  ctx.base_url = req.base_url;
  bind_caller(ctx, req);
  Route r = route_in;
  // Every interaction, also each entry of a batch or transaction (a transaction's entries were
  // all checked before any ran).
  if (!req.authorized) authorize(ctx, req, r);
  if (r.type == "AuditEvent") {
    switch (r.kind) {
      case Kind::kRead:
        return audit_event_read(ctx, req, r);
      case Kind::kSearchType:
        return audit_event_search(ctx, req, r);
      case Kind::kAuditVerify:
        return audit_verify(ctx, req, r);
      default: {
        FhirError e(405, "not-supported",
                    "監査記録はサーバーだけが書き込みます / AuditEvents are written by the server only; they can be "
                    "read, searched and verified");
        e.allow = "GET, HEAD";
        throw e;
      }
    }
  }
  switch (r.kind) {
    case Kind::kCapabilities:
      return capabilities(ctx, req, r);
    case Kind::kRead:
      return read(ctx, req, r);
    case Kind::kVread:
      return vread(ctx, req, r);
    case Kind::kCreate:
      return create(ctx, req, r);
    case Kind::kUpdate:
      return update(ctx, req, r);
    case Kind::kConditionalUpdate:
      return conditional_update(ctx, req, r);
    case Kind::kPatch:
      return patch(ctx, req, r);
    case Kind::kConditionalPatch:
      return conditional_patch(ctx, req, r);
    case Kind::kDelete:
      return remove(ctx, req, r);
    case Kind::kConditionalDelete:
      return conditional_remove(ctx, req, r);
    case Kind::kHistoryInstance:
    case Kind::kHistoryType:
    case Kind::kHistorySystem:
      return history(ctx, req, r);
    case Kind::kSearchType:
      return search_type(ctx, req, r);
    case Kind::kSearchSystem:
      return search_system(ctx, req, r);
    case Kind::kSearchCompartment:
      return search_compartment(ctx, req, r);
    case Kind::kEverything:
      return patient_everything(ctx, req, r);
    case Kind::kReindex:
      return reindex_operation(ctx, req, r);
    case Kind::kBatchOrTransaction:
      return process_bundle(*this, req);
    case Kind::kAuditVerify:
      break;
  }
  throw FhirError(500, "exception", "unrouted interaction");
}

RestResponse in_transaction(Services& svc, bool transaction_bundle, const std::function<RestResponse(Context&)>& body,
                            const RestRequest* audited) {
  const bool audit_here = audited && audited->audit && svc.audit && svc.audit->enabled();
  constexpr int kAttempts = 8;
  for (int attempt = 1;; ++attempt) {
    Context ctx(svc);
    ctx.in_transaction_bundle = transaction_bundle;
    try {
      ctx.begin();
      RestResponse resp = body(ctx);
      check_integrity(ctx);
      std::optional<storage::AuditRow> row;
      if (audit_here) {
        // The write and its audit record commit together: neither without the other.
        ctx.audit_slot = svc.audit->reserve();
        row = audit_row(*audited, resp);
        svc.audit->insert(ctx.audit_slot, ctx.db(), *row);
      }
      ctx.commit();
      if (audit_here) {
        audited->audit->written = true;
        handle_anomalies(svc, *row);  // the write stands; later requests are refused
      }
      return resp;
    } catch (const RetryTransaction&) {
      ctx.rollback();
      if (attempt == kAttempts) {
        throw FhirError(409, "transient", "The request conflicted with concurrent requests; retry it");
      }
    } catch (const storage::DbError& e) {
      ctx.rollback();
      if (!e.deadlock_or_timeout() || attempt == kAttempts) throw;
    } catch (...) {
      ctx.rollback();
      throw;
    }
  }
}

RestResponse FhirService::run_write(const RestRequest& req, const Route& r) {
  return in_transaction(
      svc_, false, [&](Context& ctx) { return dispatch(ctx, req, r); }, &req);
}

RestResponse FhirService::run_read(const RestRequest& req, const Route& r) {
  Context ctx(svc_);
  return dispatch(ctx, req, r);
}

namespace {

[[noreturn]] void unauthorized(const std::string& error, const std::string& why) {
  FhirError e(401, "login", why);
  e.headers.emplace_back("WWW-Authenticate", error.empty() ? "Bearer realm=\"kasama\""
                                                           : "Bearer realm=\"kasama\", error=\"" + error + "\"");
  throw e;
}

}  // namespace

void FhirService::authenticate(RestRequest& req) {
  if (!svc_.auth) throw FhirError(500, "exception", "no authentication service");
  const std::string* h = req.header("authorization");
  if (!h) unauthorized("", "認証が必要です / a bearer token is required (Authorization: Bearer …)");
  constexpr std::string_view kBearer = "Bearer ";
  if (h->size() <= kBearer.size() || !std::equal(kBearer.begin(), kBearer.end(), h->begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      })) {
    unauthorized("invalid_request", "Authorization must be a Bearer token");
  }
  auto p = svc_.auth->check_token(h->substr(kBearer.size()), "access");
  if (!p) {
    unauthorized(
        "invalid_token",
        "トークンが無効です(期限切れ・失効・利用停止) / the token is unknown, expired, idle too long, revoked, "
        "or its account or terminal is no longer active");
  }
  req.principal = std::move(p);
}

RestResponse FhirService::handle(RestRequest& req) {
  const Route r = route(req);
  if (req.audit) {
    req.audit->interaction = audit_interaction(r.kind);
    req.audit->type = r.type;
    req.audit->id = r.id;
  }
  // Only the CapabilityStatement is public; everything else needs a valid access token.
  // The audit record is written on the way out (FhirService::audit).
  if (r.kind != Kind::kCapabilities && !req.principal) {
    try {
      authenticate(req);
    } catch (FhirError& e) {
      if (req.audit) {
        req.audit->denied = true;
        req.audit->detail = e.what();
      }
      throw;
    }
  }
  if (r.kind == Kind::kBatchOrTransaction) return process_bundle(*this, req);
  // AuditEvent writes are refused in dispatch; they must not open a write transaction.
  return is_write(r.kind) && r.type != "AuditEvent" ? run_write(req, r) : run_read(req, r);
}

}  // namespace kasama::server
