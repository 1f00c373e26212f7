#pragma once
#include <string>

namespace kasama::resources {

// Where the conformance data (type model, search parameters...) lives: $KASAMA_HOME/conformance
// when KASAMA_HOME is set (installed server), else the source tree's conformance/ so that
// tests and a developer build work without any setup.
std::string conformance_dir();

}  // namespace kasama::resources
