#pragma once

#include <cstddef>
#include <cstdint>

namespace parallax::bench {

struct correlate_options {
  std::size_t vms = 200;          ///< simulated VMs (demo scenario on top)
  std::size_t hosts = 3;                ///< the demo scenario assumes 3
  std::uint64_t minutes = 30;     ///< simulated time
  std::size_t filler = 2'000'000; ///< extra mixed events from a second client
  std::size_t batch = 1'000;      ///< events per fleet batch (at most)
  bool json = false;
};

/// `parallax bench correlate`: the correlator under ingest load. Two
/// client processes (forked before any thread starts) push through the
/// real endpoint at full speed: the simulated fleet (as fast as possible,
/// etc/scenarios/demo.toml injected) and a filler of mixed events. The
/// server runs collector, parser, correlator, indexer (synced commits) and
/// the publisher, with a subscriber attached. Reports the ingest rate over
/// the run and, per kind of message, the latency from the collector's
/// arrival of the batch that let a window close (or raised the alert) to
/// the message leaving through the PUB socket: p50, p99, max.
int run_correlate(const correlate_options& opts);

} // namespace parallax::bench
