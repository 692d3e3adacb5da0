#include "parallax/bench/search.hpp"

#include "parallax/bench/generator.hpp"
#include "parallax/bench/stats.hpp"
#include "parallax/pipeline/search.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/store.hpp"
#include "parallax/storage/tokenizer.hpp"

#include <malloc.h>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <lmdb.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

namespace parallax::bench {

namespace fs = std::filesystem;

namespace {

using clock_type = std::chrono::steady_clock;

// -- the workload ---------------------------------------------------------------

// The generator never produces "xyzzy" (bench/src/generator.cpp); the
// tokenizer splits the token at '-', so `xyzzy` is a term of its own.
constexpr std::string_view rare_token = "xyzzy-rare";
constexpr std::string_view rare_query = "xyzzy | head 100";
constexpr std::size_t rare_rows = 100;
// Log lines (1 event in 4) are "Nov 25 20:18:<ss> <vm> sshd[<pid>]:
// Accepted publickey for <user> from 10.0.<a>.<b> port <port> ssh2" with
// one of 8 users and 50 VMs. Each term is common (alice: 1 log line in 8,
// web-07: 1 in 50, 43: 1 in ~13 as <ss>, <a>, <b> or VM web-43), together
// they pick ~1 log line in 5,400, ~1 event in 20,000.
constexpr std::array<std::string_view, 3> and_terms = {"alice", "web-07", "43"};
constexpr std::string_view and_query = "alice web-07 43";
constexpr std::string_view stats_query = "* | stats count by sourcetype, host";
constexpr std::string_view source_id = "bench-search";
constexpr std::size_t batch_events = 1'000;
constexpr std::size_t batches_per_commit = 10;
constexpr std::size_t sqlite_txn_rows = 100'000;
constexpr time_ns day = time_ns{86'400} * 1'000'000'000;
constexpr time_ns hour = time_ns{3'600} * 1'000'000'000;

struct workload {
  generator_options gen;
  std::size_t rare_every = 0; ///< a multiple of 4: always a log line
};

workload make_workload(std::size_t n) {
  workload w;
  // Start on an hour so the 24 h fill exactly 24 buckets.
  w.gen.start = w.gen.start / hour * hour;
  w.gen.step = day / static_cast<time_ns>(n);
  // Every 100,000th event, but at least 10 in small runs. The generator
  // cycles hv, process, process, log: index 3 mod 4 is a log line.
  w.rare_every = std::min<std::size_t>(100'000, std::max<std::size_t>(
                                                  4, (n / 10) & ~std::size_t{3}));
  return w;
}

/// Calls `f(event&)` for the `n` events of the workload, in order.
template <class F>
void generate(const workload& w, std::size_t n, F&& f) {
  mixed_generator gen{w.gen};
  for (std::size_t i = 0; i < n; ++i) {
    auto e = gen.next();
    if (i % w.rare_every == w.rare_every - 1 && e.raw) {
      *e.raw += ' ';
      *e.raw += rare_token;
    }
    f(e);
  }
}

using group_key = std::pair<std::string, std::string>; // sourcetype, host

/// The answers, counted while generating.
struct expected {
  std::size_t rare = 0;
  std::size_t conj = 0;
  std::map<group_key, std::uint64_t> groups;

  void add(const event& e) {
    ++groups[{e.sourcetype, e.host}];
    if (!e.raw)
      return;
    bool seen[and_terms.size()] = {};
    bool rare_seen = false;
    storage::tokenize(*e.raw, [&](std::string_view t) {
      for (std::size_t k = 0; k < and_terms.size(); ++k)
        seen[k] |= t == and_terms[k];
      rare_seen |= t == "xyzzy";
    });
    rare += rare_seen;
    conj += std::all_of(std::begin(seen), std::end(seen),
                        [](bool b) { return b; });
  }
};

std::string render_fields(const event& e) {
  std::string out;
  for (const auto& f : e.fields) {
    if (!out.empty())
      out += ' ';
    out += f.name;
    out += '=';
    std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>)
          out += v;
        else
          out += fmt::format("{}", v);
      },
      f.value);
  }
  return out;
}

// -- timing and checks ----------------------------------------------------------

/// Wall times of one question, in ms.
struct timings {
  std::vector<double> ms;
  bool ran() const {
    return !ms.empty();
  }
  double p50() const {
    return ms.empty() ? 0 : median(ms);
  }
  double p99() const {
    return percentile(ms, 0.99);
  }
};

