// The search language on a real store: each command, the index and tuple
// paths against full scans, search-time fields, limits and errors.

#include "parallax/pipeline/search.hpp"

#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "temp_dir.hpp"

#include <doctest/doctest.h>

using namespace parallax;
namespace s = parallax::search;

namespace {

constexpr time_ns sec = 1'000'000'000;
constexpr time_ns hour = 3600 * sec;
constexpr time_ns t0 = 472222 * hour; // a bucket start (1 h buckets)

struct store_fixture {
  test::temp_dir tmp;
  std::optional<storage::environment> env;
  std::optional<storage::store> st;
  std::uint64_t seq = 0;

  store_fixture() {
    storage::environment_options eo;
    env.emplace(*storage::environment::open(tmp.path, eo));
    st.emplace(*storage::store::open(*env));
  }

  void write(std::vector<event> evs) {
    std::vector<std::vector<field_view>> fields;
    std::vector<event_view> views;
    fields.reserve(evs.size());
    for (const auto& e : evs) {
      auto& fs = fields.emplace_back();
      for (const auto& f : e.fields)
        fs.push_back({f.name, view(f.value)});
    }
    for (std::size_t i = 0; i < evs.size(); ++i) {
      views.push_back(view_of(evs[i], fields[i]));
    }
    storage::incoming_batch b{"test", ++seq, views};
    REQUIRE(st->write(std::span{&b, 1}));
  }

  s::results run(std::string_view q, s::options o = {}) {
    auto r = s::run(*st, q, o, t0 + 10 * hour);
    std::string context{q};
    if (!r)
      context += ": " + r.error().render();
    INFO(context);
    REQUIRE(r);
    return std::move(*r);
  }

  // The same query with every event read: must agree with the index.
  s::results both(std::string_view q) {
    auto fast = run(q);
    s::options slow;
    slow.accelerate = false;
    auto full = run(q, slow);
    INFO(q);
    CHECK(fast.rows == full.rows);
    return fast;
  }
};

event log(time_ns t, std::string host, std::string st, std::string raw,
          std::vector<field> fs = {}) {
  event e;
  e.time = t;
  e.index = "main";
  e.host = std::move(host);
  e.source = "/var/log/x";
  e.sourcetype = std::move(st);
  e.raw = std::move(raw);
  e.fields = std::move(fs);
  return e;
}

event metric(time_ns t, std::string host, std::string st,
             std::vector<field> fs) {
  event e;
  e.time = t;
  e.index = "main";
  e.host = std::move(host);
  e.source = "libvirt";
  e.sourcetype = std::move(st);
  e.fields = std::move(fs);
  return e;
}

std::string text(const s::row& r, std::string_view name) {
  auto v = r.get(name);
  return v ? s::to_text(*v) : std::string{"<none>"};
}

// Two hours of a small fleet: hypervisor samples, process samples and
// auth lines.
void fleet(store_fixture& f) {
  std::vector<event> evs;
  for (int i = 0; i < 360; ++i) {
    auto t = t0 + i * 20 * sec;
    auto vm = i % 3 == 0 ? "web-01" : (i % 3 == 1 ? "db-02" : "app-03");
    evs.push_back(metric(t, i % 2 ? "kvm-01" : "kvm-02", "hv:libvirt:vm",
                         {{"vm", std::string{vm}},
                          {"cpu_pct", 10.0 + i % 7},
                          {"mem_used_pct", std::int64_t{40 + i % 5}}}));
    evs.push_back(metric(t, vm, "os:process",
                         {{"vm", std::string{vm}},
                          {"process_name", std::string{i % 4 ? "nginx" : "java"}},
                          {"user", std::string{i % 5 ? "www-data" : "Deploy"}},
                          {"rss", std::int64_t{1000 + i}}}));
    if (i % 10 == 0)
      evs.push_back(log(t, vm, "os:auth",
                        i % 20 ? "sshd[42]: Accepted publickey for deploy from "
                                 "10.0.1.2 port 5050"
                               : "sudo: alice : TTY=pts/0 ; COMMAND=/bin/ls",
                        {{"vm", std::string{vm}}}));
  }
  f.write(std::move(evs));
}

} // namespace

