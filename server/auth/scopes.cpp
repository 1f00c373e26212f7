#include "server/auth/scopes.hpp"

#include <algorithm>

#include "resources/type_model.hpp"

namespace kasama::auth {

namespace {

std::optional<unsigned> v2_perms(std::string_view letters) {
  static constexpr std::string_view kOrder = "cruds";
  unsigned perms = 0;
  std::size_t at = 0;
  for (char c : letters) {
    const std::size_t i = kOrder.find(c, at);
    if (i == std::string_view::npos) return std::nullopt;  // unknown, repeated or out of order
    perms |= 1U << i;
    at = i + 1;
  }
  if (perms == 0) return std::nullopt;
  return perms;
}

std::string_view context_text(ScopeContext c) {
  switch (c) {
    case ScopeContext::kPatient:
      return "patient";
    case ScopeContext::kUser:
      return "user";
    case ScopeContext::kSystem:
      return "system";
  }
  return "user";
}

}  // namespace

std::optional<ResourceScope> parse_resource_scope(std::string_view text) {
  const auto slash = text.find('/');
  const auto dot = text.rfind('.');
  if (slash == std::string_view::npos || dot == std::string_view::npos || dot < slash) return std::nullopt;
  ResourceScope s;
  const std::string_view ctx = text.substr(0, slash);
  if (ctx == "patient") {
    s.context = ScopeContext::kPatient;
  } else if (ctx == "user") {
    s.context = ScopeContext::kUser;
  } else if (ctx == "system") {
    s.context = ScopeContext::kSystem;
  } else {
    return std::nullopt;
  }
  s.type = std::string(text.substr(slash + 1, dot - slash - 1));
  if (s.type != "*" && !resources::TypeModel::instance().is_resource_type(s.type)) return std::nullopt;
  const std::string_view perm = text.substr(dot + 1);
  if (perm.find('?') != std::string_view::npos) return std::nullopt;  // granular: never granted
  if (perm == "read") {
    s.perms = kRead | kSearch;
  } else if (perm == "write") {
    s.perms = kCreate | kUpdate | kDelete;
  } else if (perm == "*") {
    s.perms = kAllPerms;
  } else if (auto p = v2_perms(perm)) {
    s.perms = *p;
  } else {
    return std::nullopt;
  }
  s.text = std::string(text);
  return s;
}

std::string to_text(const ResourceScope& s) {
  std::string out(context_text(s.context));
  out += '/';
  out += s.type;
  out += '.';
  static constexpr std::string_view kOrder = "cruds";
  for (std::size_t i = 0; i < kOrder.size(); ++i) {
    if (s.perms & (1U << i)) out += kOrder[i];
  }
  return out;
}

ScopeSet ScopeSet::parse(std::string_view text) {
  ScopeSet set;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ') ++j;
    if (j > i) {
      const std::string_view one = text.substr(i, j - i);
      if (one == "openid") {
        set.openid = true;
      } else if (one == "fhirUser") {
        set.fhir_user = true;
      } else if (one == "launch/patient") {
        set.launch_patient = true;
      } else if (one == "launch") {
        set.launch = true;
      } else if (one == "offline_access") {
        set.offline_access = true;
      } else if (one == "online_access") {
        set.online_access = true;
      } else if (one == "profile") {
        set.profile = true;
      } else if (auto r = parse_resource_scope(one)) {
        set.resources.push_back(std::move(*r));
      } else {
        set.unknown.emplace_back(one);
      }
    }
    i = j;
  }
  return set;
}

std::string ScopeSet::text() const {
  std::vector<std::string> parts;
  if (launch_patient) parts.emplace_back("launch/patient");
  if (launch) parts.emplace_back("launch");
  if (openid) parts.emplace_back("openid");
  if (fhir_user) parts.emplace_back("fhirUser");
  if (profile) parts.emplace_back("profile");
  if (offline_access) parts.emplace_back("offline_access");
  if (online_access) parts.emplace_back("online_access");
  for (const auto& r : resources) {
    const std::string t = r.text.empty() ? to_text(r) : r.text;
    if (std::find(parts.begin(), parts.end(), t) == parts.end()) parts.push_back(t);
  }
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ' ';
    out += p;
  }
  return out;
}

bool ScopeSet::empty() const {
  return resources.empty() && !openid && !fhir_user && !launch_patient && !launch && !offline_access &&
         !online_access && !profile;
}

bool ScopeSet::permits(ScopeContext context, std::string_view type, unsigned perm) const {
  for (const auto& r : resources) {
    if (r.context == context && (r.type == "*" || r.type == type) && (r.perms & perm) == perm) return true;
  }
  return false;
}

bool ScopeSet::permits_any(std::string_view type, unsigned perm) const {
  return permits(ScopeContext::kPatient, type, perm) || permits(ScopeContext::kUser, type, perm) ||
         permits(ScopeContext::kSystem, type, perm);
}

bool ScopeSet::has_context(ScopeContext context) const {
  return std::any_of(resources.begin(), resources.end(), [&](const ResourceScope& r) { return r.context == context; });
}

ScopeSet narrow(const ScopeSet& requested, const ScopeSet& ceiling) {
  ScopeSet out;
  out.openid = requested.openid && ceiling.openid;
  out.fhir_user = requested.fhir_user && ceiling.fhir_user;
  out.launch_patient = requested.launch_patient && ceiling.launch_patient;
  out.launch = requested.launch && ceiling.launch;
  out.offline_access = requested.offline_access && ceiling.offline_access;
  out.online_access = requested.online_access && ceiling.online_access;
  out.profile = requested.profile && ceiling.profile;
  for (const auto& want : requested.resources) {
    for (const auto& may : ceiling.resources) {
      if (want.context != may.context) continue;
      ResourceScope s;
      s.context = want.context;
      if (may.type == "*" || may.type == want.type) {
        s.type = want.type;
      } else if (want.type == "*") {
        s.type = may.type;
      } else {
        continue;
      }
      s.perms = want.perms & may.perms;
      if (s.perms == 0) continue;
      s.text = (s.type == want.type && s.perms == want.perms) ? want.text : to_text(s);
      out.resources.push_back(std::move(s));
    }
  }
  return out;
}

bool covered_by(const ScopeSet& inner, const ScopeSet& outer) {
  if ((inner.openid && !outer.openid) || (inner.fhir_user && !outer.fhir_user) ||
      (inner.launch_patient && !outer.launch_patient) || (inner.launch && !outer.launch) ||
      (inner.offline_access && !outer.offline_access) || (inner.online_access && !outer.online_access) ||
      (inner.profile && !outer.profile)) {
    return false;
  }
  for (const auto& r : inner.resources) {
    const bool ok = std::any_of(outer.resources.begin(), outer.resources.end(), [&](const ResourceScope& o) {
      return o.context == r.context && (o.type == "*" || o.type == r.type) && (r.perms & ~o.perms) == 0;
    });
    if (!ok) return false;
  }
  return true;
}

}  // namespace kasama::auth
