#pragma once

// The event store: events in time buckets, a keyword index, summarization
// tables and metric rollups, all in one LMDB environment and all written in
// one transaction per write group (group commit).
//
// Layout (named LMDB databases; integers big-endian so keys sort by value):
//   blocks     [bucket][first id]                -> codec byte (0 raw, 1 zstd) +
//                                                   events as a wire batch frame
//   postings   [bucket][segment][term] 00 [first id] -> event ids, varint deltas
//              (a segment is 2^18 ids: commits touch only the newest one)
//   runs       [bucket][segment][run][last term] -> ~4 KB of packed terms with
//              their ids: the postings of a write that brought the bucket
//              >= run_min_terms terms (format 2; store.cpp, "Runs")
//   summaries  [bucket][name=value]              -> u64 count of events
//   rollups    [bucket][series] 00 [interval]    -> count, sum, min, max, sum of squares
//   tuples     [bucket][index 00 host 00 source 00 sourcetype] -> u64 count of
//              events with exactly those default fields (answers `stats
//              count by` any of them, under any filter on them, exactly)
//   catalog    [bucket]                          -> min/max time, events, bytes
//   sources    source id                         -> committed sequences: all
//                                                   below a floor, plus those
//                                                   above it (at most 1024)
//   meta       "format", "next-id", "next-run", "bucket-span"
// A bucket is floor(time / span); event ids grow globally, so within a bucket
// every new key sorts after the existing ones and writes stay sequential.
//
// What is indexed: every term of the raw text (tokenizer.hpp); `name=value`
// for every string or boolean field and for the default fields index, host,
// source and sourcetype. Summaries count exactly those `name=value` terms.
//
// Why summaries are built inside `write` and not by a separate summarizer
// stage: one pass over the events feeds postings and summary counts from
// the same term map, the tables commit atomically with the events (nothing
// to catch up after a crash), and a rebuild folds rollups in the same order.
// A background summarizer that re-read committed blocks was measured on this
// 2-core machine at 233-255k events/s against 345-367k for this design
// (bench ingest, 0.5M and 2M events), because it decodes every block again
// and its commits contend for LMDB's single writer.
// Every finite numeric field of every event (metric samples and log events
// alike, so search can answer stats over a field from rollups alone) feeds
// rollups per series `host` + field name, per rollup interval; series whose host or name
// contains NUL, or whose names together exceed 493 bytes (LMDB's key limit),
// get no rollups (the events are stored and indexed as usual).
//
// Caveats:
// - `write` begins and commits its own write transaction and must be called
//   from one thread at a time (LMDB allows one writer); keep it on the
//   writer's own thread.
// - Read functions open their own read transactions (the environment has
//   MDB_NOTLS), so any thread may call them, also while a write runs.
// - The bucket span is fixed when a store is created; opening it with
//   another span is an error naming parallax.storage.bucket-span.

#include "parallax/schemas/error.hpp"
#include "parallax/schemas/event.hpp"
#include "parallax/storage/environment.hpp"
#include "parallax/storage/source_sequences.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct MDB_txn;

