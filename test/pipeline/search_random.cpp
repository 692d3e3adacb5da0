// The search engine against an independent brute-force evaluator
// (search_reference.hpp) on seeded random data and seeded random queries:
// the accelerated path (index, summaries, tuple counts), the plain scan
// (options.accelerate = false) and the reference must all agree.
//
// A failure prints the data seed, the query number and text, and a short
// diff; each query's generator is seeded from (data seed, query number), so
// one case can be replayed alone.

#include "parallax/pipeline/search.hpp"

#include "parallax/schemas/wire.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"

#include "search_reference.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace parallax;

namespace {

using parallax::test::temp_dir;
namespace ref = parallax::test::ref;

constexpr time_ns sec = 1'000'000'000;
constexpr time_ns ms = 1'000'000;
// 1'700'000'000 s is 0.2 h into bucket 472222: the data starts mid-bucket.
constexpr time_ns t_start = 1'700'000'000 * sec;
constexpr time_ns width = 6 * 3600 * sec;
constexpr time_ns t_now = t_start + width + 3600 * sec;

// -- random helpers --------------------------------------------------------------

struct rnd {
  std::mt19937_64 g;
  explicit rnd(std::uint64_t seed) : g{seed} {
  }
  // [0, n)
  std::uint64_t below(std::uint64_t n) {
    return g() % n;
  }
  // [a, b]
  std::int64_t between(std::int64_t a, std::int64_t b) {
    return a + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(b - a) + 1));
  }
  bool chance(int percent) {
    return below(100) < static_cast<std::uint64_t>(percent);
  }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
};

// -- the data --------------------------------------------------------------------

const std::vector<std::string> indexes{"main", "os", "metrics"};
const std::vector<std::string> hosts{"web-01", "WEB-02", "db-01", "hv-1",
                                     "hv-2"};
const std::vector<std::string> sources{"/var/log/auth.log",
                                       "libvirt:qemu:///system", "/proc",
                                       "collectd:cpu"};
const std::vector<std::string> sourcetypes{"hv:libvirt:vm", "hv:libvirt:host",
                                           "os:process", "os:auth",
                                           "collectd"};
const std::vector<std::string> vms{"web-01", "Web-01",  "db-7",
                                   "DB-7",   "cache-3", "42"};
const std::vector<std::string> users{"alice", "Alice", "bob",
                                     "root",  "ROOT",  "svc_backup"};
const std::vector<std::string> procs{"sshd",     "nginx", "Nginx", "postgres",
                                     "qemu-kvm", "042"};
const std::vector<std::string> words{
  "error",      "Error",     "ERROR",      "failed",      "login",
  "session",    "opened",    "closed",     "for",         "user=alice",
  "user=Bob",   "10.0.1.2",  "10.0.1.3",   "web-01",      "db-7",
  "sshd[123]:", "GET",       "/index.html", "timeout",    "OK",
  "ok",         "disk",      "cpu",        "42",          "Accepted",
  "from",       "WEB-01",    "a.b-c_d",    "tokens",      "errors",
  "relogin",    "Opened",    "Größe",      "GRÖßE",
  // Longer than max_term_bytes: not a term itself, its segments are.
  std::string(130, 'x') + "-tail"};

value str(std::string s) {
  return value{std::in_place_index<0>, std::move(s)};
}
value num(std::int64_t i) {
  return value{std::in_place_index<1>, i};
}
value dbl(double d) {
  return value{std::in_place_index<2>, d};
}

std::string two_decimals(double d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", d);
  return buf;
}

std::vector<event> make_events(std::uint64_t seed, std::size_t n) {
  rnd r{seed};
  std::vector<event> out;
  std::set<time_ns> used;
  for (std::size_t i = 0; i < n; ++i) {
    event e;
    // Distinct millisecond times, but a few exact ties.
    if (!out.empty() && r.chance(3)) {
      e.time = out[r.below(out.size())].time;
    } else {
      do
        e.time = t_start + r.between(0, width / ms - 1) * ms;
      while (!used.insert(e.time).second);
    }
    bool metric = r.chance(25);
    e.index = metric ? "metrics" : r.pick(indexes);
    e.host = r.pick(hosts);
    e.source = r.pick(sources);
    e.sourcetype = r.pick(sourcetypes);
    e.fields.push_back({"eid", num(static_cast<std::int64_t>(i))});
    if (!metric) {
      std::string raw;
      auto k = r.between(1, 8);
      for (std::int64_t w = 0; w < k; ++w) {
        if (w)
          raw += ' ';
        raw += r.pick(words);
      }
      e.raw = raw;
    }
    if (r.chance(3)) // not the event's own: searches must not see it
      e.fields.push_back({r.chance(50) ? "sourcetype" : "host",
                          str("fake:" + r.pick(hosts))});
    if (r.chance(60))
      e.fields.push_back({"vm", str(r.pick(vms))});
    if (r.chance(50))
      e.fields.push_back({"user", str(r.pick(users))});
    if (r.chance(40))
      e.fields.push_back({"process_name", str(r.pick(procs))});
    if (r.chance(50)) {
      double cpu = static_cast<double>(r.between(0, 10000)) / 100;
      // Numbers as text only early on: later buckets have numbers alone,
      // so rollups can answer there and must not in the early ones.
      if (r.chance(5) && e.time < t_start + width / 4)
        e.fields.push_back({"cpu_pct", str(two_decimals(cpu))});
      else
        e.fields.push_back({"cpu_pct", dbl(cpu)});
    }
    if (r.chance(40))
      e.fields.push_back({"rss", num(r.between(1000, 1'000'000))});
    if (r.chance(50)) {
      auto pid = r.between(1, 5000);
      if (r.chance(10) && e.time < t_start + width / 4)
        e.fields.push_back({"pid", str(std::to_string(pid))});
      else
        e.fields.push_back({"pid", num(pid)});
    }
    out.push_back(std::move(e));
  }
  return out;
}

