// Audit records (R-30, R-31): the canonical bytes the chain hashes change with every field;
// the chain hash is SHA-256 over the previous hash and those bytes; bodies are scanned for
// the resources and patients they touch (a table of cases), and arbitrary bytes never crash
// the scanner.
#define BOOST_TEST_MODULE audit_record
#include <boost/test/unit_test.hpp>

#include <random>

#include "server/audit/record.hpp"
#include "server/storage/hash.hpp"

using namespace kasama::audit;

namespace {
AuditRow sample() {
  AuditRow r;
  r.id = 7;
  r.recorded = 1700000000000;
  r.request_id = "req-1";
  r.interaction = "read";
  r.action = "R";
  r.method = "GET";
  r.path = "Patient/1";
  r.status = 200;
  r.account_id = "s-abc";
  r.role = "practitioner";
  r.institution_id = "org-1";
  r.client_id = "cl-1";
  r.terminal_id = "T-1";
  r.peer = "10.0.0.1";
  r.patients = "1";
  r.entities = "Patient/1";
  return r;
}
}  // namespace

BOOST_AUTO_TEST_CASE(every_field_changes_the_canonical_bytes) {
  const AuditRow base = sample();
  const std::string c0 = canonical(base);
  std::vector<std::function<void(AuditRow&)>> changes = {
      [](AuditRow& r) { r.id = 8; },
      [](AuditRow& r) { r.tenant = 2; },
      [](AuditRow& r) { r.recorded += 1; },
      [](AuditRow& r) { r.request_id += "x"; },
      [](AuditRow& r) { r.interaction = "vread"; },
      [](AuditRow& r) { r.action = "U"; },
      [](AuditRow& r) { r.method = "PUT"; },
      [](AuditRow& r) { r.path += "?"; },
      [](AuditRow& r) { r.status = 404; },
      [](AuditRow& r) { r.outcome = 4; },
      [](AuditRow& r) { r.denied = true; },
      [](AuditRow& r) { r.account_id = ""; },
      [](AuditRow& r) { r.role = "citizen"; },
      [](AuditRow& r) { r.institution_id = "org-2"; },
      [](AuditRow& r) { r.fhir_user = "Practitioner/1"; },
      [](AuditRow& r) { r.client_id = "cl-2"; },
      [](AuditRow& r) { r.terminal_id = "T-2"; },
      [](AuditRow& r) { r.peer = "10.0.0.2"; },
      [](AuditRow& r) { r.patient_context = "1"; },
      [](AuditRow& r) { r.patients = "2"; },
      [](AuditRow& r) { r.entities = "Patient/2"; },
      [](AuditRow& r) { r.detail = "why"; },
  };
  for (std::size_t i = 0; i < changes.size(); ++i) {
    AuditRow r = base;
    changes[i](r);
    BOOST_TEST(canonical(r) != c0, "change " << i);
  }
  // Length prefixes: moving a character from one field to the next is a change too.
  AuditRow a = base, b = base;
  a.account_id = "ab";
  a.role = "c";
  b.account_id = "a";
  b.role = "bc";
  BOOST_TEST(canonical(a) != canonical(b));
}

BOOST_AUTO_TEST_CASE(digests_and_block_hashes) {
  const AuditRow r = sample();
  const std::string d = digest_entry(r);
  BOOST_TEST(d.size() == kDigestEntry);
  BOOST_TEST(d.substr(0, 16) == "0000000000000007");  // the id, hex
  BOOST_TEST(d.substr(16) == kasama::storage::sha256_hex(canonical(r)));
  kasama::storage::SealRow seal;
  seal.first_id = seal.last_id = 7;
  seal.events = 1;
  seal.digests = d;
  const std::string h = block_hash(kGenesis, seal);
  BOOST_TEST(h == kasama::storage::sha256_hex(kGenesis + "7:7:0:1:" + d));
  BOOST_TEST(block_hash(h, seal) != h);  // chained
  // Every field of the block is covered: changing any one changes the hash.
  std::vector<std::function<void(kasama::storage::SealRow&)>> changes = {
      [](auto& x) { x.first_id = 6; }, [](auto& x) { x.last_id = 8; }, [](auto& x) { x.prev_id = 1; },
      [](auto& x) { x.events = 2; }, [](auto& x) { x.digests[20] = x.digests[20] == 'a' ? 'b' : 'a'; }};
  for (std::size_t i = 0; i < changes.size(); ++i) {
    auto x = seal;
    changes[i](x);
    BOOST_TEST(block_hash(kGenesis, x) != h, "field " << i);
  }
}

