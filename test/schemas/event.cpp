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