// A real store in a temp dir holding `events`, written in many small write
// groups in random order, as the pipeline would.
struct data {
  temp_dir tmp;
  std::optional<storage::environment> env;
  std::optional<storage::store> st;
  std::vector<event> events;

  data(std::uint64_t seed, std::size_t n, storage::store_options so,
       bool rebuild = false, bool compact = false) {
    events = make_events(seed, n);
    auto e = storage::environment::open(tmp.path / "store");
    REQUIRE(e);
    env.emplace(std::move(*e));
    auto s = storage::store::open(*env, so);
    REQUIRE(s);
    st.emplace(std::move(*s));
    auto order = events;
    rnd r{seed ^ 0x5eed};
    std::shuffle(order.begin(), order.end(), r.g);
    std::uint64_t seq = 0;
    for (std::size_t i = 0; i < order.size();) {
      auto k = std::min<std::size_t>(order.size() - i,
                                     static_cast<std::size_t>(r.between(1, 300)));
      wire::batch b{"gen", ++seq, {order.begin() + static_cast<std::ptrdiff_t>(i),
                                   order.begin() + static_cast<std::ptrdiff_t>(i + k)}};
      auto v = wire::decode(wire::encode(b));
      REQUIRE(v);
      storage::incoming_batch in{v->source_id(), v->sequence(), v->events()};
      auto w = st->write(std::span{&in, 1});
      INFO((w ? std::string{} : w.error().render()));
      REQUIRE(w);
      i += k;
    }
    if (rebuild) {
      auto err = st->rebuild_summaries();
      INFO(err.render());
      REQUIRE_FALSE(err);
    }
    if (compact) {
      auto all = st->buckets();
      REQUIRE(all);
      for (const auto& b : *all) {
        auto c = st->compact(b.id);
        INFO((c ? std::string{} : c.error().render()));
        REQUIRE(c);
        REQUIRE(c->done);
      }
    }
  }
};

// -- the queries -------------------------------------------------------------------

struct query_gen {
  rnd r;
  const std::vector<event>& events;

  std::string cased(const std::string& s) {
    // Sometimes change the case: comparisons are case-insensitive.
    if (!r.chance(20))
      return s;
    std::string out = s;
    for (auto& c : out)
      if (r.chance(50))
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      else
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  }

  std::string keyword() {
    static const std::vector<std::string> ks{
      "error", "ERROR",    "failed",     "login",  "session", "10.0.1.2",
      "10.0.1.*", "web-01", "web*",      "*01",    "01",      "alice",
      "42",    "ok",       "OK",         "sess*",  "*ed",     "d*k",
      "10",    "sshd",     "123",        "index.html", "html", "timeout",
      "nomatch", "user",   "*ccept*",    "a.b-c_d", "c_d",    "b",
      "*ok*",  "größe", "GRÖßE", "gr*e", "tail", "*tail", "xxx*", "x*-tail"};
    return cased(r.pick(ks));
  }

  std::string phrase() {
    static const std::vector<std::string> ps{
      "session opened", "user=alice", "failed login", "web-01",
      "10.0.1.2",       "error for",  "GET /index.html", "login from",
      "OK",             "ok ok",      "cpu disk",   "ok tokens",
      "größe",          "error Größe",
      std::string(130, 'x') + "-tail", "x-tail", std::string(129, 'x')};
    return "\"" + cased(r.pick(ps)) + "\"";
  }

