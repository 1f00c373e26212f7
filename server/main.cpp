// kasama-server: the FHIR server process. On its embedded default it runs a private
// MariaDB under <data dir>/mariadb; with KASAMA_DB it uses that database instead.
// SIGINT/SIGTERM: stop accepting, drain in-flight requests, close the pool, stop MariaDB.
#include <mysql.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "resources/type_model.hpp"
#include "server/config.hpp"
#include "server/http/http_server.hpp"
#include "server/interactions/service.hpp"
#include "server/log.hpp"
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
  const bool reindex_only = argc >= 2 && std::string(argv[1]) == "reindex";
  if (argc >= 2 && !reindex_only) {
    std::fprintf(stderr, "usage: %s [reindex [ResourceType]]  (settings come from KASAMA_* variables)\n", argv[0]);
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
    }
    storage::ConnectionPool pool(app, config.db_pool);
    storage::ResourceCache cache(config.cache_bytes);
    server::Services services(config, pool, cache);
    if (reindex_only) {
      const std::string type = argc >= 3 ? argv[2] : "";
      if (!type.empty() && !model.is_resource_type(type)) throw std::runtime_error(type + " is not a resource type");
      auto r = server::reindex(services, type, server::default_base_url(config), [](std::uint64_t n) {
        if (n % 10000 == 0) server::log_info("reindex: " + std::to_string(n) + " resources");
      });
      std::printf("reindexed %llu resources in %.1f s\n", static_cast<unsigned long long>(r.resources), r.seconds);
      pool.close();
      if (embedded) embedded->stop();
      mysql_library_end();
      return 0;
    }
    server::reindex_if_registry_changed(services);
    server::FhirService service(services);
    if (embedded && config.demo_data) {
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
    server::HttpServer http(config, service, health);
    http.start();
    const std::string url = "https://localhost:" + std::to_string(http.port()) + "/fhir";
    server::log_info(std::string("Kasama FHIR server ") + server::kVersion + " ready");
    std::printf(
        "\n  FHIR base:   %s\n  Health:      https://localhost:%u/health\n  TLS:         %s\n"
        "  Accounts:    none yet (accounts and SMART on FHIR come with the identity work)\n"
        "  Stop:        Ctrl-C\n\n",
        url.c_str(), http.port(),
        config.tls_cert.empty() ? (config.data_dir + "/tls/server.crt (self-signed)").c_str()
                                : config.tls_cert.c_str());
    std::fflush(stdout);

    int sig = 0;
    sigwait(&signals, &sig);
    server::log_info(std::string("signal ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ": draining");
    http.stop(std::chrono::seconds(30));
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
    if (embedded) embedded->stop();
    return 1;
  }
}