/// Failed checks, reported at the end; any makes the run fail.
struct checks {
  std::vector<std::string> failures;
  void fail(std::string what) {
    std::fprintf(stderr, "parallax bench search: CHECK FAILED: %s\n",
                 what.c_str());
    failures.push_back(std::move(what));
  }
};

/// Runs `f` once to warm up, then `runs` times timed. `f` returns false to
/// stop (an error it has reported).
template <class F>
timings repeat(std::size_t warmups, std::size_t runs, F&& f) {
  timings t;
  for (std::size_t i = 0; i < warmups; ++i)
    if (!f())
      return t;
  for (std::size_t i = 0; i < runs; ++i) {
    auto t0 = clock_type::now();
    if (!f())
      return {};
    t.ms.push_back(
      std::chrono::duration<double, std::milli>(clock_type::now() - t0)
        .count());
  }
  return t;
}

/// Compares per-group counts with the expected ones; `who` names the engine.
void check_groups(checks& c, std::string_view who,
                  const std::map<group_key, std::uint64_t>& got,
                  const expected& want, std::size_t n) {
  std::uint64_t sum = 0;
  for (const auto& [k, v] : got)
    sum += v;
  if (sum != n)
    c.fail(fmt::format("{}: `{}`: counts add up to {}, expected {}", who,
                       stats_query, sum, n));
  if (got == want.groups)
    return;
  std::size_t shown = 0;
  for (const auto& [k, v] : want.groups) {
    auto i = got.find(k);
    auto g = i == got.end() ? 0 : i->second;
    if (g != v && shown++ < 5)
      c.fail(fmt::format("{}: `{}`: sourcetype={} host={}: count {}, "
                         "expected {}",
                         who, stats_query, k.first, k.second, g, v));
  }
  for (const auto& [k, v] : got)
    if (!want.groups.contains(k) && shown++ < 5)
      c.fail(fmt::format("{}: `{}`: unexpected group sourcetype={} host={} "
                         "({})",
                         who, stats_query, k.first, k.second, v));
  if (shown == 0)
    c.fail(fmt::format("{}: `{}`: groups differ", who, stats_query));
}

// -- Parallax --------------------------------------------------------------------

struct parallax_figures {
  double load_s = 0;
  std::size_t buckets = 0;
  unsigned long long disk_bytes = 0;
  double compact_s = 0; ///< 0: not compacted
  storage::compact_result compacted;
  timings rare, conj, stats;
  search::counters rare_c, conj_c, stats_c;
  std::size_t rare_rows = 0, conj_rows = 0, stats_groups = 0;
  unsigned long long peak_rss = 0;
  rss_split rss;
};

/// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS, so the
/// queries' peak is not the loading's; false on kernels without it.
bool reset_peak_rss() {
  std::ofstream out{"/proc/self/clear_refs"};
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

/// Loads the workload into `st` with write groups of `batches_per_commit`
/// batches; returns the seconds spent in `store::write`.
std::optional<double> load_store(storage::store& st, const workload& w,
                                 std::size_t n, expected& want) {
  std::vector<event> pending;
  pending.reserve(batch_events * batches_per_commit);
  std::vector<field_view> fields;
  std::vector<event_view> views;
  std::vector<storage::incoming_batch> group;
  std::uint64_t seq = 0;
  double seconds = 0;
  bool ok = true;
  auto flush = [&] {
    if (pending.empty() || !ok)
      return;
    std::size_t nfields = 0;
    for (const auto& e : pending)
      nfields += e.fields.size();
    fields.clear();
    fields.reserve(nfields); // no reallocation: the views point into it
    views.clear();
    views.reserve(pending.size());
    for (const auto& e : pending) {
      auto first = fields.size();
      for (const auto& f : e.fields)
        fields.push_back({f.name, view(f.value)});
      views.push_back(view_of(
        e, std::span<const field_view>{fields.data() + first,
                                       e.fields.size()}));
    }
    group.clear();
    for (std::size_t i = 0; i < views.size(); i += batch_events) {
      auto len = std::min(batch_events, views.size() - i);
      group.push_back(
        {source_id, ++seq, std::span<const event_view>{views}.subspan(i, len)});
    }
    auto t0 = clock_type::now();
    auto res = st.write(group);
    seconds += std::chrono::duration<double>(clock_type::now() - t0).count();
    if (!res) {
      std::fprintf(stderr, "parallax bench search: write: %s\n",
                   res.error().render().c_str());
      ok = false;
    }
    pending.clear();
  };
  generate(w, n, [&](event& e) {
    want.add(e);
    pending.push_back(std::move(e));
    if (pending.size() == batch_events * batches_per_commit)
      flush();
  });
  flush();
  if (!ok)
    return std::nullopt;
  return seconds;
}

void run_parallax_queries(const storage::store& st, const search_options& o,
                          const expected& want, time_ns now,
                          parallax_figures& fig, checks& c) {
  auto runner = [&](std::string_view text, const search::options& so,
                    search::counters& counters, auto&& check) {
    bool checked = false;
    return repeat(1, o.runs, [&] {
      auto r = search::run(st, text, so, now);
      if (!r) {
        c.fail(fmt::format("parallax: `{}`: {}", text,
                           r.error().code == ec::bad_query
                             ? search::render_error(text, r.error())
                             : r.error().render()));
        return false;
      }
      counters = r->stats;
      if (!checked) { // the answer is the same every time: check it once
        checked = true;
        check(*r);
      }
      return true;
    });
  };

  search::options so;
  fig.rare = runner(rare_query, so, fig.rare_c, [&](const search::results& r) {
    fig.rare_rows = r.rows.size();
    auto want_rows = std::min(rare_rows, want.rare);
    if (r.rows.size() != want_rows)
      c.fail(fmt::format("parallax: `{}`: {} rows, expected {} ({} events "
                         "have the term)",
                         rare_query, r.rows.size(), want_rows, want.rare));
    for (const auto& row : r.rows) {
      const auto* raw = row.get("_raw");
      auto text = raw ? search::to_text(*raw) : std::string{};
      if (text.find(rare_token) == std::string::npos) {
        c.fail(fmt::format("parallax: `{}`: a row without {}: {}", rare_query,
                           rare_token, text));
        break;
      }
    }
  });

  search::options all = so;
  all.max_results = want.conj + 10'000; // every match, not the newest 10,000
  fig.conj = runner(and_query, all, fig.conj_c, [&](const search::results& r) {
    fig.conj_rows = r.rows.size();
    if (r.rows.size() != want.conj)
      c.fail(fmt::format("parallax: `{}`: {} rows, expected {}", and_query,
                         r.rows.size(), want.conj));
  });

  fig.stats = runner(stats_query, so, fig.stats_c,
                     [&](const search::results& r) {
    std::map<group_key, std::uint64_t> got;
    for (const auto& row : r.rows) {
      const auto* stype = row.get("sourcetype");
      const auto* host = row.get("host");
      const auto* count = row.get("count");
      auto n = count ? search::to_number(*count) : std::nullopt;
      if (!stype || !host || !n) {
        c.fail(fmt::format("parallax: `{}`: a row without sourcetype, host "
                           "or a numeric count",
                           stats_query));
        return;
      }
      got[{search::to_text(*stype), search::to_text(*host)}] +=
        static_cast<std::uint64_t>(*n);
    }
    fig.stats_groups = r.rows.size();
    check_groups(c, "parallax", got, want, o.events);
  });
}

// -- SQLite FTS5 --------------------------------------------------------------------

struct sqlite_figures {
  double load_s = 0;
  timings rare, conj, stats;
  std::string error;
};

class sqlite_db {
public:
  ~sqlite_db() {
    for (auto* s : stmts_)
      sqlite3_finalize(s);
    if (db_)
      sqlite3_close(db_);
  }
  bool open(const fs::path& path, std::string& err) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      err = fmt::format("cannot open {}: {}", path.string(),
                        db_ ? sqlite3_errmsg(db_) : "out of memory");
      return false;
    }
    return true;
  }
  bool exec(const char* sql, std::string& err) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      err = fmt::format("{}: {}", sql, msg ? msg : "sqlite error");
      sqlite3_free(msg);
      return false;
    }
    return true;
  }
  sqlite3_stmt* prepare(const char* sql, std::string& err) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) {
      err = fmt::format("{}: {}", sql, sqlite3_errmsg(db_));
      return nullptr;
    }
    stmts_.push_back(s);
    return s;
  }
  const char* message() const {
    return sqlite3_errmsg(db_);
  }

private:
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> stmts_;
};

/// The FTS5 query for the AND question: a term with a minor breaker is a
/// phrase for FTS5's tokenizer ("web-07" is `web` then `07`).
std::string fts_and_query() {
  std::string q;
  for (auto t : and_terms) {
    if (!q.empty())
      q += " AND ";
    if (t.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789")
        != std::string_view::npos)
      q += fmt::format("\"{}\"", t);
    else
      q += t;
  }
  return q;
}

