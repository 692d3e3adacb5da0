#include "parallax/schemas/error.hpp"

#include <set>

#include <doctest/doctest.h>

using namespace parallax;

TEST_CASE("error: every code has a distinct name") {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(ec::last); ++i) {
    auto n = to_string(static_cast<ec>(i));
    CHECK(n != "unknown_error");
    names.insert(n);
  }
  CHECK(names.size() == static_cast<std::size_t>(ec::last) + 1);
}

TEST_CASE("error: render says what and where") {
  error e{ec::truncated, "the time needs 8 more bytes", 17};
  CHECK(e.render() == "truncated at byte 17: the time needs 8 more bytes");
  error c{ec::config_bad_value, "parallax.log-level: expected a level"};
  CHECK(c.render() == "config_bad_value: parallax.log-level: expected a level");
  CHECK(static_cast<bool>(c));
  CHECK_FALSE(static_cast<bool>(error{}));
}
