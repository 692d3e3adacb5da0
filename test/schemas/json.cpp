#include "parallax/schemas/json.hpp"

#include <cmath>
#include <limits>

#include <doctest/doctest.h>

using namespace parallax;

TEST_CASE("json: strings are escaped and invalid UTF-8 becomes U+FFFD") {
  std::string out;
  json::append_string(out, "a\"b\\c\nd\x01" "caf\xc3\xa9 \xff!");
  CHECK(out == "\"a\\\"b\\\\c\\nd\\u0001caf\xc3\xa9 \xef\xbf\xbd!\"");
}

TEST_CASE("json: values keep their type, non-finite floats become strings") {
  auto render = [](value_view v) {
    std::string out;
    json::append_value(out, v);
    return out;
  };
  CHECK(render(std::int64_t{-3}) == "-3");
  CHECK(render(2.0) == "2.0");
  CHECK(render(0.25) == "0.25");
  CHECK(render(true) == "true");
  CHECK(render(std::string_view{"x"}) == "\"x\"");
  CHECK(render(std::numeric_limits<double>::quiet_NaN()) == "\"NaN\"");
  CHECK(render(-std::numeric_limits<double>::infinity()) == "\"-Infinity\"");
}

TEST_CASE("json: an event renders every member") {
  field_view fields[] = {{"pid", std::int64_t{7}}, {"user", std::string_view{"bob"}}};
  event_view e;
  e.time = 12;
  e.index = "os";
  e.host = "web-01";
  e.source = "agent";
  e.sourcetype = "os:process";
  e.fields = fields;
  std::string out;
  json::append_event(out, e);
  CHECK(out == R"({"time":12,"index":"os","host":"web-01","source":"agent",)"
               R"("sourcetype":"os:process","raw":null,"fields":{"pid":7,"user":"bob"}})");
}
