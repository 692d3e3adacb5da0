#pragma once

// Search: the query language of docs/search.md (a subset of Splunk's SPL)
// over the store, accelerated by the keyword index, the summarization
// tables and the per-bucket tuple counts.
//
// A query is a search clause followed by `| command` stages:
//
//   vm=web-01 sourcetype=os:* error | stats count by sourcetype
//
// Execution (search.cpp) is map-reduce over buckets:
//   plan     parse, pick the buckets the time range touches, and decide per
//            bucket how to answer it (tuple counts, metric rollups,
//            postings, or a scan);
//   map      per bucket, independently and on any thread: the events the
//            index says may match are read and checked against the whole
//            search clause, run through the streaming commands before the
//            first transforming one (eval, where, rex, rename, fields,
//            table), and either kept as rows or folded into a `partial`
//            aggregate (the "prestats" form, docs/search.md);
//   reduce   partials merge in any order (`merge`), then `finish` turns the
//            merged aggregate into rows and runs the remaining commands.
// The same plan can run its map phase on several stores (indexers) and
// merge at one search head.
//
// Semantics that both the index and a full scan must agree on (the tests
// compare them with an independent brute-force evaluator):
// - A keyword matches an event whose raw text has that term, as the index
//   tokenizes it (tokenizer.hpp: whole tokens and their minor segments,
//   case-insensitive). `*` in a keyword is a wildcard over one term.
//   Events without raw text (metric samples) match no keyword.
// - A "quoted phrase" matches raw text that contains the phrase,
//   case-insensitively, and has every term of the phrase.
// - `field=value` compares numerically when both sides are numbers, else
//   as text, case-insensitively; `*` in the value is a wildcard. A missing
//   field matches no comparison; `field!=value` needs the field, `NOT
//   field=value` does not.
// - `index`, `host`, `source`, `sourcetype` are the event's own; `_time`
//   is seconds since the epoch; `_raw` the raw text.

#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace re2 {
class RE2;
}

namespace parallax::storage {
class store;
}