/// Loads the SQLite peer and writes the ripgrep file (when `rg_file` is
/// not empty) from a second pass over the same workload.
void run_sqlite(const search_options& o, const workload& w,
                const fs::path& dir, const fs::path& rg_file,
                const expected& want, sqlite_figures& fig, checks& c) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  sqlite_db db;
  auto& err = fig.error;
  if (!db.open(dir / "fts5.db", err)
      || !db.exec("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; "
                  "PRAGMA cache_size=-65536;",
                  err)
      || !db.exec("CREATE TABLE events (id INTEGER PRIMARY KEY, time INTEGER, "
                  "sourcetype TEXT, host TEXT, raw TEXT, fields TEXT);"
                  "CREATE VIRTUAL TABLE events_fts USING fts5(raw, "
                  "content='events', content_rowid='id');",
                  err))
    return;
  auto* ins = db.prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         err);
  auto* ins_fts = ins ? db.prepare("INSERT INTO events_fts (rowid, raw) "
                                   "VALUES (?1, ?2)",
                                   err)
                      : nullptr;
  if (!ins_fts)
    return;
  std::FILE* out = nullptr;
  if (!rg_file.empty()) {
    out = std::fopen(rg_file.c_str(), "w");
    if (!out) {
      err = fmt::format("cannot write {}", rg_file.string());
      return;
    }
  }
  std::string line;
  std::int64_t id = 0;
  double seconds = 0;
  bool ok = db.exec("BEGIN", err);
  auto t0 = clock_type::now();
  generate(w, o.events, [&](event& e) {
    if (!ok)
      return;
    if (out) { // not timed as SQLite's
      auto t1 = clock_type::now();
      line = fmt::format("sourcetype={} host={} ", e.sourcetype, e.host);
      if (e.raw)
        line += *e.raw;
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), out);
      t0 += clock_type::now() - t1;
    }
    ++id;
    auto fields = render_fields(e);
    sqlite3_bind_int64(ins, 1, id);
    sqlite3_bind_int64(ins, 2, e.time);
    sqlite3_bind_text(ins, 3, e.sourcetype.data(),
                      static_cast<int>(e.sourcetype.size()), SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, e.host.data(), static_cast<int>(e.host.size()),
                      SQLITE_STATIC);
    if (e.raw)
      sqlite3_bind_text(ins, 5, e.raw->data(), static_cast<int>(e.raw->size()),
                        SQLITE_STATIC);
    else
      sqlite3_bind_null(ins, 5);
    sqlite3_bind_text(ins, 6, fields.data(), static_cast<int>(fields.size()),
                      SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) {
      err = fmt::format("insert: {}", db.message());
      ok = false;
    }
    sqlite3_reset(ins);
    if (ok && e.raw) {
      sqlite3_bind_int64(ins_fts, 1, id);
      sqlite3_bind_text(ins_fts, 2, e.raw->data(),
                        static_cast<int>(e.raw->size()), SQLITE_STATIC);
      if (sqlite3_step(ins_fts) != SQLITE_DONE) {
        err = fmt::format("insert into events_fts: {}", db.message());
        ok = false;
      }
      sqlite3_reset(ins_fts);
    }
    if (ok && id % static_cast<std::int64_t>(sqlite_txn_rows) == 0)
      ok = db.exec("COMMIT", err) && db.exec("BEGIN", err);
  });
  if (out && std::fclose(out) != 0 && ok) {
    err = fmt::format("cannot write {}", rg_file.string());
    ok = false;
  }
  // The index for GROUP BY is built once after loading, as one would.
  ok = ok && db.exec("COMMIT", err)
       && db.exec("CREATE INDEX events_st_host ON events (sourcetype, host)",
                  err)
       && db.exec("ANALYZE", err);
  seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (!ok)
    return;
  fig.load_s = seconds;

  // Newest first, as Parallax answers.
  auto* rare = db.prepare("SELECT raw FROM events_fts WHERE events_fts MATCH "
                          "'xyzzy' ORDER BY rowid DESC LIMIT 100",
                          err);
  auto conj_text = fts_and_query();
  auto* conj = db.prepare("SELECT raw FROM events_fts WHERE events_fts MATCH ?1",
                          err);
  auto* stats = db.prepare("SELECT sourcetype, host, count(*) FROM events "
                           "GROUP BY sourcetype, host",
                           err);
  if (!rare || !conj || !stats)
    return;
  sqlite3_bind_text(conj, 1, conj_text.c_str(), -1, SQLITE_TRANSIENT);
  auto rows = [&](sqlite3_stmt* s, auto&& each) {
    sqlite3_reset(s);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
      each(s);
    if (rc != SQLITE_DONE) {
      err = fmt::format("query: {}", db.message());
      return false;
    }
    return true;
  };
  auto raw_len = [](sqlite3_stmt* s) {
    // Read the text, as Parallax reads the events.
    return sqlite3_column_text(s, 0) ? sqlite3_column_bytes(s, 0) : -1;
  };
  std::size_t n = 0;
  fig.rare = repeat(1, o.runs, [&] {
    n = 0;
    return rows(rare, [&](sqlite3_stmt* s) { n += raw_len(s) >= 0; });
  });
  if (fig.rare.ran() && n != std::min(rare_rows, want.rare))
    c.fail(fmt::format("sqlite: MATCH 'xyzzy' LIMIT 100: {} rows, expected {}",
                       n, std::min(rare_rows, want.rare)));
  fig.conj = repeat(1, o.runs, [&] {
    n = 0;
    return rows(conj, [&](sqlite3_stmt* s) { n += raw_len(s) >= 0; });
  });
  if (fig.conj.ran() && n != want.conj)
    c.fail(fmt::format("sqlite: MATCH '{}': {} rows, expected {}", conj_text,
                       n, want.conj));
  std::map<group_key, std::uint64_t> got;
  fig.stats = repeat(1, o.runs, [&] {
    got.clear();
    return rows(stats, [&](sqlite3_stmt* s) {
      auto text = [&](int col) {
        const auto* p = sqlite3_column_text(s, col);
        return p ? std::string{reinterpret_cast<const char*>(p),
                               static_cast<std::size_t>(
                                 sqlite3_column_bytes(s, col))}
                 : std::string{};
      };
      got[{text(0), text(1)}] +=
        static_cast<std::uint64_t>(sqlite3_column_int64(s, 2));
    });
  });
  if (fig.stats.ran())
    check_groups(c, "sqlite", got, want, o.events);
}

