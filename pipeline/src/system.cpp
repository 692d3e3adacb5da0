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
  // Parallax logs through its own logger; CAF's would write files into the
  // working directory.
  sys_cfg.set("logger.file-verbosity", caf::atom("quiet"));
  sys_cfg.set("logger.console-verbosity", caf::atom("quiet"));
}

} // namespace parallax
