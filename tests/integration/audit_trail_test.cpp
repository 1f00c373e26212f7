#define BOOST_TEST_MODULE integration_audit_trail
// The audit trail against a real MariaDB (the "main" fixture's instance, a database of this
// test's own): group-commit appends from many threads, writes' records in their own
// transactions (some rolled back, so AUTO_INCREMENT leaves gaps), and the sealer's chain,
// which must cover every committed record exactly once, in id order, and verify (R-30, R-31).
#include <mysql.h>
#include <unistd.h>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>
#include <vector>

#include "server/audit/record.hpp"
#include "server/audit/trail.hpp"
#include "server/storage/db.hpp"
#include "server/storage/migrations.hpp"
#include "tests/integration/test_database.hpp"

using namespace kasama;
using storage::Connection;
using storage::DbTarget;

namespace {

struct Database : testing::Database {
  Database() : testing::Database("kasama_audit_it_") {}
};

std::string journal_dir(const std::string& name) {
  const std::string d = "/tmp/" + name + "-journal";
  std::filesystem::remove_all(d);
  return d;
}

storage::AuditRow row(const std::string& request_id) {
  storage::AuditRow r;
  r.request_id = request_id;
  r.interaction = "read";
  r.action = "R";
  r.method = "GET";
  r.path = "Patient/" + request_id;
  r.status = 200;
  r.client_id = "cl-test";
  r.terminal_id = "T-TEST";
  r.peer = "127.0.0.1";
  r.patients = request_id;
  r.entities = "Patient/" + request_id;
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(r30_r31_concurrent_appends_and_transactions_are_all_sealed_once_in_order) {
  Database db;
  const DbTarget target = db.target();
  const std::string journal = journal_dir(db.name);
  audit::AuditTrail trail(target, 1, true, journal);
  trail.start();
  std::atomic<int> committed{0}, rolled_back{0};
  std::vector<std::thread> threads;
  // 6 threads append (group commit), 4 write in transactions of their own that sometimes
  // roll back after their INSERT took an id.
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        trail.append(row("a" + std::to_string(t) + "-" + std::to_string(i)));
        ++committed;
      }
    });
  }
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Connection c(target);
      for (int i = 0; i < 80; ++i) {
        c.begin();
        auto slot = trail.reserve();
        trail.insert(slot, c, row("w" + std::to_string(t) + "-" + std::to_string(i)));
        if (i % 4 == 3) {
          c.rollback();
          ++rolled_back;
        } else {
          // Hold the transaction open a little, so the sealer runs while ids are in flight.
          std::this_thread::sleep_for(std::chrono::microseconds(300 * (i % 3)));
          c.commit();
          ++committed;
        }
        slot.release();
      }
    });
  }
  for (auto& th : threads) th.join();
  trail.flush();
  trail.seal_now();
  Connection c(target);
  const auto events = c.execute_text("SELECT COUNT(*), MAX(id) FROM audit_event");
  BOOST_TEST(events.integer(0, 0) == committed.load());
  BOOST_TEST(rolled_back.load() == 80);
  BOOST_TEST(events.integer(0, 1) > committed.load());  // rolled-back transactions left gaps
  const auto sealed = c.execute_text("SELECT SUM(events), COUNT(*) FROM audit_seal");
  BOOST_TEST(sealed.integer(0, 0) == committed.load());      // each committed event in exactly one block
  BOOST_TEST(sealed.integer(0, 1) < committed.load() / 10);  // blocks, not a seal per event
  auto v = audit::verify_chain(c, 1);
  BOOST_TEST(v.ok, v.problem);
  BOOST_TEST(v.checked == static_cast<std::uint64_t>(committed.load()));
  BOOST_TEST(v.unsealed == 0u);
  trail.stop();

  // A new trail (a restart) continues the same chain.
  audit::AuditTrail again(target, 1, true, journal);
  again.start();
  again.append(row("after-restart"));
  again.flush();
  again.seal_now();
  v = audit::verify_chain(c, 1);
  BOOST_TEST(v.ok, v.problem);
  BOOST_TEST(v.checked == static_cast<std::uint64_t>(committed.load()) + 1);
  again.stop();

  // Tampering: a changed row, then a forged row inserted outside the server.
  const auto mid = c.execute_text("SELECT id FROM audit_event ORDER BY id LIMIT 1 OFFSET 100").integer(0, 0);
  c.execute_text("UPDATE audit_event SET patients = 'someone-else' WHERE id = " + std::to_string(mid));
  v = audit::verify_chain(c, 1);
  BOOST_TEST(!v.ok);
  BOOST_TEST(v.first_broken == static_cast<std::uint64_t>(mid));
  c.execute_text("UPDATE audit_event SET patients = request_id WHERE id = " + std::to_string(mid));
  BOOST_TEST(audit::verify_chain(c, 1).ok);
  // A gap left by a rollback, filled later by hand, is outside the chain.
  const auto gap = c.execute_text(
      "SELECT MIN(a.id + 1) FROM audit_event a LEFT JOIN audit_event b ON b.id = a.id + 1 WHERE b.id IS NULL AND "
      "a.id < (SELECT MAX(id) FROM audit_event)");
  const auto gap_id = gap.integer(0, 0);
  c.execute_text(
      "INSERT INTO audit_event (id, tenant_id, recorded, request_id, interaction, action, method, path, status, "
      "outcome, denied, patients, entities) VALUES (" +
      std::to_string(gap_id) + ", 1, 0, 'forged', 'read', 'R', 'GET', 'x', 200, 0, 0, '', '')");
  v = audit::verify_chain(c, 1);
  BOOST_TEST(!v.ok);
  BOOST_TEST(v.first_broken == static_cast<std::uint64_t>(gap_id));
}

BOOST_AUTO_TEST_CASE(r34_retention_purge_keeps_an_anchor_and_the_rest_verifies) {
  Database db;
  const DbTarget target = db.target();
  audit::AuditTrail trail(target, 1, true, journal_dir(db.name + "-p"));
  trail.start();
  // 20 old records sealed as one block, then 30 of now: only whole blocks are purged.
  for (int i = 0; i < 50; ++i) {
    auto r = row("p" + std::to_string(i));
    r.recorded = i < 20 ? 1000 + i : 0;
    trail.append(r);
    if (i == 19 || i == 49) {
      trail.flush();
      trail.seal_now();
    }
  }
  Connection c(target);
  storage::AuditStore store(1);
  BOOST_TEST(store.purge(c, 100000) == 20u);  // R-34: the blocks older than the retention period
  BOOST_TEST(c.execute_text("SELECT COUNT(*) FROM audit_event").integer(0, 0) == 30);
  auto v = audit::verify_chain(c, 1);
  BOOST_TEST(v.ok, v.problem);
  BOOST_TEST(v.checked == 30u);
  BOOST_TEST(v.anchor_id > 0u);
  trail.stop();
}