TEST_CASE("search: a bad query points at its column") {
  struct bad {
    const char* q;
    std::size_t column;
    const char* says;
  };
  for (auto b : {bad{"foo | stats bogus(x)", 12, "unknown aggregation"},
                 bad{"(a OR b", 0, "never closed"},
                 bad{"x= y", 2, "expected a value"},
                 bad{"a | frobnicate", 4, "unknown command"},
                 bad{"a | where", 9, "needs a condition"},
                 bad{"a | eval x=", 11, "expected an expression"},
                 bad{"a | rex \"(no group)\"", 8, "named group"},
                 bad{"a | eval y=nosuch(1)", 11, "unknown function"},
                 bad{"a OR", 2, "OR needs"},
                 bad{"(a OR earliest=-1h)", 6, "whole search"},
                 bad{"a | timechart span=fast count", 19, "not a duration"}}) {
    auto q = s::parse(b.q, t0);
    INFO(b.q);
    REQUIRE_FALSE(q);
    CHECK(q.error().code == ec::bad_query);
    CHECK(q.error().offset == b.column);
    CHECK(q.error().message.find(b.says) != std::string::npos);
  }
  auto q = s::parse("x= y", t0);
  CHECK(s::render_error("x= y", q.error())
        == "x= y\n  ^ expected a value after x=");
}

TEST_CASE("search: times") {
  auto now = t0 + 90 * 60 * sec + 17 * sec; // 01:30:17 into the bucket
  CHECK(*s::parse_time("now", now) == now);
  CHECK(*s::parse_time("-15m", now) == now - 15 * 60 * sec);
  CHECK(*s::parse_time("-1h@h", now) == t0);
  CHECK(*s::parse_time("@d", now) == (now / (86400 * sec)) * 86400 * sec);
  CHECK(*s::parse_time("1700000000", now) == 1'700'000'000 * sec);
  CHECK(*s::parse_time("2023-11-14T22:13:20Z", now) == 1'700'000'000 * sec);
  CHECK_FALSE(s::parse_time("yesterday", now));
  auto q = s::parse("error earliest=-1h latest=now", now);
  REQUIRE(q);
  CHECK(*q->earliest == now - hour);
  CHECK(*q->latest == now);
  CHECK(q->filter.k == s::search_node::kind::keyword);
}

TEST_CASE("search: keywords, phrases and fields, from the index and by "
          "scanning alike") {
  store_fixture f;
  fleet(f);
  auto r = f.both("accepted");
  CHECK(r.rows.size() == 18);
  CHECK(r.stats.buckets_from_postings == 2);
  CHECK(r.stats.events_read == 18); // only the events the index named
  CHECK(text(r.rows.front(), "vm") == "app-03"); // i = 350
  CHECK(s::to_number(*r.rows.front().get("_time"))
        > s::to_number(*r.rows.back().get("_time"))); // newest first
  CHECK(f.both("\"publickey for deploy\"").rows.size() == 18);
  CHECK(f.both("\"for deploy from\"").rows.size() == 18);
  // "10.0" is not a term of "10.0.1.2" (its whole token and segments are).
  CHECK(f.both("\"for deploy from 10.0\"").rows.empty());
  CHECK(f.both("\"deploy for\"").rows.empty());
  CHECK(f.both("10.0.1.2").rows.size() == 18);
  CHECK(f.both("acc*").rows.size() == 18);
  CHECK(f.both("sudo OR accepted").rows.size() == 36);
  CHECK(f.both("NOT accepted sourcetype=os:auth").rows.size() == 18);
  CHECK(f.both("vm=WEB-01 sourcetype=os:process").rows.size() == 120);
  CHECK(f.both("user=deploy").rows.size() == 72); // case-insensitive
  CHECK(f.both("user!=deploy").rows.size() == 288);
  CHECK(f.both("NOT user=deploy").rows.size() == 360 + 36 + 288);
  CHECK(f.both("vm IN (web-01, \"db-02\")").rows.size() == 2 * (240 + 12));
  CHECK(f.both("sourcetype=hv:*").rows.size() == 360);
  CHECK(f.both("sourcetype=os:* host=web-*").rows.size() == 120 + 6 + 6);
  CHECK(f.both("cpu_pct>=15").rows.size() == 102); // i % 7 in {5, 6}
  CHECK(f.both("mem_used_pct=42").rows.size() == 72);
  CHECK(f.both("rss<1010").rows.size() == 10);
  CHECK(f.both("(vm=web-01 OR vm=db-02) process_name=java").rows.size()
        == 60);
  CHECK(f.both("nosuchword").rows.empty());
  auto hv = f.run("sourcetype=hv:*");
  CHECK(hv.stats.events_read == 360);
}

TEST_CASE("search: a phrase needs each of its terms, also beside tokens of "
          "the same length") {
  store_fixture f;
  f.write({log(t0, "h", "x", "alpha beta gamma abc")});
  CHECK(f.both("\"beta gamma\"").rows.size() == 1);
  CHECK(f.both("\"Beta GAMMA abc\"").rows.size() == 1);
  // "gam" is in the text but is no term of it; "abc" has its length.
  CHECK(f.both("\"beta gam\"").rows.empty());
}

TEST_CASE("search: time ranges prune buckets") {
  store_fixture f;
  fleet(f);
  s::options o;
  o.earliest = t0 + hour;
  auto r = f.run("sourcetype=hv:libvirt:vm", o);
  CHECK(r.rows.size() == 180);
  CHECK(r.stats.buckets == 1);
  auto q = f.both("sourcetype=hv:libvirt:vm earliest=1699999200 "
                  "latest=1700000400"); // 20 minutes
  CHECK(q.rows.size() == 60);
}

TEST_CASE("search: stats count by default fields comes from the tuple "
          "table") {
  store_fixture f;
  fleet(f);
  auto r = f.both("* | stats count by sourcetype, host");
  CHECK(r.stats.buckets_from_tuples == 2);
  CHECK(r.stats.events_read == 0);
  REQUIRE(r.rows.size() == 2 + 3 + 3);
  CHECK(text(r.rows[0], "sourcetype") == "hv:libvirt:vm");
  CHECK(text(r.rows[0], "host") == "kvm-01");
  CHECK(text(r.rows[0], "count") == "180");
  CHECK(r.columns == std::vector<std::string>{"sourcetype", "host", "count"});
  auto filtered = f.both("sourcetype=os:* NOT host=web-01 | stats count as n "
                         "by host");
  CHECK(filtered.stats.events_read == 0);
  REQUIRE(filtered.rows.size() == 2);
  CHECK(text(filtered.rows[0], "n") == "132");
  auto top = f.both("* | top limit=2 sourcetype");
  CHECK(top.stats.events_read == 0);
  REQUIRE(top.rows.size() == 2);
  CHECK(text(top.rows[0], "count") == "360");
  // A partial bucket at the edge of the range is read.
  s::options o;
  o.earliest = t0 + 30 * 60 * sec;
  auto edge = f.run("* | stats count", o);
  CHECK(edge.stats.buckets_from_tuples == 1);
  CHECK(edge.stats.buckets_scanned == 1);
  CHECK(text(edge.rows[0], "count") == std::to_string(3 * 90 * 2 + 3 * 9));
}

// Rows equal up to rounding in the last bits (sums folded in another order).
void check_close(const std::vector<s::row>& a, const std::vector<s::row>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].cells.size() == b[i].cells.size());
    for (std::size_t j = 0; j < a[i].cells.size(); ++j) {
      const auto& [name, x] = a[i].cells[j];
      CAPTURE(name);
      CHECK(name == b[i].cells[j].first);
      auto nx = s::to_number(x), ny = s::to_number(b[i].cells[j].second);
      if (nx && ny)
        CHECK(*nx == doctest::Approx(*ny).epsilon(1e-9));
      else
        CHECK(s::to_text(x) == s::to_text(b[i].cells[j].second));
    }
  }
}

