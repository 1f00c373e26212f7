#include "resources/fhir_time.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>

namespace kasama::resources {
namespace {

constexpr std::int64_t kDayMs = 86'400'000;

struct Civil {
  int y;
  unsigned m, d;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return Civil{static_cast<int>(y + (m <= 2)), m, d};
}

struct Parts {
  Civil c;
  int hh, mm, ss, ms;
  unsigned weekday;
};

Parts split(std::int64_t ms) {
  std::int64_t days = ms >= 0 ? ms / kDayMs : -((-ms + kDayMs - 1) / kDayMs);
  std::int64_t rem = ms - days * kDayMs;
  Parts p{civil_from_days(days),
          static_cast<int>(rem / 3'600'000),
          static_cast<int>(rem / 60'000 % 60),
          static_cast<int>(rem / 1000 % 60),
          static_cast<int>(rem % 1000),
          static_cast<unsigned>((days % 7 + 11) % 7)};  // 1970-01-01 was a Thursday (4)
  return p;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

unsigned days_in_month(int y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

}  // namespace

std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t now_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string format_instant(std::int64_t ms) {
  Parts p = split(ms);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", p.c.y, p.c.m, p.c.d, p.hh, p.mm, p.ss, p.ms);
  return buf;
}

std::string format_sql(std::int64_t ms) {
  Parts p = split(ms);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:%02d:%02d.%03d", p.c.y, p.c.m, p.c.d, p.hh, p.mm, p.ss, p.ms);
  return buf;
}

std::string format_http_date(std::int64_t ms) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  Parts p = split(ms);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d GMT", kDays[p.weekday], p.c.d, kMonths[p.c.m - 1],
                p.c.y, p.hh, p.mm, p.ss);
  return buf;
}

std::optional<std::int64_t> parse_sql(std::string_view s) {
  int y, mo, d, h, mi, se;
  if (s.size() < 19 || !digits(s, 0, 4, y) || !digits(s, 5, 2, mo) || !digits(s, 8, 2, d) || !digits(s, 11, 2, h) ||
      !digits(s, 14, 2, mi) || !digits(s, 17, 2, se)) {
    return std::nullopt;
  }
  int frac = 0;
  if (s.size() > 20 && s[19] == '.') {
    int scale = 100;
    for (std::size_t i = 20; i < s.size() && scale > 0; ++i, scale /= 10) frac += (s[i] - '0') * scale;
  }
  return days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * kDayMs + h * 3'600'000LL +
         mi * 60'000LL + se * 1000LL + frac;
}

std::optional<std::int64_t> parse_http_date(std::string_view s) {
  // IMF-fixdate only: "Sun, 06 Nov 1994 08:49:37 GMT"
  static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  if (s.size() != 29 || s.substr(25) != " GMT") return std::nullopt;
  int d, y, h, mi, se;
  if (!digits(s, 5, 2, d) || !digits(s, 12, 4, y) || !digits(s, 17, 2, h) || !digits(s, 20, 2, mi) ||
      !digits(s, 23, 2, se)) {
    return std::nullopt;
  }
  auto mpos = kMonths.find(s.substr(8, 3));
  if (mpos == std::string_view::npos || mpos % 3 != 0) return std::nullopt;
  unsigned m = static_cast<unsigned>(mpos / 3 + 1);
  return days_from_civil(y, m, static_cast<unsigned>(d)) * kDayMs + h * 3'600'000LL + mi * 60'000LL + se * 1000LL;
}

std::optional<TimeRange> parse_fhir_time_range(std::string_view s) {
  int y = 0, mo = 1, d = 1;
  if (!digits(s, 0, 4, y)) return std::nullopt;
  if (s.size() == 4) {
    return TimeRange{days_from_civil(y, 1, 1) * kDayMs, days_from_civil(y + 1, 1, 1) * kDayMs};
  }
  if (s.size() < 7 || s[4] != '-' || !digits(s, 5, 2, mo) || mo < 1 || mo > 12) return std::nullopt;
  if (s.size() == 7) {
    auto lo = days_from_civil(y, static_cast<unsigned>(mo), 1) * kDayMs;
    auto hi = mo == 12 ? days_from_civil(y + 1, 1, 1) * kDayMs
                       : days_from_civil(y, static_cast<unsigned>(mo + 1), 1) * kDayMs;
    return TimeRange{lo, hi};
  }
  if (s.size() < 10 || s[7] != '-' || !digits(s, 8, 2, d) || d < 1 ||
      static_cast<unsigned>(d) > days_in_month(y, static_cast<unsigned>(mo))) {
    return std::nullopt;
  }
  const std::int64_t day = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * kDayMs;
  if (s.size() == 10) return TimeRange{day, day + kDayMs};
  int h, mi, se = 0;
  if (s[10] != 'T' || !digits(s, 11, 2, h) || s.size() < 16 || s[13] != ':' || !digits(s, 14, 2, mi) || h > 23 ||
      mi > 59) {
    return std::nullopt;
  }
  std::size_t pos = 16;
  std::int64_t width = 60'000;
  if (pos < s.size() && s[pos] == ':') {
    if (!digits(s, pos + 1, 2, se) || se > 60) return std::nullopt;
    pos += 3;
    width = 1000;
  }
  std::int64_t frac = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    std::int64_t scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (scale > 0) frac += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
    std::size_t n = pos - start;
    width = n >= 3 ? 1 : (n == 2 ? 10 : 100);
  }
  std::int64_t offset = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' && pos + 1 == s.size()) {
      offset = 0;
    } else if ((s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && s[pos + 3] == ':') {
      int oh, om;
      if (!digits(s, pos + 1, 2, oh) || !digits(s, pos + 4, 2, om) || oh > 14 || om > 59) return std::nullopt;
      offset = (oh * 60LL + om) * 60'000LL * (s[pos] == '+' ? 1 : -1);
    } else {
      return std::nullopt;
    }
  }
  std::int64_t lo = day + h * 3'600'000LL + mi * 60'000LL + se * 1000LL + frac - offset;
  return TimeRange{lo, lo + width};
}

}  // namespace kasama::resources
