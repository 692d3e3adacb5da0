#include "parallax/actors/parser.hpp"

#include "parallax/schemas/wire.hpp"

#include <doctest/doctest.h>

using namespace parallax;

namespace {

// 2026-11-25T20:18:30Z, computed with Python's datetime.
constexpr time_ns now = 1'795'637'910'000'000'000;
constexpr time_ns s = 1'000'000'000;

ingest_item item_of(std::vector<event> events) {
  wire::batch b;
  b.source_id = "t";
  b.sequence = 1;
  b.events = std::move(events);
  auto d = wire::decode(wire::encode(b));
  REQUIRE(d);
  ingest_item item;
  item.batch = std::move(*d);
  item.times.received = now + 5 * s;
  return item;
}

event raw_event(std::string source, std::string sourcetype, std::string raw,
                time_ns t = unknown_time) {
  event e;
  e.time = t;
  e.source = std::move(source);
  e.sourcetype = std::move(sourcetype);
  e.raw = std::move(raw);
  return e;
}

std::string field_of(const event_view& e, std::string_view name) {
  auto v = e.find(name);
  if (!v)
    return "<none>";
  if (auto sv = std::get_if<std::string_view>(v))
    return std::string{*sv};
  return "<not a string>";
}

rulebook book_of(std::vector<sourcetype_rules> rules) {
  auto b = rulebook::make(rules);
  REQUIRE(b);
  return std::move(*b);
}

} // namespace

