#pragma once
// The private MariaDB instance of the embedded default: its own datadir and unix socket
// under <data dir>/mariadb, no TCP port, never touching a system MariaDB.
#include <filesystem>
#include <optional>
#include <string>

#include "server/storage/db.hpp"

namespace kasama::storage {

class EmbeddedMariaDb {
 public:
  explicit EmbeddedMariaDb(std::filesystem::path dir, std::string buffer_pool = "256M");
  ~EmbeddedMariaDb();

  // Initializes the datadir on first use, starts mariadbd (or adopts one left running by
  // an earlier crash of ours) and waits until it answers.
  void start();
  // Clean InnoDB shutdown: SIGTERM and wait for the process to exit.
  void stop();

  // True when start() found a mariadbd of this datadir already running (a server, or one
  // left by a crash); a CLI command run beside a live server must not stop it.
  bool adopted() const { return adopted_; }
  // Leaves the instance running: stop() and the destructor will not touch it (a CLI command
  // that adopted a live server's MariaDB).
  void detach() { running_ = false; }

  DbTarget admin_target(const std::string& database = "") const;
  // Creates the database and the unprivileged server user; returns that user's target.
  DbTarget provision(const std::string& database);

 private:
  std::filesystem::path dir_;
  std::string buffer_pool_;
  int pid_ = 0;
  bool running_ = false;
  bool adopted_ = false;
};

}  // namespace kasama::storage
