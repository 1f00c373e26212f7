#pragma once
#include <string>
#include <vector>

#include "server/storage/db.hpp"

namespace kasama::storage {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// The migration files of storage/migrations/, compiled into the binary so that a server
// can never run against a schema it does not know.
const std::vector<Migration>& embedded_migrations();

// Applies what is missing, in order, under a named lock (several servers may start at once).
// Refuses to go on when an applied migration's checksum differs from the embedded one.
// Returns the number of migrations applied.
int apply_migrations(Connection& admin);

// Splits a migration file into statements (on ';' at the end of a line, outside quotes).
std::vector<std::string> split_sql(const std::string& sql);

}  // namespace kasama::storage
