#pragma once

#include "parallax/pipeline/actors.hpp"
#include "parallax/pipeline/metrics.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

namespace parallax {

struct node_config {
  /// The process's self-metrics; must outlive the node.
  metrics_registry* metrics = nullptr;
  /// How often the node logs changed counters (at debug level).
  std::chrono::milliseconds report_interval{10'000};

  /// An empty error if the config is usable.
  caf::error validate() const;
};

struct node_state {
  static inline const char* name = "node";
  node_config cfg;
  std::chrono::steady_clock::time_point started;
  /// Counter values at the last report, to log only what changed.
  std::map<std::string, std::uint64_t> last_values;
};

/// The node's behaviour. Quits at once with the validation error if `cfg` is
/// unusable.
node_actor::behavior_type node(node_actor::stateful_pointer<node_state> self,
                               node_config cfg);

/// Spawns a node on `sys`.
node_actor spawn_node(caf::actor_system& sys, node_config cfg);

} // namespace parallax