  // A string field and a value for it (maybe a wildcard).
  std::pair<std::string, std::string> string_pair(bool allow_wildcard) {
    static const std::vector<std::string> vm_w{"web*", "*-7", "DB*", "*"};
    static const std::vector<std::string> user_w{"a*", "*OO*", "*e"};
    static const std::vector<std::string> proc_w{"ng*", "42", "*kvm"};
    static const std::vector<std::string> host_w{"web*", "hv-*", "*-0*"};
    static const std::vector<std::string> st_w{"hv:*", "os:*", "*:vm",
                                               "hv:libvirt:*"};
    static const std::vector<std::string> idx_w{"m*", "*s"};
    if (r.chance(4))
      return {r.chance(50) ? "sourcetype" : "host",
              r.chance(50) ? "fake:*" : "fake:" + r.pick(hosts)};
    auto w = allow_wildcard && r.chance(30);
    switch (r.below(7)) {
      case 0:
        return {"vm", w ? r.pick(vm_w) : cased(r.pick(vms))};
      case 1:
        return {"user", w ? r.pick(user_w) : cased(r.pick(users))};
      case 2:
        return {"process_name", w ? r.pick(proc_w) : cased(r.pick(procs))};
      case 3:
        return {"host", w ? r.pick(host_w) : cased(r.pick(hosts))};
      case 4:
        return {"sourcetype", w ? r.pick(st_w) : cased(r.pick(sourcetypes))};
      case 5:
        return {"index", w ? r.pick(idx_w) : cased(r.pick(indexes))};
      default:
        // Sources hold `/` and `:`: quoted, and never with a wildcard.
        return {"source", "\"" + r.pick(sources) + "\""};
    }
  }

  // A value of a numeric field: one that occurs, or a random one.
  std::pair<std::string, std::string> number_pair() {
    static const std::vector<std::string> fs{"cpu_pct", "rss", "pid"};
    auto f = r.pick(fs);
    if (r.chance(50)) {
      for (int tries = 0; tries < 20; ++tries) {
        const auto& e = events[r.below(events.size())];
        if (auto* v = e.find(f))
          return {f, v->index() == 2 ? two_decimals(std::get<2>(*v))
                                     : ref::text_of(*v)};
      }
    }
    if (f == "cpu_pct")
      return {f, two_decimals(static_cast<double>(r.between(0, 10000)) / 100)};
    if (f == "rss")
      return {f, std::to_string(r.between(1000, 1'000'000))};
    if (r.chance(10))
      return {f, "1*"}; // a wildcard on an integer field: compared as text
    return {f, std::to_string(r.between(1, 5000))};
  }

  std::string compare() {
    auto [f, v] = string_pair(true);
    return f + (r.chance(25) ? "!=" : "=") + v;
  }

  std::string numeric() {
    static const std::vector<std::string> ops{"=", "!=", "<", "<=", ">", ">="};
    auto [f, v] = number_pair();
    auto op = v.find('*') != std::string::npos ? std::string{"="} : r.pick(ops);
    return f + op + v;
  }

  std::string in_list() {
    auto [f, v] = string_pair(true);
    std::string s = f + " IN (" + v;
    auto k = r.between(1, 3);
    for (std::int64_t i = 0; i < k; ++i) {
      // More values of the same field.
      for (int tries = 0; tries < 20; ++tries) {
        auto [f2, v2] = string_pair(true);
        if (f2 == f) {
          s += (r.chance(50) ? ", " : " ") + v2;
          break;
        }
      }
    }
    return s + ")";
  }

  std::string special() {
    static const std::vector<std::string> ops{"<", "<=", ">", ">=", "!="};
    static const std::vector<std::string> raws{"*alice*", "*ok", "*ERROR*",
                                               "*-tail*", "*Größe*"};
    if (r.chance(50))
      return "_time" + r.pick(ops) + epoch();
    return std::string{"_raw"} + (r.chance(30) ? "!=" : "=") + r.pick(raws);
  }

  std::string atom(int depth) {
    if (r.chance(3))
      return special();
    auto x = r.below(100);
    if (x < 25)
      return keyword();
    if (x < 33)
      return phrase();
    if (x < 63)
      return compare();
    if (x < 78)
      return numeric();
    if (x < 86)
      return in_list();
    if (x < 93 || depth >= 2)
      return "NOT " + atom(depth + 1);
    return "(" + clause(depth + 1) + ")";
  }

  std::string clause(int depth) {
    auto n = r.between(1, depth == 0 ? 3 : 2);
    std::string s = atom(depth);
    for (std::int64_t i = 1; i < n; ++i) {
      auto j = r.below(3);
      s += j == 0 ? " " : j == 1 ? " AND " : " OR ";
      s += atom(depth);
    }
    return s;
  }

  std::string epoch() {
    auto t = t_start / sec + r.between(-600, width / sec + 600);
    return std::to_string(t);
  }

