#include "server/http/http_server.hpp"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/ThreadPool.h>

#include <algorithm>
#include <thread>

#include "resources/fhir_time.hpp"
#include "resources/json.hpp"
#include "server/http/tls.hpp"
#include "server/interactions/support.hpp"
#include "server/log.hpp"
#include "server/storage/db.hpp"

namespace kasama::server {
namespace {

using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool sane_request_id(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; });
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
      throw FhirError(406, "not-supported", "_format=" + *f + ": this server answers in JSON (application/fhir+json) only for now",
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
  if (!ct) throw FhirError(415, "not-supported", "A request body needs a Content-Type (application/fhir+json)", "Content-Type");
  std::string t = media_type(*ct);
  if (req.method == "PATCH") {
    if (t == "application/json-patch+json") return;
    throw FhirError(415, "not-supported",
                    "PATCH takes application/json-patch+json (JSON Patch); '" + t + "' is not supported", "Content-Type");
  }
  if (json_media(t)) return;
  if (xml_media(t)) {
    throw FhirError(415, "not-supported", "XML bodies are not accepted yet: send application/fhir+json", "Content-Type");
  }
  throw FhirError(415, "not-supported", "Content-Type '" + t + "' is not a FHIR format; send application/fhir+json",
                  "Content-Type");
}

class InFlight {
 public:
  explicit InFlight(std::atomic<std::size_t>& n) : n_(n) { ++n_; }
  ~InFlight() { --n_; }

 private:
  std::atomic<std::size_t>& n_;
};

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  Handler(const Config& config, FhirService& service, const std::function<std::string()>& health,
          std::atomic<std::size_t>& in_flight)
      : config_(config), service_(service), health_(health), in_flight_(in_flight) {}

  void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
    InFlight guard(in_flight_);
    RestRequest req;
    RestResponse resp;
    const std::string& given_id = request.get("X-Request-Id", "");
    req.request_id = sane_request_id(given_id) ? given_id : new_resource_id();
    bool pretty = false;
    bool head = request.getMethod() == "HEAD";
    try {
      const std::string& uri = request.getURI();
      auto q = uri.find('?');
      const std::string raw_path = uri.substr(0, q);
      if (raw_path == "/health" || raw_path == "/fhir/health") {
        respond_health(response, req.request_id);
        return;
      }
      if (raw_path != "/fhir" && raw_path.rfind("/fhir/", 0) != 0) {
        throw FhirError(404, "not-found", "Not a FHIR endpoint: the FHIR base is /fhir");
      }
      req.method = request.getMethod();
      std::string relative = uri.substr(5);  // below /fhir, with the query
      split_url(relative, req.segments, req.params);
      for (const auto& [name, value] : request) req.headers.emplace_back(lower(name), value);
      if (config_.base_url.empty()) {
        req.base_url = "https://" + (request.getHost().empty() ? "localhost:" + std::to_string(config_.port) : request.getHost()) + "/fhir";
      } else {
        req.base_url = config_.base_url;
      }
      if (const std::string* p = req.param("_pretty")) pretty = *p == "true";
      negotiate(req);
      read_body(request, req, response);
      check_content_type(req);
      resp = service_.handle(req);
    } catch (FhirError& e) {
      resp = error_response(e.status(), outcome_json(e.issues()));
      resp.allow = e.allow;
    } catch (const storage::DbError& e) {
      log_error("request " + req.request_id + " " + req.method + " /" + req.path() + ": database: " + e.what());
      resp = error_response(e.connection_lost() ? 503 : 500,
                            outcome_json("error", "exception",
                                         "The database could not complete the request (request id " + req.request_id + ")"));
    } catch (const std::exception& e) {
      log_error("request " + req.request_id + " " + req.method + " /" + req.path() + ": " + e.what());
      resp = error_response(500, outcome_json("error", "exception", "Internal error (request id " + req.request_id + ")"));
    }
    send(response, resp, req.request_id, pretty, head);
  }

 private:
  static RestResponse error_response(int status, std::string body) {
    RestResponse r;
    r.status = status;
    r.body = std::move(body);
    r.body_is_outcome = true;
    return r;
  }

  // Bodies over the limit get 413. The client must be able to read it: a server that closes
  // while the client is still sending makes the kernel reset the connection, destroying the
  // answer. So a moderately oversized body is read and discarded first; a client that asked
  // "Expect: 100-continue" was not told to continue (see Factory) and sends nothing.
  void read_body(HTTPServerRequest& request, RestRequest& req, HTTPServerResponse& response) {
    const auto declared = request.getContentLength64();
    const std::uint64_t limit = config_.max_body;
    const std::uint64_t discard_limit = 4 * limit;
    auto too_large = [&](const std::string& size) {
      return FhirError(413, "too-costly",
                       "The body" + size + " is larger than this server accepts (" + std::to_string(limit) + " bytes)");
    };
    if (declared != HTTPServerRequest::UNKNOWN_CONTENT_LENGTH && static_cast<std::uint64_t>(declared) > limit) {
      const std::string size = " (" + std::to_string(declared) + " bytes)";
      if (!request.getExpectContinue() && static_cast<std::uint64_t>(declared) <= discard_limit) {
        discard(request.stream(), static_cast<std::uint64_t>(declared));
      } else {
        response.setKeepAlive(false);
      }
      throw too_large(size);
    }
    if (declared == 0) return;
    if (!request.hasContentLength() && !request.getChunkedTransferEncoding()) return;
    std::istream& in = request.stream();
    if (declared > 0) req.body.reserve(static_cast<std::size_t>(declared));
    char buf[65536];
    while (in) {
      in.read(buf, sizeof buf);
      req.body.append(buf, static_cast<std::size_t>(in.gcount()));
      if (req.body.size() > limit) {
        if (!discard(in, discard_limit)) response.setKeepAlive(false);
        throw too_large("");
      }
    }
  }

  // Reads and drops up to max bytes; true when the stream ended within them.
  static bool discard(std::istream& in, std::uint64_t max) {
    char buf[65536];
    std::uint64_t seen = 0;
    while (in && seen <= max) {
      in.read(buf, sizeof buf);
      seen += static_cast<std::uint64_t>(in.gcount());
    }
    return !in || seen <= max;
  }

  void respond_health(HTTPServerResponse& response, const std::string& request_id) {
    std::string problem = health_();
    RestResponse r;
    r.status = problem.empty() ? 200 : 503;
    Json body = {{"status", problem.empty() ? "ok" : "unavailable"}, {"fhirVersion", "4.0.1"}, {"version", kasama_version()}};
    if (!problem.empty()) body["problem"] = problem;
    r.body = resources::dump_json(body);
    r.content_type = "application/json; charset=utf-8";
    send(response, r, request_id, false, false);
  }

  static const char* kasama_version();

  static void send(HTTPServerResponse& response, RestResponse& r, const std::string& request_id, bool pretty, bool head) {
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(r.status));
    response.set("X-Request-Id", request_id);
    response.set("Cache-Control", "no-store");
    if (!r.version_id.empty()) response.set("ETag", "W/\"" + r.version_id + "\"");
    if (!r.allow.empty()) response.set("Allow", r.allow);
    if (!r.last_modified.empty()) {
      if (auto range = resources::parse_fhir_time_range(r.last_modified)) {
        response.set("Last-Modified", resources::format_http_date(range->lo));
      }
    }
    if (!r.location.empty()) {
      response.set("Location", r.location);
      if (r.status == 200 || r.status == 201) response.set("Content-Location", r.location);
    }
    if (r.status == 204 || r.status == 304 || r.body.empty()) {
      response.setContentLength(0);
      response.send();
      return;
    }
    if (pretty) {
      auto parsed = resources::parse_json(r.body);
      if (parsed.ok) r.body = resources::dump_json(parsed.value, 2);
    }
    response.setContentType(r.content_type);
    response.setContentLength64(static_cast<Poco::Int64>(r.body.size()));
    if (head) {
      response.send();
      return;
    }
    response.sendBuffer(r.body.data(), r.body.size());
  }

  const Config& config_;
  FhirService& service_;
  const std::function<std::string()>& health_;
  std::atomic<std::size_t>& in_flight_;
};

