#pragma once

// Actor-system bootstrap: turns a Parallax config into CAF's.

#include "parallax/pipeline/config.hpp"

#include <caf/actor_system_config.hpp>

namespace parallax {

/// Applies `cfg` to a CAF system config (scheduler threads, no CAF logging
/// files) before the actor system is constructed.
void configure_actor_system(caf::actor_system_config& sys_cfg,
                            const config& cfg);

} // namespace parallax
