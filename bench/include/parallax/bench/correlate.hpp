#pragma once

#include "parallax/pipeline/defaults.hpp"

#include <cstddef>
#include <cstdint>

namespace parallax::bench {

struct correlate_options {
  std::size_t vms = 200;          ///< simulated VMs (demo scenario on top)
  std::size_t hosts = 3;                ///< the demo scenario assumes 3
  std::uint64_t minutes = 30;     ///< simulated time
  /// The fleet replays this many times faster than real time, each agent
  /// and poller sending on its own phase (sim::simulation_options::speed).
  double speed = 60;
  /// Instead: the fleet as fast as the server takes it, every source's
  /// 20 simulated seconds sent at once (historical mode).
  bool burst = false;
  std::size_t batch = 1'000;      ///< burst: events per fleet batch (at most)
  /// Events per second offered in all: a second client sends mixed
  /// events at this rate less the fleet's (in burst mode the fleet comes
  /// on top), until the fleet is done. 0: the filler as fast as the server
  /// takes it. The default is 2 % above the 250,000/s target: the rate
  /// achieved, over the whole run with its start and its drain, comes out
  /// about 1 % below the rate offered.
  double rate = 255'000;
  /// The correlator thread's nice value (parallax.correlator.nice).
  int correlator_nice = defaults::correlator_nice;
  /// Its real-time priority (parallax.correlator.rt-priority); 0: none.
  int correlator_rt_priority = defaults::correlator_rt_priority;
  /// How long the correlator may leave drift work while batches wait
  /// (correlator_config::drift_defer), in ms; 0: never.
  double drift_defer_ms
    = static_cast<double>(defaults::correlator_drift_defer.count()) / 1000;
  /// Runs of the whole benchmark; with more than one, a last line gives the
  /// medians and how many runs met the targets.
  std::size_t runs = 1;
  bool json = false;
};

/// `parallax bench correlate`: the correlator under ingest load. Two
/// client processes (forked before any thread starts) send through the
/// real endpoint: the simulated fleet (etc/scenarios/demo.toml injected),
/// replayed `speed` times faster than real time, and a filler of mixed
/// events making up the rest of `rate` until the fleet is done. The server runs
/// collector, parser, correlator, indexer (synced commits) and the
/// publisher, with a subscriber attached. Reports the ingest rate over the
/// run and, per kind of message, the latency from the collector's arrival
/// of the batch that let a window close (or raised the alert) to the
/// message leaving through the PUB socket: p50, p99, max.
int run_correlate(const correlate_options& opts);

} // namespace parallax::bench
