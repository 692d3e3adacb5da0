#pragma once

// The correlator stage, between the parser and the indexer. For every
// batch it attributes each event to its VM and adds the fields `vm` and
// `vm_uuid` (and `vm_conflict` when the identity evidence conflicted), so
// that one search spans hypervisor and guest data; passes the batch on (a
// new guest's first batches once its VM is known: batch_hold.hpp);
// then advances the correlation (pipeline/correlator.hpp) and hands every
// resulting delta, alert and identity change to `publish` and, as events
// of sourcetype parallax:delta / parallax:alert / parallax:identity, to the
// indexer, so they are searchable too.
//
// Deltas go out as soon as the batch that lets a window close has been
// attributed -- before that batch is committed: subscribers get them with
// the latency of one actor message, and what they describe is stored
// moments later.
//
// A batch the correlator has learned from before (the same source id and
// sequence: a client's resend) is passed on to the indexer, to be answered
// `duplicate`, and not learned from again: the join would count its samples
// twice. It gets no attribution but its source's VM (for a guest bound to
// one): should its first try's commit have failed, it is stored so.
//
// The correlator has a thread of its own, at a higher priority than the
// ingest path's (`nice`, default -10): it is the live path, and on a busy
// server it would otherwise wait its turn behind the collector, the parser
// and the indexer's helpers (measured in correlator.cpp).
//
// The correlation state (identity, baselines, learned processes) is saved
// to `state_file` every `save_interval` and at exit, and loaded at start.

#include "parallax/actors/batch_hold.hpp"
#include "parallax/pipeline/actors.hpp"
#include "parallax/pipeline/correlator.hpp"
#include "parallax/pipeline/defaults.hpp"
#include "parallax/pipeline/metrics.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <span>
#include <memory>

#include <caf/fwd.hpp>

namespace parallax::storage {
class store;
} // namespace parallax::storage

namespace parallax {

/// Turns correlator messages into one batch for the indexer (source id
/// `parallax:correlator`, index `main`), or nullptr when there are none.
/// The batch owns the messages and its events are views of them: nothing
/// is encoded on the correlator's thread. Messages that are not
/// storable() are left out, and counted in `skipped`.
ingest_ptr batch_of_messages(std::vector<correlator_message> msgs,
                             std::uint64_t sequence,
                             std::size_t* skipped = nullptr);

/// Whether the wire decoder would take `m` as an event (names valid UTF-8,
/// within the name limit; field names non-empty and distinct): the store
/// reads its blocks back with it.
bool storable(const correlator_message& m);

struct correlator_config {
  correlator_options options;
  ingest_sink next;                      ///< the indexer
  metrics_registry* metrics = nullptr;   ///< must outlive the actor
  /// Called for every message as soon as it is final, on the actor's
  /// thread, with a view valid during the call (message_view); may be
  /// empty. `times` says when the batch whose processing produced the
  /// message passed each stage (ingest_item::times; the latency benchmark
  /// measures from `received`).
  std::function<void(const message_view&, const batch_times& times)>
    publish;
  /// Called with every batch's events once they carry their VM, on the
  /// actor's thread; may be empty (serve: `event.<sourcetype>` topics).
  std::function<void(std::span<const event_view>)> publish_events;
  /// A new guest's batches wait for its VM (batch_hold.hpp).
  batch_hold::options hold;
  /// The nice value of the correlator's thread (parallax.correlator.nice).
  int nice = defaults::correlator_nice;
  /// Its real-time priority (SCHED_RR) when it can have one; 0: none, the
  /// nice only (parallax.correlator.rt-priority).
  int rt_priority = defaults::correlator_rt_priority;
  /// The store the indexer writes: a source's committed sequences, read
  /// once per source, so that a batch resent after its first try was
  /// committed (its ack lost, or slow) is not learned from twice. Null:
  /// only what this correlator saw itself counts.
  const storage::store* store = nullptr;
  /// While more batches wait in its mailbox, the correlator publishes a
  /// batch's deltas and leaves what they tell the baselines (drift alerts,
  /// the unexplained-load check) until the mailbox is empty (but for its
  /// own flush, which runs that work first), or until the first message
  /// it finishes this long after the oldest such work was left
  /// (correlator::advance_windows). Zero: never left.
  std::chrono::microseconds drift_defer = defaults::correlator_drift_defer;
  std::filesystem::path state_file;      ///< empty: nothing persisted
  std::chrono::milliseconds save_interval{60'000};
};

using correlator_actor = caf::typed_actor<
  caf::reacts_to<ingest_atom, ingest_ptr>,
  // Stores the messages published since the last one; sent to itself, so
  // the batches already waiting go first.
  caf::reacts_to<flush_atom>,
  // Passes on the batches held too long (batch_hold); sent to itself every
  // second while any are held.
  caf::reacts_to<tick_atom>>;

/// Spawns the correlator; loads its state first (a damaged state file is
/// logged and set aside as <file>.bad, and the correlator starts fresh).
correlator_actor spawn_correlator(caf::actor_system& sys,
                                  correlator_config cfg);

} // namespace parallax
