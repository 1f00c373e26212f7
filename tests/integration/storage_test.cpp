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

#include "resources/json.hpp"
#include "server/search/extract.hpp"
#include "server/search/query.hpp"
#include "server/search/sql.hpp"
#include "server/storage/db.hpp"
#include "server/storage/migrations.hpp"
#include "server/storage/resource_store.hpp"
#include "tests/integration/test_database.hpp"

using namespace kasama::storage;

namespace {

using kasama::testing::admin;
using kasama::testing::data_dir;

struct Database : kasama::testing::Database {
  Database() : kasama::testing::Database("kasama_it_") {}
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

// The search path below HTTP: rows extracted from resources by the registry's FHIRPath
// expressions, written by replace_index, matched by SQL from the compiler.
std::vector<std::string> search_ids(Connection& c, const std::string& type,
                                    std::vector<std::pair<std::string, std::string>> params) {
  auto q = kasama::search::parse_search(type, params, false);
  BOOST_REQUIRE_MESSAGE(q.ok(), "parse failed: " << (q.error ? q.error->message : ""));
  kasama::search::SqlCompiler comp(c, 1, "https://example.org/fhir");
  std::string where = "r.tenant_id=1 AND r.deleted=0 AND r.res_type=" + c.quote(type);
  for (const auto& cl : q.clauses) where += " AND " + comp.clause(type, cl, "r");
  auto rs = c.execute_text("SELECT r.res_id FROM resource r WHERE " + where + " ORDER BY r.res_id");
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < rs.size(); ++i) ids.push_back(rs.take(i, 0));
  return ids;
}

void put(Connection& c, ResourceStore& store, const std::string& json) {
  auto parsed = kasama::resources::parse_json(json);
  BOOST_REQUIRE(parsed.ok);
  const auto& res = parsed.value;
  const std::string type = res["resourceType"].get<std::string>();
  const std::string id = res["id"].get<std::string>();
  auto pk = store.write_version(c, std::nullopt, type, id, 1, 1000, "POST", json);
  auto rows = kasama::search::Extractor::instance().extract(type, res, "https://example.org/fhir");
  store.replace_index(c, pk, type, rows, false);
}

using Ids = std::vector<std::string>;

BOOST_AUTO_TEST_CASE(index_extraction_and_compiled_search) {
  Connection c(db().target());
  ResourceStore store(1);
  c.begin();
  put(c, store,
      R"({"resourceType":"Patient","id":"ix-a","identifier":[{"system":"urn:sys","value":"123"},{"value":"456"}],
      "name":[{"family":"ヤマダ","given":["タロウ"]},{"family":"José"}],"gender":"male","birthDate":"1950-03-04",
      "active":true})");
  put(c, store, R"({"resourceType":"Patient","id":"ix-b","identifier":[{"system":"urn:other","value":"123"}],
      "name":[{"family":"ﾔﾏﾀ","given":["ＡＢＣ"]}],"gender":"female","birthDate":"1950"})");
  put(c, store, R"({"resourceType":"Observation","id":"ix-o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic"}],"text":"BP systolic"},
      "subject":{"reference":"Patient/ix-a"},"effectiveDateTime":"2024-05-01T10:00:00+09:00",
      "valueQuantity":{"value":120.5,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}})");
  put(c, store, R"({"resourceType":"Observation","id":"ix-o2","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},
      "subject":{"reference":"https://example.org/fhir/Patient/ix-b"},
      "effectivePeriod":{"start":"2024-05-01","end":"2024-05-03"},"valueQuantity":{"value":80,"unit":"mmHg"}})");
  c.commit();

  // token: system|value, value only, |value (no system), system|
  BOOST_TEST(search_ids(c, "Patient", {{"identifier", "urn:sys|123"}}) == Ids({"ix-a"}));
  BOOST_TEST(search_ids(c, "Patient", {{"identifier", "123"}}) == Ids({"ix-a", "ix-b"}));
  BOOST_TEST(search_ids(c, "Patient", {{"identifier", "|456"}}) == Ids({"ix-a"}));
  BOOST_TEST(search_ids(c, "Patient", {{"identifier", "|123"}}).empty());
  BOOST_TEST(search_ids(c, "Patient", {{"identifier", "urn:other|"}}) == Ids({"ix-b"}));
  BOOST_TEST(search_ids(c, "Patient", {{"gender", "female"}}) == Ids({"ix-b"}));
  BOOST_TEST(search_ids(c, "Patient", {{"gender:not", "female"}}) == Ids({"ix-a"}));
  BOOST_TEST(search_ids(c, "Patient", {{"active", "true"}}) == Ids({"ix-a"}));
  BOOST_TEST(search_ids(c, "Patient", {{"active:missing", "true"}}) == Ids({"ix-b"}));
  BOOST_TEST(search_ids(c, "Observation", {{"code:text", "bp"}}) == Ids({"ix-o1"}));
  BOOST_TEST(search_ids(c, "Observation", {{"code:text", "systolic"}}) == Ids({"ix-o1"}));
  // string: starts-with, NFKC (half-width kana, full-width letters), accents, :exact, :contains
  BOOST_TEST(search_ids(c, "Patient", {{"name", "ﾔﾏﾀﾞ"}}) == Ids({"ix-a"}));  // voiced mark kept
  BOOST_TEST(search_ids(c, "Patient", {{"name", "ヤマ"}}) == Ids({"ix-a", "ix-b"}));
  BOOST_TEST(search_ids(c, "Patient", {{"given", "abc"}}) == Ids({"ix-b"}));
  BOOST_TEST(search_ids(c, "Patient", {{"family", "jose"}}) == Ids({"ix-a"}));
  BOOST_TEST(search_ids(c, "Patient", {{"family:exact", "jose"}}).empty());
  BOOST_TEST(search_ids(c, "Patient", {{"family:exact", "José"}}) == Ids({"ix-a"}));
  BOOST_TEST(search_ids(c, "Patient", {{"family:contains", "マダ"}}) == Ids({"ix-a"}));
  BOOST_TEST(search_ids(c, "Patient", {{"name", "ヤマダ"}, {"given", "abc"}}).empty());        // AND
  BOOST_TEST(search_ids(c, "Patient", {{"name", "ヤマダ,ＡＢＣ"}}) == Ids({"ix-a", "ix-b"}));  // OR
  // date: precision ranges and prefixes
  BOOST_TEST(search_ids(c, "Patient", {{"birthdate", "1950"}}) == Ids({"ix-a", "ix-b"}));
  BOOST_TEST(search_ids(c, "Patient", {{"birthdate", "1950-03"}}) == Ids({"ix-a"}));
  BOOST_TEST(search_ids(c, "Patient", {{"birthdate", "gt1950-03-04"}}) == Ids({"ix-b"}));  // 1950 ends later
  BOOST_TEST(search_ids(c, "Patient", {{"birthdate", "lt1950-01-01"}}).empty());
  BOOST_TEST(search_ids(c, "Observation", {{"date", "2024-05-01"}}) == Ids({"ix-o1"}));  // 10:00+09:00 = 01:00Z
  BOOST_TEST(search_ids(c, "Observation", {{"date", "2024-05"}}) == Ids({"ix-o1", "ix-o2"}));
  BOOST_TEST(search_ids(c, "Observation", {{"date", "sa2024-04-30"}}) == Ids({"ix-o1", "ix-o2"}));
  BOOST_TEST(search_ids(c, "Observation", {{"date", "eb2024-05-02"}}) == Ids({"ix-o1"}));
  BOOST_TEST(search_ids(c, "Observation", {{"date", "ge2024-05-02"}}) == Ids({"ix-o2"}));
  // quantity with and without system, prefixes
  BOOST_TEST(search_ids(c, "Observation", {{"value-quantity", "120.5|http://unitsofmeasure.org|mm[Hg]"}}) ==
             Ids({"ix-o1"}));
  BOOST_TEST(search_ids(c, "Observation", {{"value-quantity", "gt100"}}) == Ids({"ix-o1"}));
  BOOST_TEST(search_ids(c, "Observation", {{"value-quantity", "80||mmHg"}}) == Ids({"ix-o2"}));
  BOOST_TEST(search_ids(c, "Observation", {{"value-quantity", "8e1"}}) == Ids({"ix-o2"}));
  // reference: id, Type/id, absolute URL on this base, chain, _has
  BOOST_TEST(search_ids(c, "Observation", {{"subject", "ix-b"}}) == Ids({"ix-o2"}));
  BOOST_TEST(search_ids(c, "Observation", {{"subject", "Patient/ix-a"}}) == Ids({"ix-o1"}));
  BOOST_TEST(search_ids(c, "Observation", {{"patient", "https://example.org/fhir/Patient/ix-a"}}) == Ids({"ix-o1"}));
  BOOST_TEST(search_ids(c, "Observation", {{"subject:Patient.name", "ﾔﾏﾀ"}}) ==
             Ids({"ix-o2"}));  // ヤマダ is not ヤマタ
  BOOST_TEST(search_ids(c, "Observation", {{"patient.gender", "female"}}) == Ids({"ix-o2"}));
  BOOST_TEST(search_ids(c, "Patient", {{"_has:Observation:patient:code", "8480-6"}}) == Ids({"ix-a"}));
  // composite: both parts in the same value
  BOOST_TEST(search_ids(c, "Observation", {{"code-value-quantity", "http://loinc.org|8480-6$gt100"}}) ==
             Ids({"ix-o1"}));
  BOOST_TEST(search_ids(c, "Observation", {{"code-value-quantity", "http://loinc.org|8462-4$gt100"}}).empty());
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