const char* Handler::kasama_version() { return "0.1.0"; }

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(const Config& config, FhirService& service, const std::function<std::string()>& health,
          std::atomic<std::size_t>& in_flight)
      : config_(config), service_(service), health_(health), in_flight_(in_flight) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest& request) override {
    // Poco answers "Expect: 100-continue" after this returns, unless the status is no
    // longer 200: an oversized body is refused before the client sends it.
    if (request.getExpectContinue() && request.hasContentLength() &&
        static_cast<std::uint64_t>(request.getContentLength64()) > config_.max_body) {
      request.response().setStatus(Poco::Net::HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE);
    }
    return new Handler(config_, service_, health_, in_flight_);
  }

 private:
  const Config& config_;
  FhirService& service_;
  const std::function<std::string()>& health_;
  std::atomic<std::size_t>& in_flight_;
};

}  // namespace

HttpServer::HttpServer(const Config& config, FhirService& service, std::function<std::string()> health)
    : config_(config), service_(service), health_(std::move(health)) {}

HttpServer::~HttpServer() = default;

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
  Poco::Net::SecureServerSocket socket(Poco::Net::SocketAddress(config_.bind, static_cast<Poco::UInt16>(config_.port)),
                                       1024, tls);
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(static_cast<int>(config_.threads));
  params->setMaxQueued(2048);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);
  params->setKeepAliveTimeout(Poco::Timespan(15, 0));
  params->setTimeout(Poco::Timespan(60, 0));
  params->setServerName("kasama-fhir");
  pool_ = std::make_unique<Poco::ThreadPool>("http", 4, static_cast<int>(config_.threads) + 4);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(config_, service_, health_, in_flight_), *pool_, socket,
                                                    params);
  server_->start();
}

void HttpServer::stop(std::chrono::seconds grace) {
  if (!server_) return;
  server_->stopAll(false);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (in_flight_.load() > 0) log_warn("stopping with " + std::to_string(in_flight_.load()) + " requests unfinished");
  server_.reset();
  pool_->joinAll();
}

unsigned HttpServer::port() const { return server_ ? server_->port() : 0; }

}  // namespace kasama::server
