#include "server/http/http_server.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Net/TCPServerParams.h>
#include <Poco/ThreadPool.h>
#include <Poco/Timespan.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <semaphore>
#include <string_view>
#include <unordered_set>

#include "resources/fhir_time.hpp"
#include "resources/json.hpp"
#include "server/http/http_parser.hpp"
#include "server/http/tls.hpp"
#include "server/interactions/support.hpp"
#include "server/log.hpp"
#include "server/storage/db.hpp"
#include "server/version.hpp"

namespace kasama::server {

using Clock = std::chrono::steady_clock;

// One per connection thread, registered with the hub while the thread serves it, so that
// stop() can wake the threads that wait for a request that will never be served.
struct ConnectionSlot {
  int fd = -1;
  std::atomic<bool> idle{true};  // waiting for the first byte of a request (or the handshake)
};

// What the connections share: the FHIR side, the limits, and the live connections.
class ConnectionHub {
 public:
  ConnectionHub(const Config& c, FhirService& s, AuthApi* a, const std::function<std::string()>& h,
                std::atomic<std::size_t>& n)
      : config(c), service(s), api(a), health(h), in_flight(n), handlers(static_cast<std::ptrdiff_t>(c.threads)) {
    limits.max_body = c.max_body;
    limits.max_discard = 4 * static_cast<std::uint64_t>(c.max_body);
  }

  const Config& config;
  FhirService& service;
  AuthApi* api;  // identity endpoints (/auth, /admin, SMART discovery); null: none
  const std::function<std::string()>& health;
  std::atomic<std::size_t>& in_flight;
  HttpLimits limits;
  unsigned port = 0;
  Poco::Net::ServerSocket listener;
  // KASAMA_THREADS requests are handled at once; connections, idle ones included, can be
  // many more (each has a thread, mostly blocked in a read).
  std::counting_semaphore<> handlers;
  std::atomic<bool> stopping{false};

  bool enter(ConnectionSlot& slot) {
    std::lock_guard lock(mutex_);
    if (stopping.load()) return false;
    live_.insert(&slot);
    return true;
  }

  void leave(ConnectionSlot& slot) {
    std::lock_guard lock(mutex_);
    live_.erase(&slot);
    if (live_.empty()) drained_.notify_all();
  }

  // Connections waiting for a request get end-of-file; the others finish their request and
  // then close, as they see `stopping`. A slot's fd stays open while it is registered (it
  // leaves before its socket closes), so no other file can be shut by mistake.
  void close_idle() {
    std::lock_guard lock(mutex_);
    stopping.store(true);
    for (ConnectionSlot* s : live_) {
      if (s->idle.load()) ::shutdown(s->fd, SHUT_RD);
    }
  }

  void abort_all() {
    std::lock_guard lock(mutex_);
    for (ConnectionSlot* s : live_) ::shutdown(s->fd, SHUT_RDWR);
  }

  bool wait_drained(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return drained_.wait_until(lock, deadline, [this] { return live_.empty(); });
  }

