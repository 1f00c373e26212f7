#include "resources/paths.hpp"

#include <cstdlib>

namespace kasama::resources {

std::string conformance_dir() {
  const char* home = std::getenv("KASAMA_HOME");
  if (home != nullptr && *home != '\0') return std::string(home) + "/conformance";
  return std::string(KASAMA_SOURCE_DIR) + "/conformance";
}

}  // namespace kasama::resources
