#include "parallax/pipeline/config.hpp"

#include "parallax/pipeline/defaults.hpp"

#include <doctest/doctest.h>

using namespace parallax;
using namespace std::chrono_literals;

namespace {

error parse_error(std::string_view toml, std::vector<std::string> sets = {}) {
  auto c = parse_config(toml, "test.toml", sets);
  REQUIRE_MESSAGE(!c, "expected a config error");
  return c.error();
}

} // namespace

TEST_CASE("config: no file means the documented defaults") {
  auto c = parse_config("", "none");
  REQUIRE(c);
  CHECK(c->data_dir == "./var");
  CHECK(c->log == log_level::info);
  CHECK(c->scheduler_threads == 0);
  CHECK(c->metrics_interval == 10s);
  CHECK(c->storage_map_size == std::uint64_t{64} << 30);
  CHECK(c->wire.max_frame_bytes == defaults::wire_max_frame_bytes);
  CHECK(c->wire.max_string_bytes == 512u << 10);
}

TEST_CASE("config: a file sets values in tables and as dotted keys") {
  auto c = parse_config(R"(
[parallax]
data-dir = "/srv/parallax"
log-level = "debug"

[parallax.storage]
map-size = "2GiB"

[parallax.wire]
max-frame-bytes = 1048576
max-string-bytes = "64KiB"
)",
                        "test.toml");
  REQUIRE(c);
  CHECK(c->data_dir == "/srv/parallax");
  CHECK(c->log == log_level::debug);
  CHECK(c->storage_map_size == std::uint64_t{2} << 30);
  CHECK(c->wire.max_frame_bytes == 1u << 20);
  CHECK(c->wire.max_string_bytes == 64u << 10);
  auto d = parse_config("parallax.metrics.report-interval = \"1m30s\"\n", "t");
  REQUIRE(d);
  CHECK(d->metrics_interval == 90s);
}

TEST_CASE("config: overrides come last and are typed like TOML") {
  auto c = parse_config("parallax.log-level = \"error\"\n", "test.toml",
                        std::vector<std::string>{"parallax.log-level=warning",
                                                 "parallax.scheduler-threads=3",
                                                 "parallax.data-dir=./x y"});
  REQUIRE(c);
  CHECK(c->log == log_level::warning);
  CHECK(c->scheduler_threads == 3);
  CHECK(c->data_dir == "./x y");
}

TEST_CASE("config: an unknown key is named, with its position and a hint") {
  auto err = parse_error("[parallax.storage]\nmap-sise = \"1GiB\"\n");
  CHECK(err.code == ec::config_unknown_key);
  CHECK(err.message == "parallax.storage.map-sise: unknown key (test.toml:2:12); "
                       "did you mean parallax.storage.map-size?");
  err = parse_error("", {"parallax.nothing.like.this=1"});
  CHECK(err.code == ec::config_unknown_key);
  CHECK(err.message.find("from --set") != std::string::npos);
}

TEST_CASE("config: a bad value names the key, the expectation and the place") {
  auto err = parse_error("parallax.log-level = \"loud\"\n");
  CHECK(err.code == ec::config_bad_value);
  CHECK(err.message.find("parallax.log-level: expected one of") == 0);
  CHECK(err.message.find("(test.toml:1:22)") != std::string::npos);
  err = parse_error("parallax.scheduler-threads = -1\n");
  CHECK(err.message.find("parallax.scheduler-threads: expected an integer from 0") == 0);
  err = parse_error("parallax.scheduler-threads = \"two\"\n");
  CHECK(err.message.find("expected an integer, got \"two\"") != std::string::npos);
  err = parse_error("parallax.metrics.report-interval = 10\n");
  CHECK(err.message.find("expected a duration") != std::string::npos);
  err = parse_error("parallax.metrics.report-interval = \"1ms\"\n");
  CHECK(err.message.find("expected at least 100ms") != std::string::npos);
  err = parse_error("parallax.storage.map-size = \"lots\"\n");
  CHECK(err.message.find("parallax.storage.map-size: expected a size") == 0);
  err = parse_error("parallax.data-dir = \"\"\n");
  CHECK(err.message.find("parallax.data-dir") == 0);
  err = parse_error("parallax.correlator.nice = -21\n");
  CHECK(err.message.find("parallax.correlator.nice: expected an integer from "
                         "-20 to 19, got -21")
        == 0);
  err = parse_error("parallax.correlator.rt-priority = 100\n");
  CHECK(err.message.find("parallax.correlator.rt-priority: expected an "
                         "integer from 0 to 99, got 100")
        == 0);
}

