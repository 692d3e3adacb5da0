#pragma once

// The compactor: rewrites buckets that have stopped taking events so that
// each series sits in blocks of its own (store::compact; the policy is
// storage::compaction_policy). It reads, sorts and encodes outside LMDB's
// write lock, so the indexer's commits wait only for the final swap.
//
// Caveats: spawn it with caf::detached (a compaction of a large bucket
// takes seconds of CPU); it runs at the indexer's nice (15, or 5 when the
// live path is real-time: indexer_config::nice), behind the live path.

#include "parallax/pipeline/actors.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/storage/compaction.hpp"
#include "parallax/storage/store.hpp"

#include <chrono>
#include <optional>

#include <caf/fwd.hpp>
#include <caf/typed_actor.hpp>

namespace parallax {

struct compactor_config {
  storage::store* store = nullptr;     ///< must outlive the compactor
  metrics_registry* metrics = nullptr; ///< must outlive the compactor
  /// parallax.storage.compact-after: quiet time before a bucket is
  /// compacted; zero turns compaction off.
  std::chrono::milliseconds quiet{2000};
  int nice = 15; ///< the indexer's (indexer_config::nice)
};

/// Polls the catalog on each tick, sent to itself.
using compactor_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

struct compactor_state {
  static inline const char* name = "compactor";
  compactor_config cfg;
  std::optional<storage::compaction_policy> policy;
  counter* compactions = nullptr;
  counter* events = nullptr;
  counter* abandoned = nullptr;
  counter* failures = nullptr;
};

compactor_actor::behavior_type
compactor(compactor_actor::stateful_pointer<compactor_state> self,
          compactor_config cfg);

/// Spawns a detached compactor, or returns a null handle when compaction
/// is off (quiet time zero).
compactor_actor spawn_compactor(caf::actor_system& sys, compactor_config cfg);

} // namespace parallax
