#pragma once

// Timestamp extraction from raw event text, as the parser applies it per
// sourcetype (`time-format` in the sourcetype's rules).
//
// Formats:
//   syslog    "Nov 25 20:18:30" (optionally ".123456"): no year; the year is
//             chosen so the time is not more than a day in the future
//   rfc3339   "2026-11-25T20:18:30.492Z", "2026-11-25 20:18:30+01:00";
//             no zone means UTC
//   epoch     10 digits (s, optionally ".fraction"), 13 (ms), 16 (us),
//             19 (ns), delimited by non-digits
//   apache    "25/Nov/2026:20:18:30 +0000" (common log format, brackets
//             optional)
//   strptime  "strptime:FORMAT" with %Y %y %m %d %e %b %H %M %S %f %z %Z
//             %T %% and literal characters
//   auto      rfc3339, apache, syslog, then epoch seconds/ms within
//             2000..(now + 1 year), at the first position where one matches
// All times are UTC unless the text carries an offset.

#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace parallax {

struct time_format {
  enum kind_t { automatic, syslog, rfc3339, epoch, apache, strptime };
  kind_t kind = automatic;
  std::string pattern; ///< for strptime
};

/// Parses "auto", "syslog", "rfc3339", "epoch", "apache" or
/// "strptime:FORMAT"; an unknown name or directive is an error naming it.
result<time_format> parse_time_format(std::string_view spec);

struct extracted_time {
  time_ns time = 0;
  std::size_t offset = 0; ///< where the timestamp starts in the text
  std::size_t length = 0;
};

/// The first timestamp of `fmt` that starts within the first `lookahead`
/// bytes of `text`, at a token boundary. `now` anchors year-less formats.
std::optional<extracted_time> extract_time(std::string_view text,
                                           const time_format& fmt, time_ns now,
                                           std::size_t lookahead = 128);

/// Nanoseconds since the epoch of a UTC civil time (proleptic Gregorian).
time_ns civil_to_ns(int year, unsigned month, unsigned day, unsigned hour,
                    unsigned minute, unsigned second, long nanos = 0);

} // namespace parallax