  std::size_t live() {
    std::lock_guard lock(mutex_);
    return live_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable drained_;
  std::unordered_set<ConnectionSlot*> live_;
};

namespace {

constexpr std::chrono::seconds kIdleTimeout{15};     // keep-alive: between requests
constexpr std::chrono::seconds kRequestTimeout{60};  // a request in progress: between reads, and for the whole head
constexpr std::chrono::seconds kSendTimeout{60};
constexpr std::chrono::seconds kLinger{2};
constexpr std::size_t kReadRoom = 16 * 1024;  // a TLS record's worth: SSL_read returns at most one
constexpr std::size_t kInlineBody = 1 << 20;  // bodies up to this go out in the same write as the head

// Poco's SecureSocketImpl, when a blocking read or write times out, polls once more for the
// socket's timeout before it gives up (mustRetry): the socket gets half the intended time.
Poco::Timespan half(std::chrono::seconds s) {
  return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(s.count()) * 500000);
}

bool sane_request_id(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string media_type(const std::string& header) {
  std::string v = lower(header.substr(0, header.find(';')));
  v.erase(std::remove_if(v.begin(), v.end(), [](char c) { return c == ' ' || c == '\t'; }), v.end());
  return v;
}

bool json_media(const std::string& t) {
  return t == "application/fhir+json" || t == "application/json" || t == "json" || t == "application/json+fhir" ||
         t == "text/json";
}

bool xml_media(const std::string& t) {
  return t == "application/fhir+xml" || t == "application/xml" || t == "xml" || t == "text/xml" ||
         t == "application/xml+fhir";
}

// What the client asks for: JSON unless it only accepts XML (which comes later).
void negotiate(const RestRequest& req) {
  if (const std::string* f = req.param("_format")) {
    std::string t = media_type(*f);
    if (json_media(t)) return;
    if (xml_media(t)) {
      throw FhirError(406, "not-supported",
                      "_format=" + *f + ": this server answers in JSON (application/fhir+json) only for now",
                      "_format");
    }
    throw FhirError(406, "not-supported", "Unknown _format '" + f->substr(0, 80) + "'", "_format");
  }
  const std::string* accept = req.header("accept");
  if (!accept || accept->empty()) return;
  bool any_xml = false;
  std::string rest = *accept;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string t = media_type(rest.substr(0, comma));
    if (json_media(t) || t == "*/*" || t == "application/*" || t == "text/*" || t.empty()) return;
    if (xml_media(t)) any_xml = true;
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  if (any_xml) {
    throw FhirError(406, "not-supported", "This server answers in JSON (application/fhir+json) only for now", "Accept");
  }
  throw FhirError(406, "not-supported", "Accept '" + accept->substr(0, 100) + "' names no format this server produces",
                  "Accept");
}

void check_content_type(const RestRequest& req) {
  if (req.body.empty()) return;
  const std::string* ct = req.header("content-type");
  if (!ct)
    throw FhirError(415, "not-supported", "A request body needs a Content-Type (application/fhir+json)",
                    "Content-Type");
  std::string t = media_type(*ct);
  if (req.method == "PATCH") {
    if (t == "application/json-patch+json") return;
    throw FhirError(415, "not-supported",
                    "PATCH takes application/json-patch+json (JSON Patch); '" + t + "' is not supported",
                    "Content-Type");
  }
  if (json_media(t)) return;
  // POST [type]/_search and POST /_search take a form body (search.html#2.21.0.1).
  if (t == "application/x-www-form-urlencoded" && req.method == "POST" && !req.segments.empty() &&
      req.segments.back() == "_search")
    return;
  if (xml_media(t)) {
    throw FhirError(415, "not-supported", "XML bodies are not accepted yet: send application/fhir+json",
                    "Content-Type");
  }
  throw FhirError(415, "not-supported", "Content-Type '" + t + "' is not a FHIR format; send application/fhir+json",
                  "Content-Type");
}

const char* reason_phrase(int status) {
  static constexpr std::pair<int, const char*> kPhrases[] = {
      {100, "Continue"},
      {200, "OK"},
      {201, "Created"},
      {202, "Accepted"},
      {204, "No Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {303, "See Other"},
      {304, "Not Modified"},
      {307, "Temporary Redirect"},
      {308, "Permanent Redirect"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {406, "Not Acceptable"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {410, "Gone"},
      {411, "Length Required"},
      {412, "Precondition Failed"},
      {413, "Payload Too Large"},
      {414, "URI Too Long"},
      {415, "Unsupported Media Type"},
      {417, "Expectation Failed"},
      {422, "Unprocessable Entity"},
      {428, "Precondition Required"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
  };
  for (const auto& [code, phrase] : kPhrases) {
    if (code == status) return phrase;
  }
  return "Unknown";
}

// The FHIR issue type for an HTTP-level refusal.
const char* issue_code(int status) {
  switch (status) {
    case 408:
      return "timeout";
    case 413:
      return "too-costly";
    case 414:
    case 431:
      return "too-long";
    case 505:
      return "not-supported";
    default:
      return "invalid";
  }
}

// Formatted once a second per thread rather than per response.
const std::string& http_date_now() {
  thread_local std::time_t cached = 0;
  thread_local std::string text;
  const std::time_t now = std::time(nullptr);
  if (now != cached) {
    cached = now;
    text = resources::format_http_date(static_cast<std::int64_t>(now) * 1000);
  }
  return text;
}

// Values come from the interactions (URLs, versions): a line break in one would let it
// write headers of its own, so those characters are left out.
void append_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  for (char c : value) {
    if (c != '\r' && c != '\n') out += c;
  }
  out += "\r\n";
}

// A request's path for the server log: a registration certificate's one-time token is a
// secret and stays out.
std::string logged_path(const RestRequest& req) {
  const std::string path = req.path();
  return path.rfind("admin/certificates/", 0) == 0 ? std::string("admin/certificates/…") : path;
}

RestResponse error_response(int status, std::string body) {
  RestResponse r;
  r.status = status;
  r.body = std::move(body);
  r.body_is_outcome = true;
  return r;
}

class InFlight {
 public:
  explicit InFlight(std::atomic<std::size_t>& n) : n_(n) { ++n_; }
  ~InFlight() { --n_; }

 private:
  std::atomic<std::size_t>& n_;
};

class HandlerSlot {
 public:
  explicit HandlerSlot(std::counting_semaphore<>& s) : s_(s) { s_.acquire(); }
  ~HandlerSlot() { s_.release(); }

 private:
  std::counting_semaphore<>& s_;
};

const char* kasama_version() {
  return kVersion;
}

// One connection, served by one thread from keep-alive to close. The per-request cost is a
// read and a write: the socket's receive timeout (SO_RCVTIMEO) bounds the wait for the
// next request, so there is no poll before each read, and OpenSSL's read-ahead takes a whole
// TLS record in one read.
class Connection final : public Poco::Net::TCPServerConnection {
 public:
  Connection(const Poco::Net::StreamSocket& socket, ConnectionHub& hub)
      : Poco::Net::TCPServerConnection(socket), hub_(hub), parser_(hub.limits) {}

  void run() override {
    ConnectionSlot slot;
    slot.fd = static_cast<int>(socket().impl()->sockfd());
    if (!hub_.enter(slot)) return;
    // OpenSSL's error queue is per thread and the thread serves other connections later; an
    // entry left behind would make a later SSL_get_error misreport.
    ERR_clear_error();
    try {
      serve(slot);
    } catch (const std::exception&) {
      // TLS failures, resets, timeouts while writing: the connection is gone, nothing to answer.
    } catch (...) {
    }
    ERR_clear_error();
    hub_.leave(slot);
  }

 private:
  void serve(ConnectionSlot& slot) {
    socket().setReceiveTimeout(half(kIdleTimeout));
    socket().setSendTimeout(half(kSendTimeout));
    bool request_timeout_set = false;  // else the idle one
    for (;;) {
      auto result = parser_.next();
      Clock::time_point started = Clock::now();
      while (result == HttpRequestParser::Result::kNeedMore) {
        const bool idle = parser_.idle();
        if (idle) {
          slot.idle.store(true);
          if (hub_.stopping.load()) return;
        }
        if (parser_.awaiting_continue()) {
          if (!send_all("HTTP/1.1 100 Continue\r\n\r\n")) return;
          parser_.continue_sent();
        }
        // Changed only when a request spans reads, so a small request costs no setsockopt.
        if (idle == request_timeout_set) {
          socket().setReceiveTimeout(half(idle ? kIdleTimeout : kRequestTimeout));
          request_timeout_set = !idle;
        }
        auto room = parser_.prepare(kReadRoom);
        int n = 0;
        try {
          n = socket().receiveBytes(room.data(), static_cast<int>(std::min<std::size_t>(room.size(), 1 << 20)));
        } catch (const Poco::TimeoutException&) {
          // An idle keep-alive connection is closed silently; a client that stalls in the
          // middle of a request is told why.
          if (!idle)
            send_error(408, "The request did not arrive within " + std::to_string(kRequestTimeout.count()) + " s",
                       false);
          return;
        }
        if (n <= 0) return;
        if (idle) {
          slot.idle.store(false);
          started = Clock::now();
        }
        parser_.commit(static_cast<std::size_t>(n));
        result = parser_.next();
        // Per-read timeouts alone would let a client trickle a header forever.
        if (result == HttpRequestParser::Result::kNeedMore && !parser_.head_complete() &&
            Clock::now() - started > kRequestTimeout) {
          send_error(408, "The request header did not arrive within " + std::to_string(kRequestTimeout.count()) + " s",
                     true);
          return;
        }
      }
      slot.idle.store(false);
      if (result == HttpRequestParser::Result::kError) {
        const HttpError& e = parser_.error();
        send_error(e.status, e.message, true);
        return;
      }
      bool keep_alive = false;
      if (!handle(parser_.request(), keep_alive) || !keep_alive) return;
    }
  }

  // Serves one complete request; false when the response could not be sent.
  bool handle(HttpRequest& http, bool& keep_alive) {
    InFlight guard(hub_.in_flight);
    RestRequest req;
    RestResponse resp;
    const std::string* given_id = http.field("x-request-id");
    req.request_id = given_id && sane_request_id(*given_id) ? *given_id : new_resource_id();
    bool pretty = false;
    bool cors = false;
    bool fhir = false;
    AuditNotes notes;
    const bool head = http.method == "HEAD";
    try {
      const std::string& uri = http.target;
      const auto q = uri.find('?');
      const std::string_view raw_path = std::string_view(uri).substr(0, q);
      const std::string host = http.host.empty() ? "localhost:" + std::to_string(hub_.port) : http.host;
      cors = http.field("origin") != nullptr && cors_path(raw_path);
      if (cors && http.method == "OPTIONS" && http.field("access-control-request-method")) {
        resp = preflight_response();
      } else if (raw_path == "/health" || raw_path == "/fhir/health") {
        resp = health_response();
      } else if (hub_.api && AuthApi::owns(raw_path)) {
        // Logins, tokens and account administration are accesses too.
        fhir = true;
        notes.interaction = raw_path.starts_with("/admin") ? "admin" : "auth";
        req.audit = &notes;
        req.method = http.method;
        split_url(std::string_view(uri).substr(1), req.segments, req.params);
        req.headers = std::move(http.fields);
        req.origin = "https://" + host;
        req.base_url = hub_.config.base_url.empty() ? req.origin + "/fhir" : hub_.config.base_url;
        req.peer = peer_host();
        if (http.body_too_large) throw FhirError(413, "too-costly", "The body is larger than this server accepts");
        req.body = std::move(http.body);
        HandlerSlot handler(hub_.handlers);
        resp = hub_.api->handle(req);
      } else {
        fhir = true;
        req.audit = &notes;
        if (raw_path != "/fhir" && !raw_path.starts_with("/fhir/")) {
          throw FhirError(404, "not-found", "Not a FHIR endpoint: the FHIR base is /fhir");
        }
        req.method = http.method;
        split_url(std::string_view(uri).substr(5), req.segments, req.params);  // below /fhir, with the query
        req.headers = std::move(http.fields);
        req.origin = "https://" + host;
        req.base_url = hub_.config.base_url.empty() ? req.origin + "/fhir" : hub_.config.base_url;
        req.peer = peer_host();
        if (const std::string* p = req.param("_pretty")) pretty = *p == "true";
        negotiate(req);
        if (http.body_too_large) {
          const std::string size = http.content_length ? " (" + std::to_string(*http.content_length) + " bytes)" : "";
          throw FhirError(413, "too-costly",
                          "The body" + size + " is larger than this server accepts (" +
                              std::to_string(hub_.config.max_body) + " bytes)");
        }
        req.body = std::move(http.body);
        check_content_type(req);
        HandlerSlot handler(hub_.handlers);
        resp = hub_.service.handle(req);
      }
    } catch (FhirError& e) {
      resp = error_response(e.status(), outcome_json(e.issues()));
      resp.allow = e.allow;
      resp.headers = e.headers;
      if (notes.detail.empty()) notes.detail = e.what();
    } catch (const storage::DbError& e) {
      notes.detail = std::string("database: ") + e.what();
      log_error("request " + req.request_id + " " + req.method + " /" + logged_path(req) + peer() +
                ": database: " + e.what());
      resp = error_response(
          e.connection_lost() ? 503 : 500,
          outcome_json("error", "exception",
                       "The database could not complete the request (request id " + req.request_id + ")"));
    } catch (const std::exception& e) {
      notes.detail = e.what();
      log_error("request " + req.request_id + " " + req.method + " /" + logged_path(req) + peer() + ": " + e.what());
      resp =
          error_response(500, outcome_json("error", "exception", "Internal error (request id " + req.request_id + ")"));
    }
    // Every FHIR request's audit record is durable before its answer leaves.
    if (fhir) {
      if (req.method.empty()) req.method = http.method;
      hub_.service.audit(req, resp);
    }
    if (cors) {
      // Browser apps (SMART on FHIR) on other origins call the FHIR API and the token
      // endpoint with bearer tokens, never cookies: any origin may read the answers.
      resp.headers.emplace_back("Access-Control-Allow-Origin", "*");
      resp.headers.emplace_back("Access-Control-Expose-Headers",
                                "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate, X-Request-Id");
    }
    keep_alive = http.keep_alive && !hub_.stopping.load();
    return send_response(resp, req.request_id, pretty, head, keep_alive, http.minor_version);
  }

  // The paths a browser app on another origin may call (CORS): the FHIR API, SMART discovery
  // and the token endpoints. Not the login and consent pages, nor the account API.
  static bool cors_path(std::string_view path) {
    return path == "/fhir" || path.starts_with("/fhir/") || path == "/auth/token" || path == "/auth/jwks" ||
           path == "/auth/introspect" || path == "/auth/revoke";
  }

  static RestResponse preflight_response() {
    RestResponse r;
    r.status = 204;
    r.headers = {{"Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE"},
                 {"Access-Control-Allow-Headers",
                  "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, "
                  "If-Modified-Since, X-Request-Id"},
                 {"Access-Control-Max-Age", "600"}};
    return r;
  }

  RestResponse health_response() {
    std::string problem = hub_.health();
    RestResponse r;
    r.status = problem.empty() ? 200 : 503;
    Json body = {
        {"status", problem.empty() ? "ok" : "unavailable"}, {"fhirVersion", "4.0.1"}, {"version", kasama_version()}};
    if (!problem.empty()) body["problem"] = problem;
    r.body = resources::dump_json(body);
    r.content_type = "application/json; charset=utf-8";
    return r;
  }

  // Head and body in one write (one TLS record for a small response).
  bool send_response(RestResponse& r, const std::string& request_id, bool pretty, bool head, bool keep_alive,
                     int minor_version) {
    const bool no_body = r.status == 204 || r.status == 304 || r.body.empty();
    if (!no_body && pretty) {
      auto parsed = resources::parse_json(r.body);
      if (parsed.ok) r.body = resources::dump_json(parsed.value, 2);
    }
    const bool inline_body = !no_body && !head && r.body.size() <= kInlineBody;
    std::string& out = out_;
    out.clear();
    out.reserve(512 + (inline_body ? r.body.size() : 0));
    out += "HTTP/1.1 ";
    out += std::to_string(r.status);
    out += ' ';
    out += reason_phrase(r.status);
    out += "\r\n";
    append_field(out, "Date", http_date_now());
    if (!keep_alive) {
      append_field(out, "Connection", "close");
    } else if (minor_version == 0) {
      append_field(out, "Connection", "keep-alive");
    }
    append_field(out, "X-Request-Id", request_id);
    append_field(out, "Cache-Control", "no-store");
    if (!r.version_id.empty()) append_field(out, "ETag", "W/\"" + r.version_id + "\"");
    if (!r.allow.empty()) append_field(out, "Allow", r.allow);
    for (const auto& [name, value] : r.headers) append_field(out, name, value);
    if (r.last_modified) append_field(out, "Last-Modified", resources::format_http_date(*r.last_modified));
    if (!r.location.empty()) {
      append_field(out, "Location", r.location);
      if (r.status == 200 || r.status == 201) append_field(out, "Content-Location", r.location);
    }
    if (no_body) {
      if (r.status != 204) append_field(out, "Content-Length", "0");  // RFC 9110 8.6: none on a 204
    } else {
      append_field(out, "Content-Type", r.content_type);
      append_field(out, "Content-Length", std::to_string(r.body.size()));
    }
    out += "\r\n";
    if (inline_body) out += r.body;
    if (!send_all(out)) return false;
    if (!no_body && !head && !inline_body) return send_all(r.body);
    return true;
  }

  // An HTTP-level refusal; the connection closes after it.
  void send_error(int status, const std::string& message, bool linger) {
    HttpRequest& http = parser_.request();
    const std::string* given_id = http.field("x-request-id");
    const std::string request_id = given_id && sane_request_id(*given_id) ? *given_id : new_resource_id();
    RestResponse r = error_response(status, outcome_json("error", issue_code(status), message));
    if (send_response(r, request_id, false, http.method == "HEAD", false, 1) && linger) linger_close();
  }

  // Closing with unread input makes the kernel answer with a reset, which can destroy the
  // response before the client has read it. So: say we are done sending (FIN), then drop
  // what still comes for a moment, until the client closes too.
  void linger_close() {
    const int fd = static_cast<int>(socket().impl()->sockfd());
    if (::shutdown(fd, SHUT_WR) != 0) return;
    timeval tv{0, 250000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[16384];
    const auto deadline = Clock::now() + kLinger;
    while (Clock::now() < deadline) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
    }
  }

  bool send_all(std::string_view data) {
    try {
      while (!data.empty()) {
        const int n = socket().sendBytes(data.data(), static_cast<int>(std::min<std::size_t>(data.size(), 1 << 30)));
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
      }
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  // The client's address (throttling of logins, audit), asked once per connection.
  const std::string& peer_host() {
    if (peer_host_.empty()) {
      try {
        peer_host_ = socket().peerAddress().host().toString();
      } catch (const std::exception&) {
        peer_host_ = "unknown";
      }
    }
    return peer_host_;
  }

  // For log lines only: asked of the kernel at most once per connection.
  std::string peer() {
    if (peer_.empty()) {
      try {
        peer_ = " from " + socket().peerAddress().toString();
      } catch (const std::exception&) {
        peer_ = " from (gone)";
      }
    }
    return peer_;
  }

  ConnectionHub& hub_;
  HttpRequestParser parser_;
  std::string out_;
  std::string peer_;
  std::string peer_host_;
};

class ConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  explicit ConnectionFactory(ConnectionHub& hub) : hub_(hub) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new Connection(socket, hub_);
  }

 private:
  ConnectionHub& hub_;
};

}  // namespace

HttpServer::HttpServer(const Config& config, FhirService& service, AuthApi* api, std::function<std::string()> health)
    : config_(config), service_(service), api_(api), health_(std::move(health)) {}

HttpServer::~HttpServer() {
  if (server_) stop(std::chrono::seconds(0));
}

void HttpServer::start() {
  std::string cert = config_.tls_cert, key = config_.tls_key;
  if (cert.empty() || key.empty()) {
    cert = config_.data_dir + "/tls/server.crt";
    key = config_.data_dir + "/tls/server.key";
    ensure_self_signed_certificate(cert, key);
  }
  Poco::Net::initializeSSL();
  Poco::Net::Context::Ptr tls =
      new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, key, cert, "", Poco::Net::Context::VERIFY_NONE, 9,
                             false, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!MD5:!RC4:!SHA1");
  tls->disableProtocols(Poco::Net::Context::PROTO_SSLV2 | Poco::Net::Context::PROTO_SSLV3 |
                        Poco::Net::Context::PROTO_TLSV1 | Poco::Net::Context::PROTO_TLSV1_1);
  tls->enableSessionCache(true, "kasama-fhir");
  tls->preferServerCiphers();
  // Without read-ahead OpenSSL reads a record's header and its body in two read() calls.
  SSL_CTX_set_read_ahead(tls->sslContext(), 1);
  // Clients that close without close_notify (most do) are an ordinary end of the
  // connection, not an error; requests are length-delimited, so truncation is still seen.
  SSL_CTX_set_options(tls->sslContext(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  Poco::Net::SecureServerSocket socket(Poco::Net::SocketAddress(config_.bind, static_cast<Poco::UInt16>(config_.port)),
                                       1024, tls);

  hub_ = std::make_unique<ConnectionHub>(config_, service_, api_, health_, in_flight_);
  hub_->listener = socket;
  hub_->port = socket.address().port();  // before the first connection can ask for it
  // A thread per connection, idle keep-alive ones included: many more than KASAMA_THREADS,
  // which bounds the requests handled at once instead.
  const unsigned connections = std::max(1024U, 4 * config_.threads);
  Poco::Net::TCPServerParams::Ptr params = new Poco::Net::TCPServerParams;
  params->setMaxThreads(static_cast<int>(connections));
  params->setMaxQueued(2048);
  params->setThreadIdleTime(Poco::Timespan(10, 0));
  pool_ = std::make_unique<Poco::ThreadPool>("http", 4, static_cast<int>(connections) + 4);
  server_ = std::make_unique<Poco::Net::TCPServer>(
      Poco::Net::TCPServerConnectionFactory::Ptr(new ConnectionFactory(*hub_)), *pool_, socket, params);
  server_->start();
}

void HttpServer::stop(std::chrono::seconds grace) {
  if (!server_) return;
  server_->stop();  // the acceptor is gone; connections still queued are closed
  try {
    hub_->listener.close();  // refused from now on rather than left in the backlog
  } catch (const std::exception&) {
  }
  hub_->close_idle();
  // A connection in the middle of receiving a request is waited for like one being handled:
  // it may be a large upload. Idle ones are gone by now.
  if (!hub_->wait_drained(Clock::now() + grace)) {
    log_warn("stopping with " + std::to_string(in_flight_.load()) + " requests unfinished (" +
             std::to_string(hub_->live()) + " connections open)");
    hub_->abort_all();
    hub_->wait_drained(Clock::now() + std::chrono::seconds(5));
  }
  server_.reset();
  pool_->joinAll();
}

unsigned HttpServer::port() const {
  return server_ ? hub_->port : 0;
}

}  // namespace kasama::server
