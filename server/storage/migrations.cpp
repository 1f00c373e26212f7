#include "server/storage/migrations.hpp"

#include <algorithm>
#include <stdexcept>

#include "server/storage/hash.hpp"

namespace kasama::storage {
namespace {

struct RawMigration {
  const char* file;
  const char* sql;
};

constexpr RawMigration kRaw[] = {
#include "migrations_embedded.inc"
};

}  // namespace

const std::vector<Migration>& embedded_migrations() {
  static const std::vector<Migration> all = [] {
    std::vector<Migration> v;
    for (const auto& r : kRaw) {
      std::string file = r.file;
      v.push_back(Migration{std::stoi(file.substr(0, file.find('_'))), file, r.sql});
    }
    std::sort(v.begin(), v.end(), [](const Migration& a, const Migration& b) { return a.version < b.version; });
    return v;
  }();
  return all;
}

std::vector<std::string> split_sql(const std::string& sql) {
  std::vector<std::string> out;
  std::string cur;
  char quote = 0;
  bool line_comment = false;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (line_comment) {
      if (c == '\n') line_comment = false;
      continue;
    }
    if (!quote && c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      line_comment = true;
      continue;
    }
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"' || c == '`') {
      quote = c;
    } else if (c == ';') {
      if (cur.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(cur);
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  if (cur.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(cur);
  return out;
}

int apply_migrations(Connection& admin) {
  admin.execute_text(
      "CREATE TABLE IF NOT EXISTS schema_migration ("
      " version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL,"
      " checksum CHAR(64) CHARACTER SET ascii NOT NULL, applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB");
  auto lock = admin.execute_text("SELECT GET_LOCK('kasama_migrate', 120)");
  if (lock.empty() || lock.text(0, 0) != "1") throw std::runtime_error("could not take the migration lock");
  int applied = 0;
  try {
    auto done = admin.execute_text("SELECT version, checksum, name FROM schema_migration");
    for (const auto& m : embedded_migrations()) {
      const std::string sum = sha256_hex(m.sql);
      bool present = false;
      for (std::size_t r = 0; r < done.size(); ++r) {
        if (done.integer(r, 0) != m.version) continue;
        present = true;
        if (done.text(r, 1) != sum) {
          throw std::runtime_error("migration " + m.name + " was changed after it was applied (checksum differs)");
        }
      }
      if (present) continue;
      for (const auto& stmt : split_sql(m.sql)) admin.execute_text(stmt);
      admin.query(
          "INSERT INTO schema_migration (version, name, checksum, applied_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))",
          {std::int64_t{m.version}, std::string_view(m.name), std::string_view(sum)});
      ++applied;
    }
  } catch (...) {
    admin.execute_text("SELECT RELEASE_LOCK('kasama_migrate')");
    throw;
  }
  admin.execute_text("SELECT RELEASE_LOCK('kasama_migrate')");
  return applied;
}

namespace {

// 'user'@'host' from CURRENT_USER()'s user@host.
std::string account_name(Connection& c, const std::string& user_at_host) {
  const auto at = user_at_host.rfind('@');
  if (at == std::string::npos) return c.quote(user_at_host) + "@'%'";
  return c.quote(user_at_host.substr(0, at)) + "@" + c.quote(user_at_host.substr(at + 1));
}

}  // namespace

void grant_app_privileges(Connection& admin, const std::string& database, const std::string& app_user_at_host) {
  const std::string who = account_name(admin, app_user_at_host);
  const std::string db = "`" + database + "`";
  try {
    admin.execute_text("REVOKE ALL PRIVILEGES ON " + db + ".* FROM " + who);
  } catch (const DbError& e) {
    if (e.code() != 1141 && e.code() != 1147) throw;  // there was no database-wide grant
  }
  auto tables = admin.query("SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                            {std::string_view(database)});
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const std::string& t = tables.text(i, 0);
    if (t.find('`') != std::string::npos) continue;
    const bool audit = t.rfind("audit_", 0) == 0;
    if (audit) {
      try {
        admin.execute_text("REVOKE UPDATE, DELETE ON " + db + ".`" + t + "` FROM " + who);
      } catch (const DbError& e) {
        if (e.code() != 1141 && e.code() != 1147) throw;
      }
    }
    admin.execute_text("GRANT " + std::string(audit ? "SELECT, INSERT" : "SELECT, INSERT, UPDATE, DELETE") + " ON " +
                       db + ".`" + t + "` TO " + who);
  }
}

bool can_alter_audit(Connection& conn) {
  // DROP and ALTER (a TRUNCATE, a rebuilt table) count as much as UPDATE and DELETE: look at
  // the privileges themselves, table, database and global ones.
  const std::string who = conn.execute_text("SELECT CURRENT_USER()").text(0, 0);
  const auto at = who.rfind('@');
  const std::string grantee =
      at == std::string::npos ? "'" + who + "'@'%'" : "'" + who.substr(0, at) + "'@'" + who.substr(at + 1) + "'";
  auto held = conn.query(
      "SELECT COUNT(*) FROM ("
      " SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ? AND TABLE_SCHEMA = DATABASE()"
      "   AND TABLE_NAME LIKE 'audit\\_%'"
      " UNION ALL SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ?"
      "   AND TABLE_SCHEMA = DATABASE()"
      " UNION ALL SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?"
      ") p WHERE PRIVILEGE_TYPE IN ('UPDATE', 'DELETE', 'DROP', 'ALTER')",
      {std::string_view(grantee), std::string_view(grantee), std::string_view(grantee)});
  if (!held.empty() && held.integer(0, 0) > 0) return true;
  for (const char* table : {"audit_event", "audit_seal", "audit_loaded"}) {
    for (const std::string& statement : {std::string("UPDATE ") + table + " SET tenant_id = tenant_id WHERE 1 = 0",
                                         std::string("DELETE FROM ") + table + " WHERE 1 = 0"}) {
      try {
        conn.execute_text(statement);
        return true;  // allowed (it matched nothing)
      } catch (const DbError& e) {
        if (e.code() == 1143) return true;  // a column-level grant: some column can be changed
        if (e.code() != 1142) throw;
      }
    }
  }
  return false;
}

}  // namespace kasama::storage
