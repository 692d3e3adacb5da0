#include "parallax/schemas/publish.hpp"

#include "frames.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <random>
#include <regex>
#include <sstream>

#include <doctest/doctest.h>

using namespace parallax;
using parallax::test::frame_builder;

namespace {

// The message of schemas/README.md's "Published messages" example.
publish::published_message readme_example() {
  publish::published_message m;
  m.publisher = "3f9c2a7e5b1d4c08";
  m.topic = "delta.web-01";
  m.sequence = 7;
  m.time = 1'795'635'520'000'000'000; // 2026-11-25T19:38:40Z
  m.fields = {{"vm", std::string{"web-01"}},
              {"metric", std::string{"mem_used"}},
              {"unit", std::string{"bytes"}},
              {"hv_value", 3'328'599'654.0},
              {"guest_value", 2'909'840'179.0},
              {"abs_diff", 418'759'475.0},
              {"rel_diff", 0.1258},
              {"explained_share", 0.8742},
              {"correction", false}};
  return m;
}

error decode_error(const std::string& body) {
  auto r = publish::decode(body);
  REQUIRE_MESSAGE(!r, "expected a rejection");
  return r.error();
}

// [1, "p", "t", 1, 5, {…  -- byte offsets: 0 array, 1 version, 2-3 "p",
// 4-5 "t", 6 sequence, 7 time, 8 field map header.
// (frame_builder cannot move: its packer points at its buffer.)
frame_builder& head(frame_builder& b, std::uint32_t nfields,
                    std::uint32_t elements = 6) {
  return b.array(elements).uint(1).str("p").str("t").uint(1).int_(5).map(
    nfields);
}
// For a temporary that lives until the end of the full expression.
frame_builder& head(frame_builder&& b, std::uint32_t nfields,
                    std::uint32_t elements = 6) {
  return head(b, nfields, elements);
}

} // namespace

TEST_CASE("publish: round trip keeps every field and type") {
  auto m = readme_example();
  m.fields.push_back({"min", std::numeric_limits<std::int64_t>::min()});
  m.fields.push_back({"max", std::numeric_limits<std::int64_t>::max()});
  m.fields.push_back({"whole", 50.0}); // msgpack-cxx would write an int
  m.fields.push_back({"text", std::string(70'000, 'x')}); // str 32
  m.fields.push_back({"ü-name", std::string{"ü"}});
  auto body = publish::encode(m);
  auto r = publish::decode(body);
  REQUIRE(r);
  CHECK(*r == m);
  REQUIRE(r->find("whole"));
  CHECK(r->find("whole")->index() == 2); // still a float
  CHECK(r->find("nope") == nullptr);
}

TEST_CASE("publish: negative times and large sequences round-trip") {
  publish::published_message m;
  m.publisher = "x";
  m.topic = "identity";
  m.sequence = std::numeric_limits<std::uint64_t>::max();
  m.time = -1;
  auto r = publish::decode(publish::encode(m));
  REQUIRE(r);
  CHECK(*r == m);
}

TEST_CASE("publish: the README example encodes to the documented bytes") {
  auto body = publish::encode(readme_example());
  // The first bytes by hand: 96 array of 6, 01 version, b0 a 16-byte
  // publisher id, then ac the 12-byte topic.
  REQUIRE(body.size() > 32);
  CHECK(static_cast<unsigned char>(body[0]) == 0x96);
  CHECK(static_cast<unsigned char>(body[1]) == 0x01);
  CHECK(static_cast<unsigned char>(body[2]) == 0xb0);
  CHECK(static_cast<unsigned char>(body[19]) == 0xac);
#ifdef PARALLAX_SOURCE_DIR
  std::ifstream in{std::string{PARALLAX_SOURCE_DIR} + "/schemas/README.md"};
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  auto begin = text.find("<!-- publish-example-hex-begin -->");
  auto end = text.find("<!-- publish-example-hex-end -->");
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  // xxd lines: "00000000: 96 01 ...  ascii"; the hex is the 16 groups after
  // the colon, before two spaces.
  std::string hex;
  std::istringstream lines{text.substr(begin, end - begin)};
  std::regex line_re{R"(^[0-9a-f]{8}: ((?:[0-9a-f]{2} ?)+))"};
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, line_re))
      hex += m[1].str();
  }
  std::string documented;
  std::istringstream bytes{hex};
  for (std::string b; bytes >> b;)
    documented += static_cast<char>(std::stoi(b, nullptr, 16));
  CHECK(documented.size() == body.size());
  CHECK(documented == body);
#endif
}

TEST_CASE("publish: topics and severities") {
  CHECK(publish::delta_topic("web-01") == "delta.web-01");
  CHECK(publish::event_topic("os:auth") == "event.os:auth");
  CHECK(publish::kind_of("delta.web-01") == publish::topic_kind::delta);
  CHECK(publish::kind_of("alert.drift") == publish::topic_kind::alert);
  CHECK(publish::kind_of("alert.security") == publish::topic_kind::alert);
  CHECK(publish::kind_of("identity") == publish::topic_kind::identity);
  CHECK(publish::kind_of("event.os:auth") == publish::topic_kind::event);
  CHECK(publish::kind_of("deltas") == publish::topic_kind::other);
  CHECK(publish::severity_rank("info") == 0);
  CHECK(publish::severity_rank("critical") == 2);
  CHECK(publish::severity_rank("fatal") == -1);
}

TEST_CASE("publish: malformed bodies are rejected with code and offset") {
  SUBCASE("empty") {
    auto e = decode_error("");
    CHECK(e.code == ec::truncated);
    CHECK(e.offset == 0);
  }
  SUBCASE("not an array") {
    auto e = decode_error(frame_builder{}.map(0).done());
    CHECK(e.code == ec::wrong_type);
    CHECK(e.offset == 0);
  }
  SUBCASE("0xc1") {
    auto e = decode_error("\xc1");
    CHECK(e.code == ec::not_msgpack);
  }
  SUBCASE("another major version, whatever follows") {
    auto e = decode_error(frame_builder{}.array(2).uint(2).nil().done());
    CHECK(e.code == ec::unknown_version);
    CHECK(e.offset == 1);
  }
  SUBCASE("too few elements") {
    auto e = decode_error(
      frame_builder{}.array(5).uint(1).str("p").str("t").uint(1).int_(5).done());
    CHECK(e.code == ec::wrong_type);
    CHECK(e.message.find("5 elements") != std::string::npos);
  }
  SUBCASE("publisher id of the wrong type") {
    auto e = decode_error(
      frame_builder{}.array(6).uint(1).uint(3).str("t").uint(1).int_(5).map(0)
        .done());
    CHECK(e.code == ec::wrong_type);
    CHECK(e.offset == 2);
    CHECK(e.message.find("publisher id") != std::string::npos);
  }
  SUBCASE("empty topic") {
    auto e = decode_error(
      frame_builder{}.array(6).uint(1).str("p").str("").uint(1).int_(5).map(0)
        .done());
    CHECK(e.code == ec::invalid_value);
    CHECK(e.offset == 4);
  }
  SUBCASE("sequence 0") {
    auto e = decode_error(
      frame_builder{}.array(6).uint(1).str("p").str("t").uint(0).int_(5).map(0)
        .done());
    CHECK(e.code == ec::invalid_value);
    CHECK(e.offset == 6);
  }
  SUBCASE("negative sequence") {
    auto e = decode_error(
      frame_builder{}.array(6).uint(1).str("p").str("t").int_(-3).int_(5)
        .map(0).done());
    CHECK(e.code == ec::invalid_value);
    CHECK(e.offset == 6);
  }
  SUBCASE("nil time") {
    auto e = decode_error(
      frame_builder{}.array(6).uint(1).str("p").str("t").uint(1).nil().map(0)
        .done());
    CHECK(e.code == ec::wrong_type);
    CHECK(e.offset == 7);
    CHECK(e.message.find("the time") != std::string::npos);
  }
  SUBCASE("time beyond int64") {
    auto e = decode_error(
      frame_builder{}.array(6).uint(1).str("p").str("t").uint(1)
        .uint(std::uint64_t{1} << 63).map(0).done());
    CHECK(e.code == ec::invalid_value);
    CHECK(e.offset == 7);
  }
  SUBCASE("a nil field value names the field") {
    auto e = decode_error(head(frame_builder{}, 1).str("vm").nil().done());
    CHECK(e.code == ec::wrong_type);
    CHECK(e.offset == 12); // 8 map header, 9-11 "vm"
    CHECK(e.message.find("field 'vm'") != std::string::npos);
  }
  SUBCASE("duplicate field") {
    auto e = decode_error(
      head(frame_builder{}, 2).str("a").int_(1).str("a").int_(2).done());
    CHECK(e.code == ec::invalid_value);
    CHECK(e.offset == 12); // 8 header, 9-10 "a", 11 value 1
  }
  SUBCASE("empty field name") {
    auto e = decode_error(head(frame_builder{}, 1).str("").int_(1).done());
    CHECK(e.code == ec::invalid_value);
    CHECK(e.offset == 9);
  }
  SUBCASE("field name not UTF-8") {
    auto e =
      decode_error(head(frame_builder{}, 1).str("a\xff").int_(1).done());
    CHECK(e.code == ec::invalid_utf8);
    CHECK(e.offset == 11); // 9 header, 10 'a', 11 the bad byte
  }
  SUBCASE("a map announcing more fields than bytes") {
    frame_builder b;
    // map 32 of 256 entries, nothing after
    b.array(6).uint(1).str("p").str("t").uint(1).int_(5).bytes(
      std::string_view{"\xdf\x00\x00\x01\x00", 5});
    auto e = decode_error(b.done());
    CHECK(e.code == ec::truncated);
    CHECK(e.offset == 8);
  }
  SUBCASE("too many fields") {
    frame_builder b;
    b.array(6).uint(1).str("p").str("t").uint(1).int_(5).bytes(
      std::string_view{"\xdf\x00\x00\x01\x01", 5}); // 257 entries
    auto e = decode_error(b.done());
    CHECK(e.code == ec::too_many_fields);
    CHECK(e.offset == 8);
  }
  SUBCASE("trailing bytes") {
    auto e = decode_error(head(frame_builder{}, 0).done() + "x");
    CHECK(e.code == ec::trailing_bytes);
    CHECK(e.offset == 9);
  }
  SUBCASE("a malformed added element") {
    auto e = decode_error(head(frame_builder{}, 0, 7).bytes("\xc1").done());
    CHECK(e.code == ec::not_msgpack);
    CHECK(e.offset == 9);
  }
}

TEST_CASE("publish: elements after the sixth are skipped") {
  // A later compatible version may append elements of any type.
  frame_builder b;
  head(b, 1, 9).str("k").int_(1);
  b.map(1).str("nested").array(2).bin("xy").f32(1.5f);
  b.bytes(std::string{"\xd6\x01\x00\x00\x00\x00", 6}); // fixext 4
  b.nil();
  auto r = publish::decode(b.done());
  REQUIRE_MESSAGE(r, r.error().render());
  CHECK(r->topic == "t");
  REQUIRE(r->fields.size() == 1);
  CHECK(r->fields[0] == field{"k", std::int64_t{1}});
}

TEST_CASE("publish: every truncation of a valid body is reported as truncated") {
  auto body = publish::encode(readme_example());
  for (std::size_t n = 0; n < body.size(); ++n) {
    auto r = publish::decode(std::string_view{body}.substr(0, n));
    REQUIRE_MESSAGE(!r, "prefix of ", n, " bytes decoded");
    CHECK(r.error().code == ec::truncated);
    CHECK(r.error().offset <= n);
  }
}

TEST_CASE("publish: 20,000 mutated bodies decode or fail cleanly") {
  std::mt19937_64 rng{20261125};
  auto base = publish::encode(readme_example());
  std::size_t decoded = 0, rejected = 0;
  for (int i = 0; i < 20'000; ++i) {
    auto b = base;
    for (auto k = 1 + rng() % 3; k > 0; --k) {
      auto pos = rng() % b.size();
      switch (rng() % 3) {
        case 0: b[pos] = static_cast<char>(rng()); break;
        case 1: b.resize(pos); break;
        default: b.insert(pos, 1, static_cast<char>(rng())); break;
      }
      if (b.empty())
        break;
    }
    auto r = publish::decode(b);
    if (r) {
      ++decoded;
      // Compared as bytes: a mutated float may be NaN.
      auto again = publish::encode(*r);
      auto r2 = publish::decode(again);
      REQUIRE(r2);
      CHECK(publish::encode(*r2) == again);
      continue;
    }
    ++rejected;
    REQUIRE(r.error().code != ec::none);
    REQUIRE(!r.error().message.empty());
    REQUIRE(r.error().offset <= b.size());
  }
  MESSAGE("decoded ", decoded, ", rejected ", rejected);
  CHECK(decoded > 100);
  CHECK(rejected > 10'000);
}
