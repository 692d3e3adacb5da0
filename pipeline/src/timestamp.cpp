#include "parallax/pipeline/timestamp.hpp"

#include <array>
#include <cctype>
#include <limits>

#include <fmt/format.h>

namespace parallax {

namespace {

constexpr time_ns ns_per_s = 1'000'000'000;

constexpr std::array<std::string_view, 12> months = {
  "jan", "feb", "mar", "apr", "may", "jun",
  "jul", "aug", "sep", "oct", "nov", "dec"};

// Days since 1970-01-01 of a civil date: count days in whole 400-year eras
// from 0000-03-01, with March as the first month so leap days come last.
long days_from_civil(long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long>(doe) - 719468;
}

bool leap(long y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(long y, unsigned m) {
  static constexpr unsigned d[] = {31, 28, 31, 30, 31, 30,
                                   31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : d[m - 1];
}

bool valid(long y, unsigned mo, unsigned d, unsigned h, unsigned mi,
           unsigned s) {
  // int64 nanoseconds reach from 1677-09-21 to 2262-04-11.
  return y >= 1678 && y <= 2261 && mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) && h < 24
         && mi < 60 && s <= 60; // 60: a leap second, folded into the next
}

int year_of(time_ns t) {
  // Civil year of a time, from days since the epoch (inverse of the above).
  long z = static_cast<long>(t / ns_per_s / 86400) + 719468;
  if (t < 0 && (t / ns_per_s) % 86400 != 0)
    --z;
  const long era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return static_cast<int>(static_cast<long>(yoe) + era * 400 + (m <= 2));
}

// A cursor over the text with small, exact readers.
struct scanner {
  std::string_view s;
  std::size_t p;

  bool done() const {
    return p >= s.size();
  }
  bool lit(char c) {
    if (p < s.size() && s[p] == c) {
      ++p;
      return true;
    }
    return false;
  }
  // Exactly n digits.
  bool digits(int n, unsigned& out) {
    unsigned v = 0;
    for (int i = 0; i < n; ++i) {
      if (p >= s.size() || !std::isdigit(static_cast<unsigned char>(s[p])))
        return false;
      v = v * 10 + static_cast<unsigned>(s[p++] - '0');
    }
    out = v;
    return true;
  }
  // One or two digits (a leading space allowed, as syslog pads days).
  bool day(unsigned& out) {
    if (p < s.size() && s[p] == ' ')
      ++p;
    unsigned v = 0;
    int n = 0;
    while (n < 2 && p < s.size()
           && std::isdigit(static_cast<unsigned char>(s[p]))) {
      v = v * 10 + static_cast<unsigned>(s[p++] - '0');
      ++n;
    }
    out = v;
    return n > 0;
  }
  bool month_name(unsigned& out) {
    if (p + 3 > s.size())
      return false;
    char m[3];
    for (int i = 0; i < 3; ++i)
      m[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[p + i])));
    for (unsigned i = 0; i < 12; ++i)
      if (std::string_view{m, 3} == months[i]) {
        out = i + 1;
        p += 3;
        return true;
      }
    return false;
  }
  // ".123" up to 9 digits, as nanoseconds; absent is 0.
  long fraction() {
    if (p >= s.size() || (s[p] != '.' && s[p] != ',') || p + 1 >= s.size()
        || !std::isdigit(static_cast<unsigned char>(s[p + 1])))
      return 0;
    ++p;
    long v = 0;
    int n = 0;
    while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p]))) {
      if (n < 9) {
        v = v * 10 + (s[p] - '0');
        ++n;
      }
      ++p;
    }
    while (n++ < 9)
      v *= 10;
    return v;
  }
  // "Z", "+01:00", "+0100", "-05"; returns the offset in seconds east.
  bool zone(long& offset, bool required) {
    offset = 0;
    if (lit('Z') || lit('z'))
      return true;
    if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
      auto save = p;
      int sign = s[p] == '-' ? -1 : 1;
      ++p;
      unsigned hh = 0, mm = 0;
      if (!digits(2, hh)) {
        p = save;
        return !required;
      }
      lit(':');
      if (!digits(2, mm))
        mm = 0;
      if (hh > 23 || mm > 59) {
        p = save;
        return false;
      }
      offset = sign * static_cast<long>(hh * 3600 + mm * 60);
      return true;
    }
    return !required;
  }
};

std::optional<extracted_time> finish(std::size_t start, const scanner& sc,
                                     long y, unsigned mo, unsigned d,
                                     unsigned h, unsigned mi, unsigned s,
                                     long nanos, long offset) {
  if (!valid(y, mo, d, h, mi, s))
    return std::nullopt;
  auto t = civil_to_ns(static_cast<int>(y), mo, d, h, mi, s, nanos)
           - static_cast<time_ns>(offset) * ns_per_s;
  return extracted_time{t, start, sc.p - start};
}

