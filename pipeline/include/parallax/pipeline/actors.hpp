#pragma once

// Every actor interface of Parallax in one place, so the whole system can be
// read from this file. Add a handler here before implementing it.
//
// CAF 0.17 atoms are at most 10 characters; they are verbs.

#include <string>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

namespace parallax {

// -- atoms --------------------------------------------------------------------

using status_atom = caf::atom_constant<caf::atom("status")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

// -- interfaces ---------------------------------------------------------------

/// The root of a `parallax serve` process: owns the components and reports
/// on them.
using node_actor = caf::typed_actor<
  // Returns the self-metrics in Prometheus text format, after an uptime line.
  caf::replies_to<status_atom>::with<std::string>,
  // Periodic self-report; sent by the node to itself.
  caf::reacts_to<tick_atom>>;

} // namespace parallax
