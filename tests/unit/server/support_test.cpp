#define BOOST_TEST_MODULE server_support
#include <boost/test/unit_test.hpp>

#include <regex>
#include <set>

#include "server/interactions/interactions.hpp"
#include "server/interactions/support.hpp"
#include "server/storage/db.hpp"
#include "server/storage/migrations.hpp"
#include "server/storage/resource_cache.hpp"

using namespace kasama;
using namespace kasama::server;

namespace {
RestRequest request(const std::string& method, const std::string& url) {
  RestRequest r;
  r.method = method;
  split_url(url, r.segments, r.params);
  return r;
}
}  // namespace

BOOST_AUTO_TEST_CASE(routes) {
  struct Case {
    const char* method;
    const char* url;
    int status;  // 0 = routed
    Kind kind;
  };
  const Case cases[] = {
      {"GET", "metadata", 0, Kind::kCapabilities},
      {"POST", "", 0, Kind::kBatchOrTransaction},
      {"GET", "_history", 0, Kind::kHistorySystem},
      {"GET", "Patient", 0, Kind::kSearchType},
      {"POST", "Patient", 0, Kind::kCreate},
      {"PUT", "Patient?identifier=a|b", 0, Kind::kConditionalUpdate},
      {"DELETE", "Patient?identifier=a|b", 0, Kind::kConditionalDelete},
      {"PATCH", "Patient?identifier=a|b", 0, Kind::kConditionalPatch},
      {"GET", "Patient/_history", 0, Kind::kHistoryType},
      {"GET", "Patient/1", 0, Kind::kRead},
      {"HEAD", "Patient/1", 0, Kind::kRead},
      {"PUT", "Patient/1", 0, Kind::kUpdate},
      {"PATCH", "Patient/1", 0, Kind::kPatch},
      {"DELETE", "Patient/1", 0, Kind::kDelete},
      {"GET", "Patient/1/_history", 0, Kind::kHistoryInstance},
      {"GET", "Patient/1/_history/2", 0, Kind::kVread},
      {"GET", "Patiant/1", 404, Kind::kRead},
      {"GET", "DomainResource/1", 404, Kind::kRead},
      {"GET", "Patient/1/x", 404, Kind::kRead},
      {"POST", "Patient/1", 405, Kind::kRead},
      {"DELETE", "metadata", 405, Kind::kRead},
      {"PUT", "", 405, Kind::kRead},
      {"GET", "Patient/bad$id", 400, Kind::kRead},
      {"GET", "Patient/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 400,
       Kind::kRead},  // 65 chars
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.method << " " << c.url) {
      RestRequest r = request(c.method, c.url);
      try {
        Route route_info = route(r);
        BOOST_TEST(c.status == 0);
        BOOST_TEST(static_cast<int>(route_info.kind) == static_cast<int>(c.kind));
      } catch (const FhirError& e) {
        BOOST_TEST(e.status() == c.status);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(url_splitting_and_decoding) {
  std::vector<std::string> seg;
  std::vector<std::pair<std::string, std::string>> params;
  split_url("/Patient/abc?identifier=urn:oid:1.2%7C%E5%B1%B1&name=a+b&flag&_since=2024-01-01T00:00:00%2B09:00", seg,
            params);
  BOOST_TEST(seg.size() == 2u);
  BOOST_TEST(seg[1] == "abc");
  BOOST_REQUIRE(params.size() == 4u);
  BOOST_TEST(params[0].second == "urn:oid:1.2|山");
  BOOST_TEST(params[1].second == "a b");
  BOOST_TEST(params[2].first == "flag");
  BOOST_TEST(params[3].second == "2024-01-01T00:00:00+09:00");
  BOOST_TEST(percent_decode("%zz%4", false) == "%zz%4");  // malformed escapes stay as they are
  BOOST_TEST(percent_encode("a|b c/山") == "a%7Cb%20c/%E5%B1%B1");
  auto c = parse_criteria("Patient?identifier=s|v&_id=1");
  BOOST_REQUIRE(c.size() == 2u);
  BOOST_TEST(c[0].first == "identifier");
  BOOST_TEST(criteria_hash("Patient", c) == criteria_hash("Patient", parse_criteria("_id=1&identifier=s|v")));
  BOOST_TEST(criteria_hash("Patient", c) != criteria_hash("Group", c));
}

BOOST_AUTO_TEST_CASE(ids_are_uuid_v4_and_unique) {
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    auto id = new_resource_id();
    BOOST_REQUIRE(std::regex_match(id, uuid));
    seen.insert(id);
  }
  BOOST_TEST(seen.size() == 10000u);
}

BOOST_AUTO_TEST_CASE(base64) {
  BOOST_TEST(*base64_decode("W3sib3AiOiJ0ZXN0In1d") == R"([{"op":"test"}])");
  BOOST_TEST(*base64_decode("YQ==") == "a");
  BOOST_TEST(!base64_decode("Y*Q=").has_value());
  BOOST_TEST(!base64_decode("YQ==YQ").has_value());
}

BOOST_AUTO_TEST_CASE(if_match_forms) {
  RestRequest r;
  r.headers = {{"if-match", "W/\"12\""}};
  BOOST_TEST(*if_match_version(r) == 12u);
  r.headers = {{"if-match", "\"3\""}};
  BOOST_TEST(*if_match_version(r) == 3u);
  r.headers = {{"if-match", "W/\"x\""}};
  BOOST_CHECK_THROW(if_match_version(r), FhirError);
  r.headers.clear();
  BOOST_TEST(!if_match_version(r).has_value());
}

BOOST_AUTO_TEST_CASE(bundle_writer_splices_raw_resources) {
  BundleWriter b("searchset");
  b.total(2);
  b.link("self", "https://x/fhir/Patient?a=\"b\"");
  b.entry("https://x/fhir/Patient/1", R"({"resourceType":"Patient","id":"1","x":1.50})",
          Json{{"search", {{"mode", "match"}}}});
  auto parsed = resources::parse_json(b.finish());
  BOOST_REQUIRE(parsed.ok);
  BOOST_TEST(parsed.value["total"] == 2);
  BOOST_TEST(parsed.value["entry"][0]["resource"]["id"] == "1");
  BOOST_TEST(*resources::number_text(parsed.value["entry"][0]["resource"]["x"]) == "1.50");
  BOOST_TEST(parsed.value["link"][0]["url"] == "https://x/fhir/Patient?a=\"b\"");
}

BOOST_AUTO_TEST_CASE(db_urls) {
  auto t = storage::DbTarget::parse_url("mariadb://u%40x:p%3Aw@db.example:3307/kasama");
  BOOST_TEST(t.user == "u@x");
  BOOST_TEST(t.password == "p:w");
  BOOST_TEST(t.host == "db.example");
  BOOST_TEST(t.port == 3307u);
  BOOST_TEST(t.database == "kasama");
  auto s = storage::DbTarget::parse_url("mariadb://app:secret@localhost/k?socket=/run/mysqld/mysqld.sock");
  BOOST_TEST(s.socket == "/run/mysqld/mysqld.sock");
  BOOST_TEST(s.describe().find("secret") == std::string::npos);
  BOOST_CHECK_THROW(storage::DbTarget::parse_url("postgres://x/y"), std::invalid_argument);
  BOOST_CHECK_THROW(storage::DbTarget::parse_url("mariadb://x"), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(migration_files_split_into_statements) {
  auto parts =
      storage::split_sql("-- comment; not a statement\nCREATE TABLE a (x INT);\nINSERT INTO a VALUES (';');\n");
  BOOST_REQUIRE(parts.size() == 2u);
  BOOST_TEST(parts[1].find("';'") != std::string::npos);
  const auto& all = storage::embedded_migrations();
  BOOST_REQUIRE(!all.empty());
  for (std::size_t i = 0; i < all.size(); ++i) BOOST_TEST(all[i].version == static_cast<int>(i + 1));
}

BOOST_AUTO_TEST_CASE(cache_never_goes_back_a_version_and_respects_its_budget) {
  storage::ResourceCache cache(16 * 4096);
  auto v = [](std::uint32_t version, std::size_t size) {
    auto e = std::make_shared<storage::CachedResource>();
    e->version = version;
    e->content.assign(size, 'x');
    return e;
  };
  cache.put("Patient", "1", v(2, 10));
  cache.put("Patient", "1", v(1, 10));  // a slow reader's older copy
  BOOST_TEST(cache.get("Patient", "1")->version == 2u);
  cache.put("Patient", "1", v(3, 10));
  BOOST_TEST(cache.get("Patient", "1")->version == 3u);
  for (int i = 0; i < 2000; ++i) cache.put("Observation", std::to_string(i), v(1, 1000));
  int kept = 0;
  for (int i = 0; i < 2000; ++i) kept += cache.get("Observation", std::to_string(i)) ? 1 : 0;
  BOOST_TEST(kept > 0);
  BOOST_TEST(kept < 100);  // 64 KiB budget holds about 60 entries of 1 KB
  storage::ResourceCache off(0);
  off.put("Patient", "1", v(1, 10));
  BOOST_TEST(!off.get("Patient", "1"));
}

BOOST_AUTO_TEST_CASE(cache_is_filled_by_reads_and_a_racing_write_wins) {
  storage::ResourceCache cache(1 << 20);
  auto v = [](std::uint32_t version) {
    auto e = std::make_shared<storage::CachedResource>();
    e->version = version;
    e->content = "{}";
    return e;
  };
  // A write of a resource nobody read does not enter the cache.
  cache.written("Patient", "w", v(1));
  BOOST_TEST(!cache.get("Patient", "w"));
  // A read fills it.
  auto t = cache.ticket("Patient", "w");
  cache.fill("Patient", "w", v(1), t);
  BOOST_TEST(cache.get("Patient", "w")->version == 1u);
  // A later write refreshes the entry.
  cache.written("Patient", "w", v(2));
  BOOST_TEST(cache.get("Patient", "w")->version == 2u);
  // A slow read that took its ticket before a write (of v2) must not cache what it read (v1).
  auto slow = cache.ticket("Patient", "r");
  cache.written("Patient", "r", v(2));
  cache.fill("Patient", "r", v(1), slow);
  BOOST_TEST(!cache.get("Patient", "r"));
  // Nor replace a newer entry.
  auto t2 = cache.ticket("Patient", "w");
  cache.fill("Patient", "w", v(1), t2);
  BOOST_TEST(cache.get("Patient", "w")->version == 2u);
}

BOOST_AUTO_TEST_CASE(parameter_value_escapes) {
  // search.html#escaping: "\," "\|" "\$" "\\" are literal characters of the value.
  auto parts = split_list(R"(a\,b,urn:x\|y|v\\,z)");
  BOOST_REQUIRE(parts.size() == 3u);
  BOOST_TEST(unescape(parts[0]) == "a,b");
  BOOST_TEST(parts[1] == R"(urn:x\|y|v\\)");  // the '|' escape survives for the token split
  BOOST_TEST(unescape(parts[1]) == R"(urn:x|y|v\)");
  BOOST_TEST(unescape(parts[2]) == "z");
  BOOST_TEST(split_list("").size() == 1u);
}
