#pragma once

// An independent brute-force evaluator of search queries, for tests only.
//
// It takes the parsed query (search::parse) and does everything else
// itself, written from the semantics in search.hpp's header comment: it
// reads every event of every bucket with store::scan (no index, no
// summaries, no tuple counts, no rollups), evaluates the search clause on
// each event with its own matching code, applies the time range, and runs
// the few commands the randomized tests use (stats, timechart without by,
// head, table). Speed does not matter; being obviously correct does.
//
// Choices where search.hpp leaves room (taken as Splunk does):
// - `stats` drops events that lack any of the by-fields; groups and dc()
//   are case-sensitive on the values' text; `stats` without by-fields over
//   no events gives one row (count 0, other aggregations null).
// - sum/avg/min/max take the values that are numbers (numbers, or text
//   that is entirely a decimal number) and are null when there are none.
// - timechart bins are aligned to multiples of the span since the epoch;
//   `_time` is the bin start in seconds. Empty bins are not produced (the
//   comparison ignores rows whose aggregations are all zero or null).
// - `field<value` etc. with a non-numeric side compare the lower-cased
//   texts lexicographically.

#include "parallax/pipeline/search.hpp"
#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace parallax::storage {
class store;
}

namespace parallax::test::ref {

/// `*` matches any run of bytes (also none); everything else matches itself,
/// ASCII case-insensitively.
bool glob_match(std::string_view pattern, std::string_view text);

/// ASCII lower case.
std::string lower(std::string_view s);

/// Every term of `text` as the index would make it (tokenizer.hpp).
std::set<std::string> terms_of(std::string_view text);

/// The number a text stands for when it is entirely a plain decimal number
/// (optional sign, digits, optional fraction, optional exponent).
std::optional<double> number_of(std::string_view text);

/// A field's value as the search sees it: the default fields, `_time` (in
/// seconds), `_raw`, or the event's first field of that name.
std::optional<value> field_of(const event& e, std::string_view name);

/// The text of a value (integers in decimal, doubles shortest round-trip,
/// booleans true/false).
std::string text_of(const value& v);

/// The number of a value (integers, doubles, numeric text), if any.
std::optional<double> number_of(const value& v);

/// True when `n` matches `e`. `terms` are the terms of `e`'s raw text if
/// the caller has them already (else they are computed).
bool matches(const search::search_node& n, const event& e,
             const std::set<std::string>* terms = nullptr);

/// An event as read from the store, with its store id.
struct stored {
  std::uint64_t id = 0;
  event e;
  std::set<std::string> terms; ///< of the raw text (none without one)
};

/// What the reference computes for one query.
struct outcome {
  bool events = false; ///< rows are events
  /// Events mode: the events that pass the clause and time range, newest
  /// first (ties ordered by id), before any head.
  std::vector<const stored*> matched;
  /// Events mode: the head limit, if the query has one (the result is any
  /// `limit` newest of `matched`).
  std::optional<std::size_t> head;
  /// Events mode with `table`: the columns kept (else every field).
  std::optional<std::vector<std::string>> table;
  /// Transforming mode: the result rows.
  std::vector<search::row> rows;
  /// Transforming mode: the by-columns that identify a row (stats: the
  /// by-fields; timechart: `_time`).
  std::vector<std::string> keys;
  /// Transforming mode: the aggregation columns.
  std::vector<std::string> values;
};

/// The event as an events-mode row: _time (seconds), _raw if any, index,
/// host, source, sourcetype and every field.
search::row row_of(const event& e);

class evaluator {
public:
  /// Reads every event of every bucket of `st` (store::buckets + scan).
  static result<evaluator> load(const storage::store& st);

  /// Evaluates `text` (parsed with search::parse at `now`) over every
  /// event, within [earliest, latest) of `opts` and the query.
  result<outcome> run(std::string_view text, time_ns now,
                      const search::options& opts = {}) const;

  const std::vector<stored>& events() const noexcept {
    return events_;
  }

private:
  std::vector<stored> events_;
};

} // namespace parallax::test::ref
