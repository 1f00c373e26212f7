#pragma once
// Instants as milliseconds since the Unix epoch (UTC), and the text forms FHIR, SQL and
// HTTP use for them. Dates without a time zone are taken as UTC.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kasama::resources {

std::int64_t now_millis();
std::string format_instant(std::int64_t ms);    // 2024-05-01T12:34:56.789Z
std::string format_sql(std::int64_t ms);        // 2024-05-01 12:34:56.789
std::string format_http_date(std::int64_t ms);  // Wed, 01 May 2024 12:34:56 GMT
std::optional<std::int64_t> parse_sql(std::string_view text);
std::optional<std::int64_t> parse_http_date(std::string_view text);

// A FHIR date, dateTime or instant as the half-open range [lo, hi) its precision implies:
// "2024" is the whole year, "2024-05-01T10:00:00+09:00" is one second.
struct TimeRange {
  std::int64_t lo;
  std::int64_t hi;
};
std::optional<TimeRange> parse_fhir_time_range(std::string_view text);

std::int64_t days_from_civil(int y, unsigned m, unsigned d);

}  // namespace kasama::resources
