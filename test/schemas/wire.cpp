#include "parallax/schemas/wire.hpp"

#include "frames.hpp"

#include <cmath>
#include <functional>
#include <span>
#include <limits>

#include <doctest/doctest.h>

using namespace parallax;
using parallax::test::frame_builder;

namespace {

event sample_event() {
  event e;
  e.time = 1'795'635'510'492'000'000;
  e.index = "os";
  e.host = "web-01";
  e.source = "/var/log/auth.log";
  e.sourcetype = "os:auth";
  e.raw = "Nov 25 20:18:30 web-01 sshd[2211]: Accepted publickey for deploy";
  e.fields = {{"user", std::string{"deploy"}},
              {"pid", std::int64_t{2211}},
              {"pct_cpu", 12.5},
              {"admin", false}};
  return e;
}

wire::batch one_batch(std::vector<event> events) {
  wire::batch b;
  b.source_id = "agent-web-01";
  b.sequence = 42;
  b.events = std::move(events);
  return b;
}

error decode_error(const std::string& frame, const wire::limits& lim = {}) {
  auto r = wire::decode(frame, lim);
  REQUIRE_MESSAGE(!r, "expected a rejection");
  return r.error();
}

} // namespace

TEST_CASE("wire: round trip of a mixed batch keeps every field and type") {
  std::vector<event> events;
  events.push_back(sample_event());
  event metric;
  metric.time = 1;
  metric.index = "hv";
  metric.host = "hv-03";
  metric.source = "libvirt";
  metric.sourcetype = "hv:libvirt";
  metric.fields = {{"cpu_pct", 99.75}, {"balloon_rss_kib", std::int64_t{1'048'576}}};
  events.push_back(metric); // raw absent
  events.push_back(event{}); // everything empty, time 0
  auto b = one_batch(events);
  auto frame = wire::encode(b);
  auto decoded = wire::decode(frame);
  REQUIRE(decoded);
  CHECK(decoded->major() == wire::major_version);
  CHECK(decoded->minor() == wire::minor_version);
  CHECK(decoded->source_id() == "agent-web-01");
  CHECK(decoded->sequence() == 42);
  CHECK(decoded->frame_bytes() == frame.size());
  REQUIRE(decoded->events().size() == 3);
  CHECK(decoded->field_count() == 6);
  auto back = decoded->materialize();
  CHECK(back.source_id == b.source_id);
  CHECK(back.sequence == b.sequence);
  CHECK(back.events == b.events);
  CHECK_FALSE(decoded->events()[1].raw.has_value());
  // Types survive: an integer stays an integer, a float a float.
  auto pid = decoded->events()[0].find("pid");
  REQUIRE(pid != nullptr);
  CHECK(std::holds_alternative<std::int64_t>(*pid));
  auto pct = decoded->events()[0].find("pct_cpu");
  REQUIRE(pct != nullptr);
  CHECK(std::get<double>(*pct) == 12.5);
}