TEST_CASE("config: the correlator's nice defaults to -10 and may be 0") {
  auto c = parse_config("parallax.correlator.nice = 0\n", "t");
  REQUIRE(c);
  CHECK(c->correlator.nice == 0);
  auto d = parse_config("", "t");
  REQUIRE(d);
  CHECK(d->correlator.nice == -10);
  CHECK(d->correlator.rt_priority == 1);
  auto off = parse_config("parallax.correlator.rt-priority = 0\n", "t");
  REQUIRE(off);
  CHECK(off->correlator.rt_priority == 0);
}

TEST_CASE("config: cross-option constraints name the offending key") {
  auto err = parse_error("[parallax.wire]\nmax-frame-bytes = 1024\n"
                         "max-string-bytes = 4096\n");
  CHECK(err.code == ec::config_bad_value);
  CHECK(err.message.find("parallax.wire.max-string-bytes") == 0);
}

TEST_CASE("config: a TOML syntax error gives line and column") {
  auto err = parse_error("[parallax\nlog-level = 1\n");
  CHECK(err.code == ec::config_parse);
  CHECK(err.message.find("test.toml:1:") == 0);
}

TEST_CASE("config: a missing file is an error naming the file") {
  auto c = load_config(std::filesystem::path{"/nonexistent/parallax.toml"});
  REQUIRE_FALSE(c);
  CHECK(c.error().message.find("/nonexistent/parallax.toml") == 0);
}

TEST_CASE("config: the rendered example parses back to the defaults") {
  auto text = render_config(config::defaults());
  for (const auto& o : options()) {
    auto leaf = o.key.substr(o.key.rfind('.') + 1);
    CHECK_MESSAGE(text.find(std::string{leaf} + " = ") != std::string::npos,
                  o.key);
  }
  auto c = parse_config(text, "example");
  REQUIRE(c);
  CHECK(render_config(*c) == text);
}

