#include "parallax/storage/store.hpp"

#include "parallax/schemas/wire.hpp"
#include "parallax/storage/environment.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "temp_dir.hpp"

#include <set>

#include <doctest/doctest.h>
#include <lmdb.h>

using namespace parallax;
namespace fs = std::filesystem;

namespace {

using parallax::test::temp_dir;

constexpr time_ns sec = 1'000'000'000;
constexpr time_ns hour = 3600 * sec;

// 1'699'999'200 s is a whole hour (472222 * 3600), so with the default span
// of one hour it is the start of bucket b0 = 472222.
constexpr std::int64_t b0 = 472222;
constexpr time_ns t0 = b0 * hour;

template <class T>
std::string why(const result<T>& r) {
  return r ? std::string{} : r.error().render();
}

// Unwraps a result, failing the test with its error otherwise.
template <class T>
T ok(result<T> r) {
  INFO(why(r));
  REQUIRE(r);
  return std::move(*r);
}

// An environment and a store on it in a temp dir. `close` and `open` close
// and reopen both, as a restarted process would.
struct fixture {
  temp_dir tmp;
  storage::environment_options env_opts;
  storage::store_options store_opts;
  std::optional<storage::environment> env;
  std::optional<storage::store> st;

  explicit fixture(storage::store_options so = {},
                   storage::environment_options eo = {})
    : env_opts{eo}, store_opts{so} {
    open();
  }
  fixture(const fixture&) = delete;
  fixture& operator=(const fixture&) = delete;

  fs::path dir() const {
    return tmp.path / "store";
  }
  void open() {
    env.emplace(ok(storage::environment::open(dir(), env_opts)));
    st.emplace(ok(storage::store::open(*env, store_opts)));
  }
  void close() {
    st.reset();
    env.reset();
  }
  void reopen() {
    close();
    open();
  }
  storage::store& store() {
    return *st;
  }
};

value str(std::string s) {
  return value{std::in_place_index<0>, std::move(s)};
}
value num(std::int64_t i) {
  return value{std::in_place_index<1>, i};
}
value dbl(double d) {
  return value{std::in_place_index<2>, d};
}
value boolean(bool b) {
  return value{std::in_place_index<3>, b};
}

// A log line as an agent would send it.
event log_event(time_ns t, std::string host, std::string raw,
                std::vector<field> fields = {}) {
  event e;
  e.time = t;
  e.index = "main";
  e.host = std::move(host);
  e.source = "/var/log/auth.log";
  e.sourcetype = "os:auth";
  e.raw = std::move(raw);
  e.fields = std::move(fields);
  return e;
}

// A metric sample: no raw text.
event metric_event(time_ns t, std::string host, std::vector<field> fields) {
  event e;
  e.time = t;
  e.index = "metrics";
  e.host = std::move(host);
  e.source = "libvirt:qemu:///system";
  e.sourcetype = "hv:libvirt";
  e.fields = std::move(fields);
  return e;
}

struct batch_spec {
  std::string source;
  std::uint64_t sequence = 0;
  std::vector<event> events;
};

// Encodes every batch into a wire frame, decodes it again and hands the
// decoded views to `store::write` as one group, as the pipeline does.
result<storage::write_result> write_group(storage::store& s,
                                          const std::vector<batch_spec>& specs) {
  std::vector<wire::batch_view> views;
  views.reserve(specs.size());
  for (const auto& sp : specs) {
    auto v = wire::decode(
      wire::encode(wire::batch{sp.source, sp.sequence, sp.events}));
    INFO(why(v));
    REQUIRE(v);
    views.push_back(std::move(*v));
  }
  std::vector<storage::incoming_batch> group;
  for (const auto& v : views)
    group.push_back({v.source_id(), v.sequence(), v.events()});
  return s.write(group);
}

result<storage::write_result> write_one(storage::store& s, std::string source,
                                        std::uint64_t seq,
                                        std::vector<event> events) {
  return write_group(s, {batch_spec{std::move(source), seq, std::move(events)}});
}

// Every event of a bucket with its id, materialized.
std::vector<std::pair<std::uint64_t, event>>
scan_all(const storage::store& s, std::int64_t bucket) {
  std::vector<std::pair<std::uint64_t, event>> out;
  auto err = s.scan(bucket, [&](std::uint64_t id, const event_view& e) {
    out.emplace_back(id, e.materialize());
  });
  INFO(err.render());
  REQUIRE_FALSE(err);
  return out;
}

std::vector<event> events_of(
  const std::vector<std::pair<std::uint64_t, event>>& scanned) {
  std::vector<event> out;
  for (const auto& [id, e] : scanned)
    out.push_back(e);
  return out;
}

std::vector<std::uint64_t> ids_of(
  const std::vector<std::pair<std::uint64_t, event>>& scanned) {
  std::vector<std::uint64_t> out;
  for (const auto& [id, e] : scanned)
    out.push_back(id);
  return out;
}

std::optional<storage::bucket_info> find_bucket(const storage::store& s,
                                                std::int64_t id) {
  for (const auto& b : ok(s.buckets()))
    if (b.id == id)
      return b;
  return std::nullopt;
}

using ids = std::vector<std::uint64_t>;
using summary_list = std::vector<std::pair<std::string, std::uint64_t>>;

} // namespace

// -- writing and reading back -------------------------------------------------

TEST_CASE("store: written events are cataloged by bucket and scanned back") {
  fixture f;
  // Times in seconds, bucket = floor(t / 3600) worked out by hand:
  //   1'700'000'000 / 3600 = 472222.2  -> 472222
  //   1'700'003'000 / 3600 = 472223.06 -> 472223
  //   1'700'000'500 / 3600 = 472222.4  -> 472222
  //   1'700'007'200 / 3600 = 472224.2  -> 472224
  //   1'699'999'200 / 3600 = 472222 exactly (first ns of the bucket)
  //   1'700'006'399.999999999 s: last ns before 472224 * 3600 -> 472223
  const time_ns ta = 1'700'000'000 * sec, tb = 1'700'003'000 * sec,
                tc = 1'700'000'500 * sec, td = 1'700'007'200 * sec,
                te = 1'699'999'200 * sec, tf = 1'700'006'400 * sec - 1;
  std::vector<event> evs{
    log_event(ta, "web-01", "Accepted publickey for deploy",
              {{"user", str("deploy")}, {"port", num(51122)}}),
    log_event(tb, "web-02", "Größe \xff not UTF-8",
              {{"ratio", dbl(0.1)}, {"admin", boolean(true)}}),
    metric_event(tc, "hv-1", {{"cpu", dbl(12.5)}, {"mem", num(-4)}}),
    log_event(td, "", "", {}),
    log_event(te, "web-01", "first nanosecond", {}),
    metric_event(tf, "hv-2", {{"cpu", dbl(-0.25)}}),
  };
  evs[3].index.clear(); // empty defaults stay empty: the store adds none
  evs[3].sourcetype.clear();
  auto res = ok(write_one(f.store(), "agent-1", 1, evs));
  CHECK(res.outcomes == std::vector{storage::write_outcome::stored});
  CHECK(res.events == 6); // all six events above

  auto cat = ok(f.store().buckets());
  REQUIRE(cat.size() == 3); // buckets 472222, 472223, 472224 (see above)
  CHECK(cat[0].id == 472222);
  CHECK(cat[1].id == 472223);
  CHECK(cat[2].id == 472224);
  // 472222: ta, tc, te -> 3 events, earliest te, latest tc
  CHECK(cat[0].events == 3);
  CHECK(cat[0].min_time == te);
  CHECK(cat[0].max_time == tc);
  // 472223: tb, tf
  CHECK(cat[1].events == 2);
  CHECK(cat[1].min_time == tb);
  CHECK(cat[1].max_time == tf);
  // 472224: td only
  CHECK(cat[2].events == 1);
  CHECK(cat[2].min_time == td);
  CHECK(cat[2].max_time == td);
  std::uint64_t bytes = 0;
  for (const auto& b : cat) {
    CHECK(b.start == b.id * hour); // start = id * span
    CHECK(b.end == b.start + hour);
    CHECK(b.block_bytes > 0);
    bytes += b.block_bytes;
  }
  // The catalog's block bytes add up to what write reported.
  CHECK(bytes == res.bytes);
  CHECK(f.store().bucket_of(te) == 472222);
  CHECK(f.store().bucket_of(tf) == 472223);

  // Each bucket scans back its events, in arrival order, with equal content.
  auto s0 = scan_all(f.store(), 472222);
  auto s1 = scan_all(f.store(), 472223);
  auto s2 = scan_all(f.store(), 472224);
  CHECK(events_of(s0) == std::vector{evs[0], evs[2], evs[4]});
  CHECK(events_of(s1) == std::vector{evs[1], evs[5]});
  CHECK(events_of(s2) == std::vector{evs[3]});
  // Ids: ascending within a bucket, and together exactly 0..5.
  std::vector<std::uint64_t> all;
  for (const auto* s : {&s0, &s1, &s2}) {
    auto i = ids_of(*s);
    CHECK(std::is_sorted(i.begin(), i.end()));
    all.insert(all.end(), i.begin(), i.end());
  }
  std::sort(all.begin(), all.end());
  CHECK(all == ids{0, 1, 2, 3, 4, 5});
  // A bucket with no events scans nothing.
  CHECK(scan_all(f.store(), 472225).empty());
}