namespace parallax::storage {

class snapshot;

struct store_options {
  /// Width of a time bucket.
  time_ns bucket_span = time_ns{3600} * 1'000'000'000;
  /// Width of a metric rollup interval.
  time_ns rollup_interval = time_ns{60} * 1'000'000'000;
  /// Most events per stored block (parallax.storage.block-events).
  std::size_t block_events = 128;
  /// A write that brings a bucket at least this many distinct terms stores
  /// its postings as one sorted run (keys of ~4 KB of packed terms) instead
  /// of one key per term; 0: never (parallax.storage.run-min-terms). See
  /// store.cpp, "Runs".
  std::size_t run_min_terms = 16384;
};

/// One batch of a write group.
struct incoming_batch {
  std::string_view source_id;
  std::uint64_t sequence = 0;
  std::span<const event_view> events;
};

/// What became of a batch in a write group.
enum class write_outcome : std::uint8_t {
  stored,    ///< its events are committed
  duplicate, ///< (source id, sequence) was already committed; nothing stored
};

struct write_result {
  std::vector<write_outcome> outcomes; ///< one per incoming batch, in order
  std::uint64_t events = 0;            ///< events stored
  std::uint64_t bytes = 0;             ///< bytes of blocks written
};

struct bucket_info {
  std::int64_t id = 0;   ///< floor(time / span)
  time_ns start = 0;     ///< id * span
  time_ns end = 0;       ///< start + span (exclusive)
  time_ns min_time = 0;  ///< earliest event
  time_ns max_time = 0;  ///< latest event
  std::uint64_t events = 0;
  std::uint64_t block_bytes = 0;
  /// Events the bucket held when it was last compacted (0: never).
  std::uint64_t compacted_events = 0;
};

/// What a compaction did.
struct compact_result {
  bool done = false;             ///< false: the bucket changed meanwhile (or is gone)
  std::uint64_t events = 0;      ///< events rewritten
  std::uint64_t blocks_before = 0, blocks_after = 0;
  std::uint64_t bytes_before = 0, bytes_after = 0;   ///< stored block bytes
  std::uint64_t postings_before = 0, postings_after = 0; ///< postings keys
};

/// Mergeable statistics of one series over one interval.
struct rollup_cell {
  std::uint64_t count = 0;
  double sum = 0;
  double min = 0;
  double max = 0;
  double sum_sq = 0;
  void add(double x);
  void merge(const rollup_cell& other);
  friend bool operator==(const rollup_cell&, const rollup_cell&) = default;
};

struct rollup_row {
  std::string host;
  std::string metric;
  time_ns interval_start = 0;
  rollup_cell cell;
  friend bool operator==(const rollup_row&, const rollup_row&) = default;
};

class store {
public:
  /// Opens the store's databases in `env` (creating them unless the
  /// environment is read-only). `env` must outlive the store.
  static result<store> open(environment& env, const store_options& opts = {});

  /// Writes a group of batches in one transaction, skipping batches whose
  /// (source id, sequence) was committed before. Sequences may arrive in
  /// any order; a sequence still missing when more than 1024 later ones
  /// of its source are committed is taken as abandoned (a late arrival is
  /// then treated as a duplicate). Returns after the commit (synced to disk unless the
  /// environment was opened without sync) or with an error, in which case
  /// nothing of the group is stored.
  result<write_result> write(std::span<const incoming_batch> group);

  // -- reading ----------------------------------------------------------------
  //
  // Each read function below begins its own read transaction. Reads that
  // must agree with each other (event ids from `postings`, then `events`
  // for them) go through one `snapshot`: a compaction renumbers a bucket's
  // events, and it may commit between two separate reads.

  /// A consistent view of the store as of now (one LMDB read transaction,
  /// held until the snapshot is destroyed; keep it short-lived).
  result<snapshot> read() const;

  /// The bucket catalog, oldest first.
  result<std::vector<bucket_info>> buckets() const;

  /// Event ids containing `term` in bucket `bucket`, ascending.
  result<std::vector<std::uint64_t>> postings(std::int64_t bucket,
                                              std::string_view term) const;

  /// Count of events with `name=value` in bucket `bucket`, from the
  /// summarization table (no events are read).
  result<std::uint64_t> count(std::int64_t bucket, std::string_view name,
                              std::string_view value) const;

  /// Every summary entry of a bucket: (name=value, count), sorted by term.
  result<std::vector<std::pair<std::string, std::uint64_t>>>
  summaries(std::int64_t bucket) const;

  /// The summary entries of a bucket whose term starts with `prefix`
  /// (`sourcetype=hv:` lists every hypervisor sourcetype's count).
  result<std::vector<std::pair<std::string, std::uint64_t>>>
  summaries(std::int64_t bucket, std::string_view prefix) const;

  /// Events per combination of the default fields in a bucket.
  struct tuple_count {
    std::string index, host, source, sourcetype;
    std::uint64_t count = 0;
  };
  result<std::vector<tuple_count>> tuples(std::int64_t bucket) const;

  /// False for a store opened read-only before its tuples table existed.
  bool has_tuples() const noexcept {
    return tuples_ != 0;
  }

  /// Calls `f(id, event)` for each of `ids` (ascending) found in `bucket`,
  /// reading only the blocks that hold them. The view is valid only during
  /// the call. Returns early (no error) when `f` returns false.
  error events(std::int64_t bucket, std::span<const std::uint64_t> ids,
               const std::function<bool(std::uint64_t, const event_view&)>& f)
    const;

  /// Every rollup row of a bucket, sorted by series and interval.
  result<std::vector<rollup_row>> rollups(std::int64_t bucket) const;

  /// Calls `f(id, event)` for every event of `bucket` in id order. The view
  /// is valid only during the call.
  error scan(std::int64_t bucket,
             const std::function<void(std::uint64_t, const event_view&)>& f)
    const;

