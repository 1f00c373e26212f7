#pragma once
#include <string>

namespace kasama::server {

// Writes a self-signed certificate for localhost (EC P-256, SAN localhost, 127.0.0.1, ::1)
// and its key (mode 0600) unless both files exist already.
void ensure_self_signed_certificate(const std::string& cert_path, const std::string& key_path);

}  // namespace kasama::server
