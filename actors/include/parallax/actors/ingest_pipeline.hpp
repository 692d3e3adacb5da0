#pragma once

// The ingest stages of one store -- collector, parser, (correlator,)
// indexer -- started
// together and stopped in the order that loses nothing acknowledged.
//
// Caveats: the actor system must outlive the pipeline, and its destructor
// waits for the detached parser, correlator and indexer, whose threads end
// only once every handle to them is gone: stop() (or the destructor) drops
// them, so destroy or stop the pipeline before the actor system.

#include "parallax/actors/collector.hpp"
#include "parallax/actors/compactor.hpp"
#include "parallax/actors/correlator.hpp"
#include "parallax/actors/indexer.hpp"
#include "parallax/actors/parser.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

namespace parallax {

struct ingest_pipeline_config {
  /// Endpoint, wire limits, credit and max-future; the handles and the
  /// reply endpoint are filled in by start().
  collector_config collector;
  std::vector<sourcetype_rules> rules;
  std::chrono::milliseconds retention{0};
  /// Quiet time before the compactor rewrites a bucket; zero: no compactor.
  std::chrono::milliseconds compact_after{0};
  storage::store* store = nullptr;           ///< must outlive the pipeline
  const storage::environment* env = nullptr; ///< the store's
  zmq::context* zmq = nullptr;               ///< must outlive the pipeline
  metrics_registry* metrics = nullptr;       ///< must outlive the pipeline
  /// The correlator between parser and indexer; absent: none (its `next`,
  /// `metrics` and `store` are filled in by start()).
  std::optional<correlator_config> correlator;
};

class ingest_pipeline {
public:
  /// Spawns the indexer and the parser and binds the collector's endpoint.
  static result<std::unique_ptr<ingest_pipeline>>
  start(caf::actor_system& sys, ingest_pipeline_config cfg);

  ~ingest_pipeline();

  /// Stops taking batches (what was not committed is not acknowledged, and
  /// clients resend it), then ends the parser, the correlator (waiting for
  /// it: it stores what it published) and the indexer, which commits what
  /// reached it first; drops every handle. Held batches of new guests are
  /// dropped (never acknowledged: their clients resend them). Idempotent.
  /// Must not be called from an actor of the pipeline.
  void stop();

  /// The bound endpoint (with the real port if the configured one was 0).
  const std::string& endpoint() const noexcept {
    return collector_->endpoint();
  }

private:
  ingest_pipeline() = default;
  indexer_actor indexer_;
  compactor_actor compactor_;
  correlator_actor correlator_;
  parser_actor parser_;
  std::unique_ptr<collector> collector_;
};

} // namespace parallax
