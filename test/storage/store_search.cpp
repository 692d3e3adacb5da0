// The store's reads that search builds on: events by id, tuple counts and
// summaries by prefix.

#include "parallax/storage/store.hpp"

#include "parallax/schemas/wire.hpp"
#include "parallax/storage/environment.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "store_fixture.hpp"

#include <doctest/doctest.h>

using namespace parallax;

namespace {

using parallax::test::ok;
using parallax::test::store_fixture;

constexpr time_ns sec = 1'000'000'000;
constexpr time_ns hour = 3600 * sec;
constexpr std::int64_t b0 = 472222; // 1'699'999'200 s, a whole hour
constexpr time_ns t0 = b0 * hour;

struct fixture : store_fixture {
  using store_fixture::store_fixture;

  // Every (id, eid) of a bucket, by scan.
  std::vector<std::pair<std::uint64_t, std::int64_t>> scan(std::int64_t b) {
    std::vector<std::pair<std::uint64_t, std::int64_t>> out;
    auto err = st->scan(b, [&](std::uint64_t id, const event_view& e) {
      out.emplace_back(id, std::get<1>(*e.find("eid")));
    });
    REQUIRE_FALSE(err);
    return out;
  }

  // (id, eid) of the events `events` returns for `ids`.
  std::vector<std::pair<std::uint64_t, std::int64_t>>
  fetch(std::int64_t b, const std::vector<std::uint64_t>& ids,
        std::size_t stop_after = static_cast<std::size_t>(-1)) {
    std::vector<std::pair<std::uint64_t, std::int64_t>> out;
    auto err = st->events(b, ids, [&](std::uint64_t id, const event_view& e) {
      out.emplace_back(id, std::get<1>(*e.find("eid")));
      return out.size() < stop_after;
    });
    INFO(err.render());
    REQUIRE_FALSE(err);
    return out;
  }
};

event make(std::int64_t eid, time_ns t, std::string index, std::string host,
           std::string source, std::string sourcetype, bool raw = true) {
  event e;
  e.time = t;
  e.index = std::move(index);
  e.host = std::move(host);
  e.source = std::move(source);
  e.sourcetype = std::move(sourcetype);
  if (raw)
    e.raw = "event " + std::to_string(eid);
  e.fields.push_back({"eid", value{std::in_place_index<1>, eid}});
  return e;
}

} // namespace

TEST_CASE("store: events returns exactly the requested ids across blocks") {
  storage::store_options so;
  so.block_events = 4;
  fixture f{so};
  // Three write groups whose events alternate between two buckets, so each
  // bucket's ids have gaps (ids grow globally) and blocks of at most 4.
  std::int64_t eid = 0;
  for (int g = 0; g < 3; ++g) {
    std::vector<event> evs;
    for (int i = 0; i < 11; ++i, ++eid)
      evs.push_back(make(eid, t0 + (eid % 2) * hour + eid * sec, "main", "h",
                         "s", "st"));
    f.write(evs);
  }
  auto a = f.scan(b0), b = f.scan(b0 + 1);
  REQUIRE(a.size() == 17); // even eids 0..32
  REQUIRE(b.size() == 16); // odd eids 1..31
  std::vector<std::uint64_t> ids_a, ids_b;
  for (auto& [id, e] : a)
    ids_a.push_back(id);
  for (auto& [id, e] : b)
    ids_b.push_back(id);

  SUBCASE("all ids of a bucket") {
    CHECK(f.fetch(b0, ids_a) == a);
    CHECK(f.fetch(b0 + 1, ids_b) == b);
  }
  SUBCASE("every subset of a sliding window, across block boundaries") {
    for (std::size_t start = 0; start < a.size(); ++start)
      for (std::size_t len = 1; start + len <= a.size() && len <= 9; ++len) {
        std::vector<std::uint64_t> want_ids;
        std::vector<std::pair<std::uint64_t, std::int64_t>> want;
        for (std::size_t i = start; i < start + len; i += 1 + (len % 3)) {
          want_ids.push_back(a[i].first);
          want.push_back(a[i]);
        }
        CAPTURE(start);
        CAPTURE(len);
        CHECK(f.fetch(b0, want_ids) == want);
      }
  }
  SUBCASE("random subsets") {
    std::mt19937_64 rng{7};
    for (int round = 0; round < 200; ++round) {
      std::vector<std::uint64_t> ids;
      std::vector<std::pair<std::uint64_t, std::int64_t>> want;
      for (auto& p : a)
        if (rng() % 3 == 0) {
          ids.push_back(p.first);
          want.push_back(p);
        }
      CAPTURE(round);
      CHECK(f.fetch(b0, ids) == want);
    }
  }
  SUBCASE("ids that are not stored in the bucket are skipped") {
    // The other bucket's ids, ids past the end and id 0 mixed in.
    std::vector<std::uint64_t> ids;
    std::vector<std::pair<std::uint64_t, std::int64_t>> want;
    std::set<std::uint64_t> mixed;
    for (auto id : ids_b)
      mixed.insert(id);
    for (std::size_t i = 0; i < a.size(); i += 2)
      mixed.insert(a[i].first);
    auto top = std::max(ids_a.back(), ids_b.back());
    for (std::uint64_t x = top + 1; x < top + 10; ++x)
      mixed.insert(x);
    mixed.insert(top + 1'000'000);
    ids.assign(mixed.begin(), mixed.end());
    for (std::size_t i = 0; i < a.size(); i += 2)
      want.push_back(a[i]);
    CHECK(f.fetch(b0, ids) == want);
    // Only the other bucket's ids: nothing.
    CHECK(f.fetch(b0, ids_b).empty());
    // A bucket that does not exist, and no ids at all.
    CHECK(f.fetch(b0 + 5, ids_a).empty());
    CHECK(f.fetch(b0 - 1, ids_a).empty());
    CHECK(f.fetch(b0, {}).empty());
  }
  SUBCASE("stops when f returns false") {
    for (std::size_t stop = 1; stop <= 6; ++stop) {
      auto got = f.fetch(b0, ids_a, stop);
      REQUIRE(got.size() == stop);
      CHECK(std::equal(got.begin(), got.end(), a.begin()));
    }
  }
}