std::optional<extracted_time> try_rfc3339(std::string_view text,
                                          std::size_t at) {
  scanner sc{text, at};
  unsigned y, mo, d, h, mi, s;
  if (!sc.digits(4, y) || !sc.lit('-') || !sc.digits(2, mo) || !sc.lit('-')
      || !sc.digits(2, d) || !(sc.lit('T') || sc.lit(' ') || sc.lit('t'))
      || !sc.digits(2, h) || !sc.lit(':') || !sc.digits(2, mi)
      || !sc.lit(':') || !sc.digits(2, s))
    return std::nullopt;
  auto nanos = sc.fraction();
  long off = 0;
  if (!sc.zone(off, false))
    return std::nullopt;
  return finish(at, sc, y, mo, d, h, mi, s, nanos, off);
}

std::optional<extracted_time> try_apache(std::string_view text,
                                         std::size_t at) {
  scanner sc{text, at};
  sc.lit('[');
  unsigned d, mo, y, h, mi, s;
  if (!sc.digits(2, d) || !sc.lit('/') || !sc.month_name(mo) || !sc.lit('/')
      || !sc.digits(4, y) || !sc.lit(':') || !sc.digits(2, h) || !sc.lit(':')
      || !sc.digits(2, mi) || !sc.lit(':') || !sc.digits(2, s))
    return std::nullopt;
  long off = 0;
  if (!sc.lit(' ') || !sc.zone(off, true))
    return std::nullopt;
  sc.lit(']');
  return finish(at, sc, y, mo, d, h, mi, s, 0, off);
}

std::optional<extracted_time> try_syslog(std::string_view text, std::size_t at,
                                         time_ns now) {
  scanner sc{text, at};
  unsigned mo, d, h, mi, s;
  if (!sc.month_name(mo) || !sc.lit(' ') || !sc.day(d) || !sc.lit(' ')
      || !sc.digits(2, h) || !sc.lit(':') || !sc.digits(2, mi) || !sc.lit(':')
      || !sc.digits(2, s))
    return std::nullopt;
  auto nanos = sc.fraction();
  // No year: this year, unless that is more than a day ahead of now (a
  // December line read in January belongs to last year).
  long y = year_of(now);
  if (mo == 2 && d == 29) // Feb 29 belongs to the latest leap year
    while (!leap(y))
      --y;
  auto r = finish(at, sc, y, mo, d, h, mi, s, nanos, 0);
  if (r && r->time > now + 86'400 * ns_per_s) {
    --y;
    if (mo == 2 && d == 29)
      while (!leap(y))
        --y;
    r = finish(at, sc, y, mo, d, h, mi, s, nanos, 0);
  }
  return r;
}

