#include "server/ops/demo_data.hpp"
#include "server/ops/reindex.hpp"

#include <fstream>
#include <sstream>

#include "resources/paths.hpp"
#include "server/log.hpp"

namespace kasama::server {

int load_demo_data(FhirService& service) {
  auto& svc = service.services();
  {
    auto conn = svc.pool.acquire();
    auto rs = conn->query("SELECT COUNT(*) FROM resource WHERE tenant_id=?", {std::int64_t{svc.config.tenant}});
    if (rs.integer(0, 0) > 0) return 0;
  }
  const std::string path = resources::conformance_dir() + "/demo/kasama-demo-bundle.json";
  std::ifstream in(path);
  if (!in) {
    log_warn("no demo data at " + path);
    return 0;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  RestRequest req;
  req.method = "POST";
  req.body = ss.str();
  req.base_url = default_base_url(svc.config);
  req.request_id = "demo-data";
  req.principal = std::make_shared<const auth::Principal>(auth::internal_principal());
  RestResponse resp = process_bundle(service, req);
  auto parsed = resources::parse_json(resp.body);
  return parsed.ok && parsed.value.contains("entry") ? static_cast<int>(parsed.value["entry"].size()) : 0;
}

}  // namespace kasama::server