TEST_CASE("store: tuple counts match a manual count and survive a rebuild") {
  storage::store_options so;
  so.block_events = 8;
  fixture f{so};
  const std::vector<std::string> idx{"main", "os"}, hosts{"web-01", "WEB-01",
                                                          "db"},
    srcs{"/a", "b:c"}, sts{"hv:libvirt:vm", "os:auth", "os:process"};
  using key = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<std::int64_t, std::map<key, std::uint64_t>> manual;
  std::mt19937_64 rng{11};
  std::int64_t eid = 0;
  for (int g = 0; g < 5; ++g) {
    std::vector<event> evs;
    for (int i = 0; i < 60; ++i, ++eid) {
      auto t = t0 + static_cast<time_ns>(rng() % (3 * 3600)) * sec;
      auto e = make(eid, t, idx[rng() % 2], hosts[rng() % 3], srcs[rng() % 2],
                    sts[rng() % 3], rng() % 4 != 0);
      ++manual[f.st->bucket_of(t)][{e.index, e.host, e.source, e.sourcetype}];
      evs.push_back(std::move(e));
    }
    f.write(evs);
  }
  REQUIRE(f.st->has_tuples());
  auto tuples_of = [&](std::int64_t b) {
    std::map<key, std::uint64_t> out;
    for (const auto& t : ok(f.st->tuples(b))) {
      CHECK(t.count > 0);
      CHECK(out.emplace(key{t.index, t.host, t.source, t.sourcetype}, t.count)
              .second);
    }
    return out;
  };
  auto buckets = ok(f.st->buckets());
  REQUIRE(buckets.size() == 3);
  std::map<std::int64_t, std::map<key, std::uint64_t>> before;
  for (const auto& b : buckets) {
    CAPTURE(b.id);
    before[b.id] = tuples_of(b.id);
    CHECK(before[b.id] == manual[b.id]);
    std::uint64_t total = 0;
    for (auto& [k, n] : before[b.id])
      total += n;
    CHECK(total == b.events);
  }
  CHECK(ok(f.st->tuples(b0 + 10)).empty());
  REQUIRE_FALSE(f.st->rebuild_summaries());
  for (const auto& b : buckets) {
    CAPTURE(b.id);
    CHECK(tuples_of(b.id) == before[b.id]);
  }
}

TEST_CASE("store: summaries with a prefix list only terms with that prefix") {
  fixture f;
  std::vector<event> evs;
  const std::vector<std::string> sts{"hv:libvirt:vm", "hv:libvirt:host",
                                     "os:auth", "os:process", "hvx"};
  for (std::int64_t i = 0; i < 50; ++i) {
    auto e = make(i, t0 + i * sec, "main", i % 2 ? "web-01" : "hv-1", "/s",
                  sts[static_cast<std::size_t>(i) % sts.size()]);
    e.fields.push_back({"vm", value{std::string{i % 3 ? "a" : "b"}}});
    evs.push_back(std::move(e));
  }
  f.write(evs);
  auto all = ok(f.st->summaries(b0));
  REQUIRE_FALSE(all.empty());
  for (std::string prefix :
       {"sourcetype=hv:", "sourcetype=", "sourcetype=os:auth", "host=",
        "vm=", "vm=a", "s", "", "zzz", "sourcetype=hv:libvirt:vmx"}) {
    CAPTURE(prefix);
    auto got = ok(f.st->summaries(b0, prefix));
    std::vector<std::pair<std::string, std::uint64_t>> want;
    for (const auto& p : all)
      if (p.first.starts_with(prefix))
        want.push_back(p);
    CHECK(got == want);
    for (const auto& [term, n] : got)
      CHECK(term.starts_with(prefix));
  }
  // sourcetype=hv: lists both hypervisor sourcetypes (10 events each), not
  // `hvx` and not the os: ones.
  auto hv = ok(f.st->summaries(b0, "sourcetype=hv:"));
  CHECK(hv == std::vector<std::pair<std::string, std::uint64_t>>{
                {"sourcetype=hv:libvirt:host", 10},
                {"sourcetype=hv:libvirt:vm", 10}});
  CHECK(ok(f.st->summaries(b0 + 1, "sourcetype=")).empty());
}