  // A filter on host alone with metric statistics: what rollups answer.
  std::string metric_query() {
    static const std::vector<std::string> filters{
      "*", "host=hv-1", "host=web*", "NOT host=db-01",
      "host IN (web-01, hv-*)", "host=WEB-02 OR host=db-01"};
    static const std::vector<std::string> tails{
      " | stats avg(cpu_pct) max(rss) min(cpu_pct) sum(rss) count(pid) by "
      "host",
      " | stats avg(cpu_pct) sum(rss) max(pid)",
      " | timechart span=30m max(cpu_pct)",
      " | timechart span=1h avg(rss) count(cpu_pct)"};
    return r.pick(filters) + r.pick(tails);
  }

  std::string make() {
    if (r.chance(15))
      return metric_query();
    std::string q = r.chance(5) ? std::string{"*"} : clause(0);
    // latest= must be after earliest= (else the query is refused).
    auto lo = epoch(), hi = epoch();
    if (std::stoll(lo) > std::stoll(hi))
      std::swap(lo, hi);
    if (lo == hi)
      hi = std::to_string(std::stoll(hi) + 1);
    auto x = r.below(100);
    if (x < 12)
      q += " earliest=" + lo;
    else if (x < 24)
      q += " latest=" + hi;
    else if (x < 30)
      q += " earliest=" + lo + " latest=" + hi;
    else if (x < 33)
      q = "earliest=" + lo + " " + q + " latest=" + hi;
    static const std::vector<std::string> tails{
      "",
      "",
      "",
      " | head 7",
      " | table eid vm host",
      " | table eid user cpu_pct | head 7",
      " | stats count",
      " | stats count by sourcetype, host",
      " | stats count by vm",
      " | stats dc(user) sum(cpu_pct) max(rss) by host",
      " | stats avg(cpu_pct) min(pid) count by sourcetype",
      " | timechart span=30m count",
      " | stats count by index",
      " | stats count(vm) dc(process_name) by sourcetype",
    };
    return q + r.pick(tails);
  }
};

// -- comparing ------------------------------------------------------------------

bool is_null(const search::val* v) {
  if (!v || std::holds_alternative<std::monostate>(*v))
    return true;
  auto* s = std::get_if<std::string>(v);
  return s && s->empty();
}

std::string show(const search::val* v) {
  if (!v)
    return "<missing>";
  if (std::holds_alternative<std::monostate>(*v))
    return "<null>";
  return "'" + search::to_text(*v) + "'";
}

std::optional<double> number(const search::val* v) {
  if (!v)
    return std::nullopt;
  if (auto* d = std::get_if<double>(v))
    return *d;
  if (auto* s = std::get_if<std::string>(v))
    return ref::number_of(std::string_view{*s});
  return std::nullopt;
}

// Values agree: both null, numbers within 1e-9 relative, or equal text.
bool same(const search::val* a, const search::val* b, double abs_tol = 0) {
  if (is_null(a) || is_null(b))
    return is_null(a) && is_null(b);
  auto x = number(a), y = number(b);
  if (x && y) {
    auto d = std::fabs(*x - *y);
    return d <= abs_tol
           || d <= 1e-9 * std::max({1.0, std::fabs(*x), std::fabs(*y)});
  }
  return search::to_text(*a) == search::to_text(*b);
}

std::string row_text(const search::row& r) {
  std::string s = "{";
  for (const auto& [k, v] : r.cells)
    s += k + "=" + show(&v) + " ";
  return s + "}";
}

