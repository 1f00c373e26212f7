#define BOOST_TEST_MODULE integration_access
// Access labels and opt-outs against a real MariaDB (R-03, R-21): versions stored before
// labels existed get them from the relabelling pass a reindex runs; a delete marker keeps
// the labels of the version it deleted; the opt-out registry sees a change made through
// this process at once and one made by another process within its time-to-live.
#include <boost/test/unit_test.hpp>

#include "resources/json.hpp"
#include "server/access/policy.hpp"
#include "server/interactions/context.hpp"
#include "server/ops/reindex.hpp"
#include "server/storage/resource_cache.hpp"
#include "server/storage/resource_store.hpp"
#include "tests/integration/test_database.hpp"

using namespace kasama;

namespace {

struct Fixture {
  testing::Database db{"kasama_it_access_"};
  storage::ConnectionPool pool{db.target(), 4};
  server::Config config;
  storage::ResourceCache cache{0};
  server::Services svc{config, pool, cache};
};

std::uint8_t category_of(storage::Connection& c, std::uint64_t pk, std::uint32_t version) {
  auto rs = c.query("SELECT category FROM resource_history WHERE resource_pk=? AND version=?", {pk, std::int64_t{version}});
  return static_cast<std::uint8_t>(rs.integer(0, 0));
}

}  // namespace

BOOST_AUTO_TEST_CASE(r03_relabel_gives_unlabelled_versions_their_category_and_subjects) {
  Fixture f;
  auto& store = f.svc.store;
  auto conn = f.pool.acquire();
  auto& c = *conn;
  const auto& cats = access::Categories::instance();
  // As written before migration 0005: no labels at all.
  const auto patient = store.write_version(c, std::nullopt, "Patient", "p1", 1, 1000, "PUT",
                                           R"({"resourceType":"Patient","id":"p1"})");
  const auto obs = store.write_version(c, std::nullopt, "Observation", "o1", 1, 1000, "PUT",
                                       R"({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}})");
  auto obs_row = store.current(c, "Observation", "o1", storage::Lock::kNone);
  store.write_version(c, obs_row, "Observation", "o1", 2, 2000, "DELETE", "");
  // A version that carries a label already keeps the label's category (not the rules').
  const auto labelled = store.write_version(
      c, std::nullopt, "Basic", "b1", 1, 1000, "PUT",
      R"({"resourceType":"Basic","id":"b1","meta":{"security":[{"system":"http://kasama-fhir.example/fhir/CodeSystem/information-category","code":"care"}]},"code":{"text":"x"}})");
  BOOST_TEST(category_of(c, obs, 1) == 0);

  const std::uint64_t n = server::relabel(f.svc, "https://h/fhir");
  BOOST_TEST(n == 4u);
  BOOST_TEST(cats.code(category_of(c, patient, 1)) == "demographics");
  BOOST_TEST(cats.code(category_of(c, obs, 1)) == "checkup");
  BOOST_TEST(cats.code(category_of(c, obs, 2)) == "checkup");  // the delete marker
  BOOST_TEST(cats.code(category_of(c, labelled, 1)) == "care");
  BOOST_TEST(store.subjects(c, patient, 1) == std::vector<std::string>{"p1"});
  BOOST_TEST(store.subjects(c, obs, 1) == std::vector<std::string>{"p1"});
  BOOST_TEST(store.subjects(c, obs, 2) == std::vector<std::string>{"p1"});
  BOOST_TEST(static_cast<int>(store.current(c, "Patient", "p1", storage::Lock::kNone)->category) ==
             static_cast<int>(*cats.parse("demographics")));
  BOOST_TEST(server::relabel(f.svc, "https://h/fhir") == 0u);  // nothing left
}

BOOST_AUTO_TEST_CASE(r21_the_opt_out_registry_sees_changes_at_once_here_and_within_its_ttl_from_elsewhere) {
  Fixture f;
  f.config.token_cache_ms = 200;
  access::OptOutRegistry reg(f.pool, f.config.tenant, std::chrono::milliseconds(200));
  auto conn = f.pool.acquire();
  const std::int64_t now = 1'800'000'000'000;
  BOOST_TEST((*reg.hidden_for("org-a", now)).empty());
  f.svc.store.replace_opt_outs(*conn, 7, {{"p1", "", 0, access::kForever}, {"p2", "org-b", 0, access::kForever},
                                          {"p3", "", now + 1000, access::kForever}});
  // Another process's change: unseen until the snapshot is older than the TTL.
  BOOST_TEST((*reg.hidden_for("org-a", now)).empty());
  reg.changed();  // this process's own change
  BOOST_TEST((*reg.hidden_for("org-a", now)) == std::vector<std::string>{"p1"});
  BOOST_TEST(((*reg.hidden_for("org-b", now)) == std::vector<std::string>{"p1", "p2"}));
  BOOST_TEST(((*reg.hidden_for("org-a", now + 1000)) == std::vector<std::string>{"p1", "p3"}));  // its period began
  f.svc.store.replace_opt_outs(*conn, 7, {});
  BOOST_TEST((*reg.hidden_for("org-a", now + 1100)).size() == 2u);  // within the TTL of the last load
  BOOST_TEST((*reg.hidden_for("org-a", now + 1300)).empty());       // past it

}