// -- ripgrep ---------------------------------------------------------------------

struct rg_figures {
  bool installed = false;
  std::string path;
  timings rare, conj, stats;
  std::string error;
};

std::string shell_quote(std::string_view s) {
  std::string q = "'";
  for (char ch : s) {
    if (ch == '\'')
      q += "'\\''";
    else
      q += ch;
  }
  q += '\'';
  return q;
}

/// Runs `cmd` with /bin/sh, returning its standard output, or nullopt when
/// it could not run or exited with a status other than 0 or 1 (rg's "no
/// match").
std::optional<std::string> shell(const std::string& cmd, std::string& err) {
  auto* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    err = fmt::format("cannot run {}", cmd);
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  auto status = ::pclose(p);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) > 1) {
    err = fmt::format("`{}` failed (status {})", cmd, status);
    return std::nullopt;
  }
  return out;
}

std::size_t count_lines(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

void run_rg(const search_options& o, const fs::path& file,
            const expected& want, rg_figures& fig, checks& c) {
  fig.path = find_on_path("rg");
  fig.installed = !fig.path.empty();
  if (!fig.installed)
    return;
  auto rg = shell_quote(fig.path);
  auto f = shell_quote(file.string());
  auto rare_cmd = fmt::format("{} -m 100 -i -w xyzzy {}", rg, f);
  std::string conj_cmd = fmt::format("{} -i -w {} {}", rg,
                                     shell_quote(and_terms[0]), f);
  for (std::size_t k = 1; k < and_terms.size(); ++k)
    conj_cmd += fmt::format(" | {} -i -w {}", rg, shell_quote(and_terms[k]));
  conj_cmd += " | wc -l";
  // rg cannot group: it extracts the prefix, sort and uniq count.
  auto stats_cmd = fmt::format(
    "{} -o '^sourcetype=[^ ]+ host=[^ ]+' {} | LC_ALL=C sort | uniq -c", rg, f);
  std::string out;
  auto run = [&](const std::string& cmd) {
    return repeat(0, o.rg_runs, [&] {
      auto r = shell(cmd, fig.error);
      if (r)
        out = std::move(*r);
      return r.has_value();
    });
  };
  fig.rare = run(rare_cmd);
  if (fig.rare.ran() && count_lines(out) != std::min(rare_rows, want.rare))
    c.fail(fmt::format("rg: `{}`: {} lines, expected {}", rare_cmd,
                       count_lines(out), std::min(rare_rows, want.rare)));
  fig.conj = run(conj_cmd);
  if (fig.conj.ran()) {
    auto n = std::strtoull(out.c_str(), nullptr, 10);
    if (n != want.conj)
      c.fail(fmt::format("rg: `{}`: {} lines, expected {}", conj_cmd, n,
                         want.conj));
  }
  fig.stats = run(stats_cmd);
  if (fig.stats.ran()) {
    // "  12345 sourcetype=os:auth host=web-07"
    std::map<group_key, std::uint64_t> got;
    std::size_t pos = 0;
    while (pos < out.size()) {
      auto end = out.find('\n', pos);
      if (end == std::string::npos)
        end = out.size();
      auto line = std::string_view{out}.substr(pos, end - pos);
      pos = end + 1;
      auto st = line.find("sourcetype=");
      auto h = line.find(" host=");
      if (st == std::string_view::npos || h == std::string_view::npos)
        continue;
      auto n = std::strtoull(std::string{line.substr(0, st)}.c_str(), nullptr,
                             10);
      got[{std::string{line.substr(st + 11, h - st - 11)},
           std::string{line.substr(h + 6)}}] += n;
    }
    check_groups(c, "rg", got, want, o.events);
  }
}

// -- output ------------------------------------------------------------------------

std::string json_num(double v, bool present, int digits = 3) {
  return present ? fmt::format("{:.{}f}", v, digits) : "null";
}

/// "0.003", "0.05", "3.1", "270": at least one significant digit.
std::string ratio_text(double r) {
  return r < 0.1   ? fmt::format("{:.3f}", r)
         : r < 1   ? fmt::format("{:.2f}", r)
         : r < 100 ? fmt::format("{:.1f}", r)
                   : fmt::format("{:.0f}", r);
}

double ratio(const timings& peer, const timings& ours) {
  return peer.ran() && ours.ran() && ours.p50() > 0 ? peer.p50() / ours.p50()
                                                    : 0;
}

unsigned long long disk_usage(const fs::path& dir) {
  unsigned long long total = 0;
  std::error_code ec;
  for (const auto& f : fs::recursive_directory_iterator{dir, ec})
    if (f.is_regular_file(ec))
      total += f.file_size(ec);
  return total;
}

} // namespace

