#include "parallax/pipeline/timestamp.hpp"

#include <doctest/doctest.h>

using namespace parallax;

namespace {

// Expected values computed independently with Python:
//   int(datetime(2026,11,25,20,18,30,tzinfo=timezone.utc).timestamp())
constexpr time_ns t_2026_11_25_201830 = 1'795'637'910'000'000'000;
constexpr time_ns t_2025_12_31_235959 = 1'767'225'599'000'000'000;
constexpr time_ns t_2024_02_29_120000 = 1'709'208'000'000'000'000;
constexpr time_ns ms = 1'000'000;
constexpr time_ns s = 1'000'000'000;

// "Now" for the year-less formats: 2026-11-25T20:18:30Z.
constexpr time_ns now = t_2026_11_25_201830;

time_format fmt_of(std::string_view spec) {
  auto f = parse_time_format(spec);
  REQUIRE(f);
  return *f;
}

std::optional<time_ns> at(std::string_view text, std::string_view spec,
                          time_ns reference = now) {
  auto r = extract_time(text, fmt_of(spec), reference);
  if (!r)
    return std::nullopt;
  return r->time;
}

} // namespace

TEST_CASE("timestamp: civil dates convert like Python's datetime") {
  CHECK(civil_to_ns(2026, 11, 25, 20, 18, 30) == t_2026_11_25_201830);
  CHECK(civil_to_ns(2024, 2, 29, 12, 0, 0) == t_2024_02_29_120000);
  CHECK(civil_to_ns(1970, 1, 1, 0, 0, 0) == 0);
  CHECK(civil_to_ns(1969, 12, 31, 23, 59, 59) == -s); // -1 s
}

TEST_CASE("timestamp: RFC 3339 with fractions and offsets") {
  CHECK(at("2026-11-25T20:18:30Z sshd: x", "rfc3339") == t_2026_11_25_201830);
  CHECK(at("2026-11-25T20:18:30.492Z", "rfc3339")
        == t_2026_11_25_201830 + 492 * ms);
  CHECK(at("at 2026-11-25 20:18:30.123456789+00:00 ok", "rfc3339")
        == t_2026_11_25_201830 + 123'456'789);
  // 20:18:30+01:00 is 19:18:30Z.
  CHECK(at("2026-11-25T20:18:30+01:00", "rfc3339") == t_2026_11_25_201830 - 3600 * s);
  CHECK(at("2026-11-25T20:18:30-0500", "rfc3339") == t_2026_11_25_201830 + 5 * 3600 * s);
  CHECK(at("2026-11-25T20:18:30", "rfc3339") == t_2026_11_25_201830); // UTC
  CHECK_FALSE(at("2026-13-25T20:18:30Z", "rfc3339")); // month 13
  CHECK_FALSE(at("2026-02-30T20:18:30Z", "rfc3339")); // no Feb 30
}