TEST_CASE("config: durations and sizes") {
  CHECK(parse_duration("500ms") == 500ms);
  CHECK(parse_duration("2m") == 120s);
  CHECK(parse_duration("1h30m") == 90min);
  CHECK(parse_duration("1d") == 24h);
  CHECK_FALSE(parse_duration("10"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration("s"));
  CHECK(parse_duration("36500d") == std::chrono::hours{24} * 36'500);
  CHECK_FALSE(parse_duration("36501d")); // over 100 years: ns would overflow
  CHECK(parse_size("4096") == 4096u);
  CHECK(parse_size("10MB") == 10'000'000u);
  CHECK(parse_size("64GiB") == std::uint64_t{64} << 30);
  CHECK_FALSE(parse_size("64 GiB"));
  CHECK_FALSE(parse_size("99999999999TiB"));
}

TEST_CASE("config: sourcetype rules are read and checked at load time") {
  auto c = parse_config(R"(
[parallax.sourcetypes."os:auth"]
time-format = "syslog"
sedcmd = ['s/password=\S+/password=***/g']
kv = "equals"

[parallax.sourcetypes.app]
time-format = "strptime:%d.%m.%Y %T"
line-breaker = '^\d{2}\.\d{2}\.'
time-lookahead = 32
)",
                        "test.toml");
  REQUIRE_MESSAGE(static_cast<bool>(c), (c ? "" : c.error().message));
  // The built-in search-time rules (defaults.hpp) plus "app"; the table
  // for "os:auth" extends its built-in rules.
  REQUIRE(c->sourcetypes.size() == config::defaults().sourcetypes.size() + 1);
  auto rules_of = [&](std::string_view name) {
    for (const auto& r : c->sourcetypes)
      if (r.name == name)
        return r;
    FAIL("no rules for ", name);
    return sourcetype_rules{};
  };
  CHECK(rules_of("os:auth").time_format == "syslog");
  CHECK(rules_of("os:auth").sedcmd.size() == 1);
  CHECK(rules_of("os:auth").kv == "equals");
  CHECK(rules_of("app").time_lookahead == 32);
  CHECK(rules_of("app").line_breaker == "^\\d{2}\\.\\d{2}\\.");
  CHECK_FALSE(rules_of("os:auth").extract.empty()); // built in, kept
  // Rendered and parsed again: the same rules.
  auto again = parse_config(render_config(*c), "rendered");
  REQUIRE(again);
  CHECK(again->sourcetypes == c->sourcetypes);
}

TEST_CASE("config: bad sourcetype rules name the key") {
  auto err = parse_error("[parallax.sourcetypes.\"os:auth\"]\n"
                         "sedcmd = ['s/(oops/x/']\n");
  CHECK(err.code == ec::config_bad_value);
  CHECK(err.message.find("parallax.sourcetypes.\"os:auth\".sedcmd[0]: invalid "
                         "regex")
        == 0);
  err = parse_error("[parallax.sourcetypes.x]\ntime-formt = \"syslog\"\n");
  CHECK(err.code == ec::config_unknown_key);
  CHECK(err.message.find("parallax.sourcetypes.\"x\".time-formt: unknown key "
                         "(test.toml:2:")
        == 0);
  err = parse_error("[parallax.sourcetypes.x]\ntime-lookahead = 0\n");
  CHECK(err.message.find("time-lookahead: expected an integer") != std::string::npos);
  err = parse_error("", {"parallax.sourcetypes.x.kv=none"});
  CHECK(err.message.find("set in the config file") != std::string::npos);
}

TEST_CASE("config: search settings and search-time sourcetype rules") {
  auto c = parse_config(R"(
[parallax.search]
endpoint = ""
max-memory = "64MiB"
timeout = "5s"
max-results = 50
job-ttl = "1m"

[parallax.sourcetypes."os:auth"]
extract = ['for (?<user>\S+) from (?P<src_ip>[\d.]+)']
field-aliases = ["src_ip=client_ip"]
calculated = ["twice=2 * 21"]
)",
                        "test.toml");
  REQUIRE_MESSAGE(static_cast<bool>(c), (c ? "" : c.error().message));
  CHECK(c->search.endpoint.empty());
  CHECK(c->search.max_memory == std::uint64_t{64} << 20);
  CHECK(c->search.timeout == 5s);
  CHECK(c->search.max_results == 50);
  CHECK(c->search.job_ttl == 1min);
  REQUIRE(c->sourcetypes.size() == config::defaults().sourcetypes.size());
  const sourcetype_rules* auth = nullptr;
  for (const auto& r : c->sourcetypes)
    if (r.name == "os:auth")
      auth = &r;
  REQUIRE(auth);
  // The keys the table sets replace the built-in ones.
  CHECK(auth->extract.size() == 1);
  CHECK(auth->field_aliases == std::vector<std::string>{"src_ip=client_ip"});
  // Rendered and parsed again: the same rules.
  auto again = parse_config(render_config(*c), "rendered");
  REQUIRE_MESSAGE(static_cast<bool>(again),
                  (again ? "" : again.error().message));
  CHECK(again->sourcetypes == c->sourcetypes);
  // The defaults.
  auto d = config::defaults();
  CHECK(d.search.endpoint == "tcp://127.0.0.1:7402");
  CHECK(d.search.max_memory == std::uint64_t{512} << 20);
  CHECK(d.search.timeout == 60s);
  CHECK(d.search.max_results == 10'000);
  CHECK(d.search.job_ttl == 10min);
}

TEST_CASE("config: a bad search-time rule names the key") {
  // A regex that does not compile: a config error (exit 2) naming the key.
  auto err = parse_error("[parallax.sourcetypes.\"os:auth\"]\n"
                         "extract = ['user (?<user>\\S+']\n");
  CHECK(err.code == ec::config_bad_value);
  CHECK_MESSAGE(err.message.find("parallax.sourcetypes.\"os:auth\".extract[0]")
                  == 0,
                err.message);
  CHECK(err.message.find("(test.toml:1:") != std::string::npos);
  err = parse_error("[parallax.sourcetypes.x]\ncalculated = ['y=(1 +']\n");
  CHECK_MESSAGE(err.message.find("parallax.sourcetypes.\"x\".calculated[0]")
                  == 0,
                err.message);
  err = parse_error("[parallax.sourcetypes.x]\nextract = [1]\n");
  CHECK(err.message.find("expected a string or an array of strings")
        != std::string::npos);
  err = parse_error("[parallax.search]\ntimeout = \"soon\"\n");
  CHECK(err.message.find("parallax.search.timeout: expected a duration")
        == 0);
}