// Events mode: `got` must be some `head` newest of `want.matched` (all of
// them without a head), newest first, with the right cells.
std::string diff_events(const search::results& got, const ref::outcome& want) {
  std::ostringstream d;
  if (!got.events)
    return "expected events, got a table of " + std::to_string(got.rows.size())
           + " rows";
  std::map<std::int64_t, const ref::stored*> by_eid;
  for (const auto* s : want.matched)
    by_eid[std::get<1>(*s->e.find("eid"))] = s;
  auto expected = want.matched.size();
  if (want.head)
    expected = std::min(expected, *want.head);
  std::set<std::int64_t> seen;
  time_ns last = std::numeric_limits<time_ns>::max();
  int problems = 0;
  for (std::size_t i = 0; i < got.rows.size() && problems < 5; ++i) {
    const auto& row = got.rows[i];
    auto eid = number(row.get("eid"));
    if (!eid) {
      d << "row " << i << " has no eid: " << row_text(row) << "\n";
      ++problems;
      continue;
    }
    auto id = static_cast<std::int64_t>(*eid);
    auto it = by_eid.find(id);
    if (it == by_eid.end()) {
      d << "row " << i << " eid=" << id << " should not match\n";
      ++problems;
      continue;
    }
    if (!seen.insert(id).second) {
      d << "row " << i << " eid=" << id << " twice\n";
      ++problems;
    }
    const auto& e = it->second->e;
    if (e.time > last) {
      d << "row " << i << " eid=" << id << " is newer than the row before\n";
      ++problems;
    }
    last = e.time;
    auto full = ref::row_of(e);
    std::vector<std::string> cols;
    if (want.table) {
      cols = *want.table;
    } else {
      cols = {"_time", "_raw", "host", "sourcetype", "vm", "cpu_pct"};
    }
    for (const auto& c : cols) {
      auto* a = row.get(c);
      auto* b = full.get(c);
      if (!same(a, b, c == "_time" ? 1e-6 : 0)) {
        d << "row " << i << " eid=" << id << " " << c << ": got " << show(a)
          << ", want " << show(b) << "\n";
        ++problems;
      }
    }
    if (want.table)
      for (const auto& [k, v] : row.cells)
        if (std::find(cols.begin(), cols.end(), k) == cols.end()
            && !is_null(&v)) {
          d << "row " << i << " has column " << k << " not in table\n";
          ++problems;
        }
  }
  if (got.rows.size() != expected) {
    d << "got " << got.rows.size() << " events, want " << expected << "\n";
    ++problems;
  }
  // Every event newer than the oldest one a head keeps must be there.
  if (expected > 0 && problems < 5) {
    auto oldest = want.matched[expected - 1]->e.time;
    for (const auto* s : want.matched) {
      if (s->e.time <= oldest && expected != want.matched.size())
        break;
      auto id = std::get<1>(*s->e.find("eid"));
      if (!seen.contains(id)) {
        d << "missing eid=" << id << " " << row_text(ref::row_of(s->e))
          << "\n";
        if (++problems >= 5)
          break;
      }
    }
  }
  return d.str();
}

// Transforming mode: the same rows, as sets keyed by the key columns (rows
// whose values are all zero or null are ignored: empty timechart bins).
std::string diff_rows(const search::results& got, const ref::outcome& want) {
  std::ostringstream d;
  if (got.events)
    return "expected a table, got " + std::to_string(got.rows.size())
           + " events";
  auto key_of = [&](const search::row& r) {
    std::vector<std::string> k;
    for (const auto& c : want.keys) {
      auto* v = r.get(c);
      if (c == "_time") {
        auto x = number(v);
        k.push_back(x ? std::to_string(std::llround(*x)) : show(v));
      } else {
        k.push_back(is_null(v) ? "<null>" : search::to_text(*v));
      }
    }
    return k;
  };
  auto empty = [&](const search::row& r) {
    if (want.keys != std::vector<std::string>{"_time"})
      return false;
    for (const auto& c : want.values) {
      auto x = number(r.get(c));
      if (!is_null(r.get(c)) && !(x && *x == 0))
        return false;
    }
    return true;
  };
  auto index = [&](const std::vector<search::row>& rows, const char* who,
                   std::map<std::vector<std::string>, const search::row*>& m) {
    for (const auto& r : rows) {
      if (empty(r))
        continue;
      if (!m.emplace(key_of(r), &r).second)
        d << who << " has two rows for " << row_text(r) << "\n";
    }
  };
  std::map<std::vector<std::string>, const search::row*> g, w;
  index(got.rows, "got", g);
  index(want.rows, "want", w);
  int problems = 0;
  for (const auto& [k, r] : w) {
    if (problems >= 6)
      break;
    auto it = g.find(k);
    if (it == g.end()) {
      d << "missing row " << row_text(*r) << "\n";
      ++problems;
      continue;
    }
    for (const auto& c : want.values)
      if (!same(it->second->get(c), r->get(c))) {
        d << "row " << row_text(*r) << ": " << c << " got "
          << show(it->second->get(c)) << "\n";
        ++problems;
      }
  }
  for (const auto& [k, r] : g)
    if (!w.contains(k) && problems++ < 6)
      d << "extra row " << row_text(*r) << "\n";
  return d.str();
}

std::string diff(const search::results& got, const ref::outcome& want) {
  return want.events ? diff_events(got, want) : diff_rows(got, want);
}

// -- running ---------------------------------------------------------------------

struct totals {
  std::size_t cases = 0, failures = 0;
  std::size_t empty = 0; ///< queries whose reference result is empty
  search::counters accelerated, scanned;
};