  /// The highest committed sequence of `source_id`, if any.
  result<std::optional<std::uint64_t>>
  last_sequence(std::string_view source_id) const;

  /// Which sequences of `source_id` are committed (none for an unknown
  /// source), as write() deduplicates by.
  result<source_sequences> committed(std::string_view source_id) const;

  // -- maintenance ------------------------------------------------------------

  /// Drops every bucket that ends at or before `cutoff`, whole: blocks,
  /// postings, summaries, rollups and catalog entry. Returns the number of
  /// buckets dropped.
  result<std::size_t> drop_before(time_ns cutoff);

  /// Recomputes summaries and rollups of every bucket from its stored
  /// events, replacing the incrementally built tables.
  error rebuild_summaries();

  /// Rewrites the blocks and postings of a bucket with its events ordered
  /// by (index, sourcetype, vm, host, source, pid, time), `vm` being the
  /// correlator's field (the host when an event has none) and `pid` a
  /// process's (an integer field; events without one first). Ingest stores
  /// events in arrival order, one short block run per commit, so a series
  /// of one VM ends up in thousands of blocks it shares with other data;
  /// compacted, it sits in a few blocks of its own, and every term has one
  /// postings list per segment instead of one per commit. Its blocks hold
  /// at most `block_events` events and about 16 KiB (sorted, a block of
  /// log lines would be far larger than one of samples). The events get
  /// new ids; summaries, rollups, tuples and the catalog's counts stay.
  ///
  /// The events are read, sorted and encoded outside the write lock (ids
  /// are reserved first in a short transaction), and swapped in by one
  /// write transaction, which gives up (`done` false) if the bucket took
  /// events meanwhile. Safe beside `write` and readers, on any thread.
  result<compact_result> compact(std::int64_t bucket);

  const store_options& options() const noexcept {
    return opts_;
  }

  /// The bucket an event time falls into.
  std::int64_t bucket_of(time_ns t) const noexcept;

private:
  friend class snapshot;
  store(environment& env, store_options opts) : env_{&env}, opts_{opts} {
  }
  environment* env_;
  store_options opts_;
  unsigned blocks_ = 0, postings_ = 0, summaries_ = 0, rollups_ = 0,
           catalog_ = 0, sources_ = 0, meta_ = 0, tuples_ = 0, runs_ = 0;
  /// False: a format-1 store opened read-only (no runs table). Fixed at
  /// open: a reader that opened such a store before a writer upgraded it
  /// sees the runs written since only once it opens the store again (the
  /// CLI opens it per command, `parallax vm` for every refresh while the
  /// store it opened was format 1; the server's search uses its store).
  bool has_runs_ = false;
};

/// A consistent read of the store: every read through one snapshot sees
/// the same commit. The functions are those of `store` (see there).
class snapshot {
public:
  snapshot(snapshot&& other) noexcept;
  snapshot& operator=(snapshot&& other) noexcept;
  snapshot(const snapshot&) = delete;
  snapshot& operator=(const snapshot&) = delete;
  ~snapshot();

  result<std::vector<bucket_info>> buckets() const;
  result<std::vector<std::uint64_t>> postings(std::int64_t bucket,
                                              std::string_view term) const;
  result<std::uint64_t> count(std::int64_t bucket, std::string_view name,
                              std::string_view value) const;
  result<std::vector<std::pair<std::string, std::uint64_t>>>
  summaries(std::int64_t bucket, std::string_view prefix = {}) const;
  result<std::vector<store::tuple_count>> tuples(std::int64_t bucket) const;
  error events(std::int64_t bucket, std::span<const std::uint64_t> ids,
               const std::function<bool(std::uint64_t, const event_view&)>& f)
    const;
  result<std::vector<rollup_row>> rollups(std::int64_t bucket) const;
  error scan(std::int64_t bucket,
             const std::function<void(std::uint64_t, const event_view&)>& f)
    const;
  result<std::optional<std::uint64_t>>
  last_sequence(std::string_view source_id) const;
  result<source_sequences> committed(std::string_view source_id) const;

private:
  friend class store;
  // Appends the ids of `term` in the bucket's runs (bkey: its key prefix).
  error run_postings(std::string_view bkey, std::string_view term,
                     std::vector<std::uint64_t>& out) const;
  snapshot(const store& st, MDB_txn* t) : st_{&st}, t_{t} {
  }
  const store* st_ = nullptr;
  MDB_txn* t_ = nullptr;
};

} // namespace parallax::storage
