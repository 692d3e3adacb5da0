#pragma once

// The indexer: the single writer of the store.
//
// Caveats: spawn it with caf::detached. It owns an LMDB write transaction
// per flush and a ZeroMQ PUSH socket for replies, both tied to one thread.

#include "parallax/pipeline/actors.hpp"
#include "parallax/pipeline/metrics.hpp"
#include "parallax/pipeline/zmq.hpp"
#include "parallax/storage/store.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

namespace parallax {

struct indexer_config {
  storage::store* store = nullptr;        ///< must outlive the indexer
  const storage::environment* env = nullptr; ///< the store's; must outlive it
  zmq::context* zmq = nullptr;            ///< must outlive the indexer
  std::string reply_endpoint;             ///< the collector's inproc PULL
  metrics_registry* metrics = nullptr;    ///< must outlive the indexer
  std::chrono::milliseconds retention{0}; ///< 0 keeps everything
  std::chrono::milliseconds retention_check{60'000};
  /// Its thread's nice (and its block-packing helpers'): 15 puts commits
  /// behind the live path when that runs in the normal class; 5 when the
  /// live path is real-time and goes first anyway (ingest_pipeline), so
  /// that a lock the indexer holds (malloc's arenas, a CAF mailbox's) is
  /// not held for long by a thread the scheduler neglects.
  int nice = 15;

  caf::error validate() const;
};

struct indexer_state {
  static inline const char* name = "indexer";
  indexer_config cfg;
  std::vector<ingest_ptr> pending;
  bool flush_scheduled = false;
  std::optional<zmq::socket> replies;
  std::string buf;
  counter* received_events = nullptr;
  counter* stored_events = nullptr;
  counter* duplicate_batches = nullptr;
  counter* commits = nullptr;
  counter* failed_batches = nullptr;
  counter* lost_replies = nullptr;
};

indexer_actor::behavior_type
indexer(indexer_actor::stateful_pointer<indexer_state> self, indexer_config cfg);

/// Spawns a detached indexer.
indexer_actor spawn_indexer(caf::actor_system& sys, indexer_config cfg);

} // namespace parallax