// Runs `n` random queries on `d`; stops after a few failures.
// Runs one query three ways; returns what went wrong (empty: all agree) and
// the number of results the reference found.
std::string check_query(const data& d, const ref::evaluator& ev,
                        const std::string& text, totals& t,
                        std::size_t* found = nullptr,
                        const search::options& base = {}) {
  search::options fast = base;
  search::options slow = base;
  slow.accelerate = false;
  ++t.cases;
  std::string problem;
  auto want = ev.run(text, t_now, base);
  if (want && want->events && base.max_results < want->matched.size())
    want->head = std::min(want->head.value_or(base.max_results),
                          base.max_results);
  if (!want)
    return "the reference cannot run it: " + want.error().render() + "\n"
           + search::render_error(text, want.error());
  auto n = want->events ? want->matched.size() : want->rows.size();
  if (found)
    *found = n;
  if (n == 0)
    ++t.empty;
  for (const auto* opts : {&fast, &slow}) {
    auto got = search::run(*d.st, text, *opts, t_now);
    std::string which = opts == &fast ? "accelerated" : "scan";
    if (!got) {
      problem += which + ": error " + got.error().render() + "\n";
      continue;
    }
    (opts == &fast ? t.accelerated : t.scanned).merge(got->stats);
    auto dd = diff(*got, *want);
    if (!dd.empty())
      problem += which + " differs from the reference:\n" + dd;
  }
  return problem;
}

ref::evaluator load(const data& d) {
  auto ev = ref::evaluator::load(*d.st);
  INFO((ev ? std::string{} : ev.error().render()));
  REQUIRE(ev);
  REQUIRE(ev->events().size() == d.events.size());
  return std::move(*ev);
}

// Runs `n` random queries on `d`; stops after a few failures.
void run_random(const data& d, std::uint64_t seed, std::size_t n, totals& t) {
  auto ev = load(d);
  for (std::size_t i = 0; i < n && t.failures < 5; ++i) {
    query_gen qg{rnd{seed * 1'000'003 + i}, d.events};
    auto text = qg.make();
    // Sometimes a time range in the options too.
    search::options base;
    std::string range;
    if (qg.r.chance(10)) {
      auto lo = std::stoll(qg.epoch()), hi = std::stoll(qg.epoch());
      if (lo > hi)
        std::swap(lo, hi);
      base.earliest = lo * sec;
      base.latest = (hi + 1) * sec;
      range = " (options earliest=" + std::to_string(lo)
              + " latest=" + std::to_string(hi + 1) + ")";
    }
    auto problem = check_query(d, ev, text, t, nullptr, base);
    if (!problem.empty()) {
      ++t.failures;
      FAIL_CHECK("data seed " << seed << ", query #" << i << ":\n  " << text
                              << range << "\n" << problem);
    }
  }
}

void report(const std::string& name, const totals& t) {
  MESSAGE(name << ": " << t.cases << " random queries (" << t.empty
               << " with an empty result), " << t.failures
               << " failures; accelerated: " << t.accelerated.buckets
               << " buckets (" << t.accelerated.buckets_from_tuples
               << " from tuples, " << t.accelerated.buckets_from_rollups
               << " from rollups, " << t.accelerated.buckets_from_postings
               << " from postings, " << t.accelerated.buckets_scanned
               << " scanned), " << t.accelerated.events_read
               << " events read; scan: " << t.scanned.events_read
               << " events read");
}

} // namespace

// -- the reference itself, checked by hand ------------------------------------

