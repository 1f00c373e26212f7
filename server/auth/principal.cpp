#include "server/auth/principal.hpp"

namespace kasama::auth {

Principal internal_principal() {
  Principal p;
  p.kind = "internal";
  p.role = "system";
  p.scope_text = "system/*.cruds";
  p.scopes = ScopeSet::parse(p.scope_text);
  return p;
}

}  // namespace kasama::auth
