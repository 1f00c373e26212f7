#define BOOST_TEST_MODULE http_parser
// The HTTP/1.1 request parser (server/http/http_parser.hpp): a table of requests, valid,
// malformed, smuggling attempts and over the limits, each fed whole, byte by byte and in
// odd pieces (the answer must not depend on how the bytes arrive); then deterministic
// random mutations of valid requests, checked for the same independence from the split, for
// termination and for bounded memory. tests/fuzz/http_parser_fuzz.cpp is the libFuzzer twin.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "server/http/http_parser.hpp"

using namespace kasama::server;
using Result = HttpRequestParser::Result;

namespace kasama::server {
std::ostream& operator<<(std::ostream& os, HttpRequestParser::Result r) {
  return os << (r == Result::kRequest ? "kRequest" : r == Result::kError ? "kError" : "kNeedMore");
}
}  // namespace kasama::server

namespace {

HttpLimits small_limits() {
  HttpLimits l;
  l.max_body = 16;
  l.max_discard = 64;
  return l;
}

std::string describe(const HttpRequest& r) {
  std::string s = r.method + " " + r.target + " 1." + std::to_string(r.minor_version);
  if (!r.keep_alive) s += " close";
  if (!r.body.empty()) s += " [" + r.body + "]";
  if (r.body_too_large) s += " too-large";
  return s;
}

// Feeds input in pieces of `step` bytes (0: whole), writing each request and the end state
// into a trace: "GET / 1.1 | idle", "... | E400".
std::string trace(const std::string& input, const HttpLimits& limits, std::size_t step) {
  HttpRequestParser p(limits);
  std::string out;
  std::size_t off = 0;
  for (int guard = 0; guard < 1'000'000; ++guard) {
    const Result r = p.next();
    if (r == Result::kRequest) {
      out += describe(p.request()) + " | ";
      continue;
    }
    if (r == Result::kError) return out + "E" + std::to_string(p.error().status);
    if (off >= input.size()) return out + (p.idle() ? "idle" : "partial");
    const std::size_t n = step == 0 ? input.size() - off : std::min(step, input.size() - off);
    p.feed(std::string_view(input).substr(off, n));
    off += n;
  }
  return out + "no end";
}

struct Case {
  std::string name;
  std::string input;
  std::string want;
  HttpLimits limits = {};
};

std::string many_fields(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "X-F" + std::to_string(i) + ": v\r\n";
  return s;
}

std::vector<Case> cases() {
  const std::string H = "Host: example.org\r\n";
  std::vector<Case> c = {
      // --- valid
      {"simple GET", "GET /fhir/Patient/1 HTTP/1.1\r\n" + H + "\r\n", "GET /fhir/Patient/1 1.1 | idle"},
      {"HTTP/1.0 closes by default", "GET /fhir HTTP/1.0\r\n\r\n", "GET /fhir 1.0 close | idle"},
      {"HTTP/1.0 keep-alive", "GET /fhir HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET /fhir 1.0 | idle"},
      {"Connection: close", "GET / HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", "GET / 1.1 close | idle"},
      {"Connection list with close", "GET / HTTP/1.1\r\n" + H + "Connection: keep-alive, CLOSE\r\n\r\n",
       "GET / 1.1 close | idle"},
      {"Content-Length body", "POST /fhir/Patient HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\nhello",
       "POST /fhir/Patient 1.1 [hello] | idle"},
      {"Content-Length 0", "POST /x HTTP/1.1\r\n" + H + "Content-Length: 0\r\n\r\n", "POST /x 1.1 | idle"},
      {"same Content-Length in a list", "POST /x HTTP/1.1\r\n" + H + "Content-Length: 3, 3\r\n\r\nabc",
       "POST /x 1.1 [abc] | idle"},
      {"same Content-Length twice", "POST /x HTTP/1.1\r\n" + H + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
       "POST /x 1.1 [abc] | idle"},
      {"chunked",
       "POST /x HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
       "POST /x 1.1 [hello world] | idle"},
      {"chunked with extensions",
       "POST /x HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n2 ;x\r\nde\r\n0;end\r\n\r\n",
       "POST /x 1.1 [abcde] | idle"},
      {"chunked with trailers",
       "POST /x HTTP/1.1\r\n" + H +
           "Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n",
       "POST /x 1.1 [ab] | idle"},
      {"chunked, upper-case hex and coding name",
       "POST /x HTTP/1.1\r\n" + H + "Transfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
       "POST /x 1.1 [0123456789] | idle"},
      {"pipelined GETs", "GET /a HTTP/1.1\r\n" + H + "\r\nGET /b HTTP/1.1\r\n" + H + "\r\n",
       "GET /a 1.1 | GET /b 1.1 | idle"},
      {"pipelined POST then GET",
       "POST /a HTTP/1.1\r\n" + H + "Content-Length: 2\r\n\r\nokGET /b HTTP/1.1\r\n" + H + "\r\n",
       "POST /a 1.1 [ok] | GET /b 1.1 | idle"},
      {"pipelined chunked then GET",
       "POST /a HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nGET /b HTTP/1.1\r\n" + H +
           "\r\n",
       "POST /a 1.1 [x] | GET /b 1.1 | idle"},
      {"empty lines before the request", "\r\n\r\nGET / HTTP/1.1\r\n" + H + "\r\n", "GET / 1.1 | idle"},
      {"bare LF line ends", "GET /lf HTTP/1.1\nHost: a\n\n", "GET /lf 1.1 | idle"},
      {"HEAD", "HEAD /fhir/metadata HTTP/1.1\r\n" + H + "\r\n", "HEAD /fhir/metadata 1.1 | idle"},
      {"absolute-form target", "GET https://example.org:8443/fhir/Patient?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
       "GET /fhir/Patient?x=1 1.1 | idle"},
      {"absolute-form without a path", "GET http://example.org HTTP/1.1\r\n\r\n", "GET / 1.1 | idle"},
      {"absolute-form with only a query", "GET HTTP://example.org?a=b HTTP/1.1\r\n\r\n", "GET /?a=b 1.1 | idle"},
      {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" + H + "\r\n", "OPTIONS * 1.1 | idle"},
      {"obs-text in a value", "GET / HTTP/1.1\r\n" + H + "X-Name: \xe7\xac\xa0\xe9\x96\x93\r\n\r\n",
       "GET / 1.1 | idle"},
      {"HTTP/1.0 without Host", "GET /fhir/metadata HTTP/1.0\r\nAccept: */*\r\n\r\n",
       "GET /fhir/metadata 1.0 close | idle"},
      {"exactly 100 fields", "GET / HTTP/1.1\r\n" + H + many_fields(99) + "\r\n", "GET / 1.1 | idle"},
      {"incomplete head", "GET / HTTP/1.1\r\nHost: a\r\n", "partial"},
      {"incomplete body", "POST / HTTP/1.1\r\n" + H + "Content-Length: 10\r\n\r\nabc", "partial"},
      {"incomplete chunked body", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5\r\nab", "partial"},
      {"nothing", "", "idle"},
      // --- malformed
      {"obs-fold", "GET / HTTP/1.1\r\n" + H + "X-A: one\r\n two\r\n\r\n", "E400"},
      {"whitespace before the first field", "GET / HTTP/1.1\r\n " + H + "\r\n", "E400"},
      {"whitespace before the colon", "GET / HTTP/1.1\r\n" + H + "X-A : b\r\n\r\n", "E400"},
      {"field without colon", "GET / HTTP/1.1\r\n" + H + "X-A b\r\n\r\n", "E400"},
      {"empty field name", "GET / HTTP/1.1\r\n" + H + ": b\r\n\r\n", "E400"},
      {"bare CR in a field", "GET / HTTP/1.1\r\n" + H + "X-A: b\rc\r\n\r\n", "E400"},
      {"NUL in a value", "GET / HTTP/1.1\r\n" + H + std::string("X-A: b\0c\r\n\r\n", 12), "E400"},
      {"two spaces in the request line", "GET  / HTTP/1.1\r\n" + H + "\r\n", "E400"},
      {"request line without version", "GET /\r\n" + H + "\r\n", "E400"},
      {"lower-case protocol name", "GET / http/1.1\r\n" + H + "\r\n", "E400"},
      {"version with trailing junk", "GET / HTTP/1.10\r\n" + H + "\r\n", "E400"},
      {"HTTP/2.0", "GET / HTTP/2.0\r\n" + H + "\r\n", "E505"},
      {"HTTP/1.2", "GET / HTTP/1.2\r\n" + H + "\r\n", "E505"},
      {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", "E505"},
      {"relative target", "GET fhir/Patient HTTP/1.1\r\n" + H + "\r\n", "E400"},
      {"control character in the target", "GET /a\x01 HTTP/1.1\r\n" + H + "\r\n", "E400"},
      {"absolute-form with userinfo", "GET http://u@h/ HTTP/1.1\r\n\r\n", "E400"},
      {"method with a non-token character", "GE(T / HTTP/1.1\r\n" + H + "\r\n", "E400"},
      {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "E400"},
      {"two Host fields", "GET / HTTP/1.1\r\n" + H + H + "\r\n", "E400"},
      {"Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "E400"},
      {"binary junk", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15), "E400"},
      // --- request smuggling
      {"Transfer-Encoding and Content-Length",
       "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "E400"},
      {"Content-Length and Transfer-Encoding",
       "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "E400"},
      {"different Content-Lengths", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 2\r\n\r\nhello",
       "E400"},
      {"different Content-Lengths in a list", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5, 2\r\n\r\nhello", "E400"},
      {"Content-Length with a sign", "POST / HTTP/1.1\r\n" + H + "Content-Length: +5\r\n\r\nhello", "E400"},
      {"Content-Length not a number", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5a\r\n\r\nhello", "E400"},
      {"Content-Length empty", "POST / HTTP/1.1\r\n" + H + "Content-Length:\r\n\r\n", "E400"},
      {"Content-Length hex", "POST / HTTP/1.1\r\n" + H + "Content-Length: 0x5\r\n\r\nhello", "E400"},
      {"Content-Length overflowing", "POST / HTTP/1.1\r\n" + H + "Content-Length: 18446744073709551621\r\n\r\nhello",
       "E400"},
      {"Content-Length with a space before the colon", "POST / HTTP/1.1\r\n" + H + "Content-Length : 5\r\n\r\nhello",
       "E400"},
      {"unknown transfer coding", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", "E400"},
      {"gzip, chunked", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "E400"},
      {"chunked twice",
       "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "E400"},
      {"chunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "E400"},
      {"vertical tab before chunked",
       "POST / HTTP/1.1\r\n" + H +
           "Transfer-Encoding: \x0b"
           "chunked\r\n\r\n0\r\n\r\n",
       "E400"},
      {"invalid chunk size", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
       "E400"},
      {"negative chunk size", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n",
       "E400"},
      {"chunk size followed by whitespace only",
       "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n2 \r\nab\r\n0\r\n\r\n", "E400"},
      {"chunk size with 17 hex digits",
       "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n10000000000000002\r\nab\r\n0\r\n\r\n", "E400"},
      {"chunk data longer than its size",
       "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "E400"},
      {"malformed trailer", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-A : b\r\n\r\n",
       "E400"},
      // --- limits (small_limits: 16 body bytes kept, 64 read in all)
      {"body over the limit is dropped and the connection goes on",
       "POST /a HTTP/1.1\r\n" + H + "Content-Length: 20\r\n\r\n01234567890123456789GET /b HTTP/1.1\r\n" + H + "\r\n",
       "POST /a 1.1 too-large | GET /b 1.1 | idle", small_limits()},
      {"body over the limit with Expect: 100-continue",
       "POST /a HTTP/1.1\r\n" + H + "Expect: 100-continue\r\nContent-Length: 20\r\n\r\n", "E413", small_limits()},
      {"body over the discard limit", "POST /a HTTP/1.1\r\n" + H + "Content-Length: 65\r\n\r\n", "E413",
       small_limits()},
      {"chunked body over the limit",
       "POST /a HTTP/1.1\r\n" + H +
           "Transfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nx\r\n0\r\n\r\nGET /b HTTP/1.1\r\n" + H +
           "\r\n",
       "POST /a 1.1 too-large | GET /b 1.1 | idle", small_limits()},
      {"chunked body at the limit",
       "POST /a HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
       "POST /a 1.1 [0123456789abcdef] | idle", small_limits()},
      {"chunked body over the discard limit",
       "POST /a HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n30\r\n" + std::string(48, 'a') + "\r\n11\r\n",
       "E413", small_limits()},
      {"101 fields", "GET / HTTP/1.1\r\n" + H + many_fields(100) + "\r\n", "E431"},
      {"header section over 64 KiB", "GET / HTTP/1.1\r\n" + H + "X-Big: " + std::string(70000, 'a') + "\r\n\r\n",
       "E431"},
      {"header section just under 64 KiB", "GET / HTTP/1.1\r\n" + H + "X-Big: " + std::string(65000, 'a') + "\r\n\r\n",
       "GET / 1.1 | idle"},
      {"request line over 64 KiB", "GET /" + std::string(70000, 'a') + " HTTP/1.1\r\n" + H + "\r\n", "E414"},
      {"endless empty lines", std::string(70000, '\n'), "E414"},
      {"101 trailer fields",
       "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\n" + many_fields(101) + "\r\n", "E431"},
      {"chunk extension over 4 KiB",
       "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n1;" + std::string(5000, 'e') +
           "\r\nx\r\n0\r\n\r\n",
       "E400"},
  };
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(table_whole_bytewise_and_split) {
  const auto all = cases();
  BOOST_TEST(all.size() >= 40u);
  for (const Case& c : all) {
    BOOST_TEST_CONTEXT(c.name) {
      BOOST_TEST(trace(c.input, c.limits, 0) == c.want);
      if (c.input.size() < 5000) BOOST_TEST(trace(c.input, c.limits, 1) == c.want);
      BOOST_TEST(trace(c.input, c.limits, 7) == c.want);
      BOOST_TEST(trace(c.input, c.limits, 16384) == c.want);
    }
  }
}

BOOST_AUTO_TEST_CASE(fields_host_and_target) {
  HttpRequestParser p;
  p.feed(
      "GET /fhir/Patient?name=x HTTP/1.1\r\nHOST: example.org:8443\r\nAccept:  application/fhir+json \t\r\n"
      "X-Request-Id: abc\r\nX-Empty:\r\n\r\n");
  BOOST_REQUIRE(p.next() == Result::kRequest);
  const HttpRequest& r = p.request();
  BOOST_TEST(r.host == "example.org:8443");
  BOOST_TEST(r.target == "/fhir/Patient?name=x");
  BOOST_REQUIRE(r.field("accept"));
  BOOST_TEST(*r.field("accept") == "application/fhir+json");
  BOOST_TEST(*r.field("x-request-id") == "abc");
  BOOST_TEST(*r.field("x-empty") == "");
  BOOST_TEST(r.fields.size() == 4u);
  BOOST_TEST(r.fields[0].first == "host");
  BOOST_TEST(!r.content_length.has_value());
}

BOOST_AUTO_TEST_CASE(absolute_form_authority_replaces_host) {
  HttpRequestParser p;
  p.feed("GET https://fhir.example:1/fhir/metadata HTTP/1.1\r\nHost: elsewhere\r\n\r\n");
  BOOST_REQUIRE(p.next() == Result::kRequest);
  BOOST_TEST(p.request().host == "fhir.example:1");
  BOOST_TEST(p.request().target == "/fhir/metadata");
}

BOOST_AUTO_TEST_CASE(expect_continue_is_awaited_only_before_the_body) {
  HttpRequestParser p(small_limits());
  p.feed("POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n");
  BOOST_TEST(p.next() == Result::kNeedMore);
  BOOST_TEST(p.head_complete());
  BOOST_TEST(!p.idle());
  BOOST_TEST(p.awaiting_continue());
  p.continue_sent();
  BOOST_TEST(!p.awaiting_continue());
  p.feed("body");
  BOOST_REQUIRE(p.next() == Result::kRequest);
  BOOST_TEST(p.request().body == "body");
  BOOST_TEST(p.request().expect_continue);

  // The body already came with the head: nothing to wait for.
  HttpRequestParser q;
  q.feed("POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbo");
  BOOST_TEST(q.next() == Result::kNeedMore);
  BOOST_TEST(!q.awaiting_continue());

  // HTTP/1.0 clients do not know 100 Continue.
  HttpRequestParser r;
  r.feed("POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  BOOST_TEST(r.next() == Result::kNeedMore);
  BOOST_TEST(!r.awaiting_continue());
}

BOOST_AUTO_TEST_CASE(idle_between_requests_and_errors_stick) {
  HttpRequestParser p;
  BOOST_TEST(p.idle());
  p.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET");
  BOOST_TEST(p.next() == Result::kRequest);
  BOOST_TEST(!p.idle());  // the next request has begun
  BOOST_TEST(p.next() == Result::kNeedMore);
  BOOST_TEST(!p.idle());
  p.feed(" / HTTP/1.1\r\nHost: a\r\n\r\n");
  BOOST_TEST(p.next() == Result::kRequest);
  BOOST_TEST(p.idle());
  BOOST_TEST(p.next() == Result::kNeedMore);
  BOOST_TEST(p.idle());
  p.feed("BAD\r\n\r\n");
  BOOST_TEST(p.next() == Result::kError);
  p.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  BOOST_TEST(p.next() == Result::kError);
  BOOST_TEST(p.error().status == 400);
  BOOST_TEST(!p.error().message.empty());
}

BOOST_AUTO_TEST_CASE(prepare_and_commit_read_in_place) {
  HttpRequestParser p;
  const std::string req = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
  std::size_t off = 0;
  Result r = Result::kNeedMore;
  while (r == Result::kNeedMore && off < req.size()) {
    auto room = p.prepare(16);
    BOOST_REQUIRE(room.size() >= 16u);
    const std::size_t n = std::min<std::size_t>(5, req.size() - off);
    std::copy_n(req.data() + off, n, room.data());
    p.commit(n);
    off += n;
    r = p.next();
  }
  BOOST_REQUIRE(r == Result::kRequest);
  BOOST_TEST(p.request().body == "abc");
  BOOST_TEST(*p.request().content_length == 3u);
}

// ---------------------------------------------------------------------------------------
// Deterministic random mutations.

namespace {

std::string mutate(std::string s, std::mt19937& rng) {
  static const std::vector<std::string> pieces = {
      "\r\n",
      "\n",
      "\r",
      " ",
      "\t",
      ":",
      ";",
      ",",
      "0",
      "\r\n\r\n",
      "Transfer-Encoding: chunked\r\n",
      "Content-Length: 7\r\n",
      "Content-Length: 99999999999\r\n",
      "Expect: 100-continue\r\n",
      "Host: h\r\n",
      "Connection: close\r\n",
      "ffffffff\r\n",
      "0\r\n\r\n",
      "HTTP/1.0",
      "HTTP/1.1",
      std::string(1, '\0'),
      "\x80",
      " chunked",
  };
  std::uniform_int_distribution<int> op(0, 7);
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < edits; ++i) {
    const std::size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (op(rng)) {
      case 0:
        if (!s.empty()) s.erase(std::min(pos, s.size() - 1), 1 + rng() % 8);
        break;
      case 1:
        s.insert(pos, 1, static_cast<char>(rng() % 256));
        break;
      case 2:
        s.insert(pos, pieces[rng() % pieces.size()]);
        break;
      case 3:
        s.resize(pos);
        break;
      case 4:
        if (!s.empty()) s.insert(pos, s.substr(rng() % s.size(), rng() % 64));
        break;
      case 5:
        if (!s.empty()) s[std::min(pos, s.size() - 1)] = "\r\n :;,0aF-"[rng() % 10];
        break;
      case 6:
        s.insert(pos, std::string(rng() % 3000, "a\n "[rng() % 3]));
        break;
      default:
        s += s.substr(0, rng() % (s.size() + 1));
        break;  // pipelined repeat
    }
  }
  return s;
}

// Runs the parser over input split at random points, checking its promises on the way.
std::string checked_trace(const std::string& input, const HttpLimits& limits, std::mt19937& rng) {
  HttpRequestParser p(limits);
  std::string out;
  std::size_t off = 0;
  for (int guard = 0;; ++guard) {
    BOOST_REQUIRE(guard < 1'000'000);
    const Result r = p.next();
    if (r == Result::kRequest) {
      const HttpRequest& q = p.request();
      BOOST_REQUIRE(q.body.size() <= limits.max_body);
      BOOST_REQUIRE(q.fields.size() <= limits.max_fields);
      if (q.content_length && !q.body_too_large) BOOST_REQUIRE(q.body.size() == *q.content_length);
      if (q.body_too_large) BOOST_REQUIRE(q.body.empty());
      out += describe(q) + " | ";
      continue;
    }
    if (r == Result::kError) {
      BOOST_REQUIRE(p.next() == Result::kError);  // stays failed
      return out + "E" + std::to_string(p.error().status);
    }
    // What stays buffered while waiting is one partial line at most.
    BOOST_REQUIRE(p.buffered() <= std::max(limits.max_head, HttpRequestParser::kMaxChunkLine) + 1);
    if (off >= input.size()) return out + (p.idle() ? "idle" : "partial");
    const std::size_t n = std::min<std::size_t>(1 + rng() % 40, input.size() - off);
    p.feed(std::string_view(input).substr(off, n));
    off += n;
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(mutations_terminate_and_do_not_depend_on_the_split) {
  std::mt19937 rng(20261122);
  HttpLimits limits;
  limits.max_head = 4096;  // small, so that mutations reach the limits too
  limits.max_fields = 20;
  limits.max_body = 64;
  limits.max_discard = 256;
  std::vector<std::string> seeds;
  for (const Case& c : cases()) {
    if (c.input.size() < 2000) seeds.push_back(c.input);
  }
  int requests = 0, errors = 0, partial = 0;
  for (const std::string& seed : seeds) {
    for (int i = 0; i < 150; ++i) {
      const std::string input = mutate(seed, rng);
      const std::string whole = trace(input, limits, 0);
      const std::string split = checked_trace(input, limits, rng);
      BOOST_TEST_CONTEXT("input: " << input) {
        BOOST_TEST(whole == split);
      }
      const auto bar = whole.rfind("| ");
      const std::string end = bar == std::string::npos ? whole : whole.substr(bar + 2);
      if (end == "partial" || end == "idle") ++partial;
      if (end.front() == 'E') ++errors;
      if (bar != std::string::npos) ++requests;
    }
  }
  BOOST_TEST_MESSAGE("mutations: " << requests << " gave requests, " << errors << " errors, " << partial
                                   << " ended waiting");
  BOOST_TEST(requests > 100);
  BOOST_TEST(errors > 100);
}