TEST_CASE("parser: extracted, interpolated and received times are labelled") {
  auto item = item_of({
    raw_event("/var/log/auth.log", "os:auth", "Nov 25 20:18:00 h sshd[1]: a"),
    raw_event("/var/log/auth.log", "os:auth", "continuation without a time"),
    raw_event("/var/log/other", "os:auth", "no time, no neighbour"),
    raw_event("/var/log/auth.log", "os:auth", "sent with a time", now - 60 * s),
  });
  parse_counters c;
  parse_batch(item, book_of({}), now, 86'400 * s, c);
  auto ev = item.events();
  REQUIRE(ev.size() == 4);
  CHECK(ev[0].time == now - 30 * s); // 20:18:00
  CHECK(field_of(ev[0], "_time_source") == "extracted");
  CHECK(ev[1].time == now - 30 * s); // from event 0, same source
  CHECK(field_of(ev[1], "_time_source") == "interpolated");
  CHECK(ev[2].time == now + 5 * s); // the receive time
  CHECK(field_of(ev[2], "_time_source") == "received");
  CHECK(ev[3].time == now - 60 * s); // the sender's time is kept, unlabelled
  CHECK(field_of(ev[3], "_time_source") == "<none>");
  CHECK(c.extracted == 1);
  CHECK(c.interpolated == 1);
  CHECK(c.received == 1);
}

TEST_CASE("parser: an event before the first known time takes the next one") {
  auto item = item_of({
    raw_event("f", "x", "first line, no time"),
    raw_event("f", "x", "2026-11-25T20:18:30Z second"),
  });
  parse_counters c;
  parse_batch(item, book_of({}), now, 86'400 * s, c);
  CHECK(item.events()[0].time == now);
  CHECK(field_of(item.events()[0], "_time_source") == "interpolated");
}

TEST_CASE("parser: sedcmd transforms run before extraction and kv") {
  sourcetype_rules r;
  r.name = "app";
  r.sedcmd = {"s/password=\\S+/password=*****/g"};
  auto item = item_of({raw_event("f", "app",
                                 "2026-11-25T20:18:30Z login user=bob "
                                 "password=hunter2 ok",
                                 now)});
  parse_counters c;
  parse_batch(item, book_of({r}), now, 86'400 * s, c);
  const auto& e = item.events()[0];
  CHECK(*e.raw == "2026-11-25T20:18:30Z login user=bob password=***** ok");
  CHECK(field_of(e, "user") == "bob");
  CHECK(field_of(e, "password") == "*****"); // never the secret
  CHECK(c.transformed == 1);
}

TEST_CASE("parser: the sender's fields win over extracted ones") {
  auto e = raw_event("f", "x", "user=mallory action=\"log in\"", now);
  e.fields = {{"user", std::string{"alice"}}};
  auto item = item_of({e});
  parse_counters c;
  parse_batch(item, book_of({}), now, 86'400 * s, c);
  CHECK(field_of(item.events()[0], "user") == "alice");
  CHECK(field_of(item.events()[0], "action") == "log in"); // quoted: arena copy
  CHECK(c.kv_fields == 1);
}

TEST_CASE("parser: per-sourcetype formats and an untouched batch") {
  sourcetype_rules r;
  r.name = "custom";
  r.time_format = "strptime:%d.%m.%Y %T";
  r.kv = "none";
  auto item = item_of({raw_event("f", "custom", "25.11.2026 20:18:30 a=b")});
  parse_counters c;
  parse_batch(item, book_of({r}), now, 86'400 * s, c);
  CHECK(item.events()[0].time == now);
  CHECK(field_of(item.events()[0], "a") == "<none>"); // kv = none
  // Metric samples with known times, an index and no raw text need no
  // parsing.
  event m;
  m.time = now;
  m.index = "hv";
  m.sourcetype = "hv:libvirt";
  m.fields = {{"cpu", 1.5}};
  auto metrics = item_of({m});
  parse_batch(metrics, book_of({}), now, 86'400 * s, c);
  CHECK(metrics.parsed.empty());
  CHECK(metrics.events().size() == 1);
}

TEST_CASE("parser: extracted times beyond the allowed future are not used") {
  auto item = item_of({raw_event("f", "x", "2030-01-01T00:00:00Z from the future")});
  parse_counters c;
  parse_batch(item, book_of({}), now, 86'400 * s, c);
  CHECK(item.events()[0].time == now + 5 * s);
  CHECK(field_of(item.events()[0], "_time_source") == "received");
}

TEST_CASE("parser: invalid rules name the key") {
  sourcetype_rules r;
  r.name = "os:auth";
  r.sedcmd = {"s/(unclosed/x/g"};
  auto b = rulebook::make({r});
  REQUIRE_FALSE(b);
  CHECK(b.error().message.find("parallax.sourcetypes.\"os:auth\".sedcmd[0]: "
                               "invalid regex")
        == 0);
  r.sedcmd = {};
  r.line_breaker = "(";
  b = rulebook::make({r});
  REQUIRE_FALSE(b);
  CHECK(b.error().message.find(".line-breaker: invalid regex") != std::string::npos);
  r.line_breaker = "";
  r.time_format = "sometimes";
  b = rulebook::make({r});
  REQUIRE_FALSE(b);
  CHECK(b.error().message.find(".time-format: unknown time format") != std::string::npos);
}

TEST_CASE("parser: times copied from received ones are labelled received") {
  auto item = item_of({raw_event("f", "x", "no time here"),
                       raw_event("f", "x", "none here either")});
  parse_counters c;
  parse_batch(item, book_of({}), now, 86'400 * s, c);
  for (const auto& e : item.events()) {
    CHECK(e.time == now + 5 * s);
    CHECK(field_of(e, "_time_source") == "received");
  }
  CHECK(c.received == 2);
  CHECK(c.interpolated == 0);
}

TEST_CASE("parser: key/value extraction stops at the field limit") {
  std::string raw = "2026-11-25T20:18:30Z";
  for (int i = 0; i < 10; ++i)
    raw += " k" + std::to_string(i) + "=v";
  auto item = item_of({raw_event("f", "x", raw)});
  parse_counters c;
  parse_batch(item, book_of({}), now, 86'400 * s, c, 5);
  // _time_source plus four pairs: five fields.
  CHECK(item.events()[0].fields.size() == 5);
  CHECK(c.kv_fields == 4);
}

TEST_CASE("parser: events without an index go to main") {
  event m;
  m.time = now;
  m.sourcetype = "hv:libvirt";
  m.fields = {{"cpu", 1.5}};
  auto named = m;
  named.index = "hv";
  auto item = item_of({m, named});
  parse_counters c;
  parse_batch(item, book_of({}), now, 86'400 * s, c);
  REQUIRE(item.events().size() == 2);
  CHECK(item.events()[0].index == "main");
  CHECK(item.events()[1].index == "hv");
  CHECK(item.events()[0].fields.size() == 1); // nothing else added
}

TEST_CASE("parser: hv:vsphere samples gain their normalised fields") {
  event e;
  e.time = now - 20 * s;
  e.index = "main";
  e.host = "esx-02";
  e.sourcetype = "hv:vsphere";
  e.fields = {{"vm_name", std::string{"db-02"}},
              {"vcpus", std::int64_t{2}},
              {"cpu.usage.average", std::int64_t{4512}},
              {"cpu.ready.summation", std::int64_t{800}},
              {"mem.consumed.average", std::int64_t{2097152}}};
  event other = e;
  other.sourcetype = "hv:libvirt:vm"; // same field names: left alone
  auto item = item_of({e, other});
  parse_counters counters;
  parse_batch(item, book_of({}), now, 3600 * s, counters, 256);
  auto events = item.events();
  REQUIRE(events.size() == 2);
  auto number = [](const event_view& ev, std::string_view name) {
    auto v = ev.find(name);
    REQUIRE_MESSAGE(v, name);
    if (auto d = std::get_if<double>(v))
      return *d;
    return static_cast<double>(std::get<std::int64_t>(*v));
  };
  CHECK(number(events[0], "cpu_pct") == doctest::Approx(45.12));
  CHECK(number(events[0], "cpu_ready_pct") == doctest::Approx(2.0));
  CHECK(number(events[0], "mem_consumed_bytes") == 2097152.0 * 1024);
  CHECK(events[0].time == now - 20 * s); // nothing else changes
  CHECK(field_of(events[0], "vm_name") == "db-02");
  CHECK_FALSE(events[1].find("cpu_pct"));
}
