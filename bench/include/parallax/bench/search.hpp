#pragma once

#include <cstddef>
#include <string>

namespace parallax::bench {

struct search_options {
  std::size_t events = 10'000'000; ///< events generated, spread over 24 h
  std::size_t runs = 20;           ///< timed runs per question (after 1 warm-up)
  std::size_t rg_runs = 3;         ///< timed runs per question for ripgrep
  std::string data;   ///< data directory (must be empty or absent); empty:
                      ///< a fresh temp dir, removed afterwards
  std::size_t block_events = 128; ///< events per stored block
  bool skip_peers = false; ///< do not run SQLite FTS5 and ripgrep
  /// Compact every bucket after loading, as `parallax serve` does with
  /// buckets that went quiet (store::compact).
  bool compact = false;
  bool json = false;       ///< one machine-readable line instead of a table
};

/// `parallax bench search`: search latency on generated data, with peers.
///
/// Data: `events` mixed events (generator.hpp, seed 42) spread evenly over
/// 24 h of event time, hence 24 one-hour buckets. One event in 100,000 (at
/// least 10 in all; always a log line) gets the token `xyzzy-rare`
/// appended to its raw text, which the generator never produces. The
/// events go into a fresh store through `store::write` directly (batches
/// of 1,000, 10 batches per commit, no network), with LMDB's fsync off
/// (MDB_NOSYNC) and one sync at the end: loading is not what is measured.
///
/// Questions, each timed `runs` times after one warm-up through
/// `search::run` (median and p99 in ms), and checked against counts made
/// while generating (tokenizer.hpp over the raw text); a wrong answer
/// fails the run (exit 1):
///   rare   `xyzzy | head 100`         min(100, injected) rows
///   and    `alice web-07 43`          every event whose raw text has all
///                                     three terms (~1 in 20,000)
///   stats  `* | stats count by sourcetype, host`
///                                     every (sourcetype, host) count exact,
///                                     so the counts add up to `events`
///
/// Peers on the same events and questions, in the same run:
/// - SQLite FTS5: a table (time, sourcetype, host, raw, fields) with an
///   index on (sourcetype, host) and an external-content FTS5 index over
///   raw only (keywords match raw text only, as in Parallax; metric
///   samples have no raw text, their fields are kept as `name=value ...`
///   text in the unindexed `fields` column, so the stats query sees all
///   events). Loaded with synchronous=OFF, journal off, 100,000 rows per
///   transaction.
/// - ripgrep over a text file, one line per event: `sourcetype=S host=H `
///   followed by the raw text (nothing more for metric samples); the stats
///   question is `rg -o` on that prefix piped to `sort | uniq -c`. Timed
///   `rg_runs` times; skipped with a note when `rg` is not on PATH.
/// Peer answers are checked like Parallax's.
///
/// Also reports the load rate, the search counters (buckets answered from
/// tuple counts, events read) and the process's peak RSS during the
/// Parallax queries (the mark is reset after loading) with the resident
/// split anonymous / file-backed (LMDB's map) after them.
/// Returns a process exit code: 0, 1 (a check failed or an error), 2 (bad
/// options).
int run_search(const search_options& opts);

} // namespace parallax::bench