TEST_CASE("store: a write spread over more buckets than are counted "
          "(64) keeps arrival order within each") {
  fixture f;
  // 70 buckets, each visited three times, interleaved: the stable sort.
  // Then 5 buckets the same way: counted and placed.
  for (int buckets : {70, 5}) {
    std::vector<event> evs;
    const time_ns base = (buckets == 70 ? 1'700'000'000 : 1'800'000'000) * sec;
    for (int round = 0; round < 3; ++round)
      for (int b = buckets - 1; b >= 0; --b)
        evs.push_back(log_event(base + b * hour + round * sec, "h",
                                "round " + std::to_string(round), {}));
    auto res = ok(write_one(f.store(), "spread-" + std::to_string(buckets),
                            1, evs));
    CHECK(res.events == evs.size());
    for (int b = 0; b < buckets; ++b) {
      auto got = events_of(scan_all(f.store(), f.store().bucket_of(base)
                                                  + b));
      REQUIRE(got.size() == 3);
      for (int round = 0; round < 3; ++round)
        CHECK(got[round].raw == "round " + std::to_string(round));
    }
  }
}

TEST_CASE("store: times before 1970 fall into negative buckets") {
  fixture f;
  // floor(t / 1 h): -1 ns -> -1; -3600 s (exactly -span) -> -1;
  // -3600 s - 1 ns -> -2; 0 -> 0; -7200 s -> -2.
  std::vector<event> evs{
    log_event(-1, "h", "a"),
    log_event(-hour, "h", "b"),
    log_event(-hour - 1, "h", "c"),
    log_event(0, "h", "d"),
    log_event(-2 * hour, "h", "e"),
    metric_event(-30 * sec, "hv-3", {{"cpu", dbl(1.5)}}),
  };
  CHECK(f.store().bucket_of(-1) == -1);
  CHECK(f.store().bucket_of(-hour) == -1);
  CHECK(f.store().bucket_of(-hour - 1) == -2);
  ok(write_one(f.store(), "agent", 0, evs));
  auto cat = ok(f.store().buckets());
  REQUIRE(cat.size() == 3);
  // Oldest first: -2, -1, 0 (the key encoding must sort signed values).
  CHECK(cat[0].id == -2);
  CHECK(cat[1].id == -1);
  CHECK(cat[2].id == 0);
  CHECK(cat[0].start == -2 * hour); // id * span
  CHECK(cat[0].end == -hour);
  CHECK(cat[1].start == -hour);
  CHECK(cat[1].end == 0);
  // -2: "c" (-3600 s - 1 ns) and "e" (-7200 s)
  CHECK(cat[0].events == 2);
  CHECK(cat[0].min_time == -2 * hour);
  CHECK(cat[0].max_time == -hour - 1);
  // -1: "a", "b" and the metric at -30 s
  CHECK(cat[1].events == 3);
  CHECK(cat[1].min_time == -hour);
  CHECK(cat[1].max_time == -1);
  // 0: "d"
  CHECK(cat[2].events == 1);
  CHECK(events_of(scan_all(f.store(), -1))
        == std::vector{evs[0], evs[1], evs[5]});
  CHECK(events_of(scan_all(f.store(), -2)) == std::vector{evs[2], evs[4]});
  // Postings of a negative bucket: "c" is in the one event of -2 that says
  // it; the event ids are whatever scan reports for it.
  auto s2 = scan_all(f.store(), -2);
  CHECK(ok(f.store().postings(-2, "c")) == ids{s2[0].first});
  CHECK(ok(f.store().postings(-1, "c")).empty());
  // The metric at -30 s rolls up into the interval starting at -60 s
  // (floor(-30 / 60) = -1).
  auto r = ok(f.store().rollups(-1));
  REQUIRE(r.size() == 1);
  CHECK(r[0].host == "hv-3");
  CHECK(r[0].metric == "cpu");
  CHECK(r[0].interval_start == -60 * sec);
  CHECK(r[0].cell.count == 1);
}