TEST_CASE("wire: integer extremes and string length boundaries round-trip") {
  event e;
  e.time = std::numeric_limits<std::int64_t>::min(); // before 1970: decodes
  std::int64_t ints[] = {0, 1, 127, 128, 255, 256, 65535, 65536, -1, -32, -33,
                         -128, -129, std::numeric_limits<std::int64_t>::max(),
                         std::numeric_limits<std::int64_t>::min()};
  int k = 0;
  for (auto i : ints)
    e.fields.push_back({"i" + std::to_string(k++), i});
  // Lengths at every MessagePack string-header boundary: fixstr (<32),
  // str8 (<256), str16 (<65536), str32.
  for (std::size_t len : {0, 31, 32, 255, 256, 65535, 65536}) {
    e.fields.push_back({"s" + std::to_string(len), std::string(len, 'x')});
  }
  e.raw = std::string(70'000, 'r');
  auto frame = wire::encode(one_batch({e}));
  auto d = wire::decode(frame);
  REQUIRE(d);
  CHECK(d->materialize().events.front() == e);
}

TEST_CASE("wire: views stay valid after the caller's buffer is gone") {
  std::optional<wire::batch_view> kept;
  {
    auto frame = wire::encode(one_batch({sample_event()}));
    auto d = wire::decode(std::move(frame)); // decode owns the frame now
    REQUIRE(d);
    kept.emplace(std::move(*d));
  }
  // A moved batch_view keeps its field spans valid (vector buffers move).
  wire::batch_view moved = std::move(*kept);
  REQUIRE(moved.events().size() == 1);
  CHECK(moved.events()[0].host == "web-01");
  CHECK(moved.events()[0].fields[0].name == "user");
}

TEST_CASE("wire: whole-number and signed-zero floats stay floats") {
  event e;
  e.fields = {{"cpu", 50.0}, {"zero", -0.0}, {"big", 1e18}};
  auto d = wire::decode(wire::encode(one_batch({e})));
  REQUIRE(d);
  const auto& f = d->events()[0].fields;
  REQUIRE(f.size() == 3);
  for (const auto& x : f)
    CHECK_MESSAGE(std::holds_alternative<double>(x.value), x.name);
  CHECK(std::signbit(std::get<double>(f[1].value)));
}

TEST_CASE("wire: a nil time is an unknown time, and round-trips") {
  auto frame = frame_builder{}
                 .envelope(1)
                 .array(7).nil().str("main").str("h").str("s").str("st")
                 .str("Nov 25 20:18:30 web-01 cron[1]: job").map(0)
                 .done();
  auto d = wire::decode(frame);
  REQUIRE(d);
  CHECK(d->events()[0].time == unknown_time);
  auto again = wire::encode(d->materialize());
  CHECK(again == frame); // written back as nil
}

TEST_CASE("wire: a float32 value decodes as a float") {
  auto frame = frame_builder{}.envelope(1).event_head(1).str("x").f32(0.5f).done();
  auto d = wire::decode(frame);
  REQUIRE(d);
  CHECK(std::get<double>(d->events()[0].fields[0].value) == 0.5);
}

TEST_CASE("wire: an empty frame is truncated at byte 0") {
  auto err = decode_error("");
  CHECK(err.code == ec::truncated);
  CHECK(err.offset == 0);
}

TEST_CASE("wire: the never-used byte 0xc1 is not MessagePack") {
  auto err = decode_error(std::string{"\xc1\x01\x02", 3});
  CHECK(err.code == ec::not_msgpack);
  CHECK(err.offset == 0);
}

TEST_CASE("wire: text and other MessagePack values are not a batch") {
  auto err = decode_error("hello");
  // 'h' (0x68) is a positive fixint: valid MessagePack, wrong shape.
  CHECK(err.code == ec::wrong_type);
  CHECK(err.offset == 0);
  CHECK(err.message.find("found integer") != std::string::npos);
  err = decode_error(frame_builder{}.map(0).done());
  CHECK(err.code == ec::wrong_type);
  CHECK(err.message.find("found map") != std::string::npos);
}

TEST_CASE("wire: an unknown major version is refused before anything else") {
  // Major 2 with a body this decoder could not parse at all.
  auto frame = frame_builder{}.array(3).uint(2).uint(0).str("whatever").done();
  auto err = decode_error(frame);
  CHECK(err.code == ec::unknown_version);
  CHECK(err.offset == 1); // the major version element
  CHECK(err.message.find("major version 2") != std::string::npos);
}

TEST_CASE("wire: a newer minor version is read unless it adds elements") {
  auto same_shape = frame_builder{}
                      .envelope(1, /*minor=*/3)
                      .event_head(0)
                      .done();
  auto d = wire::decode(same_shape);
  REQUIRE(d);
  CHECK(d->minor() == 3);
  // A minor-3 batch with a sixth envelope element: refused, not dropped.
  auto extended = frame_builder{}
                    .array(6).uint(1).uint(3).str("src").uint(7).array(0)
                    .str("new element")
                    .done();
  auto err = decode_error(extended);
  CHECK(err.code == ec::unknown_version);
  // The same shape claiming minor 0 is simply malformed.
  auto bad = frame_builder{}
               .array(6).uint(1).uint(0).str("src").uint(7).array(0).nil()
               .done();
  CHECK(decode_error(bad).code == ec::wrong_type);
  // Likewise for events with an eighth element.
  auto ev8 = frame_builder{}
               .envelope(1, 1)
               .array(8).int_(5).str("main").str("h").str("s").str("st").nil()
               .map(0).nil()
               .done();
  err = decode_error(ev8);
  CHECK(err.code == ec::unknown_version);
  CHECK(err.offset == 9);
  CHECK(err.message.find("event 0") != std::string::npos);
}

TEST_CASE("wire: every truncation of a valid frame is reported as truncated") {
  auto frame = wire::encode(one_batch({sample_event(), sample_event()}));
  for (std::size_t n = 0; n < frame.size(); ++n) {
    auto err = decode_error(frame.substr(0, n));
    CHECK_MESSAGE(err.code == ec::truncated, "prefix of ", n, " bytes: ",
                  err.render());
    CHECK(err.offset <= n);
  }
}

TEST_CASE("wire: wrong types name the event, the element and the offset") {
  // The time at byte 10 (event array header at 9) is a string.
  auto frame = frame_builder{}
                 .envelope(1)
                 .array(7).str("yesterday").str("main").str("h").str("s")
                 .str("st").nil().map(0)
                 .done();
  auto err = decode_error(frame);
  CHECK(err.code == ec::wrong_type);
  CHECK(err.offset == 10);
  CHECK(err.message == "event 0: the time: expected integer, found string");
  // The source id as an integer.
  frame = frame_builder{}.array(5).uint(1).uint(0).uint(9).uint(7).array(0).done();
  err = decode_error(frame);
  CHECK(err.code == ec::wrong_type);
  CHECK(err.offset == 3);
  // A field map that is an array.
  frame = frame_builder{}
            .envelope(1)
            .array(7).int_(1).str("main").str("h").str("s").str("st").nil()
            .array(0)
            .done();
  err = decode_error(frame);
  CHECK(err.code == ec::wrong_type);
  CHECK(err.message.find("the field map") != std::string::npos);
  // The raw text as binary.
  frame = frame_builder{}
            .envelope(1)
            .array(7).int_(1).str("main").str("h").str("s").str("st").bin("x")
            .map(0)
            .done();
  err = decode_error(frame);
  CHECK(err.code == ec::wrong_type);
  CHECK(err.message.find("found binary") != std::string::npos);
}

TEST_CASE("wire: field values of nil, binary, array or map are rejected") {
  for (int kind = 0; kind < 4; ++kind) {
    frame_builder fb;
    fb.envelope(1).event_head(1).str("cpu");
    switch (kind) {
      case 0: fb.nil(); break;
      case 1: fb.bin("ab"); break;
      case 2: fb.array(0); break;
      default: fb.map(0); break;
    }
    auto err = decode_error(fb.done());
    CHECK(err.code == ec::wrong_type);
    CHECK(err.message.find("event 0: field 'cpu': the value") == 0);
  }
}

TEST_CASE("wire: integers outside int64 and negative counters are invalid") {
  auto frame = frame_builder{}
                 .envelope(1)
                 .array(7).uint(std::numeric_limits<std::uint64_t>::max())
                 .str("main").str("h").str("s").str("st").nil().map(0)
                 .done();
  auto err = decode_error(frame);
  CHECK(err.code == ec::invalid_value);
  CHECK(err.offset == 10);
  frame = frame_builder{}.array(5).uint(1).uint(0).str("src").int_(-7).array(0).done();
  err = decode_error(frame);
  CHECK(err.code == ec::invalid_value);
  CHECK(err.message.find("sequence") != std::string::npos);
}

TEST_CASE("wire: oversized frames are refused before parsing") {
  auto frame = wire::encode(one_batch({sample_event(), sample_event()}));
  wire::limits lim;
  lim.max_frame_bytes = frame.size() - 1;
  auto err = decode_error(frame, lim);
  CHECK(err.code == ec::oversized_frame);
  CHECK(err.offset == 0);
  lim.max_frame_bytes = frame.size();
  CHECK(wire::decode(frame, lim));
}

TEST_CASE("wire: event, field and string limits") {
  wire::limits lim;
  lim.max_events = 1;
  auto err = decode_error(wire::encode(one_batch({event{}, event{}})), lim);
  CHECK(err.code == ec::too_many_events);
  CHECK(err.offset == 17); // 0 array, 1-2 version, 3-15 "agent-web-01", 16 seq, 17 list
  lim = {};
  lim.max_fields = 3;
  err = decode_error(wire::encode(one_batch({sample_event()})), lim); // 4 fields
  CHECK(err.code == ec::too_many_fields);
  lim = {};
  lim.max_string_bytes = 10;
  err = decode_error(wire::encode(one_batch({sample_event()})), lim);
  CHECK(err.code == ec::string_too_long);
  CHECK(err.message.find("the raw text") != std::string::npos);
  lim = {};
  lim.max_name_bytes = 4;
  err = decode_error(wire::encode(one_batch({sample_event()})), lim);
  CHECK(err.code == ec::string_too_long);
  CHECK(err.message.find("the source id") != std::string::npos);
}

TEST_CASE("wire: lying length headers never read past the frame") {
  // An event list announcing 2^32-1 events, with the limit lifted.
  auto frame = frame_builder{}
                 .array(5).uint(1).uint(0).str("src").uint(7)
                 .bytes(std::string{"\xdd\xff\xff\xff\xff", 5})
                 .done();
  wire::limits lim;
  lim.max_events = std::numeric_limits<std::size_t>::max();
  auto err = decode_error(frame, lim);
  CHECK(err.code == ec::truncated);
  CHECK(err.offset == 8);
  // A str32 raw text announcing 4 GiB with 3 bytes present.
  frame = frame_builder{}
            .envelope(1)
            .array(7).int_(1).str("main").str("h").str("s").str("st")
            .bytes(std::string{"\xdb\xff\xff\xff\xff" "abc", 8})
            .done();
  lim = {};
  lim.max_string_bytes = std::numeric_limits<std::size_t>::max();
  err = decode_error(frame, lim);
  CHECK(err.code == ec::truncated);
  // With the default limit the same header is simply too long.
  err = decode_error(frame);
  CHECK(err.code == ec::string_too_long);
}

TEST_CASE("wire: names must be valid UTF-8 but raw text need not be") {
  // Field name with a lone continuation byte at its second position.
  auto frame = frame_builder{}.envelope(1).event_head(1).str("a\x80").int_(1).done();
  auto err = decode_error(frame);
  CHECK(err.code == ec::invalid_utf8);
  // event head: 9 array, 10 time, 11-15 "main", 16-17 "h", 18-19 "s",
  // 20-22 "st", 23 nil, 24 map, 25 fixstr header, 26 'a', 27 the bad byte.
  CHECK(err.offset == 27);
  CHECK(err.message.find("a field name") != std::string::npos);
  // Source id with an overlong encoding of '/'.
  frame = frame_builder{}.array(5).uint(1).uint(0).str("\xc0\xaf").uint(7).array(0).done();
  err = decode_error(frame);
  CHECK(err.code == ec::invalid_utf8);
  CHECK(err.offset == 4);
  // A host name with a UTF-16 surrogate encoded in UTF-8.
  frame = frame_builder{}
            .envelope(1)
            .array(7).int_(1).str("main").str("\xed\xa0\x80").str("s").str("st")
            .nil().map(0)
            .done();
  CHECK(decode_error(frame).code == ec::invalid_utf8);
  // Raw text and string values are bytes: accepted as they are.
  frame = frame_builder{}
            .envelope(1)
            .array(7).int_(1).str("main").str("h").str("s").str("st")
            .str("caf\xe9 latin-1").map(1).str("v").str("\xff")
            .done();
  auto d = wire::decode(frame);
  REQUIRE(d);
  CHECK(*d->events()[0].raw == "caf\xe9 latin-1");
}

TEST_CASE("wire: duplicate and empty names are rejected") {
  auto frame = frame_builder{}
                 .envelope(1).event_head(2).str("pid").int_(1).str("pid").int_(2)
                 .done();
  auto err = decode_error(frame);
  CHECK(err.code == ec::invalid_value);
  CHECK(err.message == "event 0: field 'pid' appears twice");
  frame = frame_builder{}.envelope(1).event_head(1).str("").int_(1).done();
  CHECK(decode_error(frame).code == ec::invalid_value);
  frame = frame_builder{}.array(5).uint(1).uint(0).str("").uint(7).array(0).done();
  CHECK(decode_error(frame).code == ec::invalid_value);
}

TEST_CASE("wire: bytes after the batch are rejected") {
  auto frame = wire::encode(one_batch({sample_event()})) + "x";
  auto err = decode_error(frame);
  CHECK(err.code == ec::trailing_bytes);
  CHECK(err.offset == frame.size() - 1);
  CHECK(err.message.find("event") == std::string::npos);
}

TEST_CASE("wire: a batch with too few elements is malformed") {
  auto err = decode_error(frame_builder{}.array(1).uint(1).done());
  CHECK(err.code == ec::wrong_type);
  err = decode_error(frame_builder{}.array(4).uint(1).uint(0).str("s").uint(1).done());
  CHECK(err.code == ec::wrong_type);
  CHECK(err.message.find("4 elements") != std::string::npos);
}

TEST_CASE("wire: decode_some decodes the wanted events and steps over the "
          "rest") {
  std::vector<event> events;
  for (int i = 0; i < 9; ++i) {
    auto e = sample_event();
    e.time += i;
    if (i % 3 == 1)
      e.raw.reset();
    if (i % 3 == 2) // every MessagePack kind the encoder writes
      e.fields.push_back({"big", std::int64_t{-1} << 40});
    events.push_back(std::move(e));
  }
  auto frame = wire::encode(one_batch(events));
  std::function<bool(std::size_t)> odd = [](std::size_t i) { return i % 2; };
  auto some = wire::decode_some(std::as_bytes(std::span{frame}), odd);
  REQUIRE(some);
  REQUIRE(some->events().size() == 9);
  for (std::size_t i = 0; i < 9; ++i) {
    CAPTURE(i);
    const auto& e = some->events()[i];
    if (i % 2) {
      CHECK(e.materialize() == events[i]);
    } else {
      CHECK(e.time == 0);
      CHECK(e.fields.empty());
    }
  }
  // A truncated frame is still refused, wherever it ends.
  for (std::size_t n = 0; n < frame.size(); n += 7) {
    auto cut = frame.substr(0, n);
    CHECK_FALSE(wire::decode_some(std::as_bytes(std::span{cut}), odd));
  }
}
