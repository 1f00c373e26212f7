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

// Grants the server's DB user (user@host as CURRENT_USER() names it) what it needs on every
// table of the database, table by table: SELECT, INSERT, UPDATE, DELETE, except on the
// audit tables (audit_*), where it may only SELECT and INSERT. Run as the migration
// user after the migrations, so that new tables are covered.
void grant_app_privileges(Connection& admin, const std::string& database, const std::string& app_user_at_host);

// Whether conn's user can change audit rows (it must not): tries an UPDATE and a DELETE that
// match nothing on every audit table; MariaDB refuses each with error 1142 when the
// privilege is missing.
bool can_alter_audit(Connection& conn);

}  // namespace kasama::storage
