#pragma once
// HTTPS front: TLS 1.2/1.3 only, request parsing and size limits, content negotiation, and
// the ONE place where failures become an OperationOutcome with an HTTP status. HTTP/1.1 is
// our own (http_parser.hpp, one thread per connection) on Poco's TCP server and TLS sockets:
// Poco's HTTP server costs several system calls per request that this one does without.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "server/auth/api.hpp"
#include "server/config.hpp"
#include "server/interactions/service.hpp"

namespace Poco::Net {
class TCPServer;
}
namespace Poco {
class ThreadPool;
}

namespace kasama::server {

class ConnectionHub;

class HttpServer {
 public:
  // health: returns an empty string when healthy, else what is wrong.
  // api: the identity endpoints (/auth, /admin, SMART discovery); null serves FHIR only.
  HttpServer(const Config& config, FhirService& service, AuthApi* api, std::function<std::string()> health);
  ~HttpServer();

  void start();
  // Stops accepting, lets in-flight requests finish (up to grace), then closes connections.
  void stop(std::chrono::seconds grace);
  unsigned port() const;
  std::size_t in_flight() const { return in_flight_.load(); }

 private:
  const Config& config_;
  FhirService& service_;
  AuthApi* api_;
  std::function<std::string()> health_;
  std::unique_ptr<ConnectionHub> hub_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::TCPServer> server_;
  std::atomic<std::size_t> in_flight_{0};
};

}  // namespace kasama::server
