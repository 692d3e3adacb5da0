// Fuzz-style robustness test: 100,000 seeded mutations of valid batches. Each
// must either decode or return a typed error with an offset inside the frame;
// anything decoded must survive a re-encode/decode round trip unchanged. The
// sanitized build of this file (label `sanitize`) turns any out-of-bounds
// read or undefined behaviour into a failure.

#include "parallax/schemas/wire.hpp"

#include <random>

#include <doctest/doctest.h>

using namespace parallax;

namespace {

wire::batch seed_batch(std::mt19937_64& rng) {
  wire::batch b;
  b.source_id = "fuzz-agent";
  b.sequence = rng() % 1000;
  auto n = 1 + rng() % 4;
  for (std::size_t i = 0; i < n; ++i) {
    event e;
    e.time = static_cast<time_ns>(rng());
    e.index = "os";
    e.host = "vm-" + std::to_string(rng() % 100);
    e.source = "/var/log/syslog";
    e.sourcetype = "os:syslog";
    if (rng() % 2)
      e.raw = std::string(rng() % 300, 'a' + static_cast<char>(rng() % 26));
    e.fields = {{"pid", static_cast<std::int64_t>(rng() % 70000)},
                {"user", std::string{"root"}},
                {"pct", static_cast<double>(rng() % 1000) / 10},
                {"ok", rng() % 2 == 0}};
    if (rng() % 3 == 0)
      e.fields.push_back({"big", static_cast<std::int64_t>(rng())});
    b.events.push_back(std::move(e));
  }
  return b;
}

// Bytes that are interesting to a MessagePack parser: headers with large
// lengths, the never-used byte, type boundaries.
constexpr unsigned char interesting[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                         0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xca,
                                         0xcb, 0xcf, 0xd3, 0xd9, 0xda, 0xdb,
                                         0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};

std::string mutate(std::string f, std::mt19937_64& rng) {
  auto rounds = 1 + rng() % 4;
  for (std::size_t r = 0; r < rounds && !f.empty(); ++r) {
    auto pos = rng() % f.size();
    switch (rng() % 7) {
      case 0: // flip a bit
        f[pos] = static_cast<char>(f[pos] ^ (1 << (rng() % 8)));
        break;
      case 1: // an interesting byte
        f[pos] = static_cast<char>(interesting[rng() % sizeof interesting]);
        break;
      case 2: // truncate
        f.resize(pos);
        break;
      case 3: // insert random bytes
        for (auto k = rng() % 8; k > 0; --k)
          f.insert(f.begin() + static_cast<std::ptrdiff_t>(pos),
                   static_cast<char>(rng()));
        break;
      case 4: // duplicate a range
        f.insert(pos, f.substr(rng() % f.size(), rng() % 16));
        break;
      case 5: // erase a range
        f.erase(pos, rng() % 16);
        break;
      default: // a random byte
        f[pos] = static_cast<char>(rng());
    }
  }
  return f;
}

} // namespace

TEST_CASE("wire: 100,000 mutated batches decode or fail cleanly") {
  std::mt19937_64 rng{20261125};
  std::size_t decoded = 0;
  std::size_t rejected = 0;
  std::size_t by_code[static_cast<int>(ec::last) + 1] = {};
  for (int i = 0; i < 100'000; ++i) {
    auto frame = mutate(wire::encode(seed_batch(rng)), rng);
    auto size = frame.size();
    auto r = wire::decode(std::move(frame));
    if (r) {
      ++decoded;
      // What decodes must encode to something that decodes the same way.
      auto owned = r->materialize();
      // (Compared as bytes: a mutated float may be NaN, which != itself.)
      auto bytes = wire::encode(owned);
      auto again = wire::decode(bytes);
      REQUIRE(again);
      REQUIRE(wire::encode(again->materialize()) == bytes);
      continue;
    }
    ++rejected;
    const auto& err = r.error();
    REQUIRE(err.code != ec::none);
    REQUIRE(!err.message.empty());
    REQUIRE(err.offset != no_offset);
    REQUIRE(err.offset <= size);
    ++by_code[static_cast<int>(err.code)];
  }
  MESSAGE("decoded ", decoded, ", rejected ", rejected, " (truncated ",
          by_code[static_cast<int>(ec::truncated)], ", wrong_type ",
          by_code[static_cast<int>(ec::wrong_type)], ", not_msgpack ",
          by_code[static_cast<int>(ec::not_msgpack)], ")");
  CHECK(decoded + rejected == 100'000);
  // The mutations must exercise both outcomes, or the test proves little.
  CHECK(decoded > 1000);
  CHECK(rejected > 50'000);
}