TEST_CASE("store: blocks of block_events events scan back in id order") {
  storage::store_options so;
  so.block_events = 3;
  fixture f{so};
  // 10 events in bucket b0 (4 blocks of at most 3) and 2 in b0 + 1.
  std::vector<event> evs;
  for (int i = 0; i < 10; ++i)
    evs.push_back(
      log_event(t0 + i * sec, "h", "event number " + std::to_string(i)));
  evs.push_back(log_event(t0 + hour, "h", "next bucket 0"));
  evs.push_back(log_event(t0 + hour + 1, "h", "next bucket 1"));
  auto res = ok(write_one(f.store(), "agent", 1, evs));
  CHECK(res.events == 12);
  auto s = scan_all(f.store(), b0);
  CHECK(events_of(s) == std::vector<event>(evs.begin(), evs.begin() + 10));
  // One group, bucket b0 written first: its ids are 0..9 in arrival order.
  CHECK(ids_of(s) == ids{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(ids_of(scan_all(f.store(), b0 + 1)) == ids{10, 11});
  // "number" is in all ten events of b0, across the four blocks.
  CHECK(ok(f.store().postings(b0, "number"))
        == ids{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  // "7" only in event 7.
  CHECK(ok(f.store().postings(b0, "7")) == ids{7});
}

// -- keyword index ------------------------------------------------------------

TEST_CASE("store: postings of raw-text terms and field terms") {
  fixture f;
  auto e3 = log_event(t0 + 3, "web-02", "sshd[812]: user=deploy session opened",
                      {{"user", str("deploy")}});
  e3.sourcetype = "os:process";
  std::vector<event> evs{
    log_event(t0, "web-01",
              "Accepted publickey for deploy from 10.0.1.2 port 51122",
              {{"user", str("deploy")}, {"port", num(51122)}}),
    log_event(t0 + 1, "web-01",
              "Failed password for root from 10.0.1.3 port 40000",
              {{"user", str("root")}}),
    log_event(t0 + 2, "web-02",
              "Accepted password for Deploy from 192.168.0.5 port 2222",
              {{"user", str("Deploy")}}),
    e3,
  };
  ok(write_one(f.store(), "agent", 1, evs));
  // One bucket, one group: ids 0..3 in arrival order.
  REQUIRE(ids_of(scan_all(f.store(), b0)) == ids{0, 1, 2, 3});
  auto p = [&](std::string_view term) {
    return ok(f.store().postings(b0, term));
  };
  CHECK(p("accepted") == ids{0, 2});     // events 0 and 2 start with it
  CHECK(p("deploy") == ids{0, 2, 3});    // 2 says "Deploy"; 3 "user=deploy"
  CHECK(p("10.0.1.2") == ids{0});        // whole token
  CHECK(p("10") == ids{0, 1});           // segment of 10.0.1.2 and 10.0.1.3
  CHECK(p("0") == ids{0, 1, 2});         // 10.0.1.x and 192.168.0.5
  CHECK(p("2") == ids{0});               // only 10.0.1.2 ("2222" is whole)
  CHECK(p("2222") == ids{2});
  CHECK(p("port") == ids{0, 1, 2});
  CHECK(p("sshd") == ids{3});            // "sshd[812]:" splits at '['
  CHECK(p("812") == ids{3});
  // Field terms.
  CHECK(p("user=deploy") == ids{0, 2, 3}); // 2's value lowercased; 3 has
                                           // it in raw text and as a field,
                                           // listed once
  CHECK(p("user=root") == ids{1});
  CHECK(p("host=web-01") == ids{0, 1});
  CHECK(p("host=web-02") == ids{2, 3});
  CHECK(p("sourcetype=os:auth") == ids{0, 1, 2});
  CHECK(p("sourcetype=os:process") == ids{3});
  CHECK(p("index=main") == ids{0, 1, 2, 3});
  CHECK(p("source=/var/log/auth.log") == ids{0, 1, 2, 3});
  // Not indexed: numeric fields, and the host value as a bare word.
  CHECK(p("port=51122").empty());
  CHECK(p("web-01").empty());
  // Terms are looked up as given: the index holds lowercase terms only.
  CHECK(p("Accepted").empty());
  // A term in no event, and a bucket with no events.
  CHECK(p("nothing").empty());
  CHECK(ok(f.store().postings(b0 + 1, "accepted")).empty());
  // A prefix of a term is not the term.
  CHECK(p("accept").empty());
  CHECK(p("user=dep").empty());
}

TEST_CASE("store: postings stay exact with far more distinct terms than "
          "the indexer's cache of recent terms") {
  // 20,000 events, each with a word and a field value out of 6,000 (the
  // cache has 2,048 slots: they collide all the time; the term map grows
  // its table several times, its entries and keys span several chunks),
  // written in one group; then every term's postings are the events that
  // have it.
  fixture f;
  std::vector<event> evs;
  std::map<std::string, ids> want;
  std::mt19937_64 rng{7};
  for (std::uint64_t i = 0; i < 20'000; ++i) {
    auto w = rng() % 6'000;
    auto v = rng() % 6'000;
    evs.push_back(log_event(t0 + static_cast<time_ns>(i), "web-01",
                            "word" + std::to_string(w) + " common",
                            {{"tag", str("v" + std::to_string(v))}}));
    want["word" + std::to_string(w)].push_back(i);
    auto& t = want["tag=v" + std::to_string(v)];
    if (t.empty() || t.back() != i)
      t.push_back(i);
  }
  ok(write_one(f.store(), "agent", 1, evs));
  std::size_t checked = 0;
  for (const auto& [term, expected] : want) {
    CAPTURE(term);
    CHECK(ok(f.store().postings(b0, term)) == expected);
    ++checked;
  }
  CHECK(checked > 8'000);
  CHECK(ok(f.store().postings(b0, "common")).size() == 20'000);
  // The summaries count each value once per event.
  CHECK(ok(f.store().count(b0, "tag", "v17")) == want["tag=v17"].size());
}

TEST_CASE("store: postings of several write groups are concatenated") {
  fixture f;
  // Group 1 (source a, seq 1), all in b0: ids 0, 1, 2.
  auto r1 = ok(write_one(f.store(), "a", 1,
                         {log_event(t0, "h", "error disk"),
                          log_event(t0 + 1, "h", "ok"),
                          log_event(t0 + 2, "h", "error net")}));
  // Group 2 (source b, seq 1), all in b0: ids 3, 4.
  auto r2 = ok(write_one(f.store(), "b", 1,
                         {log_event(t0 + 3, "h", "fine"),
                          log_event(t0 + 4, "h", "error again")}));
  // Group 3: two batches, one event of source a in the next bucket.
  auto r3 = ok(write_group(f.store(),
                           {{"a", 2,
                             {log_event(t0 + 5, "h", "error x"),
                              log_event(t0 + hour, "h", "error late")}},
                            {"b", 2, {log_event(t0 + 6, "h", "error y")}}}));
  // Each write reports the bytes of its own blocks only: together, what
  // the catalog holds.
  std::uint64_t cataloged = 0;
  for (const auto& b : ok(f.store().buckets()))
    cataloged += b.block_bytes;
  CHECK(r1.bytes + r2.bytes + r3.bytes == cataloged);
  auto scanned = scan_all(f.store(), b0);
  REQUIRE(scanned.size() == 7); // 3 + 2 + 2 events of b0
  // Expected: the ids of b0's events whose text says "error", in id order.
  ids expected;
  for (const auto& [id, e] : scanned)
    if (e.raw->starts_with("error"))
      expected.push_back(id);
  CHECK(expected.size() == 5); // 2 from group 1, 1 from group 2, 2 from 3
  CHECK(ids(expected.begin(), expected.begin() + 3) == ids{0, 2, 4});
  auto got = ok(f.store().postings(b0, "error"));
  CHECK(got == expected);
  CHECK(std::is_sorted(got.begin(), got.end()));
  // The event of the next bucket is only in that bucket's postings.
  auto late = scan_all(f.store(), b0 + 1);
  REQUIRE(late.size() == 1);
  CHECK(ok(f.store().postings(b0 + 1, "error")) == ids{late[0].first});
  CHECK(ok(f.store().postings(b0, "late")).empty());
  // The ids of group 3 come after those of groups 1 and 2.
  CHECK(late[0].first > 4);
  CHECK(expected[3] > 4);
}

// -- summaries ---------------------------------------------------------------

TEST_CASE("store: summaries count string and boolean fields, not numbers") {
  fixture f;
  // Group 1.
  ok(write_one(
    f.store(), "agent", 1,
    {log_event(t0, "web-01", "x",
               {{"user", str("deploy")}, {"admin", boolean(true)},
                {"latency", num(12)}, {"ratio", dbl(0.5)}}),
     log_event(t0 + 1, "web-01", "x",
               {{"user", str("Deploy")}, {"admin", boolean(false)},
                {"note", str("")}}),
     log_event(t0 + 2, "web-02", "x",
               {{"user", str("root")}, {"admin", boolean(true)},
                {"host", str("spoofed")}})}));
  // Group 2.
  ok(write_one(f.store(), "agent", 2,
               {metric_event(t0 + 3, "hv-1",
                             {{"cpu", dbl(0.5)}, {"up", boolean(true)}}),
                log_event(t0 + 4, "web-02", "x", {{"user", str("deploy")}})}));
  auto& s = f.store();
  auto count = [&](std::string_view n, std::string_view v) {
    return ok(s.count(b0, n, v));
  };
  CHECK(count("user", "deploy") == 3); // events 0, 1 ("Deploy") and 4
  CHECK(count("user", "DEPLOY") == 3); // the value is lowercased for lookup
  CHECK(count("user", "root") == 1);   // event 2
  CHECK(count("admin", "true") == 2);  // events 0 and 2
  CHECK(count("admin", "false") == 1); // event 1
  CHECK(count("up", "true") == 1);     // the metric sample
  // Numbers are not summarized, whatever their spelling.
  CHECK(count("latency", "12") == 0);
  CHECK(count("ratio", "0.5") == 0);
  CHECK(count("cpu", "0.5") == 0);
  // Default fields: host is the event's, the "host" field does not count.
  CHECK(count("host", "web-02") == 2); // events 2 and 4
  CHECK(count("host", "spoofed") == 0);
  CHECK(count("index", "main") == 4);    // the four log events
  CHECK(count("index", "metrics") == 1); // the metric sample
  // Empty values are not summarized.
  CHECK(count("note", "") == 0);
  // Another bucket has nothing.
  CHECK(ok(s.count(b0 + 1, "user", "deploy")) == 0);

  // The whole table, counted by hand from the five events above, sorted
  // by term.
  summary_list expected{
    {"admin=false", 1},
    {"admin=true", 2},
    {"host=hv-1", 1},
    {"host=web-01", 2},
    {"host=web-02", 2},
    {"index=main", 4},
    {"index=metrics", 1},
    {"source=/var/log/auth.log", 4},
    {"source=libvirt:qemu:///system", 1},
    {"sourcetype=hv:libvirt", 1},
    {"sourcetype=os:auth", 4},
    {"up=true", 1},
    {"user=deploy", 3},
    {"user=root", 1},
  };
  CHECK(std::is_sorted(expected.begin(), expected.end()));
  CHECK(ok(s.summaries(b0)) == expected);
  CHECK(ok(s.summaries(b0 + 1)).empty());

  // Group 3, in the next bucket: the host alternates x, y, x, y within one
  // batch, and the second event has no index.
  std::vector<event> alt;
  for (int i = 0; i < 4; ++i)
    alt.push_back(log_event(t0 + hour + i, i % 2 ? "y" : "x", "alt"));
  alt[1].index.clear();
  ok(write_one(s, "agent", 3, alt));
  auto next = scan_all(s, b0 + 1);
  REQUIRE(next.size() == 4);
  CHECK(events_of(next) == alt);
  CHECK(ok(s.count(b0 + 1, "host", "x")) == 2);   // events 0 and 2
  CHECK(ok(s.count(b0 + 1, "host", "y")) == 2);   // events 1 and 3
  CHECK(ok(s.count(b0 + 1, "index", "main")) == 3); // all but event 1
  CHECK(ok(s.postings(b0 + 1, "host=x")) == ids{next[0].first, next[2].first});
  CHECK(ok(s.postings(b0 + 1, "host=y")) == ids{next[1].first, next[3].first});
  CHECK(ok(s.postings(b0 + 1, "index=main"))
        == ids{next[0].first, next[2].first, next[3].first});
  // Bucket b0 is unchanged by it.
  CHECK(ok(s.summaries(b0)) == expected);
}

// -- rollups ------------------------------------------------------------------

TEST_CASE("store: numeric fields of metric samples roll up per interval") {
  fixture f; // 1 h buckets, 60 s rollup intervals
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  // Group 1.
  ok(write_one(
    f.store(), "agent", 1,
    {metric_event(t0 + 5 * sec, "hv-1", {{"cpu", dbl(0.5)}, {"mem", num(1024)}}),
     metric_event(t0 + 30 * sec, "hv-1",
                  {{"cpu", dbl(1.5)}, {"mem", num(2048)}}),
     metric_event(t0 + 65 * sec, "hv-1", {{"cpu", dbl(2.25)}}),
     metric_event(t0 + 10 * sec, "hv-2", {{"cpu", dbl(4.0)}, {"load", dbl(nan)}}),
     metric_event(t0 + 20 * sec, "hv-2", {{"cpu", dbl(inf)}, {"load", dbl(0.75)}}),
     // Raw text: a log event's numbers are rolled up too.
     log_event(t0 + 15 * sec, "hv-1", "cpu spike", {{"cpu", dbl(99.0)}}),
     // Strings and booleans are not metrics.
     metric_event(t0 + 40 * sec, "hv-1",
                  {{"label", str("x")}, {"flag", boolean(true)}})}));
  // Group 2: adds to the stored cell of hv-1/cpu/first interval.
  ok(write_one(f.store(), "agent", 2,
               {metric_event(t0 + 50 * sec, "hv-1", {{"cpu", dbl(-3.0)}})}));

  auto rows = ok(f.store().rollups(b0));
  // (Integral doubles such as 4.0 reach the store as integers, see the
  // last test case; rollups treat both kinds alike.)
  // Expected, worked out by hand (all values are exact binary fractions, so
  // the order of summation does not matter):
  //  hv-1 cpu [t0, +60s): 0.5, 1.5, 99 (the log event), -3 -> sum 98,
  //                       min -3, max 99, squares 0.25 + 2.25 + 9801 + 9
  //                       = 9812.5
  //  hv-1 cpu [t0+60s, +60s): 2.25 -> squares 5.0625
  //  hv-1 mem [t0, +60s): 1024, 2048 -> sum 3072, squares 1048576 + 4194304
  //  hv-2 cpu [t0, +60s): 4 (inf skipped: not finite) -> squares 16
  //  hv-2 load [t0, +60s): 0.75 (NaN skipped) -> squares 0.5625
  // Sorted by host, metric, interval.
  std::vector<storage::rollup_row> expected{
    {"hv-1", "cpu", t0, {4, 98.0, -3.0, 99.0, 9812.5}},
    {"hv-1", "cpu", t0 + 60 * sec, {1, 2.25, 2.25, 2.25, 5.0625}},
    {"hv-1", "mem", t0, {2, 3072.0, 1024.0, 2048.0, 5242880.0}},
    {"hv-2", "cpu", t0, {1, 4.0, 4.0, 4.0, 16.0}},
    {"hv-2", "load", t0, {1, 0.75, 0.75, 0.75, 0.5625}},
  };
  REQUIRE(rows.size() == expected.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CAPTURE(i);
    CHECK(rows[i].host == expected[i].host);
    CHECK(rows[i].metric == expected[i].metric);
    CHECK(rows[i].interval_start == expected[i].interval_start);
    CHECK(rows[i].cell.count == expected[i].cell.count);
    CHECK(rows[i].cell.sum == expected[i].cell.sum);
    CHECK(rows[i].cell.min == expected[i].cell.min);
    CHECK(rows[i].cell.max == expected[i].cell.max);
    CHECK(rows[i].cell.sum_sq == expected[i].cell.sum_sq);
  }
  CHECK(rows == expected);
  // Log events alone make rollups of their numbers.
  ok(write_one(f.store(), "agent", 3,
               {log_event(t0 + hour, "hv-1", "load 5", {{"load", num(5)}})}));
  CHECK(ok(f.store().rollups(b0 + 1))
        == std::vector<storage::rollup_row>{
          {"hv-1", "load", t0 + hour, {1, 5.0, 5.0, 5.0, 25.0}}});
}

TEST_CASE("store: rollup_cell add and merge") {
  // Independent of the store: add folds values, merge combines cells.
  storage::rollup_cell a, b;
  a.add(2.0);
  a.add(-1.0);
  b.add(5.0);
  CHECK(a == storage::rollup_cell{2, 1.0, -1.0, 2.0, 5.0}); // 4 + 1 = 5
  auto m = a;
  m.merge(b);
  CHECK(m == storage::rollup_cell{3, 6.0, -1.0, 5.0, 30.0}); // 5 + 25
  // Merging an empty cell changes nothing; merging into one copies.
  auto n = a;
  n.merge(storage::rollup_cell{});
  CHECK(n == a);
  storage::rollup_cell e;
  e.merge(b);
  CHECK(e == b);
}

// -- deduplication ------------------------------------------------------------

TEST_CASE("store: a batch already committed is a duplicate and stores nothing") {
  fixture f;
  using storage::write_outcome;
  auto& s = f.store();
  auto one = [](std::string word) {
    return std::vector{log_event(t0, "h", std::move(word))};
  };
  CHECK(ok(s.last_sequence("a")) == std::nullopt);
  auto r1 = ok(write_one(s, "a", 5, one("first")));
  CHECK(r1.outcomes == std::vector{write_outcome::stored});
  CHECK(r1.events == 1);
  CHECK(ok(s.last_sequence("a")) == std::optional<std::uint64_t>{5});

  // The same (source, sequence) again, with other content: nothing stored.
  auto r2 = ok(write_one(s, "a", 5, one("again")));
  CHECK(r2.outcomes == std::vector{write_outcome::duplicate});
  CHECK(r2.events == 0);
  CHECK(r2.bytes == 0);
  // A lower sequence that was never committed is stored: batches may arrive
  // out of order (a resend after a reconnect overtaken by a newer batch).
  auto r3 = ok(write_one(s, "a", 3, one("older")));
  CHECK(r3.outcomes == std::vector{write_outcome::stored});
  CHECK(ok(s.postings(b0, "again")).empty());
  CHECK(ok(s.postings(b0, "older")) == ids{1});
  CHECK(ok(s.count(b0, "host", "h")) == 2); // "first" and "older"
  CHECK(ok(s.last_sequence("a")) == std::optional<std::uint64_t>{5});
  // ... and once committed, it is a duplicate like any other.
  CHECK(ok(write_one(s, "a", 3, one("older-again"))).outcomes
        == std::vector{write_outcome::duplicate});

  // One group: a:6 stored; a:6 again a duplicate within the group; b:1 is
  // another source; a:4 was never committed, so it is stored; b:1 repeated
  // is a duplicate.
  auto r4 = ok(write_group(s, {{"a", 6, one("six")},
                               {"a", 6, one("six-again")},
                               {"b", 1, one("bee")},
                               {"a", 4, one("four")},
                               {"b", 1, one("bee-again")}}));
  CHECK(r4.outcomes
        == std::vector{write_outcome::stored, write_outcome::duplicate,
                       write_outcome::stored, write_outcome::stored,
                       write_outcome::duplicate});
  CHECK(r4.events == 3); // "six", "bee" and "four"
  auto scanned = scan_all(s, b0);
  std::vector<std::string> raws;
  for (const auto& [id, e] : scanned)
    raws.push_back(*e.raw);
  CHECK(raws
        == std::vector<std::string>{"first", "older", "six", "bee", "four"});
  auto cat = ok(s.buckets());
  REQUIRE(cat.size() == 1);
  CHECK(cat[0].events == 5);
  CHECK(ok(s.count(b0, "host", "h")) == 5);

  // The state survives closing and reopening.
  f.reopen();
  auto& s2 = f.store();
  CHECK(ok(s2.last_sequence("a")) == std::optional<std::uint64_t>{6});
  CHECK(ok(s2.last_sequence("b")) == std::optional<std::uint64_t>{1});
  CHECK(ok(s2.last_sequence("c")) == std::nullopt);
  CHECK(ok(write_one(s2, "a", 6, one("after-restart"))).outcomes
        == std::vector{write_outcome::duplicate});
  CHECK(ok(write_one(s2, "a", 4, one("four-again"))).outcomes
        == std::vector{write_outcome::duplicate});
  auto r5 = ok(write_one(s2, "a", 7, one("seven")));
  CHECK(r5.outcomes == std::vector{write_outcome::stored});
  // Ids continue after a restart: 0..4 were used, so "seven" is 5.
  CHECK(ok(s2.postings(b0, "seven")) == ids{5});
  CHECK(scan_all(s2, b0).size() == 6);
  // Sequences 1 and 2 of "a" are still open: they would be stored.
  CHECK(ok(write_one(s2, "a", 1, one("one"))).outcomes
        == std::vector{write_outcome::stored});
}

TEST_CASE("store: a gap more than 1024 sequences old is taken as abandoned") {
  fixture f;
  using storage::write_outcome;
  auto& s = f.store();
  // Sequence 0 commits; 2..1026 follow in one group while 1 never arrives:
  // 1025 sequences above the gap exceed the 1024 kept, so the floor moves
  // past 1.
  CHECK(ok(write_one(s, "a", 0, {})).outcomes
        == std::vector{write_outcome::stored});
  std::vector<batch_spec> group;
  for (std::uint64_t seq = 2; seq <= 1026; ++seq)
    group.push_back({"a", seq, {}});
  auto r = ok(write_group(s, group));
  CHECK(std::count(r.outcomes.begin(), r.outcomes.end(),
                   write_outcome::stored)
        == 1025);
  CHECK(ok(write_one(s, "a", 1, {log_event(t0, "h", "late")})).outcomes
        == std::vector{write_outcome::duplicate});
  CHECK(ok(write_one(s, "a", 1027, {})).outcomes
        == std::vector{write_outcome::stored});
  CHECK(ok(s.last_sequence("a")) == std::optional<std::uint64_t>{1027});
}

TEST_CASE("store: a stored batch with no events still records its sequence") {
  fixture f;
  auto r = ok(write_one(f.store(), "a", 9, {}));
  CHECK(r.outcomes == std::vector{storage::write_outcome::stored});
  CHECK(r.events == 0);
  CHECK(ok(f.store().buckets()).empty());
  CHECK(ok(f.store().last_sequence("a")) == std::optional<std::uint64_t>{9});
}

// -- rebuild ------------------------------------------------------------------

TEST_CASE("store: rebuild_summaries reproduces the incremental tables") {
  storage::store_options so;
  SUBCASE("one block per write group") {
    so.block_events = 1024;
  }
  SUBCASE("blocks of two events") {
    so.block_events = 2;
  }
  fixture f{so};
  // Values whose sum depends on the order of addition.
  REQUIRE((0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3));
  const std::vector<double> cpu{0.1, 0.2, 0.3, 1e16, 0.7, -1e16, 0.1, 0.3};
  // hv-1/cpu values land in b0 first interval; they are spread over four
  // write groups, interleaved with other series, log events and a second
  // bucket.
  std::vector<std::vector<event>> groups(4);
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    auto t = t0 + static_cast<time_ns>(i) * sec;
    groups[i % 4].push_back(metric_event(
      t, "hv-1", {{"cpu", dbl(cpu[i])}, {"disk", dbl(cpu[i] * 3)}}));
    groups[i % 4].push_back(
      log_event(t, i % 2 ? "web-01" : "web-02", "line " + std::to_string(i),
                {{"user", str(i % 3 ? "deploy" : "root")},
                 {"ok", boolean(i % 2 == 0)}}));
    groups[i % 4].push_back(
      metric_event(t + hour, "hv-2", {{"cpu", dbl(cpu[i] / 7)}}));
  }
  std::uint64_t seq = 0;
  for (const auto& g : groups)
    ok(write_one(f.store(), "agent", ++seq, g));

  auto& s = f.store();
  auto cat = ok(s.buckets());
  REQUIRE(cat.size() == 2); // b0 and b0 + 1
  std::map<std::int64_t, summary_list> sums;
  std::map<std::int64_t, std::vector<storage::rollup_row>> rolls;
  for (const auto& b : cat) {
    sums[b.id] = ok(s.summaries(b.id));
    rolls[b.id] = ok(s.rollups(b.id));
    CHECK_FALSE(sums[b.id].empty());
    CHECK_FALSE(rolls[b.id].empty());
  }
  // The incremental hv-1/cpu cell equals a fold in arrival (= id) order:
  // within b0, groups arrive in order 0..3 and the cpu values were dealt
  // round-robin, so arrival order is i = 0,4, 1,5, 2,6, 3,7.
  double sum = 0, sum_sq = 0;
  for (std::size_t i : {0, 4, 1, 5, 2, 6, 3, 7}) {
    sum += cpu[i];
    sum_sq += cpu[i] * cpu[i];
  }
  REQUIRE_FALSE(rolls[b0].empty());
  CHECK(rolls[b0][0].host == "hv-1");
  CHECK(rolls[b0][0].metric == "cpu");
  CHECK(rolls[b0][0].cell.count == 8);
  CHECK(rolls[b0][0].cell.sum == sum);
  CHECK(rolls[b0][0].cell.sum_sq == sum_sq);
  CHECK(rolls[b0][0].cell.min == -1e16);
  CHECK(rolls[b0][0].cell.max == 1e16);

  // Spoil the tables with raw LMDB, so that a rebuild that did nothing would
  // be caught: empty the summaries, and replace the rollups by nothing.
  {
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(f.env->handle(), nullptr, 0, &txn) == 0);
    for (const char* name : {"summaries", "rollups"}) {
      MDB_dbi dbi;
      REQUIRE(mdb_dbi_open(txn, name, 0, &dbi) == 0);
      REQUIRE(mdb_drop(txn, dbi, 0) == 0);
    }
    REQUIRE(mdb_txn_commit(txn) == 0);
  }
  REQUIRE(ok(s.summaries(b0)).empty());
  REQUIRE(ok(s.rollups(b0)).empty());

  auto err = s.rebuild_summaries();
  INFO(err.render());
  REQUIRE_FALSE(err);
  for (const auto& b : cat) {
    CAPTURE(b.id);
    CHECK(ok(s.summaries(b.id)) == sums[b.id]);
    CHECK(ok(s.rollups(b.id)) == rolls[b.id]);
  }
  // A rebuild of unspoilt tables changes nothing either.
  REQUIRE_FALSE(s.rebuild_summaries());
  for (const auto& b : cat) {
    CHECK(ok(s.summaries(b.id)) == sums[b.id]);
    CHECK(ok(s.rollups(b.id)) == rolls[b.id]);
  }
  // Incremental writes continue from the rebuilt tables.
  auto before = ok(s.count(b0, "user", "deploy"));
  ok(write_one(s, "agent", ++seq,
               {log_event(t0 + 59 * sec, "web-01", "more",
                          {{"user", str("deploy")}})}));
  CHECK(ok(s.count(b0, "user", "deploy")) == before + 1);
}

// -- retention ----------------------------------------------------------------

TEST_CASE("store: drop_before drops whole old buckets and keeps newer ones") {
  fixture f;
  // Three buckets with 300 log events each (one unique word apiece, so the
  // postings of a bucket span many LMDB pages) and 5 metric samples.
  std::vector<event> evs;
  for (int b = 0; b < 3; ++b) {
    for (int i = 0; i < 300; ++i)
      evs.push_back(log_event(t0 + b * hour + i * sec, "web-01",
                              "error w" + std::to_string(b) + "x"
                                + std::to_string(i),
                              {{"user", str("u" + std::to_string(i % 3))}}));
    for (int i = 0; i < 5; ++i)
      evs.push_back(metric_event(t0 + b * hour + i * 60 * sec, "hv-1",
                                 {{"cpu", dbl(i)}}));
  }
  ok(write_one(f.store(), "agent", 1, evs));
  auto& s = f.store();
  REQUIRE(ok(s.buckets()).size() == 3);
  // Snapshot of the newest bucket.
  auto keep_info = find_bucket(s, b0 + 2);
  REQUIRE(keep_info);
  auto keep_post = ok(s.postings(b0 + 2, "error"));
  auto keep_sums = ok(s.summaries(b0 + 2));
  auto keep_rolls = ok(s.rollups(b0 + 2));
  auto keep_scan = scan_all(s, b0 + 2);
  CHECK(keep_post.size() == 300); // every log event says "error"
  CHECK(keep_rolls.size() == 5);  // one cpu row per minute 0..4
  CHECK(keep_scan.size() == 305); // 300 + 5

  auto gone = [&](std::int64_t b) {
    CAPTURE(b);
    CHECK_FALSE(find_bucket(s, b));
    CHECK(ok(s.postings(b, "error")).empty());
    CHECK(ok(s.postings(b, "w" + std::to_string(b - b0) + "x17")).empty());
    CHECK(ok(s.postings(b, "user=u0")).empty());
    CHECK(ok(s.summaries(b)).empty());
    CHECK(ok(s.count(b, "user", "u0")) == 0);
    CHECK(ok(s.rollups(b)).empty());
    CHECK(scan_all(s, b).empty());
  };

  // b0 ends at t0 + 1 h; b0 + 1 at t0 + 2 h. A cutoff one ns before the end
  // of b0 + 1 drops only b0 (a bucket goes when it ends at or before it).
  CHECK(ok(s.drop_before(t0 + 2 * hour - 1)) == 1);
  gone(b0);
  auto mid = find_bucket(s, b0 + 1);
  REQUIRE(mid);
  CHECK(mid->events == 305);
  CHECK(ok(s.postings(b0 + 1, "error")).size() == 300);
  CHECK(ok(s.count(b0 + 1, "user", "u0")) == 100); // i % 3 == 0 of 300
  CHECK(scan_all(s, b0 + 1).size() == 305);

  // A cutoff exactly at the end of b0 + 1 drops it.
  CHECK(ok(s.drop_before(t0 + 2 * hour)) == 1);
  gone(b0 + 1);
  // Nothing else to drop at the same cutoff.
  CHECK(ok(s.drop_before(t0 + 2 * hour)) == 0);

  // The newest bucket is untouched.
  auto after = find_bucket(s, b0 + 2);
  REQUIRE(after);
  CHECK(after->events == keep_info->events);
  CHECK(after->min_time == keep_info->min_time);
  CHECK(after->max_time == keep_info->max_time);
  CHECK(after->block_bytes == keep_info->block_bytes);
  CHECK(ok(s.postings(b0 + 2, "error")) == keep_post);
  CHECK(ok(s.summaries(b0 + 2)) == keep_sums);
  CHECK(ok(s.rollups(b0 + 2)) == keep_rolls);
  auto scan_after = scan_all(s, b0 + 2);
  CHECK(ids_of(scan_after) == ids_of(keep_scan));
  CHECK(events_of(scan_after) == events_of(keep_scan));

  // Deduplication state is not part of a bucket: it survives.
  CHECK(ok(s.last_sequence("agent")) == std::optional<std::uint64_t>{1});
  // Ids are not reused: 3 * 305 = 915 ids (0..914) were taken, so an event
  // written into the dropped bucket now gets id 915.
  ok(write_one(s, "agent", 2, {log_event(t0 + 10 * sec, "web-01", "revived")}));
  CHECK(ok(s.postings(b0, "revived")) == ids{915});
  auto back = find_bucket(s, b0);
  REQUIRE(back);
  CHECK(back->events == 1); // a fresh catalog entry, not 306
}

// -- options and failures -----------------------------------------------------

TEST_CASE("store: the bucket span is fixed when the store is created") {
  fixture f; // created with the default span of one hour
  ok(write_one(f.store(), "a", 1, {log_event(t0, "h", "x")}));
  f.close();
  auto env = ok(storage::environment::open(f.dir()));
  storage::store_options other;
  other.bucket_span = 60 * sec;
  auto s = storage::store::open(env, other);
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ec::config_bad_value);
  CHECK(s.error().message.find("parallax.storage.bucket-span")
        != std::string::npos);
  // The original span still opens it, with the data intact.
  auto same = ok(storage::store::open(env));
  CHECK(ok(same.postings(b0, "x")) == ids{0});
}

TEST_CASE("store: non-positive options are refused") {
  temp_dir tmp;
  auto env = ok(storage::environment::open(tmp.path));
  storage::store_options o1;
  o1.bucket_span = 0;
  auto s1 = storage::store::open(env, o1);
  REQUIRE_FALSE(s1);
  CHECK(s1.error().code == ec::config_bad_value);
  storage::store_options o2;
  o2.rollup_interval = -1;
  CHECK_FALSE(storage::store::open(env, o2));
  storage::store_options o3;
  o3.block_events = 0;
  CHECK_FALSE(storage::store::open(env, o3));
}

TEST_CASE("store: a full map fails the write and keeps what was committed") {
  storage::environment_options eo;
  eo.map_size = std::uint64_t{1} << 20; // 1 MiB
  fixture f{{}, eo};
  // Batches of 20 events of ~50 unique words each, until a write fails.
  auto make_batch = [](int n) {
    std::vector<event> evs;
    for (int i = 0; i < 20; ++i) {
      std::string raw;
      for (int k = 0; k < 50; ++k)
        raw += "w" + std::to_string(n) + "_" + std::to_string(i) + "_"
               + std::to_string(k) + " ";
      evs.push_back(log_event(t0 + n * sec, "h", raw, {{"n", num(n)}}));
    }
    return evs;
  };
  std::vector<std::vector<event>> committed;
  std::optional<error> failure;
  for (int n = 1; n <= 500 && !failure; ++n) {
    auto evs = make_batch(n);
    auto r = write_one(f.store(), "agent", static_cast<std::uint64_t>(n), evs);
    if (r)
      committed.push_back(std::move(evs));
    else
      failure = r.error();
  }
  REQUIRE(failure); // 500 * 20 * ~1 KiB of text cannot fit into 1 MiB
  REQUIRE(committed.size() >= 1);
  CHECK(failure->code == ec::storage_full);
  CHECK(failure->message.find("map-size") != std::string::npos);
  const auto last = static_cast<std::uint64_t>(committed.size());
  // The failed group recorded nothing.
  CHECK(ok(f.store().last_sequence("agent")) == std::optional{last});

  // Closed and reopened, the store opens and holds every committed event.
  f.reopen();
  auto& s = f.store();
  CHECK(ok(s.last_sequence("agent")) == std::optional{last});
  std::vector<event> expected;
  for (const auto& b : committed)
    expected.insert(expected.end(), b.begin(), b.end());
  CHECK(events_of(scan_all(s, b0)) == expected);
  auto cat = ok(s.buckets());
  REQUIRE(cat.size() == 1);
  CHECK(cat[0].events == expected.size());
  // The first event's first word is indexed (id 0).
  CHECK(ok(s.postings(b0, "w1_0_0")) == ids{0});
  CHECK(ok(s.count(b0, "host", "h")) == expected.size());
}

TEST_CASE("store: a store on a read-only environment reads what was written") {
  fixture f;
  ok(write_one(f.store(), "a", 1,
               {log_event(t0, "web-01", "hello", {{"user", str("deploy")}})}));
  f.close();
  storage::environment_options ro;
  ro.read_only = true;
  auto env = ok(storage::environment::open(f.dir(), ro));
  auto s = ok(storage::store::open(env));
  auto cat = s.buckets();
  // Regression: the tables used to be opened in a read transaction that was
  // aborted, and LMDB closes handles opened in an aborted transaction
  // (lmdb.h, mdb_dbi_open), so every read failed with EINVAL.
  REQUIRE_MESSAGE(static_cast<bool>(cat), why(cat));
  CHECK(cat->size() == 1);
  CHECK(ok(s.postings(b0, "hello")) == ids{0});
  CHECK(ok(s.count(b0, "user", "deploy")) == 1);
}

TEST_CASE("store: a metric sample with wire-legal long host and metric names") {
  fixture f;
  // The wire format allows names of 256 bytes (host and field names alike).
  std::string host(256, 'h'), name(256, 'm');
  auto r = write_one(f.store(), "a", 1,
                     {metric_event(t0, host, {{name, dbl(1.0)}}),
                      log_event(t0, "web-01", "unrelated")});
  // Regression: the rollup key would be 8 + host + 1 + metric + 1 + 8 =
  // 530 bytes, over LMDB's 511-byte key limit, and the whole write group
  // failed with MDB_BAD_VALSIZE. Such a series now gets no rollup (store.hpp)
  // and the events are stored as usual.
  REQUIRE_MESSAGE(static_cast<bool>(r), why(r));
  CHECK(scan_all(f.store(), b0).size() == 2);
  CHECK(ok(f.store().rollups(b0)).empty());
}

TEST_CASE("store: a rollup series whose host contains a NUL byte") {
  fixture f;
  // U+0000 is valid UTF-8, so the wire format accepts it in a host name.
  std::string host{"vm\0x", 4};
  ok(write_one(f.store(), "a", 1, {metric_event(t0, host, {{"cpu", dbl(1.0)}})}));
  auto rows = ok(f.store().rollups(b0));
  // NUL separates host and metric in the rollup key, so such a series would
  // be ambiguous (host "vm\0x" + "cpu" vs host "vm" + "x\0cpu"): it gets
  // no rollup (store.hpp), and the event itself is stored.
  CHECK(rows.empty());
  CHECK(scan_all(f.store(), b0).size() == 1);
}

TEST_CASE("store: a float field with an integral value is stored as a float") {
  fixture f;
  // A frame made by hand, as another MessagePack client (the README's Python
  // client, say) sends it: one metric sample at t0 whose field cpu is
  // float 64 50.0 (cb 40 49 00 00 00 00 00 00).
  std::string frame;
  auto byte = [&](unsigned b) { frame.push_back(static_cast<char>(b)); };
  byte(0x95); // batch: array of 5
  byte(0x01); // major 1
  byte(0x00); // minor 0
  byte(0xa1); // source id "s"
  byte('s');
  byte(0x01); // sequence 1
  byte(0x91); // one event
  byte(0x97); // event: array of 7
  byte(0xd3); // time as int 64, big-endian
  for (int i = 7; i >= 0; --i)
    byte(static_cast<unsigned>((static_cast<std::uint64_t>(t0) >> (8 * i))
                               & 0xff));
  byte(0xa0); // index ""
  byte(0xa2); // host "hv"
  byte('h');
  byte('v');
  byte(0xa0); // source ""
  byte(0xa0); // sourcetype ""
  byte(0xc0); // raw nil
  byte(0x81); // one field
  byte(0xa3); // "cpu"
  frame += "cpu";
  byte(0xcb); // float 64 50.0 = 0x4049000000000000
  byte(0x40);
  byte(0x49);
  for (int i = 0; i < 6; ++i)
    byte(0x00);
  auto view = ok(wire::decode(std::move(frame)));
  REQUIRE(view.events().size() == 1);
  const auto* in = view.events()[0].find("cpu");
  REQUIRE(in);
  REQUIRE(std::holds_alternative<double>(*in)); // what the store receives
  storage::incoming_batch b{view.source_id(), view.sequence(), view.events()};
  ok(f.store().write(std::span{&b, 1}));
  auto back = scan_all(f.store(), b0);
  REQUIRE(back.size() == 1);
  const auto* out = back[0].second.find("cpu");
  REQUIRE(out);
  // Regression: msgpack-c 4.x's packer::pack_double writes a double with an
  // integral value as an integer, so 50.0 came back as the integer 50;
  // wire::encode now always writes float 64.
  REQUIRE(std::holds_alternative<double>(*out));
  CHECK(std::get<double>(*out) == 50.0);
}

TEST_CASE("store: large compressible and incompressible blocks scan back") {
  fixture f; // blocks of at most 1024 events
  std::vector<event> evs;
  // 2000 repetitive log lines (two blocks of b0: 1024 + 976 events).
  for (int i = 0; i < 2000; ++i)
    evs.push_back(log_event(
      t0 + i, "web-01",
      "GET /index.html HTTP/1.1 200 OK user=deploy request " + std::to_string(i),
      {{"status", num(200)}, {"user", str("deploy")}}));
  // 30 events of 4 KiB pseudo-random bytes in b0 + 1 (does not compress).
  std::mt19937_64 rng{42};
  for (int i = 0; i < 30; ++i) {
    std::string raw(4096, '\0');
    for (auto& c : raw)
      c = static_cast<char>(rng());
    evs.push_back(log_event(t0 + hour + i, "web-02", raw));
  }
  auto res = ok(write_one(f.store(), "agent", 1, evs));
  CHECK(res.events == 2030);
  auto s0 = scan_all(f.store(), b0);
  auto s1 = scan_all(f.store(), b0 + 1);
  CHECK(events_of(s0) == std::vector<event>(evs.begin(), evs.begin() + 2000));
  CHECK(events_of(s1) == std::vector<event>(evs.begin() + 2000, evs.end()));
  CHECK(ids_of(s0).back() == 1999); // ids 0..1999 for b0, written first
  CHECK(ids_of(s1).front() == 2000);
  // "1999" is only in the last line; "request" in all 2000.
  CHECK(ok(f.store().postings(b0, "1999")) == ids{1999});
  CHECK(ok(f.store().postings(b0, "request")).size() == 2000);
  CHECK(ok(f.store().count(b0, "user", "deploy")) == 2000);
  // A rebuild reads every block back, both kinds.
  auto sums = ok(f.store().summaries(b0));
  REQUIRE_FALSE(f.store().rebuild_summaries());
  CHECK(ok(f.store().summaries(b0)) == sums);
  CHECK(ok(f.store().count(b0 + 1, "host", "web-02")) == 30);
}

TEST_CASE("store: postings span segments of 2^18 ids in order") {
  fixture f;
  // 300,000 events (ids 0..299,999) cross the first segment boundary at
  // 262,144. Every event has "common"; every 1000th also "rare".
  const std::size_t n = 300'000;
  std::vector<std::uint64_t> rare_ids;
  std::uint64_t seq = 0;
  for (std::size_t first = 0; first < n; first += 50'000) {
    std::vector<event> evs;
    for (std::size_t i = first; i < first + 50'000; ++i) {
      bool rare = i % 1000 == 999;
      if (rare)
        rare_ids.push_back(i);
      evs.push_back(log_event(t0, "h", rare ? "common rare" : "common"));
    }
    ok(write_one(f.store(), "seg", ++seq, evs));
  }
  auto common = ok(f.store().postings(b0, "common"));
  REQUIRE(common.size() == n);
  for (std::size_t i = 0; i < n; ++i)
    if (common[i] != i)
      FAIL("id ", i, " is ", common[i]);
  CHECK(ok(f.store().postings(b0, "rare")) == rare_ids);
  CHECK(ok(f.store().postings(b0, "absent")).empty());
}

// -- runs ----------------------------------------------------------------------

namespace {

// Entries of the store's `runs` table in bucket `b` (-1: all); -1 when the
// store has no such table.
long run_keys(fixture& f, std::int64_t b = -1) {
  MDB_txn* t = nullptr;
  REQUIRE(mdb_txn_begin(f.env->handle(), nullptr, MDB_RDONLY, &t) == 0);
  MDB_dbi dbi;
  long n = -1;
  if (mdb_dbi_open(t, "runs", 0, &dbi) == 0) {
    n = 0;
    MDB_cursor* c = nullptr;
    REQUIRE(mdb_cursor_open(t, dbi, &c) == 0);
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      REQUIRE(k.mv_size >= 16);
      auto p = static_cast<const unsigned char*>(k.mv_data);
      std::uint64_t raw = 0;
      for (int i = 0; i < 8; ++i)
        raw = (raw << 8) | p[i];
      auto bucket = static_cast<std::int64_t>(raw ^ (std::uint64_t{1} << 63));
      n += b < 0 || bucket == b;
    }
    mdb_cursor_close(c);
  }
  mdb_txn_abort(t);
  return n;
}

} // namespace

TEST_CASE("store: writes of many terms are stored as runs and read back "
          "exactly, mixed with per-term writes, across segments") {
  // The same 300,000 events (ids cross the segment boundary at 262,144,
  // inside one write) into a store that writes runs for groups of >= 500
  // terms and one that never does; small groups in between take the
  // per-term path in both. Every term's postings equal what was written.
  storage::store_options with_runs, without;
  with_runs.run_min_terms = 500;
  without.run_min_terms = 0;
  fixture fr{with_runs}, fk{without};
  std::map<std::string, ids> want;
  std::mt19937_64 rng{11};
  std::uint64_t id = 0, seq = 0;
  auto group = [&](std::size_t n, std::size_t vocabulary) {
    std::vector<event> evs;
    for (std::size_t i = 0; i < n; ++i, ++id) {
      auto w = "w" + std::to_string(rng() % vocabulary);
      evs.push_back(log_event(t0 + static_cast<time_ns>(id), "web-01",
                              w + " common"));
      want[w].push_back(id);
      want["common"].push_back(id);
    }
    ++seq;
    ok(write_one(fr.store(), "src", seq, evs));
    ok(write_one(fk.store(), "src", seq, evs));
  };
  for (int round = 0; round < 6; ++round) {
    group(49'000, 40'000); // thousands of terms: a run
    group(1'000, 50);      // fewer than 500 terms: per-term keys
  }
  REQUIRE(id == 300'000);
  CHECK(run_keys(fr) > 0);
  CHECK(run_keys(fk) == 0);
  std::size_t checked = 0;
  for (const auto& [term, expected] : want) {
    auto got = ok(fr.store().postings(b0, term));
    if (got != expected) {
      CAPTURE(term);
      CHECK(got == expected);
      CHECK(ok(fk.store().postings(b0, term)) == expected);
      break;
    }
    ++checked;
  }
  CHECK(checked == want.size());
  CHECK(checked > 30'000);
  CHECK(ok(fr.store().postings(b0, "absent")).empty());
  CHECK(ok(fr.store().postings(b0, "w")).empty()); // a prefix of terms
  CHECK(ok(fr.store().postings(b0, "w999999")).empty()); // after them all
  CHECK(ok(fr.store().postings(b0 + 1, "common")).empty());

  // Compaction rewrites the bucket's postings as per-term keys (with new
  // ids: events of a series side by side), drops its runs and counts their
  // entries as the keys they stood for.
  auto r = ok(fr.st->compact(b0));
  REQUIRE(r.done);
  CHECK(run_keys(fr, b0) == 0);
  CHECK(r.postings_before >= want.size());
  std::map<std::uint64_t, std::string> raw;
  for (const auto& [i, e] : scan_all(fr.store(), b0))
    raw[i] = *e.raw;
  REQUIRE(raw.size() == 300'000);
  for (const std::string term : {"w17", "w39999", "w49"}) {
    auto got = ok(fr.store().postings(b0, term));
    CHECK(got.size() == want[term].size());
    for (auto i : got)
      CHECK(raw[i] == term + " common");
  }
  CHECK(ok(fr.store().postings(b0, "common")).size() == 300'000);
}

TEST_CASE("store: drop_before drops a bucket's runs too") {
  storage::store_options so;
  so.run_min_terms = 10;
  fixture f{so};
  std::vector<event> a, b;
  for (int i = 0; i < 100; ++i) {
    a.push_back(log_event(t0 + i, "h", "old" + std::to_string(i)));
    b.push_back(log_event(t0 + 2 * hour + i, "h", "new" + std::to_string(i)));
  }
  ok(write_one(f.store(), "a", 1, a));
  ok(write_one(f.store(), "a", 2, b));
  REQUIRE(run_keys(f, b0) > 0);
  REQUIRE(run_keys(f, b0 + 2) > 0);
  CHECK(ok(f.store().drop_before(t0 + hour)) == 1);
  CHECK(run_keys(f, b0) == 0);
  CHECK(run_keys(f, b0 + 2) > 0);
  CHECK(ok(f.store().postings(b0 + 2, "new42")) == ids{142});
}

TEST_CASE("store: a store from before runs opens, read-only and writable") {
  storage::store_options so;
  so.run_min_terms = 10;
  fixture f{so};
  std::vector<event> evs;
  for (int i = 0; i < 50; ++i)
    evs.push_back(log_event(t0 + i, "h", "word" + std::to_string(i)));
  f.close();
  // A format-1 store: per-term keys only, no runs table, record 1.
  {
    storage::store_options old;
    old.run_min_terms = 0;
    auto env = ok(storage::environment::open(f.dir(), f.env_opts));
    auto s = ok(storage::store::open(env, old));
    ok(write_one(s, "a", 1, evs));
    MDB_txn* t = nullptr;
    REQUIRE(mdb_txn_begin(env.handle(), nullptr, 0, &t) == 0);
    MDB_dbi dbi;
    REQUIRE(mdb_dbi_open(t, "runs", 0, &dbi) == 0);
    REQUIRE(mdb_drop(t, dbi, 1) == 0);
    REQUIRE(mdb_dbi_open(t, "meta", 0, &dbi) == 0);
    MDB_val key{6, const_cast<char*>("format")};
    MDB_val val{8, const_cast<char*>("PLXS\0\0\0\x01")};
    REQUIRE(mdb_put(t, dbi, &key, &val, 0) == 0);
    REQUIRE(mdb_txn_commit(t) == 0);
  }
  {
    storage::environment_options ro;
    ro.read_only = true;
    auto env = ok(storage::environment::open(f.dir(), ro));
    CHECK(env.version() == storage::format_version::v1);
    auto s = ok(storage::store::open(env, so));
    CHECK(ok(s.postings(b0, "word7")) == ids{7});
  }
  f.open(); // writable: upgraded to format 2, the runs table made and used
  CHECK(f.env->version() == storage::format_version::v2);
  CHECK(run_keys(f) == 0);
  std::vector<event> more;
  for (int i = 0; i < 50; ++i)
    more.push_back(log_event(t0 + 100 + i, "h", "word" + std::to_string(i)));
  ok(write_one(f.store(), "a", 2, more));
  CHECK(run_keys(f) > 0);
  CHECK(ok(f.store().postings(b0, "word7")) == ids{7, 57});
}

TEST_CASE("store: runs hold terms with long shared prefixes, of 7 to 9 "
          "bytes and in UTF-8, in buckets written alternately") {
  // The same groups into a store writing runs (>= 10 terms) and one that
  // does not; every term reads back the same from both (and is there).
  // Buckets b0 and b0 + 1 alternate, so each bucket's run numbers have
  // gaps (b0: 0, 2, 4; b0 + 1: 1, 3, 5).
  storage::store_options with_runs, without;
  with_runs.run_min_terms = 10;
  without.run_min_terms = 0;
  fixture fr{with_runs}, fk{without};
  std::set<std::string> words, tags;
  std::uint64_t seq = 0;
  for (int round = 0; round < 6; ++round) {
    auto b = round % 2 == 0 ? t0 : t0 + hour;
    std::vector<event> evs;
    for (int i = 0; i < 300; ++i) {
      auto n = std::to_string((i * 7 + round) % 97);
      const std::string ws[] = {"abcdefg", "abcdefgh", "abcdefghi",
                                "abcdefgh" + n, "größe" + n, "東京" + n};
      const auto& w = ws[(i + round) % 6];
      auto tag = "host-web-000000000000-" + n;
      evs.push_back(log_event(b + i, "h", w + " x", {{"tag", str(tag)}}));
      words.insert(w);
      tags.insert("tag=" + tag);
    }
    ++seq;
    ok(write_one(fr.store(), "src", seq, evs));
    ok(write_one(fk.store(), "src", seq, evs));
  }
  REQUIRE(run_keys(fr, b0) > 0);
  REQUIRE(run_keys(fr, b0 + 1) > 0);
  CHECK(run_keys(fk) == 0);
  std::size_t checked = 0;
  for (auto bucket : {b0, b0 + 1})
    for (const auto* set : {&words, &tags})
      for (const auto& term : *set) {
        CAPTURE(term);
        auto want = ok(fk.store().postings(bucket, term));
        auto got = ok(fr.store().postings(bucket, term));
        CHECK(got == want);
        checked += !want.empty();
      }
  // Most terms occur in both buckets; all of them in one at least.
  CHECK(checked > words.size() + tags.size());
}
