// event_view::find compares names with same_text (schemas/hash.hpp, also
// the indexer's compare): by length, then by short loads.

#include "parallax/schemas/event.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using namespace parallax;

TEST_CASE("event: find matches the whole name at every length and offset") {
  // For each length, names that differ from the wanted one in exactly one
  // byte (each position in turn) come first; only the exact name may
  // match. Each name is its own allocation of exactly its size, so that
  // the sanitized build catches a load past its end.
  for (std::size_t n = 0; n <= 24; ++n) {
    std::string wanted(n, 'a');
    for (std::size_t i = 0; i < n; ++i)
      wanted[i] = static_cast<char>('a' + (i * 7) % 26);
    std::vector<std::unique_ptr<char[]>> store;
    auto own = [&](const std::string& s) {
      store.push_back(std::make_unique<char[]>(s.size() + (s.empty() ? 1 : 0)));
      std::copy(s.begin(), s.end(), store.back().get());
      return std::string_view{store.back().get(), s.size()};
    };
    std::vector<field_view> fields;
    for (std::size_t i = 0; i < n; ++i) {
      auto other = wanted;
      other[i] = static_cast<char>(other[i] ^ 0x20);
      fields.push_back({own(other), std::int64_t{-1}});
    }
    fields.push_back({own(wanted + "x"), std::int64_t{-2}}); // longer
    fields.push_back({own(wanted), static_cast<std::int64_t>(n)});
    event_view e;
    e.fields = fields;
    auto v = e.find(wanted);
    REQUIRE(v != nullptr);
    CHECK(std::get<std::int64_t>(*v) == static_cast<std::int64_t>(n));
    auto missing = wanted + "y";
    CHECK(e.find(missing) == nullptr);
  }
}

TEST_CASE("event: valid_field_names finds a repeat among many names") {
  using parallax::field;
  std::vector<field> fs;
  for (int i = 0; i < 200; ++i)
    fs.push_back({"name_" + std::to_string(i), std::int64_t{i}});
  CHECK(parallax::valid_field_names(fs, 255));
  // A repeat at every distance, early and late.
  for (std::size_t at : {1u, 2u, 13u, 64u, 199u}) {
    auto copy = fs;
    copy[at].name = copy[at / 2].name;
    CHECK_FALSE(parallax::valid_field_names(copy, 255));
  }
  // Same length, first and last byte (one signature), different names.
  std::vector<field> alike{{"abxz", 1.0}, {"acxz", 2.0}, {"adxz", 3.0}};
  CHECK(parallax::valid_field_names(alike, 255));
  alike.push_back({"acxz", 4.0});
  CHECK_FALSE(parallax::valid_field_names(alike, 255));
  // Empty, too long, not UTF-8.
  CHECK_FALSE(parallax::valid_field_names(std::vector<field>{{"", 1.0}}, 255));
  CHECK_FALSE(
    parallax::valid_field_names(std::vector<field>{{"abcd", 1.0}}, 3));
  CHECK_FALSE(
    parallax::valid_field_names(std::vector<field>{{"ab\xff", 1.0}}, 255));
  CHECK(parallax::valid_field_names(std::vector<field>{{"caf\xc3\xa9", 1.0}},
                                    255));
}