std::optional<extracted_time> try_epoch(std::string_view text, std::size_t at,
                                        time_ns now, bool plausible_only) {
  std::size_t e = at;
  while (e < text.size() && std::isdigit(static_cast<unsigned char>(text[e])))
    ++e;
  auto n = e - at;
  if (n != 10 && n != 13 && n != 16 && n != 19)
    return std::nullopt;
  std::uint64_t v = 0;
  for (auto i = at; i < e; ++i)
    v = v * 10 + static_cast<std::uint64_t>(text[i] - '0');
  time_ns t;
  scanner sc{text, e};
  // Values whose nanoseconds would not fit int64 (~2262) are no timestamps.
  constexpr auto max = static_cast<std::uint64_t>(
    std::numeric_limits<time_ns>::max());
  if ((n == 10 && v > max / 1'000'000'000 - 1) || (n == 13 && v > max / 1'000'000)
      || (n == 16 && v > max / 1'000))
    return std::nullopt;
  switch (n) {
    case 10:
      t = static_cast<time_ns>(v) * ns_per_s + sc.fraction();
      break;
    case 13:
      t = static_cast<time_ns>(v) * 1'000'000;
      break;
    case 16:
      t = static_cast<time_ns>(v) * 1'000;
      break;
    default:
      if (v > static_cast<std::uint64_t>(std::numeric_limits<time_ns>::max()))
        return std::nullopt;
      t = static_cast<time_ns>(v);
  }
  if (sc.p < text.size() && std::isdigit(static_cast<unsigned char>(text[sc.p])))
    return std::nullopt;
  if (plausible_only
      && (t < civil_to_ns(2000, 1, 1, 0, 0, 0)
          || t > now + 366 * 86'400 * ns_per_s))
    return std::nullopt;
  return extracted_time{t, at, sc.p - at};
}

std::optional<extracted_time>
try_strptime(std::string_view text, std::size_t at, std::string_view fmt,
             time_ns now) {
  scanner sc{text, at};
  long y = year_of(now);
  bool have_year = false;
  unsigned mo = 1, d = 1, h = 0, mi = 0, s = 0, v = 0;
  long nanos = 0, off = 0;
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      if (!sc.lit(fmt[i]))
        return std::nullopt;
      continue;
    }
    if (++i >= fmt.size())
      return std::nullopt;
    switch (fmt[i]) {
      case 'Y':
        if (!sc.digits(4, v))
          return std::nullopt;
        y = v;
        have_year = true;
        break;
      case 'y':
        if (!sc.digits(2, v))
          return std::nullopt;
        y = v < 69 ? 2000 + v : 1900 + v; // POSIX's pivot
        have_year = true;
        break;
      case 'm':
        if (!sc.digits(2, mo))
          return std::nullopt;
        break;
      case 'd':
        if (!sc.digits(2, d))
          return std::nullopt;
        break;
      case 'e':
        if (!sc.day(d))
          return std::nullopt;
        break;
      case 'b':
        if (!sc.month_name(mo))
          return std::nullopt;
        break;
      case 'H':
        if (!sc.digits(2, h))
          return std::nullopt;
        break;
      case 'M':
        if (!sc.digits(2, mi))
          return std::nullopt;
        break;
      case 'S':
        if (!sc.digits(2, s))
          return std::nullopt;
        break;
      case 'T':
        if (!sc.digits(2, h) || !sc.lit(':') || !sc.digits(2, mi)
            || !sc.lit(':') || !sc.digits(2, s))
          return std::nullopt;
        break;
      case 'f': {
        // Digits after a separator the format wrote itself.
        long frac = 0;
        int n = 0;
        while (!sc.done() && std::isdigit(static_cast<unsigned char>(sc.s[sc.p]))) {
          if (n < 9) {
            frac = frac * 10 + (sc.s[sc.p] - '0');
            ++n;
          }
          ++sc.p;
        }
        if (n == 0)
          return std::nullopt;
        while (n++ < 9)
          frac *= 10;
        nanos = frac;
        break;
      }
      case 'z':
        if (!sc.zone(off, true))
          return std::nullopt;
        break;
      case 'Z':
        if (!(sc.lit('U') && sc.lit('T') && sc.lit('C'))
            && !(sc.lit('G') && sc.lit('M') && sc.lit('T')))
          return std::nullopt;
        break;
      case '%':
        if (!sc.lit('%'))
          return std::nullopt;
        break;
      default:
        return std::nullopt;
    }
  }
  auto r = finish(at, sc, y, mo, d, h, mi, s, nanos, off);
  if (r && !have_year && r->time > now + 86'400 * ns_per_s)
    r = finish(at, sc, y - 1, mo, d, h, mi, s, nanos, off);
  return r;
}

} // namespace

time_ns civil_to_ns(int year, unsigned month, unsigned day, unsigned hour,
                    unsigned minute, unsigned second, long nanos) {
  auto days = days_from_civil(year, month, day);
  return (static_cast<time_ns>(days) * 86'400 + hour * 3600 + minute * 60
          + second)
           * ns_per_s
         + nanos;
}

result<time_format> parse_time_format(std::string_view spec) {
  time_format f;
  if (spec == "auto")
    f.kind = time_format::automatic;
  else if (spec == "syslog")
    f.kind = time_format::syslog;
  else if (spec == "rfc3339" || spec == "iso8601")
    f.kind = time_format::rfc3339;
  else if (spec == "epoch")
    f.kind = time_format::epoch;
  else if (spec == "apache")
    f.kind = time_format::apache;
  else if (spec.starts_with("strptime:")) {
    f.kind = time_format::strptime;
    f.pattern = spec.substr(9);
    if (f.pattern.empty())
      return error{ec::config_bad_value, "strptime: the format is empty"};
    constexpr std::string_view known = "YymdebHMSTfzZ%";
    for (std::size_t i = 0; i < f.pattern.size(); ++i)
      if (f.pattern[i] == '%') {
        if (i + 1 >= f.pattern.size()
            || known.find(f.pattern[i + 1]) == std::string_view::npos)
          return error{ec::config_bad_value,
                       fmt::format("strptime: unsupported directive '%{}' at "
                                   "column {}; supported: %Y %y %m %d %e %b "
                                   "%H %M %S %T %f %z %Z %%",
                                   i + 1 < f.pattern.size() ? f.pattern[i + 1]
                                                            : ' ',
                                   i + 1)};
        ++i;
      }
  } else {
    return error{ec::config_bad_value,
                 fmt::format("unknown time format \"{}\"; expected auto, "
                             "syslog, rfc3339, epoch, apache or "
                             "strptime:FORMAT",
                             spec)};
  }
  return f;
}

std::optional<extracted_time> extract_time(std::string_view text,
                                           const time_format& fmt, time_ns now,
                                           std::size_t lookahead) {
  auto limit = std::min(text.size(), lookahead);
  for (std::size_t at = 0; at < limit; ++at) {
    // Timestamps start at a token boundary.
    if (at > 0 && std::isalnum(static_cast<unsigned char>(text[at - 1])))
      continue;
    std::optional<extracted_time> r;
    switch (fmt.kind) {
      case time_format::syslog:
        r = try_syslog(text, at, now);
        break;
      case time_format::rfc3339:
        r = try_rfc3339(text, at);
        break;
      case time_format::epoch:
        r = try_epoch(text, at, now, false);
        break;
      case time_format::apache:
        r = try_apache(text, at);
        break;
      case time_format::strptime:
        r = try_strptime(text, at, fmt.pattern, now);
        break;
      case time_format::automatic:
        if (!(r = try_rfc3339(text, at)) && !(r = try_apache(text, at))
            && !(r = try_syslog(text, at, now)))
          r = try_epoch(text, at, now, true);
        break;
    }
    if (r)
      return r;
  }
  return std::nullopt;
}

} // namespace parallax