namespace parallax::search {

// -- values and rows -----------------------------------------------------------

/// A value in a result row: null, a number, text, or several texts (the
/// result of `values()`).
using multi = std::vector<std::string>;
using val = std::variant<std::monostate, double, std::string, multi>;

/// The number a value stands for: a number, or text that parses entirely
/// as a decimal number.
std::optional<double> to_number(const val& v);
std::optional<double> to_number(std::string_view text);

/// The value as text: numbers without a trailing ".0" (12, 0.5), several
/// values joined by a space; null is empty.
std::string to_text(const val& v);

/// A row of named values, in column order.
struct row {
  std::vector<std::pair<std::string, val>> cells;
  /// The value of `name`, or nullptr.
  const val* get(std::string_view name) const noexcept;
  /// Sets `name`, appending the column if it is new.
  void set(std::string_view name, val v);
  void erase(std::string_view name);
  friend bool operator==(const row&, const row&) = default;
};

// -- the query ------------------------------------------------------------------

struct expr;
using expr_ptr = std::shared_ptr<const expr>;

/// An eval/where expression.
struct expr {
  enum class kind { literal, field, call, unary, binary };
  kind k = kind::literal;
  val literal;               ///< literal
  std::string name;          ///< field name, function name, or operator
  std::vector<expr_ptr> args;///< call arguments; unary: 1; binary: 2
  std::shared_ptr<const re2::RE2> regex; ///< match/replace with a literal pattern
  std::size_t column = 0;    ///< where it starts in the query (0-based)
};

/// A node of a search clause.
struct search_node {
  enum class kind {
    all,     ///< matches every event (an empty clause, `*`)
    keyword, ///< text: a term, may hold `*` (ASCII lower-cased)
    phrase,  ///< text: a quoted phrase (ASCII lower-cased)
    compare, ///< field op text
    in_list, ///< field IN (values)
    and_,
    or_,
    not_,
  };
  kind k = kind::all;
  std::string field;
  std::string op; ///< "=", "!=", "<", "<=", ">", ">="
  std::string text;
  std::vector<std::string> values;
  std::vector<search_node> children;
  std::size_t column = 0;
};

/// One aggregation of stats/timechart.
struct aggregation {
  /// count, dc, sum, avg, min, max, stdev, median, perc, earliest, latest,
  /// values.
  std::string fn;
  std::string field;   ///< empty for count
  int percentile = 0;  ///< perc<N>
  std::string as;      ///< output column
};

struct command {
  enum class kind {
    search, where, eval, stats, timechart, table, fields, rename, sort,
    head, tail, dedup, top, rare, rex,
  };
  kind k = kind::search;
  std::size_t column = 0;
  search_node filter;                                  ///< search
  expr_ptr condition;                                  ///< where
  std::vector<std::pair<std::string, expr_ptr>> evals; ///< eval
  std::vector<aggregation> aggregations;               ///< stats, timechart
  std::vector<std::string> by;       ///< stats, timechart (at most 1), top, rare
  std::vector<std::string> fields;   ///< table, fields, dedup, top, rare
  bool remove = false;               ///< fields - ...
  std::vector<std::pair<std::string, std::string>> renames; ///< from, to
  std::vector<std::pair<std::string, bool>> sort_keys;      ///< name, descending
  std::size_t limit = 10;            ///< head, tail, top, rare; sort (0: all)
  time_ns span = 0;                  ///< timechart
  std::string rex_field = "_raw";    ///< rex
  std::shared_ptr<const re2::RE2> regex;                    ///< rex
  std::vector<std::string> rex_names;                       ///< rex groups
};

struct query {
  std::string text;
  search_node filter; ///< the leading search clause, without earliest/latest
  std::optional<time_ns> earliest; ///< earliest= in the clause (inclusive)
  std::optional<time_ns> latest;   ///< latest= in the clause (exclusive)
  std::vector<command> commands;
};

/// Parses a query. A syntax error has code `bad_query` and its `offset` is
/// the 0-based column in `text` where the problem is. `now` anchors
/// relative times (`earliest=-1h`, `latest=now`, `@d` snapping, UTC).
result<query> parse(std::string_view text, time_ns now);

/// Parses a time for --earliest/--latest: `now`, `-15m`, `-1d@d`, an epoch
/// in seconds, or RFC 3339 (`2026-11-25T10:00:00Z`).
result<time_ns> parse_time(std::string_view text, time_ns now);

/// Compiles an eval expression on its own (calculated fields).
result<expr_ptr> parse_expression(std::string_view text);

/// Renders "QUERY\n      ^ message" for a bad_query error.
std::string render_error(std::string_view query_text, const error& e);

// -- late-binding schema --------------------------------------------------------

/// Search-time field rules for one sourcetype (config:
/// `[parallax.sourcetypes."NAME"]` keys `extract`, `field-aliases`,
/// `calculated`), applied in this order when an event is read.
struct late_rules {
  std::string sourcetype; ///< may end in `*`
  /// RE2 patterns with named groups over _raw; each group becomes a field
  /// unless the event has it already.
  std::vector<std::shared_ptr<const re2::RE2>> extract;
  /// (existing, alias): `alias` gets the value of `existing`.
  std::vector<std::pair<std::string, std::string>> aliases;
  /// (name, expression).
  std::vector<std::pair<std::string, expr_ptr>> calculated;
};

/// Every sourcetype's rules; cheap to copy (shared, immutable).
struct schema {
  std::vector<late_rules> rules;
  /// Fields that some rule defines at search time: the index cannot answer
  /// comparisons on them.
  std::set<std::string, std::less<>> late_fields;
  /// The rules for a sourcetype, or nullptr.
  const late_rules* find(std::string_view sourcetype) const;
};

/// Config text of one sourcetype's search-time rules, compiled; errors name
/// the key (`parallax.sourcetypes."os:auth".extract[0]`).
result<late_rules> compile_late_rules(
  std::string_view sourcetype, const std::vector<std::string>& extract,
  const std::vector<std::string>& aliases,
  const std::vector<std::string>& calculated);

// -- execution -------------------------------------------------------------------

struct options {
  time_ns earliest = std::numeric_limits<time_ns>::min(); ///< inclusive
  time_ns latest = std::numeric_limits<time_ns>::max();   ///< exclusive
  /// Most rows of the result (events mode: the newest first).
  std::size_t max_results = 10'000;
  /// Bytes of rows and aggregates a query may hold at once.
  std::size_t max_memory = std::size_t{512} << 20;
  /// Wall-clock bound; zero means none.
  std::chrono::milliseconds timeout{0};
  /// Set to true from elsewhere to stop the query.
  const std::atomic<bool>* cancel = nullptr;
  schema late;
  /// Use the index, summaries and tuple counts; false reads every event of
  /// the range (for tests and benchmarks).
  bool accelerate = true;
};

/// What a query did, for tests, `--stats` and benchmarks.
struct counters {
  std::uint64_t buckets = 0;              ///< in the time range
  std::uint64_t buckets_from_tuples = 0;  ///< counts without reading events
  std::uint64_t buckets_from_rollups = 0; ///< metric stats from rollups
  std::uint64_t buckets_from_postings = 0;///< events found through the index
  std::uint64_t buckets_scanned = 0;      ///< every event read
  std::uint64_t events_read = 0;          ///< decoded and checked
  std::uint64_t events_matched = 0;       ///< passed the search clause
  void merge(const counters& o);
};

/// Prestats: the mergeable state of one aggregation for one group.
struct agg_state {
  std::uint64_t count = 0;    ///< values seen (count: events)
  std::uint64_t numeric = 0;  ///< of them, numbers
  double sum = 0;
  double mean = 0, m2 = 0;    ///< running mean and squared deviations (stdev)
  double min = 0, max = 0;
  std::set<std::string> distinct; ///< dc, values
  std::vector<double> samples;    ///< median, perc
  time_ns first_time = 0, last_time = 0; ///< earliest, latest
  std::string first_value, last_value;
};

/// The map phase's output for one bucket, mergeable.
struct partial {
  bool aggregated = false;
  /// events mode: rows, newest first; otherwise rows the map phase could
  /// not aggregate (none when `aggregated`).
  std::vector<row> rows;
  /// The event time (seconds) of each row, which orders them even when a
  /// command removed _time.
  std::vector<double> times;
  /// group key (the by-values, for timechart the bin first) -> one state
  /// per aggregation.
  std::map<std::vector<std::string>, std::vector<agg_state>> groups;
  counters stats;
  std::size_t bytes = 0;
  error err;
};

/// A planned query over one store.
struct field_need; // the fields an aggregating query reads (search_exec.cpp)

class plan {
public:
  /// Plans `q` with `opts` over the store's current buckets.
  static result<plan> make(const storage::store& st, query q, options opts);

