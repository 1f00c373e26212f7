#define BOOST_TEST_MODULE integration_storage
// Storage against a real MariaDB: the private instance of the "main" test fixture, in a
// database of this test's own (created and dropped here).
#include <mysql.h>
#include <unistd.h>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "server/storage/db.hpp"
#include "server/storage/migrations.hpp"
#include "server/storage/resource_store.hpp"

using namespace kasama::storage;

namespace {

std::string data_dir() {
  const char* d = std::getenv("KASAMA_TEST_DATA_DIR");
  return d ? d : "";
}

DbTarget admin(const std::string& db = "") {
  DbTarget t;
  t.socket = data_dir() + "/mariadb/mysqld.sock";
  t.user = "root";
  t.database = db;
  return t;
}

struct Database {
  std::string name = "kasama_it_" + std::to_string(getpid());
  Database() {
    mysql_library_init(0, nullptr, nullptr);
    Connection root(admin());
    root.execute_text("DROP DATABASE IF EXISTS " + name);
    root.execute_text("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
    Connection c(admin(name));
    apply_migrations(c);
  }
  ~Database() {
    try {
      Connection root(admin());
      root.execute_text("DROP DATABASE IF EXISTS " + name);
    } catch (...) {
    }
  }
  DbTarget target() const { return admin(name); }
};

Database& db() {
  static Database d;
  return d;
}

}  // namespace

BOOST_AUTO_TEST_CASE(migrations_are_idempotent_and_tamper_evident) {
  Connection c(db().target());
  BOOST_TEST(apply_migrations(c) == 0);
  auto rs = c.execute_text("SELECT COUNT(*) FROM schema_migration");
  BOOST_TEST(static_cast<std::size_t>(rs.integer(0, 0)) == embedded_migrations().size());
  c.execute_text("UPDATE schema_migration SET checksum = REPEAT('0', 64) WHERE version = 1");
  BOOST_CHECK_THROW(apply_migrations(c), std::runtime_error);
  c.execute_text("DELETE FROM schema_migration WHERE version = 1");
  c.query(
      "INSERT INTO schema_migration (version, name, checksum, applied_at) VALUES (1, ?, SHA2(?, 256), "
      "UTC_TIMESTAMP(6))",
      {std::string_view(embedded_migrations()[0].name), std::string_view(embedded_migrations()[0].sql)});
  BOOST_TEST(apply_migrations(c) == 0);
}

BOOST_AUTO_TEST_CASE(versions_history_and_at) {
  Connection c(db().target());
  ResourceStore store(1);
  c.begin();
  auto pk = store.write_version(c, std::nullopt, "Patient", "v1", 1, 1'000'000, "POST",
                                R"({"resourceType":"Patient","id":"v1"})");
  c.commit();
  c.begin();
  auto cur = store.current(c, "Patient", "v1", Lock::kUpdate);
  BOOST_REQUIRE(cur.has_value());
  BOOST_TEST(cur->version == 1u);
  store.write_version(c, cur, "Patient", "v1", 2, 2'000'000, "PUT",
                      R"({"resourceType":"Patient","id":"v1","active":true})");
  c.commit();
  c.begin();
  cur = store.current(c, "Patient", "v1", Lock::kUpdate);
  store.write_version(c, cur, "Patient", "v1", 3, 3'000'000, "DELETE", "");
  c.commit();

  auto now = store.read_current(c, "Patient", "v1");
  BOOST_TEST(now->deleted);
  BOOST_TEST(now->version == 3u);
  auto v2 = store.read_version(c, "Patient", "v1", 2);
  BOOST_TEST(v2->content.find("active") != std::string::npos);
  BOOST_TEST(v2->pk == pk);

  HistoryQuery q;
  q.pk = pk;
  auto all = store.history(c, q);
  BOOST_REQUIRE(all.size() == 3u);
  BOOST_TEST(all[0].version == 3u);  // newest first
  BOOST_TEST(store.history_count(c, q) == 3u);
  // _at: only version 2 was current at 2500 s; deletes are never "current".
  q.at = {{2'500'000, 2'500'001}};
  auto at = store.history(c, q);
  BOOST_REQUIRE(at.size() == 1u);
  BOOST_TEST(at[0].version == 2u);
  q.at = {{3'500'000, 3'500'001}};
  BOOST_TEST(store.history(c, q).empty());
  // keyset paging: strictly older than version 3
  q.at.clear();
  q.before_time = 3'000'000;
  q.before_pk = pk;
  q.before_version = 3;
  BOOST_TEST(store.history(c, q).size() == 2u);
}

BOOST_AUTO_TEST_CASE(token_lookup_variants) {
  Connection c(db().target());
  ResourceStore store(1);
  c.begin();
  auto a = store.write_version(c, std::nullopt, "Patient", "tok-a", 1, 1000, "POST", "{}");
  store.replace_tokens(c, a, "Patient", {{"identifier", "urn:sys", "123"}, {"identifier", "", "456"}});
  auto b = store.write_version(c, std::nullopt, "Patient", "tok-b", 1, 1000, "POST", "{}");
  store.replace_tokens(c, b, "Patient", {{"identifier", "urn:other", "123"}});
  c.commit();
  auto count = [&](std::optional<std::string> s, std::optional<std::string> v) {
    return store.find_by_token(c, "Patient", "identifier", s, v, 10).size();
  };
  BOOST_TEST(count(std::string("urn:sys"), std::string("123")) == 1u);
  BOOST_TEST(count(std::nullopt, std::string("123")) == 2u);
  BOOST_TEST(count(std::string(""), std::string("456")) == 1u);  // |456: no system
  BOOST_TEST(count(std::string(""), std::string("123")) == 0u);
  BOOST_TEST(count(std::string("urn:other"), std::nullopt) == 1u);
  BOOST_TEST(store.find_by_token(c, "Group", "identifier", std::string("urn:sys"), std::string("123"), 10).empty());
}

BOOST_AUTO_TEST_CASE(conditional_key_makes_the_second_claim_wait_then_fail) {
  ResourceStore store(1);
  Connection first(db().target());
  Connection second(db().target());
  first.begin();
  store.claim_conditional_key(first, "Patient", 4242, 1);
  second.begin();
  auto racing = std::async(std::launch::async, [&] {
    try {
      store.claim_conditional_key(second, "Patient", 4242, 2);
      return std::string("claimed");
    } catch (const DbError& e) {
      return std::string(e.duplicate_key() ? "duplicate" : e.what());
    }
  });
  BOOST_TEST((racing.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout));  // it waits
  first.commit();
  BOOST_TEST(racing.get() == "duplicate");
  second.rollback();
}

BOOST_AUTO_TEST_CASE(links_find_referrers) {
  Connection c(db().target());
  ResourceStore store(1);
  c.begin();
  auto obs = store.write_version(c, std::nullopt, "Observation", "ref-o", 1, 1000, "POST", "{}");
  store.replace_links(c, obs, {{"Patient", "ref-p", "Observation.subject"}});
  c.commit();
  BOOST_TEST(store.referrers(c, "Patient", "ref-p", 0, 5) == std::vector<std::string>{"Observation/ref-o"});
  BOOST_TEST(store.referrers(c, "Patient", "ref-p", obs, 5).empty());
  c.begin();
  store.clear_dependents(c, obs);
  c.commit();
  BOOST_TEST(store.referrers(c, "Patient", "ref-p", 0, 5).empty());
}

// R-31 groundwork: the server cannot alter the schema (audit rows will be insert-only for it).
BOOST_AUTO_TEST_CASE(r31_server_db_user_has_data_rights_only) {
  std::ifstream in(data_dir() + "/mariadb/app-user.secret");
  std::stringstream ss;
  ss << in.rdbuf();
  DbTarget app = admin("kasama");
  app.user = "kasama_app";
  app.password = ss.str();
  Connection c(app);
  BOOST_CHECK_NO_THROW(c.execute_text("SELECT COUNT(*) FROM resource"));
  BOOST_CHECK_THROW(c.execute_text("CREATE TABLE intruder (x INT)"), DbError);
  BOOST_CHECK_THROW(c.execute_text("DROP TABLE resource_history"), DbError);
  BOOST_CHECK_THROW(c.execute_text("ALTER TABLE resource ADD COLUMN x INT"), DbError);
  BOOST_CHECK_THROW(c.execute_text("SELECT * FROM mysql.user"), DbError);
}
