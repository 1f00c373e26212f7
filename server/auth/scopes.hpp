#pragma once
// SMART on FHIR scopes, v1 (`patient/Observation.read`, `.write`, `.*`) and v2
// (`patient/Observation.rs`, `user/*.cruds`, `system/...`), and the rule that a grant only
// ever narrows: what a token carries is the intersection of what was asked for and what the
// role (or, for backend services, the client registration) allows.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kasama::auth {

enum Perm : unsigned { kCreate = 1, kRead = 2, kUpdate = 4, kDelete = 8, kSearch = 16, kAllPerms = 31 };

enum class ScopeContext { kPatient, kUser, kSystem };

struct ResourceScope {
  ScopeContext context = ScopeContext::kUser;
  std::string type;  // a resource type or "*"
  unsigned perms = 0;
  std::string text;  // as written
};

// One resource scope, or nullopt when text is not one (openid, launch/patient, …) or is
// malformed. Granular v2 scopes (`…rs?category=…`) are not resource scopes here: they are
// never granted, so a client asking for one gets less, never more.
std::optional<ResourceScope> parse_resource_scope(std::string_view text);
std::string to_text(const ResourceScope& s);  // v2 form

struct ScopeSet {
  std::vector<ResourceScope> resources;
  bool openid = false, fhir_user = false, launch_patient = false, launch = false, offline_access = false,
       online_access = false, profile = false;
  std::vector<std::string> unknown;  // asked for, not understood (never granted)

  static ScopeSet parse(std::string_view space_separated);
  std::string text() const;  // what is granted, space separated, in a stable order
  bool empty() const;
  // True when some scope of the given context allows perm on type.
  bool permits(ScopeContext context, std::string_view type, unsigned perm) const;
  // Any context.
  bool permits_any(std::string_view type, unsigned perm) const;
  bool has_context(ScopeContext context) const;
};

// requested ∩ ceiling: resource scopes intersected type-wise and permission-wise (a v1
// scope that survives unchanged keeps its v1 text); the other scopes are kept only where
// the ceiling has them too.
ScopeSet narrow(const ScopeSet& requested, const ScopeSet& ceiling);

// True when every scope of `inner` is covered by `outer` (refresh must never widen).
bool covered_by(const ScopeSet& inner, const ScopeSet& outer);

}  // namespace kasama::auth
