// kasama-server: the FHIR server process. On its embedded default it runs a private
// MariaDB under <data dir>/mariadb; with KASAMA_DB it uses that database instead.
// SIGINT/SIGTERM: stop accepting, drain in-flight requests, close the pool, stop MariaDB.
#include <mysql.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "resources/fhir_time.hpp"
#include "resources/paths.hpp"
#include "resources/type_model.hpp"
#include "server/audit/anomaly.hpp"
#include "server/audit/trail.hpp"
#include "server/auth/api.hpp"
#include "server/auth/auth_service.hpp"
#include "server/config.hpp"
#include "server/http/http_server.hpp"
#include "server/interactions/service.hpp"
#include "server/log.hpp"
#include "server/ops/demo_accounts.hpp"
#include "server/ops/demo_data.hpp"
#include "server/ops/reindex.hpp"
#include "server/storage/db.hpp"
#include "server/storage/embedded_mariadb.hpp"
#include "server/storage/migrations.hpp"
#include "server/storage/resource_cache.hpp"
#include "server/version.hpp"

using namespace kasama;

int main(int argc, char** argv) {
  // `kasama-server reindex [Type]`: rebuild the search index and exit.
  // `kasama-server bootstrap-owner NAME`: create the first owner account, print its one-time
  // initial password (JSON) and exit; refused once an owner exists.
  const std::string command = argc >= 2 ? argv[1] : "";
  const bool reindex_only = command == "reindex";
  const bool bootstrap = command == "bootstrap-owner";
  // `kasama-server audit-verify`: walk the audit hash chain, print the result (JSON),
  // exit 0 when it holds and 3 when it is broken.
  const bool audit_verify = command == "audit-verify";
  // `kasama-server audit-purge [--before INSTANT]`: as the maintenance DB user, remove
  // the sealed audit blocks recorded before the cut-off (KASAMA_AUDIT_RETENTION_DAYS ago, or
  // the instant given), keep the anchor, record the purge as an audit event, print JSON.
  const bool audit_purge = command == "audit-purge";
  const bool purge_args_ok = !audit_purge || argc == 2 || (argc == 4 && std::string(argv[2]) == "--before");
  if ((argc >= 2 && !reindex_only && !bootstrap && !audit_verify && !audit_purge) || (bootstrap && argc != 3) ||
      !purge_args_ok) {
    std::fprintf(stderr,
                 "usage: %s [reindex [ResourceType] | bootstrap-owner NAME | audit-verify | audit-purge [--before "
                 "INSTANT]]  (settings come from KASAMA_* variables)\n",
                 argv[0]);
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // every thread inherits this; main waits
  signal(SIGPIPE, SIG_IGN);
  mysql_library_init(0, nullptr, nullptr);

  std::optional<storage::EmbeddedMariaDb> embedded;
  try {
    server::Config config = server::Config::from_env();
    std::filesystem::create_directories(config.data_dir);
    const auto& model = resources::TypeModel::instance();
    server::log_info("type model loaded: " + std::to_string(model.resource_types().size()) + " resource types");

    storage::DbTarget app, admin;
    if (config.db_url.empty()) {
      embedded.emplace(std::filesystem::path(config.data_dir) / "mariadb", config.db_buffer_pool);
      server::log_info("starting the private MariaDB under " + config.data_dir + "/mariadb");
      embedded->start();
      app = embedded->provision("kasama");
      admin = embedded->admin_target("kasama");
    } else {
      app = storage::DbTarget::parse_url(config.db_url);
      admin = storage::DbTarget::parse_url(config.db_admin_url.empty() ? config.db_url : config.db_admin_url);
    }
    {
      storage::Connection migrator(admin);
      int n = storage::apply_migrations(migrator);
      server::log_info("schema ready (" + std::to_string(n) + " migrations applied now) on " + app.describe());
      // The server's own DB user: everything but UPDATE and DELETE on the audit tables.
      storage::DbTarget who = app;
      who.database.clear();
      std::string app_user;
      {
        storage::Connection probe(who);
        app_user = probe.execute_text("SELECT CURRENT_USER()").text(0, 0);
      }
      if (admin.user != app.user) storage::grant_app_privileges(migrator, app.database, app_user);
      storage::Connection app_conn(app);
      if (storage::can_alter_audit(app_conn)) {
        const std::string why = "the database user " + app_user +
                                " can UPDATE or DELETE audit rows; R-31 needs a user that may only SELECT and "
                                "INSERT them (see server/audit/README.md, or set KASAMA_DB_ADMIN so the server "
                                "grants it)";
        if (config.audit_grants_checked) throw std::runtime_error(why);
        server::log_error("KASAMA_AUDIT_GRANTS=unchecked: " + why);
      }
    }
    storage::ConnectionPool pool(app, config.db_pool);
    storage::ResourceCache cache(config.cache_bytes);
    auth::AuthSettings auth_settings;
    auth_settings.idle = std::chrono::seconds(config.idle_timeout_s);
    auth_settings.access_lifetime = std::chrono::seconds(config.access_token_s);
    auth_settings.backend_lifetime = std::chrono::seconds(config.backend_token_s);
    auth_settings.token_cache_ttl = std::chrono::milliseconds(config.token_cache_ms);
    auth::AuthService auth(pool, config.tenant, auth_settings);
    audit::AuditTrail trail(app, config.tenant, config.audit && !reindex_only && !bootstrap && !audit_verify && !audit_purge,
                            config.data_dir + "/audit", config.audit_sync);
    if (!config.audit && !reindex_only && !bootstrap && !audit_verify && !audit_purge) {
      server::log_error("KASAMA_AUDIT=off: requests are NOT audited (benchmarks only)");
    }
    server::Services services(config, pool, cache, &auth, &trail);
    // the abnormal-access rules watch every audit record.
    audit::AnomalyDetector anomaly(audit::load_anomaly_rules(
        config.anomaly_rules.empty() ? resources::conformance_dir() + "/kasama/anomaly-rules.json" : config.anomaly_rules));
    services.anomaly = &anomaly;
    if (anomaly.rules().empty()) server::log_error("no abnormal-access rules (KASAMA_ANOMALY_RULES): R-32 detection is off");
    auth.on_reinstate = [&anomaly](const std::string& subject) { anomaly.reset(subject); };
    const auto finish_cli = [&]() {
      pool.close();
      if (embedded && embedded->adopted()) embedded->detach();  // a live server's MariaDB stays up
      if (embedded) embedded->stop();
      mysql_library_end();
    };
    if (bootstrap) {
      try {
        auto issued = auth.bootstrap_owner(argv[2]);
        std::printf("%s\n", resources::dump_json(resources::Json{{"id", issued.account_id},
                                                                 {"initialPassword", issued.password},
                                                                 {"role", "owner"},
                                                                 {"note",
                                                                  "Shown once. Change it at first login (R-13) "
                                                                  "and set up TOTP."}},
                                                 2)
                                .c_str());
      } catch (const auth::AuthError& e) {
        std::fprintf(stderr, "bootstrap-owner: %s\n", e.what());
        finish_cli();
        return 1;
      }
      finish_cli();
      return 0;
    }
    if (audit_verify) {
      auto c = pool.acquire();
      const auto v = audit::verify_chain(*c, config.tenant);
      resources::Json out = {{"result", v.ok},
                             {"checked", v.checked},
                             {"headId", v.head_id},
                             {"headHash", v.head_hash},
                             {"unsealed", v.unsealed}};
      if (v.anchor_id) out["anchorId"] = v.anchor_id;
      if (!v.ok) {
        out["firstBrokenId"] = v.first_broken;
        out["problem"] = v.problem;
      }
      std::printf("%s\n", resources::dump_json(out, 2).c_str());
      finish_cli();
      return v.ok ? 0 : 3;
    }
    if (audit_purge) {
      std::int64_t before = 0;
      if (argc == 4) {
        auto range = resources::parse_fhir_time_range(argv[3]);
        if (!range) throw std::invalid_argument(std::string("--before must be an instant or a date: ") + argv[3]);
        before = range->lo;
        if (before > resources::now_millis())
          throw std::invalid_argument("--before must not be in the future (it would purge every sealed record)");
      } else if (config.audit_retention_days > 0) {
        before = resources::now_millis() - std::int64_t{config.audit_retention_days} * 86'400'000;
      } else {
        std::fprintf(stderr, "audit-purge: KASAMA_AUDIT_RETENTION_DAYS is 0 (keep everything); nothing to do\n");
        finish_cli();
        return 2;
      }
      const storage::DbTarget maint = config.db_maint_url.empty() ? admin : storage::DbTarget::parse_url(config.db_maint_url);
      storage::Connection m(maint);
      const std::string maint_user = m.execute_text("SELECT CURRENT_USER()").text(0, 0);
      storage::AuditStore store(config.tenant);
      m.begin();
      const std::uint64_t removed = store.purge(m, before);
      m.commit();
      const auto v = [&] {
        auto c = pool.acquire();
        // The purge is itself an access to the trail: recorded (by the server's own user,
        // which may only INSERT), sealed by the server like any record.
        storage::AuditRow row;
        row.tenant = config.tenant;
        row.recorded = resources::now_millis();
        row.request_id = "audit-purge-" + std::to_string(row.recorded);
        row.interaction = "admin";
        row.action = "D";
        row.method = "CLI";
        row.path = "audit-purge?before=" + resources::format_instant(before) + "&removed=" + std::to_string(removed);
        row.status = 200;
        row.peer = "cli";
        row.detail = "audit retention purge (R-34) by DB user " + resources::printable_ascii(maint_user, 100);
        store.insert(*c, row);
        return audit::verify_chain(*c, config.tenant);
      }();
      resources::Json out = {{"before", resources::format_instant(before)},
                             {"removed", removed},
                             {"maintenanceUser", maint_user},
                             {"chain", v.ok},
                             {"anchorId", v.anchor_id}};
      std::printf("%s\n", resources::dump_json(out, 2).c_str());
      server::log_info("audit-purge: " + std::to_string(removed) + " events recorded before " +
                       resources::format_instant(before) + " removed as " + maint_user);
      finish_cli();
      return v.ok ? 0 : 3;
    }
    if (reindex_only) {
      const std::string type = argc >= 3 ? argv[2] : "";
      if (!type.empty() && !model.is_resource_type(type)) throw std::runtime_error(type + " is not a resource type");
      auto r = server::reindex(services, type, server::default_base_url(config), [](std::uint64_t n) {
        if (n % 10000 == 0) server::log_info("reindex: " + std::to_string(n) + " resources");
      });
      std::printf("reindexed %llu resources in %.1f s\n", static_cast<unsigned long long>(r.resources), r.seconds);
      finish_cli();
      return 0;
    }
    server::reindex_if_registry_changed(services);
    server::FhirService service(services);
    server::AuthApi api(auth, service);
    const std::string demo_credentials = config.data_dir + "/demo-credentials.json";
    // Demo data only on the embedded default, never with KASAMA_DB (a real deployment).
    if (embedded && config.demo_data == server::DemoData::kAll) {
      int loaded = server::load_demo_data(service);
      if (loaded > 0) server::log_info("demo data loaded: " + std::to_string(loaded) + " resources");
    }
    auto health = [&pool]() -> std::string {
      try {
        auto c = pool.acquire(std::chrono::seconds(2));
        c->ping();
        return {};
      } catch (const std::exception& e) {
        return std::string("database: ") + e.what();
      }
    };
    if (embedded && config.demo_data != server::DemoData::kOff) {
      server::create_demo_accounts(auth, service, demo_credentials, "https://localhost:" + std::to_string(config.port));
    }
    trail.start();
    server::HttpServer http(config, service, &api, health);
    http.start();
    const bool have_demo =
        embedded && config.demo_data != server::DemoData::kOff && std::filesystem::exists(demo_credentials);
    const std::string url = "https://localhost:" + std::to_string(http.port()) + "/fhir";
    server::log_info(std::string("Kasama FHIR server ") + server::kVersion + " ready");
    std::string banner =
        "\n  FHIR base:   " + url + "\n  Health:      https://localhost:" + std::to_string(http.port()) +
        "/health\n  TLS:         " +
        (config.tls_cert.empty() ? config.data_dir + "/tls/server.crt (self-signed)" : config.tls_cert) +
        "\n  SMART:       " + url + "/.well-known/smart-configuration\n";
    if (have_demo) {
      // The demo IDs and their initial passwords (each must be changed at first login).
      banner += "  Demo accounts (" + demo_credentials + "; initial passwords, change at first login):\n";
      std::ifstream f(demo_credentials);
      std::stringstream text;
      text << f.rdbuf();
      auto parsed = resources::parse_json(text.str());
      if (parsed.ok) {
        for (const char* role : {"owner", "ops-manager", "secretariat", "sysadmin", "auditor", "org-manager",
                                 "practitioner", "citizen", "proxy"}) {
          if (!parsed.value.contains(role)) continue;
          const auto& a = parsed.value[role];
          char line[256];
          std::snprintf(line, sizeof line, "    %-13s %-12s %s\n", role, a.value("id", "").c_str(),
                        a.value("password", "").c_str());
          banner += line;
        }
        banner += "    backend client " + parsed.value["backend-client"].value("clientId", "") +
                  " (private_key_jwt ES384), public app " + parsed.value["public-client"].value("clientId", "") + "\n";
      }
    } else {
      banner += "  Accounts:    create the first owner with `kasama-server bootstrap-owner NAME`\n";
    }
    banner += "  Stop:        Ctrl-C\n\n";
    std::fputs(banner.c_str(), stdout);
    std::fflush(stdout);

    int sig = 0;
    sigwait(&signals, &sig);
    server::log_info(std::string("signal ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ": draining");
    http.stop(std::chrono::seconds(30));
    trail.stop();
    pool.close();
    if (embedded) {
      server::log_info("stopping the private MariaDB");
      embedded->stop();
    }
    server::log_info("stopped");
    mysql_library_end();
    return 0;
  } catch (const std::exception& e) {
    server::log_error(std::string("cannot run: ") + e.what());
    if (embedded && (reindex_only || bootstrap || audit_verify || audit_purge) && embedded->adopted()) embedded->detach();
    if (embedded) embedded->stop();
    return 1;
  }
}
