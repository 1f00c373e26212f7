#include "server/config.hpp"

#include <cstdlib>
#include <stdexcept>

namespace kasama::server {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

unsigned long number(const char* name, unsigned long def, unsigned long min, unsigned long max) {
  const char* v = env(name);
  if (!v) return def;
  char* end = nullptr;
  unsigned long n = std::strtoul(v, &end, 10);
  if (*end == 'k' || *end == 'K')
    n <<= 10, ++end;
  else if (*end == 'm' || *end == 'M')
    n <<= 20, ++end;
  if (*end || n < min || n > max) {
    throw std::invalid_argument(std::string(name) + " must be a number from " + std::to_string(min) + " to " +
                                std::to_string(max));
  }
  return n;
}

}  // namespace

Config Config::from_env() {
  Config c;
  c.port = static_cast<unsigned>(number("KASAMA_PORT", c.port, 1, 65535));
  if (auto v = env("KASAMA_BIND")) c.bind = v;
  if (auto v = env("KASAMA_DATA_DIR")) c.data_dir = v;
  if (auto v = env("KASAMA_ANOMALY_RULES")) c.anomaly_rules = v;
  if (auto v = env("KASAMA_DB_MAINT")) c.db_maint_url = v;
  if (auto v = env("KASAMA_DB")) c.db_url = v;
  if (auto v = env("KASAMA_DB_ADMIN")) c.db_admin_url = v;
  if (auto v = env("KASAMA_DB_BUFFER_POOL")) c.db_buffer_pool = v;
  if (auto v = env("KASAMA_BASE_URL")) {
    c.base_url = v;
    while (!c.base_url.empty() && c.base_url.back() == '/') c.base_url.pop_back();
  }
  if (auto v = env("KASAMA_TLS_CERT")) c.tls_cert = v;
  if (auto v = env("KASAMA_TLS_KEY")) c.tls_key = v;
  c.threads = static_cast<unsigned>(number("KASAMA_THREADS", c.threads, 2, 1024));
  c.db_pool = static_cast<unsigned>(number("KASAMA_DB_POOL", c.db_pool, 1, 250));
  c.max_body = number("KASAMA_MAX_BODY", c.max_body, 1024, 1UL << 30);
  c.cache_bytes = number("KASAMA_CACHE_BYTES", c.cache_bytes, 0, 1UL << 40);
  if (auto v = env("KASAMA_REF_INTEGRITY")) {
    std::string s = v;
    if (s == "off")
      c.ref_integrity = RefIntegrity::kOff;
    else if (s == "delete")
      c.ref_integrity = RefIntegrity::kDelete;
    else if (s == "strict")
      c.ref_integrity = RefIntegrity::kStrict;
    else
      throw std::invalid_argument("KASAMA_REF_INTEGRITY must be off, delete or strict");
  }
  c.slow_search_ms = static_cast<unsigned>(number("KASAMA_SLOW_SEARCH_MS", c.slow_search_ms, 0, 3'600'000));
  if (auto v = env("KASAMA_DEMO_DATA")) {
    const std::string d = v;
    if (d == "0" || d == "off") {
      c.demo_data = DemoData::kOff;
    } else if (d == "accounts") {
      c.demo_data = DemoData::kAccounts;
    } else if (d == "1" || d == "on") {
      c.demo_data = DemoData::kAll;
    } else {
      throw std::invalid_argument("KASAMA_DEMO_DATA must be 1, accounts or 0");
    }
  }
  // idle sessions lock after at most 15 minutes; shorter is allowed (tests use seconds).
  c.idle_timeout_s = static_cast<unsigned>(number("KASAMA_IDLE_TIMEOUT", c.idle_timeout_s, 1, 900));
  c.audit_retention_days =
      static_cast<unsigned>(number("KASAMA_AUDIT_RETENTION_DAYS", c.audit_retention_days, 0, 100 * 366));
  c.access_token_s = static_cast<unsigned>(number("KASAMA_ACCESS_TOKEN_LIFETIME", c.access_token_s, 1, 86400));
  c.backend_token_s = static_cast<unsigned>(number("KASAMA_BACKEND_TOKEN_LIFETIME", c.backend_token_s, 1, 3600));
  c.token_cache_ms = static_cast<unsigned>(number("KASAMA_TOKEN_CACHE_MS", c.token_cache_ms, 0, 60000));
  if (auto v = env("KASAMA_AUDIT")) {
    const std::string a = v;
    if (a == "off" || a == "0") {
      if (!c.db_url.empty())
        throw std::invalid_argument("KASAMA_AUDIT=off is for benchmarks on the embedded database only");
      c.audit = false;
    } else if (a != "on" && a != "1") {
      throw std::invalid_argument("KASAMA_AUDIT must be on or off");
    }
  }
  if (auto v = env("KASAMA_AUDIT_SYNC")) {
    const std::string a = v;
    if (a == "write") {
      c.audit_sync = false;
    } else if (a != "fdatasync") {
      throw std::invalid_argument("KASAMA_AUDIT_SYNC must be fdatasync or write");
    }
  }
  if (auto v = env("KASAMA_AUDIT_GRANTS")) {
    const std::string a = v;
    if (a == "unchecked") {
      c.audit_grants_checked = false;
    } else if (a != "checked") {
      throw std::invalid_argument("KASAMA_AUDIT_GRANTS must be checked or unchecked");
    }
  }
  return c;
}

}  // namespace kasama::server