BOOST_AUTO_TEST_CASE(scanning_bodies_finds_resources_and_patients) {
  struct Case {
    const char* body;
    const char* entities;
    const char* patients;
  };
  const Case cases[] = {
      {R"({"resourceType":"Patient","id":"p1","name":[{"family":"X"}]})", "Patient/p1", "p1"},
      {R"({"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p2"}})", "Observation/o1", "p2"},
      {R"({"resourceType": "Observation", "id": "o1", "subject": {"reference": "https://h/fhir/Patient/p3/_history/2"}})",
       "Observation/o1", "p3"},
      // A searchset: entries by fullUrl, patients by reference.
      {R"({"resourceType":"Bundle","type":"searchset","entry":[{"fullUrl":"https://h/fhir/Patient/a","resource":{"resourceType":"Patient","id":"a"}},{"fullUrl":"https://h/fhir/Encounter/e","resource":{"resourceType":"Encounter","id":"e","subject":{"reference":"Patient/b"}}}]})",
       "Encounter/e Patient/a", "a b"},
      // A transaction-response: locations.
      {R"({"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created","location":"Patient/n1/_history/1"}}]})",
       "Patient/n1", "n1"},
      // A batch-response entry without fullUrl: resourceType + id.
      {R"({"resourceType":"Bundle","type":"batch-response","entry":[{"resource":{"resourceType":"Patient","id":"q"},"response":{"status":"200 OK"}}]})",
       "Patient/q", "q"},
      // References that are not to Patients, contained and logical references.
      {R"({"resourceType":"Observation","id":"o2","performer":[{"reference":"Practitioner/x"}],"subject":{"reference":"#c1"}})",
       "Observation/o2", ""},
      // An OperationOutcome names nothing.
      {R"({"resourceType":"OperationOutcome","id":"oo","issue":[]})", "", ""},
      // A type that is no type name (not ASCII letters) names nothing.
      {R"({"resourceType":"P\u00e4tient","id":"x"})", "", ""},
      {"{\"resourceType\":\"P\xc3\xa4tient\",\"id\":\"x\"}", "", ""},
      // Ids with characters ids never have are ignored.
      {R"({"resourceType":"Observation","id":"o3","subject":{"reference":"Patient/a b"}})", "Observation/o3", ""},
      {"not json", "", ""},
      {"", "", ""},
  };
  for (const auto& c : cases) {
    Touched t;
    scan_body(c.body, t);
    BOOST_TEST(t.entities_text() == c.entities, c.body);
    BOOST_TEST(t.patients_text() == c.patients, c.body);
  }
}

BOOST_AUTO_TEST_CASE(touched_lists_are_bounded) {
  Touched t;
  for (int i = 0; i < 5000; ++i) t.entity("Patient", "p" + std::to_string(i));
  BOOST_TEST(t.entities.size() == Touched::kMaxEntities);
  BOOST_TEST(t.patients.size() == Touched::kMaxPatients);
  BOOST_TEST(t.truncated);
}

BOOST_AUTO_TEST_CASE(scanner_survives_arbitrary_bytes) {
  std::mt19937 rng(20261130);
  const std::string alphabet = "{}[]\":, resourceTypeidfullUrlreferencelocationPatient/_history\\0123456789\xc3\xa4";
  for (int i = 0; i < 20000; ++i) {
    std::string s = "{";
    const int n = static_cast<int>(rng() % 300);
    for (int k = 0; k < n; ++k) {
      s += rng() % 5 == 0 ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
    }
    Touched t;
    scan_body(s, t);
    BOOST_TEST_REQUIRE(t.entities.size() <= Touched::kMaxEntities);
    // Only what the ASCII columns can hold: Type/id with a letters-only type and an id's characters.
    for (const auto& e : t.entities) {
      const auto slash = e.find('/');
      BOOST_TEST_REQUIRE((slash != std::string::npos && slash > 0 && slash <= 64));
      BOOST_TEST_REQUIRE(std::isupper(static_cast<unsigned char>(e[0])));
      for (std::size_t k = 0; k < e.size(); ++k) {
        const char ch = e[k];
        const bool ok = k < slash    ? std::isalpha(static_cast<unsigned char>(ch)) != 0
                        : k == slash ? true
                                     : std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '.';
        BOOST_TEST_REQUIRE(ok, e);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(audit_event_shape) {
  AuditRow r = sample();
  r.outcome = 4;
  r.denied = true;
  r.status = 403;
  const auto ev = to_audit_event(r);
  BOOST_TEST(ev["resourceType"] == "AuditEvent");
  BOOST_TEST(ev["type"]["code"] == "rest");
  BOOST_TEST(ev["subtype"][0]["code"] == "read");
  BOOST_TEST(ev["outcome"] == "4");
  BOOST_TEST(ev["agent"][0]["who"]["identifier"]["value"] == "s-abc");
  BOOST_TEST(ev["agent"][1]["altId"] == "T-1");
  bool patient = false;
  for (const auto& e : ev["entity"]) patient |= e.contains("what") && e["what"].value("reference", "") == "Patient/1";
  BOOST_TEST(patient);
}

BOOST_AUTO_TEST_CASE(canonical_bytes_decode_back_and_nothing_else_does) {
  AuditRow r = sample();
  r.detail = "改ざん: 1:2:3 \n\x01";
  r.denied = true;
  const auto back = decode_canonical(canonical(r));
  BOOST_TEST_REQUIRE(back.has_value());
  BOOST_TEST(canonical(*back) == canonical(r));
  const std::string c = canonical(r);
  BOOST_TEST(!decode_canonical(c + "x"));
  BOOST_TEST(!decode_canonical(c.substr(0, c.size() - 1)));
  BOOST_TEST(!decode_canonical(""));
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string s = c;
    s[rng() % s.size()] = static_cast<char>(rng() % 256);
    if (auto d = decode_canonical(s)) BOOST_TEST_REQUIRE(canonical(*d) == s);  // decodes only what it encodes
  }
}
