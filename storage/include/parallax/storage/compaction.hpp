#pragma once

// When to compact a bucket (store::compact). Compaction pays off once a
// bucket has stopped taking events: every commit leaves a short run of
// blocks and a postings key per term, and rewriting a bucket that is still
// being written would be undone by the next commit. So a bucket is due
// when no event has arrived in it for `quiet` (as seen by successive polls
// of the catalog) and it holds half again as many events as at its last
// compaction (or was never compacted); and once quiet for `settle`, any
// growth will do. Growing by half between compactions bounds the rewriting
// of a live bucket to about three times its events. A compaction holds its
// bucket's events in memory (about 1.5 KB each while it runs: 394 MB peak
// for a bucket of 245k events), so buckets
// of more than `max_events` are left as ingested.

#include "parallax/storage/store.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <vector>

namespace parallax::storage {

class compaction_policy {
public:
  using clock = std::chrono::steady_clock;

  compaction_policy(std::chrono::milliseconds quiet,
                    std::chrono::milliseconds settle,
                    std::uint64_t max_events = 2'000'000)
    : quiet_{quiet}, settle_{settle}, max_events_{max_events} {
  }

  /// The buckets due now, oldest first, given the catalog read at `now`.
  /// Buckets no longer in the catalog are forgotten.
  std::vector<std::int64_t> due(const std::vector<bucket_info>& catalog,
                                clock::time_point now);

private:
  struct seen {
    std::uint64_t events = 0;
    clock::time_point changed;
  };
  std::chrono::milliseconds quiet_, settle_;
  std::uint64_t max_events_;
  std::map<std::int64_t, seen> seen_;
};

} // namespace parallax::storage