TEST_CASE("search: metric stats come from rollups when they are exact") {
  store_fixture f;
  fleet(f);
  s::options slow;
  slow.accelerate = false;
  for (auto q : {"host=kvm-* | stats count(cpu_pct), avg(cpu_pct), "
                 "min(mem_used_pct), max(cpu_pct), sum(rss), "
                 "stdev(mem_used_pct) by host",
                 "* | stats avg(rss) as rss",
                 "NOT host=kvm-02 | timechart span=10m max(cpu_pct) by host",
                 "host=web-01 | timechart span=5m avg(rss)"}) {
    CAPTURE(q);
    auto fast = f.run(q);
    CHECK(fast.stats.buckets_from_rollups == 2);
    CHECK(fast.stats.events_read == 0);
    check_close(fast.rows, f.run(q, slow).rows);
  }
  auto r = f.run("host=kvm-* | stats avg(cpu_pct) by host");
  REQUIRE(r.rows.size() == 2);
  CHECK(*s::to_number(*r.rows[0].get("avg(cpu_pct)"))
        == doctest::Approx(13.0).epsilon(0.01));
  // A field with a text value somewhere: the events are read.
  f.write({log(t0 + 100 * sec, "kvm-01", "os:syslog", "odd",
               {{"cpu_pct", std::string{"12"}}})});
  auto text = f.run("host=kvm-01 | stats avg(cpu_pct)");
  CHECK(text.stats.buckets_from_rollups == 1); // the second hour
  CHECK(text.stats.events_read > 0);
  check_close(text.rows, f.run("host=kvm-01 | stats avg(cpu_pct)", slow).rows);
  // Filters on other fields, and aggregations rollups cannot give, read.
  CHECK(f.run("sourcetype=hv:libvirt:vm | stats avg(cpu_pct)")
          .stats.buckets_from_rollups
        == 0);
  CHECK(f.run("* | stats median(cpu_pct)").stats.buckets_from_rollups == 0);
}