TEST_CASE("search reference: hand-checked matching semantics") {
  using node = search::search_node;
  auto kw = [](std::string t) {
    node n;
    n.k = node::kind::keyword;
    n.text = std::move(t);
    return n;
  };
  auto ph = [](std::string t) {
    node n;
    n.k = node::kind::phrase;
    n.text = std::move(t);
    return n;
  };
  auto cmp = [](std::string f, std::string op, std::string t) {
    node n;
    n.k = node::kind::compare;
    n.field = std::move(f);
    n.op = std::move(op);
    n.text = std::move(t);
    return n;
  };
  auto neg = [](node c) {
    node n;
    n.k = node::kind::not_;
    n.children.push_back(std::move(c));
    return n;
  };
  event e;
  e.time = t_start;
  e.index = "main";
  e.host = "Web-01";
  e.source = "/var/log/auth.log";
  e.sourcetype = "os:auth";
  e.raw = "GET /index.html from 10.0.1.2 user=Alice sshd[123]:";
  e.fields = {{"pid", num(1234)}, {"cpu_pct", dbl(12.5)},
              {"process_name", str("042")}, {"vm", str("web-01")}};
  event m = e;
  m.raw.reset();

  // Keywords: whole tokens and minor segments, case-insensitively.
  CHECK(ref::matches(kw("get"), e));
  CHECK(ref::matches(kw("10.0.1.2"), e));
  CHECK(ref::matches(kw("10"), e));
  CHECK(ref::matches(kw("ALICE"), e));
  CHECK(ref::matches(kw("user=alice"), e));
  CHECK(ref::matches(kw("/index.html"), e));
  CHECK(ref::matches(kw("index"), e));
  CHECK_FALSE(ref::matches(kw("index.html"), e)); // neither token nor segment
  CHECK_FALSE(ref::matches(kw("0.1"), e));
  CHECK(ref::matches(kw("123"), e));
  CHECK(ref::matches(kw("sshd"), e));
  CHECK_FALSE(ref::matches(kw("sshd[123]"), e));
  // `*` is a wildcard within one term.
  CHECK(ref::matches(kw("10.0.1.*"), e));
  CHECK(ref::matches(kw("*lic*"), e));
  CHECK(ref::matches(kw("in*x"), e));
  CHECK_FALSE(ref::matches(kw("get*from"), e));
  CHECK_FALSE(ref::matches(kw("get"), m)); // no raw: no keyword matches
  // Phrases: a substring that has every term.
  CHECK(ref::matches(ph("from 10.0.1.2"), e));
  CHECK(ref::matches(ph("FROM 10.0.1.2 USER"), e));
  // Every term of the phrase, as search.hpp says: `10.0` is a term of the
  // phrase but not of the raw text (whose token is `10.0.1.2`).
  CHECK_FALSE(ref::matches(ph("from 10.0"), e));
  CHECK_FALSE(ref::matches(ph("rom 10.0"), e)); // `rom` is no term
  CHECK_FALSE(ref::matches(ph("get from"), e));
  CHECK_FALSE(ref::matches(ph("get"), m));
  // Comparisons.
  CHECK(ref::matches(cmp("host", "=", "web-01"), e));
  CHECK(ref::matches(cmp("host", "=", "WEB*"), e));
  CHECK(ref::matches(cmp("sourcetype", "=", "os:*"), e));
  CHECK_FALSE(ref::matches(cmp("sourcetype", "=", "hv:*"), e));
  CHECK(ref::matches(cmp("pid", "=", "1234.0"), e));
  CHECK(ref::matches(cmp("pid", "=", "12*"), e));
  CHECK(ref::matches(cmp("pid", ">", "999"), e));   // numeric, not text
  CHECK(ref::matches(cmp("cpu_pct", "<=", "12.5"), e));
  CHECK(ref::matches(cmp("process_name", "=", "42"), e)); // "042" is 42
  CHECK(ref::matches(cmp("vm", "!=", "db-7"), e));
  CHECK_FALSE(ref::matches(cmp("user", "!=", "bob"), e)); // needs the field
  CHECK(ref::matches(neg(cmp("user", "=", "bob")), e));   // NOT does not
  CHECK_FALSE(ref::matches(cmp("user", "=", "*"), e));
  CHECK(ref::matches(cmp("_raw", "=", "*alice*"), e));
  CHECK_FALSE(ref::matches(cmp("_raw", "=", "*"), m));
  node in;
  in.k = node::kind::in_list;
  in.field = "vm";
  in.values = {"db-7", "WEB-0*"};
  CHECK(ref::matches(in, e));
  in.values = {"db-7"};
  CHECK_FALSE(ref::matches(in, e));
}

// -- bad queries --------------------------------------------------------------------

TEST_CASE("search: bad queries are bad_query errors at a sensible column") {
  struct bad {
    std::string text;
    std::size_t lo, hi; // the offset is in [lo, hi]
  };
  const std::vector<bad> cases{
    {"foo | stats bogus(x)", 6, 17},   // the command or the function
    {"(a OR b", 0, 7},                 // the open paren or the end
    {"x=", 0, 2},                      // the field, `=` or the end
    {"foo | bogus", 6, 6},             // an unknown command
    {"foo | head x", 6, 11},
    {"foo | stats count by", 6, 20},
    {"\"unterminated", 0, 13},
    {"a OR", 2, 4},
    {"foo | timechart span=banana count", 6, 27},
    {"foo)", 3, 3},
  };
  for (const auto& b : cases) {
    CAPTURE(b.text);
    auto q = search::parse(b.text, t_now);
    REQUIRE_FALSE(q);
    CHECK(q.error().code == ec::bad_query);
    CAPTURE(q.error().message);
    CHECK(q.error().offset >= b.lo);
    CHECK(q.error().offset <= b.hi);
    CHECK_FALSE(search::render_error(b.text, q.error()).empty());
  }
  // `(a OR b` points at the unclosed paren or the end, nothing between.
  auto q = search::parse("(a OR b", t_now);
  REQUIRE_FALSE(q);
  CHECK((q.error().offset == 0 || q.error().offset == 7));
}

// -- random cases -------------------------------------------------------------------

