#include "server/log.hpp"

#include <cstdio>
#include <mutex>
#include <string>

#include "resources/fhir_time.hpp"

namespace kasama::server {
namespace {
std::mutex mu;
void write(const char* level, std::string_view message) {
  std::string line = resources::format_instant(resources::now_millis()) + " " + level + " ";
  line.append(message);
  line.push_back('\n');
  std::lock_guard lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}
}  // namespace

void log_info(std::string_view message) {
  write("INFO ", message);
}
void log_warn(std::string_view message) {
  write("WARN ", message);
}
void log_error(std::string_view message) {
  write("ERROR", message);
}

}  // namespace kasama::server