TEST_CASE("search: stats functions") {
  store_fixture f;
  fleet(f);
  auto r = f.both("sourcetype=hv:libvirt:vm | stats count, dc(vm) as vms, "
                  "sum(mem_used_pct), avg(cpu_pct), min(cpu_pct), "
                  "max(cpu_pct), stdev(mem_used_pct), median(cpu_pct), "
                  "perc90(cpu_pct), earliest(cpu_pct), latest(vm), values(vm)");
  REQUIRE(r.rows.size() == 1);
  const auto& row = r.rows[0];
  CHECK(text(row, "count") == "360");
  CHECK(text(row, "vms") == "3");
  CHECK(text(row, "sum(mem_used_pct)") == "15120");
  CHECK(text(row, "min(cpu_pct)") == "10");
  CHECK(text(row, "max(cpu_pct)") == "16");
  CHECK(text(row, "median(cpu_pct)") == "13");
  CHECK(text(row, "perc90(cpu_pct)") == "16");
  CHECK(text(row, "earliest(cpu_pct)") == "10");
  CHECK(text(row, "latest(vm)") == "app-03");
  CHECK(text(row, "values(vm)") == "app-03 db-02 web-01");
  CHECK(*s::to_number(*row.get("stdev(mem_used_pct)"))
        == doctest::Approx(1.4162).epsilon(0.001));
  auto none = f.both("nosuchword | stats count, avg(x)");
  REQUIRE(none.rows.size() == 1);
  CHECK(text(none.rows[0], "count") == "0");
  CHECK(text(none.rows[0], "avg(x)") == "");
}

TEST_CASE("search: one query over hypervisor and guest data") {
  store_fixture f;
  fleet(f);
  auto r = f.both("vm=web-01 (sourcetype=hv:* OR sourcetype=os:process) | "
                  "timechart span=20m avg(mem_used_pct) count by sourcetype");
  REQUIRE(r.rows.size() == 6);
  CHECK(r.columns
        == std::vector<std::string>{"_time", "avg(mem_used_pct): hv:libvirt:vm",
                                    "count: hv:libvirt:vm",
                                    "avg(mem_used_pct): os:process",
                                    "count: os:process"});
  CHECK(text(r.rows[0], "count: os:process") == "20");
  CHECK(text(r.rows[0], "avg(mem_used_pct): os:process") == "");
  CHECK(text(r.rows[0], "_time") == std::to_string(t0 / sec));
}

TEST_CASE("search: streaming and reordering commands") {
  store_fixture f;
  fleet(f);
  auto r = f.both("sourcetype=os:process | eval mb=round(rss/1000, 1), "
                  "tag=if(user=\"Deploy\", \"admin\", \"svc\") . \"-\" . "
                  "lower(process_name) | where mb>1.3 AND tag=\"svc-nginx\" | "
                  "rename process_name AS proc | table vm, proc, mb, tag | "
                  "sort -mb | head 3");
  REQUIRE(r.rows.size() == 3);
  CHECK(r.columns == std::vector<std::string>{"vm", "proc", "mb", "tag"});
  CHECK(text(r.rows[0], "mb") == "1.4");
  CHECK(text(r.rows[0], "tag") == "svc-nginx");
  auto d = f.both("sourcetype=os:process | dedup vm | fields vm");
  REQUIRE(d.rows.size() == 3);
  CHECK(text(d.rows[0], "vm") == "app-03"); // newest first
  auto t = f.both("sourcetype=os:process | tail 2");
  REQUIRE(t.rows.size() == 2);
  CHECK(text(t.rows[0], "rss") == "1000");
  auto rex = f.both("sourcetype=os:auth | rex \"for (?<who>\\w+) from "
                    "(?<ip>[\\d.]+)\" | stats count by who, ip");
  REQUIRE(rex.rows.size() == 1);
  CHECK(text(rex.rows[0], "ip") == "10.0.1.2");
  CHECK(text(rex.rows[0], "count") == "18");
  auto rare = f.both("sourcetype=os:process | rare process_name");
  REQUIRE(rare.rows.size() == 2);
  CHECK(text(rare.rows[0], "process_name") == "java");
  CHECK(text(rare.rows[0], "percent") == "25");
  auto cs = f.both("sourcetype=os:process | eval c=case(rss<1100, \"low\", "
                   "rss<1300, \"mid\", true(), \"high\"), "
                   "x=coalesce(nosuch, substr(vm, 1, 3)) | stats count by c, x");
  CHECK(cs.rows.size() == 9);
}