TEST_CASE("search: random queries agree with a brute-force evaluator, "
          "default blocks") {
  data d{1, 3000, storage::store_options{}};
  totals t;
  run_random(d, 1, 1200, t);
  report("default blocks", t);
  CHECK(t.failures == 0);
  CHECK(t.scanned.buckets_from_tuples == 0);
  CHECK(t.scanned.buckets_from_postings == 0);
  // The accelerated path is exercised, not just the scan.
  CHECK(t.accelerated.buckets_from_postings > 0);
  CHECK(t.accelerated.buckets_from_tuples > 0);
  CHECK(t.accelerated.buckets_from_rollups > 0);
}

TEST_CASE("search: random queries agree with a brute-force evaluator, "
          "small blocks, rebuilt summaries") {
  storage::store_options so;
  so.block_events = 16;
  data d{2, 2500, so, true};
  totals t;
  run_random(d, 2, 1200, t);
  report("small blocks", t);
  CHECK(t.failures == 0);
  CHECK(t.accelerated.buckets_from_postings > 0);
}

TEST_CASE("search: random queries agree with a brute-force evaluator, "
          "30-minute buckets, compacted") {
  storage::store_options so;
  so.bucket_span = 1800 * sec;
  so.block_events = 64;
  data d{3, 1500, so, false, true};
  totals t;
  run_random(d, 3, 600, t);
  report("30-minute buckets, compacted", t);
  CHECK(t.failures == 0);
}

TEST_CASE("search: edge cases agree with a brute-force evaluator") {
  data d{1, 3000, storage::store_options{}};
  auto ev = load(d);
  const std::string longx(130, 'x');
  struct edge {
    std::string text;
    bool some; // the reference finds results (else none)
  };
  const std::vector<edge> edges{
    // A token longer than max_term_bytes is no term; its segments are.
    {"tail", true},
    {"*tail", true},
    {"x-tail", false},
    {longx + "-tail", false},
    {"\"" + longx + "-tail\"", true},
    {"\"x-tail\"", false}, // `x-tail` is a term of the phrase only
    {"_raw=*-tail*", true},
    // Only ASCII letters fold.
    {"größe", true},
    {"GRÖßE", true},
    {"GRÖSSE", false},
    // A field named like a default field is not the event's own.
    {"sourcetype=fake:*", false},
    {"host=fake:*", false},
    {"sourcetype=fake:* | stats count by sourcetype", false},
    {"NOT sourcetype=fake:* | stats count", true},
    // Phrases: substring and every term.
    {"\"ok\"", true},
    {"\"ok tokens\"", true},
    {"tokens NOT ok", true},
    // != needs the field, NOT does not.
    {"user!=alice", true},
    {"NOT user=alice", true},
    {"user!=*", false},
    {"vm=42 | stats count by vm", true},
    {"process_name=42 | stats count", true},
    {"pid>=1 pid<=5000 | stats count", true},
    {"pid=1* | stats count", true},
    {"cpu_pct>50 | stats count by host", true},
    {"_time>=1700010000 _time<1700010600 | stats count", true},
    {"* | stats count by sourcetype, host", true},
    {"* | timechart span=30m count", true},
    {"* | head 7", true},
    {"index=nope | stats count", true}, // one row, count 0
    {"index=nope | stats count by host", false},
  };
  totals t;
  // A result limit keeps the newest events.
  search::options few;
  few.max_results = 5;
  for (std::string text : {"*", "error", "vm=web* | head 7", "cpu_pct>10"}) {
    auto problem = check_query(d, ev, text, t, nullptr, few);
    if (!problem.empty())
      FAIL_CHECK(text << " (max_results=5)\n" << problem);
  }
  for (const auto& e : edges) {
    std::size_t found = 0;
    auto problem = check_query(d, ev, e.text, t, &found);
    if (!problem.empty())
      FAIL_CHECK(e.text << "\n" << problem);
    CAPTURE(e.text);
    CHECK((found > 0) == e.some);
  }
}

// Splunk keeps a by-value as the event has it: `042` stays `042` (it is a
// string field; `process_name=42` matches it numerically, but the group is
// still named by its text).
TEST_CASE("search: a by-value that looks like a number keeps its text") {
  data d{1, 3000, storage::store_options{}};
  auto ev = load(d);
  totals t;
  for (std::string text : {"process_name=042 | stats count by process_name",
                           "vm=42 | stats count by vm"}) {
    auto problem = check_query(d, ev, text, t);
    if (!problem.empty())
      FAIL_CHECK(text << "\n" << problem);
  }
  // In events the field keeps its text too.
  auto got = search::run(*d.st, "process_name=042 | table eid process_name",
                         {}, t_now);
  REQUIRE(got);
  REQUIRE_FALSE(got->rows.empty());
  for (const auto& r : got->rows) {
    auto* v = r.get("process_name");
    REQUIRE(v);
    CHECK(search::to_text(*v) == "042");
  }
}
