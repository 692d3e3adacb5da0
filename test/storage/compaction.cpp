// Compaction (store::compact) and when it runs (compaction_policy): the
// events, summaries and the index answer the same afterwards, series sit
// side by side, and a snapshot taken before still reads what it saw.

#include "parallax/storage/compaction.hpp"
#include "parallax/storage/store.hpp"

#include "parallax/schemas/wire.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/tokenizer.hpp"

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
constexpr std::int64_t b0 = 472222;
constexpr time_ns t0 = b0 * hour;

struct fixture : store_fixture {
  using store_fixture::store_fixture;

  std::vector<std::pair<std::uint64_t, event>> scan(std::int64_t b) const {
    std::vector<std::pair<std::uint64_t, event>> out;
    auto err = st->scan(b, [&](std::uint64_t id, const event_view& e) {
      out.emplace_back(id, e.materialize());
    });
    REQUIRE_FALSE(err);
    return out;
  }
};

// One round of a small fleet as an agent and a hypervisor would send it:
// per VM a hypervisor sample, a system sample and a few processes, plus a
// log line; each round is its own commit, as live ingest makes them.
std::vector<event> round_of(int round, std::mt19937& rng) {
  std::vector<event> out;
  auto t = t0 + round * 20 * sec;
  for (int vm = 0; vm < 3; ++vm) {
    auto name = "vm-" + std::to_string(vm);
    out.push_back(event{t + vm, "main", "kvm-01", "libvirt", "hv:libvirt:vm",
                        std::nullopt,
                        {{"vm", std::string{name}},
                         {"cpu_pct", static_cast<double>(rng() % 100)},
                         {"mem_rss_bytes", std::int64_t(rng() % 100000)}}});
    out.push_back(event{t + vm, "main", name, "/proc", "os:system",
                        std::nullopt,
                        {{"vm", std::string{name}},
                         {"cpu_busy_pct", static_cast<double>(rng() % 100)}}});
    for (std::int64_t pid : {101, 202, 303})
      out.push_back(event{t + vm + pid, "main", name, "/proc", "os:process",
                          std::nullopt,
                          {{"vm", std::string{name}},
                           {"pid", pid},
                           {"command", pid == 101 ? "nginx" : "sshd"},
                           {"rss_bytes", std::int64_t(rng() % 5000)}}});
    if (rng() % 3 == 0)
      out.push_back(event{t + vm, "main", name, "/var/log/auth.log",
                          "os:auth",
                          "Accepted publickey for user" + std::to_string(rng() % 4)
                            + " from 10.0.0." + std::to_string(rng() % 9),
                          {{"vm", std::string{name}}}});
  }
  // Rounds arrive out of time order now and then.
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

// Every term of an event the index knows: raw-text tokens and the
// name=value terms of its string fields and default fields.
std::set<std::string> terms_of(const event& e) {
  std::set<std::string> out;
  if (e.raw)
    storage::tokenize(*e.raw, [&](std::string_view t) { out.emplace(t); });
  auto add = [&](std::string_view name, std::string_view value) {
    std::string term;
    if (!value.empty() && storage::field_term_into(term, name, value))
      out.insert(term);
  };
  add("index", e.index);
  add("host", e.host);
  add("source", e.source);
  add("sourcetype", e.sourcetype);
  for (const auto& f : e.fields)
    if (auto s = std::get_if<std::string>(&f.value))
      add(f.name, *s);
  return out;
}

// Events found through the index for `term`, read through one snapshot.
std::multiset<std::string> by_index(const storage::snapshot& s,
                                    std::int64_t bucket,
                                    const std::string& term) {
  auto ids = ok(s.postings(bucket, term));
  std::multiset<std::string> out;
  auto err = s.events(bucket, ids, [&](std::uint64_t, const event_view& e) {
    out.insert(wire::encode(wire::batch{"x", 0, {e.materialize()}}));
    return true;
  });
  REQUIRE_FALSE(err);
  CHECK(out.size() == ids.size());
  return out;
}

std::string key_of(const event& e) {
  return wire::encode(wire::batch{"x", 0, {e}});
}

} // namespace