TEST_CASE("search: search-time fields from the configuration") {
  store_fixture f;
  fleet(f);
  auto rules = s::compile_late_rules(
    "os:auth", {"(?<auth_user>\\w+) from (?<src_ip>[\\d.]+)"},
    {"auth_user=USER"}, {"ip_class=if(like(src_ip, \"10.%\"), \"internal\", "
                         "\"external\")"});
  REQUIRE(rules);
  s::options o;
  o.late.rules.push_back(std::move(*rules));
  o.late.late_fields = {"auth_user", "src_ip", "USER", "ip_class"};
  auto r = f.run("USER=deploy ip_class=internal | stats count by src_ip", o);
  REQUIRE(r.rows.size() == 1);
  CHECK(text(r.rows[0], "count") == "18");
  // Changing the rules needs no re-indexing.
  auto bad = s::compile_late_rules("os:auth", {"(unclosed"}, {}, {});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("parallax.sourcetypes.\"os:auth\".extract[0]")
        != std::string::npos);
  CHECK_FALSE(s::compile_late_rules("x", {}, {}, {"y=1 +"}));
}

TEST_CASE("search: bounds") {
  store_fixture f;
  fleet(f);
  s::options o;
  o.max_memory = 4096;
  auto r = s::run(*f.st, "sourcetype=os:process | sort rss", o, t0);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ec::query_limit);
  std::atomic<bool> cancel{true};
  s::options c;
  c.cancel = &cancel;
  c.accelerate = false;
  std::vector<event> many;
  for (int i = 0; i < 5000; ++i)
    many.push_back(log(t0 + i * sec / 10, "h", "x", "word"));
  f.write(std::move(many));
  auto x = s::run(*f.st, "word", c, t0);
  REQUIRE_FALSE(x);
  CHECK(x.error().code == ec::query_cancelled);
  s::options lim;
  lim.max_results = 7;
  std::size_t streamed = 0;
  auto y = s::run(*f.st, "word", lim, t0,
                  [&](const std::vector<s::row>& rows) {
                    streamed += rows.size();
                  });
  REQUIRE(y);
  CHECK(y->rows.size() == 7);
  CHECK(streamed == 7);
  CHECK(y->stats.events_read == 5000); // one bucket: the index named them all
  // Rows stream early only when no later command changes them.
  std::size_t early = 0;
  auto z = s::run(*f.st, "word | head 3 | eval x=1", {}, t0,
                  [&](const std::vector<s::row>& rows) {
                    early += rows.size();
                  });
  REQUIRE(z);
  CHECK(early == 0);
  CHECK(text(z->rows[0], "x") == "1");
}

TEST_CASE("search: dedup keeps the newest row per key in each bucket, so a "
          "wide range holds only one row per key") {
  store_fixture f;
  // 20 hours of samples of 4 pids, one every 10 s: 28,800 rows.
  std::vector<event> evs;
  for (int i = 0; i < 7200; ++i)
    for (std::int64_t pid : {1, 2, 3, 4})
      evs.push_back(log(t0 + i * 10 * sec, "web-01", "os:process",
                        "sample " + std::to_string(i),
                        {{"pid", pid}, {"i", std::int64_t{i}}}));
  f.write(std::move(evs));
  // Every row at once would be megabytes; one per pid and bucket is not.
  s::options o;
  o.max_memory = 256 * 1024;
  auto r = f.run("sourcetype=os:process | dedup pid | sort pid", o);
  REQUIRE(r.rows.size() == 4);
  for (std::size_t k = 0; k < 4; ++k) {
    CHECK(text(r.rows[k], "pid") == std::to_string(k + 1));
    CHECK(text(r.rows[k], "i") == "7199"); // the newest of each
  }
  // The same without the index, and a dedup that is not right after the
  // map phase's commands, agree.
  s::options slow;
  slow.accelerate = false;
  CHECK(f.run("sourcetype=os:process | dedup pid | sort pid", slow).rows
        == r.rows);
  auto late = f.run("sourcetype=os:process | sort -i | dedup pid | sort pid");
  CHECK(late.rows == r.rows);
}
