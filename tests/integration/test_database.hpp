#pragma once
// For the integration tests: the "main" fixture's MariaDB (as root), and a database of a
// test's own with every migration applied, dropped again at the end.
#include <mysql.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "server/storage/db.hpp"
#include "server/storage/migrations.hpp"

namespace kasama::testing {

inline std::string data_dir() {
  const char* d = std::getenv("KASAMA_TEST_DATA_DIR");
  return d ? d : "";
}

inline storage::DbTarget admin(const std::string& db = "") {
  storage::DbTarget t;
  t.socket = data_dir() + "/mariadb/mysqld.sock";
  t.user = "root";
  t.database = db;
  return t;
}

struct Database {
  std::string name;
  explicit Database(const std::string& prefix) : name(prefix + std::to_string(getpid())) {
    mysql_library_init(0, nullptr, nullptr);
    storage::Connection root(admin());
    root.execute_text("DROP DATABASE IF EXISTS " + name);
    root.execute_text("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
    storage::Connection c(admin(name));
    storage::apply_migrations(c);
  }
  ~Database() {
    try {
      storage::Connection root(admin());
      root.execute_text("DROP DATABASE IF EXISTS " + name);
    } catch (...) {
    }
  }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  storage::DbTarget target() const { return admin(name); }
};

}  // namespace kasama::testing