int run_search(const search_options& o) {
  if (o.events < 1'000 || o.runs == 0 || o.rg_runs == 0) {
    std::fprintf(stderr, "parallax bench search: --events must be at least "
                         "1000\n");
    return 2;
  }
  bool temp = o.data.empty();
  fs::path dir = o.data;
  std::error_code fec;
  if (temp) {
    std::random_device rd;
    dir = fs::temp_directory_path()
          / fmt::format("parallax-bench-search-{}-{}", ::getpid(), rd());
  } else if (fs::exists(dir, fec) && !fs::is_empty(dir, fec)) {
    std::fprintf(stderr, "parallax bench search: --data %s: must be empty or "
                         "not exist\n",
                 dir.c_str());
    return 2;
  }
  fs::create_directories(dir / "store", fec);
  if (fec) {
    std::fprintf(stderr, "parallax bench search: cannot create %s: %s\n",
                 dir.c_str(), fec.message().c_str());
    return 1;
  }
  struct cleanup {
    bool on;
    fs::path dir;
    ~cleanup() {
      std::error_code ec;
      if (on)
        fs::remove_all(dir, ec);
    }
  } cleanup{temp, dir};

  auto w = make_workload(o.events);
  time_ns now = w.gen.start + day + hour; // anchors relative times only
  expected want;
  parallax_figures px;
  checks c;
  bool peak_reset = false;
  {
    auto env = storage::environment::open(dir / "store");
    if (!env) {
      std::fprintf(stderr, "%s\n", env.error().render().c_str());
      return 1;
    }
    // environment_options has no "no sync": loading is not what is
    // measured, so LMDB's own switch, and one sync at the end.
    mdb_env_set_flags(env->handle(), MDB_NOSYNC, 1);
    storage::store_options so;
    so.block_events = o.block_events;
    auto st = storage::store::open(*env, so);
    if (!st) {
      std::fprintf(stderr, "%s\n", st.error().render().c_str());
      return 1;
    }
    auto loaded = load_store(*st, w, o.events, want);
    if (!loaded)
      return 1;
    px.load_s = *loaded;
    if (o.compact) {
      auto all = st->buckets();
      if (!all) {
        std::fprintf(stderr, "%s\n", all.error().render().c_str());
        return 1;
      }
      auto t0 = std::chrono::steady_clock::now();
      for (const auto& b : *all) {
        auto r = st->compact(b.id);
        if (!r || !r->done) {
          std::fprintf(stderr, "compaction of bucket %lld failed: %s\n",
                       static_cast<long long>(b.id),
                       r ? "the bucket changed" : r.error().render().c_str());
          return 1;
        }
        px.compacted.events += r->events;
        px.compacted.bytes_before += r->bytes_before;
        px.compacted.bytes_after += r->bytes_after;
      }
      px.compact_s = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - t0)
                       .count();
      ::malloc_trim(0); // as the compactor does after its work
    }
    mdb_env_sync(env->handle(), 1);
    if (auto b = st->buckets())
      px.buckets = b->size();
    px.disk_bytes = disk_usage(dir / "store");
    // The queries' own memory: drop the pages loading left mapped and
    // restart the peak mark.
    env->release_mapped_pages();
    peak_reset = reset_peak_rss();
    run_parallax_queries(*st, o, want, now, px, c);
    px.peak_rss = peak_rss_bytes();
    px.rss = current_rss();
  }

  sqlite_figures sq;
  rg_figures rgf;
  rgf.installed = !find_on_path("rg").empty();
  if (!o.skip_peers) {
    auto rg_file = dir / "events.txt";
    run_sqlite(o, w, dir / "sqlite", rg_file, want, sq, c);
    if (!sq.error.empty())
      c.fail(fmt::format("sqlite: {}", sq.error));
    else
      run_rg(o, rg_file, want, rgf, c);
    if (!rgf.error.empty())
      c.fail(fmt::format("rg: {}", rgf.error));
  }
  bool sq_ok = !o.skip_peers && sq.error.empty();
  bool rg_ok = !o.skip_peers && rgf.installed && rgf.error.empty();
  auto load_eps = static_cast<double>(o.events) / px.load_s;

  struct question {
    std::string_view key, title, query;
    const timings* px;
    const timings* sq;
    const timings* rg;
    std::size_t answer;
  };
  const question qs[] = {
    {"rare", "rare term, first 100 hits", rare_query, &px.rare, &sq.rare,
     &rgf.rare, px.rare_rows},
    {"and", "3-term AND, every hit", and_query, &px.conj, &sq.conj, &rgf.conj,
     px.conj_rows},
    {"stats", "stats count by sourcetype, host", stats_query, &px.stats,
     &sq.stats, &rgf.stats, px.stats_groups},
  };

  if (o.json) {
    std::string j = fmt::format(
      "{{\"bench\":\"search\",\"events\":{},\"block_events\":{},"
      "\"buckets\":{},\"runs\":{},\"rg_runs\":{},\"load_events_per_s\":{:.0f},\"load_synced\":false,"
      "\"disk_bytes_per_event\":{:.1f},\"compacted\":{},"
      "\"compact_events_per_s\":{:.0f},\"rare_expected\":{},"
      "\"and_expected\":{},\"stats_groups_expected\":{}",
      o.events, o.block_events, px.buckets, o.runs, o.rg_runs, load_eps,
      static_cast<double>(px.disk_bytes) / static_cast<double>(o.events),
      o.compact,
      px.compact_s > 0 ? static_cast<double>(px.compacted.events) / px.compact_s
                       : 0.0,
      std::min(rare_rows, want.rare), want.conj, want.groups.size());
    for (const auto& q : qs) {
      j += fmt::format(
        ",\"{0}_answer\":{1},\"{0}_parallax_median_ms\":{2},"
        "\"{0}_parallax_p99_ms\":{3},\"{0}_sqlite_median_ms\":{4},"
        "\"{0}_sqlite_p99_ms\":{5},\"{0}_rg_median_ms\":{6},"
        "\"{0}_sqlite_ratio\":{7},\"{0}_rg_ratio\":{8}",
        q.key, q.answer, json_num(q.px->p50(), q.px->ran()),
        json_num(q.px->p99(), q.px->ran()),
        json_num(q.sq->p50(), sq_ok && q.sq->ran()),
        json_num(q.sq->p99(), sq_ok && q.sq->ran()),
        json_num(q.rg->p50(), rg_ok && q.rg->ran()),
        json_num(ratio(*q.sq, *q.px), sq_ok && q.sq->ran() && q.px->ran()),
        json_num(ratio(*q.rg, *q.px), rg_ok && q.rg->ran() && q.px->ran()));
    }
    j += fmt::format(
      ",\"stats_buckets\":{},\"stats_buckets_from_tuples\":{},"
      "\"stats_events_read\":{},\"rare_events_read\":{},"
      "\"and_events_read\":{},\"query_peak_rss_bytes\":{},"
      "\"peak_rss_reset\":{},\"rss_anon_bytes\":{},\"rss_file_bytes\":{},"
      "\"sqlite_load_events_per_s\":{},\"rg_installed\":{},"
      "\"checks_passed\":{}}}\n",
      px.stats_c.buckets, px.stats_c.buckets_from_tuples,
      px.stats_c.events_read, px.rare_c.events_read, px.conj_c.events_read,
      px.peak_rss, peak_reset, px.rss.anon, px.rss.file,
      json_num(sq.load_s > 0 ? static_cast<double>(o.events) / sq.load_s : 0,
               sq_ok, 0),
      rgf.installed, c.failures.empty());
    fmt::print("{}", j);
    return c.failures.empty() ? 0 : 1;
  }

  fmt::print("parallax bench search: {} events over 24 h of event time in {} "
             "buckets, {} events per block; `xyzzy` in {} of them\n",
             o.events, px.buckets, o.block_events, want.rare);
  fmt::print("  load      parallax {:>10.0f} events/s  (store::write, {} x {} "
             "events per commit, no fsync: MDB_NOSYNC, one sync at the end), "
             "{:.1f} bytes/event on disk\n",
             load_eps, batches_per_commit, batch_events,
             static_cast<double>(px.disk_bytes)
               / static_cast<double>(o.events));
  if (o.compact)
    fmt::print("  compact   parallax {:>10.0f} events/s  (every bucket, as serve "
               "does once a bucket is quiet), block bytes {} -> {}\n",
               static_cast<double>(px.compacted.events) / px.compact_s,
               px.compacted.bytes_before, px.compacted.bytes_after);
  if (sq_ok)
    fmt::print("            sqlite   {:>10.0f} events/s  (synchronous=OFF, "
               "journal off, {} rows per transaction, indexes built after)\n",
               static_cast<double>(o.events) / sq.load_s, sqlite_txn_rows);
  fmt::print("  times in ms; parallax {} runs (median, p99), sqlite fts5 {} "
             "runs, rg {} runs (median), after 1 warm-up (rg: none)\n",
             o.runs, o.runs, o.rg_runs);
  for (const auto& q : qs) {
    fmt::print("  {:<32} `{}`  ({} {})\n", q.title, q.query, q.answer,
               q.key == "stats" ? "groups" : "rows");
    fmt::print("    parallax  {:>10.2f} median  {:>10.2f} p99\n", q.px->p50(),
               q.px->p99());
    if (o.skip_peers)
      continue;
    if (sq_ok && q.sq->ran())
      fmt::print("    sqlite    {:>10.2f} median  {:>10.2f} p99   {:>8}x "
                 "parallax\n",
                 q.sq->p50(), q.sq->p99(), ratio_text(ratio(*q.sq, *q.px)));
    if (!rgf.installed)
      fmt::print("    rg        not installed\n");
    else if (rg_ok && q.rg->ran())
      fmt::print("    rg        {:>10.2f} median  {:>10}      {:>8}x "
                 "parallax\n",
                 q.rg->p50(), "", ratio_text(ratio(*q.rg, *q.px)));
  }
  fmt::print("  counters  rare: {} events read; and: {} read; stats: {} of {} "
             "buckets from tuple counts, {} events read\n",
             px.rare_c.events_read, px.conj_c.events_read,
             px.stats_c.buckets_from_tuples, px.stats_c.buckets,
             px.stats_c.events_read);
  fmt::print("  memory    peak RSS during the parallax queries {:.1f} MB{}; "
             "after them {:.1f} MB anonymous, {:.1f} MB file-backed (LMDB's "
             "map)\n",
             static_cast<double>(px.peak_rss) / 1e6,
             peak_reset ? "" : " (includes loading: no clear_refs)",
             static_cast<double>(px.rss.anon) / 1e6,
             static_cast<double>(px.rss.file) / 1e6);
  if (c.failures.empty())
    fmt::print("  checks    every answer as expected\n");
  else
    fmt::print("  checks    {} FAILED (see above)\n", c.failures.size());
  return c.failures.empty() ? 0 : 1;
}

} // namespace parallax::bench
