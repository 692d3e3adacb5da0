#pragma once

// Every actor interface of Parallax in one place, so the whole system can be
// read from this file. Add a handler here before implementing it.
//
// CAF 0.17 atoms are at most 10 characters; they are verbs.

#include "parallax/schemas/event.hpp"
#include "parallax/schemas/wire.hpp"

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

namespace parallax {

// -- atoms --------------------------------------------------------------------

using status_atom = caf::atom_constant<caf::atom("status")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using ingest_atom = caf::atom_constant<caf::atom("ingest")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;

// -- messages -----------------------------------------------------------------

/// When a batch passed each stage (nanoseconds since the epoch; 0 when it
/// did not pass that stage).
struct batch_times {
  time_ns received = 0;  ///< the collector took the frame
  time_ns passed_on = 0; ///< the parser passed it on
  time_ns taken = 0;     ///< the correlator began on it
};

/// A decoded, validated batch on its way from the collector to the indexer,
/// with what is needed to answer the client once it is committed.
struct ingest_item {
  wire::batch_view batch;
  std::string peer;        ///< ZeroMQ routing id of the client
  std::uint64_t bytes = 0; ///< frame size, for the collector's credit
  batch_times times;

  /// The parser's output when it changed anything: events whose views
  /// point into the frame, `fields` and `arena`. Empty: `batch` as is.
  std::vector<event_view> parsed;
  std::vector<field_view> fields;
  std::deque<std::string> arena; ///< strings the parser made (stable)
  /// What `parsed` points into when it is not the frame (the correlator's
  /// own messages, stored without an encoding round trip).
  std::shared_ptr<const void> owner;

  /// The events to store.
  std::span<const event_view> events() const noexcept {
    return parsed.empty() ? batch.events() : std::span<const event_view>{parsed};
  }
};

/// Batches travel by pointer: one allocation per batch, no copies.
using ingest_ptr = std::shared_ptr<ingest_item>;

// -- interfaces ---------------------------------------------------------------

/// The root of a `parallax serve` process: owns the components and reports
/// on them.
using node_actor = caf::typed_actor<
  // Returns the self-metrics in Prometheus text format, after an uptime line.
  caf::replies_to<status_atom>::with<std::string>,
  // Periodic self-report; sent by the node to itself.
  caf::reacts_to<tick_atom>>;

/// Anything that takes batches: the parser, the indexer.
using ingest_sink = caf::typed_actor<caf::reacts_to<ingest_atom, ingest_ptr>>;

/// Turns raw text into events per sourcetype rules (timestamps, transforms,
/// key/value fields) and passes batches on, in order.
using parser_actor = ingest_sink;

/// Owns the store's write side on its own thread (spawn it detached):
/// batches are grouped into one LMDB write transaction per flush (group
/// commit) and every batch is answered after the commit returned.
using indexer_actor = caf::typed_actor<
  // Queues a batch for the next group commit.
  caf::reacts_to<ingest_atom, ingest_ptr>,
  // Commits everything queued; sent by the indexer to itself.
  caf::reacts_to<flush_atom>,
  // Drops buckets past the retention period; periodic, sent to itself.
  caf::reacts_to<expire_atom>>;

} // namespace parallax

// Local-only message type (never serialized).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parallax::ingest_ptr)
