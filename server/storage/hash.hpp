#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace kasama::storage {

std::string sha256_hex(std::string_view data);
// First 8 bytes of SHA-256 over the parts joined by a separator that cannot occur in them
// (0x1F); the index tables key on these.
std::int64_t hash64(std::initializer_list<std::string_view> parts);

}  // namespace kasama::storage
