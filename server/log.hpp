#pragma once
// One line per event on stderr: time, level, message. Enough for a foreground server and
// for systemd/docker, which collect stderr.
#include <string_view>

namespace kasama::server {

void log_info(std::string_view message);
void log_warn(std::string_view message);
void log_error(std::string_view message);

}  // namespace kasama::server