  /// The buckets to map, newest first.
  const std::vector<std::int64_t>& buckets() const noexcept {
    return buckets_;
  }

  /// True when the query returns events (no transforming command).
  bool events_mode() const noexcept {
    return transform_ < 0;
  }

  /// The map phase for one bucket; thread-safe (const).
  partial map(const storage::store& st, std::int64_t bucket) const;

  /// Folds `from` into `into` (any order; events stay newest first).
  void merge(partial& into, partial&& from) const;

  /// True once `p` holds enough rows that later (older) buckets cannot
  /// change the result (events mode with a head or result limit).
  bool satisfied(const partial& p) const;

  /// Turns merged partials into the result rows.
  result<std::vector<row>> finish(partial&& p) const;

  const query& parsed() const noexcept {
    return q_;
  }
  const options& opts() const noexcept {
    return opts_;
  }

  // Internals shared by search.cpp's translation units.
  struct detail;

private:
  query q_;
  options opts_;
  std::vector<std::int64_t> buckets_;
  std::vector<std::int64_t> whole_; ///< buckets fully inside the range
  std::vector<std::pair<std::int64_t, std::uint64_t>> events_; ///< per bucket
  int transform_ = -1; ///< index of the first transforming command
  int split_ = 0;      ///< commands [0, split_) run in the map phase
  bool tuples_ok_ = false; ///< the query can be answered from tuple counts
  bool rollups_ok_ = false; ///< ... or from metric rollups (checked per bucket)
  time_ns rollup_interval_ = 0;
  time_ns data_lo_ = 0, data_hi_ = -1; ///< event times in range (catalog)
  time_ns earliest_ = 0, latest_ = 0;
  time_ns deadline_ = 0;
  /// The fields the map phase reads from an event (null: all of them).
  std::shared_ptr<const field_need> need_;
};

/// The result of a query.
struct results {
  std::vector<std::string> columns; ///< in order of first appearance
  std::vector<row> rows;
  bool events = false;              ///< rows are events (newest first)
  counters stats;
};

/// Runs a query on one store, bucket by bucket on this thread. `on_rows`
/// (events mode) receives each bucket's rows as soon as they are final,
/// newest first, before `run` returns them all.
result<results> run(const storage::store& st, std::string_view text,
                    const options& opts, time_ns now,
                    const std::function<void(const std::vector<row>&)>&
                      on_rows = {});

/// The columns of `rows`, in order of first appearance.
std::vector<std::string> columns_of(const std::vector<row>& rows);

} // namespace parallax::search
