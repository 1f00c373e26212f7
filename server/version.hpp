#pragma once
namespace kasama::server {
inline constexpr const char* kVersion = "0.1.0";
inline constexpr const char* kReleaseDate = "2026-11-22";
}  // namespace kasama::server
