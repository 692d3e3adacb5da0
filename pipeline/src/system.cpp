#include "parallax/pipeline/system.hpp"

#include <thread>

#include <caf/atom.hpp>
#include <caf/settings.hpp>

namespace parallax {

void configure_actor_system(caf::actor_system_config& sys_cfg,
                            const config& cfg) {
  auto threads = cfg.scheduler_threads;
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  sys_cfg.set("scheduler.max-threads", static_cast<size_t>(threads));
  // A message to a pool actor (the collector's batches to the parser)
  // goes to a worker's queue and wakes no idle worker; an idle worker
  // looks for work only when its relaxed sleep ends. Measured when the
  // correlator was a pool actor too (it has its own thread now: the
  // parser's sends wake it at once): CAF's default of 10 ms put up to 10
  // ms, under load up to 30 ms, between a batch's arrival and its deltas;
  // with 500 us that wait's p99 was 0.5-5 ms over eleven runs of `parallax
  // bench correlate`. An idle server pays with about 6 % of a core (1.2 %
  // with 10 ms), measured on this 2-core machine.
  sys_cfg.set("work-stealing.relaxed-sleep-duration",
              caf::timespan{std::chrono::microseconds{500}});
  // Parallax logs through its own logger; CAF's would write files into the
  // working directory.
  sys_cfg.set("logger.file-verbosity", caf::atom("quiet"));
  sys_cfg.set("logger.console-verbosity", caf::atom("quiet"));
}

} // namespace parallax
