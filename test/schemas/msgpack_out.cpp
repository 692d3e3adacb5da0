// The library's own MessagePack writer (schemas/src/msgpack_out.hpp) must
// write what msgpack-cxx's packer writes, byte for byte, so that frames and
// published messages keep their form. Compared here through the public
// encoders, at every boundary where a header or a number changes its form.

#include "parallax/schemas/publish.hpp"
#include "parallax/schemas/reply.hpp"
#include "parallax/schemas/wire.hpp"

#include "frames.hpp"

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

using namespace parallax;
using parallax::test::frame_builder;

namespace {

std::string encoded(const value_view& v) {
  std::string out;
  wire::append_value(out, v);
  return out;
}

// Float 64, always: written by hand, as the packer would shorten 50.0.
std::string float64(double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  std::string out(1, static_cast<char>(0xcb));
  for (int i = 7; i >= 0; --i)
    out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  return out;
}

} // namespace

TEST_CASE("msgpack writer: integers in the packer's shortest form at every "
          "boundary") {
  std::vector<std::int64_t> values;
  for (std::int64_t edge : {0LL, 31LL, 32LL, 127LL, 128LL, 255LL, 256LL,
                            32767LL, 32768LL, 65535LL, 65536LL,
                            2147483647LL, 2147483648LL, 4294967295LL,
                            4294967296LL}) {
    values.push_back(edge);
    values.push_back(-edge);
    values.push_back(-edge - 1);
  }
  values.push_back(std::numeric_limits<std::int64_t>::max());
  values.push_back(std::numeric_limits<std::int64_t>::min());
  values.push_back(1'795'635'510'492'000'000); // an event time
  for (auto v : values) {
    CAPTURE(v);
    CHECK(encoded(v) == frame_builder{}.int_(v).done());
  }
}

TEST_CASE("msgpack writer: strings, booleans and doubles") {
  for (std::size_t n : {0u, 1u, 31u, 32u, 255u, 256u, 65535u, 65536u,
                        70000u}) {
    CAPTURE(n);
    std::string s(n, 'x');
    CHECK(encoded(std::string_view{s}) == frame_builder{}.str(s).done());
  }
  CHECK(encoded(true) == frame_builder{}.boolean(true).done());
  CHECK(encoded(false) == frame_builder{}.boolean(false).done());
  for (double d : {50.0, -0.0, 12.5, 1e300, -3.25,
                   std::numeric_limits<double>::infinity()}) {
    CAPTURE(d);
    CHECK(encoded(d) == float64(d));
  }
}

TEST_CASE("msgpack writer: a batch with 16 and more events and fields has "
          "the packer's array and map headers, also encoded in two parts") {
  for (std::size_t n : {15u, 16u, 65535u, 65536u}) {
    CAPTURE(n);
    wire::batch b;
    b.source_id = "src";
    b.sequence = 7;
    b.events.resize(n);
    frame_builder ref;
    ref.envelope(static_cast<std::uint32_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      auto& e = b.events[i];
      e.time = static_cast<time_ns>(i) - 3; // negative, then positive
      e.index = "main";
      e.host = "h";
      e.source = "s";
      e.sourcetype = "st";
      // The first event has 17 fields, the others none.
      std::size_t fields = i == 0 ? 17 : 0;
      for (std::size_t f = 0; f < fields; ++f)
        e.fields.push_back({"f" + std::to_string(f),
                            static_cast<std::int64_t>(f) * 1000});
      ref.event_head(static_cast<std::uint32_t>(fields), e.time);
      for (std::size_t f = 0; f < fields; ++f)
        ref.str("f" + std::to_string(f))
          .int_(static_cast<std::int64_t>(f) * 1000);
    }
    auto want = ref.done();
    CHECK(wire::encode(b) == want);
    // In two parts (a sender that encodes its events once): the same.
    std::string parts;
    wire::encode_head(b.source_id, b.sequence, b.events.size(), parts);
    wire::encode_events(b.events, parts);
    CHECK(parts == want);
  }
  // 65,536 fields take the 32-bit map header.
  wire::batch b;
  b.source_id = "src";
  b.sequence = 7;
  b.events.resize(1);
  auto& e = b.events[0];
  e.time = unknown_time;
  e.index = "main";
  e.host = "h";
  e.source = "s";
  e.sourcetype = "st";
  e.raw = "raw text";
  frame_builder ref;
  ref.envelope(1).array(7).nil().str("main").str("h").str("s").str("st")
    .str("raw text").map(65536);
  for (std::size_t f = 0; f < 65536; ++f) {
    e.fields.push_back({"f" + std::to_string(f), f % 2 == 0});
    ref.str("f" + std::to_string(f)).boolean(f % 2 == 0);
  }
  CHECK(wire::encode(b) == ref.done());
}

TEST_CASE("msgpack writer: replies and published messages keep their form") {
  wire::reply r;
  r.status = wire::reply_status::rejected;
  r.source_id = "agent-1";
  r.sequence = 300;
  r.code = ec::invalid_value;
  r.message = "event 3: bad time";
  r.offset = 70000;
  std::string got;
  wire::encode_reply(r, got);
  auto want = frame_builder{}
                .array(6)
                .str("rejected")
                .str("agent-1")
                .uint(300)
                .str(to_string(ec::invalid_value))
                .str("event 3: bad time")
                .uint(70000)
                .done();
  CHECK(got == want);

  std::vector<field> fields{{"vm", std::string{"web-01"}},
                            {"hv_value", 50.0},
                            {"window_end", std::int64_t{-40}}};
  std::string body;
  publish::encode("0123456789abcdef", "delta.web-01", 65536, 1'795'600'000,
                  fields, body);
  auto msg = frame_builder{}
               .array(publish::message_elements)
               .uint(publish::major_version)
               .str("0123456789abcdef")
               .str("delta.web-01")
               .uint(65536)
               .int_(1'795'600'000)
               .map(3)
               .str("vm")
               .str("web-01")
               .str("hv_value")
               .bytes(float64(50.0))
               .str("window_end")
               .int_(-40)
               .done();
  CHECK(body == msg);
}

TEST_CASE("msgpack writer: map headers around 16 and 65,536 fields, nils "
          "and the largest unsigned") {
  for (std::size_t n : {15u, 16u, 65535u}) {
    CAPTURE(n);
    std::vector<field> fields;
    frame_builder ref;
    ref.array(publish::message_elements)
      .uint(publish::major_version)
      .str("p")
      .str("t")
      .uint(1)
      .int_(0)
      .map(static_cast<std::uint32_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      fields.push_back({"f" + std::to_string(i), false});
      ref.str("f" + std::to_string(i)).boolean(false);
    }
    std::string body;
    publish::encode("p", "t", 1, 0, fields, body);
    CHECK(body == ref.done());
  }
  // A reply with nothing but its status and source, and one whose sequence
  // needs all 64 bits.
  wire::reply r;
  r.status = wire::reply_status::ack;
  r.source_id = "a";
  std::string got;
  wire::encode_reply(r, got);
  CHECK(got
        == frame_builder{}.array(6).str("ack").str("a").nil().nil().nil()
             .nil().done());
  r.sequence = std::numeric_limits<std::uint64_t>::max();
  got.clear();
  wire::encode_reply(r, got);
  CHECK(got
        == frame_builder{}
             .array(6)
             .str("ack")
             .str("a")
             .uint(std::numeric_limits<std::uint64_t>::max())
             .nil()
             .nil()
             .nil()
             .done());
}