TEST_CASE("timestamp: syslog picks the year so the time is not in the future") {
  CHECK(at("Nov 25 20:18:30 web-01 sshd[1]: ok", "syslog") == t_2026_11_25_201830);
  // Dec 31 read on Nov 25, 2026 cannot be Dec 2026: it is Dec 31, 2025.
  CHECK(at("Dec 31 23:59:59 web-01 cron[2]: x", "syslog") == t_2025_12_31_235959);
  // Space-padded day.
  CHECK(at("Nov  5 20:18:30 host x", "syslog")
        == t_2026_11_25_201830 - 20 * 86'400 * s);
  // Feb 29 in 2026 (no leap year) is the last leap year's.
  CHECK(at("Feb 29 12:00:00 h x", "syslog") == t_2024_02_29_120000);
  // A day ahead is allowed (clock skew), two are not.
  CHECK(at("Nov 26 20:18:30 h x", "syslog") == t_2026_11_25_201830 + 86'400 * s);
  CHECK(at("Nov 27 20:18:30 h x", "syslog")
        == t_2026_11_25_201830 + 2 * 86'400 * s - 365 * 86'400 * s);
}

TEST_CASE("timestamp: epoch seconds, milliseconds, micro- and nanoseconds") {
  CHECK(at("ts=1795637910 x", "epoch") == t_2026_11_25_201830);
  CHECK(at("1795637910.25 x", "epoch") == t_2026_11_25_201830 + 250 * ms);
  CHECK(at("1795637910492", "epoch") == t_2026_11_25_201830 + 492 * ms);
  CHECK(at("1795637910492001", "epoch") == t_2026_11_25_201830 + 492'001'000);
  CHECK(at("1795637910492001002", "epoch") == t_2026_11_25_201830 + 492'001'002);
  CHECK_FALSE(at("pid 12345678901", "epoch")); // 11 digits: not a timestamp
}

TEST_CASE("timestamp: Apache common log format") {
  auto line = R"(10.0.1.2 - - [25/Nov/2026:20:18:30 +0000] "GET / HTTP/1.1" 200 5)";
  CHECK(at(line, "apache") == t_2026_11_25_201830);
  CHECK(at("[25/Nov/2026:21:18:30 +0100]", "apache") == t_2026_11_25_201830);
}

TEST_CASE("timestamp: strptime-style formats") {
  CHECK(at("25.11.2026 20:18:30 x", "strptime:%d.%m.%Y %H:%M:%S")
        == t_2026_11_25_201830);
  CHECK(at("[2026/11/25 20:18:30.5 UTC]", "strptime:%Y/%m/%d %T.%f %Z")
        == t_2026_11_25_201830 + 500 * ms);
  CHECK(at("26-11-25 21:18:30 +0100", "strptime:%y-%m-%d %H:%M:%S %z")
        == t_2026_11_25_201830);
  // No year in the format: the syslog rule.
  CHECK(at("Dec 31 23:59:59", "strptime:%b %e %T") == t_2025_12_31_235959);
  auto bad = parse_time_format("strptime:%Y-%q");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("'%q'") != std::string::npos);
  CHECK_FALSE(parse_time_format("weird"));
}

TEST_CASE("timestamp: auto finds the first format that matches") {
  CHECK(at("2026-11-25T20:18:30Z x", "auto") == t_2026_11_25_201830);
  CHECK(at("Nov 25 20:18:30 h x", "auto") == t_2026_11_25_201830);
  CHECK(at("x [25/Nov/2026:20:18:30 +0000] y", "auto") == t_2026_11_25_201830);
  CHECK(at("time=1795637910 x", "auto") == t_2026_11_25_201830);
  // Epoch in auto mode only within 2000..now+1y: a pid is not a time.
  CHECK_FALSE(at("sshd[1234567890]: x", "auto", civil_to_ns(2000, 1, 1, 0, 0, 0)));
  CHECK_FALSE(at("no time here at all", "auto"));
  // Only at token boundaries: "x2026-11-25T..." is not a timestamp.
  CHECK_FALSE(at("x2026-11-25T20:18:30Z", "rfc3339"));
  // Beyond the lookahead nothing is found.
  std::string far(200, ' ');
  far += "2026-11-25T20:18:30Z";
  CHECK_FALSE(at(far, "rfc3339"));
}

TEST_CASE("timestamp: the match position is reported") {
  auto r = extract_time("host: Nov 25 20:18:30 rest", fmt_of("syslog"), now);
  REQUIRE(r);
  CHECK(r->offset == 6);
  CHECK(r->length == 15);
}

TEST_CASE("timestamp: times beyond int64 nanoseconds are not timestamps") {
  // int64 ns end in April 2262; year 2610 would wrap around.
  CHECK_FALSE(at("2610-01-01T00:00:00Z x", "auto"));
  CHECK_FALSE(at("1441-01-01T00:00:00Z x", "rfc3339"));
  // A 10-digit number above 9223372035 (a phone number, say).
  CHECK_FALSE(at("call 9876543210 now", "epoch"));
  CHECK_FALSE(at("9999999999999", "epoch"));
}
