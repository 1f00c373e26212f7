#include "server/interactions/service.hpp"

#include "server/interactions/support.hpp"
#include "server/ops/reindex.hpp"

namespace kasama::server {

RestResponse FhirService::dispatch(Context& ctx, const RestRequest& req, const Route& r) {
  ctx.base_url = req.base_url;
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
  }
  throw FhirError(500, "exception", "unrouted interaction");
}

RestResponse in_transaction(Services& svc, bool transaction_bundle, const std::function<RestResponse(Context&)>& body) {
  constexpr int kAttempts = 8;
  for (int attempt = 1;; ++attempt) {
    Context ctx(svc);
    ctx.in_transaction_bundle = transaction_bundle;
    try {
      ctx.begin();
      RestResponse resp = body(ctx);
      check_integrity(ctx);
      ctx.commit();
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
  return in_transaction(svc_, false, [&](Context& ctx) { return dispatch(ctx, req, r); });
}

RestResponse FhirService::run_read(const RestRequest& req, const Route& r) {
  Context ctx(svc_);
  return dispatch(ctx, req, r);
}

RestResponse FhirService::handle(RestRequest& req) {
  const Route r = route(req);
  // Later: the principal (auth) and the access decision come in here, before dispatch;
  // the audit record is written on the way out.
  if (r.kind == Kind::kBatchOrTransaction) return process_bundle(*this, req);
  return is_write(r.kind) ? run_write(req, r) : run_read(req, r);
}

}  // namespace kasama::server