TEST_CASE("compaction: same events, summaries and index answers, series "
          "side by side") {
  storage::store_options so;
  so.block_events = 16;
  fixture f{so};
  std::mt19937 rng{7};
  std::uint64_t blocks = 0;
  for (int r = 0; r < 60; ++r) {
    auto evs = round_of(r, rng);
    blocks += (evs.size() + 15) / 16; // one commit per round
    f.write(evs);
  }
  auto before = f.scan(b0);
  auto sums = ok(f.st->summaries(b0));
  auto tuples = ok(f.st->tuples(b0));
  auto rollups = ok(f.st->rollups(b0));
  auto info = ok(f.st->buckets());
  REQUIRE(info.size() == 1);
  CHECK(info[0].compacted_events == 0);
  // What the index answers before, per term.
  std::set<std::string> terms;
  for (const auto& [id, e] : before)
    for (auto& t : terms_of(e))
      terms.insert(t);
  std::map<std::string, std::multiset<std::string>> expect;
  for (const auto& [id, e] : before)
    for (const auto& t : terms_of(e))
      expect[t].insert(key_of(e));
  // A snapshot from before the compaction keeps reading its own ids.
  auto old = ok(f.st->read());

  auto r = ok(f.st->compact(b0));
  REQUIRE(r.done);
  CHECK(r.events == before.size());
  CHECK(r.blocks_before == blocks);
  CHECK(r.blocks_after == (before.size() + 15) / 16);
  CHECK(r.postings_after < r.postings_before);

  auto after = f.scan(b0);
  REQUIRE(after.size() == before.size());
  std::multiset<std::string> a, b;
  for (const auto& [id, e] : before)
    a.insert(key_of(e));
  for (const auto& [id, e] : after)
    b.insert(key_of(e));
  CHECK(a == b);
  // New ids, in scan order, sorted by (index, sourcetype, vm, host, source,
  // pid, time).
  CHECK(after.front().first >= before.back().first);
  auto sort_key = [](const event& e) {
    std::string vm = e.host;
    std::int64_t pid = -1;
    for (const auto& fld : e.fields) {
      if (fld.name == "vm")
        vm = std::get<std::string>(fld.value);
      if (fld.name == "pid")
        pid = std::get<std::int64_t>(fld.value);
    }
    return std::tuple{e.index, e.sourcetype, vm, e.host, e.source, pid,
                      e.time};
  };
  for (std::size_t i = 1; i < after.size(); ++i) {
    CHECK(after[i - 1].first + 1 == after[i].first);
    CHECK_FALSE(sort_key(after[i].second) < sort_key(after[i - 1].second));
  }
  // Summaries, tuple counts and rollups are the same; the catalog says so.
  CHECK(ok(f.st->summaries(b0)) == sums);
  auto tuples_after = ok(f.st->tuples(b0));
  REQUIRE(tuples_after.size() == tuples.size());
  for (std::size_t i = 0; i < tuples.size(); ++i)
    CHECK(tuples_after[i].count == tuples[i].count);
  CHECK(ok(f.st->rollups(b0)) == rollups);
  info = ok(f.st->buckets());
  CHECK(info[0].events == before.size());
  CHECK(info[0].compacted_events == before.size());
  CHECK(info[0].block_bytes == r.bytes_after);
  // Every term finds exactly the events that have it, now and through the
  // snapshot taken before.
  auto now = ok(f.st->read());
  for (const auto& t : terms) {
    INFO(t);
    CHECK(by_index(now, b0, t) == expect[t]);
    CHECK(by_index(old, b0, t) == expect[t]);
  }
  // Nothing to do twice... until the bucket grows again.
  f.write(round_of(60, rng));
  auto grown = f.scan(b0);
  CHECK(grown.size() > before.size());
  auto ids = ok(f.st->postings(b0, "sourcetype=os:auth"));
  std::size_t auth = 0;
  for (const auto& [id, e] : grown)
    auth += e.sourcetype == "os:auth";
  CHECK(ids.size() == auth);
  r = ok(f.st->compact(b0));
  CHECK(r.done);
  CHECK(r.events == grown.size());
  CHECK(f.scan(b0).size() == grown.size());
}

TEST_CASE("compaction: a bucket that is gone is not done, and no error") {
  fixture f;
  auto r = ok(f.st->compact(b0));
  CHECK_FALSE(r.done);
  std::mt19937 rng{1};
  f.write(round_of(0, rng));
  CHECK(ok(f.st->drop_before(t0 + 2 * hour)) == 1);
  r = ok(f.st->compact(b0));
  CHECK_FALSE(r.done);
}

TEST_CASE("compaction policy: quiet buckets, grown by half, or settled") {
  using namespace std::chrono_literals;
  storage::compaction_policy p{2s, 60s};
  storage::compaction_policy::clock::time_point t{};
  auto bucket = [](std::int64_t id, std::uint64_t events,
                   std::uint64_t compacted) {
    storage::bucket_info b;
    b.id = id;
    b.events = events;
    b.compacted_events = compacted;
    return b;
  };
  // First seen: quiet from now on, whatever happened before.
  CHECK(p.due({bucket(1, 100, 0), bucket(2, 50, 0)}, t).empty());
  // Bucket 2 keeps growing; bucket 1 is quiet for 2 s.
  CHECK(p.due({bucket(1, 100, 0), bucket(2, 60, 0)}, t + 1s).empty());
  CHECK(p.due({bucket(1, 100, 0), bucket(2, 70, 0)}, t + 2s)
        == std::vector<std::int64_t>{1});
  // Compacted at 100: not due again while it does not grow.
  CHECK(p.due({bucket(1, 100, 100), bucket(2, 70, 0)}, t + 3s).empty());
  CHECK(p.due({bucket(1, 100, 100), bucket(2, 70, 0)}, t + 4s)
        == std::vector<std::int64_t>{2});
  // Bucket 1 grows by 20 %: not enough while it is merely quiet...
  CHECK(p.due({bucket(1, 120, 100), bucket(2, 70, 70)}, t + 5s).empty());
  CHECK(p.due({bucket(1, 120, 100), bucket(2, 70, 70)}, t + 30s).empty());
  // ...but once settled, yes.
  CHECK(p.due({bucket(1, 120, 100), bucket(2, 70, 70)}, t + 65s)
        == std::vector<std::int64_t>{1});
  // Grown by half: due after 2 quiet seconds.
  CHECK(p.due({bucket(1, 180, 120)}, t + 66s).empty());
  CHECK(p.due({bucket(1, 180, 120)}, t + 68s) == std::vector<std::int64_t>{1});
  // A dropped bucket is forgotten.
  CHECK(p.due({}, t + 70s).empty());
  CHECK(p.due({bucket(1, 180, 120)}, t + 71s).empty());
  // Too large a bucket is never due.
  storage::compaction_policy small{2s, 60s, 1000};
  CHECK(small.due({bucket(1, 1001, 0), bucket(2, 1000, 0)}, t).empty());
  CHECK(small.due({bucket(1, 1001, 0), bucket(2, 1000, 0)}, t + 61s)
        == std::vector<std::int64_t>{2});
}
