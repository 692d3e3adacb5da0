#pragma once

// The parser: raw text to events, by the rules of each event's sourcetype
// (sourcetypes.hpp). For every event it
//   1. applies the sourcetype's sedcmd transforms to the raw text,
//   2. if the time is unknown (nil on the wire), extracts it from the raw
//      text; failing that, takes the time of the nearest event of the same
//      source in the batch (before, else after), else the receive time; the
//      field `_time_source` says which: extracted, interpolated, received,
//   3. stores events that name no index in `main`,
//   4. adds key/value fields found in the raw text (fields the sender set
//      win over extracted ones), up to the wire's field limit.
// Field names starting with `_` are Parallax's own: the collector rejects
// batches that use them.
// Batches leave in the order they came, which the store's deduplication by
// (source id, sequence) relies on: run one parser per indexer.

#include "parallax/pipeline/actors.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/sourcetypes.hpp"

#include <chrono>
#include <memory>
#include <vector>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

namespace parallax {

struct parse_counters {
  std::uint64_t extracted = 0;
  std::uint64_t interpolated = 0;
  std::uint64_t received = 0;
  std::uint64_t kv_fields = 0;
  std::uint64_t transformed = 0;
};

/// Parses `item` in place (fills item.parsed/fields/arena when anything
/// changes). `now` anchors year-less timestamps; extracted times before 1970
/// or more than `max_future` ahead of `now` are not used; key/value
/// extraction stops when an event has `max_fields` fields.
void parse_batch(ingest_item& item, const rulebook& book, time_ns now,
                 time_ns max_future, parse_counters& counters,
                 std::size_t max_fields = 256);

struct parser_config {
  std::vector<sourcetype_rules> rules;
  ingest_sink next;
  metrics_registry* metrics = nullptr; ///< must outlive the parser
  std::chrono::milliseconds max_future{std::chrono::hours{24}};
  std::size_t max_fields = 256; ///< parallax.wire.max-fields
  /// Its thread's real-time priority and nice: those of the correlator it
  /// feeds (ingest_pipeline), so that a batch that closes a window does
  /// not wait for the parser either; 0 and 0 leave them alone.
  int rt_priority = 0;
  int nice = 0;
};

struct parser_state {
  static inline const char* name = "parser";
  std::shared_ptr<const rulebook> book;
  parser_config cfg;
  counter* received = nullptr;
  counter* sent = nullptr;
  counter* extracted = nullptr;
  counter* interpolated = nullptr;
  counter* received_time = nullptr;
  counter* kv_fields = nullptr;
  counter* transformed = nullptr;
};

parser_actor::behavior_type
parser(parser_actor::stateful_pointer<parser_state> self, parser_config cfg);

/// Spawns a parser; fails (quits) if the rules do not compile.
parser_actor spawn_parser(caf::actor_system& sys, parser_config cfg);

} // namespace parallax
